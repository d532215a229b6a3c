"""Composition root: builds the app, mounts every router. Nothing imports this module."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from dfa import demo
from dfa.ledger import jobs as ledger_jobs
from dfa.ledger.router import router as ledger_router
from dfa.platform import jobs as platform_jobs
from dfa.platform.database import Database, resolve_database_url, run_migrations_async
from dfa.platform.jobs import run_periodically
from dfa.platform.router import router as platform_router
from dfa.platform.router import staff as parties_router
from dfa.platform.settings import Settings, get_settings
from dfa.platform.web import RequestContextMiddleware, install_error_handlers

log = logging.getLogger("dfa")


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """The platform's ASGI app. Without a `database` it connects (and migrates) at start."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database
        if db is None:
            url = await asyncio.to_thread(resolve_database_url, settings)
            await run_migrations_async(url)
            db = Database.from_url(url, settings)
        app.state.database = db
        if settings.demo_data:
            async with db.unit_of_work() as session:
                if await demo.seed(session, settings=settings):
                    log.info("demo data seeded")
        jobs = [
            asyncio.create_task(
                run_periodically(
                    "expire-holds", settings.hold_expiry_interval_s, lambda: ledger_jobs.expire_holds_once(db, settings)
                )
            ),
            asyncio.create_task(
                run_periodically(
                    "purge-idempotency-records",
                    settings.idempotency_purge_interval_s,
                    lambda: platform_jobs.purge_idempotency_records_once(db, settings),
                )
            ),
        ]
        try:
            yield
        finally:
            for job in jobs:
                job.cancel()
            for job in jobs:
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            if database is None:
                await db.dispose()

    app = FastAPI(
        title="DFA platform operator core",
        version="0.1.0",
        description="Holders ledger and platform API of a digital financial asset platform operator. "
        "Errors are RFC 9457 problem details; mutating calls require an Idempotency-Key header.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.request_body_max_bytes)
    install_error_handlers(app)
    app.include_router(platform_router)
    app.include_router(parties_router)
    app.include_router(ledger_router)
    return app
