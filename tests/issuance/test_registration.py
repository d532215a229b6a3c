"""The registration gate (REQ-22) and registration: each condition refused by its own named error with
nothing changed, so the application waits for a cure and a fresh check; the evidence that satisfied
each condition recorded; one registration per application and a number never reused (REQ-23), also
under concurrent transactions and after a rollback."""

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from dfa.issuance import errors
from dfa.issuance.models import Application, ApplicationEvent, Certification, Emission, IssuerBlock, UnderlyingAsset
from dfa.issuance.service import applications, underlying
from dfa.platform.audit.models import SecurityEvent
from dfa.platform.calendar.service import BusinessCalendar
from dfa.platform.database import Database
from dfa.platform.identity.errors import PartyNotIdentified
from dfa.platform.identity.service import parties
from tests.factories import SETTINGS
from tests.issuance.factories import make_application, make_issuer

UNITS, NOMINAL = 1_000, 100_000  # an issue volume of 100,000,000 tiyn


async def make_underlying_asset(session, *, issuer_party_id: uuid.UUID) -> UnderlyingAsset:
    asset = UnderlyingAsset(
        id=uuid.uuid4(), issuer_party_id=issuer_party_id, kind="goods", description="wheat, class 3, 500 t",
        custodian="kazakh-grain-warehouse", custodian_reference=f"WR-{uuid.uuid4().hex[:10]}", quantity=500,
        unit="t", created_by="test",
    )
    session.add(asset)
    await session.flush()
    return asset


async def certify(
    session, application: Application, *, exists: bool = True, legal_status: str = "clear", encumbered: bool = False,
    market_value: int | None = None, passed: bool | None = None, findings: list[str] | None = None,
    obtained_at: datetime | None = None,
) -> Certification:
    """A certification of the application's underlying asset, as the custodian's statement gave it."""
    required = underlying.required_value(application)
    market_value = required if market_value is None else market_value
    healthy = exists and legal_status == "clear" and not encumbered and market_value >= required
    certification = Certification(
        id=uuid.uuid4(), underlying_asset_id=application.underlying_asset_id, application_id=application.id,
        exists=exists, legal_status=legal_status, encumbered=encumbered,
        encumbrances="pledged to Halyk Bank" if encumbered else None, quantity=500, market_value=market_value,
        valued_on=date.today(), required_value=required, source="kazakh-grain-warehouse statement 2026/118",
        obtained_at=obtained_at or datetime.now(UTC), officer="a.nurlanova",
        passed=healthy if passed is None else passed, findings=findings if findings is not None else [],
    )
    session.add(certification)
    await session.flush()
    return certification


async def backed_application(session, *, ratio: Decimal = Decimal("1.20")) -> Application:
    issuer = await make_issuer(session)
    asset = await make_underlying_asset(session, issuer_party_id=issuer.id)
    return await make_application(
        session, issuer=issuer, units=UNITS, nominal=NOMINAL, underlying_asset_id=asset.id, coverage_ratio=ratio
    )


async def unbacked_application(session) -> Application:
    return await make_application(session, issuer=await make_issuer(session), units=UNITS, nominal=NOMINAL)


async def register(session, application: Application, settings=SETTINGS) -> Emission:
    return await applications.register(session, application_id=application.id, actor="admin", settings=settings)


async def assert_unchanged(session, application: Application) -> None:
    """Still in review, with no step recorded and no emission: ready for a cure and a fresh check."""
    application = await applications.get_application(session, application.id)
    steps = await session.execute(select(func.count()).where(ApplicationEvent.application_id == application.id))
    emissions = await session.execute(select(func.count()).where(Emission.application_id == application.id))
    assert (application.status, steps.scalar(), emissions.scalar()) == ("in_review", 0, 0)


# --- registration and its evidence -----------------------------------------------------------------------


async def test_registration_records_the_evidence_of_every_condition_req_22(session):
    application = await backed_application(session)
    certification = await certify(session, application)

    emission = await register(session, application)

    application = await applications.get_application(session, application.id)
    assert (application.status, application.deadline) == ("registered", None)
    assert emission.registration_number.startswith(f"{SETTINGS.operator_nbk_registration_number}-")
    event = (await session.execute(
        select(ApplicationEvent).where(ApplicationEvent.application_id == application.id)
    )).scalar_one()
    assert (event.step, event.status) == ("registered", "registered")
    assert emission.registration_number in event.reason and str(certification.id) in event.reason
    audit = (await session.execute(
        select(SecurityEvent).where(SecurityEvent.kind == "emission_application.registered",
                                    SecurityEvent.subject == str(application.id))
    )).scalar_one()
    assert set(audit.details["evidence"]) == {
        "underlying asset", "issuer blocks", "security test protocol", "issuer identified"
    }
    assert str(certification.id) in audit.details["evidence"]["underlying asset"]
    assert "2026-01-05" in audit.details["evidence"]["security test protocol"]


async def test_an_emission_without_an_underlying_asset_records_why_there_is_none_req_26(session):
    application = await unbacked_application(session)
    await register(session, application)
    audit = (await session.execute(
        select(SecurityEvent).where(SecurityEvent.kind == "emission_application.registered",
                                    SecurityEvent.subject == str(application.id))
    )).scalar_one()
    assert audit.details["evidence"]["underlying asset"] == f"none (REQ-26): {application.no_underlying_reason}"


# --- the underlying asset ----------------------------------------------------------------------------------


async def test_registration_is_refused_while_the_underlying_asset_is_not_certified_req_28(session):
    application = await backed_application(session)
    with pytest.raises(errors.UnderlyingNotCertified):
        await register(session, application)
    await assert_unchanged(session, application)


async def test_a_certification_for_another_application_does_not_count_req_28(session):
    application = await backed_application(session)
    other = await make_application(
        session, issuer=await parties.get_party(session, application.issuer_party_id), units=UNITS, nominal=NOMINAL,
        underlying_asset_id=application.underlying_asset_id, coverage_ratio=Decimal("1.00"),
    )
    await certify(session, other)
    with pytest.raises(errors.UnderlyingNotCertified):
        await register(session, application)
    await assert_unchanged(session, application)


async def test_a_certification_older_than_the_limit_is_not_relied_on_req_28(session):
    application = await backed_application(session)
    await certify(session, application, obtained_at=datetime.now(UTC) - timedelta(days=SETTINGS.certification_max_age_days, minutes=1))
    with pytest.raises(errors.CertificationOutdated):
        await register(session, application)
    await assert_unchanged(session, application)


async def test_registration_is_refused_while_the_value_is_short_then_cured_by_a_fresh_check_req_29(session):
    application = await backed_application(session, ratio=Decimal("1.20"))
    required = 120_000_000  # the issue volume of 100,000,000 tiyn at the ratio 1.20
    assert underlying.required_value(application) == required
    await certify(session, application, market_value=required - 1, obtained_at=datetime.now(UTC) - timedelta(hours=1))

    with pytest.raises(errors.UnderlyingValueShort) as refused:
        await register(session, application)

    assert (refused.value.context["market_value"], refused.value.context["required_value"]) == (required - 1, required)
    assert "short of" in refused.value.detail
    await assert_unchanged(session, application)
    cured = await certify(session, application, market_value=required)
    emission = await register(session, application)
    assert emission.units == UNITS
    event = (await session.execute(
        select(ApplicationEvent).where(ApplicationEvent.application_id == application.id)
    )).scalar_one()
    assert str(cured.id) in event.reason


@pytest.mark.parametrize(
    ("finding", "refusal"),
    [
        ({"exists": False}, errors.UnderlyingAssetDoesNotExist),
        ({"legal_status": "disputed"}, errors.UnderlyingLegalStatusNotClear),
        ({"legal_status": "unclear"}, errors.UnderlyingLegalStatusNotClear),
        ({"encumbered": True}, errors.UnderlyingEncumbered),
        ({"passed": False, "findings": ["the custodian's statement is unsigned"]}, errors.CertificationNotPassed),
    ],
)
async def test_each_failed_finding_of_the_certification_is_named_req_22_req_28(session, finding, refusal):
    application = await backed_application(session)
    await certify(session, application, **finding)
    with pytest.raises(refusal) as refused:
        await register(session, application)
    assert refused.value.context["certification_id"]
    await assert_unchanged(session, application)


# --- the issuer ----------------------------------------------------------------------------------------------


async def test_an_open_block_on_the_issuer_stops_registration_and_is_named_req_31(session):
    application = await unbacked_application(session)
    block = IssuerBlock(
        id=uuid.uuid4(), issuer_party_id=application.issuer_party_id, source="reconciliation",
        reference="reconciliation 2026-11-20", reason="the underlying value of KZDFA0001-2026-000007 is short by 5%",
        opened_by="reconciliation",
    )
    session.add(block)
    await session.flush()

    with pytest.raises(errors.IssuerBlocked) as refused:
        await register(session, application)
    assert "short by 5%" in refused.value.detail and refused.value.context["block_id"] == str(block.id)
    await assert_unchanged(session, application)

    block.lifted_at, block.lifted_by, block.lift_reason = datetime.now(UTC), "reconciliation", "a clean run"
    await session.flush()
    assert (await register(session, application)).units == UNITS


async def _reconciliation_block_on_another_issuer(session) -> IssuerBlock:
    block = IssuerBlock(
        id=uuid.uuid4(), issuer_party_id=(await make_issuer(session)).id, source="reconciliation",
        reference=f"reconciliation {uuid.uuid4()}", reason="the underlying asset is encumbered", opened_by="reconciliation",
    )
    session.add(block)
    await session.flush()
    return block


async def test_a_reconciliation_breach_blocks_every_issuer_when_the_scope_is_all_req_31(session):
    block = await _reconciliation_block_on_another_issuer(session)
    application = await unbacked_application(session)

    with pytest.raises(errors.IssuerBlocked) as refused:
        await register(session, application, settings=SETTINGS.model_copy(update={"reconciliation_block_scope": "all"}))
    assert refused.value.detail.startswith("every issuer's new emissions are blocked")
    assert refused.value.context["block_id"] == str(block.id)
    await assert_unchanged(session, application)


async def test_another_issuers_breach_does_not_block_when_the_scope_is_the_issuer_req_31(session):
    await _reconciliation_block_on_another_issuer(session)
    application = await unbacked_application(session)

    assert (await register(session, application)).units == UNITS


async def test_a_certification_without_a_market_value_does_not_register_req_28(session):
    application = await backed_application(session)
    certification = await certify(session, application)
    certification.market_value = certification.valued_on = None
    certification.passed, certification.findings = False, ["the custodian states no market value"]
    await session.flush()

    with pytest.raises(errors.CertificationNotPassed, match="states no market value"):
        await register(session, application)
    await assert_unchanged(session, application)


async def test_an_issuer_no_longer_identified_is_not_registered_req_14(session):
    application = await unbacked_application(session)
    await parties.decide_kyc(
        session, party_id=application.issuer_party_id, status="suspended", level="none", method="staff_decision",
        reason="the charter expired", actor="compliance", settings=SETTINGS,
    )
    with pytest.raises(PartyNotIdentified):
        await register(session, application)
    await assert_unchanged(session, application)


# --- the security test protocol (REQ-60) ------------------------------------------------------------------


async def test_registration_waits_for_the_security_protocol_to_be_recorded_req_60(session):
    application = await unbacked_application(session)
    with pytest.raises(errors.SecurityProtocolNotRecorded):
        await register(session, application, SETTINGS.model_copy(update={"security_protocol_submitted_on": None}))
    await assert_unchanged(session, application)


async def test_registration_waits_ten_business_days_after_the_security_protocol_req_60(session):
    application = await unbacked_application(session)
    # Submitted on Friday 5 March 2027; 8 and 15 March and the Nauryz days (21 to 24 March) are
    # holidays, so the tenth business day after it is Friday 26 March.
    settings = SETTINGS.model_copy(update={"security_protocol_submitted_on": date(2027, 3, 5)})

    with pytest.raises(errors.SecurityProtocolTooRecent) as refused:
        await applications.register(
            session, application_id=application.id, actor="admin", settings=settings,
            now=datetime(2027, 3, 19, 12, tzinfo=ZoneInfo("Asia/Almaty")),
        )
    assert refused.value.context["earliest"] == "2027-03-26"
    await assert_unchanged(session, application)


def test_the_tenth_business_day_after_the_protocol_is_the_first_allowed_req_60():
    calendar = BusinessCalendar(timezone="Asia/Almaty", closes_at=time(18))
    assert calendar.business_days_between(date(2027, 3, 5), date(2027, 3, 26)) == 10
    assert calendar.business_days_between(date(2027, 3, 5), date(2027, 3, 25)) == 9


# --- one registration, never a reused number (REQ-23) ----------------------------------------------------


async def _committed_application(database: Database) -> Application:
    async with database.unit_of_work() as session:
        return await unbacked_application(session)


async def _register_in_own_transaction(database: Database, application: Application) -> Emission:
    async with database.unit_of_work() as session:
        return await register(session, application)


def _serial(emission: Emission) -> int:
    return int(emission.registration_number.rsplit("-", 1)[1])


async def test_two_concurrent_registrations_of_one_application_register_it_once_req_23(database: Database):
    application = await _committed_application(database)

    async with database.unit_of_work() as session:
        first = await register(session, application)
        second = asyncio.create_task(_register_in_own_transaction(database, application))
        await asyncio.sleep(0.5)
        assert not second.done(), "the second registration must wait for the first's lock on the application"
    with pytest.raises(errors.ApplicationStepNotAllowed):
        await second

    async with database.read() as session:
        numbers = (await session.execute(
            select(Emission.registration_number).where(Emission.application_id == application.id)
        )).scalars().all()
    assert numbers == [first.registration_number]


async def test_concurrent_registrations_of_different_applications_get_distinct_numbers_req_23(database: Database):
    pending = [await _committed_application(database) for _ in range(4)]

    registered = await asyncio.gather(*(_register_in_own_transaction(database, a) for a in pending))

    numbers = {emission.registration_number for emission in registered}
    assert len(numbers) == 4 and all(len(number) <= 50 for number in numbers)
    async with database.read() as session:
        statuses = (await session.execute(
            select(Application.status).where(Application.id.in_([a.id for a in pending]))
        )).scalars().all()
    assert statuses == ["registered"] * 4


class _RolledBack(Exception):
    pass


async def test_a_registration_that_rolls_back_burns_its_number_req_23(database: Database):
    application = await _committed_application(database)

    with pytest.raises(_RolledBack):
        async with database.unit_of_work() as session:
            burnt = await register(session, application)
            raise _RolledBack
    kept = await _register_in_own_transaction(database, application)  # the application waited, unchanged

    assert kept.registration_number != burnt.registration_number
    assert _serial(kept) > _serial(burnt)
    async with database.read() as session:
        reused = await session.execute(
            select(func.count()).where(Emission.registration_number == burnt.registration_number)
        )
    assert reused.scalar() == 0
