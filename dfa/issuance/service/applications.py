"""Emission applications: the issuer's terms (REQ-25, REQ-26), their review with deadlines in business
days (REQ-21, modelled on the National Bank's own steps of REQ-05 and REQ-06), the registration gate
(REQ-22, REQ-28, REQ-29, REQ-31, REQ-60) and registration; and the public terms of registered emissions.

An application moves

    submitted --(completeness check: 2 business days)--> in_review | returned
    in_review --(review: 15 business days)--> preliminary_refusal | registered
    preliminary_refusal --(objections within 2 business days, then the hearing)--> in_review | refused | registered
    any open status --(the issuer)--> withdrawn

and every step is an `ApplicationEvent` and an audit record. A final refusal only ever follows a
preliminary refusal and its hearing: the issuer is heard first. `deadline` holds the day the step the
application waits on is due (at that business day's close, Asia/Almaty); a preliminary refusal waits on
the issuer's objections until they are in or their deadline has closed, then on the hearing.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import APPLICATION_OPEN_STATUSES, DFA_KINDS, Application, ApplicationEvent, Emission
from dfa.issuance.repository import applications as repository
from dfa.issuance.service import emissions, issuers, suspensions, underlying
from dfa.ledger import service as ledger
from dfa.platform import service as outbox
from dfa.platform.access import Role
from dfa.platform.audit import service as audit
from dfa.platform.calendar.service import BusinessCalendar, load_calendar
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from dfa.platform.types import BIGINT_MAX

COMPLETENESS_CHECK_BUSINESS_DAYS = 2
REVIEW_BUSINESS_DAYS = 15
OBJECTIONS_BUSINESS_DAYS = 2
SECURITY_PROTOCOL_BUSINESS_DAYS = 10  # REQ-60
COVERAGE_RATIO_MAX = Decimal("9999.9999")  # what the column holds: 8 digits, 4 of them decimals
COVERAGE_RATIO_QUANTUM = Decimal("0.0001")
OVERDUE_BATCH_SIZE = 500
SYSTEM = "system"

HearingOutcome = Literal["resume_review", "refuse", "register"]
DEADLINE_KIND_OF_STATUS = {"submitted": "completeness_check", "in_review": "review"}


def _now() -> datetime:
    return datetime.now(UTC)


def _local_date(instant: datetime, settings: Settings) -> date:
    return instant.astimezone(ZoneInfo(settings.timezone)).date()


# --- terms ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """What an issuer applies to register: amounts in tiyn per unit, quantities in whole units, and
    either an underlying asset of the issuer with the coverage ratio its value must keep to the issue
    volume, or the reason the emission has none (REQ-26)."""

    name: str
    dfa_kind: str
    nominal: int
    units: int
    placement_start: date
    placement_end: date
    placement_price: int
    min_placement_units: int | None = None
    maturity_date: date | None = None
    redemption_price: int | None = None  # the nominal when None
    early_redemption_allowed: bool = False
    transfer_restrictions: str | None = None
    underlying_asset_id: uuid.UUID | None = None
    coverage_ratio: Decimal | None = None
    no_underlying_reason: str | None = None


def _fits_bigint(units: int, per_unit: int | Decimal) -> bool:
    return units * per_unit <= BIGINT_MAX


def _ratio_problem(ratio: Decimal | None) -> str | None:
    if ratio is None:
        return "required with an underlying asset: the ratio its value must keep to the issue volume, e.g. 1.00"
    if not ratio.is_finite() or not 0 < ratio <= COVERAGE_RATIO_MAX:
        return f"must be above 0 and at most {COVERAGE_RATIO_MAX}"
    if ratio != ratio.quantize(COVERAGE_RATIO_QUANTUM):
        return "at most 4 decimal places"
    return None


def _term_problems(terms: Terms, *, today: date) -> Iterator[tuple[str, str]]:
    if not terms.name.strip():
        yield "name", "must not be blank"
    if terms.dfa_kind not in DFA_KINDS:
        yield "dfa_kind", f"must be one of {', '.join(DFA_KINDS)}"
    for field in ("nominal", "units", "placement_price"):
        if not 0 < getattr(terms, field) <= BIGINT_MAX:
            yield field, "must be a whole number from 1 to 2^63-1"
    if terms.redemption_price is not None and not 0 < terms.redemption_price <= BIGINT_MAX:
        yield "redemption_price", "must be a whole number from 1 to 2^63-1"
    if terms.units > ledger.MAX_AMOUNT:
        # Registration issues every unit in one ledger transfer, and the ledger moves at most MAX_AMOUNT at once.
        yield "units", f"must be at most {ledger.MAX_AMOUNT}"
    if terms.units > 0:
        for field in ("nominal", "placement_price", "redemption_price"):
            per_unit = getattr(terms, field)
            if per_unit is not None and not _fits_bigint(terms.units, per_unit):
                yield field, f"units × {field} must be at most 2^63-1 tiyn"
    if terms.min_placement_units is not None and not 1 <= terms.min_placement_units <= terms.units:
        yield "min_placement_units", "must be from 1 to the units applied for"
    if terms.placement_start < today:
        yield "placement_start", f"must not be in the past (today is {today.isoformat()})"
    if terms.placement_end < terms.placement_start:
        yield "placement_end", "must not be before placement_start"
    if terms.maturity_date is not None and terms.maturity_date <= terms.placement_end:
        yield "maturity_date", "must be after placement_end"
    yield from _underlying_problems(terms)


def _underlying_problems(terms: Terms) -> Iterator[tuple[str, str]]:
    if terms.underlying_asset_id is None:
        if terms.coverage_ratio is not None:
            yield "coverage_ratio", "only with an underlying asset"
        if not (terms.no_underlying_reason or "").strip():
            yield "no_underlying_reason", "give an underlying asset or the reason the emission has none (REQ-26)"
        return
    if terms.no_underlying_reason is not None:
        yield "no_underlying_reason", "only when the emission has no underlying asset"
    ratio_problem = _ratio_problem(terms.coverage_ratio)
    if ratio_problem is not None:
        yield "coverage_ratio", ratio_problem
    elif not _fits_bigint(terms.units * terms.nominal, terms.coverage_ratio):
        yield "coverage_ratio", "the value it requires (units × nominal × ratio) must be at most 2^63-1 tiyn"


def check_terms(terms: Terms, *, today: date) -> None:
    """Raises ApplicationTermsInvalid listing every term that is wrong (`errors` in its context)."""
    problems = [{"field": field, "message": message} for field, message in _term_problems(terms, today=today)]
    if problems:
        raise errors.ApplicationTermsInvalid(
            "; ".join(f"{p['field']}: {p['message']}" for p in problems), errors=problems
        )


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplicationView:
    """An application as its readers see it: with its history, the deadline of the step it waits on,
    and whether that deadline has closed."""

    application: Application
    history: list[ApplicationEvent]
    deadline: date | None
    deadline_kind: str | None  # completeness_check, review, objections or hearing
    overdue: bool
    registration_number: str | None


def current_deadline(application: Application, *, today: date) -> tuple[date | None, str | None]:
    """The day the step an open application waits on is due, and which step it is; (None, None) once
    the application is decided. `today` is today's business date."""
    if application.status not in APPLICATION_OPEN_STATUSES:
        return None, None
    if application.status == "preliminary_refusal":
        if application.objections is None and today <= application.deadline:
            return application.deadline, "objections"
        return application.hearing_date, "hearing"
    return application.deadline, DEADLINE_KIND_OF_STATUS[application.status]


async def get_application(
    session: AsyncSession, application_id: uuid.UUID, *, visible_to: uuid.UUID | None = None
) -> Application:
    """The application; with `visible_to`, only when that party is its issuer (others are "not found").

    Raises ApplicationNotFound.
    """
    return await _find(session, application_id, visible_to=visible_to, for_update=False)


async def list_applications(
    session: AsyncSession,
    *,
    issuer_party_id: uuid.UUID | None,
    status: str | None,
    overdue_only: bool,
    before: datetime | None,
    limit: int,
    settings: Settings,
    now: datetime | None = None,
) -> list[Application]:
    """Applications newest first: one issuer's (or, with None, everyone's), optionally only those in a
    status or only those whose current step's deadline has closed."""
    overdue_on = None
    if overdue_only:
        calendar = await load_calendar(session, settings=settings)
        overdue_on = calendar.business_date_of(now or _now())
    return await repository.list_applications(
        session, issuer_party_id=issuer_party_id, status=status, overdue_on=overdue_on, before=before, limit=limit
    )


async def views(
    session: AsyncSession, applications: Sequence[Application], *, settings: Settings, now: datetime | None = None
) -> list[ApplicationView]:
    """The applications with their histories, current deadlines and registration numbers."""
    if not applications:
        return []
    ids = [application.id for application in applications]
    history: dict[uuid.UUID, list[ApplicationEvent]] = defaultdict(list)
    for event in await repository.events_of(session, ids):
        history[event.application_id].append(event)
    numbers = await repository.registration_numbers(session, ids)
    calendar = await load_calendar(session, settings=settings)
    today = calendar.business_date_of(now or _now())
    result = []
    for application in applications:
        deadline, kind = current_deadline(application, today=today)
        result.append(ApplicationView(
            application=application, history=history[application.id], deadline=deadline, deadline_kind=kind,
            overdue=deadline is not None and today > deadline, registration_number=numbers.get(application.id),
        ))
    return result


# --- the workflow --------------------------------------------------------------------------------------


async def _find(
    session: AsyncSession, application_id: uuid.UUID, *, visible_to: uuid.UUID | None, for_update: bool
) -> Application:
    application = await repository.get_application(session, application_id, for_update=for_update)
    if application is None or (visible_to is not None and application.issuer_party_id != visible_to):
        raise errors.ApplicationNotFound(
            f"no emission application {application_id}", application_id=str(application_id)
        )
    return application


async def _locked(
    session: AsyncSession, application_id: uuid.UUID, *, step: str, allowed: Sequence[str],
    visible_to: uuid.UUID | None = None,
) -> Application:
    """The application locked for this transaction, when `step` may be taken from its status.

    Raises ApplicationNotFound, ApplicationStepNotAllowed.
    """
    application = await _find(session, application_id, visible_to=visible_to, for_update=True)
    if application.status not in allowed:
        raise errors.ApplicationStepNotAllowed(
            f"{step} is not allowed while the application is {application.status} "
            f"(only while {' or '.join(allowed)})",
            step=step, status=application.status,
        )
    return application


def _move(application: Application, *, status: str, deadline: date | None, now: datetime) -> None:
    """Put the application in `status`, waiting on `deadline`; a new deadline may be missed anew."""
    application.status = status
    application.deadline = deadline
    if status in APPLICATION_OPEN_STATUSES:
        application.overdue_flagged_at = None
    else:
        application.decided_at = now


async def _record(
    session: AsyncSession, application: Application, *, step: str, actor: str, now: datetime,
    reason: str | None = None, deadline: date | None = None, details: dict[str, Any] | None = None,
) -> None:
    """The step in the application's history (with the status it left the application in) and in the
    audit log."""
    await repository.insert_event(session, event=ApplicationEvent(
        application_id=application.id, step=step, status=application.status, actor=actor, reason=reason,
        deadline=deadline, at=now,
    ))
    await audit.record(
        session, kind=f"emission_application.{step}", actor=actor, subject=str(application.id),
        details={
            "issuer_party_id": str(application.issuer_party_id), "status": application.status,
            "deadline": deadline.isoformat() if deadline else None, "reason": reason, **(details or {}),
        },
    )


async def submit(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, terms: Terms, actor: str, settings: Settings,
    now: datetime | None = None,
) -> Application:
    """Record an onboarded issuer's application (REQ-25), due for its completeness check within 2
    business days of the business date it is received on.

    Raises ApplicantNotOnboarded, ApplicationTermsInvalid, ApplicationUnderlyingAssetUnknown.
    """
    now = now or _now()
    if await repository.get_issuer(session, issuer_party_id) is None:
        raise errors.ApplicantNotOnboarded(
            "your organisation is not onboarded as an issuer: onboarding (documents and consents) comes before "
            "an emission application", party_id=str(issuer_party_id),
        )
    check_terms(terms, today=_local_date(now, settings))
    if terms.underlying_asset_id is not None:
        asset = await repository.get_underlying_asset(session, terms.underlying_asset_id)
        if asset is None or asset.issuer_party_id != issuer_party_id:
            raise errors.ApplicationUnderlyingAssetUnknown(
                f"you have no underlying asset {terms.underlying_asset_id}; register it first",
                field="underlying_asset_id",
            )
    calendar = await load_calendar(session, settings=settings)
    deadline = calendar.add_business_days(calendar.business_date_of(now), COMPLETENESS_CHECK_BUSINESS_DAYS)
    application = await repository.insert_application(session, application=Application(
        id=uuid.uuid4(), issuer_party_id=issuer_party_id, status="submitted", deadline=deadline,
        submitted_by=actor, submitted_at=now, **asdict(terms),
    ))
    await _record(session, application, step="submitted", actor=actor, now=now, deadline=deadline)
    return application


async def accept(
    session: AsyncSession, *, application_id: uuid.UUID, actor: str, settings: Settings, note: str | None = None,
    now: datetime | None = None,
) -> Application:
    """The completeness check passed: the application is in review, due in 15 business days.

    Raises ApplicationNotFound, ApplicationStepNotAllowed.
    """
    now = now or _now()
    application = await _locked(session, application_id, step="acceptance", allowed=("submitted",))
    calendar = await load_calendar(session, settings=settings)
    deadline = calendar.add_business_days(calendar.business_date_of(now), REVIEW_BUSINESS_DAYS)
    _move(application, status="in_review", deadline=deadline, now=now)
    await _record(
        session, application, step="accepted", actor=actor, now=now, deadline=deadline,
        reason=note or "the completeness check passed",
    )
    return application


async def return_application(
    session: AsyncSession, *, application_id: uuid.UUID, reason: str, actor: str, now: datetime | None = None
) -> Application:
    """The documents are incomplete: further review is refused with the reason, and the application is
    closed (the issuer may apply again once it has cured it).

    Raises ApplicationNotFound, ApplicationStepNotAllowed.
    """
    now = now or _now()
    application = await _locked(session, application_id, step="return", allowed=("submitted",))
    _move(application, status="returned", deadline=None, now=now)
    await _record(session, application, step="returned", actor=actor, now=now, reason=reason)
    return application


async def refuse_preliminarily(
    session: AsyncSession, *, application_id: uuid.UUID, reasons: str, hearing_date: date, actor: str,
    settings: Settings, now: datetime | None = None,
) -> Application:
    """Tell the issuer why the emission would be refused and when it will be heard: it may object within
    2 business days, and the hearing is on a business day after that deadline (REQ-06).

    Raises ApplicationNotFound, ApplicationStepNotAllowed, HearingDateInvalid, DateOutsideCalendar.
    """
    now = now or _now()
    application = await _locked(session, application_id, step="preliminary refusal", allowed=("in_review",))
    calendar = await load_calendar(session, settings=settings)
    objections_due = calendar.add_business_days(calendar.business_date_of(now), OBJECTIONS_BUSINESS_DAYS)
    if hearing_date <= objections_due or not calendar.is_business_day(hearing_date):
        earliest = calendar.next_business_day(objections_due)
        raise errors.HearingDateInvalid(
            f"the hearing must be on a business day after the objections deadline {objections_due.isoformat()} "
            f"(the earliest is {earliest.isoformat()}); {hearing_date.isoformat()} is not",
            objections_deadline=objections_due.isoformat(), earliest=earliest.isoformat(),
        )
    application.hearing_date = hearing_date
    application.objections = None  # each preliminary refusal is objected to on its own
    _move(application, status="preliminary_refusal", deadline=objections_due, now=now)
    await _record(
        session, application, step="preliminary_refusal", actor=actor, now=now, deadline=objections_due,
        reason=reasons, details={"hearing_date": hearing_date.isoformat()},
    )
    return application


async def record_objections(
    session: AsyncSession, *, application_id: uuid.UUID, issuer_party_id: uuid.UUID, text: str, actor: str,
    settings: Settings, now: datetime | None = None,
) -> Application:
    """Record the issuer's objections to a preliminary refusal, once, until the close of their deadline;
    the application then waits on its hearing.

    Raises ApplicationNotFound, ApplicationStepNotAllowed, ObjectionsAlreadyRecorded, ObjectionsTooLate.
    """
    now = now or _now()
    application = await _locked(
        session, application_id, step="objections", allowed=("preliminary_refusal",), visible_to=issuer_party_id
    )
    if application.objections is not None:
        raise errors.ObjectionsAlreadyRecorded("your objections to this preliminary refusal are already recorded")
    calendar = await load_calendar(session, settings=settings)
    closes_at = calendar.close_of(application.deadline)
    if now >= closes_at:
        raise errors.ObjectionsTooLate(
            f"objections were due by {closes_at.astimezone(ZoneInfo(settings.timezone)).isoformat()} "
            f"(the close of {application.deadline.isoformat()} in {settings.timezone})",
            deadline=application.deadline.isoformat(),
        )
    application.objections = text
    application.deadline = application.hearing_date
    await _record(session, application, step="objections", actor=actor, now=now, reason=text,
                  deadline=application.hearing_date)
    return application


async def hold_hearing(
    session: AsyncSession, *, application_id: uuid.UUID, outcome: HearingOutcome, reason: str, actor: str,
    settings: Settings, now: datetime | None = None,
) -> Application:
    """Record the hearing of a preliminary refusal, on or after its date, and its outcome: review
    resumes (15 business days again), the emission is refused for good, or it is registered through
    the registration gate.

    Raises ApplicationNotFound, ApplicationStepNotAllowed, HearingNotYetDue, and for `register` what
    `register` raises.
    """
    now = now or _now()
    application = await _locked(session, application_id, step="hearing", allowed=("preliminary_refusal",))
    calendar = await load_calendar(session, settings=settings)
    today = calendar.business_date_of(now)
    if today < application.hearing_date:
        raise errors.HearingNotYetDue(
            f"the issuer is heard on {application.hearing_date.isoformat()}; today's business date is "
            f"{today.isoformat()}", hearing_date=application.hearing_date.isoformat(),
        )
    details = {"outcome": outcome, "hearing_date": application.hearing_date.isoformat()}
    if outcome == "register":
        evidence = await _check_gate(session, application, settings=settings, calendar=calendar, now=now)
        await _register(
            session, application, evidence=evidence, actor=actor, settings=settings, now=now,
            hearing=(reason, details),
        )
    elif outcome == "resume_review":
        deadline = calendar.add_business_days(today, REVIEW_BUSINESS_DAYS)
        _move(application, status="in_review", deadline=deadline, now=now)
        await _record(session, application, step="hearing", actor=actor, now=now, reason=reason, deadline=deadline,
                      details=details)
    else:
        _move(application, status="refused", deadline=None, now=now)
        await _record(session, application, step="hearing", actor=actor, now=now, reason=reason, details=details)
        await _record(session, application, step="refused", actor=actor, now=now, reason=reason)
    return application


async def withdraw(
    session: AsyncSession, *, application_id: uuid.UUID, issuer_party_id: uuid.UUID, actor: str,
    reason: str | None = None, now: datetime | None = None,
) -> Application:
    """The issuer withdraws its open application.

    Raises ApplicationNotFound, ApplicationStepNotAllowed.
    """
    now = now or _now()
    application = await _locked(
        session, application_id, step="withdrawal", allowed=APPLICATION_OPEN_STATUSES, visible_to=issuer_party_id
    )
    _move(application, status="withdrawn", deadline=None, now=now)
    await _record(session, application, step="withdrawn", actor=actor, now=now, reason=reason)
    return application


async def register(
    session: AsyncSession, *, application_id: uuid.UUID, actor: str, settings: Settings, now: datetime | None = None
) -> Emission:
    """Register the emission of an application in review once every condition of the registration gate
    holds: its number is drawn and its whole volume issued (REQ-24). The application row stays locked
    to the end of the transaction, so concurrent registrations of one application register it once.

    Raises ApplicationNotFound, ApplicationStepNotAllowed, the gate's refusals (UnderlyingNotCertified,
    CertificationOutdated, UnderlyingAssetDoesNotExist, UnderlyingLegalStatusNotClear, UnderlyingEncumbered,
    UnderlyingValueShort, CertificationNotPassed, IssuerBlocked, SecurityProtocolNotRecorded,
    SecurityProtocolTooRecent, PartyNotIdentified, UnderAge) and RegistrationNumberInvalid.
    """
    now = now or _now()
    application = await _locked(session, application_id, step="registration", allowed=("in_review",))
    calendar = await load_calendar(session, settings=settings)
    evidence = await _check_gate(session, application, settings=settings, calendar=calendar, now=now)
    return await _register(session, application, evidence=evidence, actor=actor, settings=settings, now=now)


async def _register(
    session: AsyncSession, application: Application, *, evidence: dict[str, str], actor: str, settings: Settings,
    now: datetime, hearing: tuple[str, dict[str, Any]] | None = None,
) -> Emission:
    """Issue the emission the gate admitted; `hearing` (its record and details) when a hearing decided it."""
    emission = await emissions.issue(session, application=application, actor=actor, settings=settings)
    await suspensions.apply_active_suspensions(session, emission=emission, actor=actor)
    _move(application, status="registered", deadline=None, now=now)
    if hearing is not None:
        reason, details = hearing
        await _record(session, application, step="hearing", actor=actor, now=now, reason=reason, details=details)
    await _record(
        session, application, step="registered", actor=actor, now=now,
        reason=f"registered as {emission.registration_number}; "
        + "; ".join(f"{condition}: {proof}" for condition, proof in evidence.items()),
        details={"registration_number": emission.registration_number, "evidence": evidence},
    )
    return emission


# --- the registration gate (REQ-22) --------------------------------------------------------------------


async def _check_gate(
    session: AsyncSession, application: Application, *, settings: Settings, calendar: BusinessCalendar,
    now: datetime,
) -> dict[str, str]:
    """The evidence that satisfies each condition of registration; reads only, so a refusal changes nothing."""
    return {
        "underlying asset": await _underlying_evidence(session, application, settings=settings, now=now),
        "issuer blocks": await _no_block_evidence(session, application, settings=settings),
        "security test protocol": _security_protocol_evidence(settings=settings, calendar=calendar, now=now),
        "issuer identified": await _identified_evidence(session, application, settings=settings),
    }


async def _underlying_evidence(
    session: AsyncSession, application: Application, *, settings: Settings, now: datetime
) -> str:
    """REQ-22, REQ-26, REQ-28, REQ-29: the latest certification for this application shows the
    underlying asset exists, is clear, unencumbered and worth the issue volume at the required ratio."""
    if application.underlying_asset_id is None:
        return f"none (REQ-26): {application.no_underlying_reason}"
    certification = await underlying.latest_certification(
        session, underlying_asset_id=application.underlying_asset_id, application_id=application.id
    )
    if certification is None:
        raise errors.UnderlyingNotCertified(
            f"the underlying asset {application.underlying_asset_id} is not certified for this application: "
            "obtain a certification from its custodian",
            underlying_asset_id=str(application.underlying_asset_id),
        )
    oldest_relied_on = now - timedelta(days=settings.certification_max_age_days)
    if certification.obtained_at < oldest_relied_on:
        raise errors.CertificationOutdated(
            f"the latest certification was obtained on {certification.obtained_at.date().isoformat()}, more than "
            f"{settings.certification_max_age_days} days ago: obtain a fresh one from the custodian",
            certification_id=str(certification.id), obtained_at=certification.obtained_at.isoformat(),
        )
    needed = underlying.required_value(application)
    source = f"certification {certification.id} ({certification.source})"
    if not certification.exists:
        raise errors.UnderlyingAssetDoesNotExist(
            f"{source}: the custodian does not confirm the underlying asset exists",
            certification_id=str(certification.id),
        )
    if certification.legal_status != "clear":
        raise errors.UnderlyingLegalStatusNotClear(
            f"{source}: the underlying asset's legal status is {certification.legal_status}",
            certification_id=str(certification.id), legal_status=certification.legal_status,
        )
    if certification.encumbered:
        raise errors.UnderlyingEncumbered(
            f"{source}: the underlying asset is encumbered ({certification.encumbrances or 'not described'})",
            certification_id=str(certification.id),
        )
    if certification.market_value is None:
        raise errors.CertificationNotPassed(
            f"{source}: the custodian states no market value of the underlying asset",
            certification_id=str(certification.id), findings=certification.findings,
        )
    if certification.market_value < needed:
        raise errors.UnderlyingValueShort(
            f"{source}: the underlying asset is worth {certification.market_value} tiyn, short of the "
            f"{needed} tiyn the issue volume needs at the ratio {application.coverage_ratio} "
            f"(by {needed - certification.market_value} tiyn)",
            certification_id=str(certification.id), market_value=certification.market_value, required_value=needed,
        )
    if not certification.passed:
        raise errors.CertificationNotPassed(
            f"{source} did not pass: {'; '.join(certification.findings) or 'no findings given'}",
            certification_id=str(certification.id), findings=certification.findings,
        )
    return (
        f"{source}, obtained {certification.obtained_at.isoformat()} by {certification.officer}: exists, legal "
        f"status clear, unencumbered, worth {certification.market_value} tiyn on "
        f"{certification.valued_on.isoformat()} against {needed} tiyn required at the ratio "
        f"{application.coverage_ratio}"
    )


async def _no_block_evidence(session: AsyncSession, application: Application, *, settings: Settings) -> str:
    """REQ-31: no open block on the issuer's new emissions, nor — when reconciliation breaches block every
    issuer (`reconciliation_block_scope` "all") — any open reconciliation block at all."""
    blocks = await issuers.open_blocks(session, application.issuer_party_id)
    whose = "the issuer's"
    if not blocks and settings.reconciliation_block_scope == "all":
        blocks = await issuers.open_blocks(session, None, source="reconciliation")
        whose = "every issuer's"
    if blocks:
        block = blocks[0]
        raise errors.IssuerBlocked(
            f"{whose} new emissions are blocked since {block.opened_at.date().isoformat()} "
            f"({block.source}, {block.reference}): {block.reason}",
            block_id=str(block.id), source=block.source, reference=block.reference, reason=block.reason,
        )
    if settings.reconciliation_block_scope == "all":
        return "no open block on the issuer's new emissions and no open reconciliation block on any issuer"
    return "no open block on the issuer's new emissions"


def _security_protocol_evidence(*, settings: Settings, calendar: BusinessCalendar, now: datetime) -> str:
    """REQ-60: the cybersecurity test protocol went to the National Bank 10 business days ago or more."""
    submitted_on = settings.security_protocol_submitted_on
    if submitted_on is None:
        raise errors.SecurityProtocolNotRecorded(
            "the day the cybersecurity test protocol was submitted to the National Bank is not recorded "
            "(setting security_protocol_submitted_on); no emission is registered before it is"
        )
    today = calendar.business_date_of(now)
    elapsed = calendar.business_days_between(submitted_on, today)
    if elapsed < SECURITY_PROTOCOL_BUSINESS_DAYS:
        earliest = calendar.add_business_days(calendar.next_business_day(submitted_on), SECURITY_PROTOCOL_BUSINESS_DAYS - 1)
        raise errors.SecurityProtocolTooRecent(
            f"the security test protocol was submitted on {submitted_on.isoformat()}, {elapsed} business days "
            f"before today's business date {today.isoformat()}; emissions are registered from "
            f"{earliest.isoformat()}",
            submitted_on=submitted_on.isoformat(), earliest=earliest.isoformat(),
        )
    return f"submitted to the National Bank on {submitted_on.isoformat()}, {elapsed} business days before {today.isoformat()}"


async def _identified_evidence(session: AsyncSession, application: Application, *, settings: Settings) -> str:
    """REQ-14: the issuer is still an identified party."""
    issuer = await parties.ensure_may_operate(session, application.issuer_party_id, settings=settings)
    return f"{issuer.name} is identified ({issuer.kyc_level})"


# --- overdue deadlines ---------------------------------------------------------------------------------


async def flag_overdue(session: AsyncSession, *, settings: Settings, now: datetime | None = None) -> int:
    """Flag, once per deadline, every open application whose current step's deadline has closed: an
    `overdue` step in its history, an audit record and a notification to the operator's admins.
    Returns how many were flagged. Safe to run on several instances at once."""
    now = now or _now()
    calendar = await load_calendar(session, settings=settings)
    today = calendar.business_date_of(now)
    flagged = 0
    while batch := await repository.lock_unflagged_overdue(session, overdue_on=today, limit=OVERDUE_BATCH_SIZE):
        for application in batch:
            await _flag_overdue(session, application, today=today, now=now)
        flagged += len(batch)
    return flagged


async def _flag_overdue(session: AsyncSession, application: Application, *, today: date, now: datetime) -> None:
    deadline, kind = current_deadline(application, today=today)
    application.overdue_flagged_at = now
    await _record(
        session, application, step="overdue", actor=SYSTEM, now=now, deadline=deadline,
        reason=f"the {kind} deadline {deadline.isoformat()} has closed",
    )
    await outbox.notify(
        session, audience=[Role.OPERATOR_ADMIN], kind="application-overdue", application_id=str(application.id),
        issuer_party_id=str(application.issuer_party_id), status=application.status, deadline=deadline.isoformat(),
        deadline_kind=kind,
    )


# --- registered emissions' public terms ----------------------------------------------------------------


@dataclass(frozen=True)
class EmissionTerms:
    """A registered emission with the terms it was registered on and its issuer's name: what anyone
    signed in may know of it."""

    emission: Emission
    application: Application
    issuer_name: str


async def _with_issuer_names(
    session: AsyncSession, rows: Sequence[tuple[Emission, Application]]
) -> list[EmissionTerms]:
    names = {
        party_id: (await parties.get_party(session, party_id)).name
        for party_id in {emission.issuer_party_id for emission, _ in rows}
    }
    return [EmissionTerms(emission, application, names[emission.issuer_party_id]) for emission, application in rows]


async def emission_terms(session: AsyncSession, registration_number: str) -> EmissionTerms:
    """Raises EmissionNotFound."""
    row = await repository.emission_with_terms(session, registration_number)
    if row is None:
        raise errors.EmissionNotFound(f"no emission {registration_number}", registration_number=registration_number)
    return (await _with_issuer_names(session, [row]))[0]


async def list_emission_terms(session: AsyncSession, *, after: int | None, limit: int) -> list[EmissionTerms]:
    """Registered emissions in the order they were registered."""
    return await _with_issuer_names(session, await repository.emissions_with_terms(session, after=after, limit=limit))
