"""SQL of breaches."""

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.reconciliation.models import Breach


async def lock_open_breaches(session: AsyncSession) -> list[Breach]:
    statement = select(Breach).where(Breach.status == "open").order_by(Breach.id).with_for_update()
    return list((await session.execute(statement.execution_options(populate_existing=True))).scalars())


async def insert_breach(session: AsyncSession, *, values: dict[str, Any]) -> Breach:
    breach = Breach(**values)
    session.add(breach)
    await session.flush()
    return breach


async def update_breaches(session: AsyncSession, ids: list[int], **values: Any) -> None:
    if ids:
        await session.execute(
            update(Breach).where(Breach.id.in_(ids)).values(**values).execution_options(synchronize_session=False)
        )


async def get_breach(session: AsyncSession, breach_id: int, *, for_update: bool = False) -> Breach | None:
    statement = select(Breach).where(Breach.id == breach_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_breaches(
    session: AsyncSession, *, status: str | None, report_id: int | None, before: int | None, limit: int
) -> list[Breach]:
    statement = select(Breach).order_by(Breach.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(Breach.status == status)
    if report_id is not None:
        statement = statement.where(Breach.opened_report_id <= report_id, Breach.last_report_id >= report_id)
    if before is not None:
        statement = statement.where(Breach.id < before)
    return list((await session.execute(statement)).scalars())
