"""Requests and responses of emission applications, their review and registration, and of registered
emissions' public terms."""

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.issuance.models import DFA_KINDS
from dfa.platform.types import BIGINT_MAX, IsoDate, Ratio, Text

DfaKind = Literal[DFA_KINDS]  # type: ignore[valid-type]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- applications --------------------------------------------------------------------------------------


class ApplicationSubmit(Request):
    name: Text = Field(min_length=1, max_length=200, description="The emission's name as it will be registered.")
    dfa_kind: DfaKind = Field(description="What the DFA certifies: " + ", ".join(DFA_KINDS) + ".")
    nominal: int = Field(strict=True, ge=1, le=BIGINT_MAX, description="Nominal value of one unit, in tiyn.")
    units: int = Field(
        strict=True, ge=1, le=BIGINT_MAX,
        description="Units to register; units × nominal (the issue volume) fits in 2^63-1 tiyn.",
    )
    placement_start: IsoDate = Field(description="First day of the placement; today or later.")
    placement_end: IsoDate = Field(description="Last day of the placement; not before its start.")
    placement_price: int = Field(strict=True, ge=1, le=BIGINT_MAX, description="Placement price of one unit, in tiyn.")
    min_placement_units: int | None = Field(
        default=None, strict=True, ge=1, le=BIGINT_MAX,
        description="Fewest units that must be placed for the issue to take place; none by default.",
    )
    maturity_date: IsoDate | None = Field(default=None, description="When the units are redeemed; after the placement.")
    redemption_price: int | None = Field(
        default=None, strict=True, ge=1, le=BIGINT_MAX,
        description="Redemption price of one unit, in tiyn; the nominal by default.",
    )
    early_redemption_allowed: bool = Field(
        default=False, strict=True, description="Whether the issuer may redeem before maturity."
    )
    transfer_restrictions: Text | None = Field(
        default=None, max_length=2000, description="Restrictions on transferring the units, as the terms state them."
    )
    underlying_asset_id: uuid.UUID | None = Field(
        default=None, description="Your underlying asset backing the emission; leave out when there is none."
    )
    coverage_ratio: Ratio | None = Field(
        default=None,
        description='With an underlying asset: the ratio its value must keep to the issue volume, e.g. "1.00".',
    )
    no_underlying_reason: Text | None = Field(
        default=None, min_length=1, max_length=2000,
        description="Without an underlying asset: why the emission has none (REQ-26).",
    )


class Note(Request):
    note: Text | None = Field(default=None, max_length=2000, description="The reviewer's note, kept in the history.")


class Reason(Request):
    reason: Text = Field(min_length=1, max_length=2000, description="Why; kept in the history and sent to the issuer.")


class Withdrawal(Request):
    reason: Text | None = Field(default=None, max_length=2000, description="Why you withdraw, if you wish to say.")


class PreliminaryRefusal(Request):
    reasons: Text = Field(min_length=1, max_length=4000, description="The grounds on which the emission would be refused.")
    hearing_date: IsoDate = Field(
        description="When the issuer is heard: a business day after the objections deadline (2 business days from today)."
    )


class Objections(Request):
    text: Text = Field(min_length=1, max_length=10_000, description="Your position on the preliminary refusal.")


class Hearing(Request):
    outcome: Literal["resume_review", "refuse", "register"] = Field(
        description="resume_review: the review goes on (15 business days); refuse: the emission is refused for "
        "good; register: it is registered through the registration gate."
    )
    reason: Text = Field(min_length=1, max_length=4000, description="What the hearing found and why it decided so.")


class ApplicationEventOut(Response):
    step: str = Field(
        description="submitted, accepted, returned, preliminary_refusal, objections, hearing, registered, refused, "
        "withdrawn or overdue."
    )
    status: str = Field(description="The application's status after the step.")
    actor: str = Field(description="Who took the step (system for the deadline watch).")
    reason: str | None = Field(description="The reasons, objections, note or evidence recorded with the step.")
    deadline: date | None = Field(description="The deadline the step set, if any.")
    at: datetime = Field(description="When the step was taken.")


class ApplicationOut(Response):
    id: uuid.UUID = Field(description="The application's id.")
    issuer_party_id: uuid.UUID = Field(description="The applying issuer.")
    status: str = Field(
        description="submitted, in_review, preliminary_refusal (open), or registered, refused, returned, withdrawn."
    )
    name: str = Field(description="The emission's name.")
    dfa_kind: str = Field(description="What the DFA certifies.")
    nominal: int = Field(description="Nominal value of one unit, in tiyn.")
    units: int = Field(description="Units applied for.")
    placement_start: date = Field(description="First day of the placement.")
    placement_end: date = Field(description="Last day of the placement.")
    placement_price: int = Field(description="Placement price of one unit, in tiyn.")
    min_placement_units: int | None = Field(description="Fewest units that must be placed, if any.")
    maturity_date: date | None = Field(description="Maturity, if any.")
    redemption_price: int = Field(description="Redemption price of one unit, in tiyn.")
    early_redemption_allowed: bool = Field(description="Whether early redemption is allowed.")
    transfer_restrictions: str | None = Field(description="Restrictions on transfers, if any.")
    underlying_asset_id: uuid.UUID | None = Field(description="The underlying asset, if any.")
    coverage_ratio: Decimal | None = Field(description="The ratio the underlying's value must keep to the volume.")
    no_underlying_reason: str | None = Field(description="Why there is no underlying asset, if there is none.")
    deadline: date | None = Field(
        description="The business day (Asia/Almaty) by whose close the step the application waits on is due."
    )
    deadline_kind: Literal["completeness_check", "review", "objections", "hearing"] | None = Field(
        description="The step that deadline is for; none once the application is decided."
    )
    overdue: bool = Field(description="Whether today's business date is past the deadline.")
    hearing_date: date | None = Field(description="The hearing of the latest preliminary refusal, if any.")
    objections: str | None = Field(description="The issuer's objections to the latest preliminary refusal, if any.")
    registration_number: str | None = Field(description="The emission's registration number once registered.")
    submitted_by: str = Field(description="Who submitted it.")
    submitted_at: datetime = Field(description="When it was submitted.")
    decided_at: datetime | None = Field(description="When it was registered, refused, returned or withdrawn.")
    history: list[ApplicationEventOut] = Field(description="Every step, oldest first.")


# --- registered emissions ------------------------------------------------------------------------------


class EmissionOut(Response):
    asset_id: int = Field(description="The emission's ledger asset id; page the listing with `after`.")
    registration_number: str = Field(description="The emission's unique registration number; also its asset code.")
    name: str = Field(description="The emission's name.")
    dfa_kind: str = Field(description="What the DFA certifies.")
    issuer_name: str = Field(description="The issuer's name.")
    status: str = Field(description="registered, placing, placed, not_placed, redeemed or defaulted.")
    nominal: int = Field(description="Nominal value of one unit, in tiyn.")
    units_registered: int = Field(description="Units registered (never changes).")
    units_outstanding: int = Field(description="Units outstanding on this platform: registered less cancelled and moved.")
    units_cancelled: int = Field(description="Units cancelled: unplaced or redeemed.")
    units_on_trading_platforms: int = Field(description="Units moved to digital-asset trading platforms.")
    placement_start: date = Field(description="First day of the placement.")
    placement_end: date = Field(description="Last day of the placement.")
    placement_price: int = Field(description="Placement price of one unit, in tiyn.")
    min_placement_units: int | None = Field(description="Fewest units that must be placed, if any.")
    maturity_date: date | None = Field(description="Maturity, if any.")
    redemption_price: int = Field(description="Redemption price of one unit, in tiyn.")
    early_redemption_allowed: bool = Field(description="Whether early redemption is allowed.")
    transfer_restrictions: str | None = Field(description="Restrictions on transfers, if any.")
    has_underlying_asset: bool = Field(description="Whether an underlying asset backs the emission.")
    registered_at: datetime = Field(description="When it was registered.")
