"""Settlement throughput and latency on the embedded PostgreSQL.

(a) DvP settlement through the service layer: matched bilateral instructions due today, settled by
    the settlement run in chunks (each chunk one transaction: screening of both parties, one linked
    ledger batch of both legs and the fees, statuses and history), from 2 concurrent connections;
    also chunks of one, the latency of a single instruction settled on its own.
(b) orders with matching through the service layer: limit orders around one price on several books
    from 4 concurrent connections; about every other order trades and settles at once.
(c) orders with matching end-to-end over HTTP: the app under uvicorn in its own process (loopback),
    signed-in investors posting orders with idempotency keys from 16 concurrent clients.

Ends with one JSON line of figures.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from dfa.ledger import service as ledger  # noqa: E402
from dfa.platform.adapters.antifraud import AntiFraudSimulator, WatchList  # noqa: E402
from dfa.platform.database import Database, run_migrations_async, start_embedded_postgres  # noqa: E402
from dfa.platform.identifiers import check_digit  # noqa: E402
from dfa.platform.calendar.service import load_calendar  # noqa: E402
from dfa.platform.identity.guard import SESSION_COOKIE  # noqa: E402
from dfa.platform.identity.service import parties, users  # noqa: E402
from dfa.platform.settings import Settings  # noqa: E402
from dfa.settlement.service import accounts, instructions, orders  # noqa: E402

INVESTORS = 200
BOOKS = 8
MONEY = 10**12  # tiyn each investor starts with
UNITS = 10**7  # units of each emission each investor starts with
PRICE = 10_000
PASSWORD = "bench-password-2026"


def identifiers(count: int) -> list[str]:
    """`count` distinct valid IINs."""
    bodies = (f"9001013{n:04d}" for n in range(10_000))
    valid = (body + str(digit) for body in bodies if (digit := check_digit(body)) is not None)
    return [next(valid) for _ in range(count)]


def percentile_ms(latencies: list[float], fraction: float) -> float:
    ordered = sorted(latencies)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 2) if ordered else 0.0


def centre() -> AntiFraudSimulator:
    return AntiFraudSimulator(WatchList([]))


async def seed(database: Database, settings: Settings) -> tuple[list, list[str]]:
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=settings)
        issuer = await parties.create_party(
            session, kind="legal_entity", name="Bench Issuer", identifier="190840000005", resident=True, settings=settings
        )
        await parties.decide_kyc(session, party_id=issuer.id, status="identified", level="full", method="in_person",
                                 reason="bench", actor="bench", settings=settings)
        emissions = [f"BENCH-{n:02d}" for n in range(BOOKS)]
        issued = {}
        for code in emissions:
            await ledger.create_asset(session, code=code, kind="dfa", scale=0, name=f"bench emission {code}")
            issued[code] = await ledger.open_account(
                session, owner_party_id=issuer.id, asset_code=code, kind="issued", settings=settings
            )
        client_money = await accounts.operator_account(session, kind="client_money", settings=settings)
        investors, transfers = [], []
        for n, iin in enumerate(identifiers(INVESTORS)):
            party = await parties.create_party(session, kind="person", name=f"Bench Investor {n}",
                                               identifier=iin, resident=True, settings=settings)
            await parties.decide_kyc(session, party_id=party.id, status="identified", level="full",
                                     method="in_person", reason="bench", actor="bench", settings=settings)
            investors.append(party)
            cash = await accounts.holder_account(session, party_id=party.id, asset_code="KZT", settings=settings)
            transfers.append(ledger.TransferSpec(uuid.uuid4(), client_money.id, cash.id, MONEY))
            for code in emissions:
                units = await accounts.holder_account(session, party_id=party.id, asset_code=code, settings=settings)
                transfers.append(ledger.TransferSpec(uuid.uuid4(), issued[code].id, units.id, UNITS))
        await ledger.post_transfers(session, transfers=transfers)
    return investors, emissions


async def run_workers(count: int, seconds: float, step) -> tuple[list[float], int, float]:
    """`count` workers call `step(rng)` until time is up or a step returns None (nothing left to do);
    a step returns how many operations it completed, each counted with the step's latency."""
    latencies: list[float] = []
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(seed_: int) -> None:
        nonlocal done
        rng = random.Random(seed_)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            n = await step(rng)
            if n is None:
                return
            latencies.extend([time.perf_counter() - started] * n)
            done += n

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(count)))
    return latencies, done, time.perf_counter() - started


async def prepare_instructions(database: Database, settings: Settings, investors, emissions, count: int) -> None:
    """`count` bilateral DvPs with both sides submitted and matched, due today but not yet settled (not
    timed): they are submitted for the next business day, then moved to today."""
    rng = random.Random(count)
    fraud_centre = centre()
    async with database.unit_of_work() as session:
        today = await instructions.business_date(session, settings=settings)
        calendar = await load_calendar(session, settings=settings)
    later = calendar.add_business_days(today, 1)
    for start in range(0, count, 500):
        async with database.unit_of_work() as session:
            for n in range(start, min(count, start + 500)):
                seller, buyer = rng.sample(investors, 2)
                code, quantity = rng.choice(emissions), rng.randint(1, 100)
                units, money = instructions.Delivery(code, quantity), instructions.Delivery("KZT", quantity * PRICE)
                for party, counterparty, give, take in ((seller, buyer, units, money), (buyer, seller, money, units)):
                    await instructions.submit(
                        session, party_id=party.id, counterparty_id=counterparty.id, deliver=give, receive=take,
                        reference=f"B-{count}-{n}", settlement_date=later, actor="bench", centre=fraud_centre,
                        settings=settings,
                    )
    async with database.unit_of_work() as session:
        await session.execute(
            text("UPDATE settlement_instructions SET settlement_date = :today WHERE status = 'pending'"),
            {"today": today},
        )


async def dvp_service_phase(database: Database, settings: Settings, investors, emissions, *, chunk: int,
                            count: int) -> dict:
    await prepare_instructions(database, settings, investors, emissions, count)
    fraud_centre = centre()

    async def settle_chunk(_rng) -> int | None:
        async with database.unit_of_work() as session:
            settled = await instructions.settle_due(session, centre=fraud_centre, settings=settings, limit=chunk)
        return settled or None

    latencies, done, elapsed = await run_workers(2, 3_600, settle_chunk)
    return {"settled": done, "per_s": round(done / elapsed, 1), "p50_ms": percentile_ms(latencies, 0.5),
            "p99_ms": percentile_ms(latencies, 0.99)}


def _order(rng: random.Random, emissions: list[str]) -> dict:
    side = rng.choice(["buy", "sell"])
    # Buyers bid at or above the price, sellers ask at or below it, so about every other order trades.
    offset = rng.randint(0, 3) * 10
    return {"base": rng.choice(emissions), "side": side, "price": PRICE + offset if side == "buy" else PRICE - offset,
            "quantity": rng.randint(1, 50)}


async def orders_service_phase(database: Database, settings: Settings, investors, emissions, seconds: float) -> dict:
    fraud_centre = centre()
    trades = 0

    async def place(rng) -> int:
        nonlocal trades
        order = _order(rng, emissions)
        async with database.unit_of_work() as session:
            placed = await orders.place(
                session, order_id=uuid.uuid4(), party_id=rng.choice(investors).id, actor="bench",
                centre=fraud_centre, settings=settings, **order,
            )
        trades += len(placed.trades)
        return 1

    latencies, done, elapsed = await run_workers(4, seconds, place)
    return {"orders": done, "trades": trades, "per_s": round(done / elapsed, 1),
            "p50_ms": percentile_ms(latencies, 0.5), "p99_ms": percentile_ms(latencies, 0.99)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def orders_http_phase(database: Database, settings: Settings, url: str, data_dir: Path, investors,
                            emissions, seconds: float, clients: int) -> dict:
    logins = []
    async with database.unit_of_work() as session:
        for n, party in enumerate(investors[:clients]):
            login = f"bench-{n}"
            await users.create_user(session, login=login, password=PASSWORD, roles=["investor"], party_id=party.id,
                                    actor="bench", settings=settings)
            logins.append(login)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "DEMO_DATA": "false", "CHAIN_MIRROR_ENABLED": "false",
           "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING", "BANK_POLL_INTERVAL_S": "0",
           "WITHDRAWAL_SUBMIT_INTERVAL_S": "0", "ANTIFRAUD_WATCH_LIST": str(data_dir / "watch-list.json")}
    (data_dir / "watch-list.json").write_text('{"entries": []}')
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dfa.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=Path(__file__).resolve().parents[1],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
            for _ in range(600):
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        sessions = []
        for login in logins:
            async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
                response = await anonymous.post("/v1/auth/sign-in", json={"login": login, "password": PASSWORD})
                response.raise_for_status()
                cookie = next(
                    header.split(";", 1)[0] for header in response.headers.get_list("set-cookie")
                    if header.startswith(f"{SESSION_COOKIE}=")
                )
                sessions.append(httpx.AsyncClient(
                    base_url=base, timeout=30, headers={"Cookie": cookie, "X-CSRF-Token": response.json()["csrf_token"]},
                ))
        failures = 0
        trades = 0

        async def post(rng) -> int:
            nonlocal failures, trades  # one session per worker would be stricter; requests interleave anyway
            client = sessions[rng.randrange(len(sessions))]
            response = await client.post("/v1/orders", json=_order(rng, emissions),
                                         headers={"Idempotency-Key": str(uuid.uuid4())})
            if response.status_code != 201:
                failures += 1
                return 0
            trades += len(response.json()["trades"])
            return 1

        # As many workers as signed-in clients, each posting its next order when the last is answered.
        latencies, done, elapsed = await run_workers(len(sessions), seconds, post)
        for client in sessions:
            await client.aclose()
        return {"orders": done, "trades": trades, "failed": failures, "per_s": round(done / elapsed, 1),
                "p50_ms": percentile_ms(latencies, 0.5), "p99_ms": percentile_ms(latencies, 0.99)}
    finally:
        server.terminate()
        server.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each timed phase.")
    parser.add_argument("--instructions", type=int, default=20_000, help="Instructions settled in chunks.")
    parser.add_argument("--chunk", type=int, default=200, help="Instructions settled per transaction.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent HTTP clients.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dfa-bench-settlement-") as directory:
        data_dir = Path(directory)
        url = start_embedded_postgres(data_dir)
        await run_migrations_async(url)
        settings = Settings(database_url=url, demo_data=False, data_dir=data_dir, chain_mirror_enabled=False,
                            _env_file=None)
        database = Database.from_url(url, settings)
        investors, emissions = await seed(database, settings)
        # Fresh connections after seeding (see DESIGN.md on cached plans against empty tables).
        await database.dispose()
        database = Database.from_url(url, settings)

        batched = await dvp_service_phase(database, settings, investors, emissions, chunk=args.chunk,
                                          count=args.instructions)
        print(f"DvP settlement, chunks of {args.chunk}: {batched}", flush=True)
        single = await dvp_service_phase(database, settings, investors, emissions, chunk=1,
                                         count=max(500, args.instructions // 20))
        print(f"DvP settlement, one per transaction: {single}", flush=True)
        service_orders = await orders_service_phase(database, settings, investors, emissions, args.seconds)
        print(f"orders through the service layer: {service_orders}", flush=True)
        await database.dispose()
        database = Database.from_url(url, settings)
        http_orders = await orders_http_phase(database, settings, url, data_dir, investors, emissions, args.seconds,
                                              args.clients)
        print(f"orders over HTTP: {http_orders}", flush=True)
        await database.dispose()

    print(json.dumps({
        "dvp_service_per_s": batched["per_s"],
        "dvp_service_p50_ms": batched["p50_ms"],
        "dvp_service_p99_ms": batched["p99_ms"],
        "dvp_service_chunk": args.chunk,
        "dvp_single_per_s": single["per_s"],
        "dvp_single_p99_ms": single["p99_ms"],
        "orders_service_per_s": service_orders["per_s"],
        "orders_service_p99_ms": service_orders["p99_ms"],
        "orders_http_per_s": http_orders["per_s"],
        "orders_http_p50_ms": http_orders["p50_ms"],
        "orders_http_p99_ms": http_orders["p99_ms"],
        "orders_http_trades": http_orders["trades"],
        "orders_http_failed": http_orders["failed"],
    }))


if __name__ == "__main__":
    asyncio.run(main())
