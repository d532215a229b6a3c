"""The trading API over real HTTP: orders, trades, market data, bilateral instructions, suspension."""

import uuid

import pytest

from dfa.ledger import service as ledger
from dfa.platform.database import Database
from dfa.settlement.service import accounts
from tests.factories import SETTINGS, make_party, new_asset_code
from tests.http import post

PRICE = 25_000


@pytest.fixture
async def emission(database: Database, users) -> str:
    """A fresh emission; the investor holds 100 units and both investors 10 000 000 tiyn."""
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=SETTINGS)
        code = new_asset_code("TR")
        await ledger.create_asset(session, code=code, kind="dfa", scale=0, name="traded emission")
        issuer = await make_party(session, kind="legal_entity", name="Trading Issuer")
        issued = await ledger.open_account(session, owner_party_id=issuer.id, asset_code=code, kind="issued", settings=SETTINGS)
        client_money = await accounts.operator_account(session, kind="client_money", settings=SETTINGS)
        seller = await accounts.holder_account(session, party_id=users["investor"].party_id, asset_code=code, settings=SETTINGS)
        await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), issued.id, seller.id, 100))
        for name in ("investor", "other_investor"):
            cash = await accounts.holder_account(session, party_id=users[name].party_id, asset_code="KZT", settings=SETTINGS)
            await ledger.post_transfer(
                session, transfer=ledger.TransferSpec(uuid.uuid4(), client_money.id, cash.id, 10_000_000)
            )
    return code


def test_req38_an_order_matches_over_http_and_both_see_the_trade(users, emission):
    seller, buyer = users.client("investor"), users.client("other_investor")
    sold = post(seller, "/v1/orders", {"base": emission, "side": "sell", "price": PRICE, "quantity": 10})
    assert sold.status_code == 201, sold.text
    assert sold.json()["order"]["status"] == "open"

    book = buyer.get(f"/v1/market-data/{emission}").json()
    assert (book["best_ask"], book["asks"][0]["quantity"]) == (PRICE, 10)

    bought = post(buyer, "/v1/orders", {"base": emission, "side": "buy", "price": PRICE, "quantity": 4})
    assert bought.status_code == 201, bought.text
    trade = bought.json()["trades"][0]
    assert (trade["quantity"], trade["value"], trade["buyer_fee"]) == (4, 4 * PRICE, 4 * PRICE * 10 // 10_000)

    mine = seller.get("/v1/trades").json()
    assert [(t["id"], t["side"]) for t in mine if t["base"] == emission] == [(trade["id"], "sell")]
    theirs = buyer.get("/v1/trades").json()
    assert [(t["id"], t["side"]) for t in theirs if t["base"] == emission] == [(trade["id"], "buy")]
    instruction = buyer.get(f"/v1/settlement-instructions/{trade['instruction_id']}").json()
    assert (instruction["status"], instruction["kind"], instruction["history"][-1]["event"]) == ("settled", "dvp", "settled")
    assert seller.get(f"/v1/orders/{sold.json()['order']['id']}").json()["remaining"] == 6


def test_an_order_replayed_with_its_idempotency_key_is_placed_once(users, emission):
    seller = users.client("investor")
    key = str(uuid.uuid4())
    body = {"base": emission, "side": "sell", "price": PRICE * 2, "quantity": 3}
    first, again = post(seller, "/v1/orders", body, key=key), post(seller, "/v1/orders", body, key=key)

    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["order"]["id"] == again.json()["order"]["id"]
    assert len([o for o in seller.get("/v1/orders", params={"status": "open"}).json() if o["base"] == emission]) == 1


def test_an_investor_cannot_see_or_cancel_another_investors_order(users, emission):
    placed = post(users.client("investor"), "/v1/orders", {"base": emission, "side": "sell", "price": PRICE, "quantity": 1})
    order_id = placed.json()["order"]["id"]
    other = users.client("other_investor")

    assert other.get(f"/v1/orders/{order_id}").status_code == 404
    refused = post(other, f"/v1/orders/{order_id}/cancellation", {})
    assert (refused.status_code, refused.json()["type"]) == (404, "/problems/order-not-found")
    cancelled = post(users.client("investor"), f"/v1/orders/{order_id}/cancellation", {})
    assert cancelled.json()["status"] == "cancelled"


def test_bad_orders_get_problem_details_and_change_nothing(users, emission):
    investor = users.client("other_investor")
    before = investor.get("/v1/orders").json()
    for body, status, problem in [
        ({"base": emission, "side": "buy", "price": 0, "quantity": 1}, 422, "/problems/validation-error"),
        ({"base": emission, "side": "buy", "price": 1.5, "quantity": 1}, 422, "/problems/validation-error"),
        ({"base": "NOSUCH", "side": "buy", "price": 1, "quantity": 1}, 404, "/problems/asset-not-found"),
        ({"base": emission, "side": "buy", "price": 10**12, "quantity": 10**6}, 422, "/problems/order-invalid"),
        ({"base": emission, "side": "buy", "price": 10**9, "quantity": 10**3}, 422, "/problems/insufficient-funds"),
    ]:
        response = post(investor, "/v1/orders", body)
        assert (response.status_code, response.json()["type"]) == (status, problem), response.text
    assert investor.get("/v1/orders").json() == before


def test_a_buy_order_whose_value_and_fee_pass_the_largest_amount_is_refused_not_a_server_error(users, emission):
    """Its value alone fits (10^17 tiyn) but the fee on top does not: the ledger cannot hold that much, so the
    order is refused as invalid before anything is held, never answered with a 500."""
    investor = users.client("other_investor")
    before = investor.get("/v1/orders").json()

    refused = post(investor, "/v1/orders", {"base": emission, "side": "buy", "price": 10**17, "quantity": 1})

    assert (refused.status_code, refused.json()["type"]) == (422, "/problems/order-invalid"), refused.text
    assert investor.get("/v1/orders").json() == before


def test_req38_a_bilateral_instruction_settles_when_both_parties_submit(users, emission):
    seller, buyer = users.client("investor"), users.client("other_investor")
    terms = {"reference": f"OTC-{uuid.uuid4().hex[:8]}"}
    units, money = {"asset": emission, "amount": 5}, {"asset": "KZT", "amount": 5 * PRICE}
    first = post(seller, "/v1/settlement-instructions", {
        **terms, "counterparty_id": str(users["other_investor"].party_id), "deliver": units, "receive": money,
    })
    assert (first.status_code, first.json()["status"], first.json()["first"]["held"]) == (201, "pending", True)
    second = post(buyer, "/v1/settlement-instructions", {
        **terms, "counterparty_id": str(users["investor"].party_id), "deliver": money, "receive": units,
    })
    assert (second.status_code, second.json()["status"]) == (200, "settled"), second.text
    assert second.json()["id"] == first.json()["id"]
    assert [e["event"] for e in second.json()["history"]] == ["submitted", "submitted", "matched", "settled"]
    assert users.client("other_issuer").get(f"/v1/settlement-instructions/{first.json()['id']}").status_code == 404


def test_suspension_by_compliance_cancels_the_book_and_is_seen_in_market_data(users, emission):
    post(users.client("investor"), "/v1/orders", {"base": emission, "side": "sell", "price": PRICE, "quantity": 2})
    suspended = users.client("compliance_officer").put(
        f"/v1/trading-status/{emission}", json={"suspended": True, "reason": "coverage shortfall"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["orders_cancelled"] >= 1
    book = users.client("other_investor").get(f"/v1/market-data/{emission}").json()
    assert book["suspended"] and book["asks"] == []
    refused = post(users.client("other_investor"), "/v1/orders", {"base": emission, "side": "buy", "price": 1, "quantity": 1})
    assert (refused.status_code, refused.json()["type"]) == (422, "/problems/trading-suspended")
