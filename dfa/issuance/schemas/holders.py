"""Requests and responses of holder protections (freezes, forced transfers) and trading suspensions."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, Share, Text

FreezeBasis = Literal["court_order", "authority_order", "operator_decision"]
ForcedTransferBasis = Literal["court_order", "access_recovery"]
Ground = Literal[
    "liquidation", "reorganisation", "compulsory_liquidation", "bankruptcy", "asset_arrest", "operator_decision"
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Reason(Request):
    reason: Text = Field(min_length=1, max_length=1000, description="Why; kept with the record and in the audit log.")


# --- freezes --------------------------------------------------------------------------------------------


class FreezeCreate(Request):
    asset: str = Field(pattern=ASSET_CODE_PATTERN, description="The asset: an emission's registration number or KZT.")
    party_id: uuid.UUID = Field(description="The holder whose units are frozen.")
    units: int = Field(
        strict=True, ge=1, le=BIGINT_MAX,
        description="How many of the holder's available units to freeze (all or part), in the asset's smallest unit.",
    )
    basis: FreezeBasis = Field(description="court_order, authority_order or operator_decision.")
    order_reference: Text = Field(min_length=1, max_length=200, description="The order's number and date.")
    reason: Text = Field(min_length=1, max_length=1000, description="What the order says, in short.")


class FreezeOut(Response):
    id: uuid.UUID = Field(description="The freeze's id.")
    asset: str = Field(description="The asset's code.")
    party_id: uuid.UUID = Field(description="The holder whose units are frozen.")
    units: int = Field(description="Units frozen, in the asset's smallest unit.")
    hold_id: uuid.UUID = Field(description="The ledger hold keeping them.")
    basis: str = Field(description="court_order, authority_order or operator_decision.")
    order_reference: str = Field(description="The order's number and date.")
    reason: str = Field(description="What the order says.")
    status: str = Field(description="active or lifted.")
    frozen_from: uuid.UUID | None = Field(description="The freeze whose redeemed units these are the proceeds of.")
    created_by: str = Field(description="Who froze the units.")
    created_at: datetime = Field(description="When.")
    lifted_by: str | None = Field(description="Who lifted the freeze.")
    lifted_at: datetime | None = Field(description="When it was lifted.")
    lift_reason: str | None = Field(description="Why it was lifted (or that its units moved).")


# --- forced transfers -----------------------------------------------------------------------------------


class ForcedTransferCreate(Request):
    asset: str = Field(pattern=ASSET_CODE_PATTERN, description="The asset: an emission's registration number or KZT.")
    from_party_id: uuid.UUID = Field(description="The holder the units leave.")
    to_party_id: uuid.UUID = Field(description="The identified party (or the client's new party) they go to.")
    units: int = Field(
        strict=True, ge=1, le=BIGINT_MAX, description="How many units move, in the asset's smallest unit."
    )
    basis: ForcedTransferBasis = Field(description="court_order, or access_recovery (a client's lost access).")
    order_reference: Text = Field(min_length=1, max_length=200, description="The order's (or recovery case's) reference.")
    reason: Text = Field(min_length=1, max_length=1000, description="What the order says, in short.")
    include_frozen: bool = Field(
        default=False, strict=True,
        description="Whether frozen units move too, when available ones do not cover the order (oldest freeze first).",
    )


class ForcedTransferOut(Response):
    id: uuid.UUID = Field(description="The forced transfer's id.")
    asset: str = Field(description="The asset's code.")
    from_party_id: uuid.UUID = Field(description="The holder the units left.")
    to_party_id: uuid.UUID = Field(description="The party they went to.")
    units: int = Field(description="Units moved.")
    basis: str = Field(description="court_order or access_recovery.")
    order_reference: str = Field(description="The order's reference.")
    reason: str = Field(description="What the order says.")
    transfer_id: uuid.UUID = Field(description="The ledger transfer of the first movement (code 9001, a forced move).")
    actor: str = Field(description="Who executed it.")
    at: datetime = Field(description="When.")


# --- suspensions ----------------------------------------------------------------------------------------


class SuspensionCreate(Request):
    ground: Ground = Field(
        description="An issuer's event (liquidation, reorganisation, compulsory_liquidation, bankruptcy, asset_arrest) "
        "suspends all its emissions; operator_decision suspends one emission (REQ-62)."
    )
    issuer_party_id: uuid.UUID | None = Field(
        default=None, description="The issuer; required for an issuer's event, optional with an emission."
    )
    emission: str | None = Field(
        default=None, pattern=ASSET_CODE_PATTERN, description="The emission's registration number (operator_decision only)."
    )
    arrested_share: Share | None = Field(
        default=None,
        description="asset_arrest only: the share of the issuer's assets arrested; more than 0.5 suspends trading.",
    )
    reference: Text = Field(min_length=1, max_length=200, description="The court decision, register entry or decision number.")
    details: Text = Field(min_length=1, max_length=2000, description="What happened, in short.")


class SuspensionOut(Response):
    id: uuid.UUID = Field(description="The suspension's id.")
    issuer_party_id: uuid.UUID = Field(description="The issuer.")
    emission: str | None = Field(description="The one emission suspended (operator_decision); none for an issuer's event.")
    ground: str = Field(description="The ground of REQ-62, or operator_decision.")
    arrested_share: Decimal | None = Field(description="asset_arrest: the share of the issuer's assets arrested.")
    reference: str = Field(description="The court decision, register entry or decision number.")
    details: str = Field(description="What happened.")
    recorded_by: str = Field(description="Who recorded it.")
    recorded_at: datetime = Field(description="When trading was suspended.")
    lifted_by: str | None = Field(description="Who lifted it.")
    lifted_at: datetime | None = Field(description="When trading resumed (where nothing else suspends it).")
    lift_reason: str | None = Field(description="Why it was lifted.")
