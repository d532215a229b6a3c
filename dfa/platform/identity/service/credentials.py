"""API credentials of issuers' systems: OAuth2 client credentials and API keys (REQ-54).

A credential's secret is shown once, when it is issued or rotated; only its SHA-256 is stored.
OAuth2 clients trade their secret for a short-lived access token signed with the platform's Ed25519
key; API keys are presented on every call. Revoking a credential stops its tokens at once, since
every token names its credential and the credential is looked up on each call.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.access import Principal, Role
from dfa.platform.audit import service as audit
from dfa.platform.identity import crypto, repository
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.errors import CredentialNotFound, Forbidden, InvalidClient, InvalidUser
from dfa.platform.identity.models import ApiCredential
from dfa.platform.identity.service.users import limit_rate, principal_of
from dfa.platform.settings import Settings

API_KEY_SEPARATOR = "."


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class IssuedCredential:
    credential: ApiCredential
    secret: str  # shown once; for an API key, the whole key to present

    def __repr__(self) -> str:
        return f"IssuedCredential(credential={self.credential.id}, secret=<hidden>)"


def _require_person(principal: Principal) -> None:
    # A leaked key must not be able to mint a successor that outlives its revocation.
    if principal.credential != "session":
        raise Forbidden("API credentials are managed by a signed-in person, not with an API key or access token")


def _presented_secret(credential: ApiCredential, secret: str) -> str:
    return f"{credential.client_id}{API_KEY_SEPARATOR}{secret}" if credential.kind == "api_key" else secret


async def issue(
    session: AsyncSession, *, owner: Principal, kind: str, label: str, expires_at: datetime | None
) -> IssuedCredential:
    """A new credential for the owner's systems. Raises Forbidden, InvalidUser unless the owner is an
    issuer signed in in person."""
    _require_person(owner)
    if Role.ISSUER not in owner.roles:
        raise InvalidUser("API credentials are issued to issuers' users")
    secret = crypto.new_token()
    credential = await repository.insert_credential(
        session,
        row={
            "id": uuid.uuid4(),
            "client_id": ("dfa_key_" if kind == "api_key" else "dfa_client_") + secrets.token_hex(8),
            "kind": kind, "user_id": owner.user_id, "label": label, "secret_hash": crypto.token_digest(secret),
            "expires_at": expires_at,
        },
    )
    await audit.record(session, kind="credential.issued", actor=owner.login, subject=credential.client_id,
                       details={"kind": kind, "label": label})
    return IssuedCredential(credential, _presented_secret(credential, secret))


async def _owned(session: AsyncSession, credential_id: uuid.UUID, *, principal: Principal) -> ApiCredential:
    found = await repository.find_credential_by_id(session, credential_id)
    if found is None or (not principal.is_staff and found[0].user_id != principal.user_id):
        raise CredentialNotFound(f"credential {credential_id} does not exist")
    return found[0]


async def list_credentials(session: AsyncSession, *, principal: Principal, limit: int) -> list[ApiCredential]:
    return await repository.list_credentials(
        session, user_id=None if principal.is_staff else principal.user_id, limit=limit
    )


async def rotate(session: AsyncSession, *, credential_id: uuid.UUID, principal: Principal) -> IssuedCredential:
    """Replace the secret; the old one stops working now. Raises Forbidden, CredentialNotFound, InvalidClient."""
    _require_person(principal)
    credential = await _owned(session, credential_id, principal=principal)
    if credential.revoked_at is not None:
        raise InvalidClient("a revoked credential cannot be rotated; issue a new one")
    secret = crypto.new_token()
    credential = await repository.update_credential(
        session, credential.id, secret_hash=crypto.token_digest(secret), rotated_at=_now()
    )
    await audit.record(session, kind="credential.rotated", actor=principal.login, subject=credential.client_id)
    return IssuedCredential(credential, _presented_secret(credential, secret))


async def revoke(session: AsyncSession, *, credential_id: uuid.UUID, principal: Principal) -> ApiCredential:
    """Revoke the credential and every token issued on it. Raises CredentialNotFound."""
    credential = await _owned(session, credential_id, principal=principal)
    if credential.revoked_at is None:
        credential = await repository.update_credential(session, credential.id, revoked_at=_now())
        await audit.record(session, kind="credential.revoked", actor=principal.login, subject=credential.client_id)
    return credential


def _usable(credential: ApiCredential, user_status: str) -> bool:
    now = _now()
    return (
        credential.revoked_at is None
        and (credential.expires_at is None or credential.expires_at > now)
        and user_status == "active"
    )


async def exchange_for_token(
    session: AsyncSession, *, client_id: str, client_secret: str, source: str, settings: Settings, keys: Keys
) -> tuple[str, datetime]:
    """OAuth2 client-credentials grant: an access token for a valid client. Raises TooManyAttempts, InvalidClient."""
    await limit_rate(session, bucket=f"token:{source}", limit=settings.sign_in_attempts_per_minute * 5)
    found = await repository.find_credential(session, client_id[:64])
    valid = (
        found is not None
        and found[0].kind == "oauth_client"
        and crypto.same_digest(found[0].secret_hash, crypto.token_digest(client_secret))
        and _usable(found[0], found[1].status)
    )
    if not valid:
        await audit.record(session, kind="token.refused", actor=client_id[:64], subject=client_id[:64], outcome="failure")
        raise InvalidClient("the client id or secret is wrong, or the client is revoked")
    credential, user = found
    await repository.update_credential(session, credential.id, last_used_at=_now())
    await audit.record(session, kind="token.issued", actor=client_id, subject=user.login)
    return keys.sign_access_token(subject=user.id, credential_id=credential.id, ttl_s=settings.access_token_ttl_s)


async def resolve_access_token(session: AsyncSession, *, token: str, keys: Keys) -> Principal | None:
    claims = keys.read_access_token(token)
    if claims is None:
        return None
    try:
        credential_id = uuid.UUID(claims["cid"])
    except ValueError:
        return None
    found = await repository.find_credential_by_id(session, credential_id)
    if found is None or not _usable(*found[:1], found[1].status) or str(found[1].id) != claims["sub"]:
        return None
    return principal_of(found[1], credential="access_token")


async def resolve_api_key(session: AsyncSession, *, key: str) -> Principal | None:
    client_id, _, secret = key.partition(API_KEY_SEPARATOR)
    found = await repository.find_credential(session, client_id[:64])
    if (
        found is None
        or found[0].kind != "api_key"
        or not crypto.same_digest(found[0].secret_hash, crypto.token_digest(secret))
        or not _usable(found[0], found[1].status)
    ):
        return None
    return principal_of(found[1], credential="api_key")
