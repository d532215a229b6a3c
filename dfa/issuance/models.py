"""Tables of issuance: issuers and their documents, underlying assets and their certification, emission
applications and their history, registered emissions, placement, redemption, holder protections,
trading suspensions and transfers to digital-asset trading platforms."""

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

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
    Numeric,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base, one_of

# The issuer's own papers, then the kinds that prove an underlying asset: REQ-70's catalogue, then the
# evidence custodians and valuers give for the kinds it does not cover.
ISSUER_DOCUMENT_KINDS = (
    "charter", "state_registration_certificate", "issuer_decision", "prospectus", "power_of_attorney",
    "financial_statements",
)
ASSET_DOCUMENT_KINDS = (
    "trademark_register_extract", "appellation_of_origin_extract", "sale_contract", "retail_sale_contract",
    "contracting_contract", "barter_contract", "donation_contract", "intellectual_work_contract",
    "copyright_register_certificate", "title_deed", "warehouse_receipt", "custody_statement", "valuation_report",
)
DOCUMENT_KINDS = (*ISSUER_DOCUMENT_KINDS, *ASSET_DOCUMENT_KINDS, "other")
UNDERLYING_KINDS = (
    "goods", "real_estate", "precious_metals", "receivables", "intellectual_property", "trademarks", "money",
    "securities", "other",
)
LEGAL_STATUSES = ("clear", "disputed", "unclear")
DFA_KINDS = ("monetary_claim", "property_right", "commodity", "participation", "other")

# submitted → (completeness check) in_review | returned; in_review → preliminary_refusal | registered |
# refused; preliminary_refusal → (hearing) in_review | registered | refused; withdrawn by the issuer
# from any open status.
APPLICATION_STATUSES = ("submitted", "in_review", "preliminary_refusal", "registered", "refused", "returned", "withdrawn")
APPLICATION_OPEN_STATUSES = ("submitted", "in_review", "preliminary_refusal")
APPLICATION_STEPS = (
    "submitted", "accepted", "returned", "preliminary_refusal", "objections", "hearing", "registered", "refused",
    "withdrawn", "overdue",
)
EMISSION_STATUSES = ("registered", "placing", "placed", "not_placed", "redeemed", "defaulted")
PLACEMENT_STATUSES = ("open", "allocated", "failed", "cancelled")
SUBSCRIPTION_STATUSES = ("pending", "allocated", "released", "cancelled")
REDEMPTION_KINDS = ("maturity", "early")
REDEMPTION_STATUSES = ("paid", "defaulted")
FREEZE_BASES = ("court_order", "authority_order", "operator_decision")
FREEZE_STATUSES = ("active", "lifted")
FORCED_TRANSFER_BASES = ("court_order", "access_recovery")
# REQ-62 (1)–(3), then the operator's own decision (4).
SUSPENSION_GROUNDS = (
    "liquidation", "reorganisation", "compulsory_liquidation", "bankruptcy", "asset_arrest", "operator_decision",
)
BLOCK_SOURCES = ("reconciliation", "operator_decision")
PLATFORM_TRANSFER_DIRECTIONS = ("out", "in")
PLATFORM_TRANSFER_STATUSES = ("notified", "confirmed", "refused", "lapsed")

registration_serial = Sequence("issuance_registration_serial", metadata=Base.metadata)


# --- issuers ------------------------------------------------------------------------------------------


class Issuer(Base):
    """A legal entity (a party with a BIN) onboarded as an issuer, with the consents the operator needs:
    to obtain information about its underlying assets from their custodians (REQ-27) and to process
    personal data (REQ-57)."""

    __tablename__ = "issuance_issuers"

    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    legal_address: Mapped[str] = mapped_column(String(500))
    contact_email: Mapped[str] = mapped_column(String(320))
    custodian_consent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    custodian_consent_scope: Mapped[str] = mapped_column(String(1000))
    personal_data_consent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    onboarded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Representative(Base):
    """A person who acts for an issuer, and on what authority."""

    __tablename__ = "issuance_representatives"
    __table_args__ = (Index("ix_issuance_representatives_issuer", "issuer_party_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    issuer_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_issuers.party_id"))
    full_name: Mapped[str] = mapped_column(String(200))
    iin: Mapped[str] = mapped_column(String(12))
    position: Mapped[str] = mapped_column(String(200))
    authority: Mapped[str] = mapped_column(String(500))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    added_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Document(Base):
    """A document an issuer uploaded, kept with the SHA-256 digest of its bytes; confidential to the
    issuer and staff (REQ-20)."""

    __tablename__ = "issuance_documents"
    __table_args__ = (
        CheckConstraint(one_of("kind", DOCUMENT_KINDS), name="kind"),
        CheckConstraint("size_bytes > 0 AND size_bytes = octet_length(content)", name="size"),
        CheckConstraint("octet_length(sha256) = 32", name="sha256"),
        Index("ix_issuance_documents_issuer", "issuer_party_id", "uploaded_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    issuer_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_issuers.party_id"))
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[bytes] = mapped_column(LargeBinary)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    underlying_asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("issuance_underlying_assets.id"))
    application_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("issuance_applications.id"))
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IssuerBlock(Base):
    """A block on an issuer's new emission registrations: opened by a reconciliation breach (REQ-31) or
    by the operator, lifted by a later clean check or by the operator."""

    __tablename__ = "issuance_issuer_blocks"
    __table_args__ = (
        CheckConstraint(one_of("source", BLOCK_SOURCES), name="source"),
        # One open block per issuer, source and reference: opening it again is a no-op.
        Index("uq_issuance_issuer_blocks_open", "issuer_party_id", "source", "reference", unique=True,
              postgresql_where=text("lifted_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    issuer_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_issuers.party_id"))
    source: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lift_reason: Mapped[str | None] = mapped_column(Text)


# --- underlying assets ----------------------------------------------------------------------------------


class UnderlyingAsset(Base):
    """What backs an emission, kept by a custodian organisation under the custodian's own reference."""

    __tablename__ = "issuance_underlying_assets"
    __table_args__ = (
        CheckConstraint(one_of("kind", UNDERLYING_KINDS), name="kind"),
        CheckConstraint("quantity > 0", name="quantity"),
        UniqueConstraint("custodian", "custodian_reference"),
        Index("ix_issuance_underlying_assets_issuer", "issuer_party_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    issuer_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_issuers.party_id"))
    kind: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(String(1000))
    custodian: Mapped[str] = mapped_column(String(50))
    custodian_reference: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Certification(Base):
    """One check of an underlying asset from its custodian's statement: existence, legal status,
    encumbrances and market value, with the source and time (REQ-27, REQ-28). `passed` is true only
    when it exists, its status is clear, it is unencumbered, and (for an application) its value covers
    the issue volume at the required ratio; `findings` lists every reason it did not."""

    __tablename__ = "issuance_certifications"
    __table_args__ = (
        CheckConstraint(one_of("legal_status", LEGAL_STATUSES), name="legal_status"),
        CheckConstraint("quantity >= 0 AND market_value >= 0", name="amounts"),
        CheckConstraint(
            "(market_value IS NULL) = (valued_on IS NULL) AND (market_value IS NOT NULL OR NOT passed)",
            name="valuation",
        ),
        Index("ix_issuance_certifications_asset", "underlying_asset_id", "obtained_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    underlying_asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_underlying_assets.id"))
    application_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("issuance_applications.id"))
    exists: Mapped[bool] = mapped_column(Boolean)
    legal_status: Mapped[str] = mapped_column(String(20))
    encumbered: Mapped[bool] = mapped_column(Boolean)
    encumbrances: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(BigInteger)
    market_value: Mapped[int | None] = mapped_column(BigInteger)  # tiyn; None when the custodian stated none
    valued_on: Mapped[date | None] = mapped_column(Date)
    required_value: Mapped[int | None] = mapped_column(BigInteger)  # tiyn, for an application
    source: Mapped[str] = mapped_column(String(200))  # the custodian and its statement's reference
    obtained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    officer: Mapped[str] = mapped_column(String(200))
    passed: Mapped[bool] = mapped_column(Boolean)
    findings: Mapped[list[str]] = mapped_column(JSONB)


# --- applications and emissions ---------------------------------------------------------------------------


class Application(Base):
    """An issuer's application to register an emission: its terms, where it stands, and the deadline of
    the step it waits on (business days, Asia/Almaty)."""

    __tablename__ = "issuance_applications"
    __table_args__ = (
        CheckConstraint(one_of("status", APPLICATION_STATUSES), name="status"),
        CheckConstraint(one_of("dfa_kind", DFA_KINDS), name="dfa_kind"),
        CheckConstraint("nominal > 0 AND units > 0 AND placement_price > 0", name="positive"),
        CheckConstraint("redemption_price IS NULL OR redemption_price > 0", name="redemption_price"),
        CheckConstraint("min_placement_units IS NULL OR min_placement_units BETWEEN 1 AND units", name="min_units"),
        CheckConstraint("placement_end >= placement_start", name="placement_period"),
        CheckConstraint("maturity_date IS NULL OR maturity_date > placement_end", name="maturity"),
        # REQ-26: an underlying asset with its required ratio, or the recorded reason there is none.
        CheckConstraint(
            "(underlying_asset_id IS NOT NULL AND coverage_ratio > 0 AND no_underlying_reason IS NULL)"
            " OR (underlying_asset_id IS NULL AND coverage_ratio IS NULL AND no_underlying_reason IS NOT NULL)",
            name="underlying",
        ),
        Index("ix_issuance_applications_issuer", "issuer_party_id", "submitted_at"),
        Index("ix_issuance_applications_open_deadline", "deadline",
              postgresql_where=text("status IN ('submitted', 'in_review', 'preliminary_refusal')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    issuer_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_issuers.party_id"))
    status: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    dfa_kind: Mapped[str] = mapped_column(String(20))
    nominal: Mapped[int] = mapped_column(BigInteger)  # tiyn per unit
    units: Mapped[int] = mapped_column(BigInteger)
    placement_start: Mapped[date] = mapped_column(Date)
    placement_end: Mapped[date] = mapped_column(Date)
    placement_price: Mapped[int] = mapped_column(BigInteger)  # tiyn per unit
    min_placement_units: Mapped[int | None] = mapped_column(BigInteger)
    maturity_date: Mapped[date | None] = mapped_column(Date)
    redemption_price: Mapped[int | None] = mapped_column(BigInteger)  # tiyn per unit; the nominal when None
    early_redemption_allowed: Mapped[bool] = mapped_column(Boolean, server_default="false")
    transfer_restrictions: Mapped[str | None] = mapped_column(Text)
    underlying_asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("issuance_underlying_assets.id"))
    coverage_ratio: Mapped[Decimal | None] = mapped_column(Numeric(8, 4))
    no_underlying_reason: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[date | None] = mapped_column(Date)  # of the step the application waits on
    hearing_date: Mapped[date | None] = mapped_column(Date)
    objections: Mapped[str | None] = mapped_column(Text)
    overdue_flagged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApplicationEvent(Base):
    """One step of an application's history: what happened, who did it, when, why, and the deadline it set."""

    __tablename__ = "issuance_application_events"
    __table_args__ = (
        CheckConstraint(one_of("step", APPLICATION_STEPS), name="step"),
        CheckConstraint(one_of("status", APPLICATION_STATUSES), name="status"),
        Index("ix_issuance_application_events_application", "application_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_applications.id"))
    step: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))  # the application's status after the step
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[date | None] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Emission(Base):
    """A registered emission: its ledger asset (whose code is the registration number) and volume.
    The registered volume is never changed; `cancelled_units` (unplaced or redeemed) and `platform_units`
    (moved to digital-asset trading platforms) account for what is not outstanding here (REQ-46)."""

    __tablename__ = "issuance_emissions"
    __table_args__ = (
        CheckConstraint(one_of("status", EMISSION_STATUSES), name="status"),
        CheckConstraint("char_length(registration_number) <= 50", name="registration_number_length"),
        CheckConstraint(
            "units > 0 AND cancelled_units >= 0 AND platform_units >= 0 AND cancelled_units + platform_units <= units",
            name="volume",
        ),
        Index("ix_issuance_emissions_issuer", "issuer_party_id"),
    )

    asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"), primary_key=True)
    registration_number: Mapped[str] = mapped_column(String(50), unique=True)
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_applications.id"), unique=True)
    issuer_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_issuers.party_id"))
    status: Mapped[str] = mapped_column(String(20))
    units: Mapped[int] = mapped_column(BigInteger)
    cancelled_units: Mapped[int] = mapped_column(BigInteger, server_default="0")
    platform_units: Mapped[int] = mapped_column(BigInteger, server_default="0")
    nominal: Mapped[int] = mapped_column(BigInteger)
    registered_by: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- placement ------------------------------------------------------------------------------------------


class Placement(Base):
    """A primary placement on the issuer's application (REQ-25): a subscription window, a price, the
    units offered and an optional minimum below which the issue does not take place."""

    __tablename__ = "issuance_placements"
    __table_args__ = (
        CheckConstraint(one_of("status", PLACEMENT_STATUSES), name="status"),
        CheckConstraint("units > 0 AND price > 0", name="positive"),
        CheckConstraint("min_units IS NULL OR min_units BETWEEN 1 AND units", name="min_units"),
        CheckConstraint("closes_at > opens_at", name="window"),
        # One placement at a time per emission.
        Index("uq_issuance_placements_open", "asset_id", unique=True, postgresql_where=text("status = 'open'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("issuance_emissions.asset_id"))
    status: Mapped[str] = mapped_column(String(20))
    units: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[int] = mapped_column(BigInteger)  # tiyn per unit
    min_units: Mapped[int | None] = mapped_column(BigInteger)
    opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closes_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issuer_hold_id: Mapped[uuid.UUID | None]
    units_subscribed: Mapped[int | None] = mapped_column(BigInteger)
    units_allocated: Mapped[int | None] = mapped_column(BigInteger)
    units_cancelled: Mapped[int | None] = mapped_column(BigInteger)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Subscription(Base):
    """An investor's subscription to a placement, prefunded by a hold of its money (REQ-38)."""

    __tablename__ = "issuance_subscriptions"
    __table_args__ = (
        CheckConstraint(one_of("status", SUBSCRIPTION_STATUSES), name="status"),
        CheckConstraint("units > 0 AND amount > 0", name="positive"),
        CheckConstraint("allocated_units IS NULL OR allocated_units BETWEEN 0 AND units", name="allocated"),
        Index("uq_issuance_subscriptions_live", "placement_id", "party_id", unique=True,
              postgresql_where=text("status = 'pending'")),
        Index("ix_issuance_subscriptions_party", "party_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    placement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_placements.id"))
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    status: Mapped[str] = mapped_column(String(20))
    units: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)  # tiyn held
    hold_id: Mapped[uuid.UUID]
    allocated_units: Mapped[int | None] = mapped_column(BigInteger)
    instruction_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("settlement_instructions.id"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- holders: snapshots, freezes, forced transfers ---------------------------------------------------------


class Snapshot(Base):
    """The holders of an emission as of a record date's close (or an instant), fixed for redemption and payouts."""

    __tablename__ = "issuance_snapshots"
    __table_args__ = (Index("ix_issuance_snapshots_asset", "asset_id", "record_date"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("issuance_emissions.asset_id"))
    record_date: Mapped[date] = mapped_column(Date)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    total_units: Mapped[int] = mapped_column(BigInteger)
    holders: Mapped[int] = mapped_column(Integer)
    taken_by: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SnapshotPosition(Base):
    """One holder's units in a snapshot: `available` plus `held` is what it owns; `frozen` is the part of
    `held` frozen by an order of an authority."""

    __tablename__ = "issuance_snapshot_positions"
    __table_args__ = (CheckConstraint("available >= 0 AND held >= 0 AND frozen BETWEEN 0 AND held", name="units"),)

    snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_snapshots.id"), primary_key=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[int] = mapped_column(BigInteger)
    frozen: Mapped[int] = mapped_column(BigInteger)


class Freeze(Base):
    """Units of a holder frozen (a ledger hold that never expires) on an order of a court or another
    authority, or on the operator's decision, until lifted."""

    __tablename__ = "issuance_freezes"
    __table_args__ = (
        CheckConstraint(one_of("basis", FREEZE_BASES), name="basis"),
        CheckConstraint(one_of("status", FREEZE_STATUSES), name="status"),
        CheckConstraint("units > 0", name="units"),
        Index("ix_issuance_freezes_holder", "asset_id", "party_id", postgresql_where=text("status = 'active'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    units: Mapped[int] = mapped_column(BigInteger)  # in the asset's smallest unit (tiyn for money)
    hold_id: Mapped[uuid.UUID]
    basis: Mapped[str] = mapped_column(String(20))
    order_reference: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    frozen_from: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("issuance_freezes.id"))  # proceeds of redeemed units
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lift_reason: Mapped[str | None] = mapped_column(Text)


class ForcedTransfer(Base):
    """Units moved without the holder's order: on a court order, or to a client's new account on recovery
    of lost access; the order's reference is kept."""

    __tablename__ = "issuance_forced_transfers"
    __table_args__ = (
        CheckConstraint(one_of("basis", FORCED_TRANSFER_BASES), name="basis"),
        CheckConstraint("units > 0 AND from_party_id <> to_party_id", name="transfer"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("ledger_assets.id"))
    from_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    to_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    units: Mapped[int] = mapped_column(BigInteger)
    basis: Mapped[str] = mapped_column(String(20))
    order_reference: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    transfer_id: Mapped[uuid.UUID]
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- redemption --------------------------------------------------------------------------------------------


class Redemption(Base):
    """The redemption of an emission at maturity or early: every holder of the record snapshot paid and
    their units cancelled in one transaction, or — when the issuer's prefunded money is short — nothing
    paid and a default recorded (REQ-32)."""

    __tablename__ = "issuance_redemptions"
    __table_args__ = (
        CheckConstraint(one_of("kind", REDEMPTION_KINDS), name="kind"),
        CheckConstraint(one_of("status", REDEMPTION_STATUSES), name="status"),
        CheckConstraint("price > 0 AND units >= 0 AND amount_due >= 0 AND amount_available >= 0", name="amounts"),
        Index("ix_issuance_redemptions_asset", "asset_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("issuance_emissions.asset_id"))
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))
    snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_snapshots.id"))
    price: Mapped[int] = mapped_column(BigInteger)  # tiyn per unit
    units: Mapped[int] = mapped_column(BigInteger)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    amount_available: Mapped[int] = mapped_column(BigInteger)  # the issuer's money when it ran
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RedemptionPayment(Base):
    """What one holder was paid for its units in a redemption."""

    __tablename__ = "issuance_redemption_payments"
    __table_args__ = (CheckConstraint("units > 0 AND amount > 0 AND frozen_units BETWEEN 0 AND units", name="amounts"),)

    redemption_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_redemptions.id"), primary_key=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger)
    frozen_units: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    transfer_id: Mapped[uuid.UUID]


# --- trading suspensions and trading platforms ------------------------------------------------------------


class Suspension(Base):
    """A recorded ground for suspending trading (REQ-62): an event of the issuer, which suspends every
    emission of it, or the operator's decision about one emission; lifted by staff with a reason."""

    __tablename__ = "issuance_suspensions"
    __table_args__ = (
        CheckConstraint(one_of("ground", SUSPENSION_GROUNDS), name="ground"),
        CheckConstraint("ground <> 'asset_arrest' OR arrested_share > 0.5", name="arrest_over_half"),
        CheckConstraint("(ground = 'operator_decision') = (asset_id IS NOT NULL)", name="scope"),
        Index("ix_issuance_suspensions_issuer", "issuer_party_id", postgresql_where=text("lifted_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    issuer_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_issuers.party_id"))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("issuance_emissions.asset_id"))
    ground: Mapped[str] = mapped_column(String(30))
    arrested_share: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    reference: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lift_reason: Mapped[str | None] = mapped_column(Text)


class TradingPlatform(Base):
    """A digital-asset trading platform the operator has an interaction agreement with (REQ-47)."""

    __tablename__ = "issuance_trading_platforms"
    __table_args__ = (CheckConstraint("code ~ '^[a-z0-9][a-z0-9-]{1,49}$'", name="code"),)

    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    nbk_registration_number: Mapped[str] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PlatformTransfer(Base):
    """Units of an emission moving to a trading platform (`out`: blocked, the platform notified, then
    cancelled here on its confirmation or released on its refusal or silence; REQ-44..REQ-46) or coming
    back from it (`in`: issued here again when the platform confirms it cancelled them there)."""

    __tablename__ = "issuance_platform_transfers"
    __table_args__ = (
        CheckConstraint(one_of("direction", PLATFORM_TRANSFER_DIRECTIONS), name="direction"),
        CheckConstraint(one_of("status", PLATFORM_TRANSFER_STATUSES), name="status"),
        CheckConstraint("units > 0", name="units"),
        Index("ix_issuance_platform_transfers_open", "deadline", postgresql_where=text("status = 'notified'")),
        Index("ix_issuance_platform_transfers_asset", "asset_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("issuance_emissions.asset_id"))
    platform_code: Mapped[str] = mapped_column(ForeignKey("issuance_trading_platforms.code"))
    holder_party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"))
    direction: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    units: Mapped[int] = mapped_column(BigInteger)
    hold_id: Mapped[uuid.UUID | None]
    encumbrance_check: Mapped[dict[str, Any]] = mapped_column(JSONB)
    deadline: Mapped[date | None] = mapped_column(Date)
    platform_reference: Mapped[str | None] = mapped_column(String(200))
    reasons: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PlatformMessage(Base):
    """Every message exchanged with a trading platform, as sent or received (REQ-47)."""

    __tablename__ = "issuance_platform_messages"
    __table_args__ = (
        CheckConstraint("direction IN ('sent', 'received')", name="direction"),
        Index("ix_issuance_platform_messages_transfer", "transfer_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transfer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_platform_transfers.id"))
    direction: Mapped[str] = mapped_column(String(10))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DefaultEvent(Base):
    """The issuer did not meet an obligation to holders: a redemption it had not funded in full."""

    __tablename__ = "issuance_default_events"
    __table_args__ = (CheckConstraint("shortfall > 0", name="shortfall"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("issuance_emissions.asset_id"))
    redemption_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuance_redemptions.id"), unique=True)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    shortfall: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
