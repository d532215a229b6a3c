"""The ledger API over real HTTP: every bad input is a clear problem and writes nothing."""

import csv
import io
import json
import uuid

import httpx
import pytest

from tests.factories import new_asset_code, new_identifier

PROBLEM = "application/problem+json"


def post(api: httpx.Client, path: str, body, *, key: str | None = None, raw: bytes | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key or str(uuid.uuid4()), "Content-Type": "application/json"}
    return api.post(path, content=raw if raw is not None else json.dumps(body), headers=headers)


def created(response: httpx.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def identified_party(api: httpx.Client, compliance: httpx.Client, kind: str) -> dict:
    """A party registered by an administrator and identified in person by a compliance officer."""
    party = created(post(api, "/v1/parties", {"kind": kind, "name": "API Holder", "identifier": new_identifier(kind=kind), "resident": True}))
    decision = {"status": "identified", "level": "full", "method": "in_person", "reason": "documents seen"}
    response = post(compliance, f"/v1/parties/{party['id']}/kyc-decisions", decision)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def world(api, users):
    """Committed through the API: a money asset, a bank mirror and two funded holders, and an emission."""
    party = lambda kind: identified_party(api, users.client("compliance_officer"), kind)
    operator, alice, bob = party("legal_entity"), party("person"), party("person")
    money = created(post(api, "/v1/ledger/assets", {"code": new_asset_code("M"), "kind": "money", "scale": 2, "name": "money"}))
    units = created(post(api, "/v1/ledger/assets", {"code": new_asset_code("D"), "kind": "dfa", "scale": 0, "name": "units"}))
    account = lambda owner, asset, kind: created(post(api, "/v1/ledger/accounts", {"owner_party_id": owner["id"], "asset": asset["code"], "kind": kind}))
    bank = account(operator, money, "client_money")
    a, b = account(alice, money, "available"), account(bob, money, "available")
    a_units = account(alice, units, "available")
    created(post(api, "/v1/ledger/batches", {"id": str(uuid.uuid4()), "items": [
        {"type": "transfer", "transfer": {"id": str(uuid.uuid4()), "debit_account_id": bank["id"], "credit_account_id": x["id"], "amount": 1_000}}
        for x in (a, b)
    ]}))
    return {"a": a, "b": b, "bank": bank, "a_units": a_units, "money": money, "units": units}


def balance(api, account) -> int:
    return api.get(f"/v1/ledger/accounts/{account['id']}").json()["balance"]


def transfer(world, **overrides) -> dict:
    body = {"id": str(uuid.uuid4()), "debit_account_id": world["a"]["id"], "credit_account_id": world["b"]["id"], "amount": 10}
    body.update(overrides)
    return body


def test_health_and_openapi_are_served(api):
    assert api.get("/healthz").json() == {"status": "ok", "database": "ok"}
    spec = api.get("/openapi.json").json()
    assert "/v1/ledger/transfers" in spec["paths"]
    assert api.get("/docs").status_code == 200


def test_transfer_over_http_and_its_exact_replay(api, world):
    body = transfer(world, amount=25, reference="order 42")
    first = post(api, "/v1/ledger/transfers", body, key="t-1-" + body["id"])
    replay = post(api, "/v1/ledger/transfers", body, key="t-1-" + body["id"])
    same_transfer_new_key = post(api, "/v1/ledger/transfers", body)

    assert first.status_code == 201 and replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert same_transfer_new_key.status_code == 200 and same_transfer_new_key.json()["id"] == body["id"]
    assert balance(api, world["a"]) == 975
    assert api.get(f"/v1/ledger/transfers/{body['id']}").json()["reference"] == "order 42"


def test_idempotency_key_with_a_different_body_is_refused(api, world):
    key = str(uuid.uuid4())
    created(post(api, "/v1/ledger/transfers", transfer(world), key=key))
    other = transfer(world, amount=11)

    response = post(api, "/v1/ledger/transfers", other, key=key)

    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
    assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert api.get(f"/v1/ledger/transfers/{other['id']}").status_code == 404


def test_a_mutating_request_without_an_idempotency_key_is_refused(api, world):
    response = api.post("/v1/ledger/transfers", json=transfer(world))
    assert (response.status_code, response.json()["type"]) == (428, "/problems/idempotency-key-missing")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": 0}, "body.amount"),
        ({"amount": -5}, "body.amount"),
        ({"amount": 10**17 + 1}, "body.amount"),
        ({"amount": 2**70}, "body.amount"),
        ({"amount": 10.0}, "body.amount"),
        ({"amount": 10.5}, "body.amount"),
        ({"amount": "10"}, "body.amount"),
        ({"amount": "١٠"}, "body.amount"),
        ({"amount": True}, "body.amount"),
        ({"amount": None}, "body.amount"),
        ({"debit_account_id": "1"}, "body.debit_account_id"),
        ({"debit_account_id": 1.0}, "body.debit_account_id"),
        ({"id": "not-a-uuid"}, "body.id"),
        ({"colour": "red"}, "body.colour"),
        ({"reference": "x" * 201}, "body.reference"),
    ],
)
def test_bad_transfer_input_is_a_422_with_field_errors_and_writes_nothing(api, world, overrides, field):
    body = transfer(world, **overrides)

    response = post(api, "/v1/ledger/transfers", body)

    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert field in [e["field"] for e in problem["errors"]]
    assert balance(api, world["a"]) == 1_000 and balance(api, world["b"]) == 1_000


@pytest.mark.parametrize("raw", [b"{", b"[]", b"", b'{"id": 1e400}', "{\"amount\": ١٠}".encode()])
def test_malformed_json_is_a_422(api, world, raw):
    response = post(api, "/v1/ledger/transfers", None, raw=raw)
    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)


@pytest.mark.parametrize(
    ("overrides", "status", "problem_type"),
    [
        ({"credit_account_id": 9_000_000_000}, 404, "account-not-found"),
        ({"amount": 1_001}, 422, "insufficient-funds"),
        ({"credit_account_id": "same"}, 422, "accounts-must-be-different"),
        ({"credit_account_id": "units"}, 422, "accounts-must-have-same-asset"),
    ],
)
def test_domain_refusals_have_a_stable_type_and_write_nothing(api, world, overrides, status, problem_type):
    if overrides.get("credit_account_id") == "same":
        overrides = {"credit_account_id": world["a"]["id"]}
    if overrides.get("credit_account_id") == "units":
        overrides = {"credit_account_id": world["a_units"]["id"]}
    body = transfer(world, **overrides)

    response = post(api, "/v1/ledger/transfers", body)

    assert (response.status_code, response.json()["type"]) == (status, f"/problems/{problem_type}")
    assert api.get(f"/problems/{problem_type}").status_code == 200
    assert api.get(f"/v1/ledger/transfers/{body['id']}").status_code == 404
    assert balance(api, world["a"]) == 1_000


def test_a_reused_transfer_id_with_a_different_body_is_refused(api, world):
    body = transfer(world)
    created(post(api, "/v1/ledger/transfers", body))

    response = post(api, "/v1/ledger/transfers", {**body, "amount": 11})

    assert (response.status_code, response.json()["type"]) == (409, "/problems/transfer-id-reused")
    assert balance(api, world["a"]) == 990


def test_holds_over_http_posting_more_than_held_and_voiding_twice(api, world):
    hold_id = str(uuid.uuid4())
    hold = created(post(api, "/v1/ledger/holds", {"id": hold_id, "account_id": world["a"]["id"], "amount": 300}))
    assert hold["status"] == "pending" and balance(api, world["a"]) == 700

    too_much = post(api, f"/v1/ledger/holds/{hold_id}/post", {"transfer_id": str(uuid.uuid4()), "credit_account_id": world["b"]["id"], "amount": 301})
    assert (too_much.status_code, too_much.json()["type"]) == (422, "/problems/hold-amount-exceeded")
    created(post(api, f"/v1/ledger/holds/{hold_id}/post", {"transfer_id": str(uuid.uuid4()), "credit_account_id": world["b"]["id"], "amount": 100}))
    created(post(api, f"/v1/ledger/holds/{hold_id}/void", {"transfer_id": str(uuid.uuid4())}))
    twice = post(api, f"/v1/ledger/holds/{hold_id}/void", {"transfer_id": str(uuid.uuid4())})

    assert (twice.status_code, twice.json()["type"]) == (409, "/problems/hold-not-pending")
    assert api.get(f"/v1/ledger/holds/{hold_id}").json()["status"] == "voided"
    assert (balance(api, world["a"]), balance(api, world["b"])) == (900, 1_100)


def test_naive_hold_expiry_is_refused(api, world):
    response = post(api, "/v1/ledger/holds", {"id": str(uuid.uuid4()), "account_id": world["a"]["id"], "amount": 1, "expires_at": "2030-01-01T00:00:00"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "body.expires_at"


def test_batch_whose_last_transfer_fails_writes_nothing_over_http(api, world):
    batch_id = str(uuid.uuid4())
    items = [
        {"type": "transfer", "transfer": transfer(world, amount=500)},
        {"type": "transfer", "transfer": transfer(world, debit_account_id=world["b"]["id"], credit_account_id=world["a"]["id"], amount=5_000)},
    ]

    response = post(api, "/v1/ledger/batches", {"id": batch_id, "items": items})

    assert (response.status_code, response.json()["type"]) == (422, "/problems/insufficient-funds")
    assert api.get(f"/v1/ledger/transfers/{items[0]['transfer']['id']}").status_code == 404
    assert balance(api, world["a"]) == 1_000


def test_account_history_pages_with_an_opaque_cursor(api, world):
    for amount in (1, 2, 3):
        created(post(api, "/v1/ledger/transfers", transfer(world, amount=amount)))

    first = api.get(f"/v1/ledger/accounts/{world['a']['id']}/entries", params={"limit": 2}).json()
    second = api.get(f"/v1/ledger/accounts/{world['a']['id']}/entries", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    bad = api.get(f"/v1/ledger/accounts/{world['a']['id']}/entries", params={"cursor": "garbage"})

    assert [e["amount"] for e in first["items"]] == [-3, -2]
    assert [e["amount"] for e in second["items"]] == [-1, 1_000] and second["next_cursor"] is None
    assert (bad.status_code, bad.json()["type"]) == (422, "/problems/invalid-cursor")


@pytest.mark.parametrize("limit", ["١٠", "1.5", "-1", "0", "ten"])
def test_bad_query_integers_are_refused(api, world, limit):
    response = api.get(f"/v1/ledger/accounts/{world['a']['id']}/entries", params={"limit": limit})
    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM)


def test_registry_and_streamed_exports_over_http(api, world):
    """REQ-34, REQ-35: the registry now, as of an instant, and exported in full."""
    units = world["units"]
    issued = created(post(api, "/v1/ledger/accounts", {"owner_party_id": world["bank"]["owner_party_id"], "asset": units["code"], "kind": "issued"}))
    created(post(api, "/v1/ledger/transfers", {"id": str(uuid.uuid4()), "debit_account_id": issued["id"], "credit_account_id": world["a_units"]["id"], "amount": 70}))

    registry = api.get(f"/v1/ledger/assets/{units['code']}/holders").json()
    exported = api.get(f"/v1/ledger/assets/{units['code']}/holders/export", params={"format": "csv"})
    lines = api.get(f"/v1/ledger/assets/{units['code']}/holders/export", params={"format": "jsonl"})
    past = api.get(f"/v1/ledger/assets/{units['code']}/holders", params={"as_of": "2020-01-01T00:00:00Z"}).json()
    naive = api.get(f"/v1/ledger/assets/{units['code']}/holders", params={"as_of": "2020-01-01T00:00:00"})

    assert registry["total_units"] == 70 and registry["holders"][0]["account_id"] == world["a_units"]["id"]
    assert exported.headers["content-type"].startswith("text/csv") and "attachment" in exported.headers["content-disposition"]
    assert [r["total_units"] for r in csv.DictReader(io.StringIO(exported.text))] == ["70"]
    assert [json.loads(line)["total_units"] for line in lines.text.splitlines()] == [70]
    assert past["holders"] == [] and naive.status_code == 422


def test_request_ids_are_echoed_and_oversized_bodies_refused(api, world):
    echoed = api.get("/healthz", headers={"X-Request-ID": "req-123"})
    huge = post(api, "/v1/ledger/transfers", None, raw=b'{"pad": "' + b"x" * 2_000_000 + b'"}')

    assert echoed.headers["x-request-id"] == "req-123"
    assert (huge.status_code, huge.headers["content-type"]) == (413, PROBLEM)


def test_unknown_routes_and_methods_are_problems(api):
    assert api.get("/v1/nowhere").headers["content-type"] == PROBLEM
    assert api.delete("/healthz").status_code == 405


def test_a_registry_instant_written_as_a_number_is_refused_not_read_as_1970(api):
    """`as_of=0.5` was read as half a second past 1970; the description says an RFC 3339 date-time."""
    refused = api.get("/v1/ledger/assets/KZT/holders", params={"as_of": "0.5"})

    assert (refused.status_code, refused.json()["errors"][0]["field"]) == (422, "query.as_of")


def test_verification_over_http(api, world):
    assert api.get("/v1/ledger/verification").json()["ok"] is True


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ledger/accounts/99999999999999999999",
        "/v1/ledger/accounts/99999999999999999999/entries",
        "/v1/ledger/accounts?after=99999999999999999999",
        "/v1/ledger/assets?after=99999999999",
        "/v1/ledger/accounts?limit=99999999999999999999",
        "/v1/ledger/assets/KZT%00/holders",
        "/v1/ledger/accounts?asset=KZ%00T",
        "/v1/ledger/assets/KZT/holders?as_of=0001-01-01T00:00:00%2B14:00",
        "/v1/ledger/assets/KZT/holders?as_of=not-a-date",
        "/v1/parties/not-a-uuid",
    ],
)
def test_out_of_range_and_malformed_parameters_are_client_errors_never_500(api, path):
    response = api.get(path)
    assert 400 <= response.status_code < 500 and response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/parties", {"kind": "person", "name": "Nul\u0000Byte", "identifier": "900101300007", "resident": True}),
        ("/v1/ledger/assets", {"code": "NULNAME", "kind": "money", "scale": 2, "name": "bad\u0000name"}),
    ],
)
def test_text_with_control_characters_is_refused(api, path, body):
    response = post(api, path, body)
    assert (response.status_code, response.json()["type"]) == (422, "/problems/validation-error")


def test_a_reference_with_a_nul_byte_is_refused_and_writes_nothing(api, world):
    body = transfer(world, reference="order\u00001")
    response = post(api, "/v1/ledger/transfers", body)
    assert response.status_code == 422 and balance(api, world["a"]) == 1_000
