"""Requests and responses of trading platforms and transfers to and from them."""

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dfa.issuance.trading_platforms import PLATFORM_CODE_PATTERN
from dfa.platform.types import BIGINT_MAX, Text


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PlatformCreate(Request):
    code: str = Field(pattern=PLATFORM_CODE_PATTERN, description="Short code the platforms' gateway knows it by.")
    name: Text = Field(min_length=1, max_length=200, description="The platform operator's name.")
    nbk_registration_number: Text = Field(
        min_length=1, max_length=50, description="Its registration number with the National Bank."
    )


class PlatformOut(Response):
    code: str = Field(description="Short code the platforms' gateway knows it by.")
    name: str = Field(description="The platform operator's name.")
    nbk_registration_number: str = Field(description="Its registration number with the National Bank.")
    active: bool = Field(description="Whether units may move to and from it.")
    created_at: datetime = Field(description="When it was registered.")


class TransferCreate(Request):
    platform: str = Field(pattern=PLATFORM_CODE_PATTERN, description="The trading platform's code.")
    units: int = Field(strict=True, ge=1, le=BIGINT_MAX, description="How many units move.")


class TransferOut(Response):
    id: uuid.UUID = Field(description="The transfer's id.")
    emission: str = Field(description="The emission's registration number.")
    platform: str = Field(description="The trading platform's code.")
    direction: str = Field(description="out: to the platform; in: back from it.")
    status: str = Field(description="notified, confirmed, refused or lapsed (no answer by the deadline's close).")
    units: int = Field(description="How many units move.")
    hold_id: uuid.UUID | None = Field(description="The ledger hold blocking the units (out only).")
    encumbrance_check: dict[str, Any] = Field(description="What was checked before the units were blocked (REQ-44).")
    deadline: date | None = Field(description="The business day by whose close the platform answers (REQ-45).")
    platform_reference: str | None = Field(
        description="The platform's reference: of its receipt while notified, of its issue (or, for a return, "
        "cancellation) record once confirmed."
    )
    reasons: str | None = Field(description="The platform's reasons for a refusal.")
    requested_by: str = Field(description="Who applied.")
    created_at: datetime = Field(description="When the platform was notified.")
    answered_at: datetime | None = Field(description="When the answer (or the lapse) was recorded.")


class MessageOut(Response):
    direction: str = Field(description="sent or received.")
    body: dict[str, Any] = Field(description="The message as it crossed.")
    at: datetime = Field(description="When it was recorded.")


class TransferDetail(TransferOut):
    messages: list[MessageOut] = Field(description="Every message exchanged with the platform about it (REQ-47).")
