"""REQ-56, REQ-55: the runbook's restore drill, on every test run.

A database with real activity (transfers on many accounts, holds placed, settled and released, users
signing in and being refused and locked out) is backed up with the platform's own backup; more is written
after the backup; the dump is restored into a new PostgreSQL cluster of its own (initdb in a new
directory, as on a replacement host), and the restored database is examined as the runbook says: the
ledger's journal replayed and its invariants checked (`dfa verify-ledger`, and this drill's own SQL), both
hash chains verified (the ledger's per-account journal and the security-event log: `dfa audit verify`),
and the state compared with the one read at backup time, without any of the writes made after it.

The same examination, run on a restore whose data was altered behind the platform's back (a balance
changed, a security event edited with its trigger bypassed as the superuser), must report it.
"""

import asyncio
import json
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from dfa.ledger import service as ledger
from dfa.ledger.models import HOLDER_KINDS
from dfa.platform import backup as backups
from dfa.platform.database import Database, run_migrations, start_embedded_postgres
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.errors import SignInFailed
from dfa.platform.identity.service import users
from dfa.platform.settings import Settings
from tests.backup_state import AccountState, dfa_cli, ledger_state
from tests.conftest import outside_transaction, url_of
from tests.evidence import record
from tests.factories import funded_accounts, make_account, make_asset, make_party
from tests.identity import PASSWORD

pytestmark = pytest.mark.fault

# The ledger verifier's checks that recompute the journal's hash chain; its other checks are invariants.
LEDGER_CHAIN_CHECKS = frozenset({"entry_hash", "chain_link"})
OPENING_TIYN = 1_000_000
OPENING_UNITS = 10_000
TRANSFERS_PER_UNIT_OF_WORK = 250


@dataclass(frozen=True)
class Volume:
    money_accounts: int
    unit_accounts: int
    transfers: int
    holds: int
    users: int
    sign_ins: int
    wrong_passwords: int


SHORT = Volume(money_accounts=12, unit_accounts=6, transfers=400, holds=24, users=3, sign_ins=4, wrong_passwords=7)
LONG = Volume(
    money_accounts=200, unit_accounts=100, transfers=20_000, holds=600, users=20, sign_ins=60, wrong_passwords=80
)


@dataclass(frozen=True)
class Snapshot:
    """What the source held when it was backed up."""

    accounts: dict[int, AccountState]
    security_head: tuple[int, bytes]
    transfers: int
    entries: int
    security_events: int


@dataclass(frozen=True)
class LaterWrites:
    """What was written to the source after the backup: none of it may come back with the restore."""

    transfer_ids: list[uuid.UUID]
    hold_ids: list[uuid.UUID]
    account_ids: list[int]
    events: int

    @property
    def rows(self) -> int:
        return len(self.transfer_ids) + len(self.hold_ids) + len(self.account_ids) + self.events


@dataclass
class Findings:
    """What an examination of a restored database found, each in words."""

    invariants: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.invariants, *self.chains, *self.state]


@dataclass(frozen=True)
class Drill:
    cluster: Database  # the new cluster's maintenance database, for creating the restore targets
    cluster_url: str
    cluster_start_s: float
    dump: Path
    backup_s: float
    snapshot: Snapshot
    later: LaterWrites
    source_url: str
    volume: Volume


# --- the source's activity --------------------------------------------------------------------------------


async def _ledger_activity(database: Database, volume: Volume, rng: random.Random) -> dict[int, int]:
    """Money and units moved at random between holders (never more than a holder has), and holds placed,
    some settled to another holder, some released, some left pending; returns the money holders' balances."""
    async with database.unit_of_work() as session:
        _, _, money = await funded_accounts(session, count=volume.money_accounts, amount=OPENING_TIYN)
        emission = await make_asset(session, kind="dfa")
        _, _, units = await funded_accounts(session, count=volume.unit_accounts, amount=OPENING_UNITS, asset=emission)
    books = [({a.id: OPENING_TIYN for a in money}, OPENING_TIYN // 100), ({a.id: OPENING_UNITS for a in units}, 50)]
    remaining = volume.transfers
    while remaining:
        batch = []
        for _ in range(min(remaining, TRANSFERS_PER_UNIT_OF_WORK)):
            balances, largest = rng.choice(books)
            debit, credit = rng.sample(sorted(balances), 2)
            amount = rng.randint(1, max(1, min(largest, balances[debit])))
            balances[debit] -= amount
            balances[credit] += amount
            batch.append(ledger.TransferSpec(uuid.uuid4(), debit, credit, amount))
        async with database.unit_of_work() as session:
            await ledger.post_transfers(session, transfers=batch)
        remaining -= len(batch)
    balances = books[0][0]
    async with database.unit_of_work() as session:
        for n in range(volume.holds):
            holder, other = rng.sample(sorted(balances), 2)
            if balances[holder] < 10:
                continue
            amount = rng.randint(1, balances[holder] // 10)
            hold_id = uuid.uuid4()
            await ledger.place_hold(session, hold_id=hold_id, account_id=holder, amount=amount)
            balances[holder] -= amount
            if n % 3 == 0:
                await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=other)
                balances[other] += amount
            elif n % 3 == 1:
                await ledger.void_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4())
                balances[holder] += amount
    return balances


async def _sign_in(database: Database, settings: Settings, keys: Keys, login: str, password: str) -> bool:
    """One sign-in attempt as the API makes it: a refusal commits too (its count and its security event stay)."""
    async with database.unit_of_work() as session:
        try:
            await users.sign_in(
                session, login=login, password=password, one_time_code=None, source="203.0.113.7",
                settings=settings, keys=keys,
            )
        except SignInFailed:
            return False
    return True


async def _security_activity(database: Database, settings: Settings, volume: Volume, rng: random.Random) -> None:
    """Users created, signing in, mistyping passwords until one is locked out, and unknown logins refused."""
    keys = Keys.load(settings)
    logins = []
    async with database.unit_of_work() as session:
        for _ in range(volume.users):
            party = await make_party(session)
            login = f"drill-{uuid.uuid4().hex[:10]}"
            await users.create_user(
                session, login=login, password=PASSWORD, roles=["investor"], party_id=party.id, actor="drill",
                settings=settings,
            )
            logins.append(login)
    locked, others = logins[0], logins[1:] or logins
    for _ in range(volume.sign_ins):
        assert await _sign_in(database, settings, keys, rng.choice(others), PASSWORD)
    for n in range(volume.wrong_passwords):
        login = locked if n < settings.sign_in_max_failures else rng.choice([*others, "nobody-" + uuid.uuid4().hex[:6]])
        assert not await _sign_in(database, settings, keys, login, "wrong-" + PASSWORD)
    assert not await _sign_in(database, settings, keys, locked, PASSWORD), "a locked-out user is refused"


async def _snapshot(url: str, settings: Settings) -> Snapshot:
    accounts, verification = await ledger_state(url, settings)
    assert verification.ok, verification.first_discrepancy
    database = Database.from_url(url, settings)
    try:
        async with database.read() as session:
            head = (await session.execute(text("SELECT seq, hash FROM security_event_head"))).one()
    finally:
        await database.dispose()
    return Snapshot(accounts, (head.seq, head.hash), verification.transfers, verification.entries, head.seq)


async def _write_after_backup(
    database: Database, settings: Settings, snapshot: Snapshot, money: dict[int, int]
) -> LaterWrites:
    """Transfers, a hold, a new account and a refused sign-in, all committed after the backup."""
    holders = sorted(a for a, balance in money.items() if balance > 10)[:4]
    transfer_ids = [uuid.uuid4() for _ in holders[1:]]
    hold_id = uuid.uuid4()
    async with database.unit_of_work() as session:
        await ledger.post_transfers(
            session,
            transfers=[ledger.TransferSpec(t, holders[0], credit, 1) for t, credit in zip(transfer_ids, holders[1:])],
        )
        await ledger.place_hold(session, hold_id=hold_id, account_id=holders[1], amount=1)
        account = await make_account(session, asset=await make_asset(session))
    keys = Keys.load(settings)
    assert not await _sign_in(database, settings, keys, "nobody-after-the-backup", PASSWORD)
    async with database.read() as session:
        head = (await session.execute(text("SELECT seq FROM security_event_head"))).scalar_one()
    return LaterWrites(transfer_ids, [hold_id], [account.id], head - snapshot.security_head[0])


# --- the examination of a restored database -----------------------------------------------------------------

_STORED_BALANCE_IS_THE_SUM_OF_ENTRIES = """
    SELECT 'account ' || a.id || ': stored balance ' || a.balance || ', its entries sum to ' || coalesce(e.total, 0)
    FROM ledger_accounts a
    LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) e
        ON e.account_id = a.id
    WHERE a.balance <> coalesce(e.total, 0)
"""
_EVERY_ASSET_SUMS_TO_ZERO = """
    SELECT 'asset ' || x.code || ': balances sum to ' || sum(a.balance)
    FROM ledger_accounts a JOIN ledger_assets x ON x.id = a.asset_id
    GROUP BY x.code HAVING sum(a.balance) <> 0
"""
_NO_CLIENT_BALANCE_IS_NEGATIVE = """
    SELECT 'account ' || id || ' (' || kind || '): negative balance ' || balance
    FROM ledger_accounts WHERE kind = ANY(:holder_kinds) AND balance < 0
"""


def _cli_json(args: tuple[str, ...], url: str) -> tuple[int, dict | None, str]:
    completed = dfa_cli(*args, database_url=url)
    try:
        return completed.returncode, json.loads(completed.stdout), completed.stderr
    except json.JSONDecodeError:
        return completed.returncode, None, completed.stderr


async def examine(url: str, settings: Settings, snapshot: Snapshot, later: LaterWrites) -> Findings:
    """Everything the runbook checks on a restored database, with every finding in words (none: it passed)."""
    found = Findings()
    (code, ledger_report, stderr), (audit_code, audit_report, audit_stderr) = await asyncio.gather(
        asyncio.to_thread(_cli_json, ("verify-ledger",), url), asyncio.to_thread(_cli_json, ("audit", "verify"), url)
    )
    if ledger_report is None or code != 0 or not ledger_report["ok"]:
        discrepancy = (ledger_report or {}).get("first_discrepancy") or {"check": "exit", "detail": stderr[-500:]}
        finding = f"dfa verify-ledger: {discrepancy['check']}: {discrepancy.get('detail')}"
        (found.chains if discrepancy["check"] in LEDGER_CHAIN_CHECKS else found.invariants).append(finding)
    if audit_report is None or audit_code != 0 or not audit_report["ok"]:
        problems = (audit_report or {}).get("problems") or [audit_stderr[-500:]]
        found.chains += [f"dfa audit verify: {problem}" for problem in problems]

    database = Database.from_url(url, settings)
    try:
        async with database.read() as session:
            for check in (_STORED_BALANCE_IS_THE_SUM_OF_ENTRIES, _EVERY_ASSET_SUMS_TO_ZERO):
                found.invariants += (await session.execute(text(check))).scalars().all()
            found.invariants += (
                await session.execute(text(_NO_CLIENT_BALANCE_IS_NEGATIVE), {"holder_kinds": list(HOLDER_KINDS)})
            ).scalars().all()
            head = (await session.execute(text("SELECT seq, hash FROM security_event_head"))).one()
            present = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM ledger_transfers WHERE id = ANY(:transfers))"
                        " + (SELECT count(*) FROM ledger_holds WHERE id = ANY(:holds))"
                        " + (SELECT count(*) FROM ledger_accounts WHERE id = ANY(:accounts))"
                        " + (SELECT count(*) FROM security_events WHERE seq > :seq)"
                    ),
                    {"transfers": later.transfer_ids, "holds": later.hold_ids, "accounts": later.account_ids,
                     "seq": snapshot.security_head[0]},
                )
            ).scalar_one()
    finally:
        await database.dispose()
    accounts, _ = await ledger_state(url, settings)
    found.state += [
        f"account {a}: (balance, version, last hash) {accounts.get(a)} differs from {snapshot.accounts.get(a)} at backup"
        for a in sorted(accounts.keys() | snapshot.accounts.keys())
        if accounts.get(a) != snapshot.accounts.get(a)
    ]
    if (head.seq, head.hash) != snapshot.security_head:
        found.state.append(f"security-event log head {head.seq} differs from {snapshot.security_head[0]} at backup")
    if present:
        found.state.append(f"{present} rows written after the backup are present")
    return found


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def source(database: Database, database_url: str, settings: Settings) -> AsyncIterator[str]:
    """A migrated database of its own on the test server: what the drill backs up."""
    name = f"dfa_drill_{uuid.uuid4().hex[:10]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}"')
    url = url_of(database_url, name)
    await asyncio.to_thread(run_migrations, url)
    yield url
    await outside_transaction(database, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def new_cluster() -> Iterator[tuple[str, float]]:
    """A new embedded PostgreSQL cluster in a directory of its own (its URL, and how long it took to start);
    stopped and deleted at the end."""
    import pgserver

    directory = Path(tempfile.mkdtemp(prefix="dfa-drill-"))
    started = time.perf_counter()
    try:
        url = start_embedded_postgres(directory)
        yield url, time.perf_counter() - started
    finally:
        pgserver.get_server(directory / "pg", cleanup_mode="stop").cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
async def drill(
    source: str, new_cluster: tuple[str, float], settings: Settings, long_form: bool, tmp_path_factory
) -> AsyncIterator[Drill]:
    volume = LONG if long_form else SHORT
    rng = random.Random(56)
    database = Database.from_url(source, settings)
    cluster_url, cluster_start_s = new_cluster
    cluster = Database.from_url(cluster_url, settings)
    try:
        money = await _ledger_activity(database, volume, rng)
        await _security_activity(database, settings, volume, rng)
        snapshot = await _snapshot(source, settings)
        started = time.perf_counter()
        dump = await asyncio.to_thread(backups.backup, source, tmp_path_factory.mktemp("drill-backups"))
        backup_s = time.perf_counter() - started
        # Nothing else writes to this database: the state read before the dump is the dump's snapshot.
        assert await _snapshot(source, settings) == snapshot, "the source changed while it was backed up"
        later = await _write_after_backup(database, settings, snapshot, money)
        yield Drill(cluster, cluster_url, cluster_start_s, dump, backup_s, snapshot, later, source, volume)
    finally:
        await database.dispose()
        await cluster.dispose()


async def _restored(drill: Drill, name: str) -> tuple[str, float]:
    """The drill's dump restored into a new database `name` of the new cluster; (its URL, seconds the restore took)."""
    await outside_transaction(drill.cluster, f'CREATE DATABASE "{name}"')
    url = url_of(drill.cluster_url, name)
    started = time.perf_counter()
    await asyncio.to_thread(backups.restore, url, drill.dump)
    return url, time.perf_counter() - started


# --- the proofs ---------------------------------------------------------------------------------------------


async def test_a_backup_restored_into_a_new_cluster_is_the_backed_up_state_whole_and_verified(
    drill: Drill, settings: Settings, long_form: bool
):
    """REQ-56, REQ-55: a restore gives back exactly the ledger and the security-event log of the backup's
    instant, both hash chains intact, every ledger invariant holding, and nothing written after the backup."""
    url, restore_s = await _restored(drill, "dfa_restored")
    started = time.perf_counter()
    found = await examine(url, settings, drill.snapshot, drill.later)
    verification_s = time.perf_counter() - started

    record(
        "restore-drill",
        title="Restore drill: a backup restored into a new PostgreSQL cluster is the backed-up state, verified",
        requirements=["REQ-56", "REQ-55"],
        method=(
            "A database with ledger transfers, holds and security events (sign-ins, refusals, a lockout) was backed "
            "up with the platform's backup, written to again, and the dump restored into a newly initialised "
            "PostgreSQL cluster; there the ledger was replayed and verified (dfa verify-ledger and independent SQL), "
            "both hash chains were recomputed (dfa audit verify) and the state compared with the one at backup time."
        ),
        form="long" if long_form else "short",
        figures={
            "transfers": drill.snapshot.transfers,
            "journal_entries": drill.snapshot.entries,
            "accounts": len(drill.snapshot.accounts),
            "security_events": drill.snapshot.security_events,
            "backup_bytes": drill.dump.stat().st_size,
            "backup_s": round(drill.backup_s, 1),
            "cluster_start_s": round(drill.cluster_start_s, 1),
            "restore_s": round(restore_s, 1),
            "verification_s": round(verification_s, 1),
            "invariant_violations": len(found.invariants),
            "chain_violations": len(found.chains),
            "state_differences": len(found.state),
            "rows_written_after_backup": drill.later.rows,
            "rows_after_backup_absent": not any("after the backup" in f for f in found.state),
        },
        violations=found.all,
    )
    assert drill.later.rows > 0 and drill.snapshot.security_events > drill.volume.wrong_passwords
    assert found.all == []


async def test_the_drill_reports_a_restore_altered_behind_the_platforms_back(drill: Drill, settings: Settings):
    """REQ-56, REQ-55: the same examination, on a restore where a balance was changed and a security event
    edited as the superuser (its append-only trigger bypassed), reports both; compared with the source as it
    is now, it reports the writes made after the backup."""
    url, _ = await _restored(drill, "dfa_tampered")
    holder = min(a for a, (balance, *_) in drill.snapshot.accounts.items() if balance > 0)
    edited_event = max(1, drill.snapshot.security_head[0] // 2)
    tampered = Database.from_url(url, settings)
    try:
        async with tampered.unit_of_work() as session:
            await session.execute(text("SET LOCAL session_replication_role = replica"))
            await session.execute(text("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :id"), {"id": holder})
            await session.execute(
                text("UPDATE security_events SET details = '{\"reason\": \"edited\"}' WHERE seq = :seq"),
                {"seq": edited_event},
            )
    finally:
        await tampered.dispose()

    found, newer = await asyncio.gather(
        examine(url, settings, drill.snapshot, drill.later),
        examine(drill.source_url, settings, drill.snapshot, drill.later),
    )

    assert any(f.startswith("dfa verify-ledger: account_state") for f in found.invariants), found
    assert any(f"account {holder}: stored balance" in f for f in found.invariants), found
    assert any("balances sum to 1" in f for f in found.invariants), found
    assert any(f"dfa audit verify: event {edited_event}:" in f for f in found.chains), found
    assert any(f.startswith(f"account {holder}:") for f in found.state), found
    assert not any("after the backup" in f for f in found.state), found
    assert f"{drill.later.rows} rows written after the backup are present" in newer.state, newer
    assert any(f.startswith("security-event log head") for f in newer.state), newer
    assert newer.invariants == [] and newer.chains == [], newer
