"""Sign-in, sessions, CSRF, second factor, lockout, password change and recovery, onboarding and API
credentials, over real HTTP (REQ-19, REQ-54)."""

import base64
import uuid

import httpx
import pyotp
import pytest

from dfa.platform.adapters.identification import demo_sample
from dfa.platform.identity.errors import PartyNotFound, TooManyAttempts
from dfa.platform.identity.service.users import limit_rate
from tests.identity import PASSWORD, SESSION_COOKIE, cookie_of, create_user, sign_in, signed_in_client
from tests.platform.test_identity import iin_born

RECOVERING_PERSON = "900101400013"  # enrolled in the identification centre simulator's demo registry
ONBOARDING_PERSON = "850202300014"


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.json()["type"]


def events(users, **filters) -> list[dict]:
    response = users.client("auditor").get("/v1/security-events", params=filters)
    assert response.status_code == 200, response.text
    return response.json()


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_an_investor_signs_in_and_gets_a_protected_session_cookie(server_url, database, settings):
    login, *_ = await create_user(database, settings, role="investor")
    response = sign_in(server_url, login)

    assert response.status_code == 200, response.text
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert response.headers["cache-control"] == "no-store"
    assert cookie_of(response) not in response.text  # the session token travels in the cookie only
    with signed_in_client(server_url, response) as client:
        me = client.get("/v1/me").json()
    assert (me["user"]["login"], me["credential"], me["party"]["kyc_status"]) == (login, "session", "identified")


async def test_a_wrong_password_and_an_unknown_login_get_the_same_answer(server_url, database, settings, users):
    login, *_ = await create_user(database, settings, role="investor")
    wrong_password = sign_in(server_url, login, password="not-the-password-at-all")
    unknown_login = sign_in(server_url, f"nobody-{uuid.uuid4().hex[:6]}", password="not-the-password-at-all")

    assert wrong_password.status_code == unknown_login.status_code == 401
    assert wrong_password.json()["detail"] == unknown_login.json()["detail"]
    assert problem_type(wrong_password) == "/problems/sign-in-failed"
    assert events(users, kind="sign_in.failed", actor=login)[0]["details"] == {"reason": "wrong_password"}


async def test_repeated_failures_lock_the_user_out_until_an_administrator_unlocks(server_url, database, settings, users):
    login, user_id, *_ = await create_user(database, settings, role="investor")
    for _ in range(settings.sign_in_max_failures):
        assert sign_in(server_url, login, password="wrong-password-guess").status_code == 401

    assert sign_in(server_url, login).status_code == 401  # the right password no longer opens it
    assert events(users, kind="user.locked_out", subject=login)
    assert events(users, kind="sign_in.failed", actor=login)[0]["details"] == {"reason": "locked"}

    unlocked = users.client("operator_admin").post(f"/v1/users/{user_id}/unlock", headers=key())
    assert unlocked.status_code == 200 and unlocked.json()["locked_until"] is None
    assert sign_in(server_url, login).status_code == 200


async def test_staff_need_a_fresh_one_time_code(server_url, database, settings):
    login, _, _, secret = await create_user(database, settings, role="compliance_officer")
    without_code = sign_in(server_url, login)
    assert without_code.status_code == 401 and problem_type(without_code) == "/problems/second-factor-required"

    code = pyotp.TOTP(secret).now()
    with httpx.Client(base_url=server_url) as client:
        first = client.post("/v1/auth/sign-in", json={"login": login, "password": PASSWORD, "one_time_code": code})
        replayed = client.post("/v1/auth/sign-in", json={"login": login, "password": PASSWORD, "one_time_code": code})
    assert first.status_code == 200
    assert replayed.status_code == 401  # a code opens one session only


async def test_new_staff_enrol_an_authenticator_at_their_first_sign_in(server_url, users):
    admin = users.client("operator_admin")
    login = f"auditor-{uuid.uuid4().hex[:8]}"
    created = admin.post("/v1/users", json={"login": login, "password": PASSWORD, "roles": ["auditor"]}, headers=key())
    assert created.status_code == 201, created.text

    started = sign_in(server_url, login)
    assert started.status_code == 200
    body = started.json()
    assert body["status"] == "second_factor_enrolment_required" and "set-cookie" not in started.headers
    secret = pyotp.parse_uri(body["provisioning_uri"]).secret
    with httpx.Client(base_url=server_url) as client:
        wrong = client.post("/v1/auth/second-factor", json={"enrolment_token": body["enrolment_token"], "one_time_code": "000000"})
        enrolled = client.post("/v1/auth/second-factor", json={"enrolment_token": body["enrolment_token"], "one_time_code": pyotp.TOTP(secret).now()})
    assert wrong.status_code == 401
    # The wrong code used the single-use enrolment token: enrolment starts again.
    assert enrolled.status_code == 422 and problem_type(enrolled) == "/problems/grant-invalid"

    again = sign_in(server_url, login).json()
    secret = pyotp.parse_uri(again["provisioning_uri"]).secret
    with httpx.Client(base_url=server_url) as client:
        enrolled = client.post("/v1/auth/second-factor", json={"enrolment_token": again["enrolment_token"], "one_time_code": pyotp.TOTP(secret).now()})
    assert enrolled.status_code == 200, enrolled.text
    assert events(users, kind="second_factor.enrolled", actor=login)


def test_a_change_made_with_the_session_cookie_needs_the_csrf_token(users):
    investor = users["investor"]
    cookie_only = httpx.Client(base_url=str(investor.client.base_url), headers={"Cookie": investor.client.headers["Cookie"]})
    with cookie_only:
        missing = cookie_only.post("/v1/auth/password", json={"current_password": PASSWORD, "new_password": "x" * 20})
        forged = cookie_only.post(
            "/v1/auth/password", json={"current_password": PASSWORD, "new_password": "x" * 20},
            headers={"X-CSRF-Token": "forged"},
        )
    assert missing.status_code == forged.status_code == 403
    assert problem_type(missing) == "/problems/csrf-token-invalid"
    assert events(users, kind="csrf.rejected", actor=investor.login)


async def test_a_password_change_needs_the_current_password_meets_the_policy_and_ends_other_sessions(
    server_url, database, settings
):
    login, *_ = await create_user(database, settings, role="investor")
    this, other = signed_in_client(server_url, sign_in(server_url, login)), signed_in_client(server_url, sign_in(server_url, login))
    with this, other:
        wrong = this.post("/v1/auth/password", json={"current_password": "wrong-current-pass", "new_password": "a-brand-new-passphrase"})
        weak = this.post("/v1/auth/password", json={"current_password": PASSWORD, "new_password": "short"})
        changed = this.post("/v1/auth/password", json={"current_password": PASSWORD, "new_password": "a-brand-new-passphrase"})
        assert (wrong.status_code, weak.status_code, changed.status_code) == (401, 422, 204)
        assert problem_type(weak) == "/problems/password-policy"
        assert this.get("/v1/me").status_code == 200
        assert other.get("/v1/me").status_code == 401
    assert sign_in(server_url, login).status_code == 401
    assert sign_in(server_url, login, password="a-brand-new-passphrase").status_code == 200


async def test_signing_out_ends_the_session(server_url, database, settings):
    login, *_ = await create_user(database, settings, role="investor")
    with signed_in_client(server_url, sign_in(server_url, login)) as client:
        assert client.post("/v1/auth/sign-out").status_code == 204
        assert client.get("/v1/me").status_code == 401


async def _person_user(database, settings, identifier: str) -> str:
    from dfa.platform.identity.service import parties, users

    login = f"person-{uuid.uuid4().hex[:8]}"
    async with database.unit_of_work() as session:
        try:
            party = await parties.party_by_identifier(session, identifier)
        except PartyNotFound:
            party = await parties.create_party(session, kind="person", name="Enrolled Person", identifier=identifier,
                                               resident=True, settings=settings)
            await parties.decide_kyc(session, party_id=party.id, status="identified", level="full",
                                     method="in_person", reason="test", actor="test", settings=settings)
        await users.create_user(session, login=login, password=PASSWORD, roles=["investor"], party_id=party.id,
                                actor="test", settings=settings)
    return login


def sample(value: bytes) -> str:
    return base64.b64encode(value).decode()


async def test_req19_a_lost_password_is_replaced_only_after_a_biometric_identity_check(server_url, database, settings, users):
    login = await _person_user(database, settings, RECOVERING_PERSON)
    with httpx.Client(base_url=server_url) as client:
        stranger = client.post("/v1/auth/recovery", json={"login": login, "identifier": RECOVERING_PERSON, "biometric_sample": sample(b"a stranger")})
        wrong_iin = client.post("/v1/auth/recovery", json={"login": login, "identifier": ONBOARDING_PERSON, "biometric_sample": sample(demo_sample(ONBOARDING_PERSON))})
        confirmed = client.post("/v1/auth/recovery", json={"login": login, "identifier": RECOVERING_PERSON, "biometric_sample": sample(demo_sample(RECOVERING_PERSON))})
        assert stranger.status_code == wrong_iin.status_code == 422
        assert problem_type(stranger) == "/problems/identity-not-confirmed"
        assert confirmed.status_code == 200, confirmed.text
        token = confirmed.json()["recovery_token"]
        weak = client.post("/v1/auth/recovery/completion", json={"recovery_token": token, "new_password": "weak"})
        done = client.post("/v1/auth/recovery/completion", json={"recovery_token": token, "new_password": "recovered-passphrase-1"})
        reused = client.post("/v1/auth/recovery/completion", json={"recovery_token": token, "new_password": "recovered-passphrase-2"})
    assert (weak.status_code, done.status_code, reused.status_code) == (422, 204, 422)
    assert sign_in(server_url, login, password="recovered-passphrase-1").status_code == 200
    checks = [e["details"]["outcome"] for e in events(users, kind="biometric.checked", actor=login)]
    assert checks == ["match", "no_match"]
    assert events(users, kind="password.recovered", actor=login)


def test_req15_req16_remote_onboarding_identifies_a_resident_adult_by_biometrics(server_url):
    body = {"name": "Daniyar Serikovich Akhmetov", "identifier": ONBOARDING_PERSON, "login": f"daniyar-{uuid.uuid4().hex[:6]}",
            "password": "steppe-onboarding-pass"}
    with httpx.Client(base_url=server_url) as client:
        child = client.post("/v1/onboarding", json={**body, "identifier": iin_born(date_years_ago(12)), "biometric_sample": sample(b"x")})
        stranger = client.post("/v1/onboarding", json={**body, "biometric_sample": sample(b"someone else")})
        onboarded = client.post("/v1/onboarding", json={**body, "biometric_sample": sample(demo_sample(ONBOARDING_PERSON))})
    assert child.status_code == 422 and problem_type(child) == "/problems/under-age"
    assert stranger.status_code == 422 and problem_type(stranger) == "/problems/identity-not-confirmed"
    assert onboarded.status_code == 201, onboarded.text
    party = onboarded.json()["party"]
    assert (party["kyc_status"], party["birth_date"], party["sex"]) == ("identified", "1985-02-02", "male")
    assert sign_in(server_url, body["login"], password=body["password"]).status_code == 200


def date_years_ago(years: int):
    from datetime import date

    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28))


async def test_sign_in_attempts_from_one_address_are_rate_limited(session):
    bucket = f"test:{uuid.uuid4()}"
    for _ in range(3):
        await limit_rate(session, bucket=bucket, limit=3)
    with pytest.raises(TooManyAttempts) as refusal:
        await limit_rate(session, bucket=bucket, limit=3)
    assert int(refusal.value.headers["Retry-After"]) >= 1


def test_an_issuer_system_uses_oauth2_client_credentials_until_revoked(users, anonymous):
    issuer = users.client("issuer")
    issued = issuer.post("/v1/credentials", json={"kind": "oauth_client", "label": "back office"})
    assert issued.status_code == 201, issued.text
    client_id, secret = issued.json()["credential"]["client_id"], issued.json()["secret"]

    token = anonymous.post("/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
    assert token.status_code == 200, token.text
    assert token.json()["expires_in"] <= 600
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    me = anonymous.get("/v1/me", headers=bearer).json()
    assert (me["user"]["login"], me["credential"]) == (users["issuer"].login, "access_token")

    basic = base64.b64encode(f"{client_id}:wrong-secret".encode()).decode()
    refused = anonymous.post("/v1/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"})
    assert refused.status_code == 401 and problem_type(refused) == "/problems/invalid-client"

    credential_id = issued.json()["credential"]["id"]
    assert issuer.post(f"/v1/credentials/{credential_id}/revocation", headers=key()).status_code == 200
    assert anonymous.get("/v1/me", headers=bearer).status_code == 401  # its tokens die with it
    assert anonymous.post("/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}).status_code == 401


def test_an_api_key_works_until_rotated_and_the_new_one_until_revoked(users, anonymous):
    issuer = users.client("issuer")
    issued = issuer.post("/v1/credentials", json={"kind": "api_key", "label": "reporting"}).json()
    old_key, credential_id = issued["secret"], issued["credential"]["id"]
    assert anonymous.get("/v1/me", headers={"X-API-Key": old_key}).json()["credential"] == "api_key"

    rotated = issuer.post(f"/v1/credentials/{credential_id}/rotation")
    assert rotated.status_code == 200
    new_key = rotated.json()["secret"]
    assert anonymous.get("/v1/me", headers={"X-API-Key": old_key}).status_code == 401
    assert anonymous.get("/v1/me", headers={"X-API-Key": new_key}).status_code == 200

    issuer.post(f"/v1/credentials/{credential_id}/revocation", headers=key())
    assert anonymous.get("/v1/me", headers={"X-API-Key": new_key}).status_code == 401
    listed = issuer.get("/v1/credentials").json()
    assert all("secret" not in c for c in listed)
    assert events(users, kind="credential.rotated", actor=users["issuer"].login)


async def test_role_changes_are_recorded_and_end_the_users_sessions(server_url, users, database, settings):
    login, user_id, _, secret = await create_user(database, settings, role="auditor")
    with signed_in_client(server_url, sign_in(server_url, login, totp_secret=secret)) as auditor:
        changed = users.client("operator_admin").put(f"/v1/users/{user_id}/roles", json={"roles": ["compliance_officer"]}, headers=key())
        assert changed.status_code == 200 and changed.json()["roles"] == ["compliance_officer"]
        assert auditor.get("/v1/me").status_code == 401
    [event] = events(users, kind="role.changed", subject=login)
    assert event["details"] == {"from": ["auditor"], "to": ["compliance_officer"]}
    assert event["actor"] == users["operator_admin"].login


def test_unauthenticated_calls_get_401_with_a_challenge(anonymous):
    response = anonymous.get("/v1/me")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    garbage = anonymous.get("/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401
    expired_cookie = anonymous.get("/v1/me", headers={"Cookie": f"{SESSION_COOKIE}=forged"})
    assert expired_cookie.status_code == 401



async def test_ended_sessions_spent_grants_and_old_rate_windows_are_purged(session, settings):
    from datetime import UTC, datetime, timedelta

    from dfa.platform.identity import repository
    from dfa.platform.identity.service import users as user_service

    login, user_id, *_ = await create_user_in(session, settings)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    await repository.insert_session(session, row={
        "token_hash": uuid.uuid4().bytes * 2, "id": uuid.uuid4(), "user_id": user_id, "created_at": long_ago,
        "last_seen_at": long_ago, "expires_at": long_ago + timedelta(hours=12),
    })
    await repository.count_attempt(session, bucket=f"old:{login}", window_start=long_ago)
    assert await user_service.purge_expired(session, settings=settings) >= 2


async def create_user_in(session, settings):
    from dfa.platform.identity.service import users as user_service

    login = f"purge-{uuid.uuid4().hex[:8]}"
    user = await user_service.create_user(session, login=login, password=PASSWORD, roles=["auditor"], party_id=None,
                                          actor="test", settings=settings)
    return login, user.id


def test_an_api_key_cannot_mint_or_rotate_credentials(users, anonymous):
    issuer = users.client("issuer")
    issued = issuer.post("/v1/credentials", json={"kind": "api_key", "label": "leaky"}).json()
    as_key = {"X-API-Key": issued["secret"]}
    minted = anonymous.post("/v1/credentials", json={"kind": "api_key", "label": "successor"}, headers=as_key)
    rotated = anonymous.post(f"/v1/credentials/{issued['credential']['id']}/rotation", headers=as_key)
    assert minted.status_code == rotated.status_code == 403
    assert anonymous.get("/v1/me", headers=as_key).status_code == 200  # the key itself still works


def test_instants_without_a_time_zone_are_refused_and_nothing_is_issued(users):
    issuer, auditor = users.client("issuer"), users.client("auditor")
    before = len(issuer.get("/v1/credentials").json())
    naive = issuer.post("/v1/credentials", json={"kind": "api_key", "label": "x", "expires_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 422 and problem_type(naive) == "/problems/validation-error"
    assert len(issuer.get("/v1/credentials").json()) == before
    search = auditor.get("/v1/security-events", params={"since": "2020-01-01T00:00:00"})
    assert search.status_code == 422 and problem_type(search) == "/problems/validation-error"
