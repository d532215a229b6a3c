"""The idempotency race: one effect per Idempotency-Key, however often, however concurrently and across crashes.

What is run: the platform in a process of its own on a PostgreSQL cluster of the test's own. Two investors
place buy orders (`POST /v1/orders`), an operation nothing but the idempotency store deduplicates: the order id
is the server's, so a request run twice is two orders. For each of 40 keys, one investor sends the same order
four times at once and the other investor sends the same key with the same order twice at once; the server is
killed with SIGKILL half-way through (requests in flight) and again after the last key, then started again, and
every key is sent once more by both, and once by the first investor with another order under the same key.

What is checked: exactly one order per key and investor in the database; every answer to one investor's key
identical in status and body, and all but the first marked `Idempotent-Replayed: true`; the same key with
another body refused with 422 `idempotency-key-reused` and no order written for it; the other investor's use
of the same key is its own (its own single order, never the first investor's answer). The same checker is run
against a server that skips claiming the key (`DFA_FAULTS=idempotency_unclaimed`) and must find duplicates.

The long form (500 keys, kills at a quarter, half and three quarters) runs with
`.venv/bin/pytest tests/fault --long-form`.
"""

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dfa.ledger import service as ledger
from dfa.platform import faults
from dfa.platform.database import Database
from tests.evidence import record
from tests.factories import new_asset_code
from tests.fault.cluster import (
    PlatformProcess,
    PostgresCluster,
    platform_process,
    platform_settings,
    postgres_cluster,
    unique_name,
    warm_up,
)
from tests.identity import cookie_of, create_user, sign_in
from tests.market import fund

pytestmark = pytest.mark.fault

CONCURRENT_PER_KEY = 4  # the first investor's simultaneous sends of each key
OTHER_USER_CONCURRENT = 2  # the second investor's
KEYS_IN_FLIGHT = 8  # keys sent at once
BASE_PRICE = 1_000  # tiyn; key n buys one unit at BASE_PRICE + n, so each order names its key
OTHER_BODY_PRICE_OFFSET = 1_000_000  # the same key with this much more is another request
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Investor:
    name: str
    party_id: uuid.UUID
    http: httpx.AsyncClient


@dataclass(frozen=True)
class Answer:
    investor: str
    key: int
    phase: str  # race, again or other_body
    status: int | None  # None: no answer (the server died, the connection broke)
    body: bytes
    replayed: bool


@dataclass
class Race:
    """Everything the investors were told."""

    answers: list[Answer] = field(default_factory=list)
    kills: int = 0


def _order(emission: str, key: int, *, other_body: bool = False) -> dict[str, Any]:
    price = BASE_PRICE + key + (OTHER_BODY_PRICE_OFFSET if other_body else 0)
    return {"base": emission, "side": "buy", "price": price, "quantity": 1}


async def _send(race: Race, investor: Investor, emission: str, run: str, key: int, phase: str) -> None:
    other_body = phase == "other_body"
    try:
        response = await investor.http.post(
            "/v1/orders", json=_order(emission, key, other_body=other_body),
            headers={"Idempotency-Key": f"{run}-{key}"},
        )
    except httpx.HTTPError:
        race.answers.append(Answer(investor.name, key, phase, None, b"", False))
        return
    race.answers.append(Answer(
        investor.name, key, phase, response.status_code, response.content,
        response.headers.get("idempotent-replayed") == "true",
    ))


async def _race(
    race: Race, process: PlatformProcess, first: Investor, second: Investor, emission: str, run: str, *,
    keys: int, kill_at: list[int],
) -> None:
    """Every key sent concurrently by both investors, a few keys at a time. At each key number in `kill_at`
    the server is killed with the requests of the keys before it in flight, and started again before the
    next keys are sent."""
    slots = asyncio.Semaphore(KEYS_IN_FLIGHT)

    async def send_key(key: int) -> None:
        async with slots:
            await asyncio.gather(
                *(_send(race, first, emission, run, key, "race") for _ in range(CONCURRENT_PER_KEY)),
                *(_send(race, second, emission, run, key, "race") for _ in range(OTHER_USER_CONCURRENT)),
            )

    start = 0
    for end in [*sorted(kill_at), keys]:
        caught = max(start, end - KEYS_IN_FLIGHT)
        await asyncio.gather(*(send_key(key) for key in range(start, caught)))
        in_flight = [asyncio.create_task(send_key(key)) for key in range(caught, end)]
        if end < keys:
            await asyncio.sleep(0.1)  # the requests reach the server, and it dies under them
            await asyncio.to_thread(process.restart)
            race.kills += 1
        await asyncio.gather(*in_flight)
        start = end


async def _again(race: Race, first: Investor, second: Investor, emission: str, run: str, *, keys: int) -> None:
    """Every key once more by both investors, then by the first with another order under the same key."""
    slots = asyncio.Semaphore(KEYS_IN_FLIGHT)

    async def send_key(key: int) -> None:
        async with slots:
            await asyncio.gather(
                _send(race, first, emission, run, key, "again"), _send(race, second, emission, run, key, "again")
            )
            await _send(race, first, emission, run, key, "other_body")

    await asyncio.gather(*(send_key(key) for key in range(keys)))


@dataclass(frozen=True)
class Effects:
    """What the database holds after the race: each investor's orders at each price, and whose each order is."""

    orders: dict[tuple[str, int], int]  # (investor, price) -> orders
    owners: dict[str, str]  # order id -> investor


async def _effects(database: Database, investors: list[Investor], emission: str) -> Effects:
    names = {investor.party_id: investor.name for investor in investors}
    async with database.read() as session:
        rows = list(await session.execute(
            text(
                "SELECT o.id, o.party_id, o.price FROM settlement_orders o JOIN ledger_assets a ON a.id = o.base_asset_id "
                "WHERE a.code = :emission"
            ),
            {"emission": emission},
        ))
    return Effects(
        orders=Counter((names[row.party_id], row.price) for row in rows),
        owners={str(row.id): names[row.party_id] for row in rows},
    )


def _order_id(answer: Answer) -> str | None:
    try:
        return json.loads(answer.body)["order"]["id"]
    except (ValueError, KeyError, TypeError):
        return None


def check(race: Race, effects: Effects, *, keys: int, investors: list[str]) -> tuple[dict[str, int], list[str]]:
    """Figures and violations of the race. Every key of every investor has exactly one order; every answer to
    it is the same (status and body), all but the first a marked replay; the key with another body is refused
    (422 `idempotency-key-reused`) and writes nothing; no investor is ever given another's order."""
    violations: list[str] = []
    by_key: dict[tuple[str, int], list[Answer]] = defaultdict(list)
    for answer in race.answers:
        if answer.phase != "other_body" and answer.status is not None:
            by_key[(answer.investor, answer.key)].append(answer)

    duplicates = missing = mismatched = refused_same = leaks = 0
    for investor in investors:
        for key in range(keys):
            orders = effects.orders.get((investor, BASE_PRICE + key), 0)
            if orders > 1:
                duplicates += orders - 1
                violations.append(f"{investor}'s key {key} placed {orders} orders")
            elif orders == 0:
                missing += 1
                violations.append(f"{investor}'s key {key} placed no order")
            answers = by_key[(investor, key)]
            distinct = {(a.status, a.body) for a in answers}
            firsts = [a for a in answers if not a.replayed]
            if len(distinct) > 1 or len(firsts) > 1:
                mismatched += 1
                violations.append(
                    f"{investor}'s key {key} got {len(distinct)} different answers, {len(firsts)} not marked as replays"
                )
            if any(not 200 <= a.status < 300 for a in answers):
                refused_same += 1
                violations.append(f"{investor}'s key {key} was refused although sent with the same body")
            for answer in answers:
                owner = effects.owners.get(_order_id(answer) or "")
                if owner is not None and owner != investor:
                    leaks += 1
                    violations.append(f"{investor}'s key {key} was answered with {owner}'s order")

    other = [a for a in race.answers if a.phase == "other_body"]
    refusals = sum(
        1 for a in other
        if a.status == 422 and json.loads(a.body).get("type") == "/problems/idempotency-key-reused"
    )
    if refusals != len(other):
        violations.append(f"{len(other) - refusals} of {len(other)} requests reusing a key with another body were not refused")
    written = sum(count for (_, price), count in effects.orders.items() if price >= OTHER_BODY_PRICE_OFFSET)
    if written:
        violations.append(f"{written} orders were written for requests reusing a key with another body")

    figures = {
        "keys": keys,
        "requests": len(race.answers),
        "concurrent_per_key": CONCURRENT_PER_KEY,
        "kills": race.kills,
        "unanswered": sum(a.status is None for a in race.answers),
        "replays": sum(a.replayed for a in race.answers),
        "effects": sum(count for (_, price), count in effects.orders.items() if price < OTHER_BODY_PRICE_OFFSET),
        "duplicates": duplicates,
        "missing_effects": missing,
        "mismatched_replays": mismatched,
        "refused_same_body": refused_same,
        "refusals_on_other_body": refusals,
        "written_on_other_body": written,
        "cross_user_leaks": leaks,
    }
    return figures, violations


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    warm_up()
    with postgres_cluster("idempotency") as cluster:
        yield cluster


async def _investors(process: PlatformProcess, database: Database, emission: str, *, keys: int) -> list[Investor]:
    settings = process.settings()
    async with database.unit_of_work() as session:
        await ledger.create_asset(session, code=emission, kind="dfa", scale=0, name="Idempotency race emission")
    investors = []
    for name in ("first", "second"):
        login, _, party_id, _ = await create_user(database, settings, role="investor")
        # Enough for every order many times over, so a duplicate is never refused for want of money.
        await fund(database, settings, party_id, money=20 * keys * (OTHER_BODY_PRICE_OFFSET + BASE_PRICE + keys))
        response = await asyncio.to_thread(sign_in, process.url, login)
        assert response.status_code == 200, response.text
        http = httpx.AsyncClient(
            base_url=process.url, timeout=REQUEST_TIMEOUT_S,
            headers={"Cookie": f"dfa_session={cookie_of(response)}", "X-CSRF-Token": response.json()["csrf_token"]},
        )
        investors.append(Investor(name, party_id, http))
    return investors


async def _run(
    process: PlatformProcess, *, keys: int, kills_during_race: list[float], kill_after_race: bool = True
) -> tuple[dict, list[str], float]:
    """The race, the kill after it, the second round, and the checker's verdict (figures, violations, seconds)."""
    started = time.monotonic()
    emission = new_asset_code("IDEM")
    run = uuid.uuid4().hex[:8]
    database = Database.from_url(process.values["database_url"], process.settings())
    first, second = investors = await _investors(process, database, emission, keys=keys)
    race = Race()
    try:
        await _race(race, process, first, second, emission, run, keys=keys,
                    kill_at=[int(keys * fraction) for fraction in kills_during_race])
        if kill_after_race:
            await asyncio.to_thread(process.restart)
            race.kills += 1
        await _again(race, first, second, emission, run, keys=keys)
        effects = await _effects(database, investors, emission)
    finally:
        for investor in investors:
            await investor.http.aclose()
        await database.dispose()
    figures, violations = check(race, effects, keys=keys, investors=[i.name for i in investors])
    return figures, violations, time.monotonic() - started


async def test_req57_one_effect_per_idempotency_key_under_concurrent_retries_and_crashes(
    cluster: PostgresCluster, tmp_path: Path, long_form: bool
):
    """REQ-57: a transaction is concluded once however often, however concurrently and across however many
    crashes a client repeats it; and one client's key never touches another's transaction."""
    keys, kills_during_race = (500, [0.25, 0.5, 0.75]) if long_form else (40, [0.5])
    settings = platform_settings(
        database_url=cluster.create_database(unique_name("idempotency")), data_dir=tmp_path / "data"
    )
    with platform_process("idempotency", settings=settings) as process:
        figures, violations, duration_s = await _run(process, keys=keys, kills_during_race=kills_during_race)

    record(
        "idempotency-race",
        title="The idempotency race: one effect per key under concurrent retries and crashes",
        requirements=["REQ-57"],
        method=(
            f"Two investors placed buy orders under {keys} Idempotency-Keys, each key sent {CONCURRENT_PER_KEY} "
            f"times at once by one investor and {OTHER_USER_CONCURRENT} times by the other, while the platform "
            f"process was killed with SIGKILL {figures['kills']} times; every key was then sent again, and with "
            "another body, and the orders in the database were counted per key."
        ),
        form="long" if long_form else "short",
        figures={**figures, "duration_s": round(duration_s, 1)},
        violations=violations,
    )
    assert violations == []
    assert figures["replays"] > 0 and figures["unanswered"] > 0, "no replay, or no request caught by a kill"


async def test_the_checker_finds_duplicate_effects_when_keys_are_not_claimed(cluster: PostgresCluster, tmp_path: Path):
    """The same race and checker against a server that runs requests without claiming their key
    (`DFA_FAULTS=idempotency_unclaimed`): concurrent sends and retries each place an order of their own."""
    settings = platform_settings(
        database_url=cluster.create_database(unique_name("idempotency_unclaimed")), data_dir=tmp_path / "data"
    )
    with platform_process("idempotency-unclaimed", settings=settings, faults=faults.IDEMPOTENCY_UNCLAIMED) as process:
        figures, violations, _ = await _run(process, keys=10, kills_during_race=[], kill_after_race=False)

    assert figures["duplicates"] > 0, figures
    assert figures["refusals_on_other_body"] == 0 and figures["written_on_other_body"] > 0, figures
    assert violations
