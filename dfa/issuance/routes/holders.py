"""Holder protections (freezes on orders of authorities, forced transfers), trading suspensions (REQ-62)
and the holders registry for the central depository (REQ-35). Staff decide; a holder sees its own
freezes, an issuer its own suspensions and its emissions' registry."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import ForcedTransfer, Freeze, Suspension
from dfa.issuance.schemas import holders as schemas
from dfa.issuance.service import holders, suspensions
from dfa.ledger import service as ledger
from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.types import ASSET_CODE_PATTERN, AwareDatetime, IsoDate, Limit
from dfa.platform.web import DatabaseDep, IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute

router = APIRouter(prefix="/v1", tags=["holders and suspensions"], route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Staff = Annotated[Principal, Depends(allow(*STAFF_ROLES))]
StaffOrIssuer = Annotated[Principal, Depends(allow(*STAFF_ROLES, Role.ISSUER))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
Supervisor = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER))]
AssetQuery = Annotated[str | None, Query(pattern=ASSET_CODE_PATTERN, description="Only this asset.")]
Before = Annotated[AwareDatetime | None, Query(description="Page: items created before this instant.")]
RegistrationNumberPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN, description="The emission's registration number.")]


def _fields(row: object, model: type[BaseModel], **extra: object) -> dict:
    """The row's attributes the response model shows, with `extra` (an asset's code) filled in."""
    return {**{name: getattr(row, name) for name in model.model_fields if name not in extra}, **extra}


async def _freezes_out(session: AsyncSession, freezes: list[Freeze]) -> list[schemas.FreezeOut]:
    codes = await ledger.asset_codes(session, (f.asset_id for f in freezes))
    return [schemas.FreezeOut.model_validate(_fields(f, schemas.FreezeOut, asset=codes[f.asset_id])) for f in freezes]


async def _forced_out(session: AsyncSession, transfers: list[ForcedTransfer]) -> list[schemas.ForcedTransferOut]:
    codes = await ledger.asset_codes(session, (t.asset_id for t in transfers))
    return [schemas.ForcedTransferOut.model_validate(_fields(t, schemas.ForcedTransferOut, asset=codes[t.asset_id])) for t in transfers]


async def _suspensions_out(session: AsyncSession, found: list[Suspension]) -> list[schemas.SuspensionOut]:
    codes = await ledger.asset_codes(session, (s.asset_id for s in found if s.asset_id is not None))
    return [
        schemas.SuspensionOut.model_validate(_fields(s, schemas.SuspensionOut, emission=codes.get(s.asset_id)))
        for s in found
    ]


# --- freezes --------------------------------------------------------------------------------------------


@router.post("/freezes", status_code=status.HTTP_201_CREATED, response_model=schemas.FreezeOut)
async def place_freeze(body: schemas.FreezeCreate, principal: Supervisor, session: SessionDep, _key: IdempotencyKeyHeader):
    """Freeze a holder's available units (all or part) on an order of a court or another authority, or on
    the operator's decision: a ledger hold that never expires, until lifted."""
    freeze = await holders.place_freeze(
        session, asset_code=body.asset, party_id=body.party_id, units=body.units, basis=body.basis,
        order_reference=body.order_reference, reason=body.reason, actor=principal.login,
    )
    return (await _freezes_out(session, [freeze]))[0]


@router.post("/freezes/{freeze_id}/lifting", response_model=schemas.FreezeOut)
async def lift_freeze(
    freeze_id: uuid.UUID, body: schemas.Reason, principal: Supervisor, session: SessionDep, _key: IdempotencyKeyHeader
):
    """Lift a freeze: the units are available to the holder again."""
    freeze = await holders.lift_freeze(session, freeze_id=freeze_id, reason=body.reason, actor=principal.login)
    return (await _freezes_out(session, [freeze]))[0]


@router.get("/freezes", response_model=list[schemas.FreezeOut])
async def list_freezes(
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    asset: AssetQuery = None,
    party_id: Annotated[uuid.UUID | None, Query(description="Only this holder's (staff).")] = None,
    status_: Annotated[Literal["active", "lifted"] | None, Query(alias="status", description="Only these.")] = None,
    before: Before = None,
    limit: Limit = None,
):
    """Freezes, newest first: staff see everyone's, a holder its own."""
    found = await holders.list_freezes(
        session, asset_code=asset, party_id=principal.party_scope(party_id), status=status_, before=before,
        limit=settings.page_size(limit),
    )
    return await _freezes_out(session, found)


@router.get("/freezes/{freeze_id}", response_model=schemas.FreezeOut)
async def get_freeze(freeze_id: uuid.UUID, principal: Anyone, session: SessionDep):
    freeze = await holders.get_freeze(session, freeze_id, visible_to=principal.owner_filter())
    return (await _freezes_out(session, [freeze]))[0]


# --- forced transfers -----------------------------------------------------------------------------------


@router.post("/forced-transfers", status_code=status.HTTP_201_CREATED, response_model=schemas.ForcedTransferOut)
async def forced_transfer(
    body: schemas.ForcedTransferCreate, principal: Admin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Move a holder's units on a court order, or to a client's new account on recovery of lost access;
    frozen units too when the order says so. Works while trading is suspended; the chain applies it
    as a forced move even through a pause."""
    forced = await holders.forced_transfer(
        session, asset_code=body.asset, from_party_id=body.from_party_id, to_party_id=body.to_party_id,
        units=body.units, basis=body.basis, order_reference=body.order_reference, reason=body.reason,
        include_frozen=body.include_frozen, actor=principal.login, settings=settings,
    )
    return (await _forced_out(session, [forced]))[0]


@router.get("/forced-transfers", response_model=list[schemas.ForcedTransferOut])
async def list_forced_transfers(
    _staff: Staff,
    session: SessionDep,
    settings: SettingsDep,
    asset: AssetQuery = None,
    party_id: Annotated[uuid.UUID | None, Query(description="Only those from or to this party.")] = None,
    before: Before = None,
    limit: Limit = None,
):
    """Forced transfers, newest first."""
    found = await holders.list_forced_transfers(
        session, asset_code=asset, party_id=party_id, before=before, limit=settings.page_size(limit)
    )
    return await _forced_out(session, found)


# --- trading suspensions -------------------------------------------------------------------------------


@router.post("/suspensions", status_code=status.HTTP_201_CREATED, response_model=schemas.SuspensionOut)
async def suspend(body: schemas.SuspensionCreate, principal: Admin, session: SessionDep, _key: IdempotencyKeyHeader):
    """Record a ground for suspending trading (REQ-62): an issuer's event suspends every emission of the
    issuer, the operator's decision one emission. Open orders are cancelled and pending instructions fail."""
    suspension = await suspensions.suspend(
        session, ground=body.ground, issuer_party_id=body.issuer_party_id, registration_number=body.emission,
        arrested_share=body.arrested_share, reference=body.reference, details=body.details, actor=principal.login,
    )
    return (await _suspensions_out(session, [suspension]))[0]


@router.post("/suspensions/{suspension_id}/lifting", response_model=schemas.SuspensionOut)
async def lift_suspension(
    suspension_id: uuid.UUID, body: schemas.Reason, principal: Admin, session: SessionDep, _key: IdempotencyKeyHeader
):
    """Lift a suspension: trading resumes in each emission no other active suspension covers."""
    suspension = await suspensions.lift(session, suspension_id=suspension_id, reason=body.reason, actor=principal.login)
    return (await _suspensions_out(session, [suspension]))[0]


@router.get("/suspensions", response_model=list[schemas.SuspensionOut])
async def list_suspensions(
    principal: StaffOrIssuer,
    session: SessionDep,
    settings: SettingsDep,
    active: Annotated[bool | None, Query(description="Only active (true) or lifted (false) ones.")] = None,
    before: Before = None,
    limit: Limit = None,
):
    """Trading suspensions, newest first: staff see all, an issuer its own."""
    found = await suspensions.list_suspensions(
        session, issuer_party_id=principal.owner_filter(), active=active, before=before,
        limit=settings.page_size(limit),
    )
    return await _suspensions_out(session, found)


# --- the central depository's export --------------------------------------------------------------------


@router.get(
    "/emissions/{registration_number}/holders-registry/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_holders_registry(
    registration_number: RegistrationNumberPath,
    as_of: Annotated[IsoDate, Query(description="The business date whose close (Asia/Almaty) the registry is fixed at.")],
    principal: StaffOrIssuer,
    session: SessionDep,
    database: DatabaseDep,
    settings: SettingsDep,
):
    """The emission's holders registry for the central securities depository as CSV (REQ-35): every holder's
    identification with available, held (frozen included), frozen and total units. Each export is recorded."""
    export = await holders.export_registry(
        session, database=database, registration_number=registration_number, on=as_of,
        visible_to=principal.owner_filter(), actor=principal.login, settings=settings,
    )
    return StreamingResponse(
        export.chunks, media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
