"""The settlement day: what is due settles, what the close left unsettled fails, day orders expire."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.settings import Settings
from dfa.settlement.service import instructions, orders


@dataclass(frozen=True)
class DayReport:
    settled: int
    failed: int
    expired: int


async def end_of_day(
    session: AsyncSession, *, centre: AntiFraudCentre, settings: Settings, actor: str, now: datetime | None = None
) -> DayReport:
    """Settle matched instructions due by today, fail those whose settlement day has closed (REQ-37) and
    expire day orders of past trade dates, releasing every hold of what did not settle. Safe to run
    at any time and from several instances: each instruction and book is taken under its lock."""
    settled = await instructions.settle_due(session, centre=centre, settings=settings, actor=actor, now=now)
    failed = await instructions.fail_overdue(session, settings=settings, actor=actor, now=now)
    today = await instructions.business_date(session, settings=settings, now=now)
    expired = await orders.expire_day_orders(session, today=today)
    return DayReport(settled, failed, expired)
