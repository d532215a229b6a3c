"""Scheduled work of the ledger."""

import asyncio
import logging

from dfa.ledger import service
from dfa.platform.database import Database
from dfa.platform.settings import Settings

log = logging.getLogger(__name__)


async def expire_holds_once(database: Database, settings: Settings) -> int:
    """Release expired holds, one bounded sweep per transaction, until none is left."""
    total = 0
    while True:
        async with database.unit_of_work() as session:
            released = await service.expire_holds(session, limit=settings.hold_expiry_sweep_limit)
        total += released
        if released < settings.hold_expiry_sweep_limit:
            return total


async def expire_holds_forever(database: Database, settings: Settings) -> None:
    while True:
        try:
            released = await expire_holds_once(database, settings)
            if released:
                log.info("holds expired", extra={"released": released})
        except Exception:  # keep sweeping: one failed sweep must not stop expiry for good
            log.exception("hold expiry sweep failed")
        await asyncio.sleep(settings.hold_expiry_interval_s)
