"""Requests forged from another site are refused and recorded; sessions cannot be fixed, and end on the server
(REQ-54, REQ-55).

Every change a cabinet session can make, on the API and in the cabinet's forms, is sent as another site would
make a browser send it: with the session cookie and without the session's CSRF token (or with another
session's), from a foreign `Origin`. Each must be refused with 403, recorded as a `csrf.rejected` security
event, and change no row. The public forms (sign-in, recovery) refuse a foreign origin, so nobody can sign a
visitor in to an account of theirs. A session cookie chosen before sign-in (by an attacker who planted it)
never becomes the session after it, and signing out ends the session on the server, not only in the browser.
What was tried and anything that got through is kept for the protocol (suite `sessions-and-forgery`).
"""

import uuid

import httpx
import pytest
from sqlalchemy import text

from dfa.platform.identity.crypto import token_digest
from tests.attack.hostile import events_of, path_with, routes_of, tally_fixture
from tests.identity import PASSWORD, SESSION_COOKIE, cookie_of
from tests.pages import csrf_token_of
from tests.platform.test_authorization_matrix import ADMIN, INVESTOR, POLICY, PUBLIC, SIGN_OUTS, admitted_caller

pytestmark = pytest.mark.attack

PROBLEM = "application/problem+json"
ELSEWHERE = "https://evil.example"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The public forms a browser posts without a session: refused by their Origin.
PUBLIC_FORMS = ("/sign-in", "/sign-in/second-factor", "/recovery", "/recovery/completion")

tally = tally_fixture(
    "sessions-and-forgery",
    title="Forged cross-site requests are refused and recorded; sessions cannot be fixed and end on the server",
    requirements=["REQ-54", "REQ-55"],
    method="Every change a signed-in session can make, on the API and in the cabinet, was sent with the session "
    "cookie from a foreign Origin without the session's CSRF token or with another session's, and the public forms "
    "were posted from a foreign Origin; each had to be refused with 403, recorded as a security event and change "
    "no database row. Sessions were attacked by planting a chosen cookie before sign-in and by reusing one after "
    "sign-out.",
)


def _forged(client: httpx.Client, method: str, path: str, *, token: str | None) -> httpx.Response:
    """The request another site's page makes the visitor's browser send: the cookie goes along, the token
    does not (or is one the attacker has of their own)."""
    headers = {"Cookie": client.headers["Cookie"], "Origin": ELSEWHERE, "Idempotency-Key": str(uuid.uuid4())}
    if token is not None:
        headers["X-CSRF-Token"] = token
    with httpx.Client(base_url=str(client.base_url), timeout=30) as browser:
        return browser.request(method, path, headers=headers, data={"comment": "forged"})


async def _recorded(database, response: httpx.Response, *, kind: str = "csrf.rejected") -> list[str]:
    events = await events_of(database, response.headers["x-request-id"])
    if not any(e["kind"] == kind and e["outcome"] == "denied" for e in events):
        return [f"no {kind} event was recorded (found {[e['kind'] for e in events]})"]
    return []


async def forgery_let_through(database, answer: httpx.Response) -> list[str]:
    """Nothing when a forged request was refused as one (403 `csrf-token-invalid`) and recorded."""
    if (answer.status_code, answer.headers.get("content-type")) != (403, PROBLEM) or (
        answer.json().get("type") != "/problems/csrf-token-invalid"
    ):
        return [f"answered {answer.status_code}: {answer.text[:160]}"]
    return await _recorded(database, answer)


async def test_every_change_forged_from_another_site_is_refused_recorded_and_writes_nothing(
    app, users, database, long_form, tally
):
    """REQ-54, REQ-55: every mutating API route and cabinet form a session may use (as one role it admits; in the
    long form as every one), sent with the session cookie from a foreign Origin without the CSRF token, or with
    another session's token, is refused with 403 `csrf-token-invalid`; each refusal is a `csrf.rejected` security
    event and no row changes (a forged sign-out does not end the session either)."""
    attacker_token = users.client("other_investor").headers["X-CSRF-Token"]
    routes = [r for r in routes_of(app) if r.method in MUTATING and POLICY[r.key] != PUBLIC]
    found, sent = [], 0
    for route in routes:
        roles = sorted(POLICY[route.key]) if long_form else [admitted_caller(route.key)]
        async with tally.watching(database) as watch:
            answers = [(role, _forged(users.client(role), route.method, path_with(route), token=token))
                       for role in roles for token in (None, attacker_token)]
        sent += len(answers)
        for role, answer in answers:
            let_through = await forgery_let_through(database, answer)
            found += [f"{route.method} {route.path} as {role}: {p}" for p in let_through]
        found += [f"{route.method} {route.path}: {p}" for p in watch.written]
    alive = [role for role in (ADMIN, INVESTOR) if users.client(role).get("/v1/me").status_code != 200]
    found += [f"the {role}'s session ended after forged sign-outs" for role in alive]

    tally.attack("forged changes", found, count=sent)

    assert len(routes) > 90
    assert set(SIGN_OUTS) <= {r.key for r in routes}
    assert found == [], "\n".join(found)


async def test_the_forgery_check_flags_a_change_that_carried_the_sessions_own_token(users, database):
    """REQ-55: the same check reports a change let through: the session's own token, which only the cabinet's pages
    hold, stands in for a platform that would not check it (a too-short new password keeps it harmless)."""
    client = users.client(INVESTOR)

    let_through = _forged(client, "POST", "/v1/auth/password", token=client.headers["X-CSRF-Token"])
    found = await forgery_let_through(database, let_through)

    assert let_through.status_code == 422 and found and found[0].startswith("answered 422")


@pytest.mark.parametrize("origin", [ELSEWHERE, "null", "http://127.0.0.1.evil.example"])
async def test_a_public_form_posted_from_another_origin_is_refused_and_recorded(
    origin, users, database, server_url, tally
):
    """REQ-54, REQ-55: sign-in, second-factor enrolment and password recovery forms posted from another origin
    (another site, a sandboxed frame's `null`, a look-alike host) are refused with 403 and recorded, even with
    the right password: nobody can sign a visitor in to an account of theirs. No row changes."""
    forms = {
        "/sign-in": {"login": users[INVESTOR].login, "password": PASSWORD},
        "/sign-in/second-factor": {"enrolment_token": "forged", "one_time_code": "000000"},
        "/recovery": {"login": users[INVESTOR].login, "identifier": "900101300001"},
        "/recovery/completion": {"recovery_token": "forged", "new_password": PASSWORD, "new_password_again": PASSWORD},
    }
    found = []
    with httpx.Client(base_url=server_url, timeout=30, headers={"Origin": origin}) as browser:
        async with tally.watching(database) as watch:
            answers = {path: browser.post(path, data=form) for path, form in forms.items()}
    for path, answer in answers.items():
        problems = [] if answer.status_code == 403 else [f"answered {answer.status_code}"]
        problems += [f"set a session cookie: {h}" for h in answer.headers.get_list("set-cookie") if SESSION_COOKIE in h]
        problems += await _recorded(database, answer) if answer.status_code == 403 else []
        found += [f"{path} from {origin}: {p}" for p in problems]
    found += watch.written

    tally.attack("forged public forms", found, count=len(forms))

    assert found == [], "\n".join(found)


async def test_a_sign_in_sent_cross_site_as_plain_text_signs_nobody_in(users, server_url, database, tally):
    """REQ-54: the one way another site's page can post JSON without the browser asking first is as
    `text/plain`; the API reads bodies only as JSON, so such a sign-in, with the right password, signs nobody
    in and writes nothing."""
    body = f'{{"login": "{users[INVESTOR].login}", "password": "{PASSWORD}"}}'
    with httpx.Client(base_url=server_url, timeout=30) as browser:
        async with tally.watching(database) as watch:
            answer = browser.post("/v1/auth/sign-in", content=body,
                                  headers={"Content-Type": "text/plain", "Origin": ELSEWHERE})
    found = [] if 400 <= answer.status_code < 500 else [f"answered {answer.status_code}"]
    found += [f"set a session cookie: {h}" for h in answer.headers.get_list("set-cookie") if SESSION_COOKIE in h]
    found += watch.written

    tally.attack("forged public forms", found)

    assert found == []


# --- sessions -------------------------------------------------------------------------------------------------


async def _session_row(database, token: str) -> dict | None:
    async with database.engine.connect() as connection:
        row = (await connection.execute(
            text("SELECT user_id, revoked_at FROM user_sessions WHERE token_hash = :digest"),
            {"digest": token_digest(token)},
        )).first()
    return dict(row._mapping) if row else None


def _cookie_attributes(response: httpx.Response) -> set[str]:
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}="))
    return {part.strip().lower() for part in header.split(";")[1:]}


async def test_a_session_cookie_chosen_before_sign_in_never_becomes_the_session(users, server_url, database, tally):
    """REQ-54: a cookie planted before sign-in, whether a value the attacker made up or the attacker's own live
    session, is replaced at sign-in (API and cabinet) by a new random one; the made-up value never becomes valid
    and the planted session stays the attacker's, never the victim's. The cookie is HttpOnly, Secure and
    SameSite=Strict, and only its digest is kept."""
    victim = users[INVESTOR].login
    attackers_own = cookie_of_client(users.client("other_investor"))
    found = []
    for planted in (f"fixed-{uuid.uuid4().hex}", attackers_own):
        jar = {"Cookie": f"{SESSION_COOKIE}={planted}"}
        with httpx.Client(base_url=server_url, timeout=30, headers=jar) as browser:
            by_form = browser.post("/sign-in", data={"login": victim, "password": PASSWORD})
            by_api = browser.post("/v1/auth/sign-in", json={"login": victim, "password": PASSWORD})
        for how, answer in (("the cabinet", by_form), ("the API", by_api)):
            if answer.status_code not in (200, 303):
                found.append(f"{how}: the sign-in was answered {answer.status_code}")
                continue
            issued = cookie_of(answer)
            if issued == planted:
                found.append(f"{how}: the planted cookie was kept as the session")
            if not {"httponly", "secure", "samesite=strict", "path=/"} <= _cookie_attributes(answer):
                found.append(f"{how}: the cookie lacks a protection: {_cookie_attributes(answer)}")
            row = await _session_row(database, issued)
            if row is None or await _raw_token_kept(database, issued):
                found.append(f"{how}: the session is not kept by its digest alone")
        with httpx.Client(base_url=server_url, timeout=30, headers=jar) as browser:
            me = browser.get("/v1/me")
        if planted == attackers_own:
            if me.status_code != 200 or me.json()["user"]["login"] != users["other_investor"].login:
                found.append(f"the attacker's planted session now answers {me.status_code} {me.text[:80]}")
        elif me.status_code != 401 or await _session_row(database, planted) is not None:
            found.append(f"the made-up cookie became valid: {me.status_code}")

    tally.attack("session fixation", found, count=4)

    assert found == [], "\n".join(found)


def cookie_of_client(client: httpx.Client) -> str:
    return client.headers["Cookie"].removeprefix(f"{SESSION_COOKIE}=")


async def _raw_token_kept(database, token: str) -> bool:
    async with database.engine.connect() as connection:
        found = await connection.execute(
            text("SELECT count(*) FROM user_sessions WHERE token_hash = :raw"), {"raw": token.encode()}
        )
        return found.scalar_one() > 0


@pytest.mark.parametrize("where", ["api", "cabinet"])
async def test_signing_out_ends_the_session_on_the_server(where, users, server_url, database, tally):
    """REQ-54: after signing out (`POST /v1/auth/sign-out`, or the cabinet's sign-out form) the old cookie, replayed
    by whoever kept a copy, is no longer a session: the server marked it ended, not only the browser."""
    with httpx.Client(base_url=server_url, timeout=30) as browser:
        signed_in = browser.post("/v1/auth/sign-in", json={"login": users[INVESTOR].login, "password": PASSWORD})
    token = cookie_of(signed_in)
    headers = {"Cookie": f"{SESSION_COOKIE}={token}"}
    with httpx.Client(base_url=server_url, timeout=30, headers=headers) as browser:
        if where == "api":
            out = browser.post("/v1/auth/sign-out", headers={"X-CSRF-Token": signed_in.json()["csrf_token"]})
        else:
            out = browser.post("/sign-out", data={"csrf_token": csrf_token_of(browser.get("/account"))})
        replayed = browser.get("/v1/me")
        page = browser.get("/portfolio", headers={"Accept": "text/html"})
    row = await _session_row(database, token)
    found = [] if out.status_code in (200, 204, 303) else [f"the sign-out was answered {out.status_code}"]
    found += [] if replayed.status_code == 401 else [f"the old cookie still answers {replayed.status_code}"]
    found += [] if page.status_code == 303 else [f"the old cookie still opens a page: {page.status_code}"]
    found += [] if row is not None and row["revoked_at"] is not None else ["the session is not ended on the server"]
    if where == "cabinet" and not any(h.startswith(f'{SESSION_COOKIE}=""') or "max-age=0" in h.lower()
                                      for h in out.headers.get_list("set-cookie")):
        found.append("the cabinet did not clear the cookie")

    tally.attack("replay after sign-out", found)

    assert found == [], "\n".join(found)
