"""Every SQL statement of the business-day calendar."""

from datetime import date

from sqlalchemy import Row, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.calendar.models import Override


async def list_overrides(session: AsyncSession) -> list[Override]:
    """Every override, in day order (a few dozen a year: the table is read whole)."""
    return list((await session.execute(select(Override).order_by(Override.day))).scalars())


async def get_override_for_update(session: AsyncSession, day: date) -> Override | None:
    """The day's override, locked until the transaction ends, or None."""
    statement = select(Override).where(Override.day == day).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def upsert_override(
    session: AsyncSession, *, day: date, kind: str, reason: str, changed_by: str
) -> Override:
    """The day's override as now stored: inserted, or replaced with a fresh `changed_at`."""
    statement = (
        pg_insert(Override)
        .values(day=day, kind=kind, reason=reason, changed_by=changed_by)
        .on_conflict_do_update(
            index_elements=[Override.day],
            set_={"kind": kind, "reason": reason, "changed_by": changed_by, "changed_at": func.now()},
        )
        .returning(Override)
        # A replaced row may already be in the session (read for the audit trail): refresh it.
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def delete_override(session: AsyncSession, day: date) -> Row | None:
    """Delete the day's override; its last state (kind, reason, changed_by, changed_at), or None."""
    statement = (
        delete(Override)
        .where(Override.day == day)
        .returning(Override.kind, Override.reason, Override.changed_by, Override.changed_at)
    )
    return (await session.execute(statement)).one_or_none()
