"""Scheduled work of the ledger."""

from dfa.ledger import service
from dfa.platform.database import Database
from dfa.platform.settings import Settings


async def expire_holds_once(database: Database, settings: Settings) -> int:
    """Release expired holds, one bounded sweep per transaction, until none is left."""
    total = 0
    while True:
        async with database.unit_of_work() as session:
            released = await service.expire_holds(session, limit=settings.hold_expiry_sweep_limit)
        total += released
        if released < settings.hold_expiry_sweep_limit:
            return total

