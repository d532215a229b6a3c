"""The `dfa` command: serve, migrate, verify the ledger, expire holds."""

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
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
