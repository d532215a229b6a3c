"""SQL of trading platforms, transfers to and from them, and the messages exchanged."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Emission, PlatformMessage, PlatformTransfer, TradingPlatform


async def insert_platform(session: AsyncSession, *, values: dict[str, Any]) -> TradingPlatform | None:
    """The new platform, or None when its code is taken."""
    statement = pg_insert(TradingPlatform).values(**values).on_conflict_do_nothing().returning(TradingPlatform)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_active_platform(session: AsyncSession, code: str) -> TradingPlatform | None:
    statement = select(TradingPlatform).where(TradingPlatform.code == code, TradingPlatform.active.is_(True))
    return (await session.execute(statement)).scalar_one_or_none()


async def list_platforms(session: AsyncSession) -> list[TradingPlatform]:
    return list((await session.execute(select(TradingPlatform).order_by(TradingPlatform.code))).scalars())


async def insert_transfer(session: AsyncSession, *, values: dict[str, Any]) -> PlatformTransfer:
    transfer = PlatformTransfer(**values)
    session.add(transfer)
    await session.flush()
    return transfer


async def insert_messages(session: AsyncSession, *, transfer_id: uuid.UUID, sent: dict, received: dict) -> None:
    await session.execute(
        insert(PlatformMessage),
        [
            {"transfer_id": transfer_id, "direction": "sent", "body": sent},
            {"transfer_id": transfer_id, "direction": "received", "body": received},
        ],
    )


async def messages_of(session: AsyncSession, transfer_id: uuid.UUID) -> list[PlatformMessage]:
    statement = select(PlatformMessage).where(PlatformMessage.transfer_id == transfer_id).order_by(PlatformMessage.id)
    return list((await session.execute(statement)).scalars())


async def get_transfer(session: AsyncSession, transfer_id: uuid.UUID, *, for_update: bool = False) -> PlatformTransfer | None:
    statement = (
        select(PlatformTransfer).where(PlatformTransfer.id == transfer_id).execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_notified_transfers(session: AsyncSession, *, limit: int) -> list[PlatformTransfer]:
    """Transfers waiting for a platform's answer, oldest deadline first, locked; rows another
    transaction is answering are skipped."""
    statement = (
        select(PlatformTransfer)
        .where(PlatformTransfer.status == "notified")
        .order_by(PlatformTransfer.deadline, PlatformTransfer.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def list_transfers(
    session: AsyncSession, *, holder_party_id: uuid.UUID | None, asset_id: int | None, status: str | None,
    before: datetime | None, limit: int,
) -> list[tuple[PlatformTransfer, str]]:
    """Transfers, newest first, each with its emission's registration number."""
    statement = (
        select(PlatformTransfer, Emission.registration_number)
        .join(Emission, Emission.asset_id == PlatformTransfer.asset_id)
        .order_by(PlatformTransfer.created_at.desc(), PlatformTransfer.id)
        .limit(limit)
    )
    if holder_party_id is not None:
        statement = statement.where(PlatformTransfer.holder_party_id == holder_party_id)
    if asset_id is not None:
        statement = statement.where(PlatformTransfer.asset_id == asset_id)
    if status is not None:
        statement = statement.where(PlatformTransfer.status == status)
    if before is not None:
        statement = statement.where(PlatformTransfer.created_at < before)
    return [(transfer, number) for transfer, number in await session.execute(statement)]


async def units_returnable(session: AsyncSession, *, asset_id: int, platform_code: str) -> int:
    """Units of the emission on the platform that no return claims yet: confirmed transfers out, less
    confirmed and pending returns."""
    signed = case(
        (PlatformTransfer.direction == "out", PlatformTransfer.units),
        else_=-PlatformTransfer.units,
    )
    statement = select(func.coalesce(func.sum(signed), 0)).where(
        PlatformTransfer.asset_id == asset_id,
        PlatformTransfer.platform_code == platform_code,
        (PlatformTransfer.status == "confirmed")
        | ((PlatformTransfer.direction == "in") & (PlatformTransfer.status == "notified")),
    )
    return int((await session.execute(statement)).scalar_one())

