"""Composition root: builds the app, mounts every router. Nothing imports this module."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from dfa import demo
from dfa.cabinet.account import router as account_pages
from dfa.cabinet.admin import router as admin_pages
from dfa.cabinet.compliance import router as compliance_pages
from dfa.cabinet.issuer import router as issuer_pages
from dfa.cabinet.portfolio import router as portfolio_pages
from dfa.cabinet.security_events import router as security_event_pages
from dfa.cabinet.shell import router as shell_pages
from dfa.cabinet.trading import router as trading_pages
from dfa.custody import jobs as custody_jobs
from dfa.custody.chain import chain_from_settings
from dfa.custody.router import router as custody_router
from dfa.custody.service import wallets
from dfa.custody.service.mirror import Mirror
from dfa.custody.service.signing import Signer
from dfa.custody.vault import Vault, key_ring_from_settings
from dfa.issuance import jobs as issuance_jobs
from dfa.issuance.custodian import custodian_from_settings
from dfa.issuance.router import router as issuance_router
from dfa.issuance.routes.issuers import DOCUMENT_UPLOAD_PATH
from dfa.issuance.trading_platforms import trading_platforms_from_settings
from dfa.ledger import jobs as ledger_jobs
from dfa.ledger.router import router as ledger_router
from dfa.platform import faults
from dfa.platform import jobs as platform_jobs
from dfa.platform.adapters.antifraud import antifraud_centre_from_settings
from dfa.platform.adapters.identification import identification_centre_from_settings
from dfa.platform.adapters.national_bank import national_bank_from_settings
from dfa.platform.audit.router import router as security_events_router
from dfa.platform.calendar.router import router as calendar_router
from dfa.platform.database import Database, resolve_database_url, run_migrations_async
from dfa.platform.identity import router as identity
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.guard import document_security
from dfa.platform.jobs import run_periodically
from dfa.platform.router import router as platform_router
from dfa.platform.settings import Settings, get_settings
from dfa.platform.web import RequestContextMiddleware, document_problems, install_error_handlers
from dfa.reconciliation import jobs as reconciliation_jobs
from dfa.reconciliation.jobs import Reconciliation
from dfa.reconciliation.router import router as reconciliation_router
from dfa.reconciliation.service.runs import Counterparties
from dfa.settlement import jobs as settlement_jobs
from dfa.settlement.bank import bank_from_settings
from dfa.settlement.cash_router import router as cash_router
from dfa.settlement.router import router as trading_router
from dfa.settlement.service import accounts as settlement_accounts

log = logging.getLogger("dfa")


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """The platform's ASGI app. Without a `database` it connects (and migrates) at start."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        faults.warn_if_active()
        db = database
        if db is None:
            url = await asyncio.to_thread(resolve_database_url, settings)
            await run_migrations_async(url)
            db = Database.from_url(url, settings)
        app.state.database = db
        app.state.mirror = Mirror(
            database=db, chain=app.state.chain, vault=app.state.vault, signer=app.state.signer, settings=settings
        )
        app.state.reconciliation = reconciliation = Reconciliation(
            database=db,
            counterparties=Counterparties(
                custodian=app.state.custodian, bank=app.state.bank,
                mirror=app.state.mirror if settings.chain_mirror_enabled else None,
            ),
            national_bank=app.state.national_bank, keys=app.state.keys, settings=settings,
        )
        await platform_jobs.record_configuration(db, settings)
        async with db.unit_of_work() as session:
            await wallets.ensure_segment_wallets(session, app.state.vault, settings=settings)
            await settlement_accounts.ensure_money(session, settings=settings)
        # Days missed while the platform was down are reconciled in the background, then the schedule runs.
        first_runs = [reconciliation.catch_up_quietly()]
        if settings.demo_data:
            async with db.unit_of_work() as session:
                if await demo.seed(
                    session, settings=settings, keys=app.state.keys, custodian=app.state.custodian,
                    centre=app.state.antifraud, bank=app.state.bank,
                ):
                    log.info("demo data seeded")
                    first_runs.append(demo.first_report(reconciliation, settings))
            demo.print_logins(settings)
        # (name, seconds between runs, one run); an interval of 0 turns a job off (the tests run them themselves).
        periodic = [
            ("expire-holds", settings.hold_expiry_interval_s, lambda: ledger_jobs.expire_holds_once(db, settings)),
            ("purge-expired-records", settings.idempotency_purge_interval_s,
             lambda: platform_jobs.purge_expired_records_once(db, settings)),
            ("settlement-end-of-day", settings.settlement_end_of_day_interval_s,
             lambda: settlement_jobs.end_of_day_once(db, app.state.antifraud, settings)),
            ("bank-statement-poll", settings.bank_poll_interval_s,
             lambda: settlement_jobs.poll_statement_once(db, app.state.bank, settings)),
            ("withdrawal-submission", settings.withdrawal_submit_interval_s,
             lambda: settlement_jobs.submit_withdrawals_once(db, app.state.bank, settings)),
            ("issuance-deadlines", settings.issuance_job_interval_s,
             lambda: issuance_jobs.deadlines_once(db, app.state.trading_platforms, settings)),
            ("notice-delivery", settings.notice_delivery_interval_s, reconciliation.deliver),
        ]
        jobs = [
            asyncio.create_task(run_periodically(name, interval_s, work))
            for name, interval_s, work in periodic if interval_s > 0
        ]
        if settings.chain_mirror_enabled:
            jobs.append(asyncio.create_task(custody_jobs.run_mirror(app.state.mirror)))
        jobs.extend(asyncio.create_task(run) for run in first_runs)
        scheduler = reconciliation_jobs.start_scheduler(reconciliation)
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            for job in jobs:
                job.cancel()
            for job in jobs:
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            await app.state.antifraud.aclose()
            await app.state.identification_centre.aclose()
            await app.state.bank.aclose()
            await app.state.custodian.aclose()
            await app.state.trading_platforms.aclose()
            await app.state.national_bank.aclose()
            if database is None:
                await db.dispose()

    app = FastAPI(
        title="DFA platform operator core",
        version="0.1.0",
        description="Holders ledger and platform API of a digital financial asset platform operator. "
        "Errors are RFC 9457 problem details; mutating calls require an Idempotency-Key header.",
        lifespan=lifespan,
    )
    if settings.demo_data and settings.environment == "production":
        raise RuntimeError("demo data is refused in production: set DEMO_DATA=false")
    app.state.settings = settings
    app.state.keys = Keys.load(settings)
    app.state.antifraud = antifraud_centre_from_settings(settings)
    app.state.identification_centre = identification_centre_from_settings(settings)
    app.state.vault = Vault(key_ring_from_settings(settings))
    app.state.signer = Signer(app.state.vault)
    app.state.chain = chain_from_settings(settings)
    app.state.bank = bank_from_settings(settings)
    app.state.custodian = custodian_from_settings(settings)
    app.state.trading_platforms = trading_platforms_from_settings(settings)
    app.state.national_bank = national_bank_from_settings(settings)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.request_body_max_bytes,
        # A document travels as a form: its bytes plus a little for the fields and the multipart framing.
        upload_limits=[(DOCUMENT_UPLOAD_PATH, settings.issuance_document_max_bytes + 65_536)],
    )
    install_error_handlers(app)
    app.include_router(platform_router)
    app.include_router(identity.security)
    app.include_router(identity.router)
    app.include_router(security_events_router)
    app.include_router(calendar_router)
    app.include_router(ledger_router)
    app.include_router(custody_router)
    app.include_router(cash_router)
    app.include_router(trading_router)
    app.include_router(issuance_router)
    app.include_router(reconciliation_router)
    app.include_router(shell_pages)
    app.include_router(compliance_pages)
    app.include_router(security_event_pages)
    app.include_router(portfolio_pages)
    app.include_router(trading_pages)
    app.include_router(account_pages)
    app.include_router(issuer_pages)
    app.include_router(admin_pages)
    build_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(document_security(build_openapi(), app.routes))
        return app.openapi_schema

    app.openapi = openapi
    return app
