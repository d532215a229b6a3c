"""What a backup must carry over, read from any database by URL: every ledger account's balance, version and
hash-chain head with the ledger's own verification, and the security-event log's head with its chain check.

A restore is proven by reading these on the source at backup time and on the restored database after."""

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from dfa.ledger import service as ledger
from dfa.platform import backup as backups
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

# Per account: (balance, version, last_hash, hash of its last journal entry).
AccountState = tuple[int, int, bytes | None, bytes | None]


async def ledger_state(url: str, settings: Settings) -> tuple[dict[int, AccountState], ledger.Verification]:
    """Every account's balance, version and the hash of its last entry; and the ledger's verification."""
    database = Database.from_url(url, settings)
    try:
        async with database.read() as session:
            rows = await session.execute(
                text(
                    "SELECT a.id, a.balance, a.version, a.last_hash,"
                    " (SELECT e.hash FROM ledger_entries e WHERE e.account_id = a.id ORDER BY e.seq DESC LIMIT 1)"
                    " FROM ledger_accounts a"
                )
            )
            accounts = {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}
            verification = await ledger.verify(session)
    finally:
        await database.dispose()
    return accounts, verification


async def security_log(url: str, settings: Settings) -> tuple[tuple[int, bytes], bool]:
    """The security-event log's head (last event number and hash) and whether its chain verifies."""
    database = Database.from_url(url, settings)
    try:
        async with database.read() as session:
            head = (await session.execute(text("SELECT seq, hash FROM security_event_head"))).one()
            return (head[0], head[1]), (await audit.verify(session)).ok
    finally:
        await database.dispose()


def dfa_cli(*args: str, database_url: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """The `dfa` command run as an operator runs it, against the database at `database_url`."""
    return subprocess.run(
        [sys.executable, "-m", "dfa.cli", *args],
        check=False,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def dump_as_sql(dump: Path) -> bytes:
    """The plain SQL a dump restores as (`pg_restore -f -`): its custom format is compressed, this is not."""
    pg_restore = backups.bundled_tools_dir() / "pg_restore"
    return subprocess.run(
        [str(pg_restore), "--file=-", str(dump)], check=True, capture_output=True, timeout=backups.PROBE_TIMEOUT_S * 10
    ).stdout
