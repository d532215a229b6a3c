"""Tables of settlement: money in and out through the operator's bank, settlement instructions, the
order book and its trades, and emissions' trading status."""

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base, one_of

BANK_ACCOUNT_STATUSES = ("unverified", "verified", "revoked")
# credited: matched to a client by its payment reference; assigned: credited by staff from the
# unmatched queue; returned: sent back to the payer by staff; withdrawal: a payment order of ours.
LINE_STATUSES = ("credited", "unmatched", "assigned", "returned", "withdrawal")
WITHDRAWAL_STATUSES = ("requested", "submitted", "sent", "refused", "cancelled")
PAYMENT_RUN_STATUSES = ("built", "accepted", "refused")

INSTRUCTION_KINDS = ("dvp", "dvd")
INSTRUCTION_ORIGINS = ("bilateral", "order_book", "placement", "redemption")
INSTRUCTION_STATUSES = ("pending", "settled", "failed", "cancelled")
INSTRUCTION_EVENTS = ("submitted", "matched", "settled", "failed", "cancelled")
ORDER_SIDES = ("buy", "sell")
TIME_IN_FORCE = ("gtc", "day")
ORDER_STATUSES = ("open", "filled", "cancelled", "expired")


# --- money in and out -----------------------------------------------------------------------------


class PaymentReference(Base):
    """The reference a client writes on a bank transfer to the client-money account so that the
    deposit is credited to them."""

    __tablename__ = "settlement_payment_references"

    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BankAccount(Base):
    """A client's own account at a bank, where withdrawals are paid; verified before it is paid to."""

    __tablename__ = "settlement_bank_accounts"
    __table_args__ = (
        CheckConstraint(one_of("status", BANK_ACCOUNT_STATUSES), name="status"),
        Index("uq_settlement_bank_accounts_party_iban", "party_id", "iban", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    iban: Mapped[str] = mapped_column(String(34))
    holder_name: Mapped[str] = mapped_column(String(140))
    status: Mapped[str] = mapped_column(String(20))
    verified_by: Mapped[str | None] = mapped_column(String(200))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StatementImport(Base):
    """One bank statement as it was imported: which lines were new and what became of them."""

    __tablename__ = "settlement_statement_imports"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_iban: Mapped[str] = mapped_column(String(34))
    statement_id: Mapped[str] = mapped_column(String(100))
    digest: Mapped[bytes] = mapped_column(LargeBinary)
    lines_total: Mapped[int] = mapped_column(Integer)
    lines_new: Mapped[int] = mapped_column(Integer)
    credited: Mapped[int] = mapped_column(Integer)
    unmatched: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StatementLine(Base):
    """One booked entry of the client-money account, kept once however often its statement is imported."""

    __tablename__ = "settlement_statement_lines"
    __table_args__ = (
        CheckConstraint(one_of("status", LINE_STATUSES), name="status"),
        CheckConstraint("amount_tiyn > 0", name="amount_positive"),
        Index("uq_settlement_statement_lines_entry", "account_iban", "entry_reference", unique=True),
        Index("ix_settlement_statement_lines_unmatched", "id", postgresql_where=text("status = 'unmatched'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("settlement_statement_imports.id"))
    account_iban: Mapped[str] = mapped_column(String(34))
    entry_reference: Mapped[str] = mapped_column(String(100))
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)
    credit: Mapped[bool] = mapped_column(Boolean)
    booking_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    payment_reference: Mapped[str | None] = mapped_column(String(140))
    counterparty_name: Mapped[str | None] = mapped_column(String(140))
    counterparty_iban: Mapped[str | None] = mapped_column(String(34))
    end_to_end_id: Mapped[str | None] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(20))
    party_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"))
    transfer_id: Mapped[uuid.UUID | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PaymentRun(Base):
    """One pain.001 message to the bank, stored before it is sent so that a retry sends the very same."""

    __tablename__ = "settlement_payment_runs"
    __table_args__ = (CheckConstraint(one_of("status", PAYMENT_RUN_STATUSES), name="status"),)

    message_id: Mapped[str] = mapped_column(String(35), primary_key=True)
    document: Mapped[bytes] = mapped_column(LargeBinary)
    order_count: Mapped[int] = mapped_column(Integer)
    total_tiyn: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    acceptance_id: Mapped[str | None] = mapped_column(String(100))
    refusal_code: Mapped[str | None] = mapped_column(String(100))
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Withdrawal(Base):
    """A client's request to be paid out to its own verified bank account, prefunded by a hold."""

    __tablename__ = "settlement_withdrawals"
    __table_args__ = (
        CheckConstraint(one_of("status", WITHDRAWAL_STATUSES), name="status"),
        CheckConstraint("amount_tiyn > 0", name="amount_positive"),
        Index("ix_settlement_withdrawals_party_id", "party_id"),
        Index("ix_settlement_withdrawals_requested", "created_at", postgresql_where=text("status = 'requested'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    bank_account_id: Mapped[int] = mapped_column(ForeignKey("settlement_bank_accounts.id"))
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)
    hold_id: Mapped[uuid.UUID]
    end_to_end_id: Mapped[str] = mapped_column(String(35), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str | None] = mapped_column(ForeignKey("settlement_payment_runs.message_id"))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- trading ------------------------------------------------------------------------------------------


class TradingStatus(Base):
    """Whether an emission may be traded and settled; suspended emissions are neither (REQ on suspension)."""

    __tablename__ = "settlement_trading_status"

    asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"), primary_key=True)
    suspended: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(500))
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Instruction(Base):
    """An exchange of two deliveries that settle together or not at all: the first party delivers
    `first_amount` of `first_asset`, the second `second_amount` of `second_asset`. In a DvP the first
    party delivers the DFA and the second pays money; each party's money fee is paid to the operator.
    """

    __tablename__ = "settlement_instructions"
    __table_args__ = (
        CheckConstraint(one_of("kind", INSTRUCTION_KINDS), name="kind"),
        CheckConstraint(one_of("origin", INSTRUCTION_ORIGINS), name="origin"),
        CheckConstraint(one_of("status", INSTRUCTION_STATUSES), name="status"),
        CheckConstraint("first_amount > 0 AND second_amount > 0", name="amounts_positive"),
        CheckConstraint("first_fee >= 0 AND second_fee >= 0", name="fees"),
        CheckConstraint("first_party_id <> second_party_id", name="distinct_parties"),
        CheckConstraint("first_asset_id <> second_asset_id", name="distinct_assets"),
        CheckConstraint("settlement_date >= trade_date", name="dates"),
        CheckConstraint(
            "status <> 'settled' OR (first_hold_id IS NOT NULL AND second_hold_id IS NOT NULL)", name="prefunded"
        ),
        # Two halves of a bilateral trade find each other by their terms while one waits for the other.
        Index("uq_settlement_instructions_terms", "terms_digest", unique=True,
              postgresql_where=text("status = 'pending' AND (first_hold_id IS NULL OR second_hold_id IS NULL)")),
        Index("ix_settlement_instructions_first_party", "first_party_id", "created_at"),
        Index("ix_settlement_instructions_second_party", "second_party_id", "created_at"),
        Index("ix_settlement_instructions_pending", "settlement_date", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    origin: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(100))
    terms_digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    trade_date: Mapped[date] = mapped_column(Date)
    settlement_date: Mapped[date] = mapped_column(Date)
    first_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    first_asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    first_amount: Mapped[int] = mapped_column(BigInteger)
    first_fee: Mapped[int] = mapped_column(BigInteger, server_default="0")
    first_hold_id: Mapped[uuid.UUID | None]
    second_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    second_asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    second_amount: Mapped[int] = mapped_column(BigInteger)
    second_fee: Mapped[int] = mapped_column(BigInteger, server_default="0")
    second_hold_id: Mapped[uuid.UUID | None]
    failure_code: Mapped[str | None] = mapped_column(String(50))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    resubmitted_from: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("settlement_instructions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InstructionEvent(Base):
    """One step of an instruction's history: who did what, when, and why."""

    __tablename__ = "settlement_instruction_events"
    __table_args__ = (
        CheckConstraint(one_of("event", INSTRUCTION_EVENTS), name="event"),
        Index("ix_settlement_instruction_events_instruction_id", "instruction_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    instruction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement_instructions.id"))
    event: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Order(Base):
    """A limit order on the book of (base, quote): buy or sell `quantity` units of the base emission at
    `price` in the quote asset's smallest unit per unit (tiyn for KZT, units for another emission)."""

    __tablename__ = "settlement_orders"
    __table_args__ = (
        CheckConstraint(one_of("side", ORDER_SIDES), name="side"),
        CheckConstraint(one_of("time_in_force", TIME_IN_FORCE), name="time_in_force"),
        CheckConstraint(one_of("status", ORDER_STATUSES), name="status"),
        CheckConstraint("price > 0 AND quantity > 0", name="positive"),
        CheckConstraint("filled_quantity >= 0 AND filled_quantity <= quantity", name="filled"),
        CheckConstraint("(status = 'filled') = (filled_quantity = quantity)", name="filled_status"),
        CheckConstraint("base_asset_id <> quote_asset_id", name="distinct_assets"),
        Index(
            "ix_settlement_orders_book",
            "base_asset_id", "quote_asset_id", "side", "price", "seq",
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_settlement_orders_party_id", "party_id", "seq"),
        Index("ix_settlement_orders_day", "trade_date", postgresql_where=text("status = 'open' AND time_in_force = 'day'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    base_asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    quote_asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    filled_quantity: Mapped[int] = mapped_column(BigInteger, server_default="0")
    time_in_force: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10))
    trade_date: Mapped[date] = mapped_column(Date)
    hold_id: Mapped[uuid.UUID]
    close_reason: Mapped[str | None] = mapped_column(String(200))
    placed_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Trade(Base):
    """One match of a buy and a sell order, settled at once by its instruction."""

    __tablename__ = "settlement_trades"
    __table_args__ = (
        CheckConstraint("price > 0 AND quantity > 0 AND value > 0", name="positive"),
        CheckConstraint("buyer_fee >= 0 AND seller_fee >= 0", name="fees"),
        Index("ix_settlement_trades_book", "base_asset_id", "quote_asset_id", "seq"),
        Index("ix_settlement_trades_buy_order_id", "buy_order_id"),
        Index("ix_settlement_trades_sell_order_id", "sell_order_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    base_asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    quote_asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    buy_order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement_orders.id"))
    sell_order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement_orders.id"))
    aggressor: Mapped[str] = mapped_column(String(4))
    price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[int] = mapped_column(BigInteger)
    buyer_fee: Mapped[int] = mapped_column(BigInteger)
    seller_fee: Mapped[int] = mapped_column(BigInteger)
    instruction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("settlement_instructions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
