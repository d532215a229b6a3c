"""Tables of reconciliation: the runs of the daily job, the signed reports they write with each emission's
coverage and holder-tree root, the breaches they find, compliance sign-offs, and the notices sent about
breaches to the National Bank and the underlying assets' custodians."""

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
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base, one_of

RUN_TRIGGERS = ("schedule", "catch_up", "command", "api")
# running → clean | breaches | failed; `skipped` when the day was reconciled already (another instance).
RUN_OUTCOMES = ("running", "clean", "breaches", "failed", "skipped")
COVERAGE_STATUSES = (
    "covered", "shortfall", "valuation_missing", "valuation_stale", "custodian_unavailable", "asset_missing",
    "asset_encumbered", "asset_disputed",
)
BREACH_KINDS = (
    *COVERAGE_STATUSES[1:], "ledger_invariant", "chain_mismatch", "chain_unavailable", "client_money_mismatch",
    "bank_unavailable",
)
BREACH_STATUSES = ("open", "cleared")
NOTICE_RECIPIENTS = ("national_bank", "custodian")
_AT_COMMIT = {"deferrable": True, "initially": "DEFERRED"}


class Run(Base):
    """One start of the reconciliation for a day, with its outcome; a run that died is `failed` with the
    reason `interrupted` once the next run sees it."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        CheckConstraint(one_of("trigger", RUN_TRIGGERS), name="trigger"),
        CheckConstraint(one_of("outcome", RUN_OUTCOMES), name="outcome"),
        CheckConstraint("(outcome = 'running') = (finished_at IS NULL)", name="finished"),
        Index("ix_reconciliation_runs_day", "business_date", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date)
    trigger: Mapped[str] = mapped_column(String(20))
    forced: Mapped[bool] = mapped_column(Boolean, server_default="false")
    requested_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(20), server_default="running")
    error: Mapped[str | None] = mapped_column(Text)
    report_id: Mapped[int | None] = mapped_column(BigInteger)


class Report(Base):
    """A signed daily report, never changed once written (a trigger refuses updates and deletes): the
    canonical JSON `content`, its SHA-256 and the operator's Ed25519 signature over it. A forced re-run of
    a day writes the next `version`."""

    __tablename__ = "reconciliation_reports"
    __table_args__ = (UniqueConstraint("business_date", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id"))
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    late: Mapped[bool] = mapped_column(Boolean)
    emissions: Mapped[int] = mapped_column(Integer)
    breaches: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    content_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    signing_key_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Coverage(Base):
    """One emission's coverage in one report: the history compliance officers chart. Written with the
    report and as immutable."""

    __tablename__ = "reconciliation_coverage"
    __table_args__ = (
        CheckConstraint(one_of("status", COVERAGE_STATUSES), name="status"),
        Index("ix_reconciliation_coverage_asset", "asset_id", "business_date"),
    )

    report_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_reports.id"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(30))
    outstanding_units: Mapped[int] = mapped_column(BigInteger)
    required_value: Mapped[int] = mapped_column(BigInteger)
    market_value: Mapped[int | None] = mapped_column(BigInteger)
    valued_on: Mapped[date | None] = mapped_column(Date)


class HolderTree(Base):
    """The root of one emission's Merkle-sum holder tree in one report; its leaves are `HolderLeaf` rows."""

    __tablename__ = "reconciliation_holder_trees"

    report_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_reports.id"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    total_units: Mapped[int] = mapped_column(BigInteger)
    leaf_count: Mapped[int] = mapped_column(Integer)


class HolderLeaf(Base):
    """One holder's position as fixed by a report: the leaves its proofs are built from, in account order."""

    __tablename__ = "reconciliation_holder_leaves"

    report_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_party_id: Mapped[uuid.UUID]
    quantity: Mapped[int] = mapped_column(BigInteger)


class Breach(Base):
    """Something a run found wrong, open until a later run finds it right again. A breach that persists
    over several days stays one breach (one set of notices); each report lists it."""

    __tablename__ = "reconciliation_breaches"
    __table_args__ = (
        CheckConstraint(one_of("kind", BREACH_KINDS), name="kind"),
        CheckConstraint(one_of("status", BREACH_STATUSES), name="status"),
        # One open breach per kind and subject (an emission, or the platform when asset_id is 0).
        Index("uq_reconciliation_breaches_open", "kind", "asset_id", unique=True,
              postgresql_where=text("status = 'open'")),
        Index("ix_reconciliation_breaches_issuer", "issuer_party_id", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    asset_id: Mapped[int] = mapped_column(Integer)
    issuer_party_id: Mapped[uuid.UUID | None]
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), server_default="open")
    # A report lists the breaches it opens, so they are written just before it: checked at commit.
    opened_report_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_reports.id", **_AT_COMMIT))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_report_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_reports.id", **_AT_COMMIT))
    cleared_report_id: Mapped[int | None] = mapped_column(ForeignKey("reconciliation_reports.id", **_AT_COMMIT))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledgement: Mapped[str | None] = mapped_column(Text)


class SignOff(Base):
    """A compliance officer's sign-off of one report, with a comment; a report is signed off once."""

    __tablename__ = "reconciliation_sign_offs"

    report_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_reports.id"), primary_key=True)
    signed_by: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    comment: Mapped[str] = mapped_column(Text)


class Notice(Base):
    """A notice about a breach to the National Bank or the asset's custodian (REQ-31), written with the
    breach and sent from the outbox; delivered once, with the recipient's receipt as evidence."""

    __tablename__ = "reconciliation_notices"
    __table_args__ = (
        CheckConstraint(one_of("recipient", NOTICE_RECIPIENTS), name="recipient"),
        UniqueConstraint("breach_id", "recipient"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    breach_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_breaches.id"))
    recipient: Mapped[str] = mapped_column(String(20))
    custodian: Mapped[str | None] = mapped_column(String(50))
    body: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    receipt_id: Mapped[str | None] = mapped_column(String(100))
