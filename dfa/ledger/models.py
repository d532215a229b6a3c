"""Tables of the ledger. Balances change only through the journal functions in the migrations."""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base, one_of

# Contra accounts mirror something outside the holders' books (the money at the bank, the units
# in circulation); their balance is never positive. Every other kind is never negative.
CONTRA_KINDS = ("issued", "client_money", "own_money")
HOLDER_KINDS = ("available", "held")
ACCOUNT_KINDS = (*HOLDER_KINDS, *CONTRA_KINDS, "settlement", "fees")
TRANSFER_KINDS = ("transfer", "hold", "post", "void", "expire")
HOLD_STATUSES = ("pending", "posted", "voided", "expired")


class Asset(Base):
    """KZT (amounts in tiyn) or one DFA emission (quantities in whole units)."""

    __tablename__ = "ledger_assets"
    __table_args__ = (
        CheckConstraint("kind IN ('money', 'dfa')", name="kind"),
        CheckConstraint("scale BETWEEN 0 AND 8", name="scale"),
        CheckConstraint("code ~ '^[A-Z0-9][A-Z0-9._-]{0,49}$'", name="code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    scale: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Account(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(one_of("kind", ACCOUNT_KINDS), name="kind"),
        CheckConstraint(
            f"CASE WHEN {one_of('kind', CONTRA_KINDS)} THEN balance <= 0 ELSE balance >= 0 END",
            name="balance_sign",
        ),
        CheckConstraint("version >= 0", name="version"),
        # One available/held pair per holder and asset, one issued account per emission.
        Index(
            "uq_ledger_accounts_holder",
            "owner_party_id",
            "asset_id",
            "kind",
            unique=True,
            postgresql_where=text("kind IN ('available', 'held')"),
        ),
        Index(
            "uq_ledger_accounts_issued",
            "asset_id",
            unique=True,
            postgresql_where=text("kind = 'issued'"),
        ),
        Index("ix_ledger_accounts_asset_kind", "asset_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    owner_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    kind: Mapped[str] = mapped_column(String(20))
    balance: Mapped[int] = mapped_column(BigInteger, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Transfer(Base):
    """One movement of an amount of one asset from a debit account to a credit account. Append-only."""

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        CheckConstraint(one_of("kind", TRANSFER_KINDS), name="kind"),
        Index("ix_ledger_transfers_batch_id", "batch_id", postgresql_where=text("batch_id IS NOT NULL")),
        Index("ix_ledger_transfers_hold_id", "hold_id", postgresql_where=text("hold_id IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    debit_account_id: Mapped[int] = mapped_column(BigInteger)
    credit_account_id: Mapped[int] = mapped_column(BigInteger)
    asset_id: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))
    hold_id: Mapped[uuid.UUID | None]
    batch_id: Mapped[uuid.UUID | None]
    code: Mapped[int] = mapped_column(Integer, server_default="0")
    reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Entry(Base):
    """One side of a transfer on one account, chained to that account's previous entry. Append-only."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("seq > 0", name="seq_positive"),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_ledger_entries_account_id_created_at", "account_id", "created_at"),
    )

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    transfer_id: Mapped[uuid.UUID]
    counter_account_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class Hold(Base):
    """A reservation moved from a holder's available account to its held twin until posted or voided."""

    __tablename__ = "ledger_holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "posted_amount >= 0 AND released_amount >= 0 AND posted_amount + released_amount <= amount",
            name="amounts",
        ),
        CheckConstraint(one_of("status", HOLD_STATUSES), name="status"),
        CheckConstraint(
            "(status = 'pending') = (posted_amount + released_amount < amount)", name="closed_when_exhausted"
        ),
        Index(
            "ix_ledger_holds_expiry", "expires_at", postgresql_where=text("status = 'pending' AND expires_at IS NOT NULL")
        ),
        Index("ix_ledger_holds_account_id", "account_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    held_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    asset_id: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    posted_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    released_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    status: Mapped[str] = mapped_column(String(10))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Batch(Base):
    """A linked batch: its items committed together or not at all; the id makes it exactly-once."""

    __tablename__ = "ledger_batches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    item_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
