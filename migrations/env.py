"""Alembic environment: runs migrations through asyncpg on the URL the platform passes in."""

import asyncio
import concurrent.futures

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import dfa.custody.models  # noqa: F401  (registers the tables on the metadata)
import dfa.issuance.models  # noqa: F401
import dfa.ledger.models  # noqa: F401
import dfa.platform.audit.models  # noqa: F401
import dfa.platform.calendar.models  # noqa: F401
import dfa.platform.identity.models  # noqa: F401
import dfa.platform.models  # noqa: F401
import dfa.reconciliation.models  # noqa: F401
import dfa.settlement.models  # noqa: F401
from dfa.platform.database import Base, asyncpg_url
from dfa.platform.settings import get_settings

target_metadata = Base.metadata


def database_url() -> str:
    url = context.config.attributes.get("database_url")
    if url:
        return url
    from dfa.platform.database import resolve_database_url

    return asyncpg_url(resolve_database_url(get_settings()))


def do_run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run_async_migrations())
    else:  # called from async code: migrate on a thread with its own loop
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, run_async_migrations()).result()
