"""Requests and responses of holder snapshots, primary placement and redemption."""

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.types import BIGINT_MAX, AwareDatetime, IsoDate

Units = Field(strict=True, ge=1, le=BIGINT_MAX, description="Whole units of the emission.")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- snapshots ----------------------------------------------------------------------------------------


class SnapshotTake(Request):
    record_date: IsoDate | None = Field(
        default=None, description="Fix the holders as of this business day's close (Asia/Almaty)."
    )
    as_of: AwareDatetime | None = Field(
        default=None, description="Fix the holders as of this instant; with neither field, as of now."
    )


class PositionOut(Response):
    party_id: uuid.UUID = Field(description="The holder.")
    available: int = Field(description="Units it could dispose of.")
    held: int = Field(description="Units held for operations or frozen (part of what it owns).")
    frozen: int = Field(description="The part of `held` frozen by an order of a court or another authority.")
    total: int = Field(description="Units it owns: available plus held.")
    is_issuer: bool = Field(description="Whether this is the issuer's own placement account.")


class SnapshotOut(Response):
    id: uuid.UUID = Field(description="The snapshot.")
    registration_number: str = Field(description="The emission.")
    record_date: date = Field(description="The business date the snapshot counts for.")
    as_of: datetime = Field(description="The instant the holdings are fixed at.")
    total_units: int = Field(description="Units of all holders: the emission's outstanding volume here.")
    holders: int = Field(description="How many holders, the issuer included.")
    taken_by: str = Field(description="Who took it.")
    taken_at: datetime = Field(description="When it was taken.")
    positions: list[PositionOut] = Field(description="One row per holder.")


# --- placements ---------------------------------------------------------------------------------------


class PlacementOpen(Request):
    units: int = Field(
        strict=True, ge=1, le=BIGINT_MAX, description="Units offered; at most the issuer's available units."
    )
    price: int | None = Field(
        default=None, strict=True, ge=1, le=BIGINT_MAX,
        description="Tiyn per unit; the application's placement price by default.",
    )
    min_units: int | None = Field(
        default=None, strict=True, ge=1, le=BIGINT_MAX,
        description="Below this many units subscribed the issue does not take place; the application's by default.",
    )
    opens_at: AwareDatetime = Field(description="Subscriptions are taken from this instant.")
    closes_at: AwareDatetime = Field(
        description="Until this instant (excluded); the window lies within the application's placement period."
    )


class PlacementOut(Response):
    id: uuid.UUID = Field(description="The placement.")
    registration_number: str = Field(description="The emission placed.")
    status: str = Field(description="open, allocated or failed.")
    units: int = Field(description="Units offered.")
    price: int = Field(description="Tiyn per unit.")
    min_units: int | None = Field(description="The minimum below which the issue does not take place.")
    opens_at: datetime = Field(description="Subscriptions are taken from this instant.")
    closes_at: datetime = Field(description="Until this instant.")
    units_subscribed: int | None = Field(description="Units subscribed, once closed.")
    units_allocated: int | None = Field(description="Units placed with investors, once closed.")
    units_cancelled: int | None = Field(description="Offered units not placed and so cancelled, once closed.")
    created_by: str = Field(description="Who opened it.")
    created_at: datetime = Field(description="When it was opened.")
    closed_by: str | None = Field(description="Who (or which job) closed it.")
    closed_at: datetime | None = Field(description="When it was closed.")


class PlacementReportOut(Response):
    placement_id: uuid.UUID = Field(description="The placement.")
    report: dict[str, Any] = Field(
        description="Window, price, units offered, subscribed, allocated and cancelled, money raised, fees (none "
                    "on primary placement), subscribers, the allocation rule, and one row per subscription."
    )


class SubscriptionCreate(Request):
    units: int = Units


class SubscriptionOut(Response):
    id: uuid.UUID = Field(description="The subscription.")
    seq: int = Field(description="Its place in the order subscriptions arrived (earliest first).")
    placement_id: uuid.UUID = Field(description="The placement subscribed to.")
    party_id: uuid.UUID = Field(description="The investor.")
    status: str = Field(description="pending, allocated, released (nothing allocated) or cancelled.")
    units: int = Field(description="Units asked for.")
    amount: int = Field(description="Tiyn held for it: units × price.")
    allocated_units: int | None = Field(description="Units allocated, once the placement is closed.")
    instruction_id: uuid.UUID | None = Field(description="The settled DvP instruction of its allocation.")
    created_at: datetime = Field(description="When it was made.")


# --- redemptions --------------------------------------------------------------------------------------


class RedemptionCreate(Request):
    kind: Literal["maturity", "early"] = Field(
        description="maturity (from the maturity date's business date on) or early (only when the terms allow it)."
    )


class PaymentOut(Response):
    party_id: uuid.UUID = Field(description="The holder paid.")
    units: int = Field(description="Units redeemed and cancelled.")
    frozen_units: int = Field(description="Of them, frozen units: what they were paid is frozen in their place.")
    amount: int = Field(description="Tiyn paid.")
    transfer_id: uuid.UUID = Field(description="The ledger transfer of the payment.")


class DefaultOut(Response):
    id: uuid.UUID = Field(description="The default event.")
    amount_due: int = Field(description="Tiyn due to holders.")
    shortfall: int = Field(description="Tiyn the issuer's prefunded money was short by.")
    recorded_at: datetime = Field(description="When it was recorded.")


class RedemptionOut(Response):
    id: uuid.UUID = Field(description="The redemption.")
    registration_number: str = Field(description="The emission redeemed.")
    kind: str = Field(description="maturity or early.")
    status: str = Field(description="paid (every holder paid, every unit cancelled) or defaulted (nobody paid).")
    snapshot_id: uuid.UUID = Field(description="The holders snapshot it was computed from.")
    price: int = Field(description="Tiyn per unit.")
    units: int = Field(description="Units of holders other than the issuer.")
    amount_due: int = Field(description="Tiyn due to those holders.")
    amount_available: int | None = Field(
        description="The issuer's prefunded money when it ran (shown to the issuer and staff only)."
    )
    reason: str | None = Field(description="Why it defaulted.")
    created_by: str = Field(description="Who ran it.")
    created_at: datetime = Field(description="When it ran.")
    default: DefaultOut | None = Field(description="The default event, when the issuer was short.")
    payments: list[PaymentOut] = Field(description="Payments to holders (an investor sees its own only).")
