"""Requests and responses of the business-day calendar API."""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.calendar.service import MAX_REASON_LENGTH
from dfa.platform.types import Text


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DaySet(Request):
    kind: Literal["working", "day_off"] = Field(
        description="working: the day is a business day (a weekend day worked under a government day "
        "transfer); day_off: it is not (the weekday such a transfer frees, an extra day off by decree). "
        "Either way the override beats the weekend rule and the public holidays."
    )
    reason: Text = Field(
        min_length=1,
        max_length=MAX_REASON_LENGTH,
        description="Why the day changes, e.g. the government decree that transfers it.",
    )


class OverrideOut(Response):
    day: date = Field(description="The day overridden.")
    kind: str = Field(description="working or day_off.")
    reason: str = Field(description="Why the day was changed.")
    changed_by: str = Field(description="Login of whoever last set the override.")
    changed_at: datetime = Field(description="When the override was last set (UTC).")


class DayOut(Response):
    day: date = Field(description="The day.")
    is_business_day: bool = Field(description="Whether deadlines and settlement can fall on this day.")
    is_weekend: bool = Field(description="Whether the day is a Saturday or a Sunday.")
    is_public_holiday: bool = Field(
        description="Whether the statute makes the day a public holiday or a day off (an override may "
        "still make it a business day)."
    )
    holiday_name: str | None = Field(description="The public holiday or day off on this day (English), if any.")
    override: OverrideOut | None = Field(description="The operator's override of this day, if any.")
    closes_at: datetime | None = Field(
        description="When the business day closes, i.e. when deadlines falling on it expire (UTC); "
        "null when the day is not a business day."
    )
