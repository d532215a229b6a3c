"""Field types shared by every API: bounded ids, text PostgreSQL can store, and instants, days and decimals read
only in the forms the API description gives them."""

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator, Field, GetJsonSchemaHandler

BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: str) -> str:
    # PostgreSQL cannot store NUL in text, and no name or reference needs control characters.
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_printable)]


# RFC 3339, as the API description's `date-time` format says; other spellings pydantic would take (a number of
# seconds since 1970, a date alone) are refused rather than read as something the caller may not have meant.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("timestamps are RFC 3339 date-times with a time zone offset, e.g. 2026-11-21T10:00:00Z")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    if (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and _ISO_DATE.fullmatch(value)
    ):
        return value
    raise ValueError("days are written YYYY-MM-DD, e.g. 2026-11-21")


# A day as the API description's `date` format says (pydantic would also read a number of seconds since 1970).
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone offset, e.g. 2026-11-21T10:00:00Z")
    return value


AwareDatetime = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_aware)]
ASSET_CODE_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,49}$"


class _WrittenAs:
    """Gives the string form of a decimal its pattern in the API description (pydantic documents any string)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> dict:
        schema = handler(core_schema)
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch["pattern"] = self.pattern
        return schema


def decimal_written_as(pattern: str, *, example: str, **constraints: Any) -> Any:
    """A decimal (a share, a ratio) as the API takes it: a JSON number within `constraints`, or a string matching
    `pattern` and nothing else (pydantic would also read "+1E-1" or " 0.5"), exactly as the description says."""

    def plain(value: object) -> object:
        if isinstance(value, str) and not re.fullmatch(pattern, value):
            raise ValueError(f'write it as plain digits with a point, e.g. "{example}"')
        return value

    return Annotated[Decimal, Field(**constraints), BeforeValidator(plain), _WrittenAs(pattern)]


# A share of a whole: above 0, at most 1, at most 4 decimal places.
Share = decimal_written_as(
    r"^(?!0*(\.0*)?$)(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$", example="0.25", gt=0, le=1, max_digits=5, decimal_places=4
)
# A ratio such as the coverage: above 0, at most 4 digits before the point and 4 after it.
Ratio = decimal_written_as(
    r"^(?!0*(\.0*)?$)[0-9]{1,4}(\.[0-9]{1,4})?$", example="1.10", gt=0, max_digits=8, decimal_places=4
)

AccountIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Ledger account id.")]
AssetCodePath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN, description="Asset code.")]
AfterBigint = Annotated[int | None, Query(ge=0, le=BIGINT_MAX, description="Return items with a larger id.")]
AfterInt = Annotated[int | None, Query(ge=0, le=INT_MAX, description="Return items with a larger id.")]
Limit = Annotated[
    int | None, Query(ge=1, le=BIGINT_MAX, description="Page size (default and maximum are settings).")
]
