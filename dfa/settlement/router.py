"""The trading API: bilateral settlement instructions, the order book, trades, market data, trading
suspension and the day's close. Investors and issuers act on their own behalf only; another party's
instructions and orders are "not found"."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger
from dfa.platform.access import ALL_ROLES, Principal, Role, allow
from dfa.platform.errors import invariant
from dfa.platform.types import BIGINT_MAX, AssetCodePath, AwareDatetime, Limit
from dfa.platform.web import AntiFraudCentreDep, IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute
from dfa.settlement import schemas
from dfa.settlement.models import Instruction, Order, Trade
from dfa.settlement.service import day, instructions, orders

router = APIRouter(prefix="/v1", tags=["trading"], route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Client = Annotated[Principal, Depends(allow(Role.INVESTOR, Role.ISSUER))]
ClientOrAdmin = Annotated[Principal, Depends(allow(Role.INVESTOR, Role.ISSUER, Role.OPERATOR_ADMIN))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
Supervisor = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER))]
BeforeSeq = Annotated[
    int | None, Query(ge=1, le=BIGINT_MAX, description="Page: items older than this sequence number.")
]


def _own(principal: Principal) -> uuid.UUID:
    invariant(principal.party_id is not None, "investors and issuers act for a party")
    return principal.party_id


# --- settlement instructions -------------------------------------------------------------------------


def _instruction_out(instruction: Instruction, codes: dict[int, str]) -> dict:
    def side(which: str) -> schemas.Side:
        return schemas.Side(
            party_id=getattr(instruction, f"{which}_party_id"),
            asset=codes[getattr(instruction, f"{which}_asset_id")],
            amount=getattr(instruction, f"{which}_amount"),
            fee=getattr(instruction, f"{which}_fee"),
            held=getattr(instruction, f"{which}_hold_id") is not None,
        )

    fields = {name: getattr(instruction, name) for name in schemas.InstructionOut.model_fields if name not in ("first", "second")}
    return {**fields, "first": side("first"), "second": side("second")}


async def _detail(session: AsyncSession, instruction: Instruction) -> schemas.InstructionDetail:
    codes = await ledger.asset_codes(session, (instruction.first_asset_id, instruction.second_asset_id))
    history = await instructions.history(session, instruction.id)
    return schemas.InstructionDetail(
        **_instruction_out(instruction, codes), history=[schemas.EventOut.model_validate(e) for e in history]
    )


@router.post(
    "/settlement-instructions",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.InstructionDetail,
    responses={200: {"description": "Your side matched the counterparty's waiting side (settled when due today)."}},
)
async def submit_instruction(
    body: schemas.InstructionSubmit,
    principal: Client,
    session: SessionDep,
    settings: SettingsDep,
    centre: AntiFraudCentreDep,
    response: Response,
    _key: IdempotencyKeyHeader,
):
    """Submit your side of a bilateral DvP or DvD trade: what you deliver is held at once (REQ-38,
    REQ-39); the counterparty submits its side with the same terms and reference, and the two match.
    Due today, the matched instruction settles at once, both legs together; otherwise on its
    settlement date. Unsettled by that day's close, it fails and releases the holds (REQ-37)."""
    submitted = await instructions.submit(
        session,
        party_id=_own(principal),
        counterparty_id=body.counterparty_id,
        deliver=instructions.Delivery(body.deliver.asset, body.deliver.amount),
        receive=instructions.Delivery(body.receive.asset, body.receive.amount),
        reference=body.reference,
        trade_date=body.trade_date,
        settlement_date=body.settlement_date,
        actor=principal.login,
        centre=centre,
        settings=settings,
    )
    if not submitted.created:
        response.status_code = status.HTTP_200_OK
    return await _detail(session, submitted.instruction)


@router.get("/settlement-instructions", response_model=list[schemas.InstructionOut])
async def list_instructions(
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    status_: Annotated[
        Literal["pending", "settled", "failed", "cancelled"] | None, Query(alias="status", description="Only these.")
    ] = None,
    origin: Annotated[
        Literal["bilateral", "order_book", "placement", "redemption"] | None, Query(description="Only these.")
    ] = None,
    before: Annotated[AwareDatetime | None, Query(description="Page: instructions created before this instant.")] = None,
    limit: Limit = None,
):
    """Settlement instructions, newest first: your own, or (staff) everyone's."""
    found = await instructions.list_instructions(
        session, party_id=principal.owner_filter(), status=status_, origin=origin, before=before,
        limit=settings.page_size(limit),
    )
    codes = await ledger.asset_codes(session, (a for i in found for a in (i.first_asset_id, i.second_asset_id)))
    return [_instruction_out(i, codes) for i in found]


@router.get("/settlement-instructions/{instruction_id}", response_model=schemas.InstructionDetail)
async def get_instruction(instruction_id: uuid.UUID, principal: Anyone, session: SessionDep):
    """One instruction with its status history and, when it failed, the reason."""
    return await _detail(
        session, await instructions.get_instruction(session, instruction_id, visible_to=principal.owner_filter())
    )


@router.post("/settlement-instructions/{instruction_id}/cancellation", response_model=schemas.InstructionDetail)
async def cancel_instruction(
    instruction_id: uuid.UUID, body: schemas.Reason, principal: ClientOrAdmin, session: SessionDep,
    _key: IdempotencyKeyHeader,
):
    """Cancel a pending instruction and release its holds: a party its own side while the counterparty's
    has not matched it, the operator any pending instruction."""
    cancelled = await instructions.cancel(
        session, instruction_id=instruction_id, party_id=principal.owner_filter(), actor=principal.login,
        reason=body.reason,
    )
    return await _detail(session, cancelled)


@router.post(
    "/settlement-instructions/{instruction_id}/resubmission",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.InstructionDetail,
    responses={200: {"description": "Your resubmitted side matched the counterparty's."}},
)
async def resubmit_instruction(
    instruction_id: uuid.UUID,
    body: schemas.InstructionResubmit,
    principal: Client,
    session: SessionDep,
    settings: SettingsDep,
    centre: AntiFraudCentreDep,
    response: Response,
    _key: IdempotencyKeyHeader,
):
    """Submit your side of a failed or cancelled instruction again, as a new instruction with the same
    terms; it matches the counterparty's resubmission."""
    submitted = await instructions.resubmit(
        session, instruction_id=instruction_id, party_id=_own(principal), settlement_date=body.settlement_date,
        actor=principal.login, centre=centre, settings=settings,
    )
    if not submitted.created:
        response.status_code = status.HTTP_200_OK
    return await _detail(session, submitted.instruction)


@router.post("/settlement/end-of-day", response_model=schemas.EndOfDayOut)
async def end_of_day(
    principal: Admin, session: SessionDep, settings: SettingsDep, centre: AntiFraudCentreDep,
    _key: IdempotencyKeyHeader,
):
    """Run the day's settlement work now (it also runs by itself): settle what is due, fail what the
    close left unsettled, expire day orders; every hold of what did not settle is released."""
    return await day.end_of_day(session, centre=centre, settings=settings, actor=principal.login)


# --- orders and trades ---------------------------------------------------------------------------------


def _order_out(order: Order, codes: dict[int, str]) -> schemas.OrderOut:
    return schemas.OrderOut(
        **{name: getattr(order, name) for name in schemas.OrderOut.model_fields if name not in ("base", "quote", "remaining")},
        base=codes[order.base_asset_id],
        quote=codes[order.quote_asset_id],
        remaining=order.quantity - order.filled_quantity,
    )


def _trade_out(trade: Trade, codes: dict[int, str]) -> dict:
    fields = {name: getattr(trade, name) for name in schemas.TradeOut.model_fields if name not in ("base", "quote")}
    return {**fields, "base": codes[trade.base_asset_id], "quote": codes[trade.quote_asset_id]}


@router.post("/orders", status_code=status.HTTP_201_CREATED, response_model=schemas.PlacedOut)
async def place_order(
    body: schemas.OrderPlace,
    principal: Client,
    session: SessionDep,
    settings: SettingsDep,
    centre: AntiFraudCentreDep,
    _key: IdempotencyKeyHeader,
):
    """Place a limit order. It holds what it may deliver (units, or quantity × price plus the fee),
    matches the book at once by price-time priority, and every match settles in the same transaction
    (DvP against KZT, DvD against another emission). What is not filled rests on the book."""
    placed = await orders.place(
        session, order_id=uuid.uuid4(), party_id=_own(principal), base=body.base, quote=body.quote, side=body.side,
        price=body.price, quantity=body.quantity, time_in_force=body.time_in_force, actor=principal.login,
        centre=centre, settings=settings,
    )
    codes = await ledger.asset_codes(session, (placed.order.base_asset_id, placed.order.quote_asset_id))
    return schemas.PlacedOut(order=_order_out(placed.order, codes), trades=[_trade_out(t, codes) for t in placed.trades])


@router.get("/orders", response_model=list[schemas.OrderOut])
async def list_orders(
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    status_: Annotated[
        Literal["open", "filled", "cancelled", "expired"] | None, Query(alias="status", description="Only these.")
    ] = None,
    before_seq: BeforeSeq = None,
    limit: Limit = None,
):
    """Orders, newest first: your own, or (staff) everyone's."""
    found = await orders.list_orders(
        session, party_id=principal.owner_filter(), status=status_, before_seq=before_seq,
        limit=settings.page_size(limit),
    )
    codes = await ledger.asset_codes(session, (a for o in found for a in (o.base_asset_id, o.quote_asset_id)))
    return [_order_out(o, codes) for o in found]


@router.get("/orders/{order_id}", response_model=schemas.OrderOut)
async def get_order(order_id: uuid.UUID, principal: Anyone, session: SessionDep):
    order = await orders.get_order(session, order_id, visible_to=principal.owner_filter())
    return _order_out(order, await ledger.asset_codes(session, (order.base_asset_id, order.quote_asset_id)))


@router.post("/orders/{order_id}/cancellation", response_model=schemas.OrderOut)
async def cancel_order(order_id: uuid.UUID, principal: ClientOrAdmin, session: SessionDep, _key: IdempotencyKeyHeader):
    """Cancel an open order (what is filled stays filled) and release what it still holds."""
    order = await orders.cancel(session, order_id=order_id, party_id=principal.owner_filter(), actor=principal.login)
    return _order_out(order, await ledger.asset_codes(session, (order.base_asset_id, order.quote_asset_id)))


@router.get("/trades", response_model=list[schemas.MyTradeOut])
async def list_trades(
    principal: Anyone, session: SessionDep, settings: SettingsDep, before_seq: BeforeSeq = None, limit: Limit = None
):
    """Trades, newest first: your own with the side you took, or (staff) every trade."""
    party = principal.owner_filter()
    rows = await orders.list_trades(session, party_id=party, before_seq=before_seq, limit=settings.page_size(limit))
    codes = await ledger.asset_codes(session, (a for r in rows for a in (r.Trade.base_asset_id, r.Trade.quote_asset_id)))
    return [
        {
            **_trade_out(row.Trade, codes),
            "side": None if party is None else ("buy" if row.buyer_party_id == party else "sell"),
        }
        for row in rows
    ]


@router.get("/market-data/{base}", response_model=schemas.MarketDataOut)
async def market_data(
    base: AssetCodePath,
    _principal: Anyone,
    session: SessionDep,
    quote: Annotated[str, Query(pattern=r"^[A-Z0-9][A-Z0-9._-]{0,49}$", description="KZT or an emission.")] = "KZT",
    levels: Annotated[int, Query(ge=1, le=100, description="Price levels per side.")] = 10,
    trades: Annotated[int, Query(ge=0, le=100, description="Last trades.")] = 20,
):
    """Best bid and ask, depth by price level and the last trades of one book."""
    data = await orders.market_data(session, base=base, quote=quote, levels=levels, trades=trades)
    codes = await ledger.asset_codes(session, (t_id for t in data.last_trades for t_id in (t.base_asset_id, t.quote_asset_id)))
    return schemas.MarketDataOut(
        base=data.base, quote=data.quote, suspended=data.suspended, best_bid=data.best_bid, best_ask=data.best_ask,
        bids=[schemas.LevelOut.model_validate(level) for level in data.bids],
        asks=[schemas.LevelOut.model_validate(level) for level in data.asks],
        last_trades=[_trade_out(t, codes) for t in data.last_trades],
    )


@router.put("/trading-status/{asset}", response_model=schemas.TradingStatusOut)
async def set_trading_status(
    asset: AssetCodePath, body: schemas.TradingStatusSet, principal: Supervisor, session: SessionDep,
    _key: IdempotencyKeyHeader,
):
    """Suspend trading in an emission (its open orders are cancelled and its pending instructions
    fail, every hold released) or lift the suspension."""
    if body.suspended:
        cancelled, failed = await orders.suspend(session, asset_code=asset, reason=body.reason, actor=principal.login)
        return schemas.TradingStatusOut(
            asset=asset, suspended=True, reason=body.reason, orders_cancelled=cancelled, instructions_failed=failed
        )
    await orders.resume(session, asset_code=asset, reason=body.reason, actor=principal.login)
    return schemas.TradingStatusOut(asset=asset, suspended=False, reason=body.reason)
