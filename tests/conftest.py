"""One embedded PostgreSQL per test session, migrated once; each service test in a rolled-back transaction."""

import asyncio
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.database import Database, run_migrations, start_embedded_postgres
from dfa.platform.settings import Settings
from tests.factories import SECURITY_PROTOCOL_SUBMITTED_ON
from tests.identity import Users
from tests.recording import ResponseRecorder, start_recording
from tests.servers import served


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long-form",
        action="store_true",
        help="run the fault and attack suites in their long form (more clients, operations, kills and examples)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scans_the_session: runs after every other test (it reads what they left)")
    config.addinivalue_line("markers", "fault: a proof under faults (crashes, kills, restarts); short unless --long-form")
    config.addinivalue_line("markers", "attack: a proof under hostile input; short unless --long-form")
    start_recording()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("scans_the_session") is not None)


@pytest.fixture(scope="session")
def long_form(request: pytest.FixtureRequest) -> bool:
    """Whether the fault and attack suites run in their long form."""
    return bool(request.config.getoption("--long-form"))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dfa-test-") as data_dir:
        url = start_embedded_postgres(Path(data_dir))
        run_migrations(url)
        yield url
        import pgserver

        pgserver.get_server(Path(data_dir) / "pg", cleanup_mode="stop").cleanup()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        demo_data=False,
        data_dir=tmp_path_factory.mktemp("data"),
        # Every test signs in from 127.0.0.1; the per-address limit has tests of its own.
        sign_in_attempts_per_minute=100_000,
        # The chain mirror has tests of its own, on a database of its own.
        chain_mirror_enabled=False,
        # Statements, withdrawals and the day's settlement are run by the tests themselves.
        bank_poll_interval_s=0,
        withdrawal_submit_interval_s=0,
        settlement_end_of_day_interval_s=0,
        issuance_job_interval_s=0,
        # The daily reconciliation and its notices are run by the tests themselves.
        reconciliation_schedule="",
        notice_delivery_interval_s=0,
        security_protocol_submitted_on=SECURITY_PROTOCOL_SUBMITTED_ON,
        # Pages are asserted in English unless a test chooses a language (the default has a test of its own).
        cabinet_default_language="en",
        _env_file=None,
    )


@pytest.fixture(scope="session")
async def database(database_url: str, settings: Settings) -> AsyncIterator[Database]:
    db = Database.from_url(database_url, settings)
    yield db
    await db.dispose()


def url_of(database_url: str, name: str) -> str:
    """The URL of database `name` on the server of `database_url`."""
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


async def outside_transaction(database: Database, statement: str) -> None:
    """Run `statement` on the test server outside any transaction (CREATE DATABASE and DROP DATABASE need that)."""
    async with database.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(statement))


@pytest.fixture
async def fresh_database(database: Database, database_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on the test server; dropped at the end."""
    name = f"dfa_fresh_{uuid.uuid4().hex[:12]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}"')
    try:
        yield url_of(database_url, name)
    finally:
        await outside_transaction(database, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session whose work is rolled back when the test ends; services' savepoints nest inside it."""
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture(scope="session")
def app(settings: Settings):
    """The platform's ASGI app; tests reach its simulators through `app.state`."""
    from dfa.main import create_app

    app = create_app(settings)
    app.add_middleware(ResponseRecorder)
    return app


@pytest.fixture(scope="session")
def server_url(app) -> Iterator[str]:
    """The platform served over real HTTP by uvicorn, in a thread with its own event loop."""
    with served(app, lifespan="on") as url:
        yield url


@pytest.fixture
def anonymous(server_url: str) -> Iterator[httpx.Client]:
    """A client with no credentials."""
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def users(server_url: str, database: Database, settings: Settings) -> AsyncIterator[Users]:
    """One signed-in user of each role (and a second investor and issuer), shared by the session."""
    created = Users(server_url)
    await created.create_all(database, settings)
    yield created
    created.close()


@pytest.fixture
def api(users) -> httpx.Client:
    """A client signed in as an operator administrator (session cookie and CSRF token)."""
    return users.client("operator_admin")


class LoopThread:
    """An event loop in a thread, for property tests that drive async code from synchronous examples."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture
def registry_closed_now(settings):
    """Today's business day closes a second from now (and the registry of today is fixed then)."""
    original = settings.business_day_closes_at
    close = datetime.now(ZoneInfo(settings.timezone)) + timedelta(seconds=1)
    settings.business_day_closes_at = close.time()
    time.sleep(1.2)
    try:
        yield close.date()
    finally:
        settings.business_day_closes_at = original
