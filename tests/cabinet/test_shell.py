"""The cabinet's door and languages: sign-in and sign-out as pages (REQ: login and password access to the
cabinet), the browser sent to sign in and back, the language chosen on any page and remembered, and amounts
and dates formatted per language."""

from datetime import UTC, date, datetime
from urllib.parse import quote

import httpx
import pyotp
import pytest

from dfa.cabinet import i18n
from tests.identity import PASSWORD, create_user
from tests.pages import BROWSER


@pytest.fixture
def browser(server_url: str):
    """A client that keeps cookies as a browser does on http://127.0.0.1 (a secure context for browsers,
    though not for httpx's cookie jar, which would hold back the Secure session cookie)."""
    jar: dict[str, str] = {}

    def send_cookies(request: httpx.Request) -> None:
        if jar:
            request.headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in jar.items())

    def keep_cookies(response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if value in ("", '""') or "max-age=0" in header.lower():
                jar.pop(name, None)
            else:
                jar[name] = value

    hooks = {"request": [send_cookies], "response": [keep_cookies]}
    with httpx.Client(base_url=server_url, timeout=30, headers=BROWSER, event_hooks=hooks) as client:
        yield client


def _plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.fixture
async def investor(database, settings) -> str:
    login, _, _, _ = await create_user(database, settings, role="investor")
    return login


def _sign_in(browser: httpx.Client, login: str, password: str = PASSWORD, **fields: str) -> httpx.Response:
    return browser.post("/sign-in", data={"login": login, "password": password, **fields})


# Signing in and out


def test_a_browser_that_is_not_signed_in_is_sent_to_sign_in_and_back(browser):
    answer = browser.get("/compliance/reports?before=7")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=" + quote("/compliance/reports?before=7", safe="")


def test_an_investor_signs_in_with_login_and_password_and_lands_where_they_were_going(browser, investor):
    form = browser.get("/sign-in", params={"next": "/"})
    assert form.status_code == 200 and 'autocomplete="current-password"' in form.text

    answer = _sign_in(browser, investor, next="/")

    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    assert "httponly" in answer.headers["set-cookie"].lower()
    home = browser.get("/")
    assert home.status_code == 200 and f"Welcome, {investor}" in home.text


def test_a_wrong_password_is_answered_next_to_the_field_and_counted(browser, investor, users):
    answer = _sign_in(browser, investor, password="not-my-password")

    assert answer.status_code == 401
    assert 'aria-invalid="true"' in answer.text and "Sign-in failed" in answer.text
    assert f'value="{investor}"' in answer.text  # the login stays in its field; the password does not
    events = users.client("auditor").get(
        "/v1/security-events", params={"kind": "sign_in.failed", "actor": investor, "limit": 10}
    ).json()
    assert len(events) == 1, "the refused attempt's transaction committed"


@pytest.mark.parametrize("elsewhere", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "/\\evil"])
def test_after_sign_in_the_browser_never_leaves_the_site(browser, investor, elsewhere):
    answer = _sign_in(browser, investor, next=elsewhere)

    assert (answer.status_code, answer.headers["location"]) == (303, "/")


def test_a_sign_in_form_posted_from_another_site_is_refused(browser, investor):
    answer = browser.post(
        "/sign-in", data={"login": investor, "password": PASSWORD}, headers={"Origin": "https://evil.example"}
    )

    assert answer.status_code == 403 and "set-cookie" not in answer.headers


async def test_staff_sign_in_with_a_one_time_code(browser, database, settings):
    login, _, _, secret = await create_user(database, settings, role="compliance_officer")

    without = _sign_in(browser, login)
    assert without.status_code == 401 and "one-time code" in without.text

    answer = _sign_in(browser, login, one_time_code=pyotp.TOTP(secret).now(), next="/compliance/reports")
    assert (answer.status_code, answer.headers["location"]) == (303, "/compliance/reports")
    assert browser.get("/compliance/reports").status_code == 200


def test_signing_out_needs_the_pages_token_and_ends_the_session(browser, investor):
    _sign_in(browser, investor)
    home = browser.get("/")
    token = home.text.split('name="csrf_token" value="')[1].split('"')[0]

    assert browser.post("/sign-out", data={}).status_code == 403
    answer = browser.post("/sign-out", data={"csrf_token": token})

    assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")
    assert browser.get("/").status_code == 303


# Languages


def test_the_language_switch_changes_the_page_and_is_remembered(browser):
    english = browser.get("/sign-in")
    assert '<html lang="en">' in english.text and ">Sign in</h1>" in english.text

    kazakh = browser.get("/sign-in", params={"lang": "kk"})
    assert '<html lang="kk">' in kazakh.text and ">Кіру</h1>" in kazakh.text
    assert "dfa_lang=kk" in kazakh.headers["set-cookie"]

    again = browser.get("/sign-in")
    assert '<html lang="kk">' in again.text, "the choice is remembered"
    assert 'href="/sign-in?lang=ru"' in again.text, "every page links to the other languages"


def test_a_browser_asking_for_russian_gets_russian(server_url):
    page = httpx.get(f"{server_url}/sign-in", headers={**BROWSER, "Accept-Language": "ru-KZ,ru;q=0.9,en;q=0.5"})

    assert '<html lang="ru">' in page.text and ">Войти</h1>" in page.text


def test_a_visitor_who_asks_for_no_language_we_speak_gets_the_operators_default():
    assert i18n.negotiate(chosen=None, accept_language="de-DE,fr;q=0.5", default="kk").code == "kk"
    assert i18n.negotiate(chosen="xx", accept_language=None, default="ru").code == "ru"
    assert i18n.negotiate(chosen="en", accept_language="ru", default="kk").code == "en"


@pytest.mark.parametrize(("code", "money", "quantity", "day"), [
    ("kk", "1 234 567,89\xa0₸", "1 000 000", "2026 ж. 21 қар."),
    ("ru", "1 234 567,89\xa0₸", "1 000 000", "21 нояб. 2026 г."),
    ("en", "1,234,567.89\xa0KZT", "1,000,000", "21 Nov 2026"),
])
def test_amounts_quantities_and_dates_are_written_as_each_language_writes_them(code, money, quantity, day):
    with i18n.speaking(i18n.LANGUAGES[code]):
        assert _plain(i18n.kzt(123_456_789)) == _plain(money)
        assert _plain(i18n.units(1_000_000)) == quantity
        assert _plain(i18n.day(date(2026, 11, 21))) == day
        assert i18n.kzt(None) == i18n.units(None) == "—"
        assert "2026" in i18n.instant(datetime(2026, 11, 21, 12, tzinfo=UTC), "Asia/Almaty")


@pytest.mark.parametrize(("code", "typed", "tiyn"), [
    ("en", "1,234.56", 123_456), ("ru", "1 234,56", 123_456), ("kk", "1\xa0234,5 ₸", 123_450), ("en", "0.01", 1),
    ("en", "92233720368547758.07", 2**63 - 1),
])
def test_an_amount_is_read_as_the_visitor_writes_it_in_their_language(code, typed, tiyn):
    with i18n.speaking(i18n.LANGUAGES[code]):
        assert i18n.parse_tiyn(typed) == tiyn


@pytest.mark.parametrize("typed", [
    "", "0", "-5", "1e3", "NaN", "Infinity", "12.345", "١٢٣", "１２３", "92233720368547758.08", "12 abc", "1,234.56",
])
def test_an_amount_that_is_not_a_positive_sum_to_the_tiyn_is_not_read(typed):
    with i18n.speaking(i18n.LANGUAGES["ru"]):
        assert i18n.parse_tiyn(typed) is None
