"""Every SQL statement of identity and access."""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.identity.models import (
    ApiCredential,
    BiometricCheck,
    Grant,
    KycEvent,
    Party,
    RateCounter,
    User,
    UserSession,
)

# Parties


async def insert_party(session: AsyncSession, *, party: dict) -> Party | None:
    """The new party, or None when its identifier is taken."""
    statement = pg_insert(Party).values(**party).on_conflict_do_nothing().returning(Party)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_party(session: AsyncSession, party_id: uuid.UUID, *, for_update: bool = False) -> Party | None:
    statement = select(Party).where(Party.id == party_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_parties(session: AsyncSession, party_ids: set[uuid.UUID]) -> dict[uuid.UUID, Party]:
    rows = await session.execute(select(Party).where(Party.id.in_(party_ids)))
    return {party.id: party for party in rows.scalars()}


async def get_party_by_identifier(session: AsyncSession, identifier: str) -> Party | None:
    return (await session.execute(select(Party).where(Party.identifier == identifier))).scalar_one_or_none()


async def list_parties(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, only: uuid.UUID | None
) -> list[Party]:
    statement = select(Party).order_by(Party.id).limit(limit)
    if after is not None:
        statement = statement.where(Party.id > after)
    if only is not None:
        statement = statement.where(Party.id == only)
    return list((await session.execute(statement)).scalars())


async def set_kyc(session: AsyncSession, *, party_id: uuid.UUID, status: str, level: str, identified_at: datetime | None) -> None:
    await session.execute(
        update(Party).where(Party.id == party_id).values(kyc_status=status, kyc_level=level, identified_at=identified_at)
    )


async def add_kyc_event(session: AsyncSession, *, event: dict) -> KycEvent:
    row = KycEvent(**event)
    session.add(row)
    await session.flush()
    return row


async def kyc_history(session: AsyncSession, party_id: uuid.UUID) -> list[KycEvent]:
    rows = await session.execute(select(KycEvent).where(KycEvent.party_id == party_id).order_by(KycEvent.id))
    return list(rows.scalars())


async def add_biometric_check(session: AsyncSession, *, check: dict) -> BiometricCheck:
    row = BiometricCheck(**check)
    session.add(row)
    await session.flush()
    return row


# Users and sessions


async def insert_user(session: AsyncSession, *, user: dict) -> User | None:
    statement = pg_insert(User).values(**user).on_conflict_do_nothing().returning(User)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
    statement = select(User).where(User.id == user_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_user_by_login(session: AsyncSession, login: str, *, for_update: bool = False) -> User | None:
    statement = select(User).where(User.login == login)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_users(session: AsyncSession, *, after: uuid.UUID | None, limit: int) -> list[User]:
    statement = select(User).order_by(User.id).limit(limit)
    if after is not None:
        statement = statement.where(User.id > after)
    return list((await session.execute(statement)).scalars())


async def update_user(session: AsyncSession, user_id: uuid.UUID, **values) -> None:
    await session.execute(update(User).where(User.id == user_id).values(**values))


async def insert_session(session: AsyncSession, *, row: dict) -> None:
    session.add(UserSession(**row))
    await session.flush()


async def find_session(session: AsyncSession, token_hash: bytes) -> tuple[UserSession, User] | None:
    statement = select(UserSession, User).join(User, User.id == UserSession.user_id).where(
        UserSession.token_hash == token_hash
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else (row[0], row[1])


async def touch_session(session: AsyncSession, session_id: uuid.UUID, *, now: datetime) -> None:
    await session.execute(update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now))


async def revoke_sessions(
    session: AsyncSession, *, user_id: uuid.UUID, now: datetime, except_id: uuid.UUID | None = None,
    only_id: uuid.UUID | None = None,
) -> int:
    statement = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if except_id is not None:
        statement = statement.where(UserSession.id != except_id)
    if only_id is not None:
        statement = statement.where(UserSession.id == only_id)
    return (await session.execute(statement.values(revoked_at=now))).rowcount


async def insert_grant(session: AsyncSession, *, row: dict) -> None:
    session.add(Grant(**row))
    await session.flush()


def _live_grant(token_hash: bytes, purpose: str, now: datetime):
    return (Grant.token_hash == token_hash, Grant.purpose == purpose, Grant.used_at.is_(None), Grant.expires_at > now)


async def use_grant(session: AsyncSession, *, token_hash: bytes, purpose: str, now: datetime) -> Grant | None:
    """Marks the grant used and returns it, when it exists, is unused, unexpired and for `purpose`."""
    statement = update(Grant).where(*_live_grant(token_hash, purpose, now)).values(used_at=now).returning(Grant)
    return (await session.execute(statement)).scalar_one_or_none()


async def find_live_grant(session: AsyncSession, *, token_hash: bytes, purpose: str, now: datetime) -> Grant | None:
    """The grant, locked, when it exists, is unused, unexpired and for `purpose`; it stays unused."""
    statement = select(Grant).where(*_live_grant(token_hash, purpose, now)).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


# API credentials


async def insert_credential(session: AsyncSession, *, row: dict) -> ApiCredential:
    credential = ApiCredential(**row)
    session.add(credential)
    await session.flush()
    return credential


async def _credential_with_user(session: AsyncSession, condition) -> tuple[ApiCredential, User] | None:
    statement = select(ApiCredential, User).join(User, User.id == ApiCredential.user_id).where(condition)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else (row[0], row[1])


async def find_credential(session: AsyncSession, client_id: str) -> tuple[ApiCredential, User] | None:
    return await _credential_with_user(session, ApiCredential.client_id == client_id)


async def find_credential_by_id(session: AsyncSession, credential_id: uuid.UUID) -> tuple[ApiCredential, User] | None:
    return await _credential_with_user(session, ApiCredential.id == credential_id)


async def list_credentials(session: AsyncSession, *, user_id: uuid.UUID | None, limit: int) -> list[ApiCredential]:
    statement = select(ApiCredential).order_by(ApiCredential.created_at, ApiCredential.id).limit(limit)
    if user_id is not None:
        statement = statement.where(ApiCredential.user_id == user_id)
    return list((await session.execute(statement)).scalars())


async def update_credential(session: AsyncSession, credential_id: uuid.UUID, **values) -> ApiCredential:
    statement = update(ApiCredential).where(ApiCredential.id == credential_id).values(**values).returning(ApiCredential)
    return (await session.execute(statement)).scalar_one()


# Rate limits


async def count_attempt(session: AsyncSession, *, bucket: str, window_start: datetime) -> int:
    """Adds one attempt to the bucket's window and returns the window's count."""
    statement = (
        pg_insert(RateCounter)
        .values(bucket=bucket, window_start=window_start, count=1)
        .on_conflict_do_update(
            index_elements=[RateCounter.bucket, RateCounter.window_start], set_={"count": RateCounter.count + 1}
        )
        .returning(RateCounter.count)
    )
    return (await session.execute(statement)).scalar_one()


async def delete_rate_counters_before(session: AsyncSession, *, cutoff: datetime) -> int:
    return (await session.execute(delete(RateCounter).where(RateCounter.window_start < cutoff))).rowcount


async def delete_spent(session: AsyncSession, *, now: datetime, sessions_before: datetime, idle: timedelta) -> int:
    """Delete sessions that ended (expired, revoked or idled out) before `sessions_before`, and grants
    used or expired."""
    ended = delete(UserSession).where(
        (UserSession.expires_at < sessions_before) | (UserSession.revoked_at < sessions_before)
        | (UserSession.last_seen_at < sessions_before - idle)
    )
    spent = delete(Grant).where((Grant.expires_at < now) | Grant.used_at.is_not(None))
    return (await session.execute(ended)).rowcount + (await session.execute(spent)).rowcount
