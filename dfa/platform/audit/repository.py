"""Every SQL statement of the security-event log."""

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.audit.models import SecurityEvent, SecurityEventHead


async def lock_head(session: AsyncSession) -> SecurityEventHead:
    """The chain's head, locked until the caller's transaction ends (appends form one line)."""
    statement = select(SecurityEventHead).where(SecurityEventHead.id == 1).with_for_update()
    return (await session.execute(statement)).scalar_one()


async def get_head(session: AsyncSession) -> SecurityEventHead:
    return (await session.execute(select(SecurityEventHead).where(SecurityEventHead.id == 1))).scalar_one()


async def append(session: AsyncSession, *, event: dict) -> None:
    session.add(SecurityEvent(**event))
    await session.flush()
    await session.execute(
        update(SecurityEventHead).where(SecurityEventHead.id == 1).values(seq=event["seq"], hash=event["hash"])
    )


async def search(
    session: AsyncSession,
    *,
    kind: str | None,
    actor: str | None,
    subject: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    before: int | None,
    limit: int,
) -> list[SecurityEvent]:
    """Newest first."""
    statement = select(SecurityEvent).order_by(SecurityEvent.seq.desc()).limit(limit)
    if kind is not None:
        statement = statement.where(
            SecurityEvent.kind.startswith(kind[:-1], autoescape=True) if kind.endswith(".") else SecurityEvent.kind == kind
        )
    for column, value in ((SecurityEvent.actor, actor), (SecurityEvent.subject, subject), (SecurityEvent.outcome, outcome)):
        if value is not None:
            statement = statement.where(column == value)
    if since is not None:
        statement = statement.where(SecurityEvent.occurred_at >= since)
    if until is not None:
        statement = statement.where(SecurityEvent.occurred_at < until)
    if before is not None:
        statement = statement.where(SecurityEvent.seq < before)
    return list((await session.execute(statement)).scalars())


async def stream_in_order(session: AsyncSession, *, chunk: int) -> AsyncIterator[SecurityEvent]:
    result = await session.stream(
        select(SecurityEvent).order_by(SecurityEvent.seq).execution_options(yield_per=chunk)
    )
    async for event in result.scalars():
        yield event
