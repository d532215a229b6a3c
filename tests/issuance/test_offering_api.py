"""Snapshots, placement and redemption over real HTTP, with object-level authorization."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dfa.issuance.service import emissions
from dfa.ledger import service as ledger
from dfa.platform.database import Database
from dfa.settlement.service import accounts
from tests.factories import SETTINGS
from tests.http import post
from tests.issuance.factories import make_application
from tests.market import onboarded_issuer

PRICE = 10_007
# Far above what the issuer has raised in other tests' placements, so an unfunded redemption defaults.
REDEMPTION_PRICE = 10**9
WINDOW_S = 4  # long enough to subscribe over HTTP, short enough to wait for


async def _transfer(session, source_id: int, party_id, asset_code: str, amount: int) -> None:
    target = await accounts.holder_account(session, party_id=party_id, asset_code=asset_code, settings=SETTINGS)
    await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), source_id, target.id, amount))


@pytest.fixture
async def emission(database: Database, users) -> str:
    """A fresh emission of 1 000 units of the signed-in issuer; both investors hold 1 000 000 tiyn and the
    investor 10 units, the other investor 5."""
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=SETTINGS)
        issuer = await onboarded_issuer(session, users["issuer"].party_id)
        application = await make_application(session, issuer=issuer, units=1_000, price=PRICE,
                                               redemption_price=REDEMPTION_PRICE)
        registered = await emissions.issue(session, application=application, actor="test", settings=SETTINGS)
        application.status = "registered"
        client_money = await accounts.operator_account(session, kind="client_money", settings=SETTINGS)
        placement_account = await ledger.find_account(
            session, owner_party_id=issuer.id, asset_id=registered.asset_id, kind="available"
        )
        for name, units in (("investor", 10), ("other_investor", 5)):
            await _transfer(session, client_money.id, users[name].party_id, "KZT", 1_000_000)
            await _transfer(session, placement_account.id, users[name].party_id, registered.registration_number, units)
    return registered.registration_number


def test_a_placement_is_opened_subscribed_allocated_and_reported_over_http_req_25_req_38(users, emission):
    issuer, investor, other = (users.client(n) for n in ("issuer", "investor", "other_investor"))
    now = datetime.now(UTC)
    window = {"opens_at": now.isoformat(), "closes_at": (now + timedelta(seconds=WINDOW_S)).isoformat()}
    path = f"/v1/emissions/{emission}/placements"

    assert post(users.client("other_issuer"), path, {"units": 10, **window}).status_code == 404
    assert post(investor, path, {"units": 10, **window}).status_code == 403
    opened = post(issuer, path, {"units": 10, "min_units": 2, **window})
    assert (opened.status_code, opened.json()["price"], opened.json()["status"]) == (201, PRICE, "open"), opened.text
    placement_id = opened.json()["id"]

    mine = post(investor, f"/v1/placements/{placement_id}/subscriptions", {"units": 8})
    assert (mine.status_code, mine.json()["amount"]) == (201, 8 * PRICE), mine.text
    theirs = post(other, f"/v1/placements/{placement_id}/subscriptions", {"units": 4})
    assert theirs.status_code == 201, theirs.text
    again = post(investor, f"/v1/placements/{placement_id}/subscriptions", {"units": 1})
    assert (again.status_code, again.json()["type"]) == (409, "/problems/subscription-exists")
    listed = f"/v1/placements/{placement_id}/subscriptions"
    assert [s["id"] for s in investor.get(listed).json()] == [mine.json()["id"]]
    assert len(issuer.get(listed).json()) == 2
    early = post(issuer, f"/v1/placements/{placement_id}/allocation", {})
    assert (early.status_code, early.json()["type"]) == (409, "/problems/placement-still-open")

    time.sleep(max(0.0, (now + timedelta(seconds=WINDOW_S + 0.2) - datetime.now(UTC)).total_seconds()))
    assert post(users.client("other_issuer"), f"/v1/placements/{placement_id}/allocation", {}).status_code == 404
    closed = post(issuer, f"/v1/placements/{placement_id}/allocation", {})
    assert (closed.status_code, closed.json()["status"], closed.json()["units_allocated"]) == (200, "allocated", 10)
    # 12 asked for 10: shares 6.67 and 3.33 round down to 6 and 3; the unit left goes to the earliest.
    assert [s["allocated_units"] for s in issuer.get(listed).json()] == [7, 3]
    report = issuer.get(f"/v1/placements/{placement_id}/report")
    assert (report.status_code, report.json()["report"]["money_raised"]) == (200, 10 * PRICE)
    assert users.client("auditor").get(f"/v1/placements/{placement_id}/report").status_code == 200
    assert investor.get(f"/v1/placements/{placement_id}/report").status_code == 403
    assert users.client("other_issuer").get(f"/v1/placements/{placement_id}/report").status_code == 404
    twice = post(issuer, f"/v1/placements/{placement_id}/allocation", {})
    assert (twice.status_code, twice.json()["type"]) == (409, "/problems/placement-not-open")


def test_only_the_subscriber_cancels_its_subscription_over_http(users, emission):
    now = datetime.now(UTC)
    opened = post(users.client("issuer"), f"/v1/emissions/{emission}/placements", {
        "units": 10, "opens_at": now.isoformat(), "closes_at": (now + timedelta(hours=1)).isoformat(),
    })
    subscribed = post(users.client("investor"), f"/v1/placements/{opened.json()['id']}/subscriptions", {"units": 2})
    cancellation = f"/v1/subscriptions/{subscribed.json()['id']}/cancellation"

    refused = post(users.client("other_investor"), cancellation, {})
    assert (refused.status_code, refused.json()["type"]) == (404, "/problems/subscription-not-found")
    cancelled = post(users.client("investor"), cancellation, {})
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")


def test_a_snapshot_is_taken_by_the_issuer_and_seen_by_staff_only_over_http_req_35(users, emission):
    taken = post(users.client("issuer"), f"/v1/emissions/{emission}/snapshots", {})
    assert taken.status_code == 201, taken.text
    body = taken.json()
    assert (body["total_units"], body["holders"]) == (1_000, 3)
    assert {(p["party_id"], p["total"], p["is_issuer"]) for p in body["positions"]} == {
        (str(users["issuer"].party_id), 985, True), (str(users["investor"].party_id), 10, False),
        (str(users["other_investor"].party_id), 5, False),
    }
    path = f"/v1/emissions/{emission}/snapshots/{body['id']}"
    assert users.client("auditor").get(path).json()["total_units"] == 1_000
    assert users.client("other_issuer").get(path).status_code == 404
    assert users.client("investor").get(path).status_code == 403
    assert post(users.client("other_issuer"), f"/v1/emissions/{emission}/snapshots", {}).status_code == 404


async def test_a_redemption_defaults_while_unfunded_then_pays_each_holder_who_sees_its_own_payment_req_32(
    users, emission, database
):
    path = f"/v1/emissions/{emission}/redemptions"
    assert post(users.client("other_issuer"), path, {"kind": "early"}).status_code == 404
    assert post(users.client("investor"), path, {"kind": "early"}).status_code == 403

    defaulted = post(users.client("issuer"), path, {"kind": "early"})
    assert (defaulted.status_code, defaulted.json()["status"]) == (201, "defaulted"), defaulted.text
    due, available = defaulted.json()["amount_due"], defaulted.json()["amount_available"]
    assert (due, defaulted.json()["default"]["shortfall"]) == (15 * REDEMPTION_PRICE, due - available)

    async with database.unit_of_work() as session:
        client_money = await accounts.operator_account(session, kind="client_money", settings=SETTINGS)
        await _transfer(session, client_money.id, users["issuer"].party_id, "KZT", due - available)
    paid = post(users.client("operator_admin"), path, {"kind": "early"})
    assert (paid.status_code, paid.json()["status"]) == (201, "paid"), paid.text
    assert {(p["party_id"], p["amount"]) for p in paid.json()["payments"]} == {
        (str(users["investor"].party_id), 10 * REDEMPTION_PRICE),
        (str(users["other_investor"].party_id), 5 * REDEMPTION_PRICE),
    }

    seen = users.client("investor").get(path).json()
    assert [(r["status"], r["amount_available"]) for r in seen] == [("paid", None), ("defaulted", None)]
    assert [p["party_id"] for p in seen[0]["payments"]] == [str(users["investor"].party_id)]
    assert len(users.client("issuer").get(path).json()[0]["payments"]) == 2
