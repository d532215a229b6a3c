"""Every SQL statement of the idempotency store."""

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.models import IdempotencyRecord


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

