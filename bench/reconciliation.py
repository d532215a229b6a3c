"""A full daily reconciliation run on the embedded PostgreSQL.

N emissions (default 1,000), each backed by an asset the custodian simulator keeps at twice its required
value, and M holder positions (default 1,000,000): a pool of M/N holders, each holding 10 units of every
emission. Emissions are made through the issuance services; holders' parties and accounts are inserted
set-based and their units moved through the ledger's journal (linked batches), so hash chains stay valid.
Measures the wall time and peak RSS of `Reconciliation.run` for today. Ends with one JSON line of figures.
"""

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from dfa.issuance.custodian import CustodianSimulator  # noqa: E402
from dfa.issuance.models import Application, Issuer  # noqa: E402
from dfa.issuance.service import emissions as emission_service  # noqa: E402
from dfa.issuance.service import underlying  # noqa: E402
from dfa.ledger import service as ledger  # noqa: E402
from dfa.ledger.service import TransferSpec  # noqa: E402
from dfa.platform.adapters.national_bank import NationalBankSimulator  # noqa: E402
from dfa.platform.database import Database, run_migrations_async, start_embedded_postgres  # noqa: E402
from dfa.platform.identifiers import check_digit  # noqa: E402
from dfa.platform.identity.crypto import Keys  # noqa: E402
from dfa.platform.identity.service import parties  # noqa: E402
from dfa.platform.settings import Settings  # noqa: E402
from dfa.reconciliation.jobs import Reconciliation  # noqa: E402
from dfa.reconciliation.service.runs import Counterparties  # noqa: E402
from dfa.settlement.bank import BankSimulator  # noqa: E402
from dfa.settlement.service import accounts  # noqa: E402

CUSTODIAN = "kazgrain"
NOMINAL = 100_000  # 1,000.00 KZT a unit
UNITS_PER_HOLDER = 10
TRANSFER_BATCH = 5_000  # transfers per transaction
EMISSIONS_PER_TRANSACTION = 10


def kept_value(units: int) -> int:
    """What the custodian values an emission's asset at: twice the emission's nominal volume."""
    return units * NOMINAL * 2


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def issuer_identifiers(count: int) -> list[str]:
    """`count` distinct valid BINs."""
    bodies = (f"190840{n:05d}" for n in range(100_000))
    valid = (body + str(digit) for body in bodies if (digit := check_digit(body)) is not None)
    return [next(valid) for _ in range(count)]


async def seed_holders(database: Database, count: int) -> None:
    """`count` identified adult persons, set-based (identifiers '8' + 11 digits, unused by anyone else)."""
    async with database.unit_of_work() as session:
        await session.execute(
            text(
                "INSERT INTO parties (id, kind, name, identifier, resident, birth_date, sex, kyc_status, kyc_level, "
                "identified_at) "
                "SELECT gen_random_uuid(), 'person', 'Bench Holder ' || n, '8' || lpad(n::text, 11, '0'), true, "
                "date '1990-01-01', 'male', 'identified', 'full', now() FROM generate_series(1, :n) AS n"
            ),
            {"n": count},
        )


async def seed_emission(
    session, *, identifier: str, units: int, custodian: CustodianSimulator, settings: Settings, n: int
) -> tuple[int, int]:
    """One registered emission of a new issuer backed by a kept asset; (asset id, issuer's available account)."""
    reference = f"WR-B-{n:06d}-{uuid.uuid4().hex[:8].upper()}"
    custodian.keep(CUSTODIAN, reference, quantity=1_000, unit="t", market_value=kept_value(units))
    issuer = await parties.create_party(
        session, kind="legal_entity", name=f"Bench Issuer {n}", identifier=identifier, resident=True,
        settings=settings,
    )
    await parties.decide_kyc(
        session, party_id=issuer.id, status="identified", level="full", method="in_person",
        reason="bench", actor="bench", settings=settings,
    )
    now = datetime.now(UTC)
    session.add(Issuer(
        party_id=issuer.id, legal_address="Almaty, Abai ave 1", contact_email="issuer@example.kz",
        custodian_consent_at=now, custodian_consent_scope="state, quantity and value of underlying assets",
        personal_data_consent_at=now, onboarded_by="bench",
    ))
    await session.flush()
    asset = await underlying.register_underlying_asset(
        session, issuer_party_id=issuer.id, kind="goods", description="class 3 wheat",
        custodian=CUSTODIAN, custodian_reference=reference, quantity=1_000, unit="t", actor="bench",
    )
    today = parties.local_today(settings)
    application = Application(
        id=uuid.uuid4(), issuer_party_id=issuer.id, status="in_review", name=f"Bench grain receipts {n}",
        dfa_kind="commodity", nominal=NOMINAL, units=units, placement_start=today,
        placement_end=today + timedelta(days=30), placement_price=NOMINAL, min_placement_units=None,
        maturity_date=today + timedelta(days=365), redemption_price=None, early_redemption_allowed=True,
        underlying_asset_id=asset.id, coverage_ratio=Decimal("1.0"), no_underlying_reason=None,
        submitted_by="bench",
    )
    session.add(application)
    await session.flush()
    emission = await emission_service.issue(session, application=application, actor="bench", settings=settings)
    application.status = "registered"
    source = await ledger.find_account(session, owner_party_id=issuer.id, asset_id=emission.asset_id, kind="available")
    return emission.asset_id, source.id


async def seed(database: Database, settings: Settings, custodian: CustodianSimulator, *, n_emissions: int,
               holders: int) -> None:
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=settings)
    await seed_holders(database, holders)
    units = holders * UNITS_PER_HOLDER
    identifiers = issuer_identifiers(n_emissions)
    made: list[tuple[int, int]] = []
    started = time.perf_counter()
    for first in range(0, n_emissions, EMISSIONS_PER_TRANSACTION):
        async with database.unit_of_work() as session:
            for n in range(first, min(n_emissions, first + EMISSIONS_PER_TRANSACTION)):
                made.append(await seed_emission(
                    session, identifier=identifiers[n], units=units, custodian=custodian, settings=settings, n=n
                ))
        if (first // EMISSIONS_PER_TRANSACTION) % 10 == 9:
            print(f"    {len(made)} emissions issued ({time.perf_counter() - started:.1f} s)", flush=True)
    print(f"  {n_emissions} emissions issued in {time.perf_counter() - started:.1f} s", flush=True)

    started = time.perf_counter()
    pending: list[TransferSpec] = []
    placed = 0

    async def flush() -> None:
        nonlocal pending, placed
        if pending:
            async with database.unit_of_work() as session:
                await ledger.post_transfers(session, transfers=pending)
            placed += len(pending)
            pending = []

    for asset_id, source_id in made:
        async with database.unit_of_work() as session:
            rows = await session.execute(
                text(
                    "INSERT INTO ledger_accounts (asset_id, owner_party_id, kind) "
                    "SELECT :asset, p.id, k.kind FROM parties p CROSS JOIN (VALUES ('available'), ('held')) AS k(kind) "
                    "WHERE p.identifier LIKE '8%' AND p.name LIKE 'Bench Holder %' "
                    "RETURNING id, kind"
                ),
                {"asset": asset_id},
            )
            targets = [r.id for r in rows if r.kind == "available"]
        for target in targets:
            pending.append(TransferSpec(uuid.uuid4(), source_id, target, UNITS_PER_HOLDER))
            if len(pending) >= TRANSFER_BATCH:
                await flush()
        if placed and placed % 100_000 < TRANSFER_BATCH and len(pending) == 0:
            print(f"    {placed} positions placed ({time.perf_counter() - started:.1f} s)", flush=True)
    await flush()
    print(f"  {placed} positions placed in {time.perf_counter() - started:.1f} s", flush=True)

    started = time.perf_counter()
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE"))
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


async def keep_seeded_assets(database: Database, custodian: CustodianSimulator, *, holders: int) -> None:
    """Tell a fresh custodian simulator about the assets of a cluster seeded by an earlier run."""
    async with database.read() as session:
        references = (await session.execute(text(
            "SELECT custodian_reference FROM issuance_underlying_assets WHERE custodian = :c"
        ), {"c": CUSTODIAN})).scalars()
        for reference in references:
            custodian.keep(
                CUSTODIAN, reference, quantity=1_000, unit="t", market_value=kept_value(holders * UNITS_PER_HOLDER)
            )


async def report_counts(database: Database, report_id: int) -> dict:
    async with database.read() as session:
        content = (await session.execute(
            text("SELECT content FROM reconciliation_reports WHERE id = :id"), {"id": report_id}
        )).scalar_one()
        coverage = dict((await session.execute(
            text("SELECT status, count(*) FROM reconciliation_coverage WHERE report_id = :id GROUP BY status"),
            {"id": report_id},
        )).all())
        leaves = (await session.execute(text("SELECT count(*) FROM reconciliation_holder_leaves"))).scalar_one()
        outcome = (await session.execute(
            text("SELECT outcome FROM reconciliation_runs WHERE report_id = :id"), {"id": report_id}
        )).scalar_one()
    document = json.loads(content)
    sections = {key: (len(value) if isinstance(value, list | dict) else value) for key, value in document.items()}
    return {"outcome": outcome, "ledger": document.get("ledger"), "coverage": coverage, "holder_leaves": leaves, "report_bytes": len(content), "sections": sections}


async def main(n_emissions: int, n_positions: int, statement_timeout_ms: int | None, keep: Path | None) -> dict:
    holders = max(1, n_positions // n_emissions)
    with tempfile.TemporaryDirectory(prefix="dfa-bench-") as scratch:
        data_dir = keep or Path(scratch)
        seeded_marker = data_dir / f"seeded-{n_emissions}x{holders}"
        reuse = seeded_marker.exists()
        url = start_embedded_postgres(Path(data_dir))
        await run_migrations_async(url)
        settings = Settings(
            database_url=url, data_dir=Path(data_dir), chain_mirror_enabled=False, reconciliation_schedule="",
            _env_file=None, security_protocol_submitted_on=date(2026, 1, 5),
            **({"db_statement_timeout_ms": statement_timeout_ms} if statement_timeout_ms else {}),
        )
        database = Database.from_url(url, settings)
        custodian = CustodianSimulator()
        bank = BankSimulator()
        bank.open_account(settings.operator_client_money_iban, owner_name=settings.operator_name)
        started = time.perf_counter()
        if reuse:
            print(f"reusing the {n_emissions} emissions x {holders} holders seeded in {data_dir}", flush=True)
            await keep_seeded_assets(database, custodian, holders=holders)
        else:
            print(f"seeding {n_emissions} emissions x {holders} holders = {n_emissions * holders} positions ...",
                  flush=True)
            await seed(database, settings, custodian, n_emissions=n_emissions, holders=holders)
            if keep:
                seeded_marker.touch()
        seed_s = time.perf_counter() - started
        print(f"seeded in {seed_s:.1f} s", flush=True)
        # A fresh pool after seeding: connections that saw empty tables keep bad cached plans.
        await database.dispose()
        database = Database.from_url(url, settings)
        reconciliation = Reconciliation(
            database=database, counterparties=Counterparties(custodian=custodian, bank=bank, mirror=None),
            national_bank=NationalBankSimulator(), keys=Keys.load(settings), settings=settings,
        )
        day = parties.local_today(settings)
        rss_before = rss_mb()
        print(f"reconciling {day.isoformat()} ...", flush=True)
        started = time.perf_counter()
        try:
            result = await reconciliation.run(day, trigger="command", requested_by="bench", force=reuse)
        except Exception as error:  # noqa: BLE001 - a failed run is a figure too
            run_s, peak = time.perf_counter() - started, rss_mb()
            print(f"run FAILED after {run_s:.2f} s: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            await database.dispose()
            import pgserver

            pgserver.get_server(Path(data_dir) / "pg", cleanup_mode="stop").cleanup()
            return {
                "emissions": n_emissions, "positions": n_emissions * holders, "holders": holders,
                "seed_s": round(seed_s, 1), "run_s": round(run_s, 2), "rss_before_run_mb": round(rss_before, 1),
                "peak_rss_mb": round(peak, 1), "outcome": "failed", "breaches": None,
                "statement_timeout_ms": settings.db_statement_timeout_ms,
                "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}",
            }
        run_s = time.perf_counter() - started
        peak = rss_mb()
        report = result.report
        counts = await report_counts(database, report.id)
        print(f"run {run_s:.2f} s, outcome {counts['outcome']}, report {report.id} of {report.emissions} emissions, "
              f"{report.breaches} breaches")
        ledger_section = counts["ledger"]
        if isinstance(ledger_section, list):
            print(f"ledger section: {len(ledger_section)} entries, e.g. {ledger_section[0] if ledger_section else None}")
        else:
            print(f"ledger section: {str(ledger_section)[:300]}")
        print(f"RSS before run {rss_before:.0f} MB, peak {peak:.0f} MB")
        print(f"coverage by status {counts['coverage']}, holder leaves {counts['holder_leaves']}, "
              f"report {counts['report_bytes']} bytes, sections {counts['sections']}")
        await database.dispose()
        import pgserver

        pgserver.get_server(Path(data_dir) / "pg", cleanup_mode="stop").cleanup()
    return {
        "emissions": n_emissions,
        "positions": n_emissions * holders,
        "holders": holders,
        "seed_s": round(seed_s, 1),
        "run_s": round(run_s, 2),
        "rss_before_run_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
        "outcome": counts["outcome"],
        "statement_timeout_ms": settings.db_statement_timeout_ms,
        "report_emissions": report.emissions,
        "breaches": report.breaches,
        "ledger_assets": len(counts["ledger"] or []),
        "ledger_not_ok": sum(1 for entry in counts["ledger"] or [] if entry.get("status") != "ok"),
        "coverage": counts["coverage"],
        "holder_leaves": counts["holder_leaves"],
        "report_bytes": counts["report_bytes"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emissions", type=int, default=1_000, help="emissions to reconcile (default 1,000)")
    parser.add_argument("--positions", type=int, default=1_000_000,
                        help="holder positions in all, spread evenly over the emissions (default 1,000,000)")
    parser.add_argument("--statement-timeout-ms", type=int, default=None,
                        help="the database statement timeout (default: the settings' default)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="seed a cluster in this directory and keep it; later runs with the same sizes reuse it")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.emissions, args.positions, args.statement_timeout_ms, args.keep))))
