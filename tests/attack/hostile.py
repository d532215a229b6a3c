"""What the suites under hostile input share: the database's fingerprint (so a refused request is seen to
have written nothing), a tally of the attacks tried kept for the cybersecurity test protocol, the app's
routes read from the app itself, and the checkers that look for markup, spreadsheet formulas and forged log
lines where none may be.

A checker returns what it found, in words, so a test can keep it for the protocol before asserting, and a
test with a planted defect can show the same checker finds it.
"""

import contextlib
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from typing import Any, get_args
from urllib.parse import urlsplit

import fastapi.params
import fastapi.routing
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import text

from dfa.platform.database import Database
from dfa.platform.identity.service import parties, users
from dfa.platform.settings import Settings
from tests.evidence import record
from tests.factories import new_identifier
from tests.identity import PASSWORD, sign_in, signed_in_client

# --- nothing is written -----------------------------------------------------------------------------------

# What a refused request is meant to write: the refusal is a security event (REQ-55), appended to the
# hash-chained log and its head; and a session's last use is noted as it is used.
MEANT_TO_BE_WRITTEN = {
    "security_events": "a refusal that is a security event is recorded",
    "security_event_head": "the head of the security-event chain moves with each event",
}
SESSION_BOOKKEEPING = {"user_sessions": ("last_seen_at",)}


async def _tables(database: Database) -> list[str]:
    async with database.engine.connect() as connection:
        found = await connection.execute(text(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        ))
        return [name for (name,) in found if name not in MEANT_TO_BE_WRITTEN]


def _fingerprint_sql(tables: list[str]) -> str:
    """Per table: its row count and the sum of its rows' MD5 digests (order does not matter, no sort needed),
    each row taken whole as JSON less the bookkeeping columns."""
    parts = []
    for table in tables:
        skipped = ",".join(SESSION_BOOKKEEPING.get(table, ()))
        parts.append(
            f"SELECT '{table}' AS name, count(*) AS row_count, "
            f"coalesce(sum(('x' || substr(md5((to_jsonb(r) - '{{{skipped}}}'::text[])::text), 1, 15))::bit(60)::bigint"
            f"::numeric), 0) AS digest FROM \"{table}\" r"
        )
    return " UNION ALL ".join(parts)


Fingerprint = dict[str, tuple[int, int]]


async def fingerprint(database: Database) -> Fingerprint:
    """Every table's row count and content digest, but the tables a refusal is meant to write."""
    tables = await _tables(database)
    async with database.engine.connect() as connection:
        rows = await connection.execute(text(_fingerprint_sql(tables)))
        return {name: (count, int(digest)) for name, count, digest in rows}


def changes(before: Fingerprint, after: Fingerprint) -> list[str]:
    """The tables whose rows differ, in words (rows added or removed, or rows changed in place)."""
    found = []
    for table in sorted(before.keys() | after.keys()):
        (rows_before, digest_before), (rows_after, digest_after) = before.get(table, (0, 0)), after.get(table, (0, 0))
        if rows_before != rows_after:
            found.append(f"{table}: {rows_after - rows_before:+d} rows")
        elif digest_before != digest_after:
            found.append(f"{table}: rows changed")
    return found


@dataclass
class Watch:
    """The database before and after a block of hostile requests; `written` says what changed."""

    before: Fingerprint
    after: Fingerprint | None = None

    @property
    def written(self) -> list[str]:
        assert self.after is not None, "read `written` after the block"
        return [f"written: {change}" for change in changes(self.before, self.after)]


# --- the tally kept for the protocol ----------------------------------------------------------------------


@dataclass
class Tally:
    """What a suite tried, by kind, and every attack that got through, in words."""

    tried: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    fingerprints: int = 0
    tables: int = 0
    started: float = field(default_factory=time.monotonic)

    def attack(self, kind: str, found: Iterable[str] = (), *, count: int = 1) -> list[str]:
        """Count `count` attacks of `kind`; keep what got through (`found`) and return it for the test to assert."""
        found = list(found)
        self.tried[kind] += count
        self.violations.extend(f"{kind}: {problem}" for problem in found)
        return found

    @contextlib.asynccontextmanager
    async def watching(self, database: Database) -> AsyncIterator[Watch]:
        """Fingerprint the database around the block."""
        watch = Watch(before=await fingerprint(database))
        yield watch
        watch.after = await fingerprint(database)
        self.fingerprints += 2
        self.tables = len(watch.after)

    def figures(self, **more: Any) -> dict[str, Any]:
        return {
            "attacks": sum(self.tried.values()),
            **{kind.replace(" ", "_"): count for kind, count in sorted(self.tried.items())},
            "got_through": len(self.violations),
            "database_fingerprints": self.fingerprints,
            "tables_fingerprinted": self.tables,
            **more,
            "duration_s": round(time.monotonic() - self.started, 1),
        }


def tally_fixture(suite: str, *, title: str, requirements: list[str], method: str) -> Callable:
    """A module-scoped `tally` fixture that writes the suite's evidence when the module is done."""

    @pytest.fixture(scope="module")
    def tally(long_form: bool):
        kept = Tally()
        yield kept
        record(
            suite, title=title, requirements=requirements, method=method, form="long" if long_form else "short",
            figures=kept.figures(), violations=kept.violations,
        )

    return tally


# --- the app's routes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One route of the app as the attacks need it: method, full path template and FastAPI's route."""

    method: str
    path: str
    route: APIRoute

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def body_kind(self) -> str | None:
        """"json", "form" (urlencoded or multipart) or None (no body)."""
        body = self.route.body_field
        if body is None:
            return None
        return "form" if isinstance(body.field_info, fastapi.params.Form) else "json"

    @property
    def body_model(self) -> type[BaseModel] | None:
        """The pydantic model of a JSON body (`Model | None` counts as the model)."""
        if self.body_kind != "json":
            return None
        annotation = self.route.body_field.field_info.annotation
        for candidate in (annotation, *get_args(annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                return candidate
        return None

    @property
    def path_params(self) -> dict[str, Any]:
        return {p.name: p.field_info.annotation for p in self.route.dependant.path_params}

    @property
    def query_params(self) -> dict[str, Any]:
        return {p.alias: p.field_info.annotation for p in self.route.dependant.query_params}


def routes_of(app) -> list[Route]:
    """Every API and page route of the app (the documentation pages left out)."""
    found = []
    for context in fastapi.routing.iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path not in {"/docs", "/openapi.json", "/redoc",
                                                                 "/docs/oauth2-redirect"}:
            found.extend(Route(method, context.path, route) for method in sorted(route.methods))
    return found


def unknown_value(annotation: Any) -> str:
    """A path value of the annotation's type that passes validation and names nothing that exists."""
    types = (annotation, *get_args(annotation))
    if uuid.UUID in types:
        return str(uuid.uuid4())
    if int in types:
        return "2000000000"  # fits every id column, bigint or int; no test makes that many of anything
    if date in types:
        return "2031-03-03"
    return f"NOSUCH{uuid.uuid4().hex[:10].upper()}"


def path_with(route: Route, **given: Any) -> str:
    """The route's path with `given` ids and, for the rest, values that name nothing."""
    values = {name: given.get(name) or unknown_value(annotation) for name, annotation in route.path_params.items()}
    return route.path.format(**values)


# --- request models ---------------------------------------------------------------------------------------


def models_under(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model its fields hold, however deep (lists, unions, optionals)."""
    found: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
                for f in annotation.model_fields.values():
                    visit(f.annotation)
            return
        for argument in get_args(annotation):
            visit(argument)

    visit(model)
    return found


def integer_fields(model: type[BaseModel]) -> list[tuple[str, ...]]:
    """Paths (field names from the body's top) of every integer field of the body, nested models included."""
    found: list[tuple[str, ...]] = []

    def visit(current: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, f in current.model_fields.items():
            types = (f.annotation, *get_args(f.annotation))
            if int in types and bool not in types:
                found.append((*prefix, f.alias or name))
            for candidate in types:
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    visit(candidate, (*prefix, f.alias or name))

    visit(model, ())
    return found


def text_fields(model: type[BaseModel]) -> list[tuple[str, ...]]:
    """Paths of every text field of the body, nested models included."""
    found: list[tuple[str, ...]] = []

    def visit(current: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, f in current.model_fields.items():
            types = (f.annotation, *get_args(f.annotation))
            if str in types:
                found.append((*prefix, f.alias or name))
            for candidate in types:
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    visit(candidate, (*prefix, f.alias or name))

    visit(model, ())
    return found


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A body that sets only `path` to `value`."""
    body: Any = value
    for name in reversed(path):
        body = {name: body}
    return body


# --- checkers -----------------------------------------------------------------------------------------------


class _Markup(HTMLParser):
    """Collects what a browser would run or follow: script and style elements, event-handler attributes,
    and links, sources and form targets with a script scheme."""

    SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:text/html")
    LINKING = frozenset({"href", "src", "action", "formaction", "xlink:href", "srcdoc"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "iframe", "object", "embed"}:
            self.found.append(f"a <{tag}> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"an event handler {name}= on <{tag}>")
            scheme = "".join((value or "").split()).lower()
            if name in self.LINKING and scheme.startswith(self.SCRIPT_SCHEMES):
                self.found.append(f"a script link {name}={value!r} on <{tag}>")


def markup_findings(page: str, payloads: Iterable[str]) -> list[str]:
    """What in `page` would run as script: a payload present verbatim with its markup, a script element, an
    event handler or a script link. The pages carry no script of their own, so any is an injection."""
    found = [f"the payload {p!r} appears unescaped" for p in payloads if any(c in p for c in "<>\"'") and p in page]
    parser = _Markup()
    parser.feed(page)
    parser.close()
    return found + parser.found


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def formula_cells(rows: Iterable[list[str]]) -> list[str]:
    """Cells a spreadsheet would run as a formula: text starting with = + - @, a tab or a carriage return
    (numbers such as -5 excepted, though no export writes a negative number as text)."""
    found = []
    for number, row in enumerate(rows, start=1):
        for cell in row:
            if cell.startswith(FORMULA_PREFIXES) and not _is_number(cell):
                found.append(f"row {number}: the cell {cell!r} would run as a formula")
    return found


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# What a log reader takes for the end of a line, or a terminal for a command: raw in a line, any of these
# could forge a line or rewrite what an operator sees.
_LINE_BREAKERS = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)}


def forged_log_lines(lines: Iterable[str]) -> list[str]:
    """Lines that are not one JSON object on one line, or that carry a raw control character."""
    found = []
    for line in lines:
        if line.splitlines() != [line]:
            found.append(f"a log line breaks into {len(line.splitlines())} lines: {line[:120]!r}")
            continue
        raw = sorted({f"U+{ord(c):04X}" for c in line if c in _LINE_BREAKERS})
        if raw:
            found.append(f"a log line carries raw control characters {raw}: {line[:120]!r}")
        try:
            parsed = json.loads(line)
        except ValueError:
            found.append(f"a log line is not JSON: {line[:120]!r}")
            continue
        if not isinstance(parsed, dict):
            found.append(f"a log line is not one object: {line[:120]!r}")
    return found


# --- HTTP -------------------------------------------------------------------------------------------------


def answered(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """The answer, or a 599 stand-in when the server dropped the connection instead of answering (as it does
    after a request that failed with an unhandled error)."""
    import httpx

    try:
        return client.request(method, path, **kwargs)
    except httpx.TransportError as dropped:
        return httpx.Response(599, text=f"the connection was dropped: {dropped!r}")




def raw_request(base_url: str, request: bytes, *, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """Send bytes no HTTP client library would send (control characters in headers) and read the answer's status
    line and everything after it; status 0 when the server closed without answering."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as connection:
        connection.sendall(request)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := connection.recv(65_536):
                answer += chunk
                if b"\r\n\r\n" in answer and b"connection: close" in answer.lower():
                    break
    if not answer.startswith(b"HTTP/1.1 "):
        return 0, answer
    return int(answer[9:12]), answer


# --- people -----------------------------------------------------------------------------------------------


@dataclass
class Person:
    """A signed-in user made for an attack: its login, party and API client."""

    login: str
    user_id: uuid.UUID
    party_id: uuid.UUID | None
    client: Any


async def person(
    database: Database, settings: Settings, server_url: str, *, role: str, name: str | None = None,
) -> Person:
    """A new identified investor or issuer (a person or a legal entity named `name`), signed in."""
    kind = "person" if role == "investor" else "legal_entity"
    login = f"{role}-{uuid.uuid4().hex[:10]}"
    async with database.unit_of_work() as session:
        party = await parties.create_party(
            session, kind=kind, name=name or f"{role} {login}", identifier=new_identifier(kind=kind), resident=True,
            settings=settings,
        )
        await parties.decide_kyc(
            session, party_id=party.id, status="identified", level="full", method="in_person", reason="test user",
            actor="test", settings=settings,
        )
        user = await users.create_user(
            session, login=login, password=PASSWORD, roles=[role], party_id=party.id, actor="test", settings=settings
        )
    client = signed_in_client(server_url, sign_in(server_url, login))
    return Person(login, user.id, party.id, client)


async def events_of(database: Database, request_id: str) -> list[dict[str, Any]]:
    """The security events the request with `request_id` recorded."""
    async with database.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT kind, outcome, actor, subject FROM security_events WHERE request_id = :id ORDER BY seq"),
            {"id": request_id},
        )
        return [dict(row._mapping) for row in rows]
