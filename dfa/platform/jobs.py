"""Periodic work inside the app process, and the platform's own jobs."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dfa.platform import service
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.identity.service import users
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


async def purge_expired_records_once(database: Database, settings: Settings) -> int:
    """Forget what has outlived its use: idempotent responses past retention, ended sessions,
    spent grants, old rate-limit windows."""
    async with database.unit_of_work() as session:
        return await service.purge_idempotency_records(session, settings=settings) + await users.purge_expired(
            session, settings=settings
        )


async def record_configuration(database: Database, settings: Settings) -> bool:
    """Record the configuration the platform starts with when it differs from the last one recorded
    (REQ-55: configuration changes are security events); returns whether it did."""
    async with database.unit_of_work() as session:
        return await audit.record_configuration(session, configuration=settings.public_view())
