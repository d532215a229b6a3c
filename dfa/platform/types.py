"""Field types shared by every API: bounded ids and text PostgreSQL can store."""

import re
from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: str) -> str:
    # PostgreSQL cannot store NUL in text, and no name or reference needs control characters.
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_printable)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone offset, e.g. 2026-11-21T10:00:00Z")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
ASSET_CODE_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,49}$"

AccountIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Ledger account id.")]
AssetCodePath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN, description="Asset code.")]
AfterBigint = Annotated[int | None, Query(ge=0, le=BIGINT_MAX, description="Return items with a larger id.")]
AfterInt = Annotated[int | None, Query(ge=0, le=INT_MAX, description="Return items with a larger id.")]
Limit = Annotated[
    int | None, Query(ge=1, le=BIGINT_MAX, description="Page size (default and maximum are settings).")
]
