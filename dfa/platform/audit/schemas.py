"""Responses of the security-event log API."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SecurityEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="Position in the log, from 1 without gaps.")
    occurred_at: datetime = Field(description="When it happened (UTC).")
    kind: str = Field(description="What happened, as a dotted name (sign_in.failed, role.granted, antifraud.match, ...).")
    outcome: str = Field(description="success, failure or denied.")
    actor: str | None = Field(description="Who acted: a login, an API client id, or system.")
    subject: str | None = Field(description="What was acted on: a login, a party id, an account, a day.")
    source_ip: str | None = Field(description="The client address the request came from.")
    request_id: str | None = Field(description="The request id (X-Request-ID) of the request that caused it.")
    details: dict[str, Any] = Field(description="Further facts; never secrets.")
    hash: str = Field(description="SHA-256 (hex) over the previous event's hash and this event.")

    @field_validator("hash", mode="before")
    @classmethod
    def _hex(cls, value: bytes | str) -> str:
        return value.hex() if isinstance(value, bytes) else value


class VerificationOut(BaseModel):
    ok: bool = Field(description="True when every event links to the one before it and matches its hash.")
    events_checked: int = Field(description="How many events were recomputed.")
    head_seq: int = Field(description="The last event's number as the head row records it.")
    problems: list[str] = Field(description="What does not match, event by event (at most 100).")
