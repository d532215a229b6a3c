"""SQL of the notices about breaches."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.reconciliation.models import Notice


async def insert_notice(session: AsyncSession, *, values: dict[str, Any]) -> Notice | None:
    """The new notice, or None when the breach has a notice to this recipient already."""
    statement = (
        pg_insert(Notice)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Notice.breach_id, Notice.recipient])
        .returning(Notice)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def get_notice(session: AsyncSession, *, breach_id: int, recipient: str) -> Notice | None:
    statement = select(Notice).where(Notice.breach_id == breach_id, Notice.recipient == recipient)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_notice_by_id(session: AsyncSession, notice_id: uuid.UUID) -> Notice | None:
    statement = select(Notice).where(Notice.id == notice_id).execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def notices_of_breach(session: AsyncSession, *, breach_id: int) -> list[Notice]:
    statement = (
        select(Notice).where(Notice.breach_id == breach_id).order_by(Notice.recipient != "national_bank", Notice.id)
    )
    return list((await session.execute(statement)).scalars())


async def undelivered_notices(session: AsyncSession, *, limit: int) -> list[Notice]:
    statement = (
        select(Notice)
        .where(Notice.delivered_at.is_(None))
        .order_by(Notice.created_at, Notice.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def record_receipt(
    session: AsyncSession, *, notice_id: uuid.UUID, receipt_id: str, delivered_at: datetime
) -> None:
    await session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(receipt_id=receipt_id, delivered_at=delivered_at)
        .execution_options(synchronize_session=False)
    )


async def count_failed_attempt(session: AsyncSession, *, notice_id: uuid.UUID, error: str) -> None:
    await session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(attempts=Notice.attempts + 1, last_error=error)
        .execution_options(synchronize_session=False)
    )
