"""Requests and responses of the reconciliation API."""

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.types import IsoDate, Text


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    business_date: IsoDate | None = Field(
        default=None, description="The day to reconcile (the operator's local calendar day); today by default."
    )
    force: bool = Field(
        default=False, strict=True, description="Reconcile again although the day has a report: the new report is its next version."
    )


class RunOut(BaseModel):
    id: int = Field(description="The run's id.")
    business_date: date = Field(description="The day the run reconciled.")
    trigger: Literal["schedule", "catch_up", "command", "api"] = Field(description="What started the run.")
    forced: bool = Field(description="Whether it was asked to reconcile a day that had a report.")
    requested_by: str = Field(description="Who started it (`scheduler` for the schedule).")
    started_at: datetime = Field(description="When it started.")
    finished_at: datetime | None = Field(description="When it ended; null while running.")
    outcome: Literal["running", "clean", "breaches", "failed", "skipped"] = Field(
        description="clean or breaches (a report was written), failed (none was), skipped (the day had one)."
    )
    error: str | None = Field(description="Why a failed run failed.")
    report_id: int | None = Field(description="The report written (or, when skipped, the day's existing one).")


class ReportSummary(BaseModel):
    id: int = Field(description="The report's id.")
    business_date: date = Field(description="The day reconciled.")
    version: int = Field(description="1, then one more per forced re-run of the day.")
    as_of: datetime = Field(description="The instant the books were read at.")
    late: bool = Field(description="Written after its day (a caught-up or re-run day).")
    emissions: int = Field(description="Emissions with units outstanding.")
    breaches: int = Field(description="Breaches the report found (new and carried).")
    content_sha256: str = Field(description="SHA-256 of the signed document, hex.")
    signed_off_by: str | None = Field(description="The compliance officer who signed it off.")
    signed_off_at: datetime | None = Field(description="When.")


class ReportOut(ReportSummary):
    signature: str = Field(description="The operator's Ed25519 signature over the document's bytes, base64.")
    signing_key_sha256: str = Field(description="SHA-256 of the raw public key that verifies the signature.")
    sign_off_comment: str | None = Field(description="The compliance officer's comment.")
    document: dict[str, Any] = Field(
        description="The signed document (format dfa-reconciliation-report/1). Its exact signed bytes are at "
        "`/v1/reconciliation/reports/{id}/document`."
    )


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Text = Field(min_length=1, max_length=2_000, description="What the compliance officer has to say.")


class SignOffOut(BaseModel):
    report_id: int = Field(description="The report signed off.")
    signed_by: str = Field(description="The compliance officer.")
    signed_at: datetime = Field(description="When.")
    comment: str = Field(description="Their comment.")


class BreachOut(BaseModel):
    id: int = Field(description="The breach's id.")
    kind: str = Field(description="What is wrong: a coverage status, ledger_invariant, chain_mismatch, ...")
    emission: str | None = Field(description="The emission (asset code) concerned; null for the platform as a whole.")
    issuer_party_id: uuid.UUID | None = Field(description="The issuer of that emission.")
    detail: str = Field(description="What the latest run found.")
    status: Literal["open", "cleared"] = Field(description="open until a run finds the subject right again.")
    opened_report_id: int = Field(description="The report that found it first.")
    opened_at: datetime = Field(description="When.")
    last_report_id: int = Field(description="The latest report that found it.")
    cleared_report_id: int | None = Field(description="The report that found it cleared.")
    acknowledged_by: str | None = Field(description="The compliance officer who acknowledged it.")
    acknowledged_at: datetime | None = Field(description="When.")
    acknowledgement: str | None = Field(description="Their comment.")


class CoveragePointOut(BaseModel):
    business_date: date = Field(description="The day.")
    version: int = Field(description="The version of the day's report the point comes from (the latest).")
    report_id: int = Field(description="That report.")
    status: str = Field(description="covered, or the breach kind.")
    outstanding_units: int = Field(description="Units outstanding (here and on trading platforms).")
    required_value: int = Field(description="Outstanding units x nominal x ratio, tiyn.")
    market_value: int | None = Field(description="The custodian's valuation, tiyn; null when none was given.")
    valued_on: date | None = Field(description="The valuation's date.")


class SigningKeyOut(BaseModel):
    public_key_pem: str = Field(description="The Ed25519 public key that verifies reports, PEM.")
    sha256: str = Field(description="SHA-256 of the raw public key, hex.")


class HolderRootOut(BaseModel):
    report_id: int = Field(description="The report that fixed the root.")
    business_date: date = Field(description="Its day.")
    version: int = Field(description="Its version.")
    content_sha256: str = Field(description="SHA-256 of the signed report that publishes the root.")
    root_hash: str = Field(description="The Merkle-sum root, hex.")
    total_units: int = Field(description="The units held here that the root commits to.")
    leaf_count: int = Field(description="Holders in the tree.")
