"""SQL of emission applications, their history, and what the registration gate reads."""

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import (
    APPLICATION_OPEN_STATUSES,
    Application,
    ApplicationEvent,
    Emission,
    Issuer,
    UnderlyingAsset,
)

# The day an open application's current step is due: a preliminary refusal waits on its hearing once
# the objections are in or their deadline has closed, and the hearing date is after that deadline, so
# it is the hearing that can be missed.
_OVERDUE_ON = case(
    (Application.status == "preliminary_refusal", Application.hearing_date), else_=Application.deadline
)


async def get_issuer(session: AsyncSession, party_id: uuid.UUID) -> Issuer | None:
    return await session.get(Issuer, party_id)


async def get_underlying_asset(session: AsyncSession, asset_id: uuid.UUID) -> UnderlyingAsset | None:
    return await session.get(UnderlyingAsset, asset_id)


async def insert_application(session: AsyncSession, *, application: Application) -> Application:
    session.add(application)
    await session.flush()
    return application


async def insert_event(session: AsyncSession, *, event: ApplicationEvent) -> ApplicationEvent:
    session.add(event)
    await session.flush()
    return event


async def get_application(
    session: AsyncSession, application_id: uuid.UUID, *, for_update: bool = False
) -> Application | None:
    statement = (
        select(Application).where(Application.id == application_id).execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_applications(
    session: AsyncSession,
    *,
    issuer_party_id: uuid.UUID | None,
    status: str | None,
    overdue_on: date | None,
    before: datetime | None,
    limit: int,
) -> list[Application]:
    """Newest first; with `overdue_on`, only open applications whose current step was due before that day."""
    statement = select(Application).order_by(Application.submitted_at.desc(), Application.id.desc()).limit(limit)
    if issuer_party_id is not None:
        statement = statement.where(Application.issuer_party_id == issuer_party_id)
    if status is not None:
        statement = statement.where(Application.status == status)
    if overdue_on is not None:
        statement = statement.where(Application.status.in_(APPLICATION_OPEN_STATUSES), _OVERDUE_ON < overdue_on)
    if before is not None:
        statement = statement.where(Application.submitted_at < before)
    return list((await session.execute(statement)).scalars())


async def lock_unflagged_overdue(session: AsyncSession, *, overdue_on: date, limit: int) -> list[Application]:
    """Open applications due before `overdue_on` and not flagged yet, locked; rows another
    transaction is flagging are skipped."""
    statement = (
        select(Application)
        .where(
            Application.status.in_(APPLICATION_OPEN_STATUSES),
            Application.overdue_flagged_at.is_(None),
            _OVERDUE_ON < overdue_on,
        )
        .order_by(Application.deadline, Application.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def events_of(session: AsyncSession, application_ids: Sequence[uuid.UUID]) -> list[ApplicationEvent]:
    statement = (
        select(ApplicationEvent)
        .where(ApplicationEvent.application_id.in_(application_ids))
        .order_by(ApplicationEvent.id)
    )
    return list((await session.execute(statement)).scalars())


async def registration_numbers(session: AsyncSession, application_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    statement = select(Emission.application_id, Emission.registration_number).where(
        Emission.application_id.in_(application_ids)
    )
    return dict((await session.execute(statement)).all())




# --- registered emissions with their public terms ------------------------------------------------------


async def emission_with_terms(session: AsyncSession, registration_number: str) -> tuple[Emission, Application] | None:
    statement = (
        select(Emission, Application)
        .join(Application, Application.id == Emission.application_id)
        .where(Emission.registration_number == registration_number)
    )
    return (await session.execute(statement)).one_or_none()


async def emissions_with_terms(
    session: AsyncSession, *, after: int | None, limit: int
) -> list[tuple[Emission, Application]]:
    statement = (
        select(Emission, Application)
        .join(Application, Application.id == Emission.application_id)
        .order_by(Emission.asset_id)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(Emission.asset_id > after)
    return list((await session.execute(statement)).all())
