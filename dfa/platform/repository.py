"""Every SQL statement of the idempotency store and the outbox."""

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.models import IdempotencyRecord, OutboxMessage


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



async def insert_outbox_message(session: AsyncSession, *, topic: str, payload: dict[str, Any]) -> int:
    statement = insert(OutboxMessage).values(topic=topic, payload=payload).returning(OutboxMessage.id)
    return (await session.execute(statement)).scalar_one()


async def lock_pending_outbox_messages(session: AsyncSession, *, topic: str, limit: int) -> list[OutboxMessage]:
    statement = (
        select(OutboxMessage)
        .where(OutboxMessage.topic == topic, OutboxMessage.delivered_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(statement)).scalars())


async def mark_outbox_messages_delivered(session: AsyncSession, *, ids: list[int]) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(delivered_at=func.now())
        .execution_options(synchronize_session=False)
    )


async def pending_outbox_messages(
    session: AsyncSession, *, topic: str, limit: int, after: int | None
) -> list[OutboxMessage]:
    statement = (
        select(OutboxMessage)
        .where(OutboxMessage.topic == topic, OutboxMessage.delivered_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(OutboxMessage.id > after)
    return list((await session.execute(statement)).scalars())
