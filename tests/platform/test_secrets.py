"""No password, token, key or secret ever appears in a log line, in a response other than the one
that hands it over, in a stored idempotent response or in the security-event log."""

import base64
import logging

import httpx
from sqlalchemy import text

from dfa.platform.adapters.identification import demo_sample
from dfa.platform.logs import JsonFormatter
from tests.identity import PASSWORD, cookie_of, create_user, sign_in, signed_in_client
from tests.platform.test_sign_in import RECOVERING_PERSON, _person_user


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_secrets_stay_out_of_logs_responses_and_stored_records(server_url, database, settings, users):
    capture = Capture()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    secrets: set[str] = {PASSWORD, "a-new-secret-passphrase", "recovered-secret-phrase"}
    other_responses: list[httpx.Response] = []
    try:
        # Staff sign-in with a second factor, then a wrong attempt.
        login, _, _, totp_secret = await create_user(database, settings, role="auditor")
        secrets.add(totp_secret)
        staff = sign_in(server_url, login, totp_secret=totp_secret)
        secrets.add(cookie_of(staff))
        other_responses.append(sign_in(server_url, login, password="wrong-" + PASSWORD))

        # An investor changes the password, recovers it, and signs in again.
        person = await _person_user(database, settings, RECOVERING_PERSON)
        signed_in = sign_in(server_url, person)
        secrets.add(cookie_of(signed_in))
        with signed_in_client(server_url, signed_in) as investor:
            other_responses.append(investor.post("/v1/auth/password", json={"current_password": PASSWORD, "new_password": "a-new-secret-passphrase"}))
            other_responses.append(investor.get("/v1/me"))
        with httpx.Client(base_url=server_url) as client:
            grant = client.post("/v1/auth/recovery", json={
                "login": person, "identifier": RECOVERING_PERSON,
                "biometric_sample": base64.b64encode(demo_sample(RECOVERING_PERSON)).decode(),
            })
            secrets.add(grant.json()["recovery_token"])
            other_responses.append(client.post("/v1/auth/recovery/completion", json={
                "recovery_token": grant.json()["recovery_token"], "new_password": "recovered-secret-phrase"}))

        # An issuer's system: an OAuth2 client and an API key.
        issuer = users.client("issuer")
        client_credential = issuer.post("/v1/credentials", json={"kind": "oauth_client", "label": "erp"}).json()
        api_key = issuer.post("/v1/credentials", json={"kind": "api_key", "label": "bi"}).json()
        secrets |= {client_credential["secret"], api_key["secret"], api_key["secret"].split(".", 1)[1]}
        with httpx.Client(base_url=server_url) as anonymous:
            token = anonymous.post("/v1/oauth/token", data={
                "grant_type": "client_credentials", "client_id": client_credential["credential"]["client_id"],
                "client_secret": client_credential["secret"]}).json()["access_token"]
            secrets.add(token)
            other_responses.append(anonymous.get("/v1/me", headers={"Authorization": f"Bearer {token}"}))
            other_responses.append(anonymous.get("/v1/me", headers={"X-API-Key": api_key["secret"]}))
            other_responses.append(anonymous.get("/v1/me", headers={"X-API-Key": api_key["secret"] + "x"}))
        other_responses.append(issuer.get("/v1/credentials"))
        other_responses.append(users.client("auditor").get("/v1/security-events", params={"limit": 500}))
    finally:
        root.removeHandler(capture)
        root.setLevel(previous_level)

    assert capture.lines, "the capture saw no log lines at all"
    for secret in secrets:
        assert len(secret) >= 12
        assert not [line for line in capture.lines if secret in line], "a secret reached the logs"
        assert not [r for r in other_responses if secret in r.text or secret in str(r.headers)], "a secret reached a response"
    async with database.read() as session:
        stored = (await session.execute(text("SELECT convert_from(response_body, 'UTF8') FROM idempotency_records WHERE response_body IS NOT NULL"))).scalars().all()
        logged = (await session.execute(text("SELECT details::text || coalesce(actor, '') || coalesce(subject, '') FROM security_events"))).scalars().all()
        hashes = (await session.execute(text("SELECT password_hash FROM users"))).scalars().all()
    for secret in secrets:
        assert not [body for body in stored if secret in body], "a secret was stored with an idempotent response"
        assert not [row for row in logged if secret in row], "a secret reached the security-event log"
    assert all(h.startswith("$argon2id$") for h in hashes)
