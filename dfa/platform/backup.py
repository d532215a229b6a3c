"""Backup and restore of the platform's PostgreSQL (REQ-56): checked dumps, restored whole or not at all.

A backup is two files: the dump (`<name>.dump`) and its manifest (`<name>.dump.json`: SHA-256, size,
source database and versions). The manifest is written last, so a dump without one is unfinished
and is never restored.

The client tools must match the server's major version (`pg_dump` refuses newer servers and an older
`pg_restore` cannot read newer dumps): the tools on PATH are used when they match, else those the
`pgserver` wheel ships, else the operation is refused. Connection parameters reach the tools through
PG* environment variables built from the database URL alone, so a password is never on a command line
and a stray PGDATABASE in the operator's shell can never point a dump or a restore elsewhere.
"""

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

MANIFEST_FORMAT = "dfa-backup/1"
MANIFEST_SUFFIX = ".json"
DUMP_SUFFIX = ".dump"

# Limits: a dump or restore longer than this is stopped (a killed pg_restore rolls its transaction
# back, so nothing is left half-done); probes answer in well under a second on a healthy server.
DUMP_TIMEOUT_S = 6 * 3600
RESTORE_TIMEOUT_S = 6 * 3600
PROBE_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 10
# pg_dump waits this long for its shared table locks (a running migration holds exclusive ones)
# instead of queueing behind it indefinitely.
LOCK_WAIT_TIMEOUT_MS = 60_000
STDERR_MAX_CHARS = 4_000
HASH_CHUNK_BYTES = 1 << 20

# libpq connection parameters a URL's query may carry, and the environment variables that carry them
# to the tools. `ssl` is asyncpg's spelling of `sslmode`.
_QUERY_ENVIRONMENT = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "ssl": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "passfile": "PGPASSFILE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "application_name": "PGAPPNAME",
}

_TOOL_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")
_LISTED_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")


class BackupError(Exception):
    """A backup or restore was refused or failed: a failed backup leaves no dump, a failed restore
    leaves the database as it was."""


class UnsupportedDatabaseUrl(BackupError):
    """The database URL is not PostgreSQL or carries a parameter the tools cannot be given."""


class NoMatchingTools(BackupError):
    """Neither the tools on PATH nor the bundled ones match the server's major version."""


class ToolFailed(BackupError):
    """pg_dump, pg_restore or psql exited with an error; `stderr` holds what it said."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(f"{message}\n{stderr}".rstrip())
        self.stderr = stderr


class DestinationExists(BackupError):
    """A file already exists where the backup would go; backups are never overwritten."""


class BackupCorrupted(BackupError):
    """The dump is missing, unfinished, or differs from its manifest."""


class TargetNotEmpty(BackupError):
    """The target database already holds tables and replacing them was not asked for."""


class TargetHasForeignTables(BackupError):
    """The target database holds tables the backup does not; a replace would leave them behind."""


class TargetInUse(BackupError):
    """Other sessions are connected to the target database; a replace would wait for or race them."""


@dataclass(frozen=True)
class Manifest:
    """What a backup holds and how to tell that its dump is intact."""

    format: str
    sha256: str
    size_bytes: int
    database: str
    server_version_num: int
    pg_dump_version: str
    created_at: str


@dataclass(frozen=True)
class _Connection:
    database: str
    environment: dict[str, str]
    secrets: tuple[str, ...]
    described: str  # where it points, for messages: never the password


# --- connection ---------------------------------------------------------------------------------------


def _connection(database_url: str) -> _Connection:
    """The tools' environment for this URL (`postgresql://` or `postgresql+asyncpg://`, host or `?host=` socket)."""
    try:
        url = make_url(database_url)
    except ArgumentError as error:
        raise UnsupportedDatabaseUrl("the database URL cannot be parsed") from error
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() != "postgresql":
        raise UnsupportedDatabaseUrl(f"{shown} is not a PostgreSQL URL")
    unknown = sorted(set(url.query) - set(_QUERY_ENVIRONMENT))
    if unknown:
        raise UnsupportedDatabaseUrl(
            f"{shown}: query parameters {', '.join(unknown)} cannot be passed to pg_dump/pg_restore; "
            f"supported: {', '.join(sorted(_QUERY_ENVIRONMENT))}"
        )
    settings: dict[str, str] = {}
    for name, value in url.query.items():
        # libpq takes a comma-separated list where a URL repeats `host` (or `port`) for failover.
        settings[_QUERY_ENVIRONMENT[name]] = ",".join(value) if isinstance(value, tuple) else value
    if url.host:
        settings.setdefault("PGHOST", url.host)
    if url.port:
        settings.setdefault("PGPORT", str(url.port))
    if url.username:
        settings["PGUSER"] = url.username
    if url.password:
        settings["PGPASSWORD"] = url.password
    if url.database:
        settings["PGDATABASE"] = url.database
    if "PGDATABASE" not in settings:
        raise UnsupportedDatabaseUrl(f"{shown} names no database")
    settings.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_S))
    settings.setdefault("PGAPPNAME", "dfa-backup")
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    secrets = tuple(s for s in (settings.get("PGPASSWORD"),) if s)
    host = settings.get("PGHOST", "localhost") + (f":{settings['PGPORT']}" if "PGPORT" in settings else "")
    described = f"database {settings['PGDATABASE']!r} on {host}"
    return _Connection(settings["PGDATABASE"], inherited | settings, secrets, described)


def _conninfo_dbname(database: str) -> str:
    """`--dbname` as a conninfo string: a bare name containing `=` would be parsed as one."""
    quoted = database.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{quoted}'"


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    if len(text) > STDERR_MAX_CHARS:
        text = text[:STDERR_MAX_CHARS] + "\n[...]"
    return text.strip()


def _run(
    command: Sequence[str], connection: _Connection, *, what: str, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run a client tool with the connection's environment; raises ToolFailed on a non-zero exit or timeout."""
    try:
        completed = subprocess.run(
            list(command),
            check=False,
            env=connection.environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr or ""
        raise ToolFailed(
            f"{what} on {connection.described} did not finish within {timeout_s:g} s and was stopped",
            stderr=_scrub(stderr, connection.secrets),
        ) from None
    except OSError as error:
        raise ToolFailed(f"{what}: cannot run {command[0]}: {error.strerror}") from None
    if completed.returncode != 0:
        raise ToolFailed(
            f"{what} on {connection.described} failed (exit code {completed.returncode})",
            stderr=_scrub(completed.stderr, connection.secrets),
        )
    return completed


def _query(connection: _Connection, sql: str) -> list[str]:
    """The rows of a one-column query, as text (read through the bundled psql, which speaks to any server)."""
    psql = bundled_tools_dir() / "psql"
    command = [str(psql), "--no-psqlrc", "--no-password", "--tuples-only", "--no-align", "--quiet", "-c", sql]
    completed = _run(command, connection, what="reading the server", timeout_s=PROBE_TIMEOUT_S)
    return [line for line in completed.stdout.splitlines() if line]


def _server_version_num(connection: _Connection) -> int:
    return int(_query(connection, "SHOW server_version_num")[0])


# --- tools ----------------------------------------------------------------------------------------------


def bundled_tools_dir() -> Path:
    """The PostgreSQL client tools shipped in the `pgserver` wheel, wherever it is installed."""
    # Located, not imported: importing pgserver sets up its server machinery, which a backup of an
    # external server does not need.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise NoMatchingTools("the pgserver package, which ships the bundled PostgreSQL tools, is not installed")
    return Path(spec.origin).resolve().parent / "pginstall" / "bin"


def _tool_version(tool: Path) -> str | None:
    """What `tool --version` says, or None when it does not run."""
    try:
        completed = subprocess.run(
            [str(tool), "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def find_tool(name: str, server_major: int) -> Path:
    """The `name` tool (pg_dump, pg_restore) of the server's major version: PATH's if it matches, else the bundled one.

    Raises NoMatchingTools.
    """
    on_path = shutil.which(name)
    candidates = [Path(on_path)] if on_path else []
    candidates.append(bundled_tools_dir() / name)
    seen: list[str] = []
    for tool in candidates:
        version = _tool_version(tool)
        found = _TOOL_VERSION.search(version or "")
        if found and int(found.group(1)) == server_major:
            return tool
        seen.append(f"{tool} ({version or 'does not run'})")
    raise NoMatchingTools(
        f"the server runs PostgreSQL {server_major} and no {name} of that version is available: "
        f"{'; '.join(seen)}. Install the PostgreSQL {server_major} client tools on PATH."
    )


# --- files ----------------------------------------------------------------------------------------------


def manifest_path(dump: Path) -> Path:
    return dump.with_name(dump.name + MANIFEST_SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _fsync_directory(directory: Path) -> None:
    """Make renames in `directory` durable (a rename lives in the directory, not in the file)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_beside(path: Path) -> Path:
    # Same directory as the final file, so the rename that publishes it is atomic. mkstemp creates
    # it readable by its owner only, which a dump of personal data and credentials must be.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    return Path(name)


def _write_manifest(dump: Path, manifest: Manifest) -> None:
    target = manifest_path(dump)
    temporary = _temporary_beside(target)
    try:
        temporary.write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
        _fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def read_manifest(dump: Path) -> Manifest:
    """The manifest written beside this dump. Raises BackupCorrupted when it is missing or unreadable."""
    path = manifest_path(dump)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(**data)
    except FileNotFoundError:
        raise BackupCorrupted(f"{path} is missing: {dump} is unfinished or not a platform backup") from None
    except (OSError, ValueError, TypeError) as error:
        raise BackupCorrupted(f"{path} is not a readable backup manifest: {error}") from None
    if manifest.format != MANIFEST_FORMAT:
        raise BackupCorrupted(f"{path} has format {manifest.format!r}; expected {MANIFEST_FORMAT!r}")
    return manifest


def verify_dump(dump: Path) -> Manifest:
    """The dump's manifest, once the dump is proven to be byte for byte what was written.

    Raises BackupCorrupted.
    """
    manifest = read_manifest(dump)
    try:
        size = dump.stat().st_size
    except FileNotFoundError:
        raise BackupCorrupted(f"{dump} does not exist") from None
    if size != manifest.size_bytes:
        raise BackupCorrupted(f"{dump} is {size} bytes; its manifest says {manifest.size_bytes}")
    actual = file_sha256(dump)
    if actual != manifest.sha256:
        raise BackupCorrupted(f"{dump} has SHA-256 {actual}; its manifest says {manifest.sha256}")
    return manifest


def _destination_file(destination: Path, database: str) -> Path:
    if destination.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return destination / f"dfa-{database}-{stamp}{DUMP_SUFFIX}"
    return destination


# --- backup and restore ---------------------------------------------------------------------------------


def backup(database_url: str, destination: Path, *, timeout_s: float = DUMP_TIMEOUT_S) -> Path:
    """Dump the database to `destination` and return the dump's path; the dump is complete or absent.

    `destination` is the dump file, or an existing directory to put a timestamped dump in; an existing
    file is never overwritten. The dump is one consistent snapshot (pg_dump reads in a single
    repeatable-read transaction), written to a temporary file, fsynced and renamed into place, then
    its manifest (SHA-256, size, versions) is written the same way.

    Raises UnsupportedDatabaseUrl, NoMatchingTools, DestinationExists, ToolFailed.
    """
    connection = _connection(database_url)
    server_version = _server_version_num(connection)
    pg_dump = find_tool("pg_dump", server_version // 10_000)
    dump = _destination_file(Path(destination), connection.database).resolve()
    if dump.exists() or manifest_path(dump).exists():
        raise DestinationExists(f"{dump} exists; a backup never overwrites another")
    dump.parent.mkdir(parents=True, exist_ok=True)

    temporary = _temporary_beside(dump)
    try:
        _run(
            [
                str(pg_dump),
                "--format=custom",
                "--no-password",
                f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT_MS}",
                f"--file={temporary}",
                _conninfo_dbname(connection.database),
            ],
            connection,
            what="pg_dump",
            timeout_s=timeout_s,
        )
        _fsync_file(temporary)
        manifest = Manifest(
            format=MANIFEST_FORMAT,
            sha256=file_sha256(temporary),
            size_bytes=temporary.stat().st_size,
            database=connection.database,
            server_version_num=server_version,
            pg_dump_version=_tool_version(pg_dump) or str(pg_dump),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        os.replace(temporary, dump)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(dump.parent)
    _write_manifest(dump, manifest)
    return dump


def _dump_tables(pg_restore: Path, dump: Path, connection: _Connection) -> set[str]:
    """The tables in the dump's table of contents; reading it proves pg_restore can read the dump."""
    command = [str(pg_restore), "--list", str(dump)]
    completed = _run(command, connection, what="reading the dump's contents", timeout_s=PROBE_TIMEOUT_S)
    return {
        f"{found.group(1)}.{found.group(2)}"
        for line in completed.stdout.splitlines()
        if (found := _LISTED_TABLE.match(line))
    }


def _target_tables(connection: _Connection) -> set[str]:
    return set(
        _query(
            connection,
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' "
            "AND n.nspname NOT LIKE 'pg\\_%'",
        )
    )


def _other_sessions(connection: _Connection) -> int:
    rows = _query(
        connection,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return int(rows[0])


def _listed(names: set[str], limit: int = 10) -> str:
    shown = sorted(names)
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def restore(database_url: str, source: Path, *, replace: bool = False, timeout_s: float = RESTORE_TIMEOUT_S) -> None:
    """Restore the dump at `source` into the database, in one transaction: all of it or nothing.

    Before anything is written the dump is checked against its manifest (size, SHA-256) and its
    table of contents is read. A database that already holds tables is refused unless `replace`;
    with `replace`, the backup's objects are dropped and recreated in the same transaction, and the
    restore is refused while other sessions are connected or when the database holds tables the
    backup does not (they would survive beside the restored ones). Objects are owned by the
    restoring user (`--no-owner`), since the source's roles need not exist on the target server.

    Raises BackupCorrupted, UnsupportedDatabaseUrl, NoMatchingTools, TargetNotEmpty,
    TargetHasForeignTables, TargetInUse, ToolFailed.
    """
    dump = Path(source)
    verify_dump(dump)
    connection = _connection(database_url)
    pg_restore = find_tool("pg_restore", _server_version_num(connection) // 10_000)
    in_dump = _dump_tables(pg_restore, dump, connection)
    existing = _target_tables(connection)
    if existing and not replace:
        raise TargetNotEmpty(
            f"{connection.described} already holds {len(existing)} tables ({_listed(existing)}); "
            "restore into an empty database, or ask to replace them (dfa restore --replace)"
        )
    if replace:
        foreign = existing - in_dump
        if foreign:
            raise TargetHasForeignTables(
                f"{connection.described} holds tables the backup does not ({_listed(foreign)}); "
                "drop and recreate the database, then restore into it"
            )
        others = _other_sessions(connection)
        if others:
            raise TargetInUse(
                f"{others} other sessions are connected to {connection.described}; stop the platform first"
            )

    command = [
        str(pg_restore),
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-password",
        f"--dbname={_conninfo_dbname(connection.database)}",
    ]
    if replace:
        command += ["--clean", "--if-exists"]
    _run([*command, str(dump)], connection, what="pg_restore", timeout_s=timeout_s)

