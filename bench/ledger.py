"""Ledger throughput and latency on the embedded PostgreSQL.

(a) single transfers, each its own unit of work, from 2 concurrent connections;
(b) linked batches of 100 transfers from 2 concurrent connections.
1,000 funded accounts, 20 s per phase (--seconds to change). Ends with one JSON line of figures.
"""

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from dfa.ledger import service as ledger  # noqa: E402
from dfa.ledger.service import TransferSpec  # noqa: E402
from dfa.platform.identity.service import parties  # noqa: E402
from dfa.platform.database import Database, run_migrations_async, start_embedded_postgres  # noqa: E402
from dfa.platform.identifiers import check_digit  # noqa: E402
from dfa.platform.settings import Settings  # noqa: E402

ACCOUNTS = 1_000
CONNECTIONS = 2
BATCH = 100


def identifier(n: int) -> str:
    while True:
        body = f"90010130{n:03d}"[:11]
        digit = check_digit(body)
        if digit is not None:
            return body + str(digit)
        n += 1


async def seed(database: Database) -> list[int]:
    async with database.unit_of_work() as session:
        settings = Settings(_env_file=None)
        operator = await parties.ensure_operator_party(session, settings=settings)
        holder = await parties.create_party(
            session, kind="person", name="Bench Holder", identifier=identifier(1), resident=True, settings=settings
        )
        await ledger.create_asset(session, code="KZT", kind="money", scale=2, name="tenge")
        bank = await ledger.open_account(
            session, owner_party_id=operator.id, asset_code="KZT", kind="client_money", settings=settings
        )
        rows = await session.execute(
            text(
                "INSERT INTO ledger_accounts (asset_id, owner_party_id, kind) "
                "SELECT a.id, :owner, 'settlement' FROM ledger_assets a, generate_series(1, :n) WHERE a.code = 'KZT' "
                "RETURNING id"
            ),
            {"owner": holder.id, "n": ACCOUNTS},
        )
        ids = [r.id for r in rows]
        await ledger.post_transfers(
            session, transfers=[TransferSpec(uuid.uuid4(), bank.id, i, 10**12) for i in ids]
        )
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE"))
    return ids


async def measure(database: Database, seconds: float, command) -> tuple[list[float], float]:
    """Run `command(session, rng)` in its own unit of work from each connection until time is up."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def worker(seed_: int) -> None:
        rng = random.Random(seed_)
        while time.monotonic() < stop:
            started = time.perf_counter()
            async with database.unit_of_work() as session:
                await command(session, rng)
            latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    latencies.sort()
    return latencies, time.monotonic() - began


def percentile_ms(latencies: list[float], fraction: float) -> float:
    return latencies[min(len(latencies) - 1, int(len(latencies) * fraction))] * 1000


async def single_phase(database: Database, ids: list[int], seconds: float) -> dict:
    async def one_transfer(session, rng) -> None:
        a, b = rng.sample(ids, 2)
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), a, b, rng.randint(1, 10_000)))

    latencies, elapsed = await measure(database, seconds, one_transfer)
    return {
        "transfers": len(latencies),
        "per_s": len(latencies) / elapsed,
        "p50_ms": percentile_ms(latencies, 0.5),
        "p99_ms": percentile_ms(latencies, 0.99),
    }


async def batch_phase(database: Database, ids: list[int], seconds: float) -> dict:
    async def one_batch(session, rng) -> None:
        specs = [TransferSpec(uuid.uuid4(), *rng.sample(ids, 2), rng.randint(1, 10_000)) for _ in range(BATCH)]
        await ledger.post_transfers(session, transfers=specs, batch_id=uuid.uuid4())

    latencies, elapsed = await measure(database, seconds, one_batch)
    return {
        "batches": len(latencies),
        "per_s": len(latencies) * BATCH / elapsed,
        "batch_p50_ms": percentile_ms(latencies, 0.5),
        "batch_p99_ms": percentile_ms(latencies, 0.99),
    }


async def main(seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="dfa-bench-") as data_dir:
        url = start_embedded_postgres(Path(data_dir))
        await run_migrations_async(url)
        settings = Settings(database_url=url, db_pool_size=CONNECTIONS, db_pool_overflow=0, _env_file=None)
        database = Database.from_url(url, settings)
        ids = await seed(database)
        # A fresh pool after seeding: connections that saw empty tables keep bad cached plans.
        await database.dispose()
        database = Database.from_url(url, settings)
        await single_phase(database, ids, min(2.0, seconds / 10))  # warm-up

        print(f"(a) single transfers, {CONNECTIONS} connections, {ACCOUNTS} accounts, {seconds:.0f} s ...", flush=True)
        single = await single_phase(database, ids, seconds)
        print(f"    {single['transfers']} transfers: {single['per_s']:.0f}/s, p50 {single['p50_ms']:.2f} ms, p99 {single['p99_ms']:.2f} ms")
        print(f"(b) linked batches of {BATCH}, {CONNECTIONS} connections, {seconds:.0f} s ...", flush=True)
        batched = await batch_phase(database, ids, seconds)
        print(f"    {batched['batches']} batches: {batched['per_s']:.0f} transfers/s, batch p50 {batched['batch_p50_ms']:.1f} ms, p99 {batched['batch_p99_ms']:.1f} ms")
        async with database.read() as session:
            verification = await ledger.verify(session)
        print(f"journal verifies: {verification.ok} ({verification.entries} entries)")
        await database.dispose()
        import pgserver

        pgserver.get_server(Path(data_dir) / "pg", cleanup_mode="stop").cleanup()
    return {
        "single_transfers_per_s": round(single["per_s"], 1),
        "single_p50_ms": round(single["p50_ms"], 3),
        "single_p99_ms": round(single["p99_ms"], 3),
        "batched_transfers_per_s": round(batched["per_s"], 1),
        "batch_p50_ms": round(batched["batch_p50_ms"], 2),
        "batch_p99_ms": round(batched["batch_p99_ms"], 2),
        "connections": CONNECTIONS,
        "accounts": ACCOUNTS,
        "seconds_per_phase": seconds,
        "journal_verifies": verification.ok,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    figures = asyncio.run(main(parser.parse_args().seconds))
    print(json.dumps(figures))
