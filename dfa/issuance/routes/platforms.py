"""Digital-asset trading platforms and the transfer of an emission's units to and from them (REQ-44..REQ-47).
The operator's administrator registers platforms; the emission's issuer applies for transfers; staff
and the issuer follow them."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, status

from dfa.issuance.schemas import platforms as schemas
from dfa.issuance.service import platforms
from dfa.issuance.service.platforms import TransferView
from dfa.issuance.trading_platforms import TradingPlatforms
from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.errors import invariant
from dfa.platform.types import ASSET_CODE_PATTERN, AwareDatetime, Limit
from dfa.platform.web import IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute, app_state

router = APIRouter(prefix="/v1", tags=["trading platforms"], route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
Issuer = Annotated[Principal, Depends(allow(Role.ISSUER))]
StaffOrIssuer = Annotated[Principal, Depends(allow(*STAFF_ROLES, Role.ISSUER))]
Refresher = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER, Role.ISSUER))]
TradingPlatformsDep = Annotated[TradingPlatforms, Depends(app_state("trading_platforms"))]
RegistrationNumberPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN, description="The emission's registration number.")]


def _own(principal: Principal) -> uuid.UUID:
    invariant(principal.party_id is not None, "an issuer acts for its legal entity")
    return principal.party_id


def _out(view: TransferView) -> dict:
    transfer = view.transfer
    shown = (name for name in schemas.TransferOut.model_fields if name not in ("emission", "platform"))
    out = {name: getattr(transfer, name) for name in shown}
    out |= {"emission": view.registration_number, "platform": transfer.platform_code}
    if view.messages is not None:
        out["messages"] = [schemas.MessageOut.model_validate(m) for m in view.messages]
    return out


@router.post("/trading-platforms", status_code=status.HTTP_201_CREATED, response_model=schemas.PlatformOut)
async def register_platform(body: schemas.PlatformCreate, principal: Admin, session: SessionDep, _key: IdempotencyKeyHeader):
    """Register a trading platform the operator has an interaction agreement with (REQ-47)."""
    return await platforms.register_platform(
        session, code=body.code, name=body.name, nbk_registration_number=body.nbk_registration_number,
        actor=principal.login,
    )


@router.get("/trading-platforms", response_model=list[schemas.PlatformOut])
async def list_platforms(_principal: Anyone, session: SessionDep):
    return await platforms.list_platforms(session)


@router.post(
    "/emissions/{registration_number}/platform-transfers",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.TransferDetail,
)
async def request_transfer(
    registration_number: RegistrationNumberPath, body: schemas.TransferCreate, principal: Issuer, session: SessionDep,
    settings: SettingsDep, trading_platforms: TradingPlatformsDep, _key: IdempotencyKeyHeader,
):
    """Apply to move units of your emission to a trading platform: they are checked for encumbrances and
    blocked, and the platform is notified; it confirms or refuses within 3 business days (REQ-44, REQ-45)."""
    view = await platforms.request_transfer(
        session, registration_number=registration_number, platform_code=body.platform, units=body.units,
        issuer_party_id=_own(principal), actor=principal.login, platforms=trading_platforms, settings=settings,
    )
    return _out(view)


@router.post(
    "/emissions/{registration_number}/platform-returns",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.TransferDetail,
)
async def request_return(
    registration_number: RegistrationNumberPath, body: schemas.TransferCreate, principal: Issuer, session: SessionDep,
    settings: SettingsDep, trading_platforms: TradingPlatformsDep, _key: IdempotencyKeyHeader,
):
    """Apply to bring units of your emission back from a trading platform: they are issued here again
    when the platform confirms it cancelled them there."""
    view = await platforms.request_return(
        session, registration_number=registration_number, platform_code=body.platform, units=body.units,
        issuer_party_id=_own(principal), actor=principal.login, platforms=trading_platforms, settings=settings,
    )
    return _out(view)


@router.get("/platform-transfers", response_model=list[schemas.TransferOut])
async def list_transfers(
    principal: StaffOrIssuer,
    session: SessionDep,
    settings: SettingsDep,
    emission: Annotated[str | None, Query(pattern=ASSET_CODE_PATTERN, description="Only this emission's.")] = None,
    status_: Annotated[
        Literal["notified", "confirmed", "refused", "lapsed"] | None, Query(alias="status", description="Only these.")
    ] = None,
    before: Annotated[AwareDatetime | None, Query(description="Page: transfers created before this instant.")] = None,
    limit: Limit = None,
):
    """Transfers to and from trading platforms, newest first: staff see all, an issuer its own."""
    views = await platforms.list_transfers(
        session, holder_party_id=principal.owner_filter(), registration_number=emission, status=status_,
        before=before, limit=settings.page_size(limit),
    )
    return [_out(view) for view in views]


@router.get("/platform-transfers/{transfer_id}", response_model=schemas.TransferDetail)
async def get_transfer(transfer_id: uuid.UUID, principal: StaffOrIssuer, session: SessionDep):
    """One transfer with every message exchanged with the platform about it (REQ-47)."""
    return _out(await platforms.transfer_view(session, transfer_id, visible_to=principal.owner_filter()))


@router.post("/platform-transfers/{transfer_id}/refresh", response_model=schemas.TransferDetail)
async def refresh_transfer(
    transfer_id: uuid.UUID, principal: Refresher, session: SessionDep, settings: SettingsDep,
    trading_platforms: TradingPlatformsDep, _key: IdempotencyKeyHeader,
):
    """Ask the platform for its answer now and act on it (units cancelled or issued, or the block released)."""
    view = await platforms.refresh_transfer(
        session, transfer_id=transfer_id, visible_to=principal.owner_filter(), actor=principal.login,
        platforms=trading_platforms, settings=settings,
    )
    return _out(view)
