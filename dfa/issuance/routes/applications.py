"""Emission applications and registered emissions. An issuer applies and follows its own applications
(another issuer's are "not found", REQ-20); the operator's admins decide each step; compliance officers
and auditors read everything. Every signed-in role reads registered emissions' public terms."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Application
from dfa.issuance.schemas import applications as schemas
from dfa.issuance.service import applications
from dfa.platform.access import ALL_ROLES, Principal, Role, allow
from dfa.platform.errors import invariant
from dfa.platform.settings import Settings
from dfa.platform.types import AfterInt, AssetCodePath, AwareDatetime, Limit
from dfa.platform.web import IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute

router = APIRouter(prefix="/v1", tags=["emission applications"], route_class=UnitOfWorkRoute)

Issuer = Annotated[Principal, Depends(allow(Role.ISSUER))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
Reader = Annotated[
    Principal, Depends(allow(Role.ISSUER, Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER, Role.AUDITOR))
]
Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
ApplicationStatus = Literal[
    "submitted", "in_review", "preliminary_refusal", "registered", "refused", "returned", "withdrawn"
]


def _own(principal: Principal) -> uuid.UUID:
    invariant(principal.party_id is not None, "an issuer's user acts for the issuer")
    return principal.party_id


async def _out(session: AsyncSession, application: Application, settings: Settings) -> schemas.ApplicationOut:
    (view,) = await applications.views(session, [application], settings=settings)
    return _shaped(view)


def _shaped(view: applications.ApplicationView) -> schemas.ApplicationOut:
    application = view.application
    fields = {
        name: getattr(application, name)
        for name in schemas.ApplicationOut.model_fields
        if name not in ("redemption_price", "deadline", "deadline_kind", "overdue", "registration_number", "history")
    }
    return schemas.ApplicationOut(
        **fields,
        redemption_price=application.redemption_price or application.nominal,
        deadline=view.deadline,
        deadline_kind=view.deadline_kind,
        overdue=view.overdue,
        registration_number=view.registration_number,
        history=[schemas.ApplicationEventOut.model_validate(event) for event in view.history],
    )


@router.post("/emission-applications", status_code=status.HTTP_201_CREATED, response_model=schemas.ApplicationOut)
async def submit_application(
    body: schemas.ApplicationSubmit, principal: Issuer, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Apply to register an emission (REQ-25): its terms, and either your underlying asset with the coverage
    ratio its value must keep or the reason there is none (REQ-26). The completeness check is due within
    2 business days."""
    application = await applications.submit(
        session, issuer_party_id=_own(principal), terms=applications.Terms(**body.model_dump()),
        actor=principal.login, settings=settings,
    )
    return await _out(session, application, settings)


@router.get("/emission-applications", response_model=list[schemas.ApplicationOut])
async def list_applications(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    status_: Annotated[ApplicationStatus | None, Query(alias="status", description="Only these.")] = None,
    overdue: Annotated[bool, Query(description="Only open applications past their deadline.")] = False,
    before: Annotated[
        AwareDatetime | None, Query(description="Page: applications submitted before this instant.")
    ] = None,
    limit: Limit = None,
):
    """Applications, newest first: your own, or (staff) everyone's, with deadlines and history."""
    found = await applications.list_applications(
        session, issuer_party_id=principal.owner_filter(), status=status_, overdue_only=overdue, before=before,
        limit=settings.page_size(limit), settings=settings,
    )
    return [_shaped(view) for view in await applications.views(session, found, settings=settings)]


@router.get("/emission-applications/{application_id}", response_model=schemas.ApplicationOut)
async def get_application(application_id: uuid.UUID, principal: Reader, session: SessionDep, settings: SettingsDep):
    """One application with the deadline of the step it waits on and its full history."""
    application = await applications.get_application(session, application_id, visible_to=principal.owner_filter())
    return await _out(session, application, settings)


@router.post("/emission-applications/{application_id}/acceptance", response_model=schemas.ApplicationOut)
async def accept_application(
    application_id: uuid.UUID, principal: Admin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader, body: schemas.Note | None = None,
):
    """The completeness check passed: the review starts, due in 15 business days."""
    application = await applications.accept(
        session, application_id=application_id, actor=principal.login, settings=settings,
        note=body.note if body else None,
    )
    return await _out(session, application, settings)


@router.post("/emission-applications/{application_id}/return", response_model=schemas.ApplicationOut)
async def return_application(
    application_id: uuid.UUID, body: schemas.Reason, principal: Admin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """The documents are incomplete: further review is refused, with the reason."""
    application = await applications.return_application(
        session, application_id=application_id, reason=body.reason, actor=principal.login
    )
    return await _out(session, application, settings)


@router.post("/emission-applications/{application_id}/preliminary-refusal", response_model=schemas.ApplicationOut)
async def refuse_preliminarily(
    application_id: uuid.UUID, body: schemas.PreliminaryRefusal, principal: Admin, session: SessionDep,
    settings: SettingsDep, _key: IdempotencyKeyHeader,
):
    """Tell the issuer the grounds for refusal and its hearing date; it may object within 2 business days."""
    application = await applications.refuse_preliminarily(
        session, application_id=application_id, reasons=body.reasons, hearing_date=body.hearing_date,
        actor=principal.login, settings=settings,
    )
    return await _out(session, application, settings)


@router.post("/emission-applications/{application_id}/objections", response_model=schemas.ApplicationOut)
async def object_to_refusal(
    application_id: uuid.UUID, body: schemas.Objections, principal: Issuer, session: SessionDep,
    settings: SettingsDep, _key: IdempotencyKeyHeader,
):
    """Object to a preliminary refusal, once, until the close of the objections deadline (Asia/Almaty)."""
    application = await applications.record_objections(
        session, application_id=application_id, issuer_party_id=_own(principal), text=body.text,
        actor=principal.login, settings=settings,
    )
    return await _out(session, application, settings)


@router.post("/emission-applications/{application_id}/hearing", response_model=schemas.ApplicationOut)
async def hold_hearing(
    application_id: uuid.UUID, body: schemas.Hearing, principal: Admin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Record the hearing of a preliminary refusal (on or after its date) and its outcome: the review
    resumes, the emission is refused for good, or it is registered through the registration gate."""
    application = await applications.hold_hearing(
        session, application_id=application_id, outcome=body.outcome, reason=body.reason, actor=principal.login,
        settings=settings,
    )
    return await _out(session, application, settings)


@router.post("/emission-applications/{application_id}/withdrawal", response_model=schemas.ApplicationOut)
async def withdraw_application(
    application_id: uuid.UUID, principal: Issuer, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader, body: schemas.Withdrawal | None = None,
):
    """Withdraw your open application."""
    application = await applications.withdraw(
        session, application_id=application_id, issuer_party_id=_own(principal), actor=principal.login,
        reason=body.reason if body else None,
    )
    return await _out(session, application, settings)


@router.post("/emission-applications/{application_id}/registration", response_model=schemas.ApplicationOut)
async def register_emission(
    application_id: uuid.UUID, principal: Admin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Register the emission once the registration gate passes (REQ-22): the underlying asset certified,
    existing, clear, unencumbered and covering the volume; no block on the issuer; the security test
    protocol submitted 10 business days ago or more; the issuer identified. Its registration number is
    drawn and the whole volume issued into the issuer's placement account (REQ-23, REQ-24). A refusal
    names the condition that failed and changes nothing."""
    await applications.register(session, application_id=application_id, actor=principal.login, settings=settings)
    return await _out(session, await applications.get_application(session, application_id), settings)


# --- registered emissions ------------------------------------------------------------------------------


def _emission_out(terms: applications.EmissionTerms) -> schemas.EmissionOut:
    emission, application = terms.emission, terms.application
    return schemas.EmissionOut(
        asset_id=emission.asset_id,
        registration_number=emission.registration_number,
        name=application.name,
        dfa_kind=application.dfa_kind,
        issuer_name=terms.issuer_name,
        status=emission.status,
        nominal=emission.nominal,
        units_registered=emission.units,
        units_outstanding=emission.units - emission.cancelled_units - emission.platform_units,
        units_cancelled=emission.cancelled_units,
        units_on_trading_platforms=emission.platform_units,
        placement_start=application.placement_start,
        placement_end=application.placement_end,
        placement_price=application.placement_price,
        min_placement_units=application.min_placement_units,
        maturity_date=application.maturity_date,
        redemption_price=application.redemption_price or application.nominal,
        early_redemption_allowed=application.early_redemption_allowed,
        transfer_restrictions=application.transfer_restrictions,
        has_underlying_asset=application.underlying_asset_id is not None,
        registered_at=emission.registered_at,
    )


@router.get("/emissions", response_model=list[schemas.EmissionOut], tags=["emissions"])
async def list_emissions(
    principal: Anyone, session: SessionDep, settings: SettingsDep, after: AfterInt = None, limit: Limit = None
):
    """Registered emissions' public terms, in the order they were registered (page with `after` = the
    last `asset_id` seen)."""
    found = await applications.list_emission_terms(session, after=after, limit=settings.page_size(limit))
    return [_emission_out(terms) for terms in found]


@router.get("/emissions/{registration_number}", response_model=schemas.EmissionOut, tags=["emissions"])
async def get_emission(registration_number: AssetCodePath, principal: Anyone, session: SessionDep):
    """One registered emission's public terms."""
    return _emission_out(await applications.emission_terms(session, registration_number))
