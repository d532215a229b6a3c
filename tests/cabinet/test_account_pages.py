"""The account pages over real HTTP: who is signed in and the password change, and password recovery for
someone who cannot sign in, after the identification centre has confirmed their face (REQ-19)."""

import hashlib
import html
import re
import uuid
from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from dfa.platform.adapters.identification import EnrolledPerson, demo_sample
from dfa.platform.identity.errors import PartyNotFound
from dfa.platform.identity.service import parties
from dfa.platform.identity.service import users as user_service
from tests.factories import new_identifier
from tests.http import problem_slug
from tests.identity import PASSWORD, cookie_of, create_user, sign_in
from tests.pages import BROWSER, PAGE_HEADERS, csrf_token_of, text_of

ROLES = ("investor", "issuer", "compliance_officer", "operator_admin", "auditor")
ENROLLED_PERSON = new_identifier()  # enrolled in the identification centre simulator by `enrolled`
NEW_PASSWORD = "steppe-wind-over-the-lake"
ELSEWHERE = {"Origin": "https://evil.example"}


def events(users, **filters) -> list[dict]:
    found = users.client("auditor").get("/v1/security-events", params={"limit": 100, **filters})
    assert found.status_code == 200, found.text
    return found.json()


def browser_of(server_url: str, login: str) -> httpx.Client:
    """A browser signed in as `login`: the session cookie only; the CSRF token comes from the page's form."""
    cookie = cookie_of(sign_in(server_url, login))
    return httpx.Client(base_url=server_url, timeout=30, headers={**BROWSER, "Cookie": f"dfa_session={cookie}"})


@pytest.fixture
async def investor(database, settings) -> str:
    login, *_ = await create_user(database, settings, role="investor")
    return login


@pytest.fixture
def browser(server_url, investor) -> Iterator[httpx.Client]:
    with browser_of(server_url, investor) as client:
        yield client


@pytest.fixture
def visitor(server_url) -> Iterator[httpx.Client]:
    """A browser with nobody signed in."""
    with httpx.Client(base_url=server_url, timeout=30, headers=BROWSER) as client:
        yield client


@pytest.fixture(scope="module", autouse=True)
def enrolled(app) -> None:
    """The person of ENROLLED_PERSON, known to the platform's identification centre by their demo sample."""
    app.state.identification_centre.registry.enrol(EnrolledPerson(
        ENROLLED_PERSON, "Madina Kassymova", date(1990, 1, 1), hashlib.sha256(demo_sample(ENROLLED_PERSON)).hexdigest()
    ))


@pytest.fixture
async def person(database, settings) -> str:
    """The login of a new investor user of the person the identification centre knows as ENROLLED_PERSON."""
    login = f"person-{uuid.uuid4().hex[:8]}"
    async with database.unit_of_work() as session:
        try:
            party = await parties.party_by_identifier(session, ENROLLED_PERSON)
        except PartyNotFound:
            party = await parties.create_party(
                session, kind="person", name="Madina Kassymova", identifier=ENROLLED_PERSON, resident=True,
                settings=settings,
            )
            await parties.decide_kyc(
                session, party_id=party.id, status="identified", level="full", method="in_person", reason="test",
                actor="test", settings=settings,
            )
        await user_service.create_user(
            session, login=login, password=PASSWORD, roles=["investor"], party_id=party.id, actor="test",
            settings=settings,
        )
    return login


def change(browser: httpx.Client, **fields: str) -> httpx.Response:
    token = csrf_token_of(browser.get("/account"))
    return browser.post("/account/password", data={"csrf_token": token, **fields})


def recover(visitor: httpx.Client, login: str, sample: bytes, **headers: str) -> httpx.Response:
    return visitor.post(
        "/recovery", data={"login": login, "identifier": ENROLLED_PERSON},
        files={"biometric_sample": ("face.jpg", sample, "image/jpeg")}, headers=headers,
    )


def recovery_token_of(page: httpx.Response) -> str:
    return re.search(r'name="recovery_token" value="([^"]+)"', page.text)[1]


def field_error(page: httpx.Response, field: str) -> str:
    """The reason shown beside `field`, which is marked invalid and described by it."""
    control = re.search(rf'<input id="{field}"[^>]*>', page.text)[0]
    assert 'aria-invalid="true"' in control and f"{field}-error" in control, control
    return html.unescape(re.search(rf'id="{field}-error">(.*?)</p>', page.text, re.DOTALL)[1]).strip()


# The account page


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_who_they_are_and_the_password_form(role, users):
    page = users.client(role).get("/account", headers=BROWSER)

    assert page.status_code == 200, page.text
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    text = text_of(page)
    assert f"Login {users[role].login}" in text and f"Roles {role.replace('_', ' ')}" in text
    assert ("Acting for the operator" in text) == (users[role].party_id is None)
    for field in ("current_password", "new_password", "new_password_again"):
        assert f'<label for="{field}">' in page.text
    assert 'action="/account/password"' in page.text and "signs you out of every other session" in text


def test_an_issuer_sees_the_organisation_it_acts_for(users):
    text = text_of(users.client("issuer").get("/account", headers=BROWSER))

    assert f"Acting for issuer {users['issuer'].login}" in text


def test_a_browser_that_is_not_signed_in_is_sent_to_sign_in_from_the_account_page(visitor):
    answer = visitor.get("/account")

    assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in?next=%2Faccount")


def test_req19_a_password_changed_on_the_page_replaces_the_old_one_and_ends_the_other_sessions(
    server_url, browser, investor
):
    elsewhere = sign_in(server_url, investor)

    answer = change(browser, current_password=PASSWORD, new_password=NEW_PASSWORD, new_password_again=NEW_PASSWORD)

    assert (answer.status_code, answer.headers["location"]) == (303, "/account?password=changed#password")
    assert "Your password was changed" in text_of(browser.get(answer.headers["location"])), "this session goes on"
    with httpx.Client(base_url=server_url, headers={"Cookie": f"dfa_session={cookie_of(elsewhere)}"}) as other:
        assert other.get("/v1/me").status_code == 401, "every other session ended"
    assert sign_in(server_url, investor).status_code == 401
    assert sign_in(server_url, investor, password=NEW_PASSWORD).status_code == 200


def test_a_wrong_current_password_is_refused_beside_the_field_counted_and_changes_nothing(
    server_url, browser, investor, users
):
    answer = change(browser, current_password="not-my-password", new_password=NEW_PASSWORD,
                    new_password_again=NEW_PASSWORD)

    assert answer.status_code == 401 and answer.headers["content-type"].startswith("text/html")
    assert field_error(answer, "current_password") == "The current password is wrong."
    assert "Nothing was changed" in answer.text
    failures = events(users, kind="sign_in.failed", actor=investor)
    assert [e["details"] for e in failures] == [{"reason": "wrong_current_password"}], "the refusal committed"
    assert sign_in(server_url, investor).status_code == 200


def test_a_too_weak_new_password_is_refused_beside_the_field_and_changes_nothing(server_url, browser, investor):
    answer = change(browser, current_password=PASSWORD, new_password="short", new_password_again="short")

    assert answer.status_code == 422
    assert "at least 12 characters" in field_error(answer, "new_password")
    assert sign_in(server_url, investor).status_code == 200
    assert sign_in(server_url, investor, password="short").status_code == 401


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"current_password": "", "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
     "current_password", "Fill this in."),
    ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD + "!"},
     "new_password_again", "The two new passwords differ."),
    ({"current_password": "x" * 300, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
     "current_password", "At most 256 characters."),
])
def test_an_unfilled_or_mistyped_password_form_is_answered_beside_its_field_uncounted(
    fields, field, reason, server_url, browser, investor, users
):
    answer = change(browser, **fields)

    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert field_error(answer, field) == reason
    assert events(users, kind="sign_in.failed", actor=investor) == []
    assert sign_in(server_url, investor).status_code == 200


def test_a_password_form_without_the_csrf_token_is_refused_and_changes_nothing(server_url, browser, investor):
    fields = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD}

    forged = browser.post("/account/password", data=fields, headers={"Accept": "application/json"})

    assert (forged.status_code, problem_slug(forged)) == (403, "csrf-token-invalid")
    assert sign_in(server_url, investor).status_code == 200


# Recovery


def test_the_recovery_page_asks_for_the_login_the_iin_and_a_photo_of_the_face(visitor):
    page = visitor.get("/recovery")

    assert page.status_code == 200
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    assert 'enctype="multipart/form-data"' in page.text and 'action="/recovery"' in page.text
    for field in ("login", "identifier", "biometric_sample"):
        assert f'<label for="{field}">' in page.text
    assert 'type="file"' in page.text and "identification data exchange centre" in text_of(page)


def test_req19_a_lost_password_is_replaced_on_the_pages_after_the_centre_confirms_the_face(
    server_url, visitor, person, users
):
    confirmed = recover(visitor, person, demo_sample(ENROLLED_PERSON))
    assert confirmed.status_code == 200, confirmed.text
    assert "Your identity is confirmed." in text_of(confirmed) and 'action="/recovery/completion"' in confirmed.text

    done = visitor.post("/recovery/completion", data={
        "recovery_token": recovery_token_of(confirmed), "new_password": NEW_PASSWORD,
        "new_password_again": NEW_PASSWORD,
    })

    assert (done.status_code, done.headers["location"]) == (303, "/recovery/done")
    assert "every session of your account has ended" in text_of(visitor.get("/recovery/done"))
    assert sign_in(server_url, person).status_code == 401
    assert sign_in(server_url, person, password=NEW_PASSWORD).status_code == 200
    assert [e["details"]["outcome"] for e in events(users, kind="biometric.checked", actor=person)] == ["match"]


def test_req19_a_face_that_does_not_match_is_refused_counted_and_changes_nothing(server_url, visitor, person, users):
    refused = recover(visitor, person, b"a stranger's face")

    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    assert "The identity could not be confirmed" in text_of(refused) and 'name="recovery_token"' not in refused.text
    assert f'value="{person}"' in refused.text, "the login stays in its field"
    checks = events(users, kind="biometric.checked", actor=person)
    assert [e["details"]["outcome"] for e in checks] == ["no_match"], "the refused attempt's check is kept"
    assert sign_in(server_url, person).status_code == 200


def test_an_unknown_login_gets_the_same_answer_as_a_face_that_does_not_match(visitor, person):
    stranger = recover(visitor, person, b"a stranger's face")
    nobody = recover(visitor, f"nobody-{uuid.uuid4().hex[:8]}", demo_sample(ENROLLED_PERSON))

    assert stranger.status_code == nobody.status_code == 422
    assert re.search(r'id="recovery-error">(.*?)</p>', stranger.text, re.DOTALL)[1] == \
        re.search(r'id="recovery-error">(.*?)</p>', nobody.text, re.DOTALL)[1]


def test_refused_recoveries_count_towards_the_limit_of_attempts_per_login(visitor, person):
    answers = [recover(visitor, person, b"a stranger's face").status_code for _ in range(6)]

    assert answers == [422] * 5 + [429]
    limited = recover(visitor, person, demo_sample(ENROLLED_PERSON))
    assert limited.status_code == 429 and "Too many attempts" in text_of(limited)
    assert int(limited.headers["retry-after"]) > 0


def test_a_weak_new_password_keeps_the_recovery_token_and_a_used_token_is_refused(server_url, visitor, person):
    token = recovery_token_of(recover(visitor, person, demo_sample(ENROLLED_PERSON)))
    complete = {"recovery_token": token, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD}

    weak = visitor.post("/recovery/completion", data={**complete, "new_password": "weak", "new_password_again": "weak"})
    done = visitor.post("/recovery/completion", data=complete)
    again = visitor.post("/recovery/completion", data=complete)

    assert weak.status_code == 422 and "at least 12 characters" in field_error(weak, "new_password")
    assert recovery_token_of(weak) == token
    assert done.status_code == 303
    assert again.status_code == 422 and "This recovery has expired or was used already." in text_of(again)
    assert 'href="/recovery"' in again.text and 'name="recovery_token"' not in again.text
    assert sign_in(server_url, person, password=NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"login": "", "identifier": ENROLLED_PERSON}, "login", "Enter your login."),
    ({"login": "someone", "identifier": "92071240001"}, "identifier", "An IIN is 12 digits."),
    ({"login": "someone", "identifier": "９２０７１２４０００１９"}, "identifier", "An IIN is 12 digits."),
])
def test_an_unreadable_recovery_form_is_answered_beside_its_field_and_checks_nothing(fields, field, reason, visitor):
    answer = visitor.post("/recovery", data=fields, files={"biometric_sample": ("face.jpg", b"face", "image/jpeg")})

    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert field_error(answer, field) == reason


def test_a_recovery_without_a_photo_is_answered_beside_the_photo_field(visitor, person):
    fields = {"login": person, "identifier": ENROLLED_PERSON}
    empty = visitor.post("/recovery", data=fields, files={"biometric_sample": ("", b"", "application/octet-stream")})
    text = visitor.post("/recovery", data={**fields, "biometric_sample": "not a file"})

    for answer in (empty, text):
        assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
        assert field_error(answer, "biometric_sample") == "Choose a photo of your face."


def test_recovery_forms_posted_from_another_site_are_refused_and_check_nothing(visitor, person, users):
    started = recover(visitor, person, demo_sample(ENROLLED_PERSON), **ELSEWHERE)
    completed = visitor.post("/recovery/completion", headers=ELSEWHERE, data={
        "recovery_token": "x" * 43, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD,
    })

    assert [r.status_code for r in (started, completed)] == [403, 403]
    assert events(users, kind="biometric.checked", actor=person) == []
    assert len(events(users, kind="csrf.rejected", subject="/recovery")) >= 1
