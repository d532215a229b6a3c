"""Identity and access over HTTP: onboarding, sign-in, sessions, recovery, users, parties, credentials."""

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response, status

from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.identity import schemas
from dfa.platform.identity.errors import InvalidClient
from dfa.platform.identity.guard import SESSION_COOKIE, set_session_cookie
from dfa.platform.identity.service import credentials, parties, users
from dfa.platform.settings import Settings
from dfa.platform.types import Limit
from dfa.platform.web import (
    IdempotencyKeyHeader,
    IdentificationCentreDep,
    KeysDep,
    SecurityRoute,
    SessionDep,
    SettingsDep,
    UnitOfWorkRoute,
)

# Routes whose every attempt counts (failures are committed): no Idempotency-Key.
security = APIRouter(prefix="/v1", tags=["sign-in"], route_class=SecurityRoute)
router = APIRouter(prefix="/v1", route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Staff = Annotated[Principal, Depends(allow(*STAFF_ROLES))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
Issuer = Annotated[Principal, Depends(allow(Role.ISSUER, Role.OPERATOR_ADMIN))]
After = Annotated[uuid.UUID | None, Query(description="Return items with a larger id.")]


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_in(response: Response, signed_in: users.SignedIn, settings: Settings, keys) -> schemas.SignedInOut:
    set_session_cookie(response, signed_in, settings)
    response.headers["Cache-Control"] = "no-store"
    return schemas.SignedInOut(
        user=schemas.UserOut.model_validate(signed_in.user),
        csrf_token=keys.csrf_token(signed_in.token),
        expires_at=signed_in.expires_at,
    )


# Onboarding and sign-in


@security.post("/onboarding", status_code=status.HTTP_201_CREATED, response_model=schemas.OnboardingOut, tags=["parties"])
async def onboard(
    body: schemas.Onboarding, request: Request, session: SessionDep, settings: SettingsDep,
    centre: IdentificationCentreDep,
):
    """Remote onboarding of a resident adult: biometric check by the identification data exchange
    centre, then an identified party and an investor user (REQ-14, REQ-15, REQ-16)."""
    party, user = await users.onboard_investor(
        session, name=body.name, identifier=body.identifier, birth_date=body.birth_date, sex=body.sex,
        login=body.login, password=body.password, sample=body.biometric_sample, centre=centre,
        source=_source(request), settings=settings,
    )
    return schemas.OnboardingOut(party=schemas.PartyOut.model_validate(party), user=schemas.UserOut.model_validate(user))


@security.post(
    "/auth/sign-in", response_model=schemas.SignedInOut | schemas.EnrolmentRequiredOut,
    responses={401: {"description": "Wrong login, password or code, or the user is locked."}},
)
async def sign_in(
    body: schemas.SignIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep,
    keys: KeysDep,
):
    """Sign in with login and password (staff also with a one-time code); sets the session cookie."""
    result = await users.sign_in(
        session, login=body.login, password=body.password, one_time_code=body.one_time_code,
        source=_source(request), settings=settings, keys=keys,
    )
    if isinstance(result, users.EnrolmentRequired):
        response.headers["Cache-Control"] = "no-store"
        return schemas.EnrolmentRequiredOut(
            enrolment_token=result.enrolment_token, provisioning_uri=result.provisioning_uri
        )
    return _signed_in(response, result, settings, keys)


@security.post("/auth/second-factor", response_model=schemas.SignedInOut)
async def enrol_second_factor(
    body: schemas.SecondFactorEnrolment, response: Response, session: SessionDep, settings: SettingsDep, keys: KeysDep
):
    """Confirm a new authenticator with its first code; signs in."""
    signed_in = await users.complete_enrolment(
        session, enrolment_token=body.enrolment_token, one_time_code=body.one_time_code, settings=settings, keys=keys
    )
    return _signed_in(response, signed_in, settings, keys)


@security.post("/auth/sign-out", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(principal: Anyone, session: SessionDep, response: Response):
    """End this session."""
    if principal.session_id is not None:
        await users.sign_out(session, principal=principal)
    response.delete_cookie(SESSION_COOKIE, path="/")


@security.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(body: schemas.PasswordChange, principal: Anyone, session: SessionDep, settings: SettingsDep):
    """Change the password (the current one is required); other sessions end."""
    await users.change_password(
        session, principal=principal, current_password=body.current_password, new_password=body.new_password,
        settings=settings,
    )


@security.post("/auth/recovery", response_model=schemas.RecoveryGrantOut)
async def start_recovery(
    body: schemas.RecoveryStart, request: Request, response: Response, session: SessionDep, settings: SettingsDep,
    centre: IdentificationCentreDep,
):
    """Confirm your identity again (biometric check) to replace a lost password (REQ-19)."""
    grant = await users.start_recovery(
        session, login=body.login, identifier=body.identifier, sample=body.biometric_sample, centre=centre,
        source=_source(request), settings=settings,
    )
    response.headers["Cache-Control"] = "no-store"
    return schemas.RecoveryGrantOut(recovery_token=grant.token, expires_at=grant.expires_at)


@security.post("/auth/recovery/completion", status_code=status.HTTP_204_NO_CONTENT)
async def complete_recovery(body: schemas.RecoveryCompletion, session: SessionDep, settings: SettingsDep):
    """Set the new password with the recovery token; every session of the user ends."""
    await users.complete_recovery(session, recovery_token=body.recovery_token, new_password=body.new_password, settings=settings)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return client_id, secret


@security.post("/oauth/token", response_model=schemas.AccessTokenOut, tags=["credentials"])
async def issue_access_token(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    grant_type: Annotated[str, Form(min_length=1, max_length=50, description="client_credentials")],
    client_id: Annotated[str | None, Form(max_length=64, description="The client id (or use HTTP Basic).")] = None,
    client_secret: Annotated[str | None, Form(max_length=200, description="The client secret (or use HTTP Basic).")] = None,
):
    """OAuth2 client-credentials grant: a short-lived access token for an issuer's system."""
    if grant_type != "client_credentials":
        raise InvalidClient("only the client_credentials grant is supported")
    basic = _basic_credentials(request)
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise InvalidClient("give client_id and client_secret (form fields or HTTP Basic)")
    token, expires_at = await credentials.exchange_for_token(
        session, client_id=client_id, client_secret=client_secret, source=_source(request), settings=settings, keys=keys
    )
    response.headers["Cache-Control"] = "no-store"
    return schemas.AccessTokenOut(access_token=token, expires_in=int((expires_at - datetime.now(UTC)).total_seconds()))


# Who am I


@router.get("/me", response_model=schemas.MeOut, tags=["sign-in"])
async def me(principal: Anyone, session: SessionDep):
    """The signed-in user and the party they act for."""
    user = await users.get_user(session, principal.user_id)
    party = await parties.get_party(session, principal.party_id) if principal.party_id else None
    return schemas.MeOut(
        user=schemas.UserOut.model_validate(user),
        party=schemas.PartyOut.model_validate(party) if party else None,
        credential=principal.credential,
    )


# Users (operator administrators)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=schemas.UserOut, tags=["users"])
async def create_user(
    body: schemas.UserCreate, principal: Admin, session: SessionDep, settings: SettingsDep, _key: IdempotencyKeyHeader
):
    """Create a user; staff enrol their authenticator at their first sign-in."""
    return await users.create_user(
        session, login=body.login, password=body.password, roles=list(body.roles), party_id=body.party_id,
        actor=principal.login, settings=settings,
    )


@router.get("/users", response_model=list[schemas.UserOut], tags=["users"])
async def list_users(
    _principal: Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.AUDITOR))],
    session: SessionDep, settings: SettingsDep, after: After = None, limit: Limit = None,
):
    return await users.list_users(session, after=after, limit=settings.page_size(limit))


@router.get("/users/{user_id}", response_model=schemas.UserOut, tags=["users"])
async def get_user(
    user_id: uuid.UUID, _principal: Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.AUDITOR))],
    session: SessionDep,
):
    return await users.get_user(session, user_id)


@router.put("/users/{user_id}/roles", response_model=schemas.UserOut, tags=["users"])
async def set_roles(
    user_id: uuid.UUID, body: schemas.RolesUpdate, principal: Admin, session: SessionDep, _key: IdempotencyKeyHeader
):
    """Replace a user's roles; the user's sessions end."""
    return await users.set_roles(session, user_id=user_id, roles=list(body.roles), actor=principal)


@router.post("/users/{user_id}/unlock", response_model=schemas.UserOut, tags=["users"])
async def unlock_user(user_id: uuid.UUID, principal: Admin, session: SessionDep, _key: IdempotencyKeyHeader):
    """Lift a lockout after failed sign-ins."""
    return await users.unlock(session, user_id=user_id, actor=principal)


@router.post("/users/{user_id}/disable", response_model=schemas.UserOut, tags=["users"])
async def disable_user(user_id: uuid.UUID, principal: Admin, session: SessionDep, _key: IdempotencyKeyHeader):
    """Disable a user: sessions end, credentials stop working."""
    return await users.set_status(session, user_id=user_id, status="disabled", actor=principal)


@router.post("/users/{user_id}/enable", response_model=schemas.UserOut, tags=["users"])
async def enable_user(user_id: uuid.UUID, principal: Admin, session: SessionDep, _key: IdempotencyKeyHeader):
    return await users.set_status(session, user_id=user_id, status="active", actor=principal)


# Parties and identification


@router.post("/parties", status_code=status.HTTP_201_CREATED, response_model=schemas.PartyOut, tags=["parties"])
async def create_party(
    body: schemas.PartyCreate,
    _principal: Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER))],
    session: SessionDep,
    settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Register a person or legal entity; it is identified separately before it may operate."""
    return await parties.create_party(
        session, kind=body.kind, name=body.name, identifier=body.identifier, resident=body.resident,
        birth_date=body.birth_date, sex=body.sex, settings=settings,
    )


@router.get("/parties", response_model=list[schemas.PartyOut], tags=["parties"])
async def list_parties(principal: Anyone, session: SessionDep, settings: SettingsDep, after: After = None, limit: Limit = None):
    """Parties; investors and issuers see only their own."""
    return await parties.list_parties(
        session, after=after, limit=settings.page_size(limit), visible_to=principal.owner_filter()
    )


@router.get("/parties/{party_id}", response_model=schemas.PartyOut, tags=["parties"])
async def get_party(party_id: uuid.UUID, principal: Anyone, session: SessionDep):
    return await parties.get_party(session, party_id, visible_to=principal.owner_filter())


@router.get("/parties/{party_id}/kyc-history", response_model=list[schemas.KycEventOut], tags=["parties"])
async def kyc_history(party_id: uuid.UUID, principal: Anyone, session: SessionDep):
    """The party's identification history, oldest first."""
    return await parties.kyc_history(session, party_id, visible_to=principal.owner_filter())


@router.post("/parties/{party_id}/kyc-decisions", response_model=schemas.PartyOut, tags=["parties"])
async def decide_kyc(
    party_id: uuid.UUID,
    body: schemas.KycDecision,
    principal: Annotated[Principal, Depends(allow(Role.COMPLIANCE_OFFICER))],
    session: SessionDep,
    settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Record an identification decision: identified in person, suspended, rejected."""
    return await parties.decide_kyc(
        session, party_id=party_id, status=body.status, level=body.level, method=body.method, reason=body.reason,
        actor=principal.login, settings=settings,
    )


@security.post("/parties/{party_id}/biometric-identification", response_model=schemas.PartyOut, tags=["parties"])
async def identify_remotely(
    party_id: uuid.UUID,
    body: schemas.BiometricIdentification,
    principal: Annotated[Principal, Depends(allow(Role.INVESTOR, Role.COMPLIANCE_OFFICER))],
    session: SessionDep,
    settings: SettingsDep,
    centre: IdentificationCentreDep,
):
    """Identify a resident person remotely through the identification data exchange centre (REQ-15)."""
    return await parties.identify_remotely(
        session, party_id=party_id, sample=body.biometric_sample, centre=centre, actor=principal.login,
        settings=settings, visible_to=principal.owner_filter(),
    )


# API credentials


# Issuing and rotating answer with a secret, so they are not idempotent: a stored replay would keep
# the secret at rest. A retried issue makes a second credential, which its owner can revoke.
@security.post("/credentials", status_code=status.HTTP_201_CREATED, response_model=schemas.IssuedCredentialOut, tags=["credentials"])
async def issue_credential(
    body: schemas.CredentialCreate, response: Response,
    principal: Annotated[Principal, Depends(allow(Role.ISSUER))], session: SessionDep,
):
    """Issue an OAuth2 client or an API key for your systems; the secret is shown only now."""
    issued = await credentials.issue(
        session, owner=principal, kind=body.kind, label=body.label, expires_at=body.expires_at
    )
    response.headers["Cache-Control"] = "no-store"
    return schemas.IssuedCredentialOut(credential=schemas.CredentialOut.model_validate(issued.credential), secret=issued.secret)


@router.get("/credentials", response_model=list[schemas.CredentialOut], tags=["credentials"])
async def list_credentials(principal: Issuer, session: SessionDep, settings: SettingsDep, limit: Limit = None):
    """Your credentials (administrators: everyone's)."""
    return await credentials.list_credentials(session, principal=principal, limit=settings.page_size(limit))


@security.post("/credentials/{credential_id}/rotation", response_model=schemas.IssuedCredentialOut, tags=["credentials"])
async def rotate_credential(
    credential_id: uuid.UUID, response: Response,
    principal: Annotated[Principal, Depends(allow(Role.ISSUER))], session: SessionDep,
):
    """Replace the secret; the old one stops working at once."""
    issued = await credentials.rotate(session, credential_id=credential_id, principal=principal)
    response.headers["Cache-Control"] = "no-store"
    return schemas.IssuedCredentialOut(credential=schemas.CredentialOut.model_validate(issued.credential), secret=issued.secret)


@router.post("/credentials/{credential_id}/revocation", response_model=schemas.CredentialOut, tags=["credentials"])
async def revoke_credential(credential_id: uuid.UUID, principal: Issuer, session: SessionDep, _key: IdempotencyKeyHeader):
    """Revoke the credential; its access tokens stop working at once."""
    return await credentials.revoke(session, credential_id=credential_id, principal=principal)
