"""The security-event log as a page over real HTTP (REQ-55): newest first, searched by kind, actor, outcome and
period, the hash chain's verification on top, and text an attacker typed shown as text, never as markup."""

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from dfa.platform.identity.service.parties import local_today
from tests.http import problem_slug
from tests.identity import sign_in
from tests.pages import PAGE_HEADERS, text_of

PAGE = "/compliance/security-events"
READERS = ("auditor", "compliance_officer")
SCRIPT_LOGIN = '<script>alert("owned")</script>'


@pytest.fixture
def auditor(users) -> httpx.Client:
    return users.client("auditor")


def seqs_of(page: httpx.Response) -> list[int]:
    return [int(seq) for seq in re.findall(r'<tr id="event-(\d+)">', page.text)]


def row_of(page: httpx.Response, seq: int) -> str:
    return re.search(rf'<tr id="event-{seq}">(.*?)</tr>', page.text, re.DOTALL)[1]


@pytest.mark.parametrize("role", READERS)
def test_staff_who_audit_see_sign_ins_newest_first_and_that_the_chain_verifies_REQ_55(role, users):
    reader = users[role]

    page = users.client(role).get(PAGE, params={"kind": "sign_in.succeeded", "actor": reader.login})

    assert page.status_code == 200, page.text
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    [seq] = seqs_of(page)
    assert f"sign_in.succeeded success {reader.login} {reader.login} 127.0.0.1 session" in text_of(page)
    verified = re.search(r"The chain verifies up to event (\d+): each of the (\d+) events", text_of(page))
    assert verified and int(verified[1]) >= seq and verified[1] == verified[2]
    everything = users.client(role).get(PAGE)
    assert seqs_of(everything) == sorted(seqs_of(everything), reverse=True)
    assert "<caption>" in everything.text and '<th scope="col"' in everything.text


def test_a_script_typed_as_a_login_is_shown_as_text(anonymous, auditor):
    refused = anonymous.post("/sign-in", data={"login": SCRIPT_LOGIN, "password": "whatever-it-is"})
    assert refused.status_code == 401

    page = auditor.get(PAGE, params={"kind": "sign_in.failed", "actor": SCRIPT_LOGIN})

    assert page.status_code == 200
    [seq] = seqs_of(page)[:1]
    row = row_of(page, seq)
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in row
    assert "<dt>reason</dt><dd>unknown_login</dd>" in row
    assert "<script" not in page.text


def test_details_are_key_and_value_text_with_markup_escaped(users, auditor, settings):
    day = local_today(settings) + timedelta(days=900)
    admin, once = users.client("operator_admin"), {"Idempotency-Key": str(uuid.uuid4())}
    declared = admin.put(f"/v1/calendar/days/{day}", json={"kind": "day_off", "reason": "<img src=x onerror=alert(1)>"},
                         headers=once)
    cleared = admin.delete(f"/v1/calendar/days/{day}", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert (declared.status_code, cleared.status_code) == (200, 204)

    page = auditor.get(PAGE, params={"kind": "calendar.", "subject": day.isoformat()})

    clearing, declaring = seqs_of(page)
    assert "<dt>reason</dt><dd>&lt;img src=x onerror=alert(1)&gt;</dd>" in row_of(page, declaring)
    assert "<dt>previous</dt><dd>null</dd>" in row_of(page, declaring)
    assert "&#34;kind&#34;: &#34;day_off&#34;" in row_of(page, clearing), "a nested value is shown as JSON text"
    assert "<img" not in page.text


def test_the_search_narrows_by_kind_family_outcome_and_period(anonymous, server_url, auditor, settings):
    login = f"nobody-{uuid.uuid4().hex[:8]}"
    sign_in(server_url, login, password="not-a-password")
    today, yesterday = local_today(settings), local_today(settings) - timedelta(days=1)

    failures = auditor.get(PAGE, params={"kind": "sign_in.", "outcome": "failure", "actor": login})
    today_only = auditor.get(PAGE, params={"actor": login, "from": today.isoformat(), "to": today.isoformat()})
    until_yesterday = auditor.get(PAGE, params={"actor": login, "to": yesterday.isoformat()})

    assert len(seqs_of(failures)) == 1 and "sign_in.failed failure" in text_of(failures)
    assert seqs_of(today_only) == seqs_of(failures)
    assert seqs_of(until_yesterday) == [] and "No event matches the search." in until_yesterday.text
    assert 'value="failure" selected' in failures.text and f'value="{login}"' in failures.text


def test_an_unreadable_filter_is_refused_beside_its_field(auditor, settings):
    today = local_today(settings)

    unreadable = auditor.get(PAGE, params={"from": "2026-13-01"})
    backwards = auditor.get(PAGE, params={"from": today.isoformat(), "to": (today - timedelta(days=3)).isoformat()})
    unknown = auditor.get(PAGE, params={"outcome": "maybe"})

    assert unreadable.status_code == 422 and 'id="from-error">Enter the date as YYYY-MM-DD.' in unreadable.text
    assert 'value="2026-13-01" aria-describedby="from-error" aria-invalid="true"' in unreadable.text
    assert backwards.status_code == 422 and 'id="to-error">The period ends before it starts.' in backwards.text
    assert unknown.status_code == 422 and 'id="outcome-error">Choose an outcome from the list.' in unknown.text
    assert all(seqs_of(page) == [] for page in (unreadable, backwards, unknown))


def test_the_log_pages_back_keeping_the_search(server_url, auditor, settings):
    login = f"nobody-{uuid.uuid4().hex[:8]}"
    for _ in range(settings.page_size_default + 1):
        sign_in(server_url, login, password="not-a-password")

    newest = auditor.get(PAGE, params={"actor": login})
    older_link = re.search(r'<a href="([^"]+)" rel="next">Older events</a>', newest.text)
    older = auditor.get(older_link[1].replace("&amp;", "&"))

    assert len(seqs_of(newest)) == settings.page_size_default
    assert f"actor={login}" in older_link[1] and f"before={seqs_of(newest)[-1]}" in older_link[1]
    assert len(seqs_of(older)) == 1 and seqs_of(older)[0] < seqs_of(newest)[-1]
    assert f'href="{PAGE}?actor={login}">Newest events</a>' in older.text
    assert "Older events" not in older.text


async def test_an_altered_event_shows_where_the_chain_breaks_REQ_55(server_url, auditor, database):
    login = f"nobody-{uuid.uuid4().hex[:8]}"
    sign_in(server_url, login, password="not-a-password")
    [seq] = seqs_of(auditor.get(PAGE, params={"actor": login}))

    async def set_subject(subject: str) -> None:
        # What an intruder with the database owner's rights could do; the hashes must still tell.
        async with database.unit_of_work() as session:
            await session.execute(text("ALTER TABLE security_events DISABLE TRIGGER security_events_append_only"))
            await session.execute(
                text("UPDATE security_events SET subject = :s WHERE seq = :q"), {"s": subject, "q": seq}
            )
            await session.execute(text("ALTER TABLE security_events ENABLE TRIGGER security_events_append_only"))

    await set_subject("someone-else")
    try:
        page = auditor.get(PAGE)
    finally:
        await set_subject(login)

    assert page.status_code == 200
    assert "The chain does not verify" in text_of(page)
    assert f"event {seq}: its content does not match its hash (altered)" in text_of(page)
    assert "The chain verifies" in text_of(auditor.get(PAGE))


@pytest.mark.parametrize("role", ["investor", "issuer", "operator_admin"])
def test_others_are_turned_away(role, users):
    page = users.client(role).get(PAGE)

    assert (page.status_code, problem_slug(page)) == (403, "forbidden")
