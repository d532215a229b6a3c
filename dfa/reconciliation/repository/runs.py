"""SQL of reconciliation runs."""

from datetime import date
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.reconciliation.models import Report, Run


async def insert_run(session: AsyncSession, *, values: dict[str, Any]) -> Run:
    run = Run(**values)
    session.add(run)
    await session.flush()
    return run


async def get_run(session: AsyncSession, run_id: int) -> Run | None:
    return (await session.execute(select(Run).where(Run.id == run_id).execution_options(populate_existing=True))).scalar_one_or_none()


async def finish_run(session: AsyncSession, run_id: int, **values: Any) -> None:
    await session.execute(
        update(Run).where(Run.id == run_id).values(finished_at=func.now(), **values)
        .execution_options(synchronize_session=False)
    )


async def fail_running(session: AsyncSession, *, error: str) -> int:
    result = await session.execute(
        update(Run).where(Run.outcome == "running").values(outcome="failed", finished_at=func.now(), error=error)
    )
    return result.rowcount


async def list_runs(session: AsyncSession, *, before: int | None, limit: int) -> list[Run]:
    statement = select(Run).order_by(Run.id.desc()).limit(limit)
    if before is not None:
        statement = statement.where(Run.id < before)
    return list((await session.execute(statement)).scalars())


async def reported_days(session: AsyncSession, *, since: date, until: date) -> set[date]:
    statement = select(Report.business_date).where(Report.business_date.between(since, until)).distinct()
    return set((await session.execute(statement)).scalars())


async def first_run_day(session: AsyncSession) -> date | None:
    return (await session.execute(select(func.min(Run.business_date)))).scalar_one()
