"""The catalogue and the investor's trading pages over real HTTP: emissions' public terms for every role and
their issuer's documents only for those the API shows them to; orders entered through a preview that holds
nothing and a confirmation that places one order, cancelled from the page; trades as the investor's own."""

import html
import re
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from dfa.issuance.service import issuers
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from dfa.settlement.service import accounts
from tests.http import post, problem_slug
from tests.identity import create_user, sign_in, signed_in_client
from tests.issuance.factories import make_emission
from tests.market import fund, onboarded_issuer
from tests.pages import BROWSER, PAGE_HEADERS, csrf_token_of, text_of

PDF = b"%PDF-1.4\n% the emission's prospectus\n%%EOF\n"
MONEY = 10_000_000  # tiyn each funded investor starts with: 100,000.00 KZT
FEE_BPS = 10


@dataclass
class Investor:
    """A signed-in investor: its browser (the session cookie only; forms carry the token from the page) and
    an API client (cookie and CSRF header) to read and set up what the pages do not."""

    party_id: uuid.UUID
    login: str
    browser: httpx.Client
    api: httpx.Client


@dataclass(frozen=True)
class Catalogued:
    """An emission of the signed-in issuer with a prospectus on file."""

    code: str
    asset_id: int
    document_id: uuid.UUID


@pytest.fixture(scope="module")
async def catalogued(database: Database, settings: Settings, users) -> Catalogued:
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=settings)
        issuer = await onboarded_issuer(session, users["issuer"].party_id)
        emission = await make_emission(session, issuer=issuer, units=5_000, nominal=100_000)
        document = await issuers.upload_document(
            session, issuer_party_id=issuer.id, kind="prospectus", title="Prospectus of the grain receipts",
            filename="prospectus.pdf", declared_type="application/pdf", content=PDF, underlying_asset_id=None,
            application_id=None, actor="test", settings=settings,
        )
    return Catalogued(emission.registration_number, emission.asset_id, document.id)


async def _new_emission(database: Database, users) -> str:
    async with database.unit_of_work() as session:
        issuer = await onboarded_issuer(session, users["issuer"].party_id)
        return (await make_emission(session, issuer=issuer, units=1_000)).registration_number


@pytest.fixture
async def emission(database, users) -> str:
    """A fresh emission, so that no other test's order rests on its book."""
    return await _new_emission(database, users)


@pytest.fixture
async def other_emission(database, users) -> str:
    return await _new_emission(database, users)


@pytest.fixture
async def investors(database, settings, server_url, users) -> AsyncIterator:
    """Makes signed-in investors with `money` tiyn and `units` of emissions (by code)."""
    made: list[Investor] = []

    async def make(*, money: int = 0, units: dict[str, int] | None = None) -> Investor:
        login, _, party_id, _ = await create_user(database, settings, role="investor")
        await fund(database, settings, party_id, money=money, units=units, issuer_id=users["issuer"].party_id)
        api = signed_in_client(server_url, sign_in(server_url, login))
        browser = httpx.Client(base_url=server_url, timeout=30, headers={"Cookie": api.headers["Cookie"], **BROWSER})
        made.append(Investor(party_id, login, browser, api))
        return made[-1]

    yield make
    for investor in made:
        investor.browser.close()
        investor.api.close()


@pytest.fixture
async def buyer(investors) -> Investor:
    return await investors(money=MONEY)


@pytest.fixture
async def seller(investors, emission) -> Investor:
    return await investors(units={emission: 100})


# Helpers


def preview(investor: Investor, **fields: str) -> httpx.Response:
    token = csrf_token_of(investor.browser.get("/orders"))
    return investor.browser.post("/orders/preview", data={"csrf_token": token, "quote": "KZT", "time_in_force": "gtc",
                                                          **fields})


def form_of(page: httpx.Response, action: str) -> dict[str, str]:
    """The hidden fields of the page's form posting to `action`."""
    form = re.search(rf'<form method="(?:post|get)" action="{re.escape(action)}"[^>]*>(.*?)</form>', page.text, re.DOTALL)[1]
    return {name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)}


def place(investor: Investor, **fields: str) -> httpx.Response:
    """Preview the order and confirm it as the preview's Place order button does."""
    shown = preview(investor, **fields)
    assert shown.status_code == 200, text_of(shown)
    return investor.browser.post("/orders", data=form_of(shown, "/orders"))


def open_orders(investor: Investor) -> list[dict]:
    return investor.api.get("/v1/orders", params={"status": "open"}).json()


def balances(investor: Investor, asset: str) -> dict[str, int]:
    accounts_ = investor.api.get("/v1/ledger/accounts", params={"asset": asset}).json()
    return {a["kind"]: a["balance"] for a in accounts_}


def field_error(page: httpx.Response, field: str) -> str:
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', page.text), f"{field} is not marked invalid"
    reason = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page.text, re.DOTALL)[1]
    return " ".join(html.unescape(reason).split())


def fee(value: int) -> int:
    return value * FEE_BPS // 10_000


# The catalogue


@pytest.mark.parametrize("role", ["investor", "issuer", "compliance_officer", "operator_admin", "auditor"])
def test_every_role_reads_the_catalogue_with_each_emissions_public_terms(role, users, catalogued):
    page = users.client(role).get("/catalogue", params={"after": catalogued.asset_id - 1})

    assert page.status_code == 200, page.text
    row = re.search(rf'<tr>\s*<th scope="row"><a href="/catalogue/{catalogued.code}">.*?</tr>', page.text, re.DOTALL)[0]
    assert "Test grain receipts" in row and f"issuer {users['issuer'].login}" in row
    assert "1,000.00\xa0KZT" in row and "5,000" in row and "registered" in row and "Open" in row
    assert "<caption>" in page.text and '<th scope="col">' in page.text


def test_the_catalogue_says_when_there_are_no_more_emissions(users, catalogued):
    client = users.client("investor")

    beyond = client.get("/catalogue", params={"after": 2**31 - 1})

    assert beyond.status_code == 200
    assert "No more emissions." in text_of(beyond)
    assert 'href="/catalogue">First emissions</a>' in beyond.text


def test_an_investor_reads_an_emissions_terms_and_book_with_links_to_buy_and_sell_it_but_not_the_issuers_papers_req_20(
    users, catalogued,
):
    page = users.client("investor").get(f"/catalogue/{catalogued.code}")

    assert page.status_code == 200, page.text
    text = text_of(page)
    assert f"Registration number {catalogued.code}" in text and "Nominal 1,000.00 KZT" in text
    assert "Units outstanding 5,000" in text and "Trading Open" in text and "No trades yet." in text
    assert f'href="/orders?side=buy&amp;base={catalogued.code}#order"' in page.text
    assert f'href="/orders?side=sell&amp;base={catalogued.code}#order"' in page.text
    assert "a monetary claim on the issuer" not in text  # the application's reasons are not public terms
    assert "/v1/documents/" not in page.text and "documents are confidential" in text


def test_the_issuer_downloads_its_own_document_from_its_emissions_page_and_the_download_is_recorded_req_20(
    users, catalogued,
):
    issuer = users.client("issuer")
    page = issuer.get(f"/catalogue/{catalogued.code}")
    link = re.search(r'href="(/v1/documents/[^"]+/content)"', page.text)[1]

    download = issuer.get(link)

    assert link == f"/v1/documents/{catalogued.document_id}/content"
    assert "Prospectus of the grain receipts" in text_of(page)
    assert 'href="/orders?' not in page.text  # only investors trade
    assert (download.status_code, download.content) == (200, PDF)
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith('attachment; filename="prospectus.pdf"')
    events = users.client("auditor").get("/v1/security-events", params={
        "kind": "document.download", "actor": users["issuer"].login, "limit": 500,
    }).json()
    assert str(catalogued.document_id) in {e["subject"] for e in events}


def test_staff_see_the_issuers_documents_and_another_issuer_does_not_req_20(users, catalogued):
    staff = users.client("auditor").get(f"/catalogue/{catalogued.code}")
    other = users.client("other_issuer").get(f"/catalogue/{catalogued.code}")
    fetched = users.client("other_issuer").get(f"/v1/documents/{catalogued.document_id}/content")

    assert f'href="/v1/documents/{catalogued.document_id}/content"' in staff.text
    assert other.status_code == 200 and "/v1/documents/" not in other.text
    assert "documents are confidential" in text_of(other)
    assert fetched.status_code == 404


def test_an_emission_nobody_registered_has_no_page(buyer):
    page = buyer.browser.get("/catalogue/NO-SUCH-EMISSION")

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")


def test_the_catalogues_sell_link_fills_the_order_form_in(buyer, catalogued):
    page = buyer.browser.get("/orders", params={"side": "sell", "base": catalogued.code})

    assert page.status_code == 200
    assert '<option value="sell" selected>' in page.text
    assert re.search(rf'id="base" name="base"[^>]*value="{catalogued.code}"', page.text)
    assert re.search(r'<label for="quantity">Quantity</label>', page.text)


# Entering and placing orders


def test_an_investor_with_money_places_a_buy_order_through_preview_and_confirm_and_sees_it_open_with_its_money_held_req_38(
    buyer, emission,
):
    shown = preview(buyer, side="buy", base=emission, price="2,500.00", quantity="4")
    placed = buyer.browser.post("/orders", data=form_of(shown, "/orders"))

    held = 4 * 250_000 + fee(4 * 250_000)
    assert shown.status_code == 200, text_of(shown)
    assert "Held when placed 10,010.00 KZT" in text_of(shown)
    assert placed.status_code == 303, text_of(placed)
    [order] = open_orders(buyer)
    assert placed.headers["location"] == f"/orders#order-{order['id']}"
    assert (order["base"], order["side"], order["price"], order["quantity"]) == (emission, "buy", 250_000, 4)
    row = re.search(rf'<tr id="order-{order["id"]}">(.*?)</tr>', buyer.browser.get("/orders").text, re.DOTALL)[1]
    assert "Buy" in row and "2,500.00\xa0KZT" in row and "10,010.00\xa0KZT" in row
    assert f'action="/orders/{order["id"]}/cancel"' in row
    assert balances(buyer, "KZT") == {"available": MONEY - held, "held": held}


def test_a_preview_writes_nothing_and_shows_what_is_available(buyer, emission):
    shown = preview(buyer, side="buy", base=emission, price="100", quantity="3")

    text = text_of(shown)
    assert shown.status_code == 200
    assert "Held when placed 300.30 KZT" in text and "Available now 100,000.00 KZT" in text
    assert "Operator's fee 0.30 KZT" in text
    assert open_orders(buyer) == []
    assert balances(buyer, "KZT") == {"available": MONEY, "held": 0}


def test_confirming_twice_places_one_order(buyer, emission):
    shown = preview(buyer, side="buy", base=emission, price="10", quantity="7")
    confirmation = form_of(shown, "/orders")

    first = buyer.browser.post("/orders", data=confirmation)
    again = buyer.browser.post("/orders", data=confirmation)

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert len(open_orders(buyer)) == 1
    assert balances(buyer, "KZT")["held"] == 7_000 + fee(7_000)


def test_two_confirmations_sent_at_once_place_one_order(buyer, emission):
    shown = preview(buyer, side="buy", base=emission, price="11", quantity="3")
    confirmation = form_of(shown, "/orders")
    browsers = [httpx.Client(base_url=buyer.browser.base_url, timeout=30, headers=buyer.browser.headers) for _ in "ab"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda browser: browser.post("/orders", data=confirmation), browsers))
    for browser in browsers:
        browser.close()

    assert [a.status_code for a in answers] == [303, 303]
    assert len(open_orders(buyer)) == 1
    assert balances(buyer, "KZT")["held"] == 3_300 + fee(3_300)


def test_the_change_button_takes_the_order_back_to_its_filled_form(buyer, emission):
    shown = preview(buyer, side="buy", base=f" {emission.lower()} ", price="12.5", quantity="2", time_in_force="day")
    back = buyer.browser.get("/orders", params=form_of(shown, "/orders#order"))

    assert shown.status_code == 200
    assert '<option value="day" selected>' in back.text and '<option value="buy" selected>' in back.text
    assert re.search(r'id="price" name="price"[^>]*value="12.5"', back.text)
    assert re.search(r'id="quantity" name="quantity"[^>]*value="2"', back.text)


def test_a_sell_beyond_holdings_is_refused_beside_the_quantity_and_nothing_is_placed_req_39(seller, emission):
    page = preview(seller, side="sell", base=emission, price="50", quantity="101")

    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert field_error(page, "quantity") == f"This order holds 101 {emission}; you have 100 {emission} available."
    assert "Nothing was changed" in page.text and 'href="#quantity"' in page.text
    assert re.search(r'id="quantity" name="quantity"[^>]*value="101"', page.text)
    assert open_orders(seller) == []
    assert balances(seller, emission) == {"available": 100, "held": 0}


def test_a_confirmation_the_money_no_longer_covers_is_refused_and_places_nothing_req_38(buyer, emission):
    shown = preview(buyer, side="buy", base=emission, price="600", quantity="100")
    spent = post(buyer.api, "/v1/orders", {"base": emission, "side": "buy", "price": 50_000, "quantity": 100})

    refused = buyer.browser.post("/orders", data=form_of(shown, "/orders"))

    assert spent.status_code == 201
    assert refused.status_code == 422
    assert "This order holds 60,060.00 KZT; you have 49,950.00 KZT available." == field_error(refused, "quantity")
    assert [o["id"] for o in open_orders(buyer)] == [spent.json()["order"]["id"]]


@pytest.mark.parametrize(("field", "entered", "reason"), [
    ("price", {"price": "12,34,5"}, "Enter the price per unit in tenge, to the tiyn at most."),
    ("price", {"price": "0.001"}, "Enter the price per unit in tenge, to the tiyn at most."),
    ("quantity", {"quantity": "1.5"}, "Enter the quantity as a whole number of units."),
    ("base", {"base": "NO-SUCH-EMISSION"}, "Nothing is registered under NO-SUCH-EMISSION."),
    ("side", {"side": "short"}, "Choose whether to buy or sell."),
    ("base", {"base": "KZT", "quote": "{emission}"}, "KZT is not an emission: orders buy and sell units of an emission."),
    ("quote", {"quote": "{emission}"}, "An emission is exchanged for money or for another emission, not for itself."),
])
def test_an_unreadable_order_is_refused_beside_the_field_at_fault_with_what_was_entered(
    field, entered, reason, buyer, emission,
):
    entered = {name: text.format(emission=emission) for name, text in entered.items()}

    page = preview(buyer, **{"side": "buy", "base": emission, "price": "10", "quantity": "1", **entered})

    assert page.status_code == 422
    assert field_error(page, field) == reason
    if field != "side":
        assert re.search(rf'id="{field}" name="{field}"[^>]*value="{re.escape(entered[field])}"', page.text)
    assert open_orders(buyer) == []


def test_an_order_in_a_suspended_emission_is_refused_beside_it(buyer, emission, users):
    suspended = users.client("operator_admin").put(
        f"/v1/trading-status/{emission}", json={"suspended": True, "reason": "court order"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )

    page = preview(buyer, side="buy", base=emission, price="10", quantity="1")

    assert suspended.status_code == 200, suspended.text
    assert page.status_code == 422
    assert field_error(page, "base") == "Trading in this emission is suspended"


async def test_an_exchange_holds_units_of_the_emission_it_pays_with_and_no_fee_req_39(
    investors, emission, other_emission,
):
    investor = await investors(units={other_emission: 50})

    shown = preview(investor, side="buy", base=emission, quote=other_emission, price="3", quantity="10")
    placed = investor.browser.post("/orders", data=form_of(shown, "/orders"))

    text = text_of(shown)
    assert f"Held when placed 30 {other_emission}" in text and f"Available now 50 {other_emission}" in text
    assert "Operator's fee" not in text
    assert placed.status_code == 303, text_of(placed)
    [order] = open_orders(investor)
    assert (order["base"], order["quote"], order["price"], order["quantity"]) == (emission, other_emission, 3, 10)
    row = re.search(rf'<tr id="order-{order["id"]}">(.*?)</tr>', investor.browser.get("/orders").text, re.DOTALL)[1]
    assert f"3 {other_emission}" in row and f"30 {other_emission}" in row
    assert balances(investor, other_emission) == {"available": 20, "held": 30}


def test_cancelling_an_open_order_releases_its_hold(buyer, emission):
    place(buyer, side="buy", base=emission, price="20", quantity="5")
    [order] = open_orders(buyer)
    token = csrf_token_of(buyer.browser.get("/orders"))

    cancelled = buyer.browser.post(f"/orders/{order['id']}/cancel", data={"csrf_token": token})
    again = buyer.browser.post(f"/orders/{order['id']}/cancel", data={"csrf_token": token})

    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == f"/orders?status=cancelled#order-{order['id']}"
    assert open_orders(buyer) == []
    assert balances(buyer, "KZT") == {"available": MONEY, "held": 0}
    assert f'<tr id="order-{order["id"]}">' in buyer.browser.get("/orders", params={"status": "cancelled"}).text
    assert again.status_code == 409 and "The order is no longer open" in text_of(again)


async def test_another_investors_order_cannot_be_cancelled_it_is_not_found(buyer, investors, emission):
    place(buyer, side="buy", base=emission, price="30", quantity="1")
    [order] = open_orders(buyer)
    stranger = await investors()

    refused = stranger.browser.post(
        f"/orders/{order['id']}/cancel", data={"csrf_token": csrf_token_of(stranger.browser.get("/orders"))}
    )

    assert refused.status_code == 404 and refused.headers["content-type"].startswith("text/html")
    assert "No such order" in text_of(refused)
    assert order["id"] not in stranger.browser.get("/orders").text
    assert [o["id"] for o in open_orders(buyer)] == [order["id"]]


def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(buyer, emission):
    shown = preview(buyer, side="buy", base=emission, price="40", quantity="2")
    confirmation = {name: value for name, value in form_of(shown, "/orders").items() if name != "csrf_token"}

    forged = buyer.browser.post("/orders", data=confirmation)
    wrong = buyer.browser.post("/orders", data={**confirmation, "csrf_token": "x" * 43})

    assert [r.status_code for r in (forged, wrong)] == [403, 403]
    assert "csrf" in forged.text.lower()
    assert open_orders(buyer) == []
    assert balances(buyer, "KZT") == {"available": MONEY, "held": 0}


async def test_an_investor_without_orders_or_trades_is_told_where_they_will_appear(investors):
    newcomer = await investors()

    orders = text_of(newcomer.browser.get("/orders"))
    filled = text_of(newcomer.browser.get("/orders", params={"status": "filled"}))
    trades = text_of(newcomer.browser.get("/trades"))

    assert "You have no open orders." in orders
    assert "You have no orders with this status." in filled
    assert "You have no trades yet." in trades


# Trades


def test_a_trade_shows_up_on_trades_for_both_investors_without_the_other_side_req_38(buyer, seller, emission):
    sold = place(seller, side="sell", base=emission, price="250", quantity="10")
    bought = place(buyer, side="buy", base=emission, price="260", quantity="4")

    assert sold.status_code == 303 and sold.headers["location"].startswith("/orders#order-")
    assert bought.status_code == 303 and bought.headers["location"].startswith("/orders?status=filled#order-")
    [trade] = buyer.api.get("/v1/trades").json()
    mine, theirs = buyer.browser.get("/trades"), seller.browser.get("/trades")
    bought_row = re.search(rf'<tr id="trade-{trade["id"]}">(.*?)</tr>', mine.text, re.DOTALL)[1]
    sold_row = re.search(rf'<tr id="trade-{trade["id"]}">(.*?)</tr>', theirs.text, re.DOTALL)[1]
    for row, side in ((bought_row, "Buy"), (sold_row, "Sell")):
        assert side in row and emission in row
        assert re.findall(r'<td class="number">(.*?)</td>', row) == [
            "4", "250.00\xa0KZT", "1,000.00\xa0KZT", "1.00\xa0KZT",
        ]
    for page, other in ((mine, seller), (theirs, buyer)):
        assert str(other.party_id) not in page.text and other.login not in page.text
    assert balances(buyer, "KZT") == {"available": MONEY - 100_000 - 100, "held": 0}
    [rest] = open_orders(seller)
    row = re.search(rf'<tr id="order-{rest["id"]}">(.*?)</tr>', seller.browser.get("/orders").text, re.DOTALL)[1]
    assert f"6 {emission}" in row  # what the partly filled sell still holds


# Access


@pytest.mark.parametrize("role", ["issuer", "compliance_officer", "operator_admin", "auditor"])
@pytest.mark.parametrize(("method", "path"), [("GET", "/orders"), ("GET", "/trades"), ("POST", "/orders/preview")])
def test_only_investors_open_the_order_and_trade_pages(role, method, path, users):
    answer = users.client(role).request(method, path, data={"side": "buy"} if method == "POST" else None)

    assert (answer.status_code, problem_slug(answer)) == (403, "forbidden")


def test_an_anonymous_visitor_must_sign_in(anonymous):
    answers = [anonymous.get(path) for path in ("/catalogue", "/orders", "/trades")]

    assert [(a.status_code, problem_slug(a)) for a in answers] == [(401, "not-authenticated")] * 3


@pytest.mark.parametrize("path", ["/catalogue", "/catalogue/{code}", "/orders", "/trades"])
def test_every_page_forbids_scripts_framing_sniffing_and_caching(path, buyer, catalogued):
    page = buyer.browser.get(path.format(code=catalogued.code))

    assert page.status_code == 200
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text
