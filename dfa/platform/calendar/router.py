"""The business-day calendar API: everyone reads it, operator admins change it."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from dfa.platform.access import ALL_ROLES, Principal, Role, allow
from dfa.platform.calendar import schemas, service
from dfa.platform.types import IsoDate
from dfa.platform.web import IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute

router = APIRouter(prefix="/v1/calendar", tags=["calendar"], route_class=UnitOfWorkRoute)

DayPath = Annotated[IsoDate, Path(description="The day, as YYYY-MM-DD.")]


@router.get("/days", response_model=list[schemas.DayOut])
async def list_days(
    session: SessionDep,
    settings: SettingsDep,
    _principal: Annotated[Principal, Depends(allow(*ALL_ROLES))],
    start: Annotated[IsoDate, Query(alias="from", description="First day listed (YYYY-MM-DD).")],
    end: Annotated[
        IsoDate, Query(alias="to", description="Last day listed (YYYY-MM-DD), at most 366 days from the first.")
    ],
):
    """Each day of the range: business day or not, public holiday, the operator's override, close."""
    return await service.list_days(session, settings=settings, start=start, end=end)


@router.put("/days/{day}", response_model=schemas.OverrideOut)
async def set_day(
    day: DayPath,
    body: schemas.DaySet,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))],
    _key: IdempotencyKeyHeader,
):
    """Make a day a business day or a day off, whatever the weekend and the public holidays say
    (a government day transfer, an extra day off). Past days cannot be changed."""
    return await service.set_day(
        session, settings=settings, day=day, kind=body.kind, reason=body.reason, actor=principal.login
    )


@router.delete("/days/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def clear_day(
    day: DayPath,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))],
    _key: IdempotencyKeyHeader,
) -> None:
    """Remove a day's override: the weekend and the public holidays decide it again."""
    await service.clear_day(session, settings=settings, day=day, actor=principal.login)
