"""Users, sign-in, sessions, second factor, password change and recovery (REQ-19, REQ-54)."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.access import STAFF_ROLES, Principal, Role
from dfa.platform.adapters.identification import IdentificationCentre
from dfa.platform.audit import service as audit
from dfa.platform.identity import crypto, repository
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.errors import (
    GrantInvalid,
    IdentityNotConfirmed,
    InvalidUser,
    LoginTaken,
    PasswordPolicyViolation,
    RemoteIdentificationNotAllowed,
    SecondFactorRequired,
    SignInFailed,
    TooManyAttempts,
    UserNotFound,
)
from dfa.platform.identity.models import Party, User
from dfa.platform.identity.service import parties
from dfa.platform.logs import client_address_var
from dfa.platform.settings import Settings

LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,99}$")
PASSWORD_MAX_LENGTH = 128  # argon2 takes any length; a cap keeps a huge password from costing CPU
TOTP_ISSUER = "DFA Platform"
# The most common passwords of breach corpora that still pass a length rule.
_COMMON_PASSWORDS = frozenset({
    "123456789012", "1234567890123", "password1234", "qwertyuiop12", "qwerty123456", "111111111111",
    "passwordpassword", "iloveyou1234", "administrator", "password12345", "qwertyqwerty", "abcdefghijkl",
})


def normalise_login(login: str) -> str:
    return login.strip().lower()


def check_password_policy(password: str, *, login: str, settings: Settings) -> None:
    """Length over composition (NIST SP 800-63B): long enough, not the login, not a known-common one.

    Raises PasswordPolicyViolation.
    """
    problems = []
    if len(password) < settings.password_min_length:
        problems.append(f"at least {settings.password_min_length} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(f"at most {PASSWORD_MAX_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        problems.append("no control characters")
    if login and login in password.lower():
        problems.append("must not contain the login")
    if password.lower() in _COMMON_PASSWORDS or len(set(password)) < 4:
        problems.append("must not be a common or repetitive password")
    if problems:
        raise PasswordPolicyViolation("the password needs " + "; ".join(problems))


def _now() -> datetime:
    return datetime.now(UTC)


def principal_of(user: User, *, credential: str, session_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        user_id=user.id, login=user.login, roles=frozenset(Role(r) for r in user.roles), party_id=user.party_id,
        credential=credential, session_id=session_id,
    )


async def create_user(
    session: AsyncSession,
    *,
    login: str,
    password: str,
    roles: list[str],
    party_id: uuid.UUID | None,
    actor: str,
    settings: Settings,
) -> User:
    """A new user. Staff act for the operator and have no party; investors and issuers act for one.

    Raises InvalidUser, PasswordPolicyViolation, PartyNotFound, LoginTaken.
    """
    login = normalise_login(login)
    if not LOGIN_PATTERN.match(login):
        raise InvalidUser("a login is 3 to 100 characters: a-z, 0-9, and . _ @ - (not first)")
    wanted = {Role(r) for r in roles}
    if not wanted:
        raise InvalidUser("a user has at least one role")
    staff = bool(wanted & STAFF_ROLES)
    if staff and wanted - STAFF_ROLES:
        raise InvalidUser("staff roles are not combined with investor or issuer roles")
    if staff and party_id is not None:
        raise InvalidUser("staff act for the operator and have no party")
    if not staff:
        if party_id is None:
            raise InvalidUser("an investor or issuer user acts for a party: give party_id")
        party = await parties.get_party(session, party_id)
        if Role.ISSUER in wanted and party.kind != "legal_entity":
            raise InvalidUser("an issuer is a legal entity")
        if Role.INVESTOR in wanted and Role.ISSUER not in wanted and party.kind != "person":
            raise InvalidUser("an investor user acts for a person")
    check_password_policy(password, login=login, settings=settings)
    user = await repository.insert_user(
        session,
        user={
            "id": uuid.uuid4(), "login": login, "password_hash": crypto.hash_password(password),
            "roles": sorted(r.value for r in wanted), "party_id": party_id,
        },
    )
    if user is None:
        raise LoginTaken(f"the login {login!r} is taken")
    await audit.record(session, kind="user.created", actor=actor, subject=login, details={"roles": user.roles})
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise UserNotFound(f"user {user_id} does not exist")
    return user


async def list_users(session: AsyncSession, *, after: uuid.UUID | None, limit: int) -> list[User]:
    return await repository.list_users(session, after=after, limit=limit)


async def limit_rate(session: AsyncSession, *, bucket: str, limit: int, window_s: int = 60) -> None:
    """Count an attempt against `bucket`; raises TooManyAttempts past `limit` in the current window."""
    now = _now()
    window_start = datetime.fromtimestamp(now.timestamp() // window_s * window_s, UTC)
    if await repository.count_attempt(session, bucket=bucket, window_start=window_start) > limit:
        error = TooManyAttempts(f"more than {limit} attempts in {window_s} s; wait and try again")
        error.headers = {"Retry-After": str(int((window_start + timedelta(seconds=window_s) - now).total_seconds()) + 1)}
        raise error


@dataclass(frozen=True)
class SignedIn:
    """A new cabinet session. `token` goes into the cookie and nowhere else."""

    user: User
    session_id: uuid.UUID
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class EnrolmentRequired:
    """The password was right, but the staff member has no second factor yet: enrol it first."""

    user: User
    enrolment_token: str
    provisioning_uri: str


def _totp_step(secret: str, code: str, *, now: datetime) -> int | None:
    """The 30-second step `code` belongs to (this one or its neighbours), or None."""
    totp = pyotp.TOTP(secret)
    for drift in (0, -1, 1):
        at = now + timedelta(seconds=30 * drift)
        if pyotp.utils.strings_equal(totp.at(at), code):
            return totp.timecode(at)
    return None


async def _fail(session: AsyncSession, user: User, *, reason: str, settings: Settings) -> SignInFailed:
    failures = user.failed_sign_ins + 1
    if failures >= settings.sign_in_max_failures:
        until = _now() + timedelta(seconds=settings.sign_in_lockout_s)
        await repository.update_user(session, user.id, failed_sign_ins=0, locked_until=until)
        await audit.record(
            session, kind="user.locked_out", actor=user.login, subject=user.login, outcome="failure",
            details={"until": until.isoformat(), "failures": failures},
        )
    else:
        await repository.update_user(session, user.id, failed_sign_ins=failures)
    return await _sign_in_failed(session, login=user.login, reason=reason)


async def _sign_in_failed(session: AsyncSession, *, login: str, reason: str) -> SignInFailed:
    """Record the failure (with its reason) and return the refusal to raise."""
    await audit.record(session, kind="sign_in.failed", actor=login, subject=login, outcome="failure",
                       details={"reason": reason})
    # One answer for a wrong login, a wrong password, a wrong code, a locked or disabled user: the
    # answer must not tell an attacker which logins exist or which guess was closest.
    return SignInFailed("the login, password or one-time code is wrong, or the user is locked; try again later")


async def _open_session(session: AsyncSession, user: User, *, settings: Settings) -> SignedIn:
    now = _now()
    token = crypto.new_token()
    session_id = uuid.uuid4()
    expires_at = now + timedelta(seconds=settings.session_absolute_timeout_s)
    await repository.insert_session(
        session,
        row={
            "token_hash": crypto.token_digest(token), "id": session_id, "user_id": user.id, "created_at": now,
            "last_seen_at": now, "expires_at": expires_at, "source_ip": client_address_var.get(),
        },
    )
    return SignedIn(user=user, session_id=session_id, token=token, expires_at=expires_at)


async def sign_in(
    session: AsyncSession,
    *,
    login: str,
    password: str,
    one_time_code: str | None,
    source: str,
    settings: Settings,
    keys: Keys,
) -> SignedIn | EnrolmentRequired:
    """Check a login, password and (for staff) a one-time code; open a session.

    Failures are counted: the caller's transaction must commit even when this raises, so the count,
    the lockout and the security events stay. Raises TooManyAttempts, SignInFailed, SecondFactorRequired.
    """
    login = normalise_login(login)[:100]
    await limit_rate(session, bucket=f"sign-in:{source}", limit=settings.sign_in_attempts_per_minute)
    user = await repository.get_user_by_login(session, login, for_update=True)
    password_ok = crypto.verify_password(user.password_hash if user else None, password)
    if user is None:
        raise await _sign_in_failed(session, login=login, reason="unknown_login")
    if user.status != "active":
        raise await _sign_in_failed(session, login=login, reason="disabled")
    if user.locked_until is not None and user.locked_until > _now():
        raise await _sign_in_failed(session, login=login, reason="locked")
    if not password_ok:
        raise await _fail(session, user, reason="wrong_password", settings=settings)
    if set(user.roles) & STAFF_ROLES:
        if user.totp_secret is None:
            return await _start_enrolment(session, user, keys=keys, settings=settings)
        if not one_time_code:
            raise SecondFactorRequired("staff sign in with a one-time code from their authenticator")
        secret = keys.unseal(user.totp_secret, context=user.id.bytes).decode()
        step = _totp_step(secret, one_time_code, now=_now())
        if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
            raise await _fail(session, user, reason="wrong_one_time_code", settings=settings)
        await repository.update_user(session, user.id, totp_last_step=step)
    values: dict = {"failed_sign_ins": 0, "locked_until": None}
    if crypto.password_needs_rehash(user.password_hash):
        values["password_hash"] = crypto.hash_password(password)
    await repository.update_user(session, user.id, **values)
    signed_in = await _open_session(session, user, settings=settings)
    await audit.record(session, kind="sign_in.succeeded", actor=login, subject=login,
                       details={"session": str(signed_in.session_id)})
    return signed_in


async def _start_enrolment(session: AsyncSession, user: User, *, keys: Keys, settings: Settings) -> EnrolmentRequired:
    secret = pyotp.random_base32()
    token = crypto.new_token()
    await repository.insert_grant(
        session,
        row={
            "token_hash": crypto.token_digest(token), "purpose": "totp_enrolment", "user_id": user.id,
            "sealed_secret": keys.seal(secret.encode(), context=user.id.bytes),
            "expires_at": _now() + timedelta(seconds=settings.recovery_ttl_s),
        },
    )
    await audit.record(session, kind="second_factor.enrolment_started", actor=user.login, subject=user.login)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.login, issuer_name=TOTP_ISSUER)
    return EnrolmentRequired(user=user, enrolment_token=token, provisioning_uri=uri)


async def complete_enrolment(
    session: AsyncSession, *, enrolment_token: str, one_time_code: str, settings: Settings, keys: Keys
) -> SignedIn:
    """Confirm the authenticator with its first code; the second factor is on and a session opens.

    Raises GrantInvalid, SignInFailed.
    """
    grant = await repository.use_grant(
        session, token_hash=crypto.token_digest(enrolment_token), purpose="totp_enrolment", now=_now()
    )
    if grant is None:
        raise GrantInvalid("the enrolment token is invalid, used or expired; sign in again")
    user = await get_user(session, grant.user_id)
    secret = keys.unseal(grant.sealed_secret, context=user.id.bytes).decode()
    step = _totp_step(secret, one_time_code, now=_now())
    if step is None:
        raise await _fail(session, user, reason="wrong_enrolment_code", settings=settings)
    await repository.update_user(session, user.id, totp_secret=grant.sealed_secret, totp_last_step=step)
    await audit.record(session, kind="second_factor.enrolled", actor=user.login, subject=user.login)
    signed_in = await _open_session(session, user, settings=settings)
    await audit.record(session, kind="sign_in.succeeded", actor=user.login, subject=user.login,
                       details={"session": str(signed_in.session_id)})
    return signed_in


async def set_second_factor(session: AsyncSession, *, user_id: uuid.UUID, secret: str, keys: Keys) -> None:
    """Install a known authenticator secret (seeding and tests; people enrol through sign-in)."""
    await repository.update_user(session, user_id, totp_secret=keys.seal(secret.encode(), context=user_id.bytes))


async def resolve_session(
    session: AsyncSession, *, token: str, settings: Settings
) -> tuple[Principal, bool] | None:
    """The principal of a live session and whether its last-seen time is worth refreshing, or None."""
    found = await repository.find_session(session, crypto.token_digest(token))
    if found is None:
        return None
    row, user = found
    now = _now()
    if (
        row.revoked_at is not None
        or row.expires_at <= now
        or row.last_seen_at + timedelta(seconds=settings.session_idle_timeout_s) <= now
        or user.status != "active"
    ):
        return None
    return principal_of(user, credential="session", session_id=row.id), now - row.last_seen_at > timedelta(seconds=60)


async def touch_session(session: AsyncSession, *, session_id: uuid.UUID) -> None:
    await repository.touch_session(session, session_id, now=_now())


async def purge_expired(session: AsyncSession, *, settings: Settings) -> int:
    """Delete sessions ended for a day, spent grants, and rate-limit windows older than an hour."""
    now = _now()
    ended = await repository.delete_spent(
        session, now=now, sessions_before=now - timedelta(days=1), idle=timedelta(seconds=settings.session_idle_timeout_s)
    )
    return ended + (
        await repository.delete_rate_counters_before(session, cutoff=now - timedelta(hours=1))
    )


async def sign_out(session: AsyncSession, *, principal: Principal) -> None:
    await repository.revoke_sessions(session, user_id=principal.user_id, now=_now(), only_id=principal.session_id)
    await audit.record(session, kind="sign_out", actor=principal.login, subject=principal.login)


async def change_password(
    session: AsyncSession, *, principal: Principal, current_password: str, new_password: str, settings: Settings
) -> None:
    """Set a new password after checking the current one; every other session of the user ends.

    Raises SignInFailed (wrong current password, counted like a failed sign-in), PasswordPolicyViolation.
    """
    user = await repository.get_user(session, principal.user_id, for_update=True)
    if user is None:
        raise UserNotFound(f"user {principal.user_id} does not exist")
    if not crypto.verify_password(user.password_hash, current_password):
        raise await _fail(session, user, reason="wrong_current_password", settings=settings)
    check_password_policy(new_password, login=user.login, settings=settings)
    if crypto.verify_password(user.password_hash, new_password):
        raise PasswordPolicyViolation("the new password must differ from the current one")
    await repository.update_user(
        session, user.id, password_hash=crypto.hash_password(new_password), password_changed_at=_now()
    )
    ended = await repository.revoke_sessions(session, user_id=user.id, now=_now(), except_id=principal.session_id)
    await audit.record(session, kind="password.changed", actor=user.login, subject=user.login,
                       details={"other_sessions_ended": ended})


@dataclass(frozen=True)
class RecoveryGrant:
    token: str
    expires_at: datetime


async def start_recovery(
    session: AsyncSession,
    *,
    login: str,
    identifier: str,
    sample: bytes,
    centre: IdentificationCentre,
    source: str,
    settings: Settings,
) -> RecoveryGrant:
    """Confirm the person's identity again through the identification data exchange centre before a
    lost password may be replaced (REQ-19). Returns a short-lived, single-use recovery grant.

    Raises TooManyAttempts, IdentityNotConfirmed, RemoteIdentificationNotAllowed, ExternalPartyUnavailable.
    """
    login = normalise_login(login)[:100]
    await limit_rate(session, bucket=f"recovery:{source}", limit=settings.sign_in_attempts_per_minute)
    await limit_rate(session, bucket=f"recovery-login:{login}", limit=5, window_s=3600)
    user = await repository.get_user_by_login(session, login)
    party: Party | None = await repository.get_party(session, user.party_id) if user and user.party_id else None
    if user is None or party is None or party.identifier != identifier:
        await audit.record(session, kind="password.recovery_refused", actor=login, subject=login, outcome="failure",
                           details={"reason": "login_and_iin_do_not_match"})
        raise IdentityNotConfirmed("the login and IIN do not belong to one identified person")
    if party.kind != "person" or not party.resident:
        raise RemoteIdentificationNotAllowed("this user's identity is confirmed in person at the operator's office")
    await parties.check_biometrics(
        session, centre=centre, identifier=party.identifier, sample=sample, purpose="password_recovery",
        resident=party.resident, party_id=party.id, expected_birth_date=party.birth_date, actor=login,
    )
    token = crypto.new_token()
    expires_at = _now() + timedelta(seconds=settings.recovery_ttl_s)
    await repository.insert_grant(
        session,
        row={"token_hash": crypto.token_digest(token), "purpose": "password_recovery", "user_id": user.id,
             "expires_at": expires_at},
    )
    await audit.record(session, kind="password.recovery_started", actor=login, subject=login)
    return RecoveryGrant(token=token, expires_at=expires_at)


async def complete_recovery(session: AsyncSession, *, recovery_token: str, new_password: str, settings: Settings) -> None:
    """Replace the password with a recovery grant; the user is unlocked and every session ends.

    Raises GrantInvalid, PasswordPolicyViolation.
    """
    digest = crypto.token_digest(recovery_token)
    grant = await repository.find_live_grant(session, token_hash=digest, purpose="password_recovery", now=_now())
    if grant is None:
        raise GrantInvalid("the recovery token is invalid, used or expired; confirm your identity again")
    user = await get_user(session, grant.user_id)
    check_password_policy(new_password, login=user.login, settings=settings)  # a weak choice keeps the token
    now = _now()
    await repository.use_grant(session, token_hash=digest, purpose="password_recovery", now=now)
    await repository.update_user(
        session, user.id, password_hash=crypto.hash_password(new_password), password_changed_at=now,
        failed_sign_ins=0, locked_until=None,
    )
    await repository.revoke_sessions(session, user_id=user.id, now=now)
    await audit.record(session, kind="password.recovered", actor=user.login, subject=user.login)


async def set_roles(session: AsyncSession, *, user_id: uuid.UUID, roles: list[str], actor: Principal) -> User:
    """Replace a user's roles. Raises UserNotFound, InvalidUser."""
    user = await repository.get_user(session, user_id, for_update=True)
    if user is None:
        raise UserNotFound(f"user {user_id} does not exist")
    wanted = {Role(r) for r in roles}
    staff = bool(wanted & STAFF_ROLES)
    if not wanted or (staff and wanted - STAFF_ROLES) or (staff != (user.party_id is None)):
        raise InvalidUser("staff roles go to staff users only and are not combined with investor or issuer roles")
    if user.id == actor.user_id and Role.OPERATOR_ADMIN not in wanted:
        raise InvalidUser("an administrator cannot remove their own administrator role")
    new_roles, old_roles = sorted(r.value for r in wanted), list(user.roles)
    await repository.update_user(session, user.id, roles=new_roles)
    await repository.revoke_sessions(session, user_id=user.id, now=_now())
    await audit.record(session, kind="role.changed", actor=actor.login, subject=user.login,
                       details={"from": old_roles, "to": new_roles})
    user.roles = new_roles
    return user


async def set_status(session: AsyncSession, *, user_id: uuid.UUID, status: str, actor: Principal) -> User:
    """Disable or re-enable a user (a disabled user's sessions and credentials stop working)."""
    user = await get_user(session, user_id)
    if user.id == actor.user_id:
        raise InvalidUser("you cannot disable yourself")
    await repository.update_user(session, user.id, status=status)
    if status == "disabled":
        await repository.revoke_sessions(session, user_id=user.id, now=_now())
    await audit.record(session, kind=f"user.{'disabled' if status == 'disabled' else 'enabled'}",
                       actor=actor.login, subject=user.login)
    user.status = status
    return user


async def unlock(session: AsyncSession, *, user_id: uuid.UUID, actor: Principal) -> User:
    user = await get_user(session, user_id)
    await repository.update_user(session, user.id, failed_sign_ins=0, locked_until=None)
    await audit.record(session, kind="user.unlocked", actor=actor.login, subject=user.login)
    user.failed_sign_ins, user.locked_until = 0, None
    return user


async def onboard_investor(
    session: AsyncSession,
    *,
    name: str,
    identifier: str,
    birth_date: date | None,
    sex: str | None,
    login: str,
    password: str,
    sample: bytes,
    centre: IdentificationCentre,
    source: str,
    settings: Settings,
) -> tuple[Party, User]:
    """Remote onboarding of a resident person: identity data checked, biometrics confirmed by the
    centre (REQ-15), an identified party and an investor user created together.

    Raises TooManyAttempts, InvalidIdentificationNumber, IdentityDataMismatch, UnderAge,
    PasswordPolicyViolation, InvalidUser, IdentityNotConfirmed, PartyAlreadyExists, LoginTaken,
    ExternalPartyUnavailable.
    """
    await limit_rate(session, bucket=f"onboarding:{source}", limit=settings.sign_in_attempts_per_minute)
    birth_date, sex = parties.check_identity_data(
        kind="person", identifier=identifier, birth_date=birth_date, sex=sex, today=parties.local_today(settings)
    )
    login = normalise_login(login)
    if not LOGIN_PATTERN.match(login):
        raise InvalidUser("a login is 3 to 100 characters: a-z, 0-9, and . _ @ - (not first)")
    check_password_policy(password, login=login, settings=settings)
    if await repository.get_party_by_identifier(session, identifier) is not None:
        raise RemoteIdentificationNotAllowed("this person is already a client; sign in or recover the password")
    check = await parties.check_biometrics(
        session, centre=centre, identifier=identifier, sample=sample, purpose="onboarding", resident=True,
        party_id=None, expected_birth_date=birth_date, actor=login,
    )
    party = await parties.create_party(
        session, kind="person", name=name, identifier=identifier, resident=True, settings=settings,
        birth_date=birth_date, sex=sex,
    )
    await parties.decide_kyc(
        session, party_id=party.id, status="identified", level="full", method="remote_biometric",
        reason="remote onboarding with a biometric check", actor=login, settings=settings, biometric_check_id=check.id,
    )
    user = await create_user(
        session, login=login, password=password, roles=[Role.INVESTOR], party_id=party.id, actor=login, settings=settings
    )
    return party, user
