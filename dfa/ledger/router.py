"""The ledger API for operator staff: assets, accounts, transfers, batches, holds, registries."""

import base64
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import StreamingResponse

from dfa.ledger import errors, schemas, service
from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.audit import service as audit
from dfa.platform.types import (
    ASSET_CODE_PATTERN,
    AccountIdPath,
    AfterBigint,
    AfterInt,
    AssetCodePath,
    AwareDatetime,
    Limit,
)
from dfa.platform.web import (
    AntiFraudCentreDep,
    DatabaseDep,
    IdempotencyKeyHeader,
    SessionDep,
    SettingsDep,
    UnitOfWorkRoute,
)

router = APIRouter(prefix="/v1/ledger", tags=["ledger"], route_class=UnitOfWorkRoute)

# Bookings by hand are the operator administrator's; reading the books is every staff role's;
# investors and issuers read their own accounts only.
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
Staff = Annotated[Principal, Depends(allow(*STAFF_ROLES))]
Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]

AsOf = Annotated[
    AwareDatetime | None,
    Query(description="An instant with a time zone offset (RFC 3339); the registry as it stood then."),
]


def _as_of(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise errors.InvalidInstant("as_of must carry a time zone offset, e.g. 2026-11-21T10:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise errors.InvalidInstant("as_of is outside the years 1 to 9999 in UTC") from None


@router.post("/assets", status_code=status.HTTP_201_CREATED, response_model=schemas.AssetOut)
async def create_asset(body: schemas.AssetCreate, _admin: Admin, session: SessionDep, _key: IdempotencyKeyHeader):
    """Create an asset: KZT, or one DFA emission (emissions are normally created by issuance)."""
    return await service.create_asset(session, code=body.code, kind=body.kind, scale=body.scale, name=body.name)


@router.get("/assets", response_model=list[schemas.AssetOut])
async def list_assets(
    _principal: Anyone, session: SessionDep, settings: SettingsDep, limit: Limit = None,
    after: AfterInt = None,
):
    return await service.list_assets(session, after=after, limit=settings.page_size(limit))


@router.get("/assets/{code}", response_model=schemas.AssetOut)
async def get_asset(code: AssetCodePath, _principal: Anyone, session: SessionDep):
    return await service.get_asset(session, code)


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=schemas.AccountOut)
async def open_account(
    body: schemas.AccountOpen, _admin: Admin, session: SessionDep, settings: SettingsDep, _key: IdempotencyKeyHeader
):
    """Open an account. An `available` account opens its `held` twin, where holds wait."""
    return await service.open_account(
        session, owner_party_id=body.owner_party_id, asset_code=body.asset, kind=body.kind, settings=settings
    )


@router.get("/accounts", response_model=list[schemas.AccountOut])
async def list_accounts(
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    owner_party_id: Annotated[uuid.UUID | None, Query(description="Only this party's accounts.")] = None,
    asset: Annotated[str | None, Query(pattern=ASSET_CODE_PATTERN, description="Only accounts in this asset.")] = None,
    after: AfterBigint = None,
    limit: Limit = None,
):
    """Accounts with their balances (investors and issuers: their own)."""
    own = principal.owner_filter()
    if own is not None:
        if owner_party_id not in (None, own):
            return []
        owner_party_id = own
    return await service.list_accounts(
        session, owner_party_id=owner_party_id, asset_code=asset, after=after, limit=settings.page_size(limit)
    )


@router.get("/accounts/{account_id}", response_model=schemas.AccountOut)
async def get_account(account_id: AccountIdPath, principal: Anyone, session: SessionDep):
    """One account with its balance."""
    return await service.get_account(session, account_id, visible_to=principal.owner_filter())


def _encode_cursor(seq: int | None) -> str | None:
    return None if seq is None else base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        prefix, _, seq = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if prefix != "seq" or not seq.isascii() or not seq.isdigit():
            raise ValueError(cursor)
        return int(seq)
    except ValueError:
        raise errors.InvalidCursor("the cursor was not issued by this endpoint") from None


@router.get("/accounts/{account_id}/entries", response_model=schemas.EntryPageOut)
async def account_history(
    account_id: AccountIdPath,
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the previous page.")] = None,
    limit: Limit = None,
):
    """An account's journal, newest first, with each entry's hash-chain link."""
    await service.get_account(session, account_id, visible_to=principal.owner_filter())
    page = await service.account_history(
        session, account_id=account_id, before_seq=_decode_cursor(cursor), limit=settings.page_size(limit)
    )
    items = [
        schemas.EntryOut(**{**row._mapping, "hash": row.hash.hex()}) for row in page.entries
    ]
    return schemas.EntryPageOut(items=items, next_cursor=_encode_cursor(page.next_before_seq))


@router.post(
    "/transfers",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.TransferOut,
    responses={200: {"description": "The same transfer was posted before; it is returned unchanged."}},
)
async def post_transfer(
    body: schemas.TransferCreate,
    admin: Admin,
    session: SessionDep,
    settings: SettingsDep,
    centre: AntiFraudCentreDep,
    response: Response,
    _key: IdempotencyKeyHeader,
):
    """Move an amount between two accounts of one asset, exactly once per transfer id, once both
    owners are cleared (identified adults, not flagged by the anti-fraud centre)."""
    await service.screen_movements(
        session, movements=[(body.debit_account_id, body.credit_account_id, body.amount)], centre=centre,
        actor=admin.login, settings=settings,
    )
    posted = await service.post_transfer(session, transfer=service.TransferSpec(**body.model_dump()))
    if not posted.created:
        response.status_code = status.HTTP_200_OK
    return posted.transfer


@router.get("/transfers/{transfer_id}", response_model=schemas.TransferOut)
async def get_transfer(transfer_id: uuid.UUID, _staff: Staff, session: SessionDep):
    return await service.get_transfer(session, transfer_id)


def _batch_item(item) -> service.BatchItem:
    fields = item.model_dump(exclude={"type"})
    if isinstance(item, schemas.TransferItemIn):
        return service.TransferItem(service.TransferSpec(**fields["transfer"]))
    if isinstance(item, schemas.PlaceHoldItemIn):
        return service.PlaceHoldItem(hold_id=fields.pop("id"), **fields)
    if isinstance(item, schemas.PostHoldItemIn):
        return service.PostHoldItem(**fields)
    return service.VoidHoldItem(**fields)


@router.post(
    "/batches",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.BatchOut,
    responses={200: {"description": "The same batch was applied before; its transfers are returned."}},
)
async def execute_batch(
    body: schemas.BatchCreate,
    admin: Admin,
    session: SessionDep,
    settings: SettingsDep,
    centre: AntiFraudCentreDep,
    response: Response,
    _key: IdempotencyKeyHeader,
):
    """Apply transfers and hold operations in order as one linked unit: all of them or none. Every
    transfer's owners are cleared first."""
    items = [_batch_item(i) for i in body.items]
    movements = [
        (i.transfer.debit_account_id, i.transfer.credit_account_id, i.transfer.amount)
        for i in items
        if isinstance(i, service.TransferItem)
    ]
    if movements:
        await service.screen_movements(session, movements=movements, centre=centre, actor=admin.login, settings=settings)
    result = await service.execute_batch(session, batch_id=body.id, items=items)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return schemas.BatchOut(
        id=result.batch_id, transfers=[schemas.TransferOut.model_validate(t) for t in result.transfers]
    )


@router.post(
    "/holds",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.HoldOut,
    responses={200: {"description": "The same hold was placed before; it is returned."}},
)
async def place_hold(
    body: schemas.HoldCreate, _admin: Admin, session: SessionDep, response: Response, _key: IdempotencyKeyHeader
):
    """Reserve an amount on a holder's available account (prefunding)."""
    hold, created = await service.place_hold(
        session,
        hold_id=body.id,
        account_id=body.account_id,
        amount=body.amount,
        expires_at=body.expires_at,
        code=body.code,
        reference=body.reference,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return hold


@router.get("/holds/{hold_id}", response_model=schemas.HoldOut)
async def get_hold(hold_id: uuid.UUID, _staff: Staff, session: SessionDep):
    return await service.get_hold(session, hold_id)


@router.post("/holds/{hold_id}/post", status_code=status.HTTP_201_CREATED, response_model=schemas.TransferOut)
async def post_hold(
    hold_id: uuid.UUID,
    body: schemas.HoldPost,
    admin: Admin,
    session: SessionDep,
    settings: SettingsDep,
    centre: AntiFraudCentreDep,
    response: Response,
    _key: IdempotencyKeyHeader,
):
    """Deliver all or part of a pending hold to a credit account, once both owners are cleared."""
    hold = await service.get_hold(session, hold_id)
    await service.screen_movements(
        session, movements=[(hold.account_id, body.credit_account_id, body.amount or hold.amount)], centre=centre,
        actor=admin.login, settings=settings,
    )
    posted = await service.post_hold(session, hold_id=hold_id, **body.model_dump())
    if not posted.created:
        response.status_code = status.HTTP_200_OK
    return posted.transfer


@router.post("/holds/{hold_id}/void", status_code=status.HTTP_201_CREATED, response_model=schemas.TransferOut)
async def void_hold(
    hold_id: uuid.UUID, body: schemas.HoldVoid, _admin: Admin, session: SessionDep, response: Response, _key: IdempotencyKeyHeader
):
    """Release what remains of a pending hold to the holder."""
    posted = await service.void_hold(session, hold_id=hold_id, transfer_id=body.transfer_id)
    if not posted.created:
        response.status_code = status.HTTP_200_OK
    return posted.transfer


@router.get("/assets/{code}/holders", response_model=schemas.RegistryOut)
async def holders_registry(code: AssetCodePath, _staff: Staff, session: SessionDep, as_of: AsOf = None):
    """The holders registry of an asset: who holds how many units, free and encumbered (REQ-34)."""
    registry = await service.holders_registry(session, asset_code=code, as_of=_as_of(as_of))
    positions = [
        schemas.PositionOut(**row._mapping, total_units=row.available_units + row.held_units)
        for row in registry.positions
    ]
    return schemas.RegistryOut(
        asset=registry.asset.code,
        as_of=registry.as_of,
        holders=positions,
        total_units=sum(p.total_units for p in positions),
    )


@router.get(
    "/assets/{code}/holders/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
async def export_registry(
    code: AssetCodePath,
    staff: Staff,
    session: SessionDep,
    database: DatabaseDep,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv (with header) or jsonl.")] = "csv",
    as_of: AsOf = None,
):
    """The full holders registry for the central depository, streamed (REQ-35)."""
    asset = await service.get_asset(session, code)
    instant = _as_of(as_of) or datetime.now(UTC)

    async def stream():
        async with database.read() as export_session:
            async for chunk in service.export_registry(export_session, asset=asset, as_of=instant, fmt=format):
                yield chunk

    await audit.record_in_own_transaction(
        database, kind="registry.exported", actor=staff.login, subject=asset.code,
        details={"format": format, "as_of": instant.isoformat()},
    )
    media_type = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    filename = f"holders-{asset.code}-{instant.strftime('%Y%m%dT%H%M%SZ')}.{format}"
    return StreamingResponse(
        stream(), media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get("/verification", response_model=schemas.VerificationOut)
async def verify(_staff: Staff, session: SessionDep):
    """Recompute every hash chain and balance from the journal and report the first discrepancy."""
    return await service.verify(session)
