"""Emission applications as a service: the terms checked (REQ-25, REQ-26), each review step from its
status only, deadlines counted in the business days of the calendar's data (weekends and holidays of
Kazakhstan skipped), the issuer heard before a final refusal (REQ-06), and overdue deadlines flagged once.

The clock is given to the services: March 2027 has International Women's Day (Monday 8), Constitution
Day (Monday 15) and the Nauryz holidays (21 to 24 March) in the calendar's data.
"""

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from dfa.issuance import errors
from dfa.issuance.models import Application, ApplicationEvent
from dfa.issuance.service import applications
from dfa.platform.models import OutboxMessage
from tests.factories import SETTINGS, make_party
from tests.issuance.factories import make_issuer
from tests.issuance.test_registration import make_underlying_asset

ALMATY = ZoneInfo("Asia/Almaty")
FRIDAY_2027_03_05 = datetime(2027, 3, 5, 10, 0, tzinfo=ALMATY)


def almaty(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ALMATY)


def make_terms(**changes) -> applications.Terms:
    """Valid terms of an emission without an underlying asset, placed in April 2027."""
    terms = {
        "name": "Grain receipts 2027", "dfa_kind": "commodity", "nominal": 100_000, "units": 1_000,
        "placement_start": date(2027, 4, 1), "placement_end": date(2027, 4, 30), "placement_price": 100_000,
        "maturity_date": date(2028, 4, 30), "no_underlying_reason": "a monetary claim on the issuer, unsecured",
    }
    return applications.Terms(**{**terms, **changes})


async def submitted(session, *, now: datetime = FRIDAY_2027_03_05, issuer=None, **changes) -> Application:
    issuer = issuer or await make_issuer(session)
    return await applications.submit(
        session, issuer_party_id=issuer.id, terms=make_terms(**changes), actor="issuer-user", settings=SETTINGS,
        now=now,
    )


async def in_review(session) -> Application:
    """Accepted on Wednesday 17 March 2027."""
    application = await submitted(session)
    return await applications.accept(
        session, application_id=application.id, actor="admin", settings=SETTINGS, now=almaty(date(2027, 3, 17))
    )


async def preliminarily_refused(session, *, hearing_date: date = date(2027, 3, 29)) -> Application:
    """Refused preliminarily on Friday 19 March 2027: objections are due by the close of Friday 26 March
    (the Nauryz holidays skipped), and the hearing is on Monday 29 March."""
    application = await in_review(session)
    return await applications.refuse_preliminarily(
        session, application_id=application.id, reasons="the prospectus omits the custodian's terms",
        hearing_date=hearing_date, actor="admin", settings=SETTINGS, now=almaty(date(2027, 3, 19)),
    )


async def history(session, application: Application) -> list[tuple[str, str]]:
    events = await session.execute(
        select(ApplicationEvent.step, ApplicationEvent.status)
        .where(ApplicationEvent.application_id == application.id)
        .order_by(ApplicationEvent.id)
    )
    return [tuple(row) for row in events]


async def view(session, application: Application, *, now: datetime) -> applications.ApplicationView:
    (shown,) = await applications.views(session, [application], settings=SETTINGS, now=now)
    return shown


async def reloaded(session, application: Application) -> Application:
    return await applications.get_application(session, application.id)


# --- the terms -------------------------------------------------------------------------------------------


async def test_an_application_is_submitted_with_its_completeness_check_due_in_two_business_days_req_21(session):
    application = await submitted(session)

    assert (application.status, application.deadline) == ("submitted", date(2027, 3, 10))  # the weekend and 8 March skipped
    assert await history(session, application) == [("submitted", "submitted")]
    shown = await view(session, application, now=FRIDAY_2027_03_05)
    assert (shown.deadline, shown.deadline_kind, shown.overdue) == (date(2027, 3, 10), "completeness_check", False)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (almaty(date(2027, 3, 6)), date(2027, 3, 11)),  # a Saturday counts as Tuesday 9 (Monday 8 is a holiday)
        (almaty(date(2027, 3, 5), 18, 0), date(2027, 3, 11)),  # after Friday's close: also Tuesday 9
        (almaty(date(2027, 3, 5), 17, 59), date(2027, 3, 10)),  # before it: Friday itself
    ],
)
async def test_what_arrives_after_hours_or_off_days_counts_from_the_next_business_day_req_21(session, received, due):
    application = await submitted(session, now=received)
    assert application.deadline == due


async def test_the_review_deadline_is_fifteen_business_days_skipping_the_nauryz_holidays_req_21(session):
    application = await in_review(session)  # accepted on Wednesday 17 March 2027

    assert (application.status, application.deadline) == ("in_review", date(2027, 4, 12))
    shown = await view(session, application, now=almaty(date(2027, 3, 17)))
    assert (shown.deadline_kind, shown.overdue) == ("review", False)
    assert await history(session, application) == [("submitted", "submitted"), ("accepted", "in_review")]


async def test_an_issuer_not_onboarded_cannot_apply(session):
    company = await make_party(session, kind="legal_entity", name="Not Onboarded LLP")
    with pytest.raises(errors.ApplicantNotOnboarded):
        await applications.submit(
            session, issuer_party_id=company.id, terms=make_terms(), actor="x", settings=SETTINGS, now=FRIDAY_2027_03_05
        )
    assert (await session.execute(select(func.count()).where(Application.issuer_party_id == company.id))).scalar() == 0


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"units": 0}, {"units"}),
        ({"nominal": 2**40, "units": 2**30}, {"nominal"}),
        ({"placement_start": date(2027, 3, 4)}, {"placement_start"}),  # the day before submission
        ({"placement_end": date(2027, 3, 31)}, {"placement_end"}),
        ({"maturity_date": date(2027, 4, 30)}, {"maturity_date"}),
        ({"min_placement_units": 1_001}, {"min_placement_units"}),
        ({"redemption_price": 0}, {"redemption_price"}),
        ({"dfa_kind": "tulips"}, {"dfa_kind"}),
        ({"no_underlying_reason": None}, {"no_underlying_reason"}),
        ({"no_underlying_reason": "  "}, {"no_underlying_reason"}),
        ({"coverage_ratio": Decimal("1.00")}, {"coverage_ratio"}),
    ],
)
def test_incoherent_terms_are_refused_naming_each_wrong_term_req_25(changes, fields):
    with pytest.raises(errors.ApplicationTermsInvalid) as refused:
        applications.check_terms(make_terms(**changes), today=date(2027, 3, 5))
    assert {problem["field"] for problem in refused.value.context["errors"]} == fields


@pytest.mark.parametrize(
    ("ratio", "valid"),
    [(Decimal("1.00"), True), (Decimal("0.5"), True), (Decimal("1.00005"), False), (Decimal(0), False),
     (None, False), (Decimal(10000), False), (Decimal("NaN"), False)],
)
def test_an_underlying_asset_comes_with_a_positive_coverage_ratio_req_26(ratio, valid):
    terms = make_terms(underlying_asset_id=uuid.uuid4(), coverage_ratio=ratio, no_underlying_reason=None)
    if valid:
        applications.check_terms(terms, today=date(2027, 3, 5))
    else:
        with pytest.raises(errors.ApplicationTermsInvalid):
            applications.check_terms(terms, today=date(2027, 3, 5))


async def test_an_underlying_asset_of_another_issuer_is_unknown_to_the_applicant_req_20(session):
    other = await make_issuer(session, name="Other Issuer LLP")
    foreign = await make_underlying_asset(session, issuer_party_id=other.id)
    applicant = await make_issuer(session)
    with pytest.raises(errors.ApplicationUnderlyingAssetUnknown):
        await submitted(
            session, issuer=applicant, underlying_asset_id=foreign.id, coverage_ratio=Decimal("1.00"),
            no_underlying_reason=None,
        )
    mine = await make_underlying_asset(session, issuer_party_id=applicant.id)
    application = await submitted(
        session, issuer=applicant, underlying_asset_id=mine.id, coverage_ratio=Decimal("1.25"), no_underlying_reason=None,
    )
    assert (application.underlying_asset_id, application.coverage_ratio) == (mine.id, Decimal("1.25"))


# --- preliminary refusal, objections, hearing -----------------------------------------------------------------


async def test_a_preliminary_refusal_gives_two_business_days_to_object_and_a_later_hearing_req_06(session):
    application = await preliminarily_refused(session)

    assert (application.status, application.deadline, application.hearing_date) == (
        "preliminary_refusal", date(2027, 3, 26), date(2027, 3, 29)
    )
    before = await view(session, application, now=almaty(date(2027, 3, 26), 17, 59))
    after = await view(session, application, now=almaty(date(2027, 3, 26), 18, 0))
    assert (before.deadline, before.deadline_kind, before.overdue) == (date(2027, 3, 26), "objections", False)
    assert (after.deadline, after.deadline_kind, after.overdue) == (date(2027, 3, 29), "hearing", False)


@pytest.mark.parametrize("hearing_date", [date(2027, 3, 26), date(2027, 3, 27), date(2027, 3, 25)])
async def test_the_hearing_must_be_a_business_day_after_the_objections_deadline_req_06(session, hearing_date):
    application = await in_review(session)
    with pytest.raises(errors.HearingDateInvalid) as refused:
        await applications.refuse_preliminarily(
            session, application_id=application.id, reasons="grounds", hearing_date=hearing_date, actor="admin",
            settings=SETTINGS, now=almaty(date(2027, 3, 19)),
        )
    assert refused.value.context["earliest"] == "2027-03-29"
    application = await reloaded(session, application)
    assert (application.status, application.hearing_date) == ("in_review", None)
    assert [step for step, _ in await history(session, application)] == ["submitted", "accepted"]


async def test_objections_are_recorded_once_until_the_close_of_their_deadline_req_06(session):
    application = await preliminarily_refused(session)

    objected = await applications.record_objections(
        session, application_id=application.id, issuer_party_id=application.issuer_party_id,
        text="the custodian's terms are in annex 4", actor="issuer-user", settings=SETTINGS,
        now=almaty(date(2027, 3, 26), 17, 59),
    )
    assert (objected.objections, objected.deadline) == ("the custodian's terms are in annex 4", date(2027, 3, 29))
    shown = await view(session, objected, now=almaty(date(2027, 3, 26), 17, 59))
    assert (shown.deadline_kind, shown.deadline) == ("hearing", date(2027, 3, 29))
    with pytest.raises(errors.ObjectionsAlreadyRecorded):
        await applications.record_objections(
            session, application_id=application.id, issuer_party_id=application.issuer_party_id, text="more",
            actor="issuer-user", settings=SETTINGS, now=almaty(date(2027, 3, 26), 12),
        )
    assert (await reloaded(session, application)).objections == "the custodian's terms are in annex 4"


async def test_objections_after_the_close_of_their_deadline_are_refused_req_06(session):
    application = await preliminarily_refused(session)

    with pytest.raises(errors.ObjectionsTooLate):
        await applications.record_objections(
            session, application_id=application.id, issuer_party_id=application.issuer_party_id, text="late",
            actor="issuer-user", settings=SETTINGS, now=almaty(date(2027, 3, 26), 18, 0),
        )
    application = await reloaded(session, application)
    assert (application.objections, application.deadline) == (None, date(2027, 3, 26))
    assert [step for step, _ in await history(session, application)][-1] == "preliminary_refusal"


async def test_another_issuer_cannot_object_for_the_applicant_req_20(session):
    application = await preliminarily_refused(session)
    stranger = await make_issuer(session, name="Stranger LLP")
    with pytest.raises(errors.ApplicationNotFound):
        await applications.record_objections(
            session, application_id=application.id, issuer_party_id=stranger.id, text="x", actor="stranger",
            settings=SETTINGS, now=almaty(date(2027, 3, 22)),
        )


async def test_the_hearing_is_not_held_before_its_date_req_06(session):
    application = await preliminarily_refused(session)
    with pytest.raises(errors.HearingNotYetDue):
        await applications.hold_hearing(
            session, application_id=application.id, outcome="refuse", reason="no cure", actor="admin",
            settings=SETTINGS, now=almaty(date(2027, 3, 26)),
        )
    assert (await reloaded(session, application)).status == "preliminary_refusal"


async def test_a_final_refusal_comes_only_after_the_issuer_is_heard_req_06(session):
    application = await in_review(session)
    with pytest.raises(errors.ApplicationStepNotAllowed):
        await applications.hold_hearing(
            session, application_id=application.id, outcome="refuse", reason="no grounds heard", actor="admin",
            settings=SETTINGS, now=almaty(date(2027, 3, 29)),
        )
    assert (await reloaded(session, application)).status == "in_review"

    refused_one = await preliminarily_refused(session)
    refused = await applications.hold_hearing(
        session, application_id=refused_one.id, outcome="refuse", reason="the custodian's terms are still missing",
        actor="admin", settings=SETTINGS, now=almaty(date(2027, 3, 29), 11),
    )
    assert (refused.status, refused.deadline, refused.decided_at) == ("refused", None, almaty(date(2027, 3, 29), 11))
    assert await history(session, refused) == [
        ("submitted", "submitted"), ("accepted", "in_review"), ("preliminary_refusal", "preliminary_refusal"),
        ("hearing", "refused"), ("refused", "refused"),
    ]
    shown = await view(session, refused, now=almaty(date(2027, 5, 3)))
    assert (shown.deadline, shown.deadline_kind, shown.overdue) == (None, None, False)


async def test_a_hearing_may_resume_the_review_with_a_fresh_fifteen_business_days_req_06(session):
    application = await preliminarily_refused(session)
    resumed = await applications.hold_hearing(
        session, application_id=application.id, outcome="resume_review", reason="the objections hold",
        actor="admin", settings=SETTINGS, now=almaty(date(2027, 3, 29)),
    )
    assert (resumed.status, resumed.deadline) == ("in_review", date(2027, 4, 19))
    assert (await history(session, resumed))[-1] == ("hearing", "in_review")


async def test_a_hearing_may_register_the_emission_through_the_registration_gate_req_22(session):
    application = await preliminarily_refused(session)
    no_protocol = SETTINGS.model_copy(update={"security_protocol_submitted_on": None})
    with pytest.raises(errors.SecurityProtocolNotRecorded):
        await applications.hold_hearing(
            session, application_id=application.id, outcome="register", reason="the objections hold",
            actor="admin", settings=no_protocol, now=almaty(date(2027, 3, 29)),
        )
    assert (await reloaded(session, application)).status == "preliminary_refusal"
    assert [step for step, _ in await history(session, application)][-1] == "preliminary_refusal"

    registered = await applications.hold_hearing(
        session, application_id=application.id, outcome="register", reason="the objections hold", actor="admin",
        settings=SETTINGS, now=almaty(date(2027, 3, 29)),
    )
    assert (registered.status, registered.deadline) == ("registered", None)
    assert (await history(session, registered))[-2:] == [("hearing", "registered"), ("registered", "registered")]
    (shown,) = await applications.views(session, [registered], settings=SETTINGS)
    assert shown.registration_number.startswith(SETTINGS.operator_nbk_registration_number)


# --- steps from the wrong status --------------------------------------------------------------------------


async def _take(session, step: str, application: Application, *, now: datetime):
    issuer = application.issuer_party_id
    steps = {
        "acceptance": lambda: applications.accept(
            session, application_id=application.id, actor="admin", settings=SETTINGS, now=now),
        "return": lambda: applications.return_application(
            session, application_id=application.id, reason="incomplete", actor="admin", now=now),
        "preliminary refusal": lambda: applications.refuse_preliminarily(
            session, application_id=application.id, reasons="grounds", hearing_date=date(2027, 6, 1), actor="admin",
            settings=SETTINGS, now=now),
        "objections": lambda: applications.record_objections(
            session, application_id=application.id, issuer_party_id=issuer, text="no", actor="issuer", settings=SETTINGS,
            now=now),
        "hearing": lambda: applications.hold_hearing(
            session, application_id=application.id, outcome="resume_review", reason="heard", actor="admin",
            settings=SETTINGS, now=now),
        "withdrawal": lambda: applications.withdraw(
            session, application_id=application.id, issuer_party_id=issuer, actor="issuer", now=now),
        "registration": lambda: applications.register(
            session, application_id=application.id, actor="admin", settings=SETTINGS, now=now),
    }
    return await steps[step]()


ALLOWED_FROM = {
    "acceptance": {"submitted"},
    "return": {"submitted"},
    "preliminary refusal": {"in_review"},
    "objections": {"preliminary_refusal"},
    "hearing": {"preliminary_refusal"},
    "withdrawal": {"submitted", "in_review", "preliminary_refusal"},
    "registration": {"in_review"},
}


async def _in_status(session, status: str) -> Application:
    application = await submitted(session)
    now = almaty(date(2027, 3, 17))
    if status == "submitted":
        return application
    if status in ("returned", "withdrawn"):
        return await _take(session, "return" if status == "returned" else "withdrawal", application, now=now)
    await _take(session, "acceptance", application, now=now)
    if status == "in_review":
        return application
    return await applications.refuse_preliminarily(
        session, application_id=application.id, reasons="grounds", hearing_date=date(2027, 3, 29), actor="admin",
        settings=SETTINGS, now=almaty(date(2027, 3, 19)),
    )


@pytest.mark.parametrize("status", ["submitted", "in_review", "preliminary_refusal", "returned", "withdrawn"])
async def test_every_step_is_refused_from_a_status_it_does_not_follow_and_changes_nothing_req_21(session, status):
    application = await _in_status(session, status)
    before = await history(session, application)
    for step, allowed in ALLOWED_FROM.items():
        if status in allowed:
            continue
        with pytest.raises(errors.ApplicationStepNotAllowed) as refused:
            await _take(session, step, application, now=almaty(date(2027, 3, 22)))
        assert refused.value.context == {"step": step, "status": status}
    assert (await reloaded(session, application)).status == status
    assert await history(session, application) == before


async def test_the_issuer_withdraws_an_open_application(session):
    application = await _in_status(session, "preliminary_refusal")
    withdrawn = await applications.withdraw(
        session, application_id=application.id, issuer_party_id=application.issuer_party_id, actor="issuer",
        reason="we will apply with new terms", now=almaty(date(2027, 3, 22)),
    )
    assert (withdrawn.status, withdrawn.deadline) == ("withdrawn", None)
    assert (await history(session, withdrawn))[-1] == ("withdrawn", "withdrawn")


# --- overdue deadlines ------------------------------------------------------------------------------------


async def _notifications(session, application: Application) -> list[dict]:
    messages = await session.execute(
        select(OutboxMessage.payload).where(
            OutboxMessage.topic == "notifications",
            OutboxMessage.payload["application_id"].astext == str(application.id),
        )
    )
    return list(messages.scalars())


async def test_an_overdue_application_is_flagged_to_the_operator_once(session):
    application = await submitted(session)  # completeness check due by the close of Wednesday 10 March 2027

    await applications.flag_overdue(session, settings=SETTINGS, now=almaty(date(2027, 3, 10), 17, 59))
    assert (await reloaded(session, application)).overdue_flagged_at is None
    assert (await view(session, application, now=almaty(date(2027, 3, 10), 17, 59))).overdue is False

    late = almaty(date(2027, 3, 10), 18, 0)
    assert await applications.flag_overdue(session, settings=SETTINGS, now=late) >= 1
    await applications.flag_overdue(session, settings=SETTINGS, now=late + timedelta(days=3))

    application = await reloaded(session, application)
    assert application.overdue_flagged_at == late
    assert (await view(session, application, now=late)).overdue is True
    assert await history(session, application) == [("submitted", "submitted"), ("overdue", "submitted")]
    assert await _notifications(session, application) == [{
        "audience": ["operator_admin"], "kind": "application-overdue", "application_id": str(application.id),
        "issuer_party_id": str(application.issuer_party_id), "status": "submitted", "deadline": "2027-03-10",
        "deadline_kind": "completeness_check",
    }]
    overdue = await applications.list_applications(
        session, issuer_party_id=application.issuer_party_id, status=None, overdue_only=True, before=None, limit=10,
        settings=SETTINGS, now=late,
    )
    assert [a.id for a in overdue] == [application.id]


async def test_a_new_deadline_can_be_missed_again_and_is_flagged_again(session):
    application = await submitted(session)
    await applications.flag_overdue(session, settings=SETTINGS, now=almaty(date(2027, 3, 11)))
    await applications.accept(session, application_id=application.id, actor="admin", settings=SETTINGS,
                              now=almaty(date(2027, 3, 11)))  # review due 7 April 2027
    assert (await reloaded(session, application)).overdue_flagged_at is None

    await applications.flag_overdue(session, settings=SETTINGS, now=almaty(date(2027, 4, 7), 17))
    await applications.flag_overdue(session, settings=SETTINGS, now=almaty(date(2027, 4, 8)))
    assert [step for step, _ in await history(session, application)] == ["submitted", "overdue", "accepted", "overdue"]
    assert [n["deadline_kind"] for n in await _notifications(session, application)] == ["completeness_check", "review"]


async def test_a_missed_hearing_is_flagged_not_the_issuers_unused_objections_window(session):
    application = await preliminarily_refused(session)  # objections due 26 March, hearing on 29 March
    await applications.flag_overdue(session, settings=SETTINGS, now=almaty(date(2027, 3, 29), 12))
    assert (await reloaded(session, application)).overdue_flagged_at is None

    await applications.flag_overdue(session, settings=SETTINGS, now=almaty(date(2027, 3, 30)))
    assert [n["deadline_kind"] for n in await _notifications(session, application)] == ["hearing"]
