"""The compliance pages over real HTTP: reports, breaches and coverage history for staff, and the forms with
which compliance officers acknowledge breaches and sign reports off (post/redirect/get, CSRF-protected)."""

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from dfa.platform.identity.service.parties import local_today
from dfa.reconciliation.service import reports, runs
from tests.http import PROBLEM, problem_slug
from tests.issuance.custodians import kept, make_underlying_asset
from tests.issuance.factories import make_emission, make_issuer
from tests.pages import PAGE_HEADERS, csrf_token_of, text_of

READERS = ("compliance_officer", "operator_admin", "auditor")
OUTSIDERS = ("investor", "issuer")
ISSUER_NAME = "ТОО «Астық Қоймасы»"


@dataclass(frozen=True)
class Shortfalls:
    """A report that found three emissions of one issuer short of cover, and the breaches it opened."""

    report_id: int
    content_sha256: str
    asset_codes: list[str]
    breach_ids: list[int]  # one per emission, in the order of `asset_codes`


@pytest.fixture(scope="module")
async def shortfalls(app, database, settings) -> Shortfalls:
    """Three emissions whose underlying assets are worth 100 000 KZT against the 125 000 KZT their
    1 000 units × 100 KZT × 1.25 require, and today's report, found by the run with the platform's custodian."""
    async with database.unit_of_work() as session:
        issuer = await make_issuer(session, name=ISSUER_NAME)
        codes = []
        for _ in range(3):
            asset = await make_underlying_asset(
                session, issuer=issuer, reference=kept(app.state.custodian, market_value=10_000_000)
            )
            emission = await make_emission(
                session, issuer=issuer, units=1_000, nominal=10_000, underlying_asset_id=asset.id,
                coverage_ratio=Decimal("1.25"),
            )
            codes.append(emission.registration_number)
    result = await runs.reconcile_day(
        database, day=local_today(settings), trigger="command", requested_by="test", force=True,
        counterparties=runs.Counterparties(custodian=app.state.custodian, bank=app.state.bank, mirror=None),
        keys=app.state.keys, settings=settings,
    )
    breach_of = {entry["asset_code"]: entry["id"] for entry in reports.document_of(result.report)["breaches"]
                 if entry["kind"] == "shortfall" and entry["new"]}
    return Shortfalls(result.report.id, result.report.content_sha256.hex(), codes, [breach_of[c] for c in codes])


@pytest.fixture
def officer_form(server_url, users) -> Iterator[httpx.Client]:
    """A compliance officer's browser: the session cookie only; the CSRF token comes from the page's form."""
    cookie = users.client("compliance_officer").headers["Cookie"]
    with httpx.Client(base_url=server_url, timeout=30, headers={"Cookie": cookie}) as client:
        yield client



def breach_row(page: httpx.Response, breach_id: int) -> str:
    return re.search(rf'<tr id="breach-{breach_id}">(.*?)</tr>', page.text, re.DOTALL)[1]


def breach_of(users, breach_id: int) -> dict:
    listed = users.client("auditor").get("/v1/reconciliation/breaches", params={"status": "open", "limit": 500})
    return next(b for b in listed.json() if b["id"] == breach_id)


# Reading


@pytest.mark.parametrize("role", READERS)
def test_staff_see_the_reports_newest_first_with_their_breaches_and_sign_off(role, users, shortfalls):
    page = users.client(role).get("/compliance/reports")

    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert f'href="/compliance/reports/{shortfalls.report_id}"' in page.text
    ids = [int(i) for i in re.findall(r'href="/compliance/reports/(\d+)"', page.text)]
    assert ids == sorted(ids, reverse=True)
    assert "<caption>" in page.text and '<th scope="col">' in page.text


def test_the_report_list_pages_back_with_before(users, shortfalls):
    client = users.client("auditor")

    older = client.get("/compliance/reports", params={"before": shortfalls.report_id})
    oldest = client.get("/compliance/reports", params={"before": 1})

    assert older.status_code == 200
    assert f'href="/compliance/reports/{shortfalls.report_id}"' not in older.text
    assert "No older reports." in oldest.text
    assert 'href="/compliance/reports">Newest reports</a>' in oldest.text


def test_the_report_page_shows_the_signature_the_shortfalls_and_the_exports(users, shortfalls):
    page = users.client("auditor").get(f"/compliance/reports/{shortfalls.report_id}")

    assert page.status_code == 200, page.text
    text = text_of(page)
    assert shortfalls.content_sha256 in text
    assert ISSUER_NAME in text
    for code in shortfalls.asset_codes:
        assert f'href="/compliance/emissions/{code}/coverage"' in page.text
    assert "shortfall 1,000 1.2500 125,000.00 100,000.00 25,000.00" in text
    for export in ("export?format=csv", "export?format=pdf", "document"):
        assert f'href="/v1/reconciliation/reports/{shortfalls.report_id}/{export}"' in page.text


def test_the_export_links_of_the_report_page_answer_with_csv_pdf_and_the_signed_document(users, shortfalls):
    client = users.client("compliance_officer")
    page = client.get(f"/compliance/reports/{shortfalls.report_id}")

    links = re.findall(r'href="(/v1/reconciliation/reports/\d+/[^"]+)"', page.text)
    answers = {link: client.get(html.unescape(link)) for link in links}

    assert [a.status_code for a in answers.values()] == [200, 200, 200]
    assert [a.headers["content-type"].split(";")[0] for a in answers.values()] == [
        "text/csv", "application/pdf", "application/json",
    ]


def test_auditors_and_admins_read_the_report_without_any_form(users, shortfalls):
    for role in ("auditor", "operator_admin"):
        page = users.client(role).get(f"/compliance/reports/{shortfalls.report_id}")

        assert page.status_code == 200
        assert 'action="/compliance/' not in page.text
        assert "Not acknowledged" in breach_row(page, shortfalls.breach_ids[0])


def test_a_compliance_officer_gets_a_form_per_breach_and_one_to_sign_off_carrying_the_csrf_token(users, shortfalls):
    officer = users.client("compliance_officer")

    page = officer.get(f"/compliance/reports/{shortfalls.report_id}")

    for breach_id in shortfalls.breach_ids:
        assert f'action="/compliance/breaches/{breach_id}/acknowledge"' in breach_row(page, breach_id)
    assert f'action="/compliance/reports/{shortfalls.report_id}/sign-off"' in page.text
    assert set(re.findall(r'name="csrf_token" value="([^"]+)"', page.text)) == {officer.headers["X-CSRF-Token"]}
    assert re.search(r'<label for="sign-off-comment">', page.text) and 'id="sign-off-comment"' in page.text


def test_the_open_breaches_page_names_kind_emission_issuer_and_the_reports_that_saw_them(users, shortfalls):
    page = users.client("auditor").get("/compliance/breaches")

    assert page.status_code == 200, page.text
    row = breach_row(page, shortfalls.breach_ids[1])
    assert shortfalls.asset_codes[1] in row and ISSUER_NAME in html.unescape(row) and "shortfall" in row
    assert f'href="/compliance/reports/{shortfalls.report_id}"' in row
    assert "Not acknowledged" in row


def test_the_coverage_page_charts_the_history_and_marks_the_shortfall_day_REQ_30(users, shortfalls, settings):
    code = shortfalls.asset_codes[0]

    page = users.client("compliance_officer").get(f"/compliance/emissions/{code}/coverage")

    assert page.status_code == 200, page.text
    chart = re.search(r"<svg .*?</svg>", page.text, re.DOTALL)[0]
    assert "<title" in chart and 'class="day-shortfall"' in chart and "<script" not in chart
    assert f"{local_today(settings)} version" in text_of(page)
    assert "shortfall 1,000 125,000.00 100,000.00" in text_of(page)


def test_an_unknown_emission_has_no_coverage_page(users):
    page = users.client("auditor").get("/compliance/emissions/NO-SUCH-EMISSION/coverage")

    assert page.status_code == 404
    assert page.headers["content-security-policy"] == PAGE_HEADERS["content-security-policy"]


@pytest.mark.parametrize("path", [
    "/compliance/reports", "/compliance/reports/{report}", "/compliance/breaches", "/compliance/emissions/{code}/coverage",
])
def test_every_page_forbids_scripts_framing_sniffing_and_caching(path, users, shortfalls):
    page = users.client("auditor").get(path.format(report=shortfalls.report_id, code=shortfalls.asset_codes[0]))

    assert page.status_code == 200
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text


def test_the_stylesheet_is_served_for_long_caching_under_an_address_that_changes_with_it(users, anonymous):
    page = users.client("auditor").get("/compliance/reports")
    address = re.search(r'<link rel="stylesheet" href="([^"]+)">', page.text)[1]

    stylesheet = anonymous.get(html.unescape(address))

    assert re.fullmatch(r"/static/cabinet\.css\?v=[0-9a-f]{12}", html.unescape(address))
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert "max-age=31536000" in stylesheet.headers["cache-control"]


@pytest.mark.parametrize("role", OUTSIDERS)
@pytest.mark.parametrize("path", ["/compliance/reports", "/compliance/breaches"])
def test_investors_and_issuers_are_turned_away(role, path, users):
    page = users.client(role).get(path)

    assert (page.status_code, problem_slug(page)) == (403, "forbidden")


def test_a_turned_away_visit_is_recorded_in_the_security_event_log(users):
    investor = users["investor"]

    page = users.client("investor").get("/compliance/breaches")

    events = users.client("auditor").get(
        "/v1/security-events", params={"kind": "access.denied", "actor": investor.login, "limit": 500}
    ).json()
    recorded = [e for e in events if e["request_id"] == page.headers["x-request-id"]]
    assert [e["subject"] for e in recorded] == ["GET /compliance/breaches"]


def test_an_anonymous_visitor_must_sign_in(anonymous):
    page = anonymous.get("/compliance/reports")

    assert (page.status_code, problem_slug(page)) == (401, "not-authenticated")


# Acting


def test_acknowledging_a_breach_from_the_report_sends_the_officer_back_to_it(officer_form, users, shortfalls):
    breach_id, report_page = shortfalls.breach_ids[0], f"/compliance/reports/{shortfalls.report_id}"
    token = csrf_token_of(officer_form.get(report_page))

    answer = officer_form.post(f"/compliance/breaches/{breach_id}/acknowledge", data={
        "csrf_token": token, "comment": "Issuer asked to top up the warehouse receipts.",
        "from_report": shortfalls.report_id,
    })

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{report_page}#breach-{breach_id}"
    row = breach_row(officer_form.get(answer.headers["location"]), breach_id)
    assert f"Acknowledged by {users['compliance_officer'].login}" in row and "<form" not in row
    acknowledged = breach_of(users, breach_id)
    assert acknowledged["acknowledgement"] == "Issuer asked to top up the warehouse receipts."
    assert acknowledged["status"] == "open"  # only a run that finds the asset covered again clears it


def test_a_refused_acknowledgement_shows_the_reason_next_to_the_field_and_changes_nothing(officer_form, users, shortfalls):
    breach_id = shortfalls.breach_ids[1]
    token = csrf_token_of(officer_form.get("/compliance/breaches"))
    acknowledge = f"/compliance/breaches/{breach_id}/acknowledge"

    blank = officer_form.post(acknowledge, data={"csrf_token": token, "comment": "   "})
    accepted = officer_form.post(acknowledge, data={"csrf_token": token, "comment": "Seen; custodian called."})
    again = officer_form.post(acknowledge, data={"csrf_token": token, "comment": "Seen twice."})

    assert blank.status_code == 422 and blank.headers["content-type"].startswith("text/html")
    row = breach_row(blank, breach_id)
    assert 'aria-invalid="true"' in row and "a comment has 1 to 2,000 characters" in row
    assert (accepted.status_code, accepted.headers["location"]) == (303, f"/compliance/breaches#breach-{breach_id}")
    assert again.status_code == 409
    assert f"was acknowledged by {users['compliance_officer'].login}" in breach_row(again, breach_id)
    assert breach_of(users, breach_id)["acknowledgement"] == "Seen; custodian called."


def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(officer_form, users, shortfalls):
    breach_id = shortfalls.breach_ids[2]

    forged = officer_form.post(f"/compliance/breaches/{breach_id}/acknowledge", data={"comment": "from elsewhere"})
    wrong = officer_form.post(f"/compliance/breaches/{breach_id}/acknowledge",
                              data={"csrf_token": "x" * 43, "comment": "from elsewhere"})

    assert [(r.status_code, problem_slug(r)) for r in (forged, wrong)] == [(403, "csrf-token-invalid")] * 2
    assert breach_of(users, breach_id)["acknowledged_by"] is None


@pytest.mark.parametrize("role", ["auditor", "operator_admin"])
def test_only_compliance_officers_may_acknowledge_or_sign_off(role, users, shortfalls):
    client = users.client(role)

    acknowledged = client.post(f"/compliance/breaches/{shortfalls.breach_ids[2]}/acknowledge", data={"comment": "x"})
    signed = client.post(f"/compliance/reports/{shortfalls.report_id}/sign-off", data={"comment": "x"})

    assert [(r.status_code, r.headers["content-type"]) for r in (acknowledged, signed)] == [(403, PROBLEM)] * 2


def test_a_report_is_signed_off_once_with_a_comment(officer_form, users, shortfalls):
    report_page = f"/compliance/reports/{shortfalls.report_id}"
    token = csrf_token_of(officer_form.get(report_page))
    sign_off = f"{report_page}/sign-off"

    blank = officer_form.post(sign_off, data={"csrf_token": token, "comment": ""})
    accepted = officer_form.post(sign_off, data={"csrf_token": token, "comment": "Reviewed; NBK notified of 3 shortfalls."})
    again = officer_form.post(sign_off, data={"csrf_token": token, "comment": "Once more."})

    assert blank.status_code == 422 and 'aria-invalid="true"' in blank.text
    assert (accepted.status_code, accepted.headers["location"]) == (303, f"{report_page}#sign-off")
    assert again.status_code == 409 and "Nothing was changed" in again.text
    page = text_of(officer_form.get(report_page))
    assert f"Signed off by {users['compliance_officer'].login}" in page
    assert "Reviewed; NBK notified of 3 shortfalls." in page and "Once more." not in page
    assert f"by {users['compliance_officer'].login}" in text_of(officer_form.get("/compliance/reports"))


def test_signing_off_or_acknowledging_what_does_not_exist_is_not_found(users):
    officer = users.client("compliance_officer")

    report = officer.post("/compliance/reports/9000000000/sign-off", data={"comment": "Reviewed."})
    breach = officer.post("/compliance/breaches/9000000000/acknowledge", data={"comment": "Seen."})

    assert [(r.status_code, problem_slug(r)) for r in (report, breach)] == [
        (404, "reconciliation-report-not-found"), (404, "reconciliation-breach-not-found"),
    ]
