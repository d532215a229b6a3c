"""Emission applications and registered emissions over HTTP: an issuer applies and follows its deadlines,
the operator's admins take each step, a refusal is a problem that changes nothing, and no issuer sees
another's applications (REQ-20: "not found")."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from dfa.issuance.models import Issuer
from dfa.issuance.service import applications
from dfa.platform.calendar.service import load_calendar
from dfa.platform.database import Database
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from tests.http import post, problem_slug
from tests.identity import Users, create_user, sign_in, signed_in_client
from tests.issuance.factories import make_application
from tests.issuance.test_registration import certify, make_underlying_asset

APPLICATIONS = "/v1/emission-applications"


def _ok(response: httpx.Response, status_code: int = 200) -> dict:
    assert response.status_code == status_code, response.text
    return response.json()


@dataclass
class Applicant:
    """An onboarded issuer of its own (no other test's applications in its listings) and its signed-in user."""

    party_id: uuid.UUID
    client: httpx.Client


@pytest.fixture(scope="module")
async def applicant(database: Database, settings: Settings, server_url: str):
    login, _, party_id, _ = await create_user(database, settings, role="issuer")
    async with database.unit_of_work() as session:
        now = datetime.now(UTC)
        session.add(Issuer(
            party_id=party_id, legal_address="Astana, Mangilik El 55", contact_email="ir@example.kz",
            custodian_consent_at=now, custodian_consent_scope="state, quantity and value of underlying assets",
            personal_data_consent_at=now, onboarded_by="test",
        ))
    client = signed_in_client(server_url, sign_in(server_url, login))
    yield Applicant(party_id, client)
    client.close()


def terms(settings: Settings, **changes) -> dict:
    start = parties.local_today(settings) + timedelta(days=7)
    body = {
        "name": "Wheat receipts 2027", "dfa_kind": "commodity", "nominal": 100_000, "units": 1_000,
        "placement_start": start.isoformat(), "placement_end": (start + timedelta(days=30)).isoformat(),
        "placement_price": 98_000, "maturity_date": (start + timedelta(days=400)).isoformat(),
        "transfer_restrictions": "qualified investors only",
        "no_underlying_reason": "a monetary claim on the issuer, unsecured",
    }
    return {**body, **changes}


def apply(applicant: Applicant, settings: Settings, **changes) -> dict:
    return _ok(post(applicant.client, APPLICATIONS, terms(settings, **changes)), 201)


def step(client: httpx.Client, application: dict, name: str, json=None) -> httpx.Response:
    return post(client, f"{APPLICATIONS}/{application['id']}/{name}", json)


def steps(application: dict) -> list[str]:
    return [event["step"] for event in application["history"]]


async def business_days_from_now(database: Database, settings: Settings, n: int):
    async with database.read() as session:
        calendar = await load_calendar(session, settings=settings)
    return calendar.add_business_days(calendar.business_date_of(datetime.now(UTC)), n)


# --- the whole way ---------------------------------------------------------------------------------------


async def test_an_issuer_applies_is_accepted_and_its_emission_registered_req_21_req_23_req_24(
    applicant: Applicant, users: Users, settings: Settings, database: Database
):
    admin = users.client("operator_admin")

    submitted = apply(applicant, settings)
    assert (submitted["status"], submitted["deadline_kind"], submitted["overdue"]) == (
        "submitted", "completeness_check", False
    )
    assert submitted["deadline"] == (await business_days_from_now(database, settings, 2)).isoformat()
    assert submitted["redemption_price"] == 100_000  # the nominal, by default
    accepted = _ok(step(admin, submitted, "acceptance", {"note": "charter and prospectus on file"}))
    assert (accepted["status"], accepted["deadline_kind"]) == ("in_review", "review")
    assert accepted["deadline"] == (await business_days_from_now(database, settings, 15)).isoformat()

    registered = _ok(step(admin, submitted, "registration"))

    number = registered["registration_number"]
    assert (registered["status"], registered["deadline"], registered["deadline_kind"]) == ("registered", None, None)
    assert number.startswith(f"{settings.operator_nbk_registration_number}-") and len(number) <= 50
    assert steps(registered) == ["submitted", "accepted", "registered"]
    assert registered["history"][1]["reason"] == "charter and prospectus on file"
    assert "security test protocol" in registered["history"][2]["reason"]
    assert _ok(applicant.client.get(f"{APPLICATIONS}/{submitted['id']}")) == registered

    public = _ok(users.client("investor").get(f"/v1/emissions/{number}"))
    assert public == {
        "asset_id": public["asset_id"], "registration_number": number, "name": "Wheat receipts 2027",
        "dfa_kind": "commodity", "issuer_name": public["issuer_name"], "status": "registered", "nominal": 100_000,
        "units_registered": 1_000, "units_outstanding": 1_000, "units_cancelled": 0, "units_on_trading_platforms": 0,
        "placement_start": submitted["placement_start"], "placement_end": submitted["placement_end"],
        "placement_price": 98_000, "min_placement_units": None, "maturity_date": submitted["maturity_date"],
        "redemption_price": 100_000, "early_redemption_allowed": False,
        "transfer_restrictions": "qualified investors only", "has_underlying_asset": False,
        "registered_at": public["registered_at"],
    }
    assert public["issuer_name"].startswith("issuer ")
    listed = _ok(users.client("investor").get("/v1/emissions", params={"after": public["asset_id"] - 1, "limit": 1}))
    assert listed == [public]


async def test_a_preliminary_refusal_is_objected_to_and_the_hearing_awaits_its_date_req_06(
    applicant: Applicant, users: Users, settings: Settings, database: Database
):
    admin = users.client("operator_admin")
    application = apply(applicant, settings)
    _ok(step(admin, application, "acceptance"))
    objections_due = await business_days_from_now(database, settings, 2)

    too_early = step(admin, application, "preliminary-refusal", {"reasons": "no custodian terms",
                                                                 "hearing_date": objections_due.isoformat()})
    assert (too_early.status_code, problem_slug(too_early)) == (422, "emission-application-hearing-date-invalid")
    hearing_date = too_early.json()["context"]["earliest"]
    assert steps(_ok(admin.get(f"{APPLICATIONS}/{application['id']}"))) == ["submitted", "accepted"]

    refused = _ok(step(admin, application, "preliminary-refusal", {"reasons": "no custodian terms",
                                                                   "hearing_date": hearing_date}))
    assert (refused["status"], refused["deadline_kind"], refused["deadline"], refused["hearing_date"]) == (
        "preliminary_refusal", "objections", objections_due.isoformat(), hearing_date
    )
    objected = _ok(step(applicant.client, application, "objections", {"text": "the terms are in annex 4"}))
    assert (objected["objections"], objected["deadline_kind"], objected["deadline"]) == (
        "the terms are in annex 4", "hearing", hearing_date
    )
    again = step(applicant.client, application, "objections", {"text": "and annex 5"})
    assert (again.status_code, problem_slug(again)) == (409, "emission-application-objections-recorded")
    early = step(admin, application, "hearing", {"outcome": "refuse", "reason": "heard too soon"})
    assert (early.status_code, problem_slug(early)) == (409, "emission-application-hearing-not-due")

    withdrawn = _ok(step(applicant.client, application, "withdrawal", {"reason": "new terms coming"}))
    assert (withdrawn["status"], steps(withdrawn)) == (
        "withdrawn", ["submitted", "accepted", "preliminary_refusal", "objections", "withdrawn"]
    )


def test_each_step_from_a_wrong_status_is_a_conflict_that_changes_nothing_req_21(
    applicant: Applicant, users: Users, settings: Settings
):
    admin = users.client("operator_admin")
    application = apply(applicant, settings)
    refusals = [
        step(admin, application, "registration"),
        step(admin, application, "preliminary-refusal", {"reasons": "x", "hearing_date": "2030-01-10"}),
        step(applicant.client, application, "objections", {"text": "x"}),
        step(admin, application, "hearing", {"outcome": "register", "reason": "x"}),
    ]
    assert [(r.status_code, problem_slug(r)) for r in refusals] == [(409, "emission-application-step-not-allowed")] * 4
    assert refusals[0].json()["context"] == {"step": "registration", "status": "submitted"}

    returned = _ok(step(admin, application, "return", {"reason": "the prospectus is missing"}))
    assert (returned["status"], returned["deadline"], returned["decided_at"] is not None) == ("returned", None, True)
    later = [step(admin, application, "acceptance"), step(applicant.client, application, "withdrawal")]
    assert [(r.status_code, problem_slug(r)) for r in later] == [(409, "emission-application-step-not-allowed")] * 2
    shown = _ok(applicant.client.get(f"{APPLICATIONS}/{application['id']}"))
    assert (shown["status"], steps(shown)) == ("returned", ["submitted", "returned"])
    assert shown["history"][1]["reason"] == "the prospectus is missing"


# --- who sees and does what ------------------------------------------------------------------------------


def test_another_issuer_finds_no_such_application_and_staff_read_everything_req_20(
    applicant: Applicant, users: Users, settings: Settings
):
    application = apply(applicant, settings)
    path = f"{APPLICATIONS}/{application['id']}"
    stranger = users.client("other_issuer")

    assert problem_slug(stranger.get(path)) == "emission-application-not-found"
    assert stranger.get(path).status_code == 404
    assert problem_slug(step(stranger, application, "withdrawal")) == "emission-application-not-found"
    assert application["id"] not in {a["id"] for a in _ok(stranger.get(APPLICATIONS))}
    assert users.client("investor").get(APPLICATIONS).status_code == 403
    for reader in ("compliance_officer", "auditor", "operator_admin"):
        assert _ok(users.client(reader).get(path))["id"] == application["id"]
    assert step(users.client("auditor"), application, "acceptance").status_code == 403
    assert step(applicant.client, application, "acceptance").status_code == 403
    assert step(users.client("operator_admin"), application, "withdrawal").status_code == 403
    assert _ok(applicant.client.get(path))["status"] == "submitted"


async def test_an_issuer_not_onboarded_is_refused_clearly(database, server_url: str, settings: Settings):
    login, _, _, _ = await create_user(database, settings, role="issuer")
    with signed_in_client(server_url, sign_in(server_url, login)) as newcomer:
        refused = post(newcomer, APPLICATIONS, terms(settings))
    assert (refused.status_code, problem_slug(refused)) == (422, "applicant-not-onboarded")
    assert "not onboarded" in refused.json()["detail"]


def test_invalid_terms_are_refused_with_the_fields_named_and_nothing_recorded_req_25_req_26(
    applicant: Applicant, settings: Settings
):
    before = len(_ok(applicant.client.get(APPLICATIONS, params={"limit": 500})))
    yesterday = (parties.local_today(settings) - timedelta(days=1)).isoformat()
    cases = {
        "validation-error": [terms(settings, units=0), terms(settings, coverage_ratio="1.00001"),
                             terms(settings, nominal=2**63), terms(settings, dfa_kind="tulips")],
        "emission-application-terms-invalid": [
            terms(settings, placement_start=yesterday),
            terms(settings, units=2**40, nominal=2**30),
            terms(settings, underlying_asset_id=str(uuid.uuid4())),  # no ratio, and a reason besides
            terms(settings, no_underlying_reason=None),
        ],
        "emission-application-underlying-asset-unknown": [
            terms(settings, underlying_asset_id=str(uuid.uuid4()), coverage_ratio="1.00", no_underlying_reason=None),
        ],
    }
    for expected, bodies in cases.items():
        for body in bodies:
            refused = post(applicant.client, APPLICATIONS, body)
            assert (refused.status_code, problem_slug(refused)) == (422, expected), body
    field_errors = post(applicant.client, APPLICATIONS, terms(settings, placement_start=yesterday)).json()
    assert [e["field"] for e in field_errors["context"]["errors"]] == ["placement_start"]
    assert len(_ok(applicant.client.get(APPLICATIONS, params={"limit": 500}))) == before


async def test_overdue_applications_are_shown_and_filtered(
    applicant: Applicant, users: Users, settings: Settings, database: Database
):
    async with database.unit_of_work() as session:
        issuer = await parties.get_party(session, applicant.party_id)
        late = await make_application(session, issuer=issuer, status="in_review")
        late.deadline = parties.local_today(settings) - timedelta(days=10)
    fresh = apply(applicant, settings)

    for reader in (applicant.client, users.client("auditor")):
        overdue = _ok(reader.get(APPLICATIONS, params={"overdue": "true", "limit": 500}))
        ids = {a["id"] for a in overdue}
        assert str(late.id) in ids and fresh["id"] not in ids
        assert all(a["overdue"] for a in overdue)
    in_review = _ok(applicant.client.get(APPLICATIONS, params={"status": "in_review", "limit": 500}))
    assert str(late.id) in {a["id"] for a in in_review} and all(a["status"] == "in_review" for a in in_review)
    shown = _ok(applicant.client.get(f"{APPLICATIONS}/{late.id}"))
    assert (shown["overdue"], shown["deadline_kind"]) == (True, "review")


# --- the registration gate over HTTP ------------------------------------------------------------------------


async def test_a_refused_registration_changes_nothing_and_succeeds_once_certified_req_22_req_28(
    applicant: Applicant, users: Users, settings: Settings, database: Database
):
    admin = users.client("operator_admin")
    async with database.unit_of_work() as session:
        asset = await make_underlying_asset(session, issuer_party_id=applicant.party_id)
    application = apply(applicant, settings, underlying_asset_id=str(asset.id), coverage_ratio="1.10",
                        no_underlying_reason=None)
    _ok(step(admin, application, "acceptance"))

    refused = step(admin, application, "registration")

    assert (refused.status_code, problem_slug(refused)) == (422, "registration-underlying-not-certified")
    shown = _ok(admin.get(f"{APPLICATIONS}/{application['id']}"))
    assert (shown["status"], steps(shown), shown["registration_number"]) == ("in_review", ["submitted", "accepted"], None)
    async with database.unit_of_work() as session:
        await certify(session, await applications.get_application(session, uuid.UUID(application["id"])))
    registered = _ok(step(admin, application, "registration"))
    assert registered["status"] == "registered" and registered["coverage_ratio"] == "1.1000"
    public = _ok(users.client("investor").get(f"/v1/emissions/{registered['registration_number']}"))
    assert public["has_underlying_asset"] is True and "coverage_ratio" not in public
    assert users.client("investor").get("/v1/emissions/KZDFA0001-1999-000001").status_code == 404



def test_paging_emissions_past_the_largest_asset_id_is_refused_as_invalid_not_a_server_error(users: Users):
    """An emission's asset id is a 32-bit integer: a larger `after` is a 422 field error, never a 500."""
    investor = users.client("investor")

    too_large = investor.get("/v1/emissions", params={"after": 2**31})
    largest = investor.get("/v1/emissions", params={"after": 2**31 - 1})

    assert (too_large.status_code, problem_slug(too_large)) == (422, "validation-error")
    assert too_large.json()["errors"][0]["field"] == "query.after"
    assert (largest.status_code, largest.json()) == (200, [])


def test_more_units_than_the_ledger_can_issue_at_once_are_refused_on_application_not_at_registration(
    applicant: Applicant, settings: Settings
):
    """Registration issues every unit in one ledger transfer of at most 10^17: an application for more was
    accepted and then answered a server error at registration; it is now refused with the field named."""
    refused = post(applicant.client, APPLICATIONS, terms(settings, units=10**17 + 1, nominal=1, placement_price=1))
    largest = post(applicant.client, APPLICATIONS, terms(settings, units=10**17, nominal=1, placement_price=1))

    assert (refused.status_code, problem_slug(refused)) == (422, "emission-application-terms-invalid")
    assert [e["field"] for e in refused.json()["context"]["errors"]] == ["units"]
    assert largest.status_code == 201, largest.text
