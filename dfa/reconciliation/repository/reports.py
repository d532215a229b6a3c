"""SQL of reports, coverage history, holder trees and sign-offs."""

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.database import driver_connection
from dfa.reconciliation.models import Coverage, HolderLeaf, HolderTree, Report, SignOff


async def transaction_time(session: AsyncSession) -> datetime:
    """The instant the transaction's snapshot belongs to."""
    return (await session.execute(select(func.now()))).scalar_one()


async def next_report_id(session: AsyncSession) -> int:
    return (await session.execute(text("SELECT nextval(pg_get_serial_sequence('reconciliation_reports', 'id'))"))).scalar_one()


async def latest_version(session: AsyncSession, business_date: date) -> int:
    statement = select(func.coalesce(func.max(Report.version), 0)).where(Report.business_date == business_date)
    return (await session.execute(statement)).scalar_one()


async def insert_report(session: AsyncSession, *, values: dict[str, Any]) -> Report:
    report = Report(**values)
    session.add(report)
    await session.flush()
    return report


async def insert_coverage(session: AsyncSession, *, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(Coverage), list(rows))


async def insert_trees(session: AsyncSession, *, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(HolderTree), list(rows))


async def copy_leaves(session: AsyncSession, *, records: Sequence[tuple[Any, ...]]) -> None:
    """Append leaves with COPY: a million holders take seconds, not minutes."""
    driver = await driver_connection(session)
    await driver.copy_records_to_table(
        HolderLeaf.__tablename__, records=records,
        columns=["report_id", "asset_id", "account_id", "owner_party_id", "quantity"],
    )


async def get_report(session: AsyncSession, report_id: int) -> Report | None:
    return await session.get(Report, report_id)


async def latest_report(session: AsyncSession, business_date: date) -> Report | None:
    statement = (
        select(Report).where(Report.business_date == business_date).order_by(Report.version.desc()).limit(1)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def list_reports(session: AsyncSession, *, before: int | None, limit: int) -> list[tuple[Report, SignOff | None]]:
    statement = (
        select(Report, SignOff).outerjoin(SignOff, SignOff.report_id == Report.id).order_by(Report.id.desc()).limit(limit)
    )
    if before is not None:
        statement = statement.where(Report.id < before)
    return [(report, sign_off) for report, sign_off in await session.execute(statement)]


async def get_sign_off(session: AsyncSession, report_id: int) -> SignOff | None:
    return await session.get(SignOff, report_id)


async def insert_sign_off(session: AsyncSession, *, values: dict[str, Any]) -> SignOff | None:
    statement = pg_insert(SignOff).values(**values).on_conflict_do_nothing().returning(SignOff)
    return (await session.execute(statement)).scalar_one_or_none()


async def coverage_history(session: AsyncSession, *, asset_id: int, limit: int) -> list[Any]:
    """The asset's coverage per day from the latest version of each day's report, newest `limit` days."""
    latest = (
        select(Coverage, Report.version)
        .join(Report, Report.id == Coverage.report_id)
        .where(Coverage.asset_id == asset_id)
        .ext(distinct_on(Coverage.business_date))
        .order_by(Coverage.business_date.desc(), Report.version.desc())
        .limit(limit)
        .subquery()
    )
    rows = await session.execute(select(latest).order_by(latest.c.business_date))
    return list(rows)


async def get_tree(session: AsyncSession, *, report_id: int, asset_id: int) -> HolderTree | None:
    return await session.get(HolderTree, (report_id, asset_id))


async def tree_leaves(session: AsyncSession, *, report_id: int, asset_id: int) -> list[Any]:
    statement = (
        select(HolderLeaf.account_id, HolderLeaf.owner_party_id, HolderLeaf.quantity)
        .where(HolderLeaf.report_id == report_id, HolderLeaf.asset_id == asset_id)
        .order_by(HolderLeaf.account_id)
    )
    return list(await session.execute(statement))


async def latest_trees(session: AsyncSession, *, asset_id: int, limit: int) -> list[tuple[HolderTree, Report]]:
    statement = (
        select(HolderTree, Report).join(Report, Report.id == HolderTree.report_id)
        .where(HolderTree.asset_id == asset_id).order_by(Report.id.desc()).limit(limit)
    )
    return [(tree, report) for tree, report in await session.execute(statement)]
