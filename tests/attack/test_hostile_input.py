"""Hostile input gets a clear refusal and writes nothing (REQ-54, REQ-57, REQ-58).

Every attack here is sent over real HTTP to the platform the session serves, by a caller the route admits,
and the whole database (every table but the security-event log a refusal is meant to append to) is
fingerprinted before and after: a refused request must leave every row as it was. The attacks: fields a
client may not set (mass assignment) in every JSON body, bodies over the size limit or nested ten thousand
deep, absurd page sizes on every list, integers that are not integers in every body and amounts that are not
tenge in the cabinet's forms, and a megabyte password or login wherever a password is taken. What was tried
and anything that got through is kept for the cybersecurity test protocol (suite `hostile-input`).
"""

import json
import time
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import date
from typing import get_args

import httpx
import pytest
from sqlalchemy import text

from dfa.cabinet import i18n
from dfa.platform.web import UnitOfWorkRoute
from tests.attack.hostile import (
    Person,
    Route,
    answered,
    changes,
    fingerprint,
    integer_fields,
    models_under,
    nested,
    path_with,
    person,
    raw_request,
    routes_of,
    tally_fixture,
    text_fields,
)
from tests.factories import new_identifier
from tests.identity import PASSWORD, Users
from tests.issuance.factories import make_emission
from tests.platform.test_authorization_matrix import ADMIN, ANONYMOUS, AUDITOR, INVESTOR, ISSUER, admitted_caller
from tests.settlement.test_cash import new_iban

pytestmark = pytest.mark.attack

PROBLEM = "application/problem+json"
MEGABYTE = 1_000_000

tally = tally_fixture(
    "hostile-input",
    title="Hostile input is refused and writes nothing",
    requirements=["REQ-54", "REQ-57", "REQ-58"],
    method="Every JSON body, list, amount field, cabinet form and password field of the platform was sent hostile "
    "input over HTTP by a caller the route admits: unknown fields, oversized and deeply nested bodies, absurd page "
    "sizes, non-integer numbers and megabyte passwords. The whole database was fingerprinted before and after "
    "each attack, and every refusal was checked to be a clear 4xx that changed no row.",
)


@pytest.fixture(scope="module")
def clients(users: Users, anonymous_client: httpx.Client) -> dict[str, httpx.Client]:
    return {ANONYMOUS: anonymous_client, **{role: users.client(role) for role in Users.ROLES}}


@pytest.fixture(scope="module")
def anonymous_client(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def routes(app) -> list[Route]:
    return routes_of(app)


def send(client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    """A request as a client sends it: every change with a fresh Idempotency-Key."""
    headers = kwargs.pop("headers", {})
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        headers = {"Idempotency-Key": str(uuid.uuid4()), **headers}
    return client.request(method, path, headers=headers, **kwargs)


def field_errors(response: httpx.Response) -> dict[str, str]:
    """{field: code} of a 422 validation problem; empty for any other answer."""
    if response.status_code != 422 or response.headers.get("content-type") != PROBLEM:
        return {}
    return {e["field"]: e["code"] for e in response.json().get("errors", [])}


def clear_refusal(response: httpx.Response, *, statuses: frozenset[int] = frozenset({422})) -> list[str]:
    """Nothing unless the answer is a problem+json with one of `statuses`."""
    if response.status_code not in statuses or response.headers.get("content-type") != PROBLEM:
        return [f"answered {response.status_code} {response.headers.get('content-type')}: {response.text[:200]}"]
    return []


# --- the fingerprint itself --------------------------------------------------------------------------------


async def test_the_fingerprint_sees_a_row_added_or_changed_and_ignores_only_security_events(
    database, tally, users
):
    """REQ-58: the "nothing written" check fails on a planted write: one row added, one changed in place between
    two fingerprints; a security event and a session's last use are what a refusal may write."""
    day = "2031-02-02"
    start = await fingerprint(database)
    async with database.unit_of_work() as session:
        await session.execute(text(
            "INSERT INTO calendar_day_overrides (day, kind, reason, changed_by) "
            "VALUES (:day, 'day_off', 'planted', 'test')"
        ), {"day": date.fromisoformat(day)})
    added = await fingerprint(database)
    async with database.unit_of_work() as session:
        await session.execute(text("UPDATE calendar_day_overrides SET reason = 'planted, changed' WHERE day = :day"),
                              {"day": date.fromisoformat(day)})
    changed = await fingerprint(database)
    async with database.unit_of_work() as session:
        await session.execute(text("DELETE FROM calendar_day_overrides WHERE day = :day"),
                              {"day": date.fromisoformat(day)})
        await session.execute(text("UPDATE user_sessions SET last_seen_at = now()"))
    users.client(INVESTOR).post("/v1/parties", json={}, headers={"Idempotency-Key": str(uuid.uuid4())})  # a denial
    end = await fingerprint(database)

    seen = [changes(start, added), changes(added, changed), changes(start, end)]
    tally.attack("planted defects", [] if seen[:2] == [["calendar_day_overrides: +1 rows"],
                                                      ["calendar_day_overrides: rows changed"]]
                 else [f"the fingerprint missed a planted write: {seen}"], count=2)

    assert seen == [["calendar_day_overrides: +1 rows"], ["calendar_day_overrides: rows changed"], []]
    assert "security_events" not in start and "user_sessions" in start


# --- mass assignment ---------------------------------------------------------------------------------------

# Fields a client would like to set and never may: who owns a thing, what it is worth, what state it is in.
MASS_ASSIGNMENT = {
    "id": str(uuid.uuid4()), "party_id": str(uuid.uuid4()), "owner_party_id": str(uuid.uuid4()),
    "roles": ["operator_admin"], "status": "verified", "balance": 10**15, "is_admin": True,
    "created_at": "2020-01-01T00:00:00Z", "created_by": "operator", "issuer_party_id": str(uuid.uuid4()),
    "verified_at": "2020-01-01T00:00:00Z", "kyc_status": "identified",
}


def test_every_request_body_forbids_unknown_fields_at_every_depth(routes, tally):
    """REQ-58: every model a JSON body is read into, nested ones included, refuses fields it does not declare."""
    models = {m for r in routes if r.body_model for m in models_under(r.body_model)}
    lax = sorted(f"{m.__module__}.{m.__name__}" for m in models if m.model_config.get("extra") != "forbid")

    tally.attack("request models checked", [f"{name} ignores unknown fields" for name in lax], count=len(models))

    assert len(models) > 50
    assert lax == [], "\n".join(lax)


async def test_unknown_fields_in_every_json_body_are_refused_and_nothing_is_written(routes, clients, database, tally):
    """REQ-57, REQ-58: extra fields (`id`, `party_id`, `owner_party_id`, `roles`, `status`, `balance`,
    `is_admin`, `created_at`...) in the body of every POST and PUT are refused with 422 naming each of them, and
    no row changes."""
    found = []
    sent = 0
    for route in (r for r in routes if r.body_model is not None):
        declared = {f.alias or name for name, f in route.body_model.model_fields.items()}
        extras = {name: value for name, value in MASS_ASSIGNMENT.items() if name not in declared}
        async with tally.watching(database) as watch:
            response = send(clients[admitted_caller(route.key)], route.method, path_with(route), json=extras)
        sent += 1
        errors = field_errors(response)
        not_refused = [name for name in extras if errors.get(f"body.{name}") != "extra_forbidden"]
        problems = ([f"the extra fields {not_refused} were not refused ({response.status_code})"] if not_refused
                    else []) + watch.written
        found += [f"{route.method} {route.path}: {p}" for p in problems]

    tally.attack("mass assignment", found, count=sent)

    assert sent > 50
    assert found == []


async def test_extra_fields_in_a_cabinet_form_set_nothing_they_name(database, settings, server_url, users, tally):
    """REQ-57: a form binds only the fields it shows. A bank account registered from the cabinet with a
    forged `party_id`, `status`, `verified_at` and `id` is the signed-in investor's own, new, unverified one."""
    investor = await person(database, settings, server_url, role="investor")
    victim = users[INVESTOR].party_id
    form = {"iban": new_iban(), "holder_name": "Aigerim Sadykova", "party_id": str(victim),
            "owner_party_id": str(victim),
            "status": "verified", "verified_at": "2020-01-01T00:00:00Z", "id": "424242"}

    answer = investor.client.post("/money/bank-accounts", data=form)
    listed = investor.client.get("/v1/bank-accounts").json()
    victims = users.client(INVESTOR).get("/v1/bank-accounts", params={"limit": 500}).json()
    problems = [] if answer.status_code == 303 else [f"the form was answered {answer.status_code}"]
    problems += [f"the account was made {a['status']} for {a['party_id']}" for a in listed
                 if a["party_id"] != str(investor.party_id) or a["status"] == "verified"]
    problems += [f"an account appeared for the victim: {a}" for a in victims if a["iban"] == form["iban"]]

    tally.attack("mass assignment", problems)
    investor.client.close()

    assert problems == [] and len(listed) == 1 and listed[0]["id"] != 424242


# --- sizes and depths --------------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_with_413_whether_declared_or_streamed(
    database, settings, users, server_url, tally
):
    """REQ-58: a body over `REQUEST_BODY_MAX_BYTES` is refused with 413 before it is read to the end, whether
    its Content-Length says so or it comes in chunks with none; a page's form too; nothing is written."""
    admin = users.client(ADMIN)
    oversized = b'{"kind": "person", "name": "' + b"x" * settings.request_body_max_bytes + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(oversized), 65_536):
            yield oversized[start:start + 65_536]

    async with tally.watching(database) as watch:
        answers = {
            "declared": send(admin, "POST", "/v1/parties", content=oversized,
                             headers={"Content-Type": "application/json"}),
            "streamed": send(admin, "POST", "/v1/parties", content=chunks(),
                             headers={"Content-Type": "application/json"}),
            "a page form": users.client(INVESTOR).post(
                "/money/bank-accounts", data={"iban": "x" * settings.request_body_max_bytes, "holder_name": "x"}
            ),
        }
        lying, _ = raw_request(server_url, (
            f"POST /v1/parties HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -1\r\n"
            f"Cookie: {admin.headers['Cookie']}\r\nX-CSRF-Token: {admin.headers['X-CSRF-Token']}\r\n"
            f"Idempotency-Key: {uuid.uuid4()}\r\nConnection: close\r\n\r\n{{}}"
        ).encode())
    problems = [f"{how}: {p}" for how, answer in answers.items()
                for p in clear_refusal(answer, statuses=frozenset({413}))]
    if lying not in (400, 413):
        problems.append(f"a negative Content-Length was answered {lying}")
    problems += watch.written

    tally.attack("oversized bodies", problems, count=len(answers) + 1)

    assert problems == []
    assert answers["declared"].json()["type"] == "/problems/payload-too-large"


async def test_a_document_over_its_own_limit_is_refused_with_413_and_nothing_is_kept(database, settings, tally, users):
    """REQ-58: uploads have a larger limit of their own (`ISSUANCE_DOCUMENT_MAX_BYTES`); past it, 413."""
    issuer = users.client(ISSUER)
    large = b"%PDF-1.7\n" + b"%" * (settings.issuance_document_max_bytes + 70_000)

    async with tally.watching(database) as watch:
        answer = send(issuer, "POST", f"/v1/issuers/{users[ISSUER].party_id}/documents",
                      data={"kind": "charter", "title": "too large"},
                      files={"file": ("charter.pdf", large, "application/pdf")})
    problems = clear_refusal(answer, statuses=frozenset({413})) + watch.written

    tally.attack("oversized bodies", problems)

    assert problems == []


def _deep(depth: int, opening: str, closing: str, inner: str = "1") -> bytes:
    return (opening * depth + inner + closing * depth).encode()


async def test_json_nested_deeper_than_any_request_gets_a_clear_4xx_and_the_platform_lives_on(
    routes, database, users, clients, long_form, tally
):
    """REQ-58: arrays and objects nested 10,000 and 100,000 deep (500,000 in the long form), where a body is taken
    and where a sign-in is, are refused as unreadable (400 or 422) or too large (413), never a 500 or a crash; the
    platform answers after. (The EVM libraries lift Python's recursion limit to 100,000, so a parser recursing per
    level would overflow the stack and kill the process: every route that reads a JSON body checks its depth
    first.)"""
    unchecked = [f"{r.method} {r.path}" for r in routes if r.body_model and not isinstance(r.route, UnitOfWorkRoute)]
    problems = [f"{route} reads JSON without checking its depth" for route in unchecked]
    for depth in (10_000, 100_000, *((500_000,) if long_form else ())):
        problems += await _nested_problems(depth, database, clients, tally)

    tally.attack("deeply nested bodies", problems, count=0)

    assert problems == [], "\n".join(problems)


async def _nested_problems(depth: int, database, clients, tally) -> list[str]:
    bodies = {
        "arrays": _deep(depth, "[", "]"),
        "objects": _deep(depth, '{"a":', "}"),
        "a field": b'{"kind": "person", "name": ' + _deep(depth, "[", "]") + b"}",
    }
    problems = []
    async with tally.watching(database) as watch:
        for name, body in bodies.items():
            for caller, path in ((ADMIN, "/v1/parties"), (ANONYMOUS, "/v1/auth/sign-in"), (INVESTOR, "/v1/orders")):
                answer = send(clients[caller], "POST", path, content=body, headers={"Content-Type": "application/json"})
                problems += [f"{name} to {path}: {p}"
                             for p in clear_refusal(answer, statuses=frozenset({400, 413, 422}))]
    alive = clients[ANONYMOUS].get("/healthz")
    problems += watch.written + ([] if alive.status_code == 200 else [f"/healthz answered {alive.status_code} after"])
    tally.attack("deeply nested bodies", count=len(bodies) * 3)
    return [f"{depth:,} deep: {p}" for p in problems]


# --- page sizes ----------------------------------------------------------------------------------------------

ABSURD_PAGE_SIZES = ["0", "-1", "1e3", "abc", "10.5", "", str(2**63), "١٠"]
ABSURD_CURSORS = ["-1", "abc", str(2**63), "1e3"]
LARGE_CURSORS = [str(2**31), str(2**62)]


async def test_absurd_page_sizes_and_cursors_are_refused_and_a_huge_page_is_capped_on_every_list(
    routes, clients, database, settings, tally
):
    """REQ-58: every list refuses `limit` 0, negative, fractional, exponent, non-numeric, beyond 2^63 or in
    other digits with 422, and serves `limit=10**9` as a page of at most `PAGE_SIZE_MAX`; its cursors (`after`,
    `before`) refuse the same and take huge values without a server error."""
    found, sent = [], 0
    lists = [r for r in routes if r.method == "GET" and "limit" in r.query_params]
    async with tally.watching(database) as watch:
        for route in lists:
            client, path = clients[admitted_caller(route.key)], path_with(route)
            cursors = [name for name, annotation in route.query_params.items()
                       if name in ("after", "before", "after_seq", "before_seq") and int in get_args(annotation)]
            refused = [("limit", v) for v in ABSURD_PAGE_SIZES] + [(c, v) for c in cursors for v in ABSURD_CURSORS]
            for name, value in refused:
                answer = answered(client, "GET", path, params={name: value})
                sent += 1
                if f"query.{name}" not in field_errors(answer):
                    found.append(f"{route.path}?{name}={value!r}: answered {answer.status_code} {answer.text[:120]}")
            for name, value in [("limit", str(10**9))] + [(c, v) for c in cursors for v in LARGE_CURSORS]:
                answer = answered(client, "GET", path, params={name: value})
                sent += 1
                if answer.status_code >= 500:
                    found.append(f"{route.path}?{name}={value}: a server error {answer.status_code}")
                elif answer.status_code == 200 and isinstance(answer.json(), list) and (
                    len(answer.json()) > settings.page_size_max
                ):
                    found.append(f"{route.path}?limit=10**9 served {len(answer.json())} items")
    found += watch.written

    tally.attack("absurd page sizes", found, count=sent)

    assert len(lists) > 25
    assert found == [], "\n".join(found)


# --- integers that are not -----------------------------------------------------------------------------------

# JSON text of each, sent where an integer (an amount, a quantity, an id) belongs; every one must be refused.
NOT_INTEGERS = {
    "a fraction": "10.5", "a float": "10.0", "an exponent": "1e3", "NaN": "NaN", "Infinity": "Infinity",
    "-Infinity": "-Infinity", "2**63": str(2**63), "-1": "-1", "a string": '"10"', "Arabic-Indic digits": '"١٠"',
    "Bengali digits": '"১০"', "fullwidth digits": '"１０"', "true": "true", "false": "false", "null": "null",
}
PLACEHOLDER = "__not_an_integer__"


def test_every_integer_of_every_request_model_is_strict(routes, tally):
    """REQ-57, REQ-58: no integer field of any request model (nested and listed ones included) reads a string,
    a float or a boolean as a number: the docs promise strict integers, and an amount is never a float."""
    lax, fields = [], 0
    models = {m for r in routes if r.body_model for m in models_under(r.body_model)}
    for model in models:
        for path in integer_fields(model):
            if len(path) > 1:
                continue  # nested models are among `models` themselves
            fields += 1
            for value in ("10", 10.0, True):
                try:
                    model.__pydantic_validator__.validate_python({path[0]: value})
                except ValueError as invalid:
                    if any(e["loc"][:1] == path for e in invalid.errors()):
                        continue
                lax.append(f"{model.__module__}.{model.__name__}.{path[0]} reads {value!r} as an integer")

    tally.attack("integer fields checked", lax, count=fields)

    assert lax == [], "\n".join(lax)


def _other_scripts_tens() -> dict[str, str]:
    """"10" written in the decimal digits of every script but ASCII, as JSON strings."""
    tens = {}
    for code in range(0x80, 0x110000):
        character = chr(code)
        if unicodedata.category(character) == "Nd" and unicodedata.digit(character) == 1:
            ten = character + chr(code - 1)
            tens[f"{unicodedata.name(character, hex(code))} and zero"] = json.dumps(ten, ensure_ascii=False)
    return tens


async def test_every_integer_in_every_body_refuses_what_is_not_one_and_nothing_is_written(
    routes, clients, database, long_form, tally
):
    """REQ-57: amounts, quantities, prices and ids in every JSON body refuse floats (10.5, 10.0, 1e3), NaN,
    Infinity, 2**63, -1, strings ("10"), other scripts' digits ("١٠", "১০", "１０"; in the long form, ten in
    every script Unicode has), booleans and null with a 422 naming the field; no row changes."""
    values = {**NOT_INTEGERS, **(_other_scripts_tens() if long_form else {})}
    found, sent, fields = [], 0, 0
    for route in (r for r in routes if r.body_model is not None):
        paths = integer_fields(route.body_model)
        if not paths:
            continue
        client, url = clients[admitted_caller(route.key)], path_with(route)
        async with tally.watching(database) as watch:
            for path in paths:
                fields += 1
                template = json.dumps(nested(path, PLACEHOLDER))
                for name, value in values.items():
                    if value == "null" and not route.body_model.model_fields[path[0]].is_required() and len(path) == 1:
                        continue  # leaving out an optional integer is allowed
                    body = template.replace(f'"{PLACEHOLDER}"', value)
                    answer = send(client, route.method, url, content=body, headers={"Content-Type": "application/json"})
                    sent += 1
                    if "body." + ".".join(path) not in field_errors(answer):
                        found.append(f"{route.method} {route.path}: {'.'.join(path)} = {name} was answered "
                                     f"{answer.status_code} {answer.text[:120]}")
        found += [f"{route.method} {route.path}: {p}" for p in watch.written]

    tally.attack("non-integer amounts", found, count=sent)

    assert fields >= 25
    assert found == [], "\n".join(found)


async def test_a_nul_in_any_text_of_any_body_query_or_path_is_refused_not_a_server_error(
    routes, clients, market, database, tally
):
    """REQ-58: PostgreSQL cannot keep a NUL in text, so one in any text field of any JSON body or form (a login,
    a name, a reference; each alone and all at once), in any query parameter or in a path is refused as invalid
    input, never a 500; nothing is written. (A password change is sent with the right current password, by an
    investor of its own: a wrong one would rightly count towards a lockout.)"""
    found, sent = [], 0
    nul = "nul\x00byte"
    investor, _ = market
    clients[INVESTOR].get("/money")  # the first visit gives an investor a payment reference, kept from then on
    for route in routes:
        client, url = clients[admitted_caller(route.key)], path_with(route, **{
            name: "x%00byte" for name, annotation in route.path_params.items() if annotation is str})
        base = {}
        if route.body_model is not None and "current_password" in route.body_model.model_fields or (
            route.body_kind == "form" and "current_password" in {p.alias for p in route.route.dependant.body_params}
        ):
            client, base = investor.client, {"current_password": PASSWORD}
        attempts = []
        if route.body_model is not None:
            paths = [p for p in text_fields(route.body_model) if p[0] not in base]
            attempts += [("body", {"json": {**base, **nested(path, nul)}}) for path in paths]
            if paths:
                attempts += [("body", {"json": {**base, **{p[0]: nul for p in paths if len(p) == 1}}})]
        elif route.body_kind == "form":
            attempts += [("form", {"data": {**{p.alias: nul for p in route.route.dependant.body_params}, **base}})]
        attempts += [("query", {"params": {name: nul}}) for name in route.query_params]
        attempts += [("path", {})] if any(annotation is str for annotation in route.path_params.values()) else []
        if not attempts:
            continue
        async with tally.watching(database) as watch:
            for where, request in attempts:
                headers = {"Idempotency-Key": str(uuid.uuid4())} if route.method != "GET" else {}
                answer = answered(client, route.method, url, headers=headers, **request)
                sent += 1
                if answer.status_code >= 500:
                    found.append(f"{route.method} {route.path} with a NUL in the {where} {request}: "
                                 f"{answer.status_code}")
        found += [f"{route.method} {route.path}: {p}" for p in watch.written]

    tally.attack("nul characters", found, count=sent)

    assert sent > 200
    assert found == [], "\n".join(found)


NOT_TENGE = ["NaN", "Infinity", "-1", "1e3", "١٠", "১০", "１０", "true", "10.001", "0x10", "0", "9" * 30, "1,2,3.4.5",
             "10 000.5.1", "+10", "10-"]
NOT_WHOLE = ["10.5", "10.0", "NaN", "-1", "1e3", "١٠", "１０", "true", "0", "9" * 30]


def test_the_cabinet_reads_an_amount_only_as_tenge_in_ascii_digits_to_the_tiyn():
    """REQ-57: `parse_tiyn`, which reads every amount typed in the cabinet, takes nothing but a positive amount in
    ASCII digits to the tiyn that fits a bigint, in every language; what people type is read exactly."""
    for code, language in i18n.LANGUAGES.items():
        with i18n.speaking(language):
            accepted = {text: i18n.parse_tiyn(text) for text in NOT_TENGE if i18n.parse_tiyn(text) is not None}
            assert accepted == {}, code
            assert i18n.parse_tiyn("10") == 1_000
            assert i18n.parse_tiyn("0,01" if code != "en" else "0.01") == 1


@pytest.fixture(scope="module")
async def market(database, settings, server_url) -> tuple[Person, str]:
    """A new investor (who has seen the money page, which gives it a payment reference), and an emission its order
    forms can name."""
    investor = await person(database, settings, server_url, role="investor")
    investor.client.get("/money")
    async with database.unit_of_work() as session:
        emission = await make_emission(session, units=100)
    yield investor, emission.registration_number
    investor.client.close()


async def test_the_cabinet_forms_refuse_amounts_that_are_not_and_nothing_is_written(market, database, tally):
    """REQ-57: the withdrawal form's amount and the order forms' price and quantity refuse NaN, Infinity,
    negatives, exponents, other scripts' digits, booleans, sub-tiyn and overflowing amounts (and, for a
    quantity, fractions) with the form again, a 4xx; no row changes."""
    investor, code = market
    order = {"side": "buy", "base": code, "quote": "", "price": "10", "quantity": "1", "time_in_force": "gtc"}
    attempts = (
        [("/money/withdrawals", {"bank_account_id": "1", "amount": v}) for v in NOT_TENGE]
        + [(path, {**order, "price": v}) for path in ("/orders/preview", "/orders") for v in NOT_TENGE]
        + [(path, {**order, "quantity": v, "order_token": str(uuid.uuid4())})
           for path in ("/orders/preview", "/orders") for v in NOT_WHOLE]
    )
    found = []
    async with tally.watching(database) as watch:
        for path, form in attempts:
            answer = investor.client.post(path, data=form)
            if not 400 <= answer.status_code < 500:
                found.append(f"{path} {form}: answered {answer.status_code}")
    found += watch.written

    tally.attack("non-tenge form amounts", found, count=len(attempts))

    assert found == []


# --- a megabyte password -------------------------------------------------------------------------------------


async def test_a_megabyte_password_or_login_is_refused_at_once_wherever_one_is_taken(
    database, clients, users, tally
):
    """REQ-54: a 1 MB password or login at sign-in (API and cabinet), onboarding, user creation, password
    change (API and cabinet) and recovery is refused at once as invalid (422, or 413 past the body limit),
    before any password is hashed, so it costs nothing and counts towards nothing; no row changes."""
    huge = "p" * MEGABYTE
    login = users[INVESTOR].login
    form_client = clients[INVESTOR]
    cases = [
        (ANONYMOUS, "/v1/auth/sign-in", {"json": {"login": login, "password": huge}}, "body.password"),
        (ANONYMOUS, "/v1/auth/sign-in", {"json": {"login": "l" * MEGABYTE, "password": PASSWORD}}, "body.login"),
        (ANONYMOUS, "/v1/onboarding", {"json": {"name": "Aigerim Sadykova", "identifier": new_identifier(),
                                                "login": f"mb-{uuid.uuid4().hex[:8]}", "password": huge,
                                                "biometric_sample": "AAAA"}}, "body.password"),
        (ADMIN, "/v1/users", {"json": {"login": f"mb-{uuid.uuid4().hex[:8]}", "password": huge,
                                       "roles": [AUDITOR]}}, "body.password"),
        (INVESTOR, "/v1/auth/password", {"json": {"current_password": huge, "new_password": PASSWORD + "!"}},
         "body.current_password"),
        (INVESTOR, "/v1/auth/password", {"json": {"current_password": PASSWORD, "new_password": huge}},
         "body.new_password"),
        (ANONYMOUS, "/v1/auth/recovery/completion", {"json": {"recovery_token": "x", "new_password": huge}},
         "body.new_password"),
        (ANONYMOUS, "/sign-in", {"data": {"login": login, "password": huge}}, "body.password"),
        (ANONYMOUS, "/sign-in", {"data": {"login": "l" * MEGABYTE, "password": PASSWORD}}, "body.login"),
        (INVESTOR, "/account/password", {"data": {"current_password": huge, "new_password": PASSWORD,
                                                  "new_password_again": PASSWORD}}, "body.current_password"),
        (ANONYMOUS, "/recovery/completion", {"data": {"recovery_token": "x", "new_password": huge,
                                                      "new_password_again": huge}}, "body.new_password"),
    ]
    found, slowest = [], 0.0
    async with tally.watching(database) as watch:
        for caller, path, body, field in cases:
            client = form_client if caller == INVESTOR else clients[caller]
            started = time.monotonic()
            answer = send(client, "POST", path, **body)
            took = time.monotonic() - started
            slowest = max(slowest, took)
            if answer.status_code == 413:
                continue
            refused_beside = answer.status_code == 422 and f'id="{field.removeprefix("body.")}-error"' in answer.text
            if field not in field_errors(answer) and not refused_beside:
                found.append(f"{path} with a megabyte {field}: answered {answer.status_code} {answer.text[:120]}")
            if took > 3.0:
                found.append(f"{path} with a megabyte {field}: took {took:.1f} s")
    found += watch.written

    tally.attack("megabyte passwords", found, count=len(cases))

    assert found == [], f"slowest answer {slowest:.2f} s"
