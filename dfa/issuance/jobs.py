"""Scheduled work of issuance: deadlines that pass without anyone acting — overdue applications flagged to
staff, placements whose window closed allocated, trading platforms' answers fetched and lapsed transfers
released. Each step is a transaction of its own, so one failing leaves the others done."""

import logging

from dfa.issuance.service import applications, placement, platforms
from dfa.issuance.trading_platforms import TradingPlatforms
from dfa.platform.database import Database
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.settings import Settings

log = logging.getLogger(__name__)


async def deadlines_once(database: Database, trading_platforms: TradingPlatforms, settings: Settings) -> int:
    """One pass over issuance's deadlines; returns how many applications, placements and transfers it moved on."""
    async with database.unit_of_work() as session:
        flagged = await applications.flag_overdue(session, settings=settings)
    async with database.unit_of_work() as session:
        closed = await placement.close_due_placements(session, settings=settings)
    try:
        async with database.unit_of_work() as session:
            answered = await platforms.refresh_transfers(session, platforms=trading_platforms, settings=settings)
    except ExternalPartyUnavailable:
        log.warning("a trading platform did not answer; its transfers are asked about at the next pass")
        answered = {}
    return flagged + closed + sum(n for status, n in answered.items() if status != "notified")
