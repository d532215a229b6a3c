"""The chain mirror's worker: one per deployment, however many app instances run."""

import asyncio
import logging

from sqlalchemy import text

from dfa.custody.errors import ChainUnavailable
from dfa.custody.service.mirror import Mirror

log = logging.getLogger(__name__)
# pg_advisory_lock key of the mirror ("dfa-chain" in ASCII): whoever holds it is the only sender,
# so two instances never hand out the same nonce.
MIRROR_LOCK = 0x6466612D636861


async def run_mirror(mirror: Mirror) -> None:
    """Mirror the ledger to the chain until cancelled; backs off while the node is down."""
    settings = mirror.settings
    while True:
        async with mirror.database.engine.connect() as connection:
            if not await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIRROR_LOCK}):
                await connection.rollback()
                await asyncio.sleep(settings.chain_retry_max_s / 10)
                continue
            await connection.commit()
            try:
                await _mirror_while_holding_the_lock(mirror)
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIRROR_LOCK})
                await connection.commit()


async def _mirror_while_holding_the_lock(mirror: Mirror) -> None:
    settings = mirror.settings
    backoff = settings.chain_retry_base_s
    while True:
        try:
            done = await mirror.run_once()
            backoff = settings.chain_retry_base_s
            if not done.work:
                await asyncio.sleep(settings.chain_mirror_interval_s)
        except ChainUnavailable as error:
            log.warning("chain mirror waiting for the node", extra={"error": str(error), "retry_in_s": backoff})
            await asyncio.sleep(backoff)
            backoff = min(settings.chain_retry_max_s, backoff * 2)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep mirroring: one failed pass must not stop the worker for good
            log.exception("chain mirror pass failed")
            await asyncio.sleep(backoff)
            backoff = min(settings.chain_retry_max_s, backoff * 2)
