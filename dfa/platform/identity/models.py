"""Tables of identity and access: parties and their KYC, users, sessions, API credentials."""

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base, one_of

KYC_STATUSES = ("pending", "identified", "rejected", "suspended")
KYC_LEVELS = ("none", "simplified", "full")
ROLES = ("investor", "issuer", "compliance_officer", "operator_admin", "auditor")


class Party(Base):
    """A person (IIN) or legal entity (BIN) the operator deals with; the operator is one too.

    Only an identified party may hold accounts, trade, pay or receive (REQ-14); a person must be an
    adult (REQ-16), so a person's date of birth is mandatory.
    """

    __tablename__ = "parties"
    __table_args__ = (
        CheckConstraint("kind IN ('person', 'legal_entity')", name="kind"),
        CheckConstraint(one_of("kyc_status", KYC_STATUSES), name="kyc_status"),
        CheckConstraint(one_of("kyc_level", KYC_LEVELS), name="kyc_level"),
        CheckConstraint("sex IS NULL OR sex IN ('male', 'female')", name="sex"),
        CheckConstraint("kind = 'legal_entity' OR birth_date IS NOT NULL", name="person_birth_date"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(300))
    identifier: Mapped[str] = mapped_column(String(12), unique=True)
    resident: Mapped[bool]
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(6))
    kyc_status: Mapped[str] = mapped_column(String(20), server_default="pending")
    kyc_level: Mapped[str] = mapped_column(String(20), server_default="none")
    identified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KycEvent(Base):
    """One step of a party's identification history: who decided what, how, and why."""

    __tablename__ = "kyc_events"
    __table_args__ = (
        CheckConstraint(one_of("status", KYC_STATUSES), name="status"),
        CheckConstraint(one_of("level", KYC_LEVELS), name="level"),
        Index("ix_kyc_events_party_id_id", "party_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    status: Mapped[str] = mapped_column(String(20))
    level: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    biometric_check_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("biometric_checks.id"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BiometricCheck(Base):
    """A remote biometric check through the identification data exchange centre (REQ-15)."""

    __tablename__ = "biometric_checks"
    __table_args__ = (
        CheckConstraint("purpose IN ('onboarding', 'identification', 'password_recovery')", name="purpose"),
        CheckConstraint("outcome IN ('match', 'no_match', 'not_found')", name="outcome"),
        Index("ix_biometric_checks_identifier_checked_at", "identifier", "checked_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(12))
    party_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"))
    purpose: Mapped[str] = mapped_column(String(30))
    outcome: Mapped[str] = mapped_column(String(10))
    centre_reference: Mapped[str] = mapped_column(String(100))
    resident: Mapped[bool]
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    """Someone who signs in: an investor, an issuer's representative or system, or operator staff."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
        CheckConstraint(f"roles <@ ARRAY[{', '.join(repr(r) for r in ROLES)}]::varchar[]", name="roles"),
        CheckConstraint("cardinality(roles) > 0", name="has_role"),
        CheckConstraint("login = lower(login)", name="login_lower_case"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(30)))
    party_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), server_default="active")
    failed_sign_ins: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # sealed by the platform's secret box
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UserSession(Base):
    """A signed-in cabinet session. The cookie carries a random token; only its SHA-256 is kept."""

    __tablename__ = "user_sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_ip: Mapped[str | None] = mapped_column(String(64))


class ApiCredential(Base):
    """An issuer system's OAuth2 client or API key. Only the secret's SHA-256 is kept (the secret is
    32 random bytes, so a slow hash adds nothing but latency to every call)."""

    __tablename__ = "api_credentials"
    __table_args__ = (CheckConstraint("kind IN ('oauth_client', 'api_key')", name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Grant(Base):
    """A short-lived, single-use permission: finishing a password recovery after the identity check,
    or enrolling a second factor after the password."""

    __tablename__ = "identity_grants"
    __table_args__ = (CheckConstraint("purpose IN ('password_recovery', 'totp_enrolment')", name="purpose"),)

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(30))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateCounter(Base):
    """Attempts per key per fixed window, shared by every app instance."""

    __tablename__ = "rate_counters"

    bucket: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, index=True)
    count: Mapped[int] = mapped_column(Integer)
