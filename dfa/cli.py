"""The `dfa` command: serve, migrate, verify the ledger and the security-event log, expire holds, back up and restore."""

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from dfa.platform.database import Database, resolve_database_url, run_migrations, run_migrations_async
from dfa.platform.logs import configure_logging
from dfa.platform.settings import get_settings


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    configure_logging(settings.log_level)
    print(f"DFA platform starting on http://{host}:{port}", flush=True)
    print(f"  API documentation: http://{host}:{port}/docs", flush=True)
    print(f"  Health:            http://{host}:{port}/healthz", flush=True)
    uvicorn.run("dfa.main:create_app", factory=True, host=host, port=port, log_config=None)
    return 0


def migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    run_migrations(resolve_database_url(settings))
    print("database schema is up to date")
    return 0


async def _with_database(work):
    settings = get_settings()
    url = resolve_database_url(settings)
    await run_migrations_async(url)
    database = Database.from_url(url, settings)
    try:
        return await work(database, settings)
    finally:
        await database.dispose()


def verify(args: argparse.Namespace) -> int:
    from dfa.ledger import service

    async def work(database, settings):
        async with database.read() as session:
            return await service.verify(session)

    result = asyncio.run(_with_database(work))
    print(json.dumps(asdict(result), indent=2, default=str))
    return 0 if result.ok else 1


def expire_holds(args: argparse.Namespace) -> int:
    from dfa.ledger import jobs

    released = asyncio.run(_with_database(jobs.expire_holds_once))
    print(f"released {released} expired holds")
    return 0


def backup_database(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dfa.platform.backup import BackupError, backup, read_manifest

    settings = get_settings()
    destination = Path(args.output) if args.output else None
    if destination is None:
        destination = settings.backup_dir or settings.data_dir / "backups"
        destination.mkdir(parents=True, exist_ok=True)
    try:
        dump = backup(resolve_database_url(settings), destination)
    except BackupError as error:
        print(f"backup failed: {error}", file=sys.stderr)
        return 1
    print(dump)
    print(f"sha256 {read_manifest(dump).sha256}")
    return 0


def restore_database(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dfa.platform.backup import BackupError, restore

    settings = get_settings()
    try:
        # No migrations first: they would create the very tables the restore must find absent.
        restore(resolve_database_url(settings), Path(args.path), replace=args.replace)
    except BackupError as error:
        print(f"restore refused or failed, nothing was restored: {error}", file=sys.stderr)
        return 1
    print(f"restored {args.path}; run `dfa verify-ledger` next")
    return 0


def audit_verify(args: argparse.Namespace) -> int:
    from dfa.platform.audit import service

    async def work(database, settings):
        async with database.read() as session:
            return await service.verify(session)

    result = asyncio.run(_with_database(work))
    print(json.dumps(asdict(result), indent=2))
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dfa", description="DFA platform operator core")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the platform (migrates first)")
    serve_parser.add_argument("--host", help="listen address (default: HOST setting, 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="listen port (default: PORT setting, 8000)")
    serve_parser.set_defaults(run=serve)
    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(run=migrate)
    commands.add_parser("verify-ledger", help="recompute hash chains and balances").set_defaults(run=verify)
    commands.add_parser("expire-holds", help="release holds past their expiry").set_defaults(run=expire_holds)
    audit_parser = commands.add_parser("audit", help="the security-event log").add_subparsers(dest="audit", required=True)
    audit_parser.add_parser("verify", help="recompute the log's hash chain and report tampering").set_defaults(
        run=audit_verify
    )
    backup_parser = commands.add_parser("backup", help="dump the database to a file with its SHA-256 manifest")
    backup_parser.add_argument(
        "--output", help="dump file, or an existing directory (default: BACKUP_DIR or DATA_DIR/backups)"
    )
    backup_parser.set_defaults(run=backup_database)
    restore_parser = commands.add_parser("restore", help="restore a dump in one transaction, all or nothing")
    restore_parser.add_argument("path", help="the dump written by `dfa backup`")
    restore_parser.add_argument(
        "--replace", action="store_true", help="replace the platform's tables when the database already has them"
    )
    restore_parser.set_defaults(run=restore_database)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
