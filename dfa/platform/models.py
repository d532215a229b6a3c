"""Tables of the platform module: the idempotency store and the transactional outbox."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base


class IdempotencyRecord(Base):
    """The first response to a mutating request, replayed when the same key comes again."""

    __tablename__ = "idempotency_records"

    principal: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class OutboxMessage(Base):
    """A message written in the same transaction as the change it reports, delivered after commit.

    Consumers claim undelivered messages of their topic in id order and mark them delivered in the
    transaction that hands them on, so each is handed on exactly once.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_pending", "topic", "id", postgresql_where=text("delivered_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
