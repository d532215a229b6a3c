"""The idempotency store and the transactional outbox. Flushes, never commits."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform import faults, repository
from dfa.platform.errors import IdempotencyKeyInvalid, IdempotencyKeyReusedWithDifferentRequest
from dfa.platform.models import OutboxMessage
from dfa.platform.settings import Settings

IDEMPOTENCY_KEY_MAX_LENGTH = 200
# Printable ASCII without spaces, as `validate_idempotency_key` accepts (for the API description).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]+$"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    content_type: str
    body: bytes


def request_fingerprint(*, method: str, path: str, query: str, body: bytes) -> bytes:
    """What makes two requests "the same" for idempotency: method, path, query and exact body."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    digest.update(body)
    return digest.digest()


def validate_idempotency_key(key: str) -> str:
    """Raises IdempotencyKeyInvalid unless the key is 1..200 printable ASCII characters."""
    if not (0 < len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH) or not all(33 <= ord(c) <= 126 for c in key):
        raise IdempotencyKeyInvalid(
            f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters without spaces"
        )
    return key


async def claim_idempotency_key(
    session: AsyncSession, *, principal: str, key: str, request_hash: bytes
) -> StoredResponse | None:
    """Reserve the key for this request in the caller's transaction.

    Returns None when the request is new (the caller runs it, then calls `store_response`), or the
    first response when it is a replay. A concurrent request with the same key waits for the first
    one's transaction to end. Raises IdempotencyKeyReusedWithDifferentRequest.
    """
    if faults.enabled(faults.IDEMPOTENCY_UNCLAIMED):
        return None  # deliberately broken (fault injection only): nothing claimed, so nothing stored to replay
    if await repository.claim_idempotency_key(
        session, principal=principal, key=key, request_hash=request_hash
    ):
        return None
    record = await repository.get_idempotency_record(session, principal=principal, key=key)
    if record is None or record.status_code is None:
        # The first request's transaction rolled back between our insert and our read: claim again.
        return await claim_idempotency_key(
            session, principal=principal, key=key, request_hash=request_hash
        )
    if record.request_hash != request_hash:
        raise IdempotencyKeyReusedWithDifferentRequest(
            f"Idempotency-Key {key!r} was first used for a different request", key=key
        )
    return StoredResponse(record.status_code, record.content_type or "application/json", record.response_body or b"")


async def store_response(
    session: AsyncSession, *, principal: str, key: str, response: StoredResponse
) -> None:
    await repository.store_idempotent_response(
        session,
        principal=principal,
        key=key,
        status_code=response.status_code,
        content_type=response.content_type,
        body=response.body,
    )


async def purge_idempotency_records(session: AsyncSession, *, settings: Settings) -> int:
    """Forget stored responses older than the retention period; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(hours=settings.idempotency_retention_hours)
    return await repository.delete_idempotency_records_before(session, cutoff=cutoff)


# --- the transactional outbox --------------------------------------------------------------------


async def enqueue(session: AsyncSession, *, topic: str, payload: dict[str, Any]) -> int:
    """Write a message in the caller's transaction: it exists exactly when the caller's work commits."""
    return await repository.insert_outbox_message(session, topic=topic, payload=payload)


NOTIFICATIONS = "notifications"


async def notify(session: AsyncSession, *, audience: Iterable[str], kind: str, **details: Any) -> int:
    """Tell the users holding these roles about `kind`, through the outbox: the notice exists exactly when
    the caller's work commits, and the delivery worker hands it on."""
    return await enqueue(session, topic=NOTIFICATIONS, payload={"audience": [str(r) for r in audience], "kind": kind, **details})


async def claim_messages(session: AsyncSession, *, topic: str, limit: int) -> list[OutboxMessage]:
    """The oldest undelivered messages of `topic`, in the order they were written, locked for the
    caller's transaction (other consumers skip them); the caller hands them on and then calls
    `mark_delivered` in the same transaction, so each is handed on exactly once."""
    return await repository.lock_pending_outbox_messages(session, topic=topic, limit=limit)


async def mark_delivered(session: AsyncSession, *, messages: list[OutboxMessage]) -> None:
    if messages:
        await repository.mark_outbox_messages_delivered(session, ids=[message.id for message in messages])


async def pending_messages(
    session: AsyncSession, *, topic: str, limit: int, after: int | None = None
) -> list[OutboxMessage]:
    """Undelivered messages of `topic`, oldest first, without locking them (for status and checks)."""
    return await repository.pending_outbox_messages(session, topic=topic, limit=limit, after=after)
