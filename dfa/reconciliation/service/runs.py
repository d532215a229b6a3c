"""One reconciliation run of one day, start to end (REQ-30, REQ-31).

A run holds the reconciliation lock (a PostgreSQL advisory lock, so one instance runs at a time), records
itself, asks the outside world first — each custodian for a statement on its assets, the chain for its
balances, the bank for the client-money statement — and then, in one REPEATABLE READ transaction, reads
the books at one instant, checks everything, fixes the holder trees, opens, carries and clears breaches,
blocks and unblocks issuers, writes the notices, and writes the signed report. Either all of that commits
or none of it does; the run records how it ended either way.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.errors import ChainUnavailable
from dfa.custody.service.mirror import EmissionComparison, Mirror
from dfa.issuance.custodian import Custodian
from dfa.issuance.service import emissions as issuance_emissions
from dfa.issuance.service import issuers
from dfa.ledger import service as ledger
from dfa.platform import service as platform
from dfa.platform.access import Role
from dfa.platform.audit import service as audit
from dfa.platform.database import Database, set_statement_timeout
from dfa.platform.errors import DomainError, ExternalPartyUnavailable, invariant
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.service.parties import local_today
from dfa.platform.settings import Settings
from dfa.reconciliation import errors
from dfa.reconciliation.models import Report, Run
from dfa.reconciliation.repository import reports as reports_repository
from dfa.reconciliation.repository import runs as repository
from dfa.reconciliation.service import breaches, checks, notices, proofs, reports
from dfa.settlement.bank import Bank
from dfa.settlement.service import cash

log = logging.getLogger(__name__)

LOCK_KEY = int.from_bytes(b"dfa-rcn", "big")  # the reconciliation lock, across every instance
ACTOR = "reconciliation"
BLOCK_REFERENCE = "coverage"  # one reconciliation block per issuer, opened and lifted as coverage goes


@dataclass(frozen=True)
class Counterparties:
    """Who a run asks: the custodians, the bank, and the chain (None when the chain mirror is off)."""

    custodian: Custodian
    bank: Bank
    mirror: Mirror | None


@dataclass(frozen=True)
class RunResult:
    run: Run
    report: Report | None  # None when skipped: the day's report exists already


@dataclass
class _Evidence:
    """What the outside world said, gathered before the books are read."""

    statements: dict[tuple[str, str], checks.Answer]
    chain: dict[int, EmissionComparison] | None  # None: not checked; empty with `chain_error`: unavailable
    chain_error: str | None
    bank_closing: int | None
    bank_error: str | None
    statement_date: date


async def reconcile_day(
    database: Database, *, day: date, trigger: str, requested_by: str, force: bool,
    counterparties: Counterparties, keys: Keys, settings: Settings,
) -> RunResult:
    """Reconcile `day` unless it has a report already (then the run is recorded as skipped), or anyway
    with `force` (the report is then the day's next version). Waits up to `reconciliation_lock_wait_s`
    for another instance's run.

    Raises DayNotReconcilable, ReconciliationBusy; a run that fails is recorded as failed and its error
    raised.
    """
    if day > local_today(settings):
        raise errors.DayNotReconcilable(f"{day.isoformat()} has not come yet")
    async with database.exclusive(LOCK_KEY, wait_s=settings.reconciliation_lock_wait_s) as obtained:
        if not obtained:
            raise errors.ReconciliationBusy(
                f"another reconciliation run held the lock for more than {settings.reconciliation_lock_wait_s} s"
            )
        async with database.unit_of_work() as session:
            # Holding the lock, any run still marked running belongs to a process that died.
            await repository.fail_running(session, error="interrupted: the process running it stopped")
            existing = await reports_repository.latest_report(session, day)
            skip = existing is not None and not force
            run = await repository.insert_run(session, values={
                "business_date": day, "trigger": trigger, "forced": force, "requested_by": requested_by[:200],
                "started_at": datetime.now(UTC),
                **({"outcome": "skipped", "finished_at": datetime.now(UTC), "report_id": existing.id} if skip else {}),
            })
            await audit.record(
                session, kind="reconciliation.run_started", actor=requested_by, subject=f"day:{day.isoformat()}",
                details={"run_id": run.id, "trigger": trigger, "force": force, "skipped": skip},
            )
        if skip:
            return RunResult(run, None)
        try:
            evidence = await _gather(database, counterparties, settings)
            async with database.unit_of_work() as session:
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                await set_statement_timeout(session, settings.reconciliation_statement_timeout_ms)
                report = await _write_report(session, run=run, day=day, evidence=evidence, keys=keys, settings=settings)
                await repository.finish_run(
                    session, run.id, outcome="breaches" if report.breaches else "clean", report_id=report.id
                )
        except BaseException as error:
            async with database.unit_of_work() as session:
                await repository.finish_run(session, run.id, outcome="failed", error=_summary(error))
            raise
    log.info("reconciliation run ended", extra={"run_id": run.id, "day": day.isoformat(), "report_id": report.id,
                                                "breaches": report.breaches})
    return RunResult(run, report)


async def get_run(session: AsyncSession, run_id: int) -> Run:
    run = await repository.get_run(session, run_id)
    invariant(run is not None, f"run {run_id} does not exist")
    return run


async def list_runs(session: AsyncSession, *, before: int | None, limit: int) -> list[Run]:
    """Runs newest first."""
    return await repository.list_runs(session, before=before, limit=limit)


def _summary(error: BaseException) -> str:
    detail = error.detail if isinstance(error, DomainError) else str(error)
    return f"{type(error).__name__}: {detail}"[:2_000]


# --- asking the outside world -----------------------------------------------------------------------------


async def _gather(database: Database, counterparties: Counterparties, settings: Settings) -> _Evidence:
    async with database.read() as session:
        monitored = await issuance_emissions.monitored_emissions(session)
    assets = sorted({(e.custodian, e.custodian_reference) for e in monitored if e.custodian is not None})
    statements, (chain, chain_error), (closing, bank_error, statement_date) = await asyncio.gather(
        _statements(counterparties.custodian, assets, concurrency=settings.reconciliation_custodian_concurrency),
        _chain(counterparties.mirror),
        _bank(database, counterparties.bank, settings),
    )
    return _Evidence(statements, chain, chain_error, closing, bank_error, statement_date)


async def _statements(
    custodian: Custodian, assets: list[tuple[str, str]], *, concurrency: int
) -> dict[tuple[str, str], checks.Answer]:
    gate = asyncio.Semaphore(concurrency)

    async def ask(asset: tuple[str, str]) -> checks.Answer:
        async with gate:
            try:
                return await custodian.statement(custodian=asset[0], reference=asset[1])
            except ExternalPartyUnavailable as unavailable:
                return unavailable

    return dict(zip(assets, await asyncio.gather(*(ask(asset) for asset in assets)), strict=True))


async def _chain(mirror: Mirror | None) -> tuple[dict[int, EmissionComparison] | None, str | None]:
    if mirror is None:
        return None, None
    try:
        return {c.asset_id: c for c in await mirror.compare()}, None
    except ChainUnavailable as unavailable:
        return {}, unavailable.detail


async def _bank(database: Database, bank: Bank, settings: Settings) -> tuple[int | None, str | None, date]:
    """Today's statement of the client-money account, imported first so that every line the bank booked
    is on the books when they are compared with its closing balance."""
    today = local_today(settings)
    try:
        async with database.unit_of_work() as session:
            imported = await cash.fetch_statement(session, bank=bank, day=today, actor=ACTOR, settings=settings)
    except DomainError as refused:
        return None, refused.detail, today
    if imported.closing_balance_tiyn is None:
        return None, "the bank's statement carries no closing balance", today
    return imported.closing_balance_tiyn, None, today


# --- the report ---------------------------------------------------------------------------------------------


async def _write_report(
    session: AsyncSession, *, run: Run, day: date, evidence: _Evidence, keys: Keys, settings: Settings
) -> Report:
    as_of = await reports_repository.transaction_time(session)
    report_id = await reports_repository.next_report_id(session)
    version = await reports_repository.latest_version(session, day) + 1
    monitored = await issuance_emissions.monitored_emissions(session)
    # An emission registered after the statements were asked for is checked by the next run.
    checked = [e for e in monitored if e.custodian is None or (e.custodian, e.custodian_reference) in evidence.statements]
    by_asset = {e.asset_id: e for e in monitored}
    coverage = checks.coverage(
        checked, evidence.statements, today=local_today(settings), max_age_days=settings.reconciliation_valuation_max_age_days
    )
    books = checks.ledger(await ledger.integrity_by_asset(session), by_asset)
    position = await cash.client_money_position(session, settings=settings)
    trees = await proofs.fix_trees(
        session, report_id=report_id, assets={e.asset_id: e.registration_number for e in monitored},
        secret_key=keys.secret_key,
    )
    found = _breaches_found(coverage, books, evidence, by_asset, position)
    outcome = await breaches.apply_findings(
        session, report_id=report_id, found=found,
        checked_assets={e.asset_id for e in checked} | {b.integrity.asset_id for b in books} | {breaches.PLATFORM_SUBJECT},
    )
    codes = {b.integrity.asset_id: b.integrity.code for b in books}
    document = _document(
        report_id=report_id, run=run, day=day, version=version, as_of=as_of, settings=settings,
        coverage=coverage, monitored=monitored, books=books, evidence=evidence, position=position, trees=trees,
        outcome=outcome, codes=codes,
    )
    sealed = reports.seal(document, signing_key=keys.signing_key)
    report = await reports_repository.insert_report(session, values={
        "id": report_id, "business_date": day, "version": version, "run_id": run.id, "as_of": as_of,
        "late": document["late"], "emissions": len(monitored), "breaches": len(outcome.current),
        "content": sealed.content, "content_sha256": sealed.content_sha256, "signature": sealed.signature,
        "signing_key_sha256": sealed.signing_key_sha256,
    })
    await proofs.record_roots(session, report_id=report_id, trees=trees)
    await reports_repository.insert_coverage(session, rows=[
        {"report_id": report_id, "asset_id": c.emission.asset_id, "business_date": day, "status": c.status,
         "outstanding_units": c.emission.outstanding_units, "required_value": c.required_value,
         "market_value": c.market_value, "valued_on": c.valued_on}
        for c in coverage
    ])
    await _block_and_unblock(session, coverage=coverage, report=report)
    await _tell(session, outcome=outcome, coverage=coverage, report=report, document=document, settings=settings)
    await audit.record(
        session, kind="reconciliation.report_written", actor=ACTOR, subject=f"report:{report_id}",
        details={"business_date": day.isoformat(), "version": version, "run_id": run.id,
                 "content_sha256": sealed.content_sha256.hex(), "breaches": len(outcome.current),
                 "opened": len(outcome.opened), "cleared": len(outcome.cleared)},
    )
    return report


def _breaches_found(
    coverage: list[checks.CoverageFinding], books: list[checks.LedgerFinding], evidence: _Evidence,
    by_asset: dict[int, Any], position: cash.ClientMoneyPosition,
) -> list[breaches.Found]:
    found = [
        breaches.Found(c.status, c.emission.asset_id, c.emission.issuer_party_id, c.detail)
        for c in coverage if c.status != "covered"
    ]
    found += [
        breaches.Found("ledger_invariant", b.integrity.asset_id, b.emission.issuer_party_id if b.emission else None,
                       "; ".join(b.findings))
        for b in books if not b.ok
    ]
    if evidence.chain is not None:
        for asset_id, emission in by_asset.items():
            comparison = evidence.chain.get(asset_id)
            if comparison is None:
                detail = evidence.chain_error or "the chain mirror has no token for the emission"
                found.append(breaches.Found("chain_unavailable", asset_id, emission.issuer_party_id, detail))
            elif not comparison.in_sync:
                found.append(breaches.Found("chain_mismatch", asset_id, emission.issuer_party_id, _chain_detail(comparison)))
    if evidence.bank_error is not None:
        found.append(breaches.Found("bank_unavailable", breaches.PLATFORM_SUBJECT, None, evidence.bank_error))
    elif evidence.bank_closing != position.expected_at_bank_tiyn:
        found.append(breaches.Found(
            "client_money_mismatch", breaches.PLATFORM_SUBJECT, None,
            f"the bank's closing balance {checks.kzt(evidence.bank_closing)} differs from the "
            f"{checks.kzt(position.expected_at_bank_tiyn)} the books expect (clients' money "
            f"{checks.kzt(position.ledger_tiyn)}, unmatched credits {checks.kzt(position.unmatched_tiyn)})",
        ))
    return found


def _chain_detail(comparison: EmissionComparison) -> str:
    return (
        f"at block {comparison.block} the token's supply is {comparison.chain_supply}, the ledger expects "
        f"{comparison.expected_supply}; {len(comparison.differences)} holder balance(s) differ"
    )


async def _block_and_unblock(session: AsyncSession, *, coverage: list[checks.CoverageFinding], report: Report) -> None:
    """Block each issuer with a coverage breach from registering new emissions, and lift the block of each
    issuer all of whose emissions this run found covered (REQ-31)."""
    short: dict[Any, list[str]] = {}
    checked_issuers = set()
    for finding in coverage:
        checked_issuers.add(finding.emission.issuer_party_id)
        if finding.status != "covered":
            short.setdefault(finding.emission.issuer_party_id, []).append(
                f"{finding.emission.registration_number}: {finding.status}"
            )
    for issuer_party_id, reasons in short.items():
        await issuers.open_block(
            session, issuer_party_id=issuer_party_id, source="reconciliation", reference=BLOCK_REFERENCE,
            reason=f"reconciliation report {report.id} of {report.business_date.isoformat()}: " + "; ".join(reasons),
            actor=ACTOR,
        )
    for issuer_party_id in checked_issuers - short.keys():
        await issuers.lift_block(
            session, issuer_party_id=issuer_party_id, source="reconciliation", reference=BLOCK_REFERENCE,
            reason=f"reconciliation report {report.id} of {report.business_date.isoformat()} found every emission "
            "covered", actor=ACTOR,
        )


async def _tell(
    session: AsyncSession, *, outcome: breaches.Outcome, coverage: list[checks.CoverageFinding], report: Report,
    document: dict[str, Any], settings: Settings,
) -> None:
    """Notices to the National Bank and the custodian of each newly found shortfall or asset problem
    (REQ-31: at once, so they are written with the report and sent from the outbox as soon as it commits),
    and a notification to compliance officers of what is new."""
    by_asset = {c.emission.asset_id: c for c in coverage}
    for breach in outcome.opened:
        finding = by_asset.get(breach.asset_id)
        if breach.kind not in checks.NOTIFIED_KINDS or finding is None:
            continue
        body = _notice_body(breach.kind, finding, report=report, settings=settings)
        await notices.write_notice(session, breach_id=breach.id, recipient="national_bank", custodian=None, body=body)
        await notices.write_notice(
            session, breach_id=breach.id, recipient="custodian", custodian=finding.emission.custodian, body=body
        )
    if outcome.opened or outcome.cleared or document["late"]:
        await platform.notify(
            session, audience=[Role.COMPLIANCE_OFFICER], kind="reconciliation.report",
            report_id=report.id, business_date=report.business_date.isoformat(), late=document["late"],
            opened=[b.id for b in outcome.opened], cleared=[b.id for b in outcome.cleared],
        )


def _notice_body(kind: str, finding: checks.CoverageFinding, *, report: Report, settings: Settings) -> dict[str, Any]:
    emission = finding.emission
    return {
        "kind": "coverage_shortfall" if kind == "shortfall" else kind,
        "operator": _operator(settings),
        "emission": emission.registration_number,
        "issuer": {"name": emission.issuer_name, "bin": emission.issuer_bin},
        "underlying_asset": {"custodian": emission.custodian, "reference": emission.custodian_reference},
        "business_date": report.business_date.isoformat(),
        "found_at": report.as_of.isoformat(),
        "required_value_tiyn": finding.required_value,
        "market_value_tiyn": finding.market_value,
        "shortfall_tiyn": finding.shortfall,
        "detail": finding.detail,
        "report": {"id": report.id, "version": report.version, "content_sha256": report.content_sha256.hex()},
    }


def _operator(settings: Settings) -> dict[str, str]:
    return {"name": settings.operator_name, "bin": settings.operator_bin,
            "nbk_registration_number": settings.operator_nbk_registration_number}


def _document(
    *, report_id: int, run: Run, day: date, version: int, as_of: datetime, settings: Settings,
    coverage: list[checks.CoverageFinding], monitored: list, books: list[checks.LedgerFinding],
    evidence: _Evidence, position: cash.ClientMoneyPosition, trees: list[proofs.FixedTree],
    outcome: breaches.Outcome, codes: dict[int, str],
) -> dict[str, Any]:
    late = run.trigger == "catch_up" or as_of.astimezone(ZoneInfo(settings.timezone)).date() > day
    return {
        "format": reports.FORMAT,
        "report_id": report_id,
        "business_date": day.isoformat(),
        "version": version,
        "late": late,
        "as_of": as_of.isoformat(),
        "operator": _operator(settings),
        "run": {"id": run.id, "trigger": run.trigger, "requested_by": run.requested_by,
                "started_at": run.started_at.isoformat()},
        "totals": {
            "emissions": len(monitored),
            "with_underlying": len(coverage),
            "covered": sum(c.status == "covered" for c in coverage),
            "outstanding_units": sum(e.outstanding_units for e in monitored),
            "required_value_tiyn": sum(c.required_value for c in coverage),
            "market_value_tiyn": sum({(c.emission.custodian, c.emission.custodian_reference): c.market_value or 0
                                      for c in coverage}.values()),
            "breaches": len(outcome.current),
            "new_breaches": len(outcome.opened),
            "cleared_breaches": len(outcome.cleared),
        },
        "coverage": [
            {"asset_code": c.emission.registration_number, "issuer": _issuer(c.emission),
             "custodian": c.emission.custodian, "custodian_reference": c.emission.custodian_reference,
             "outstanding_units": c.emission.outstanding_units, "platform_units": c.emission.platform_units,
             "nominal_tiyn": c.emission.nominal, "coverage_ratio": f"{c.emission.coverage_ratio:.4f}",
             "required_value_tiyn": c.required_value, "market_value_tiyn": c.market_value,
             "valued_on": c.valued_on.isoformat() if c.valued_on else None, "statement_id": c.statement_id,
             "status": c.status, "shortfall_tiyn": c.shortfall, "detail": c.detail}
            for c in coverage
        ],
        "without_underlying": [
            {"asset_code": e.registration_number, "issuer": _issuer(e), "reason": e.no_underlying_reason}
            for e in monitored if e.custodian is None
        ],
        "ledger": [
            {"asset_code": b.integrity.code, "kind": b.integrity.kind, "accounts": b.integrity.accounts,
             "balance_sum": b.integrity.balance_sum, "holdings_units": b.integrity.holdings,
             "issued_units": b.integrity.issued,
             "registered_units": b.emission.units if b.emission else None,
             "cancelled_units": b.emission.cancelled_units if b.emission else None,
             "platform_units": b.emission.platform_units if b.emission else None,
             "negative_balances": b.integrity.negative_balances, "broken_entries": b.integrity.broken_entries,
             "state_mismatches": b.integrity.state_mismatches, "status": "ok" if b.ok else "breach",
             "findings": b.findings}
            for b in books
        ],
        "chain": _chain_section(evidence, monitored),
        "client_money": {
            "status": "bank_unavailable" if evidence.bank_error else
            ("ok" if evidence.bank_closing == position.expected_at_bank_tiyn else "mismatch"),
            "account_iban": settings.operator_client_money_iban,
            "statement_date": evidence.statement_date.isoformat(),
            "bank_closing_tiyn": evidence.bank_closing,
            "ledger_tiyn": position.ledger_tiyn,
            "unmatched_tiyn": position.unmatched_tiyn,
            "difference_tiyn": None if evidence.bank_closing is None
            else evidence.bank_closing - position.expected_at_bank_tiyn,
        },
        "holder_trees": [
            {"asset_code": t.asset_code, "root_hash": t.root.hash.hex(), "total_units": t.root.total,
             "leaf_count": t.root.leaf_count}
            for t in trees
        ],
        "breaches": [
            {"id": b.id, "kind": b.kind, "asset_code": codes.get(b.asset_id),
             "issuer_party_id": str(b.issuer_party_id) if b.issuer_party_id else None, "detail": b.detail,
             "opened_report_id": b.opened_report_id, "new": new}
            for b, new in outcome.current
        ],
        "cleared": [
            {"id": b.id, "kind": b.kind, "asset_code": codes.get(b.asset_id), "detail": b.detail} for b in outcome.cleared
        ],
    }


def _issuer(emission) -> dict[str, str]:
    return {"party_id": str(emission.issuer_party_id), "name": emission.issuer_name, "bin": emission.issuer_bin}


def _chain_section(evidence: _Evidence, monitored: list) -> dict[str, Any]:
    if evidence.chain is None:
        return {"checked": False, "reason": "the chain mirror is turned off", "emissions": []}
    rows = []
    for emission in monitored:
        comparison = evidence.chain.get(emission.asset_id)
        rows.append({
            "asset_code": emission.registration_number, "status": checks.chain_status(comparison),
            "block": comparison.block if comparison else None,
            "ledger_outstanding": comparison.expected_supply if comparison else None,
            "chain_supply": comparison.chain_supply if comparison else None,
            "holder_differences": len(comparison.differences) if comparison else 0,
        })
    return {"checked": True, "reason": evidence.chain_error, "emissions": rows}

