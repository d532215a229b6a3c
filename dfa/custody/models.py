"""Tables of custody: the key vault, wallets and their addresses, token contracts, chain batches."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base, one_of

SECRET_KINDS = ("mnemonic",)
# Wallets are kept apart by whose assets they hold and for which activity (REQ-40, REQ-50).
SEGMENTS = ("operator_own", "client_money", "client")
ACTIVITIES = ("dfa_platform", "trading_platform")
PURPOSES = ("chain_operator", "holdings", "settlement", "money")
TOKEN_STATUSES = ("deploying", "deployed")
BATCH_KINDS = ("deploy", "ops")
BATCH_STATUSES = ("prepared", "signed", "sent", "confirmed", "superseded")


class DataKey(Base):
    """An AES-256 data key, stored only wrapped by a key-encryption key (envelope encryption)."""

    __tablename__ = "custody_data_keys"
    __table_args__ = (Index("ix_custody_data_keys_kek_id", "kek_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(100))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rewrapped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SealedSecret(Base):
    """A secret (a mnemonic phrase) encrypted with AES-256-GCM under its own data key."""

    __tablename__ = "custody_secrets"
    __table_args__ = (CheckConstraint(one_of("kind", SECRET_KINDS), name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    data_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("custody_data_keys.id"))
    kind: Mapped[str] = mapped_column(String(20))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Wallet(Base):
    """An HD wallet (one BIP-39 mnemonic, sealed in the vault) for one segment and activity."""

    __tablename__ = "custody_wallets"
    __table_args__ = (
        CheckConstraint(one_of("segment", SEGMENTS), name="segment"),
        CheckConstraint(one_of("activity", ACTIVITIES), name="activity"),
        Index("uq_custody_wallets_segment_activity", "segment", "activity", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    segment: Mapped[str] = mapped_column(String(20))
    activity: Mapped[str] = mapped_column(String(20))
    secret_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("custody_secrets.id"))
    # Identifies the mnemonic without revealing it: a digest of its first public key.
    fingerprint: Mapped[str] = mapped_column(String(64))
    next_account: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WalletAddress(Base):
    """One BIP-44 address of a wallet (m/44'/60'/account'/0/0), for one party and purpose."""

    __tablename__ = "custody_addresses"
    __table_args__ = (
        CheckConstraint(one_of("purpose", PURPOSES), name="purpose"),
        CheckConstraint("address ~ '^0x[0-9a-fA-F]{40}$'", name="address"),
        Index("uq_custody_addresses_owner", "wallet_id", "party_id", "purpose", unique=True),
        Index("uq_custody_addresses_account", "wallet_id", "account", unique=True),
        Index("ix_custody_addresses_party_id", "party_id"),
    )

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("custody_wallets.id"))
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    purpose: Mapped[str] = mapped_column(String(20))
    account: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChainSender(Base):
    """The operator's sending address on one chain and the next nonce it will use."""

    __tablename__ = "custody_chain_senders"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    genesis_hash: Mapped[str] = mapped_column(String(66))
    next_nonce: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Token(Base):
    """The token contract that mirrors one emission (a DFA asset of the ledger) on one chain."""

    __tablename__ = "custody_tokens"
    __table_args__ = (
        CheckConstraint(one_of("status", TOKEN_STATUSES), name="status"),
        Index("uq_custody_tokens_address", "chain_id", "address", unique=True),
    )

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"), primary_key=True)
    registration_number: Mapped[str] = mapped_column(String(50))
    address: Mapped[str] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(20))
    next_batch: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChainBatch(Base):
    """One chain transaction: a token's deployment or a batch of mirrored ledger movements.

    Its nonce is fixed when it is prepared; its signed bytes are kept, so a crash at any step resends
    the very same transaction and the chain applies it at most once.
    """

    __tablename__ = "custody_chain_batches"
    __table_args__ = (
        CheckConstraint(one_of("kind", BATCH_KINDS), name="kind"),
        CheckConstraint(one_of("status", BATCH_STATUSES), name="status"),
        # A superseded batch's nonce is either consumed by its reverted transaction or reused by the
        # batch that replaced it (the node refused it, so the nonce is still free).
        Index(
            "uq_custody_chain_batches_nonce",
            "chain_id",
            "sender",
            "nonce",
            unique=True,
            postgresql_where=text("status <> 'superseded'"),
        ),
        Index(
            "uq_custody_chain_batches_token_seq",
            "chain_id",
            "asset_id",
            "seq",
            unique=True,
            postgresql_where=text("kind = 'ops' AND status <> 'superseded'"),
        ),
        Index("ix_custody_chain_batches_open", "chain_id", "nonce", postgresql_where=text("status <> 'confirmed'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    sender: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(BigInteger)
    asset_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    ops: Mapped[list[Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))
    raw_transaction: Mapped[bytes | None] = mapped_column(LargeBinary)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
