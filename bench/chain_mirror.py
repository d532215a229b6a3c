"""The chain mirror against a real anvil node and the embedded PostgreSQL.

(1) throughput: N committed DFA transfers between funded holders, then `Mirror.drain()` timed from
    its first pass until every batch is confirmed, with 200, 50 and 1 movements per chain
    transaction; a breakdown of where the time went (the mirror's steps, JSON-RPC round trips,
    signing); `compare()` checks that every emission is in sync;
(2) lag: a producer posts transfers at a fixed rate while the mirror runs continuously; the age of
    the oldest movement not yet confirmed on chain is sampled every 0.5 s, and each transfer's time
    from commit to confirmation is measured.
2 emissions of 200 holders each. Ends with one JSON line of figures. --quick for a short run.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import text

from dfa.custody.chain import rpc_chain
from dfa.custody.service.mirror import TOPIC, Mirror
from dfa.custody.service.signing import Signer
from dfa.custody.vault import AesKek, KeyRing, Vault
from dfa.ledger import service as ledger
from dfa.platform.database import Database, run_migrations_async, start_embedded_postgres
from dfa.platform.settings import Settings
from tests.anvil import AnvilNode, anvil_binary
from tests.factories import make_account, make_asset, make_party

EMISSIONS = 2
UNITS_PER_HOLDER = 10**9
TRANSFERS_PER_TRANSACTION = 100
SAMPLE_EVERY_S = 0.5


@dataclass(frozen=True)
class Plan:
    holders_per_emission: int
    throughput_runs: list[tuple[int, int]]  # (movements per chain transaction, transfers)
    lag_rate_per_s: int
    lag_seconds: float


FULL = Plan(200, [(200, 20_000), (50, 5_000), (1, 600)], 500, 20.0)
QUICK = Plan(50, [(200, 2_000), (50, 1_000), (1, 200)], 200, 5.0)


# --- where the time goes ----------------------------------------------------------------------------


@dataclass
class Profile:
    """Seconds and calls per instrumented function (steps overlap: sign contains signing)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def wrap_async(self, name: str, function: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
        async def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed


def instrumented_mirror(database: Database, vault: Vault, settings: Settings, profile: Profile) -> Mirror:
    """A mirror whose steps, chain round trips, call-data encoding and signatures are timed.

    The wrappers are instance attributes, so the mirror's code runs unchanged.
    """
    chain = rpc_chain(settings.chain_rpc_url, timeout_s=settings.chain_timeout_s)
    chain._call = profile.wrap_async("json-rpc (all calls)", chain._call)
    chain.send_raw = profile.wrap_async("json-rpc send (mines)", chain.send_raw)
    chain.receipt = profile.wrap_async("json-rpc receipt", chain.receipt)
    chain.batch_data = profile.wrap("encode call data", chain.batch_data)
    signer = Signer(vault)
    signer.sign_transaction = profile.wrap_async("sign + audit", signer.sign_transaction)
    mirror = Mirror(database=database, chain=chain, vault=vault, signer=signer, settings=settings)
    for step in ("prepare", "sign", "send", "confirm"):
        setattr(mirror, step, profile.wrap_async(f"step {step}", getattr(mirror, step)))
    return mirror


# --- the ledger side ---------------------------------------------------------------------------------


async def seed(database: Database, *, holders_per_emission: int) -> list[list[int]]:
    """Emissions with funded holders, committed; the holder account ids per emission."""
    emissions = []
    for _ in range(EMISSIONS):
        async with database.unit_of_work() as session:
            asset = await make_asset(session, kind="dfa")
            issuer = await make_party(session, kind="legal_entity", name="Bench Issuer")
            issued = await make_account(session, asset=asset, owner=issuer, kind="issued")
            accounts = [await make_account(session, asset=asset) for _ in range(holders_per_emission)]
            await ledger.post_transfers(
                session,
                transfers=[ledger.TransferSpec(uuid.uuid4(), issued.id, a.id, UNITS_PER_HOLDER) for a in accounts],
            )
        emissions.append([a.id for a in accounts])
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE"))
    return emissions


def random_transfers(rng: random.Random, holders: list[int], count: int) -> list[ledger.TransferSpec]:
    return [ledger.TransferSpec(uuid.uuid4(), *rng.sample(holders, 2), rng.randint(1, 1000)) for _ in range(count)]


async def post_transfers(database: Database, emissions: list[list[int]], count: int, rng: random.Random) -> float:
    """Commit `count` transfers in transactions of 100, each within one emission; returns seconds."""
    started = time.perf_counter()
    for start in range(0, count, TRANSFERS_PER_TRANSACTION):
        specs = random_transfers(rng, rng.choice(emissions), min(TRANSFERS_PER_TRANSACTION, count - start))
        async with database.unit_of_work() as session:
            await ledger.post_transfers(session, transfers=specs)
    return time.perf_counter() - started


# --- the chain side ----------------------------------------------------------------------------------


def rpc(url: str, method: str, *params) -> object:
    response = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=30)
    response.raise_for_status()
    return response.json()["result"]


def gas_used(url: str, after_block: int, to_block: int) -> tuple[int, int]:
    """(gas used, transactions) of the blocks after `after_block` up to `to_block`."""
    gas = transactions = 0
    for number in range(after_block + 1, to_block + 1):
        block = rpc(url, "eth_getBlockByNumber", hex(number), False)
        gas += int(block["gasUsed"], 16)
        transactions += len(block["transactions"])
    return gas, transactions


def block_number(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


async def all_in_sync(mirror: Mirror) -> bool:
    comparisons = await mirror.compare()
    for c in comparisons:
        print(
            f"    {c.asset_code}: chain supply {c.chain_supply}, ledger outstanding {c.ledger_outstanding}, "
            f"unapplied {c.unapplied_ops}, differences {len(c.differences)} -> {'in sync' if c.in_sync else 'OUT OF SYNC'}"
        )
    return all(c.in_sync and c.unapplied_ops == 0 and c.chain_supply == c.ledger_outstanding for c in comparisons)


# --- (1) throughput ----------------------------------------------------------------------------------


async def throughput_run(
    database: Database, vault: Vault, settings: Settings, emissions: list[list[int]], *, batch_ops: int, transfers: int
) -> dict:
    settings = settings.model_copy(update={"chain_batch_max_ops": batch_ops})
    profile = Profile()
    mirror = instrumented_mirror(database, vault, settings, profile)
    await mirror.drain()  # nothing left over from the run before
    profile.seconds.clear()
    profile.calls.clear()
    rng = random.Random(batch_ops)
    post_s = await post_transfers(database, emissions, transfers, rng)
    first_block = block_number(settings.chain_rpc_url)
    started = time.perf_counter()
    await mirror.drain(max_passes=100_000)
    drain_s = time.perf_counter() - started
    gas, chain_transactions = gas_used(settings.chain_rpc_url, first_block, block_number(settings.chain_rpc_url))
    return {
        "batch_ops": batch_ops,
        "transfers": transfers,
        "post_per_s": transfers / post_s,
        "drain_s": drain_s,
        "per_s": transfers / drain_s,
        "chain_transactions": chain_transactions,
        "gas_per_transfer": gas / transfers,
        "profile": {name: (round(seconds, 3), profile.calls[name]) for name, seconds in sorted(profile.seconds.items())},
        "mirror": mirror,
    }


# --- (2) lag under steady load -----------------------------------------------------------------------

# The age of the oldest movement the chain has not confirmed: an undelivered outbox message, or the
# first op of an open batch (batches take messages in order, so that op is the batch's oldest).
OLDEST_UNCONFIRMED_SQL = text(
    """
    SELECT extract(epoch FROM clock_timestamp() - least(
               (SELECT min(created_at) FROM outbox_messages WHERE topic = :topic AND delivered_at IS NULL),
               (SELECT min(t.created_at) FROM custody_chain_batches b
                  JOIN ledger_transfers t ON t.id = substr(b.ops -> 0 ->> 4, 1, 32)::uuid
                 WHERE b.kind = 'ops' AND b.status IN ('prepared', 'signed', 'sent')))) AS age_s,
           (SELECT count(*) FROM outbox_messages WHERE topic = :topic AND delivered_at IS NULL)
         + (SELECT coalesce(sum(jsonb_array_length(ops)), 0) FROM custody_chain_batches
             WHERE kind = 'ops' AND status IN ('prepared', 'signed', 'sent')) AS backlog
    """
)
CONFIRMED_OPS_SQL = text(
    """
    SELECT extract(epoch FROM b.confirmed_at) AS confirmed_at, substr(op ->> 4, 1, 32) AS transfer_id
      FROM custody_chain_batches b, jsonb_array_elements(b.ops) op
     WHERE b.kind = 'ops' AND b.status = 'confirmed' AND b.confirmed_at >= to_timestamp(:since)
    """
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def lag_phase(
    database: Database, vault: Vault, settings: Settings, emissions: list[list[int]], *, rate_per_s: int, seconds: float
) -> dict:
    profile = Profile()
    mirror = instrumented_mirror(database, vault, settings, profile)
    await mirror.drain()
    committed_at: dict[str, float] = {}
    samples: list[tuple[float, float, int]] = []  # (since start s, age s, backlog)
    producing = True
    per_transaction = 10
    rng = random.Random(7)
    began_wall = time.time()
    began = time.monotonic()

    async def producer() -> None:
        nonlocal producing
        next_at = began
        end = began + seconds
        while next_at < end:
            specs = random_transfers(rng, rng.choice(emissions), per_transaction)
            async with database.unit_of_work() as session:
                await ledger.post_transfers(session, transfers=specs)
            now = time.time()
            for spec in specs:
                committed_at[spec.id.hex] = now
            next_at += per_transaction / rate_per_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        producing = False

    async def caught_up() -> bool:
        async with database.read() as session:
            row = (await session.execute(OLDEST_UNCONFIRMED_SQL, {"topic": TOPIC})).one()
        return row.backlog == 0

    async def mirror_loop() -> float:
        """Run passes like the worker does; returns when the producer stopped and all is confirmed."""
        while True:
            done = await mirror.run_once()
            if not done.work:
                if not producing and await caught_up():
                    return time.monotonic()
                await asyncio.sleep(settings.chain_mirror_interval_s)

    async def sampler() -> None:
        while True:
            async with database.read() as session:
                row = (await session.execute(OLDEST_UNCONFIRMED_SQL, {"topic": TOPIC})).one()
            samples.append((time.monotonic() - began, float(row.age_s or 0.0), int(row.backlog)))
            await asyncio.sleep(SAMPLE_EVERY_S)

    sampling = asyncio.create_task(sampler())
    mirroring = asyncio.create_task(mirror_loop())
    await producer()
    produced_s = time.monotonic() - began
    at_stop = samples[-1][2] if samples else 0
    caught_up_at = await mirroring
    sampling.cancel()

    async with database.read() as session:
        rows = (await session.execute(CONFIRMED_OPS_SQL, {"since": began_wall})).all()
    latencies = [float(r.confirmed_at) - committed_at[r.transfer_id] for r in rows if r.transfer_id in committed_at]
    ages = [age for at, age, _ in samples if at <= produced_s]
    # Kept up: the lag stayed bounded, i.e. it did not grow from the second quarter of the run to the last.
    second = [age for at, age, _ in samples if produced_s / 4 <= at < produced_s / 2]
    last = [age for at, age, _ in samples if 3 * produced_s / 4 <= at <= produced_s]
    kept_up = max(last, default=0.0) <= 1.5 * max(second, default=0.0) + 1.0
    produced = len(committed_at)
    return {
        "rate_per_s": rate_per_s,
        "achieved_rate_per_s": produced / produced_s,
        "seconds": seconds,
        "transfers": produced,
        "confirmed": len(latencies),
        "oldest_unconfirmed_p50_s": percentile(ages, 0.5),
        "oldest_unconfirmed_p95_s": percentile(ages, 0.95),
        "oldest_unconfirmed_max_s": max(ages, default=0.0),
        "commit_to_confirmed_p50_s": percentile(latencies, 0.5),
        "commit_to_confirmed_p95_s": percentile(latencies, 0.95),
        "commit_to_confirmed_max_s": max(latencies, default=0.0),
        "backlog_at_stop": at_stop,
        "catch_up_s": caught_up_at - (began + produced_s),
        "kept_up": kept_up,
        "mirror_passes": profile.calls["step prepare"],
        "mirror": mirror,
    }


# --- the run -----------------------------------------------------------------------------------------


def print_profile(profile: dict[str, tuple[float, int]], total_s: float) -> None:
    for name, (seconds, calls) in profile.items():
        print(f"      {name:<22} {seconds:8.2f} s {100 * seconds / total_s:5.1f} %  {calls:7d} calls")


async def main(plan: Plan, block_time_s: float | None) -> dict:
    binary = anvil_binary()
    if binary is None:
        sys.exit("anvil is not on PATH and `npm install @foundry-rs/anvil` failed (is npm installed?)")
    with tempfile.TemporaryDirectory(prefix="dfa-bench-") as data_dir, AnvilNode(
        binary=binary, block_time_s=block_time_s
    ) as node:
        url = start_embedded_postgres(Path(data_dir))
        try:
            await run_migrations_async(url)
            settings = Settings(
                database_url=url, data_dir=Path(data_dir), demo_data=False, _env_file=None, chain_rpc_url=node.url
            )
            database = Database.from_url(url, settings)
            vault = Vault(KeyRing(AesKek(os.urandom(32))))
            mining = f"block time {block_time_s} s" if block_time_s else "automine"
            print(f"anvil {node.url} ({mining}), {EMISSIONS} emissions x {plan.holders_per_emission} holders", flush=True)
            emissions = await seed(database, holders_per_emission=plan.holders_per_emission)
            # A fresh pool after seeding: connections that saw empty tables keep bad cached plans.
            await database.dispose()
            database = Database.from_url(url, settings)

            started = time.perf_counter()
            first = Mirror(
                database=database, chain=rpc_chain(node.url, timeout_s=settings.chain_timeout_s),
                vault=vault, signer=Signer(vault), settings=settings,
            )  # fmt: skip
            await first.drain()
            print(f"first drain (deploy tokens, open {EMISSIONS * plan.holders_per_emission} addresses, mint): "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip

            print("(1) throughput: commit N transfers, then drain the mirror until every batch is confirmed")
            runs = []
            for batch_ops, transfers in plan.throughput_runs:
                print(f"  {batch_ops} movements per chain transaction, {transfers} transfers ...", flush=True)
                run = await throughput_run(database, vault, settings, emissions, batch_ops=batch_ops, transfers=transfers)
                print(f"    posted at {run['post_per_s']:.0f}/s; mirrored in {run['drain_s']:.2f} s: "
                      f"{run['per_s']:.0f} transfers/s, {run['chain_transactions']} chain transactions, "
                      f"{run['gas_per_transfer']:.0f} gas per transfer")  # fmt: skip
                print_profile(run["profile"], run["drain_s"])
                run["in_sync"] = await all_in_sync(run.pop("mirror"))
                runs.append(run)

            rate, seconds = plan.lag_rate_per_s, plan.lag_seconds
            print(f"(2) lag: {rate} transfers/s for {seconds:.0f} s while the mirror runs", flush=True)
            lag = await lag_phase(database, vault, settings, emissions, rate_per_s=rate, seconds=seconds)
            kept_up = lag["kept_up"]
            print(f"    produced {lag['transfers']} at {lag['achieved_rate_per_s']:.0f}/s, confirmed {lag['confirmed']}")
            print(f"    oldest unconfirmed movement (sampled every {SAMPLE_EVERY_S} s while producing): p50 "
                  f"{lag['oldest_unconfirmed_p50_s']:.2f} s, p95 {lag['oldest_unconfirmed_p95_s']:.2f} s, "
                  f"max {lag['oldest_unconfirmed_max_s']:.2f} s")  # fmt: skip
            print(f"    commit to confirmed per transfer: p50 {lag['commit_to_confirmed_p50_s']:.2f} s, "
                  f"p95 {lag['commit_to_confirmed_p95_s']:.2f} s, max {lag['commit_to_confirmed_max_s']:.2f} s")  # fmt: skip
            print(f"    backlog when the producer stopped: {lag['backlog_at_stop']}, caught up "
                  f"{lag['catch_up_s']:.2f} s later in {lag['mirror_passes']} passes -> "
                  f"{'kept up (the lag stayed bounded)' if kept_up else 'FELL BEHIND (the lag grew)'}")  # fmt: skip
            lag["in_sync"] = await all_in_sync(lag.pop("mirror"))
            await database.dispose()
        finally:
            import pgserver

            pgserver.get_server(Path(data_dir) / "pg", cleanup_mode="stop").cleanup()

    by_size = {run["batch_ops"]: run for run in runs}
    figures: dict[str, object] = {}
    for size, run in by_size.items():
        figures[f"mirrored_per_s_batch_{size}"] = round(run["per_s"], 1)
        figures[f"gas_per_transfer_batch_{size}"] = round(run["gas_per_transfer"])
    figures |= {
        "post_per_s": round(runs[0]["post_per_s"], 1),
        "lag_rate_per_s": rate,
        "lag_achieved_rate_per_s": round(lag["achieved_rate_per_s"], 1),
        "lag_oldest_p50_s": round(lag["oldest_unconfirmed_p50_s"], 3),
        "lag_oldest_p95_s": round(lag["oldest_unconfirmed_p95_s"], 3),
        "lag_oldest_max_s": round(lag["oldest_unconfirmed_max_s"], 3),
        "lag_commit_to_confirmed_p50_s": round(lag["commit_to_confirmed_p50_s"], 3),
        "lag_commit_to_confirmed_p95_s": round(lag["commit_to_confirmed_p95_s"], 3),
        "lag_commit_to_confirmed_max_s": round(lag["commit_to_confirmed_max_s"], 3),
        "lag_catch_up_s": round(lag["catch_up_s"], 3),
        "lag_kept_up": kept_up,
        "holders": EMISSIONS * plan.holders_per_emission,
        "block_time_s": block_time_s,
        "in_sync": all(run["in_sync"] for run in runs) and lag["in_sync"],
    }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer holders and transfers, a 5 s lag phase")
    parser.add_argument("--block-time", type=float, default=None, help="anvil's block time in s (default: automine)")
    arguments = parser.parse_args()
    figures = asyncio.run(main(QUICK if arguments.quick else FULL, arguments.block_time))
    print(json.dumps(figures))
