"""Every SQL statement of the platform module."""

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.models import IdempotencyRecord, Party


async def insert_party(session: AsyncSession, *, party: dict) -> Party | None:
    """The new party, or None when its identifier is taken."""
    statement = pg_insert(Party).values(**party).on_conflict_do_nothing().returning(Party)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_party(session: AsyncSession, party_id: uuid.UUID) -> Party | None:
    return await session.get(Party, party_id)


async def get_party_by_identifier(session: AsyncSession, identifier: str) -> Party | None:
    return (
        await session.execute(select(Party).where(Party.identifier == identifier))
    ).scalar_one_or_none()


async def list_parties(session: AsyncSession, *, after: uuid.UUID | None, limit: int) -> list[Party]:
    statement = select(Party).order_by(Party.id).limit(limit)
    if after is not None:
        statement = statement.where(Party.id > after)
    return list((await session.execute(statement)).scalars())


async def claim_idempotency_key(
    session: AsyncSession, *, principal: str, key: str, request_hash: bytes
) -> bool:
    """Insert the key; False when it exists. Waits while another transaction holds the same key."""
    statement = (
        pg_insert(IdempotencyRecord)
        .values(principal=principal, key=key, request_hash=request_hash)
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def get_idempotency_record(
    session: AsyncSession, *, principal: str, key: str
) -> IdempotencyRecord | None:
    return await session.get(IdempotencyRecord, (principal, key))


async def store_idempotent_response(
    session: AsyncSession, *, principal: str, key: str, status_code: int, content_type: str, body: bytes
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
        .values(status_code=status_code, content_type=content_type, response_body=body)
    )


async def delete_idempotency_records_before(session: AsyncSession, *, cutoff: datetime) -> int:
    result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return result.rowcount

