"""Periodic work inside the app process, and the platform's own jobs."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dfa.platform import service
from dfa.platform.database import Database
from dfa.platform.settings import Settings

log = logging.getLogger(__name__)


async def run_periodically(name: str, interval_s: float, work: Callable[[], Awaitable[int]]) -> None:
    """Run `work` every `interval_s` seconds until cancelled; a failed run is logged, not fatal."""
    while True:
        try:
            done = await work()
            if done:
                log.info("job ran", extra={"job": name, "items": done})
        except Exception:  # keep the schedule: one failed run must not stop the job for good
            log.exception("job failed", extra={"job": name})
        await asyncio.sleep(interval_s)


async def purge_idempotency_records_once(database: Database, settings: Settings) -> int:
    async with database.unit_of_work() as session:
        return await service.purge_idempotency_records(session, settings=settings)
