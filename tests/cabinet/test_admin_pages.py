"""The operator administrator's pages over real HTTP: the unmatched bank-statement lines credited to their client
or returned to their payer, the users' roles and standing, and the business-day calendar's declared days; all
with forms that post/redirect/get, show a refusal beside its field and change nothing then, and need the
session's CSRF token."""

import html
import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest

from dfa.platform.calendar import service as calendar
from dfa.platform.identity.service.parties import local_today
from tests.http import problem_slug
from tests.identity import create_user, sign_in
from tests.pages import PAGE_HEADERS, csrf_token_of, text_of
from tests.settlement.test_cash_api import Money

ADMIN_PAGES = ("/admin/bank-lines", "/admin/users", "/admin/calendar")
SATURDAY, MONDAY = 5, 0


@pytest.fixture
def admin_form(server_url, users) -> Iterator[httpx.Client]:
    """An administrator's browser: the session cookie only; the CSRF token comes from the page's form."""
    cookie = users.client("operator_admin").headers["Cookie"]
    with httpx.Client(base_url=server_url, timeout=30, headers={"Cookie": cookie}) as client:
        yield client


@pytest.fixture
def money(users, app, settings) -> Money:
    return Money(users, app.state.bank, settings)


def unmatched_line(money: Money, amount_tiyn: int, details: str) -> dict:
    """A deposit quoting no payment reference, imported from the bank: a line of the unmatched queue."""
    entry = money.pay_in(amount_tiyn, details)
    money.fetch()
    queue = money.users.client("auditor").get(
        "/v1/bank-statement-lines", params={"status": "unmatched", "limit": 500}
    ).json()
    [line] = [line for line in queue if line["entry_reference"] == entry]
    return line


def line_of(users, line_id: int) -> dict:
    listed = users.client("auditor").get("/v1/bank-statement-lines", params={"after": line_id - 1, "limit": 1}).json()
    return listed[0]


def row_of(page: httpx.Response, row_id: str) -> str:
    return re.search(rf'<tr id="{row_id}">(.*?)</tr>', page.text, re.DOTALL)[1]


def row_text(page: httpx.Response, row_id: str) -> str:
    """The row's text as its reader reads it."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row_of(page, row_id))).split())


def security_events(users, kind: str, subject: str) -> list[dict]:
    return users.client("auditor").get("/v1/security-events", params={"kind": kind, "subject": subject}).json()


# Bank-statement lines


def test_the_queue_shows_each_unmatched_deposit_with_its_payer_details_and_statement(money, users, admin_form):
    line = unmatched_line(money, 1_234_56, "for my nephew <Dana>")

    page = admin_form.get("/admin/bank-lines")

    assert page.status_code == 200, page.text
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    row = row_of(page, f"line-{line['id']}")
    assert "1,234.56" in row and "Erlan Asanov" in row and line["counterparty_iban"] in row
    assert "for my nephew &lt;Dana&gt;" in row
    assert "no client&#39;s payment reference" in row
    assert f'action="/admin/bank-lines/{line["id"]}/assignment"' in row
    assert f'action="/admin/bank-lines/{line["id"]}/return"' in row
    assert f'<label for="assign-{line["id"]}-party">' in row
    assert "<caption>" in page.text and '<th scope="col">' in page.text


@pytest.mark.parametrize("role", ["compliance_officer", "auditor"])
def test_other_staff_read_the_queue_without_any_form(role, money, users):
    line = unmatched_line(money, 10_00, "no reference at all")

    page = users.client(role).get("/admin/bank-lines")

    assert page.status_code == 200
    assert f'id="line-{line["id"]}"' in page.text and "<form method" not in page.text.split("</header>")[1]


def test_a_deposit_credited_to_an_investor_from_the_page_credits_them_and_leaves_the_queue(money, users, admin_form):
    line = unmatched_line(money, 2_500_00, "Dana top-up, forgot the code")
    investor = users["investor"]
    before = money.balances("investor")["available"]
    token = csrf_token_of(admin_form.get("/admin/bank-lines"))

    answer = admin_form.post(f"/admin/bank-lines/{line['id']}/assignment", data={
        "csrf_token": token, "party_id": str(investor.party_id), "note": "payer's letter of 3 May",
    })

    assert (answer.status_code, answer.headers["location"]) == (303, "/admin/bank-lines")
    assert f'id="line-{line["id"]}"' not in admin_form.get("/admin/bank-lines").text
    assert money.balances("investor")["available"] == before + 2_500_00
    assigned = line_of(users, line["id"])
    assert (assigned["status"], assigned["party_id"], assigned["note"]) == (
        "assigned", str(investor.party_id), "payer's letter of 3 May"
    )
    row = row_of(admin_form.get("/admin/bank-lines", params={"status": "assigned"}), f"line-{line['id']}")
    assert str(investor.party_id) in row and f"by {users['operator_admin'].login}" in row
    assert security_events(users, "bank_statement_line.assigned", str(line["id"]))


def test_a_party_id_that_names_no_client_is_refused_beside_the_field_and_nothing_changes(money, users, admin_form):
    line = unmatched_line(money, 77_00, "who am I")
    token = csrf_token_of(admin_form.get("/admin/bank-lines"))
    assign = f"/admin/bank-lines/{line['id']}/assignment"
    field = f"assign-{line['id']}-party"

    unknown = admin_form.post(assign, data={"csrf_token": token, "party_id": str(uuid.uuid4()), "note": "a letter"})
    unreadable = admin_form.post(assign, data={"csrf_token": token, "party_id": "DFA12345", "note": "a letter"})
    without_note = admin_form.post(assign, data={
        "csrf_token": token, "party_id": str(users["investor"].party_id), "note": "  ",
    })

    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")
    assert f'id="{field}-error"' in row_of(unknown, f"line-{line['id']}") and "does not exist" in text_of(unknown)
    assert "Nothing was changed" in unknown.text
    assert unreadable.status_code == 422
    row = row_of(unreadable, f"line-{line['id']}")
    assert 'aria-invalid="true"' in row and 'value="DFA12345"' in row and "Enter the client&#39;s party id." in row
    assert without_note.status_code == 422
    assert f'id="assign-{line["id"]}-note-error"' in row_of(without_note, f"line-{line['id']}")
    assert line_of(users, line["id"])["status"] == "unmatched"


def test_a_line_returned_to_its_payer_is_recorded_as_returned_with_the_note(money, users, admin_form):
    line = unmatched_line(money, 99_00, "wrong beneficiary")
    token = csrf_token_of(admin_form.get("/admin/bank-lines"))

    blank = admin_form.post(f"/admin/bank-lines/{line['id']}/return", data={"csrf_token": token, "note": ""})
    answer = admin_form.post(f"/admin/bank-lines/{line['id']}/return", data={
        "csrf_token": token, "note": "returned by payment order 118",
    })

    assert blank.status_code == 422 and f'id="return-{line["id"]}-note-error"' in blank.text
    assert (answer.status_code, answer.headers["location"]) == (303, "/admin/bank-lines")
    returned = line_of(users, line["id"])
    assert (returned["status"], returned["note"], returned["resolved_by"]) == (
        "returned", "returned by payment order 118", users["operator_admin"].login
    )
    listed = admin_form.get("/admin/bank-lines", params={"status": "returned"})
    assert "returned by payment order 118" in row_text(listed, f"line-{line['id']}")
    assert security_events(users, "bank_statement_line.returned", str(line["id"]))


def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(money, users, admin_form):
    line = unmatched_line(money, 5_00, "forged")

    forged = admin_form.post(f"/admin/bank-lines/{line['id']}/return", data={"note": "from elsewhere"})
    wrong = admin_form.post(f"/admin/bank-lines/{line['id']}/assignment", data={
        "csrf_token": "x" * 43, "party_id": str(users["investor"].party_id), "note": "from elsewhere",
    })

    assert [(r.status_code, problem_slug(r)) for r in (forged, wrong)] == [(403, "csrf-token-invalid")] * 2
    assert line_of(users, line["id"])["status"] == "unmatched"


def test_resolving_a_line_that_does_not_exist_is_not_found(users):
    admin = users.client("operator_admin")

    answer = admin.post("/admin/bank-lines/9000000000/return", data={"note": "returned"})

    assert (answer.status_code, problem_slug(answer)) == (404, "bank-statement-line-not-found")


def test_a_status_without_lines_says_so(users):
    page = users.client("operator_admin").get("/admin/bank-lines", params={"status": "withdrawal"})

    assert page.status_code == 200
    assert '<p class="empty">No lines in status withdrawal.</p>' in page.text


# Users


def test_the_users_page_lists_users_with_their_roles_and_status_and_nothing_secret(users):
    admin, investor = users["operator_admin"], users["investor"]

    page = users.client("auditor").get("/admin/users")

    assert page.status_code == 200, page.text
    assert row_text(page, f"user-{admin.user_id}").startswith(f"{admin.login} operator admin active")
    assert f'href="/admin/users/{investor.user_id}"' in page.text
    detail = users.client("auditor").get(f"/admin/users/{investor.user_id}")
    assert detail.status_code == 200 and f"investor {investor.login}" in text_of(detail)
    assert "<form method" not in detail.text.split("</header>")[1], "auditors read, administrators act"
    assert "argon2" not in detail.text and "totp" not in detail.text.lower()


async def test_an_admin_changes_a_users_roles_and_it_is_recorded(users, admin_form, database, settings):
    login, user_id, _, _ = await create_user(database, settings, role="compliance_officer")
    token = csrf_token_of(admin_form.get(f"/admin/users/{user_id}"))

    answer = admin_form.post(f"/admin/users/{user_id}/roles", data={"csrf_token": token, "roles": ["auditor"]})

    assert (answer.status_code, answer.headers["location"]) == (303, f"/admin/users/{user_id}#roles")
    assert users.client("auditor").get(f"/v1/users/{user_id}").json()["roles"] == ["auditor"]
    [event] = security_events(users, "role.changed", login)
    assert (event["actor"], event["details"]) == (
        users["operator_admin"].login, {"from": ["compliance_officer"], "to": ["auditor"]}
    )
    page = admin_form.get(f"/admin/users/{user_id}")
    assert 'value="auditor" checked' in page.text and 'value="compliance_officer" checked' not in page.text


def test_an_admin_cannot_take_their_own_admin_role_and_the_reason_shows_beside_the_roles(users, admin_form):
    admin = users["operator_admin"]
    token = csrf_token_of(admin_form.get(f"/admin/users/{admin.user_id}"))

    own = admin_form.post(f"/admin/users/{admin.user_id}/roles", data={"csrf_token": token, "roles": ["auditor"]})
    none = admin_form.post(f"/admin/users/{admin.user_id}/roles", data={"csrf_token": token})

    assert own.status_code == 422 and "Nothing was changed" in own.text
    assert 'id="roles-error">an administrator cannot remove their own administrator role' in own.text
    assert 'value="auditor" checked' in own.text, "the roles chosen stay chosen"
    assert none.status_code == 422 and "Choose one or more of the roles listed." in none.text
    assert users.client("auditor").get(f"/v1/users/{admin.user_id}").json()["roles"] == ["operator_admin"]


async def test_an_admin_unlocks_a_user_locked_out_after_failed_sign_ins(
    users, admin_form, server_url, database, settings
):
    login, user_id, _, _ = await create_user(database, settings, role="investor")
    for _ in range(settings.sign_in_max_failures):
        assert sign_in(server_url, login, password="not-the-password").status_code == 401
    page = admin_form.get(f"/admin/users/{user_id}")
    assert "locked until" in text_of(page)

    answer = admin_form.post(f"/admin/users/{user_id}/unlock", data={"csrf_token": csrf_token_of(page)})

    assert (answer.status_code, answer.headers["location"]) == (303, f"/admin/users/{user_id}#standing")
    assert users.client("auditor").get(f"/v1/users/{user_id}").json()["locked_until"] is None
    assert sign_in(server_url, login).status_code == 200
    assert security_events(users, "user.unlocked", login)


async def test_an_admin_disables_and_enables_a_user_but_not_themselves(
    users, admin_form, server_url, database, settings
):
    login, user_id, _, _ = await create_user(database, settings, role="investor")
    admin = users["operator_admin"]
    token = csrf_token_of(admin_form.get(f"/admin/users/{user_id}"))

    disabled = admin_form.post(f"/admin/users/{user_id}/disable", data={"csrf_token": token})
    refused_sign_in = sign_in(server_url, login)
    enabled = admin_form.post(f"/admin/users/{user_id}/enable", data={"csrf_token": token})
    themselves = admin_form.post(f"/admin/users/{admin.user_id}/disable", data={"csrf_token": token})

    assert [r.status_code for r in (disabled, refused_sign_in, enabled)] == [303, 401, 303]
    assert users.client("auditor").get(f"/v1/users/{user_id}").json()["status"] == "active"
    assert themselves.status_code == 422
    assert '<p class="field-error" id="standing-error">you cannot disable yourself</p>' in themselves.text
    assert users.client("auditor").get(f"/v1/users/{admin.user_id}").json()["status"] == "active"


def test_a_user_that_does_not_exist_is_not_found(users):
    admin = users.client("operator_admin")

    page = admin.get(f"/admin/users/{uuid.uuid4()}")
    unlock = admin.post(f"/admin/users/{uuid.uuid4()}/unlock")

    assert [(r.status_code, problem_slug(r)) for r in (page, unlock)] == [(404, "user-not-found")] * 2


# The business-day calendar


async def _plain_days(database, settings, year: int) -> tuple[date, date]:
    """A Saturday that is a day off and a Monday that is a business day, neither a holiday nor declared."""
    async with database.read() as session:
        days = await calendar.list_days(session, settings=settings, start=date(year, 3, 1), end=date(year, 11, 30))
    plain = [d for d in days if d.holiday_name is None and d.override is None]
    saturday = next(d.day for d in plain if d.day.weekday() == SATURDAY and not d.is_business_day)
    monday = next(d.day for d in plain if d.day.weekday() == MONDAY and d.is_business_day)
    return saturday, monday


async def _is_business_day(database, settings, day: date) -> bool:
    async with database.read() as session:
        return (await calendar.load_calendar(session, settings=settings)).is_business_day(day)


async def test_a_saturday_worked_and_a_monday_off_show_in_the_calendar_and_move_business_days(
    users, admin_form, database, settings
):
    """A government day transfer: the Saturday becomes a business day, the Monday it frees does not."""
    year = local_today(settings).year + 2
    saturday, monday = await _plain_days(database, settings, year)
    token = csrf_token_of(admin_form.get("/admin/calendar", params={"year": year}))

    worked = admin_form.post("/admin/calendar/days", data={
        "csrf_token": token, "day": saturday.isoformat(), "kind": "working", "reason": "Decree No. 12 on day transfers",
    })
    freed = admin_form.post("/admin/calendar/days", data={
        "csrf_token": token, "day": monday.isoformat(), "kind": "day_off", "reason": "Decree No. 12 on day transfers",
    })

    assert (worked.status_code, worked.headers["location"]) == (303, f"/admin/calendar?year={year}#day-{saturday}")
    assert freed.status_code == 303
    page = admin_form.get("/admin/calendar", params={"year": year})
    assert "Saturday yes — working: Decree No. 12 on day transfers" in row_text(page, f"day-{saturday}")
    assert "Monday no — day off: Decree No. 12 on day transfers" in row_text(page, f"day-{monday}")
    assert await _is_business_day(database, settings, saturday)
    assert not await _is_business_day(database, settings, monday)

    for day in (saturday, monday):
        removed = admin_form.post(f"/admin/calendar/days/{day}/removal", data={"csrf_token": token})
        assert (removed.status_code, removed.headers["location"]) == (303, f"/admin/calendar?year={year}")
    assert not await _is_business_day(database, settings, saturday)
    assert await _is_business_day(database, settings, monday)
    assert f'id="day-{saturday}"' not in admin_form.get("/admin/calendar", params={"year": year}).text
    assert security_events(users, "calendar.day_cleared", monday.isoformat())


async def test_an_invalid_or_past_date_or_a_missing_reason_is_refused_beside_its_field(admin_form, database, settings):
    page = admin_form.get("/admin/calendar")
    token = csrf_token_of(page)
    declare = {"csrf_token": token, "kind": "day_off", "reason": "Decree No. 7"}
    before = page.text.count("<tr id=")

    invalid = admin_form.post("/admin/calendar/days", data={**declare, "day": "2031-02-30"})
    past = admin_form.post("/admin/calendar/days", data={**declare, "day": "2001-03-05"})
    no_reason = admin_form.post("/admin/calendar/days", data={**declare, "day": "2031-03-05", "reason": " "})

    assert invalid.status_code == 422 and 'id="day-error">Enter the date as YYYY-MM-DD.' in invalid.text
    assert 'value="2031-02-30"' in invalid.text and 'value="Decree No. 7"' in invalid.text, "what was typed stays"
    assert past.status_code == 422 and 'id="day-error">2001-03-05 has passed' in past.text
    assert no_reason.status_code == 422 and 'id="reason-error">give the reason' in no_reason.text
    assert await _is_business_day(database, settings, date(2031, 3, 5))
    assert admin_form.get("/admin/calendar").text.count("<tr id=") == before


def test_the_calendar_lists_the_years_public_holidays(users):
    page = users.client("compliance_officer").get("/admin/calendar", params={"year": 2030})

    assert page.status_code == 200
    assert "New Year" in row_of(page, "day-2030-01-01") and "<form" not in page.text.split("</header>")[1]
    assert re.search(r"\d{3} business days in 2030", text_of(page))


def test_a_day_never_declared_has_nothing_to_remove_and_a_past_day_stays_as_it_was(users, settings):
    admin = users.client("operator_admin")
    later = local_today(settings) + timedelta(days=400)

    never_declared = admin.post(f"/admin/calendar/days/{later}/removal")
    past = admin.post("/admin/calendar/days/2001-01-01/removal")

    assert (never_declared.status_code, problem_slug(never_declared)) == (404, "calendar-override-not-found")
    assert past.status_code == 422 and past.headers["content-type"].startswith("text/html")
    assert 'id="remove-2001-01-01-error">2001-01-01 has passed' in past.text


# Who may open what


@pytest.mark.parametrize("role", ["investor", "issuer"])
@pytest.mark.parametrize("path", [*ADMIN_PAGES, "/admin/users/{user}"])
def test_investors_and_issuers_are_turned_away_from_every_admin_page(role, path, users):
    page = users.client(role).get(path.format(user=users[role].user_id))

    assert (page.status_code, problem_slug(page)) == (403, "forbidden")


def test_compliance_officers_do_not_see_users(users):
    assert users.client("compliance_officer").get("/admin/users").status_code == 403


@pytest.mark.parametrize("role", ["auditor", "compliance_officer"])
@pytest.mark.parametrize("path", [
    "/admin/bank-lines/1/assignment", "/admin/bank-lines/1/return", "/admin/users/{user}/roles",
    "/admin/users/{user}/unlock", "/admin/users/{user}/disable", "/admin/users/{user}/enable",
    "/admin/calendar/days", "/admin/calendar/days/2099-01-05/removal",
])
def test_only_administrators_may_post_the_admin_forms(role, path, users):
    answer = users.client(role).post(path.format(user=users["investor"].user_id), data={"note": "x"})

    assert (answer.status_code, problem_slug(answer)) == (403, "forbidden")
