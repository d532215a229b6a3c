"""SQL of holder protections (freezes, forced transfers) and trading suspensions."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Emission, ForcedTransfer, Freeze, Suspension

# --- freezes --------------------------------------------------------------------------------------------


async def insert_freeze(session: AsyncSession, *, values: dict[str, Any]) -> Freeze:
    freeze = Freeze(**values)
    session.add(freeze)
    await session.flush()
    return freeze


async def get_freeze(session: AsyncSession, freeze_id: uuid.UUID, *, for_update: bool = False) -> Freeze | None:
    statement = select(Freeze).where(Freeze.id == freeze_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_freezes(
    session: AsyncSession, *, asset_id: int | None, party_id: uuid.UUID | None, status: str | None,
    before: datetime | None, limit: int,
) -> list[Freeze]:
    statement = select(Freeze).order_by(Freeze.created_at.desc(), Freeze.id).limit(limit)
    if asset_id is not None:
        statement = statement.where(Freeze.asset_id == asset_id)
    if party_id is not None:
        statement = statement.where(Freeze.party_id == party_id)
    if status is not None:
        statement = statement.where(Freeze.status == status)
    if before is not None:
        statement = statement.where(Freeze.created_at < before)
    return list((await session.execute(statement)).scalars())


async def lock_active_freezes(session: AsyncSession, *, asset_id: int, party_id: uuid.UUID) -> list[Freeze]:
    """The holder's active freezes of the asset, oldest first, locked."""
    statement = (
        select(Freeze)
        .where(Freeze.asset_id == asset_id, Freeze.party_id == party_id, Freeze.status == "active")
        .order_by(Freeze.created_at, Freeze.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def frozen_units(session: AsyncSession, *, asset_id: int, party_id: uuid.UUID) -> int:
    statement = select(func.coalesce(func.sum(Freeze.units), 0)).where(
        Freeze.asset_id == asset_id, Freeze.party_id == party_id, Freeze.status == "active"
    )
    return int((await session.execute(statement)).scalar_one())


async def frozen_units_as_of(session: AsyncSession, *, asset_id: int, as_of: datetime) -> dict[uuid.UUID, int]:
    """Units frozen per holder of the asset at the instant: freezes placed by then and not lifted by then."""
    statement = (
        select(Freeze.party_id, func.sum(Freeze.units))
        .where(
            Freeze.asset_id == asset_id,
            Freeze.created_at <= as_of,
            or_(Freeze.lifted_at.is_(None), Freeze.lifted_at > as_of),
        )
        .group_by(Freeze.party_id)
    )
    return {party_id: int(units) for party_id, units in await session.execute(statement)}


# --- forced transfers -----------------------------------------------------------------------------------


async def insert_forced_transfer(session: AsyncSession, *, values: dict[str, Any]) -> ForcedTransfer:
    forced = ForcedTransfer(**values)
    session.add(forced)
    await session.flush()
    return forced


async def list_forced_transfers(
    session: AsyncSession, *, asset_id: int | None, party_id: uuid.UUID | None, before: datetime | None, limit: int
) -> list[ForcedTransfer]:
    statement = select(ForcedTransfer).order_by(ForcedTransfer.at.desc(), ForcedTransfer.id).limit(limit)
    if asset_id is not None:
        statement = statement.where(ForcedTransfer.asset_id == asset_id)
    if party_id is not None:
        statement = statement.where(
            or_(ForcedTransfer.from_party_id == party_id, ForcedTransfer.to_party_id == party_id)
        )
    if before is not None:
        statement = statement.where(ForcedTransfer.at < before)
    return list((await session.execute(statement)).scalars())


# --- suspensions ----------------------------------------------------------------------------------------


async def emissions_of_issuer(session: AsyncSession, issuer_party_id: uuid.UUID) -> list[Emission]:
    statement = select(Emission).where(Emission.issuer_party_id == issuer_party_id).order_by(Emission.asset_id)
    return list((await session.execute(statement)).scalars())


async def insert_suspension(session: AsyncSession, *, values: dict[str, Any]) -> Suspension:
    suspension = Suspension(**values)
    session.add(suspension)
    await session.flush()
    return suspension


async def get_suspension(session: AsyncSession, suspension_id: uuid.UUID, *, for_update: bool = False) -> Suspension | None:
    statement = select(Suspension).where(Suspension.id == suspension_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_suspensions(
    session: AsyncSession, *, issuer_party_id: uuid.UUID | None, active: bool | None, before: datetime | None,
    limit: int,
) -> list[Suspension]:
    statement = select(Suspension).order_by(Suspension.recorded_at.desc(), Suspension.id).limit(limit)
    if issuer_party_id is not None:
        statement = statement.where(Suspension.issuer_party_id == issuer_party_id)
    if active is not None:
        statement = statement.where(Suspension.lifted_at.is_(None) if active else Suspension.lifted_at.is_not(None))
    if before is not None:
        statement = statement.where(Suspension.recorded_at < before)
    return list((await session.execute(statement)).scalars())


async def active_suspensions_covering(session: AsyncSession, emission: Emission) -> list[Suspension]:
    """Active suspensions of the emission itself or of every emission of its issuer."""
    statement = select(Suspension).where(
        Suspension.issuer_party_id == emission.issuer_party_id,
        Suspension.lifted_at.is_(None),
        or_(Suspension.asset_id.is_(None), Suspension.asset_id == emission.asset_id),
    )
    return list((await session.execute(statement)).scalars())


async def suspended_emissions_of(session: AsyncSession, issuer_party_id: uuid.UUID) -> list[Emission]:
    """The issuer's emissions covered by an active suspension."""
    covering = select(Suspension.id).where(
        Suspension.issuer_party_id == issuer_party_id,
        Suspension.lifted_at.is_(None),
        or_(Suspension.asset_id.is_(None), Suspension.asset_id == Emission.asset_id),
    )
    statement = (
        select(Emission)
        .where(Emission.issuer_party_id == issuer_party_id, covering.exists())
        .order_by(Emission.asset_id)
    )
    return list((await session.execute(statement)).scalars())
