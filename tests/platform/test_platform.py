import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from dfa import demo
from dfa.issuance.custodian import demo_simulator as demo_custodian
from dfa.issuance.service import emissions
from dfa.ledger import service as ledger
from dfa.platform.adapters.antifraud import AntiFraudSimulator, WatchList
from dfa.platform.database import Base, Database, run_migrations, set_statement_timeout
from dfa.platform.identifiers import is_valid_identification_number
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.service import parties
from dfa.platform.logs import JsonFormatter, request_id_var
from dfa.settlement.bank import bank_from_settings
from dfa.settlement.service import cash
from tests.factories import new_asset_code, new_identifier


@pytest.mark.parametrize("value", ["900101300007", "850202400000", "190840000005", "240340000019"])
def test_valid_iin_and_bin_check_digits_are_accepted(value):
    assert is_valid_identification_number(value)


@pytest.mark.parametrize(
    "value", ["900101300008", "90010130000", "9001013000070", "90010130000a", "٩٠٠١٠١٣٠٠٠٠٧", " 90010130000", ""]
)
def test_wrong_check_digits_lengths_and_non_ascii_digits_are_refused(value):
    assert not is_valid_identification_number(value)


def _party(api, **overrides):
    body = {"kind": "person", "name": "Aigerim", "identifier": new_identifier(), "resident": True, **overrides}
    return api.post("/v1/parties", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


def test_a_party_with_a_wrong_check_digit_is_a_clear_422(api):
    response = _party(api, identifier="900101300008")
    assert (response.status_code, response.json()["type"]) == (422, "/problems/invalid-identification-number")


def test_a_second_party_with_the_same_identifier_is_a_409(api):
    identifier = new_identifier()
    assert _party(api, identifier=identifier).status_code == 201
    response = _party(api, identifier=identifier)
    assert (response.status_code, response.json()["type"]) == (409, "/problems/party-already-exists")


def test_concurrent_requests_with_one_idempotency_key_execute_once(api, server_url):
    """The second request waits for the first one's transaction, then replays its response."""
    key, identifier = str(uuid.uuid4()), new_identifier()
    body = {"kind": "person", "name": "Concurrent", "identifier": identifier, "resident": True}
    responses: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=server_url, timeout=30, headers=api.headers) as client:
            responses.append(client.post("/v1/parties", json=body, headers={"Idempotency-Key": key}))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 3


def test_an_invalid_idempotency_key_is_refused(api):
    response = api.post("/v1/parties", json={}, headers={"Idempotency-Key": "has spaces"})
    assert (response.status_code, response.json()["type"]) == (422, "/problems/idempotency-key-invalid")


async def test_migrations_create_exactly_the_tables_the_models_describe(database):
    async with database.engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    assert differences == []


def _in_new_process(data_dir: str, sql: str) -> str:
    """Start the embedded PostgreSQL in a fresh process, run `sql`, exit (which stops the server)."""
    program = (
        "import sys; from pathlib import Path; import pgserver; "
        "from dfa.platform.database import start_embedded_postgres; "
        "start_embedded_postgres(Path(sys.argv[1])); "
        "print(pgserver.get_server(Path(sys.argv[1]) / 'pg').psql(sys.argv[2]))"
    )
    done = subprocess.run([sys.executable, "-c", program, data_dir, sql], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_embedded_postgres_keeps_its_data_across_restarts():
    with tempfile.TemporaryDirectory(prefix="dfa-restart-") as data_dir:
        _in_new_process(data_dir, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here');")
        assert not (Path(data_dir) / "pg" / "postmaster.pid").exists(), "the server outlived its last process"

        assert "still here" in _in_new_process(data_dir, "SELECT v FROM kept;")


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "dfa.cli", *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_migrates_and_verifies_the_ledger(database_url):
    migrated = _cli("migrate", database_url=database_url)
    verified = _cli("verify-ledger", database_url=database_url)

    assert migrated.returncode == 0, migrated.stderr
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


async def test_demo_data_seeds_once_and_its_ledger_verifies(session, settings, tmp_path):
    demo_settings = settings.model_copy(
        update={"operator_nbk_registration_number": new_asset_code("NBK"), "data_dir": tmp_path}  # a bank of its own
    )
    # Seeding checks for KZT first; in this shared test database KZT may exist, so rename it away
    # inside the rolled-back transaction.
    await session.execute(text("UPDATE ledger_assets SET code = code || '-X' WHERE code = 'KZT'"))
    keys = Keys.load(settings)

    bank = bank_from_settings(demo_settings)
    adapters = {"custodian": demo_custodian(), "centre": AntiFraudSimulator(WatchList(())), "bank": bank}

    assert await demo.seed(session, settings=demo_settings, keys=keys, **adapters) is True
    assert await demo.seed(session, settings=demo_settings, keys=keys, **adapters) is False
    # The investors paid in at the bank, and the day's statement credited them: the bank holds what they own.
    paid_in = sum(amount for _, amount in demo.DEPOSITS)
    assert bank.balance_tiyn(demo_settings.operator_client_money_iban) == paid_in
    for _, _, iin in demo.INVESTORS:
        party = await parties.party_by_identifier(session, iin)
        [account] = await cash.list_bank_accounts(session, party_id=party.id, status=None, after=None, limit=10)
        assert account.status == "verified"  # the deposit came from it and was credited to its owner
    [emission] = await emissions.list_emissions(session, issuer_party_id=(await parties.party_by_identifier(
        session, demo.ISSUER[2])).id, after=None, limit=10)
    assert emission.registration_number.startswith(f"{demo_settings.operator_nbk_registration_number}-")
    registry = await ledger.holders_registry(session, asset_code=emission.registration_number)
    # 10 000 registered, 6 000 offered, 4 000 subscribed: the 2 000 offered and not placed are cancelled.
    assert (emission.status, emission.units, emission.cancelled_units) == ("placed", 10_000, 2_000)
    assert sum(p.available_units + p.held_units for p in registry.positions) == 8_000
    assert (await ledger.verify(session)).ok


def test_logs_are_json_lines_carrying_the_request_id():
    token = request_id_var.set("abc123")
    try:
        record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",), "levelname": "INFO", "name": "dfa", "path": "/x"})
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert (line["msg"], line["request_id"], line["path"], line["level"]) == ("hello world", "abc123", "/x", "INFO")


async def test_idempotency_records_past_retention_are_purged(session, settings):
    from datetime import UTC, datetime, timedelta

    from dfa.platform import service

    old = datetime.now(UTC) - timedelta(hours=settings.idempotency_retention_hours + 1)
    await session.execute(
        text("INSERT INTO idempotency_records (principal, key, request_hash, created_at) VALUES ('p', :k, '\\x00', :t)"),
        {"k": "old-key", "t": old},
    )
    await session.execute(
        text("INSERT INTO idempotency_records (principal, key, request_hash) VALUES ('p', 'fresh-key', '\\x00')")
    )

    assert await service.purge_idempotency_records(session, settings=settings) >= 1
    keys = (await session.execute(text("SELECT key FROM idempotency_records WHERE principal = 'p'"))).scalars().all()
    assert keys == ["fresh-key"]


@pytest.mark.parametrize("slug", ["validation-error", "insufficient-funds", "idempotency-key-reused"])
def test_every_problem_type_is_documented(api, slug):
    assert api.get(f"/problems/{slug}").json()["type"] == f"/problems/{slug}"


def test_demo_logins_are_printed_in_development_and_refused_in_production(settings, capsys):
    demo.print_logins(settings)
    printed = capsys.readouterr().out
    assert all(login in printed for login in ("aigerim", "steppe-grain", "compliance", "admin", "auditor"))
    assert "otpauth://totp/" in printed
    with pytest.raises(RuntimeError, match="production"):
        demo.print_logins(settings.model_copy(update={"environment": "production"}))


async def test_upgrading_a_ledger_era_database_keeps_its_parties_operating(fresh_database, settings):
    """Parties registered before identification was tracked keep working: a person's birth date and
    sex come from the IIN, and everyone is recorded as identified in person (REQ-14, REQ-16)."""
    await asyncio.to_thread(run_migrations, fresh_database, "0001")
    old = Database.from_url(fresh_database, settings)
    try:
        async with old.unit_of_work() as session:
            await session.execute(text(
                "INSERT INTO parties (id, kind, name, identifier, resident) VALUES "
                "(gen_random_uuid(), 'person', 'Old Holder', '900101300007', true), "
                "(gen_random_uuid(), 'legal_entity', 'Old Issuer', '190840000005', true)"
            ))
        await asyncio.to_thread(run_migrations, fresh_database)
        async with old.read() as session:
            rows = (await session.execute(text(
                "SELECT p.identifier, p.birth_date, p.sex, p.kyc_status, k.method FROM parties p "
                "JOIN kyc_events k ON k.party_id = p.id ORDER BY p.identifier"
            ))).all()
    finally:
        await old.dispose()
    assert [tuple(r) for r in rows] == [
        ("190840000005", None, None, "identified", "in_person"),
        ("900101300007", date(1990, 1, 1), "male", "identified", "in_person"),
    ]


def test_the_openapi_description_names_how_to_sign_in(anonymous):
    schemes = anonymous.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["accessToken"]["flows"]["clientCredentials"]["tokenUrl"] == "/v1/oauth/token"
    assert (schemes["apiKey"]["name"], schemes["session"]["in"]) == ("X-API-Key", "cookie")


def test_the_openapi_description_documents_every_problem_an_operation_answers(anonymous):
    """REQ-58: the description is the contract the API fuzzing suite holds the platform to; a refusal it did
    not document (a 401, a 404, a 428, a problem+json 422) broke it."""
    spec = anonymous.get("/openapi.json").json()
    operations = {(m.upper(), p): o for p, item in spec["paths"].items() for m, o in item.items()}

    place_order = operations[("POST", "/v1/orders")]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "422", "428", "429", "503"} <= place_order.keys()
    assert place_order["422"]["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert {"type", "title", "status", "detail"} <= set(spec["components"]["schemas"]["Problem"]["required"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert all(
        response["content"].keys() == {"application/problem+json"}
        for operation in operations.values() for status, response in operation["responses"].items()
        if not status.startswith("2")
    )
    key = next(p for p in operations[("POST", "/v1/orders")]["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == "^[!-~]+$"


def test_a_share_is_read_only_in_the_forms_the_api_description_states():
    """A share's string form was documented as any string while pydantic also read "+0.5", " 0.5" or "5E-1";
    now the description carries the pattern and nothing outside it is read."""
    from pydantic import TypeAdapter, ValidationError

    from dfa.platform.types import Share

    share = TypeAdapter(Share)
    string_form = next(b for b in share.json_schema()["anyOf"] if b["type"] == "string")

    assert [share.validate_python(v) for v in ("0.5", "1", "0.0001", 0.25)] == [
        Decimal("0.5"), Decimal("1"), Decimal("0.0001"), Decimal("0.25")
    ]
    for written in ("+0.5", " 0.5", "5E-1", "0", "1.5", "0.12345"):
        assert re.fullmatch(string_form["pattern"], written) is None
        with pytest.raises(ValidationError):
            share.validate_python(written)


def test_a_method_the_resource_does_not_take_is_answered_405_naming_every_method_it_does(anonymous):
    """RFC 9110: the Allow header of a 405 lists all the resource's methods, not only those of one of its routes."""
    refused = anonymous.request("DELETE", "/v1/credentials")

    assert (refused.status_code, refused.headers["content-type"]) == (405, "application/problem+json")
    assert refused.headers["allow"] == "GET, POST"


def test_the_openapi_description_says_which_operations_need_no_credentials(anonymous):
    """REQ-54: exactly the routes no guard protects are documented as open; every other one needs a credential."""
    spec = anonymous.get("/openapi.json").json()

    public = {(m.upper(), p) for p, item in spec["paths"].items() for m, o in item.items() if o.get("security") == []}

    assert public == {
        ("GET", "/healthz"), ("GET", "/problems/{slug}"), ("POST", "/v1/onboarding"), ("POST", "/v1/auth/sign-in"),
        ("POST", "/v1/auth/second-factor"), ("POST", "/v1/auth/recovery"), ("POST", "/v1/auth/recovery/completion"),
        ("POST", "/v1/oauth/token"),
    }
    assert spec["security"] == [{"accessToken": []}, {"apiKey": []}, {"session": []}]


def test_production_refuses_demo_data_and_missing_keys(settings, tmp_path):
    from dfa.main import create_app
    from dfa.platform.identity.crypto import KeyMissing

    production = settings.model_copy(update={"environment": "production", "data_dir": tmp_path})
    with pytest.raises(RuntimeError, match="demo data"):
        create_app(production.model_copy(update={"demo_data": True}))
    with pytest.raises(KeyMissing):
        create_app(production)


async def test_a_long_jobs_statement_timeout_lasts_only_its_own_transaction(database: Database, settings):
    async with database.unit_of_work() as session:
        await set_statement_timeout(session, 1_800_000)
        assert (await session.execute(text("SHOW statement_timeout"))).scalar_one() == "30min"
    async with database.unit_of_work() as session:
        shown = (await session.execute(text("SELECT current_setting('statement_timeout')"))).scalar_one()
    assert shown != "30min" and settings.db_statement_timeout_ms != 1_800_000
