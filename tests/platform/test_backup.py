"""REQ-56: backup and restore on the real PostgreSQL; a restored database holds the same ledger, or nothing."""

import asyncio
import re
import stat
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from dfa.ledger import service as ledger
from dfa.ledger.service import TransferSpec
from dfa.platform import backup as backups
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from tests.backup_state import dfa_cli as _cli
from tests.backup_state import ledger_state as _ledger_state
from tests.backup_state import security_log as _security_log
from tests.factories import funded_accounts, make_asset

ROOT = Path(__file__).resolve().parents[2]


async def _committed_ledger(database: Database) -> dict[int, int]:
    """Committed money and DFA accounts with transfers and a pending hold; returns their expected balances."""
    async with database.unit_of_work() as session:
        _, bank, (alice, bob, carol) = await funded_accounts(session, count=3, amount=50_000)
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 12_345))
        await ledger.post_transfers(
            session,
            transfers=[
                TransferSpec(uuid.uuid4(), bob.id, carol.id, 1_000),
                TransferSpec(uuid.uuid4(), carol.id, alice.id, 7),
            ],
        )
        await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=carol.id, amount=500)
        emission = await make_asset(session, kind="dfa")
        _, issued, (holder,) = await funded_accounts(session, count=1, amount=1_000, asset=emission)
    return {
        bank.id: -150_000,
        alice.id: 50_000 - 12_345 + 7,
        bob.id: 50_000 + 12_345 - 1_000,
        carol.id: 50_000 + 1_000 - 7 - 500,
        issued.id: -1_000,
        holder.id: 1_000,
    }


async def _tables(url: str, settings: Settings) -> set[str]:
    database = Database.from_url(url, settings)
    try:
        async with database.read() as session:
            rows = await session.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            )
            return {row[0] for row in rows}
    finally:
        await database.dispose()


@dataclass(frozen=True)
class Backup:
    path: Path
    expected_balances: dict[int, int]  # the accounts this module committed
    source_accounts: dict[int, tuple]  # every account of the source at the time of the backup
    source_verification: ledger.Verification
    source_security_log: tuple[int, bytes]


@pytest.fixture(scope="module")
async def dump(database: Database, database_url: str, settings: Settings, tmp_path_factory) -> Backup:
    """One backup of the test database holding committed ledger data, shared by the module's tests."""
    expected = await _committed_ledger(database)
    accounts, verification = await _ledger_state(database_url, settings)
    security_log, _ = await _security_log(database_url, settings)
    path = await asyncio.to_thread(backups.backup, database_url, tmp_path_factory.mktemp("backups"))
    # Versions only grow, so an unchanged state on both sides is the state the dump's snapshot saw.
    assert (await _ledger_state(database_url, settings))[0] == accounts, "the ledger changed during the backup"
    assert (await _security_log(database_url, settings))[0] == security_log, "events were logged during the backup"
    return Backup(path, expected, accounts, verification, security_log)


def _balances(accounts: dict[int, tuple], of: dict[int, int]) -> dict[int, int]:
    return {account_id: accounts[account_id][0] for account_id in of}


async def test_a_restored_backup_has_the_same_balances_and_hash_chain_heads(dump, fresh_database, settings):
    """REQ-56: what is restored is the ledger that was backed up: every account's balance, version and chain head."""
    await asyncio.to_thread(backups.restore, fresh_database, dump.path)

    accounts, verification = await _ledger_state(fresh_database, settings)
    assert _balances(accounts, dump.expected_balances) == dump.expected_balances
    assert all(accounts[account_id][3] is not None for account_id in dump.expected_balances)
    assert accounts == dump.source_accounts
    assert dump.source_verification.ok
    assert verification.ok, verification.first_discrepancy
    assert (verification.entries, verification.transfers, verification.accounts) == (
        dump.source_verification.entries,
        dump.source_verification.transfers,
        dump.source_verification.accounts,
    )
    security_log, chain_ok = await _security_log(fresh_database, settings)
    assert security_log == dump.source_security_log and chain_ok


async def test_a_backup_is_written_with_a_manifest_readable_by_its_owner_only(dump):
    path = dump.path
    manifest = backups.verify_dump(path)
    assert manifest.sha256 == backups.file_sha256(path)
    assert manifest.size_bytes == path.stat().st_size
    assert manifest.server_version_num // 10_000 == 16
    for written in (path, backups.manifest_path(path)):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".partial")] == []


async def test_a_backup_never_overwrites_an_existing_file(dump, database_url):
    path = dump.path
    before = path.read_bytes()
    with pytest.raises(backups.DestinationExists):
        await asyncio.to_thread(backups.backup, database_url, path)
    assert path.read_bytes() == before


async def test_a_dump_with_a_flipped_byte_is_refused_before_anything_is_restored(
    dump, fresh_database, settings, tmp_path
):
    path = dump.path
    corrupted = tmp_path / path.name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    corrupted.write_bytes(bytes(data))
    backups.manifest_path(corrupted).write_bytes(backups.manifest_path(path).read_bytes())

    with pytest.raises(backups.BackupCorrupted, match="SHA-256"):
        await asyncio.to_thread(backups.restore, fresh_database, corrupted)
    assert await _tables(fresh_database, settings) == set()


async def test_a_dump_without_its_manifest_is_refused(dump, fresh_database, settings, tmp_path):
    path = dump.path
    unfinished = tmp_path / path.name
    unfinished.write_bytes(path.read_bytes())

    with pytest.raises(backups.BackupCorrupted, match="missing"):
        await asyncio.to_thread(backups.restore, fresh_database, unfinished)
    assert await _tables(fresh_database, settings) == set()


async def test_restoring_over_a_platform_database_without_replace_is_refused(dump, database_url, settings):
    path = dump.path
    before, _ = await _ledger_state(database_url, settings)

    with pytest.raises(backups.TargetNotEmpty, match=r"already holds \d+ tables \(public.alembic_version"):
        await asyncio.to_thread(backups.restore, database_url, path)
    assert (await _ledger_state(database_url, settings))[0] == before


async def test_replace_restores_over_the_platform_tables_once_nobody_is_connected(dump, fresh_database, settings):
    path, expected = dump.path, dump.expected_balances
    await asyncio.to_thread(backups.restore, fresh_database, path)
    target = Database.from_url(fresh_database, settings)
    async with target.unit_of_work() as session:
        # A change made after the backup: replacing must take the database back to the backup.
        payer, payee = [account_id for account_id, balance in expected.items() if balance > 0][:2]
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), payer, payee, 1))

    with pytest.raises(backups.TargetInUse):
        await asyncio.to_thread(backups.restore, fresh_database, path, replace=True)
    await target.dispose()
    await asyncio.to_thread(backups.restore, fresh_database, path, replace=True)

    accounts, verification = await _ledger_state(fresh_database, settings)
    assert _balances(accounts, expected) == expected
    assert verification.ok, verification.first_discrepancy


async def test_replace_is_refused_when_the_database_holds_tables_the_backup_does_not(dump, fresh_database, settings):
    path = dump.path
    await asyncio.to_thread(backups.restore, fresh_database, path)
    target = Database.from_url(fresh_database, settings)
    async with target.unit_of_work() as session:
        await session.execute(text("CREATE TABLE added_after_the_backup (id int)"))
    await target.dispose()

    with pytest.raises(backups.TargetHasForeignTables, match="added_after_the_backup"):
        await asyncio.to_thread(backups.restore, fresh_database, path, replace=True)


async def test_a_restore_failing_midway_leaves_nothing_behind(dump, fresh_database, settings):
    """The dump's last section (indexes) fails on a name already taken: the tables and rows restored
    before it must be rolled back with it."""
    path = dump.path
    pg_restore = backups.bundled_tools_dir() / "pg_restore"
    listing = (await asyncio.to_thread(_run, str(pg_restore), "--list", str(path))).stdout
    index = re.search(r"^\d+; \d+ \d+ INDEX public (\S+) ", listing, re.MULTILINE).group(1)
    target = Database.from_url(fresh_database, settings)
    async with target.unit_of_work() as session:
        await session.execute(text(f'CREATE SEQUENCE "{index}"'))
    await target.dispose()

    with pytest.raises(backups.ToolFailed, match="already exists"):
        await asyncio.to_thread(backups.restore, fresh_database, path)
    assert await _tables(fresh_database, settings) == set()


def test_the_tools_on_path_are_used_only_when_they_match_the_server(tmp_path, monkeypatch):
    def on_path(version: str) -> Path:
        directory = tmp_path / version
        directory.mkdir()
        tool = directory / "pg_dump"
        tool.write_text(f"#!/bin/sh\necho 'pg_dump (PostgreSQL) {version}'\n")
        tool.chmod(0o755)
        monkeypatch.setenv("PATH", str(directory))
        return tool

    matching = on_path("16.9")
    assert backups.find_tool("pg_dump", 16) == matching
    on_path("15.4")
    assert backups.find_tool("pg_dump", 16) == backups.bundled_tools_dir() / "pg_dump"
    with pytest.raises(backups.NoMatchingTools, match="PostgreSQL 17"):
        backups.find_tool("pg_dump", 17)


async def test_the_password_reaches_the_tools_only_through_the_environment(database_url, tmp_path, monkeypatch):
    password = "s3cret-Pa55word"
    url = make_url(database_url).set(username="ghost", password=password).render_as_string(hide_password=False)
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(command, *args, **kwargs):
        calls.append((list(command), kwargs.get("env") or {}))
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    with pytest.raises(backups.ToolFailed) as refused:
        await asyncio.to_thread(backups.backup, url, tmp_path)
    assert "ghost" in str(refused.value)
    assert password not in str(refused.value)
    connected = [(command, env) for command, env in calls if "PGUSER" in env]
    assert connected and all(env["PGPASSWORD"] == password for _, env in connected)
    assert not any(password in argument for command, _ in calls for argument in command)


async def test_the_url_alone_says_where_to_connect(database_url, tmp_path, monkeypatch):
    """PG* variables left in the operator's shell do not redirect the dump; the asyncpg spelling works too."""
    monkeypatch.setenv("PGPORT", "1")  # the URL names no port: an inherited one would miss the server
    monkeypatch.setenv("PGDATABASE", "somewhere_else")
    asyncpg_url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    path = await asyncio.to_thread(backups.backup, asyncpg_url, tmp_path / "nested" / "explicit.dump")
    assert path == (tmp_path / "nested" / "explicit.dump").resolve()
    assert backups.verify_dump(path).database == make_url(database_url).database
    with pytest.raises(backups.UnsupportedDatabaseUrl, match="sslfoo"):
        backups.backup(database_url + "&sslfoo=1", tmp_path)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)


async def test_the_cli_backs_up_and_restores(database, database_url, fresh_database, settings, tmp_path):
    expected = await _committed_ledger(database)
    output = tmp_path / "cli.dump"

    backed_up = await asyncio.to_thread(_cli, "backup", "--output", str(output), database_url=database_url)
    assert backed_up.returncode == 0, backed_up.stderr
    assert backed_up.stdout.split() == [str(output.resolve()), "sha256", backups.file_sha256(output)]

    refused = await asyncio.to_thread(_cli, "restore", str(output), database_url=database_url)
    assert refused.returncode == 1
    assert "--replace" in refused.stderr

    restored = await asyncio.to_thread(_cli, "restore", str(output), database_url=fresh_database)
    assert restored.returncode == 0, restored.stderr
    accounts, verification = await _ledger_state(fresh_database, settings)
    assert _balances(accounts, expected) == expected
    assert verification.ok, verification.first_discrepancy
