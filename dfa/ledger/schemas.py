"""Requests and responses of the ledger API. Integers are strict: a float or a string is refused."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.ledger.service import MAX_AMOUNT
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, INT_MAX, AwareDatetime, Text

MAX_BATCH_ITEMS = 1_000


Amount = Annotated[
    int, Field(strict=True, gt=0, le=MAX_AMOUNT, description="Whole minor units: tiyn for KZT, units for a DFA.")
]
AccountId = Annotated[int, Field(strict=True, gt=0, le=BIGINT_MAX, description="Ledger account id.")]
Code = Annotated[
    int, Field(strict=True, ge=0, le=INT_MAX, description="Caller's classification of the transfer (0: none).")
]
Reference = Annotated[
    Text | None, Field(max_length=200, description="Free text shown in statements, e.g. an order or contract number.")
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AssetCreate(Request):
    code: str = Field(
        pattern=ASSET_CODE_PATTERN,
        description="Unique code: KZT, or an emission's registration number.",
    )
    kind: Literal["money", "dfa"] = Field(description="money (KZT) or dfa (one emission).")
    scale: int = Field(strict=True, ge=0, le=8, description="Decimal places of the display unit (2 for KZT).")
    name: Text = Field(min_length=1, max_length=200, description="Human name of the asset.")


class AssetOut(Response):
    id: int = Field(description="Internal asset id.")
    code: str = Field(description="Unique asset code.")
    kind: str = Field(description="money or dfa.")
    scale: int = Field(description="Decimal places of the display unit.")
    name: str = Field(description="Human name.")
    created_at: datetime = Field(description="When the asset was created (UTC).")


class AccountOpen(Request):
    owner_party_id: uuid.UUID = Field(description="The party that owns the account.")
    asset: str = Field(pattern=ASSET_CODE_PATTERN, description="Code of the asset the account holds.")
    kind: Literal["available", "issued", "client_money", "own_money", "settlement", "fees"] = Field(
        description="available (a holder's free balance; opens its held twin too), issued (an emission's "
        "contra-account), client_money / own_money (bank mirrors, kept apart), settlement, fees."
    )


class AccountOut(Response):
    id: int = Field(description="Account id.")
    asset_id: int = Field(description="Id of the asset held.")
    owner_party_id: uuid.UUID = Field(description="Owner party.")
    kind: str = Field(description="Account kind.")
    balance: int = Field(description="Current balance in minor units; negative only for contra kinds.")
    version: int = Field(description="Number of entries posted to the account.")
    created_at: datetime = Field(description="When the account was opened (UTC).")


class TransferCreate(Request):
    id: uuid.UUID = Field(description="Caller-chosen unique id; makes the transfer exactly-once.")
    debit_account_id: AccountId
    credit_account_id: AccountId
    amount: Amount
    code: Code = 0
    reference: Reference = None


class TransferOut(Response):
    id: uuid.UUID = Field(description="Transfer id.")
    debit_account_id: int = Field(description="Account the amount left.")
    credit_account_id: int = Field(description="Account the amount reached.")
    asset_id: int = Field(description="Asset moved.")
    amount: int = Field(description="Amount in minor units.")
    kind: str = Field(description="transfer, hold, post, void or expire.")
    hold_id: uuid.UUID | None = Field(description="The hold this transfer belongs to, if any.")
    batch_id: uuid.UUID | None = Field(description="The linked batch this transfer belongs to, if any.")
    code: int = Field(description="Caller's classification.")
    reference: str | None = Field(description="Caller's reference.")
    created_at: datetime = Field(description="When it was posted (UTC).")


class HoldCreate(Request):
    id: uuid.UUID = Field(description="Caller-chosen unique hold id (also the id of the reserving transfer).")
    account_id: AccountId
    amount: Amount
    expires_at: AwareDatetime | None = Field(default=None, description="After this instant the hold is released.")
    code: Code = 0
    reference: Reference = None


class HoldPost(Request):
    transfer_id: uuid.UUID = Field(description="Caller-chosen id of the delivering transfer.")
    credit_account_id: AccountId
    amount: Amount | None = Field(default=None, description="Part to deliver; all that remains when omitted.")
    code: Code = 0
    reference: Reference = None


class HoldVoid(Request):
    transfer_id: uuid.UUID = Field(description="Caller-chosen id of the releasing transfer.")


class HoldOut(Response):
    id: uuid.UUID = Field(description="Hold id.")
    account_id: int = Field(description="The holder's available account the amount came from.")
    held_account_id: int = Field(description="The held twin where the amount waits.")
    asset_id: int = Field(description="Asset held.")
    amount: int = Field(description="Amount reserved.")
    posted_amount: int = Field(description="Amount delivered so far.")
    released_amount: int = Field(description="Amount returned to the holder by void or expiry.")
    status: str = Field(description="pending, posted, voided or expired.")
    expires_at: datetime | None = Field(description="Expiry instant, if any.")
    reference: str | None = Field(description="Caller's reference.")
    created_at: datetime = Field(description="When the hold was placed (UTC).")
    closed_at: datetime | None = Field(description="When it stopped being pending.")


class TransferItemIn(Request):
    type: Literal["transfer"] = Field(description="A plain transfer.")
    transfer: TransferCreate = Field(description="The transfer.")


class PlaceHoldItemIn(HoldCreate):
    type: Literal["place_hold"] = Field(description="Place a hold.")


class PostHoldItemIn(HoldPost):
    type: Literal["post_hold"] = Field(description="Deliver (part of) a hold.")
    hold_id: uuid.UUID = Field(description="The hold to deliver from.")


class VoidHoldItemIn(HoldVoid):
    type: Literal["void_hold"] = Field(description="Release a hold.")
    hold_id: uuid.UUID = Field(description="The hold to release.")


BatchItemIn = Annotated[
    TransferItemIn | PlaceHoldItemIn | PostHoldItemIn | VoidHoldItemIn, Field(discriminator="type")
]


class BatchCreate(Request):
    id: uuid.UUID = Field(description="Caller-chosen unique batch id; makes the batch exactly-once.")
    items: list[BatchItemIn] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS, description="Applied in order, all or none."
    )


class BatchOut(BaseModel):
    id: uuid.UUID = Field(description="Batch id.")
    transfers: list[TransferOut] = Field(description="One transfer per item, in item order.")


class EntryOut(Response):
    seq: int = Field(description="Position in the account's journal, from 1.")
    transfer_id: uuid.UUID = Field(description="The transfer this entry is one side of.")
    counter_account_id: int = Field(description="The other side's account.")
    amount: int = Field(description="Signed change of the balance.")
    balance_after: int = Field(description="Balance after this entry.")
    created_at: datetime = Field(description="When it was posted (UTC).")
    kind: str = Field(description="Kind of the transfer.")
    code: int = Field(description="Transfer's code.")
    reference: str | None = Field(description="Transfer's reference.")
    hold_id: uuid.UUID | None = Field(description="Hold, if any.")
    batch_id: uuid.UUID | None = Field(description="Batch, if any.")
    hash: str = Field(description="This entry's link in the account's hash chain (hex).")


class EntryPageOut(BaseModel):
    items: list[EntryOut] = Field(description="Entries, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class PositionOut(Response):
    holder_party_id: uuid.UUID = Field(description="The holder.")
    holder_kind: str = Field(description="person or legal_entity.")
    holder_name: str = Field(description="Holder's name.")
    holder_identifier: str = Field(description="Holder's IIN or BIN.")
    holder_resident: bool = Field(description="Whether the holder is a resident of Kazakhstan.")
    account_id: int = Field(description="The holder's available account.")
    available_units: int = Field(description="Units free to dispose of.")
    held_units: int = Field(description="Units encumbered by holds (blocked).")
    total_units: int = Field(description="available_units + held_units.")


class RegistryOut(BaseModel):
    asset: str = Field(description="Asset code.")
    as_of: datetime | None = Field(description="The instant the registry describes; null for now.")
    holders: list[PositionOut] = Field(description="Holders with a non-zero position.")
    total_units: int = Field(description="Sum of all holders' units.")


class DiscrepancyOut(Response):
    check: str = Field(description="The check that failed.")
    account_id: int | None = Field(description="The account concerned, if any.")
    seq: int | None = Field(description="The entry concerned, if any.")
    detail: str = Field(description="What is wrong.")


class VerificationOut(Response):
    ok: bool = Field(description="True when every check passed.")
    entries: int = Field(description="Entries in the journal.")
    transfers: int = Field(description="Transfers in the journal.")
    accounts: int = Field(description="Accounts.")
    checks: list[str] = Field(description="Checks run, in order.")
    first_discrepancy: DiscrepancyOut | None = Field(description="The first thing found wrong, if any.")
