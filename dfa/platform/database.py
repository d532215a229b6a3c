"""The database: embedded or external PostgreSQL, the async engine, units of work and migrations."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import MetaData, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from dfa.platform.settings import Settings

log = logging.getLogger(__name__)

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock wait that ran past lock_timeout

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """A check constraint's condition: the column holds one of these values."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def asyncpg_url(url: str) -> str:
    """The SQLAlchemy URL for asyncpg, whatever driver the given PostgreSQL URL names."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL keeping its data under `data_dir`; returns its URL."""
    import pgserver  # imported lazily: only the embedded mode needs it

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # The server is shared by every process using this directory (the CLI beside a running app) and
    # stops when the last of them exits; the data stays for the next start.
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri()


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session's transaction, for what SQLAlchemy does not offer (COPY) or
    does at a cost that matters (a million rows)."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def set_statement_timeout(session: AsyncSession, milliseconds: int) -> None:
    """Give the session's current transaction a statement timeout of its own (a long job's; requests keep
    DB_STATEMENT_TIMEOUT_MS). It ends with the transaction."""
    await session.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": f"{int(milliseconds)}ms"})


class Database:
    """One engine per process; units of work are transactions on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> "Database":
        engine = create_async_engine(
            asyncpg_url(url),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_overflow,
            # No pre-ping: it costs a round trip per unit of work; a dead connection is invalidated
            # by the error it raises, and connections are recycled hourly.
            pool_recycle=3600,
            connect_args={
                "server_settings": {
                    "statement_timeout": str(settings.db_statement_timeout_ms),
                    "TimeZone": "UTC",
                    "application_name": "dfa",
                }
            },
        )
        return cls(engine)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends normally, rolled back when it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; never commits (the pool rolls back when it takes the connection back,
        which, unlike an explicit rollback, leaves loaded objects readable)."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def exclusive(self, key: int, *, wait_s: float) -> AsyncIterator[bool]:
        """Hold PostgreSQL's session-level advisory lock `key` for the block, on a connection of its own,
        so work spanning several transactions runs in one process at a time across every instance.
        Yields whether the lock was obtained within `wait_s` seconds; a process that dies lets go of it
        with its connection."""
        async with self.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("SELECT set_config('lock_timeout', :ms, false)"), {"ms": f"{int(wait_s * 1000)}ms"})
            try:
                await autocommit.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                obtained = False
            else:
                obtained = True
            try:
                yield obtained
            finally:
                if obtained:
                    await autocommit.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await autocommit.execute(text("RESET lock_timeout"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def resolve_database_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one started on demand."""
    if settings.database_url:
        return settings.database_url
    return start_embedded_postgres(settings.data_dir)


def run_migrations(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`, the newest by default (Alembic); safe to run at every start."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = asyncpg_url(url)
    command.upgrade(config, revision)


async def run_migrations_async(url: str) -> None:
    await asyncio.to_thread(run_migrations, url)
