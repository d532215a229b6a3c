"""The issuer's pages over real HTTP: its emission applications with their deadlines and history, its
emissions, and the holders registry of each as the central depository receives it; another issuer's are
"not found" and no other role opens them."""

import csv
import html
import io
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from dfa.issuance.service import applications, issuers
from dfa.platform.identity.service import parties
from tests.factories import make_party
from tests.http import PROBLEM, problem_slug
from tests.identity import create_user, sign_in, signed_in_client
from tests.issuance.factories import make_application, make_emission
from tests.market import fund, onboarded_issuer
from tests.pages import BROWSER, PAGE_HEADERS, text_of

OUTSIDERS = ("investor", "compliance_officer", "operator_admin", "auditor")
PDF = b"%PDF-1.4\n% the prospectus\n"


@dataclass(frozen=True)
class Filed:
    """The signed-in issuer's application in review (with a prospectus) and another issuer's application."""

    application_id: uuid.UUID
    review_deadline: date
    document_id: uuid.UUID
    foreign_id: uuid.UUID


@dataclass(frozen=True)
class Holding:
    """The signed-in issuer's emission, of which the investor holds 100 units and another person 50."""

    registration_number: str
    investor_identifier: str
    foreign_number: str


@pytest.fixture(scope="module")
async def filed(database, settings, users) -> Filed:
    async with database.unit_of_work() as session:
        issuer_id, other_id = users["issuer"].party_id, users["other_issuer"].party_id
        for party_id in (issuer_id, other_id):
            await onboarded_issuer(session, party_id)
        today = parties.local_today(settings)
        submitted = await applications.submit(
            session, issuer_party_id=issuer_id, actor=users["issuer"].login, settings=settings,
            terms=applications.Terms(
                name="Wheat warehouse receipts 2027", dfa_kind="commodity", nominal=100_000, units=5_000,
                placement_start=today + timedelta(days=30), placement_end=today + timedelta(days=60),
                placement_price=100_000, no_underlying_reason="a monetary claim on the issuer, unsecured",
            ),
        )
        document = await issuers.upload_document(
            session, issuer_party_id=issuer_id, kind="prospectus", title="Prospectus", filename="prospectus.pdf",
            declared_type="application/pdf", content=PDF, underlying_asset_id=None, application_id=submitted.id,
            actor=users["issuer"].login, settings=settings,
        )
        accepted = await applications.accept(
            session, application_id=submitted.id, actor="admin-reviewer", settings=settings,
            note="the documents are complete",
        )
        foreign = await make_application(session, issuer=await parties.get_party(session, other_id))
    return Filed(submitted.id, accepted.deadline, document.id, foreign.id)


@pytest.fixture(scope="module")
async def holding(database, settings, users) -> Holding:
    issuer_id = users["issuer"].party_id
    async with database.unit_of_work() as session:
        emission = await make_emission(session, issuer=await onboarded_issuer(session, issuer_id))
        other = await make_party(session, name="Aliya Bekova")
        investor = await parties.get_party(session, users["investor"].party_id)
        foreign = await make_emission(session, issuer=await onboarded_issuer(session, users["other_issuer"].party_id))
    for party_id, units in ((investor.id, 100), (other.id, 50)):
        await fund(
            database, settings, party_id, units={emission.registration_number: units}, issuer_id=issuer_id,
            reference="sale",
        )
    return Holding(emission.registration_number, investor.identifier, foreign.registration_number)


@pytest.fixture
async def newcomer(server_url, database, settings):
    """A client signed in as an issuer with no application and no emission."""
    login, *_ = await create_user(database, settings, role="issuer")
    with signed_in_client(server_url, sign_in(server_url, login)) as client:
        yield client


def plain(fragment: str) -> str:
    """A piece of a page as its reader reads it."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def issuer_page(users, path: str, **params) -> httpx.Response:
    return users.client("issuer").get(path, params=params, headers=BROWSER)


# Applications


def test_the_issuer_sees_its_applications_with_status_and_the_next_deadline(users, filed):
    page = issuer_page(users, "/issuer/applications")

    assert page.status_code == 200, page.text
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    row = re.search(rf'<tr>\s*<th scope="row"><a href="/issuer/applications/{filed.application_id}">.*?</tr>',
                    page.text, re.DOTALL)[0]
    deadline = filed.review_deadline
    assert "Wheat warehouse receipts 2027" in row
    assert "in review" in row and "review" in row and f"{deadline.day} {deadline:%b} {deadline.year}" in row
    assert str(filed.foreign_id) not in page.text
    assert "<caption>" in page.text and '<th scope="col">' in page.text


def test_the_application_page_shows_terms_documents_history_deadline_and_what_comes_next(users, filed):
    page = issuer_page(users, f"/issuer/applications/{filed.application_id}")

    assert page.status_code == 200, page.text
    text = text_of(page)
    deadline = filed.review_deadline
    assert f"Due by the close of {deadline.day} {deadline:%b} {deadline.year}" in text
    assert "Waiting on review" in text and "The operator reviews the application by the close of" in text
    assert "Units 5,000" in text and "Nominal of one unit 1,000.00" in text
    assert f'href="/v1/documents/{filed.document_id}/content">prospectus.pdf</a>' in page.text
    history = re.search(r"<caption>Every step.*?</table>", page.text, re.DOTALL)[0]
    steps = plain(history)
    assert f"submitted submitted {users['issuer'].login}" in steps
    assert "accepted in review admin-reviewer the documents are complete" in steps


def test_the_document_link_of_the_application_page_downloads_the_filed_bytes(users, filed):
    download = users.client("issuer").get(f"/v1/documents/{filed.document_id}/content")

    assert (download.status_code, download.content) == (200, PDF)


def test_another_issuers_application_is_not_found(users, filed):
    page = issuer_page(users, f"/issuer/applications/{filed.foreign_id}")
    unknown = issuer_page(users, f"/issuer/applications/{uuid.uuid4()}")

    assert page.status_code == unknown.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No such emission application" in text_of(page) and "Test grain receipts" not in page.text


def test_an_issuer_without_applications_or_emissions_is_told_what_will_appear(newcomer):
    applications_page = newcomer.get("/issuer/applications", headers=BROWSER)
    emissions_page = newcomer.get("/issuer/emissions", headers=BROWSER)

    assert "You have not applied to register an emission yet." in text_of(applications_page)
    assert "You have no registered emission yet." in text_of(emissions_page)
    assert '<p class="empty">' in applications_page.text and '<p class="empty">' in emissions_page.text


# Emissions and their holders


def test_the_issuer_sees_its_emissions_with_units_placed_and_outstanding(users, holding):
    page = issuer_page(users, "/issuer/emissions")

    assert page.status_code == 200, page.text
    row = re.search(rf'<th scope="row">{holding.registration_number}</th>.*?</tr>', page.text, re.DOTALL)[0]
    assert "Test grain receipts registered 1,000 150 1,000" in plain(row)
    assert f'href="/issuer/emissions/{holding.registration_number}/holders"' in row
    assert holding.foreign_number not in page.text


def test_req35_the_holders_registry_of_an_own_emission_names_every_holder(users, holding, registry_closed_now):
    page = issuer_page(users, f"/issuer/emissions/{holding.registration_number}/holders",
                       as_of=registry_closed_now.isoformat())

    assert page.status_code == 200, page.text
    text = text_of(page)
    assert "3 holders · 1,000 units in total" in text
    assert f"{holding.investor_identifier} person yes 100 0 0 100" in text
    assert "Aliya Bekova" in text and f"issuer {users['issuer'].login}" in text


def test_the_registry_page_links_the_depository_export_which_the_session_downloads(users, holding, registry_closed_now):
    page = issuer_page(users, f"/issuer/emissions/{holding.registration_number}/holders",
                       as_of=registry_closed_now.isoformat())
    link = re.search(r'href="(/v1/emissions/[^"]+/holders-registry/export\?as_of=[^"]+)"', page.text)[1]

    export = users.client("issuer").get(link)

    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(int(row["total"]) for row in rows) == [50, 100, 850]


def test_reading_the_registry_is_recorded_like_an_export(users, holding, registry_closed_now):
    issuer_page(users, f"/issuer/emissions/{holding.registration_number}/holders",
                as_of=registry_closed_now.isoformat())

    events = users.client("auditor").get("/v1/security-events", params={
        "kind": "registry.exported", "actor": users["issuer"].login, "limit": 100,
    }).json()
    assert holding.registration_number in {event["subject"] for event in events}


def test_the_registry_pages_on_after_the_holders_already_shown(users, holding, registry_closed_now):
    page = issuer_page(users, f"/issuer/emissions/{holding.registration_number}/holders",
                       as_of=registry_closed_now.isoformat(), after=2)

    assert page.status_code == 200
    assert text_of(page).count(" yes ") == 1, "only the third holder"
    assert "First holders" in page.text


@pytest.mark.parametrize(("as_of", "reason"), [
    ("tomorrow", "The registry date has not closed yet"),
    ("2026-13-45", "Enter a date as YYYY-MM-DD."),
])
def test_a_registry_day_not_closed_or_unreadable_is_refused_beside_the_date(as_of, reason, users, holding):
    if as_of == "tomorrow":
        as_of = (datetime.now(ZoneInfo("Asia/Almaty")) + timedelta(days=1)).date().isoformat()

    page = issuer_page(users, f"/issuer/emissions/{holding.registration_number}/holders", as_of=as_of)

    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert 'aria-invalid="true"' in re.search(r'<input id="as_of"[^>]*>', page.text)[0]
    assert reason in text_of(page) and "<table>" not in page.text


def test_another_issuers_emission_has_no_holders_page(users, holding):
    page = issuer_page(users, f"/issuer/emissions/{holding.foreign_number}/holders")
    bad_date = issuer_page(users, f"/issuer/emissions/{holding.foreign_number}/holders", as_of="x")

    assert page.status_code == bad_date.status_code == 404


# Who may open them


@pytest.mark.parametrize("role", OUTSIDERS)
def test_staff_and_investors_are_turned_away_from_the_issuer_pages(role, users, filed, holding):
    paths = ["/issuer/applications", f"/issuer/applications/{filed.application_id}", "/issuer/emissions",
             f"/issuer/emissions/{holding.registration_number}/holders"]

    answers = [users.client(role).get(path) for path in paths]

    assert [(a.status_code, a.headers["content-type"]) for a in answers] == [(403, PROBLEM)] * 4
    assert {problem_slug(a) for a in answers} == {"forbidden"}
