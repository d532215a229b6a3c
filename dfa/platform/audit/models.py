"""Tables of the security-event log: the events and the head of their hash chain."""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, LargeBinary, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base


class SecurityEvent(Base):
    """One security-relevant event (REQ-55). Append-only; each row's hash covers the one before it."""

    __tablename__ = "security_events"
    __table_args__ = (
        CheckConstraint("outcome IN ('success', 'failure', 'denied')", name="outcome"),
        CheckConstraint("seq > 0", name="seq_positive"),
        Index("ix_security_events_kind_seq", "kind", "seq"),
        Index("ix_security_events_actor_seq", "actor", "seq"),
        Index("ix_security_events_subject_seq", "subject", "seq"),
        Index("ix_security_events_occurred_at", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict] = mapped_column(JSONB)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class SecurityEventHead(Base):
    """The single row naming the last event and its hash; appending locks it, so the chain is a line."""

    __tablename__ = "security_event_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
