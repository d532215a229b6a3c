"""Signed-in users for HTTP tests: created in the database, signed in through the API."""

import uuid
from dataclasses import dataclass

import httpx
import pyotp

from dfa.platform.database import Database
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.service import parties, users
from dfa.platform.settings import Settings
from tests.factories import new_identifier

PASSWORD = "correct-horse-battery-staple"
SESSION_COOKIE = "dfa_session"


def cookie_of(response: httpx.Response) -> str:
    """The session token from a Set-Cookie header (the cookie is Secure, so httpx will not send it
    over plain HTTP by itself; tests pass it on by hand)."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == SESSION_COOKIE:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no session cookie in {response.headers}")


def signed_in_client(base_url: str, response: httpx.Response) -> httpx.Client:
    """A client carrying the session cookie and the CSRF token of a sign-in response."""
    assert response.status_code == 200, response.text
    return httpx.Client(
        base_url=base_url,
        timeout=30,
        headers={"Cookie": f"{SESSION_COOKIE}={cookie_of(response)}", "X-CSRF-Token": response.json()["csrf_token"]},
    )


@dataclass
class Actor:
    role: str
    login: str
    user_id: uuid.UUID
    party_id: uuid.UUID | None
    totp_secret: str | None
    client: httpx.Client


async def create_user(
    database: Database, settings: Settings, *, role: str, login: str | None = None, party_kind: str | None = None,
    password: str = PASSWORD,
) -> tuple[str, uuid.UUID, uuid.UUID | None, str | None]:
    """Create (and commit) a user with an identified party where its role needs one; returns
    (login, user id, party id, authenticator secret)."""
    login = login or f"{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    async with database.unit_of_work() as session:
        party_id = None
        kind = party_kind or {"investor": "person", "issuer": "legal_entity"}.get(role)
        if kind is not None:
            party = await parties.create_party(
                session, kind=kind, name=f"{role} {login}", identifier=new_identifier(kind=kind), resident=True,
                settings=settings,
            )
            await parties.decide_kyc(
                session, party_id=party.id, status="identified", level="full", method="in_person",
                reason="test user", actor="test", settings=settings,
            )
            party_id = party.id
        user = await users.create_user(
            session, login=login, password=password, roles=[role], party_id=party_id, actor="test", settings=settings
        )
        secret = None
        if kind is None:
            secret = pyotp.random_base32()
            await users.set_second_factor(session, user_id=user.id, secret=secret, keys=Keys.load(settings))
    return login, user.id, party_id, secret


def sign_in(base_url: str, login: str, password: str = PASSWORD, totp_secret: str | None = None) -> httpx.Response:
    body = {"login": login, "password": password}
    if totp_secret:
        body["one_time_code"] = pyotp.TOTP(totp_secret).now()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return client.post("/v1/auth/sign-in", json=body)


class Users:
    ROLES = ("investor", "issuer", "compliance_officer", "operator_admin", "auditor")

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.actors: dict[str, Actor] = {}

    async def create_all(self, database: Database, settings: Settings) -> None:
        for name, role in [*((r, r) for r in self.ROLES), ("other_investor", "investor"), ("other_issuer", "issuer")]:
            login, user_id, party_id, secret = await create_user(database, settings, role=role)
            response = sign_in(self.base_url, login, totp_secret=secret)
            self.actors[name] = Actor(role, login, user_id, party_id, secret, signed_in_client(self.base_url, response))

    def client(self, name: str) -> httpx.Client:
        return self.actors[name].client

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]

    def close(self) -> None:
        for actor in self.actors.values():
            actor.client.close()
