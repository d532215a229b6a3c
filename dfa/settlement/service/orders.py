"""The order book: limit orders per emission priced in KZT (settled DvP) and per pair of emissions
(settled DvD), matched by price-time priority and settled at once.

A book is (base, quote): orders buy or sell units of the base emission at a price in the quote asset's
smallest unit per unit (tiyn for KZT, units for another emission). Placing an order holds what it
may deliver: a sell order its units, a buy order quantity × price plus the operator's fee (REQ-38,
REQ-39). A match trades at the resting order's price and settles in the same transaction, both legs
and the fees in one linked ledger batch with the order's own hold (REQ-36). Every change to a book
happens under the book's lock, so matching sees one order at a time and no fill is made twice.

Self-trade prevention: an order that would trade with an order of the same party stops there, and
what remains of it is cancelled (the resting order stays). An anti-fraud hit on the incoming order's
party refuses the order; on a resting order's party it cancels that resting order and matching goes
on; a centre that does not answer refuses the order (nothing moves: REQ-18).
"""

import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger
from dfa.ledger.models import Asset
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.audit import service as audit
from dfa.platform.errors import invariant
from dfa.platform.identity.errors import AntiFraudMatch
from dfa.platform.identity.service import parties, screening
from dfa.platform.settings import Settings
from dfa.settlement import errors, repository
from dfa.settlement.models import Order, Trade
from dfa.settlement.service import instructions
from dfa.settlement.service.accounts import MONEY
from dfa.settlement.service.instructions import Exchange, derived_id, event, fee_of

MATCH_CHUNK = 50
SELF_TRADE = "self-trade prevention: it would have traded with your own order"
COUNTERPARTY_FLAGGED = "the anti-fraud centre flagged this order's party when it was about to trade"


def hold_amount(*, side: str, price: int, quantity: int, quote: Asset, settings: Settings) -> int:
    """What an order holds: a sell order its units; a buy order quantity × price and, in KZT, the fee."""
    if side == "sell":
        return quantity
    value = price * quantity
    return value + (fee_of(value, settings=settings) if quote.kind == "money" else 0)


@dataclass
class Placed:
    order: Order
    trades: list[Trade] = field(default_factory=list)


@dataclass
class _Fill:
    resting_id: uuid.UUID
    resting_party: uuid.UUID
    resting_hold: uuid.UUID
    resting_remaining: int
    price: int
    quantity: int


async def _book(session: AsyncSession, base_code: str, quote_code: str) -> tuple[Asset, Asset]:
    base, quote = await ledger.get_assets(session, [base_code, quote_code])
    if base.kind != "dfa":
        raise errors.OrderInvalid(f"{base_code} is not a DFA emission; orders buy and sell units of an emission")
    if base.id == quote.id:
        raise errors.OrderInvalid("an order exchanges an emission for money or for another emission, not for itself")
    return base, quote


async def place(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    party_id: uuid.UUID,
    base: str,
    quote: str = MONEY,
    side: str,
    price: int,
    quantity: int,
    time_in_force: str = "gtc",
    actor: str,
    centre: AntiFraudCentre,
    settings: Settings,
) -> Placed:
    """Place a limit order and match it at once against the book; what is not filled rests.

    Raises AssetNotFound, OrderInvalid, TradingSuspended, PartyNotFound, PartyNotIdentified, UnderAge,
    AntiFraudMatch, ExternalPartyUnavailable, InsufficientFunds (nothing is placed then).
    """
    invariant(side in ("buy", "sell") and time_in_force in ("gtc", "day"), "side and time in force are validated")
    base_asset, quote_asset = await _book(session, base, quote)
    if not (0 < price and 0 < quantity and price * quantity <= ledger.MAX_AMOUNT):
        raise errors.OrderInvalid(f"price and quantity are positive and their product at most {ledger.MAX_AMOUNT}")
    await parties.ensure_may_operate(session, party_id, settings=settings)
    await instructions.require_tradable(session, [base_asset, quote_asset])
    today = await instructions.business_date(session, settings=settings)
    held_asset = base_asset if side == "sell" else quote_asset
    held_account = await _available_account(session, party_id=party_id, asset=held_asset, settings=settings)
    order_hold = derived_id(order_id, "hold")
    total_hold = hold_amount(side=side, price=price, quantity=quantity, quote=quote_asset, settings=settings)
    if total_hold > ledger.MAX_AMOUNT:
        raise errors.OrderInvalid(f"the order would hold {total_hold} with the fee, more than {ledger.MAX_AMOUNT}")

    await repository.lock_book(session, base_asset_id=base_asset.id, quote_asset_id=quote_asset.id)
    fills, stopped, flagged = await _match(
        session, party_id=party_id, base=base_asset, quote=quote_asset, side=side, price=price, quantity=quantity,
        actor=actor, centre=centre, settings=settings,
    )
    filled = sum(f.quantity for f in fills)
    closed_by_stp = stopped and filled < quantity
    status = "filled" if filled == quantity else ("cancelled" if closed_by_stp else "open")
    order = await repository.insert_order(
        session,
        values={
            "id": order_id, "party_id": party_id, "base_asset_id": base_asset.id, "quote_asset_id": quote_asset.id,
            "side": side, "price": price, "quantity": quantity, "filled_quantity": filled,
            "time_in_force": time_in_force, "status": status, "trade_date": today, "hold_id": order_hold,
            "close_reason": SELF_TRADE if closed_by_stp else None, "placed_by": actor,
        },
    )
    if flagged:
        await _cancel_orders(session, flagged, base=base_asset, quote=quote_asset, status="cancelled",
                             reason=COUNTERPARTY_FLAGGED, batch=derived_id(order_id, "flagged"))
    trades = await _settle_fills(
        session, order=order, fills=fills, quote=quote_asset, total_hold=total_hold, held_account_id=held_account,
        actor=actor, settings=settings,
    )
    return Placed(order, trades)


def _release(order_id: uuid.UUID, hold_id: uuid.UUID) -> ledger.VoidHoldItem:
    """Release what an order still holds; one transfer id per order, however the order closes."""
    return ledger.VoidHoldItem(hold_id, derived_id(order_id, "release"))


async def _available_account(session: AsyncSession, *, party_id: uuid.UUID, asset: Asset, settings: Settings) -> int:
    found = await ledger.account_ids(session, keys=[(party_id, asset.id, "available")])
    if found:
        return next(iter(found.values()))
    account = await ledger.ensure_account(
        session, owner_party_id=party_id, asset_code=asset.code, kind="available", settings=settings
    )
    return account.id


async def _match(
    session: AsyncSession, *, party_id: uuid.UUID, base: Asset, quote: Asset, side: str, price: int, quantity: int,
    actor: str, centre: AntiFraudCentre, settings: Settings,
) -> tuple[list[_Fill], bool, list[uuid.UUID]]:
    """The fills an incoming order gets, best price first then oldest first; whether self-trade
    prevention stopped it; the resting orders whose party the anti-fraud centre flagged."""
    fills: list[_Fill] = []
    flagged: list[uuid.UUID] = []
    cleared: set[uuid.UUID] = set()
    remaining = quantity
    after: tuple[int, int] | None = None
    while remaining > 0:
        resting = await repository.counter_orders(
            session, base_asset_id=base.id, quote_asset_id=quote.id, side=side, limit_price=price, after=after,
            limit=MATCH_CHUNK,
        )
        for row in resting:
            after = (row.price, row.seq)
            if row.party_id == party_id:
                return fills, True, flagged
            if row.party_id not in cleared:
                if not await _cleared(session, party_id=party_id, other=row.party_id, side=side, quote=quote,
                                      amount=row.price * min(remaining, row.quantity - row.filled_quantity),
                                      actor=actor, centre=centre, settings=settings):
                    flagged.append(row.id)
                    continue
                cleared.add(row.party_id)
            take = min(remaining, row.quantity - row.filled_quantity)
            fills.append(_Fill(row.id, row.party_id, row.hold_id, row.quantity - row.filled_quantity, row.price, take))
            remaining -= take
            if remaining == 0:
                break
        if len(resting) < MATCH_CHUNK:
            break
    return fills, False, flagged


async def _cleared(
    session: AsyncSession, *, party_id: uuid.UUID, other: uuid.UUID, side: str, quote: Asset, amount: int, actor: str,
    centre: AntiFraudCentre, settings: Settings,
) -> bool:
    """Screen the buyer and the seller of a trade about to happen (REQ-18). False when only the resting
    order's party is flagged; a flag on the incoming order's party, or no answer, refuses the order."""
    buyer, seller = (party_id, other) if side == "buy" else (other, party_id)
    try:
        await screening.screen_operation(
            session,
            operation="trade",
            movements=[screening.Movement(sender_party_id=buyer, recipient_party_id=seller, asset=quote.code,
                                          amount=amount)],
            centre=centre,
            actor=actor,
            settings=settings,
        )
    except AntiFraudMatch as match:
        incoming_role = "sender" if side == "buy" else "recipient"
        if incoming_role in match.context.get("flagged", []):
            raise
        if match.security_event is not None:
            await audit.record(session, **match.security_event)
        return False
    return True


async def _settle_fills(
    session: AsyncSession, *, order: Order, fills: list[_Fill], quote: Asset, total_hold: int, held_account_id: int,
    actor: str, settings: Settings,
) -> list[Trade]:
    """Place the incoming order's hold and settle every fill, both legs and the fees, as one ledger
    batch; record each trade with its settled instruction; release what filled orders no longer need."""
    money = quote.kind == "money"
    exchanges, trade_rows, instruction_rows, event_rows, fill_rows, voids = [], [], [], [], [], []
    for fill in fills:
        trade_id = uuid.uuid4()
        value = fill.price * fill.quantity
        fee = fee_of(value, settings=settings) if money else 0
        buy_hold, sell_hold = (order.hold_id, fill.resting_hold) if order.side == "buy" else (fill.resting_hold, order.hold_id)
        buyer, seller = (order.party_id, fill.resting_party) if order.side == "buy" else (fill.resting_party, order.party_id)
        exchanges.append(Exchange(
            id=trade_id, first_party_id=seller, first_asset_id=order.base_asset_id, first_amount=fill.quantity,
            first_hold_id=sell_hold, second_party_id=buyer, second_asset_id=quote.id, second_amount=value,
            second_hold_id=buy_hold, first_fee=fee, second_fee=fee,
        ))
        instruction_rows.append({
            "id": trade_id, "kind": "dvp" if money else "dvd", "origin": "order_book", "status": "settled",
            "trade_date": order.trade_date, "settlement_date": order.trade_date,
            "first_party_id": seller, "first_asset_id": order.base_asset_id, "first_amount": fill.quantity,
            "first_fee": fee, "first_hold_id": sell_hold, "second_party_id": buyer, "second_asset_id": quote.id,
            "second_amount": value, "second_fee": fee, "second_hold_id": buy_hold, "reference": f"trade {trade_id}",
        })
        event_rows.append(event(trade_id, "settled", actor=actor, reason="matched on the order book"))
        buy_order, sell_order = (order.id, fill.resting_id) if order.side == "buy" else (fill.resting_id, order.id)
        trade_rows.append({
            "id": trade_id, "base_asset_id": order.base_asset_id, "quote_asset_id": quote.id,
            "buy_order_id": buy_order, "sell_order_id": sell_order, "aggressor": order.side, "price": fill.price,
            "quantity": fill.quantity, "value": value, "buyer_fee": fee, "seller_fee": fee,
            "instruction_id": trade_id,
        })
        fill_rows.append({"id": fill.resting_id, "filled": fill.quantity})
        if fill.quantity == fill.resting_remaining:
            voids.append(_release(fill.resting_id, fill.resting_hold))
    if order.status in ("filled", "cancelled"):
        voids.append(_release(order.id, order.hold_id))
    posts = await instructions.exchange_posts(session, exchanges, settings=settings) if exchanges else []
    await ledger.settle_holds(
        session,
        batch_id=derived_id(order.id, "placement"),
        place=[ledger.PlaceHoldItem(order.hold_id, held_account_id, total_hold, reference=f"order {order.id}")],
        post=posts,
        void=voids,
    )
    if not fills:
        return []
    await repository.insert_instructions(session, rows=instruction_rows)
    await repository.insert_events(session, rows=event_rows)
    trades = await repository.insert_trades(session, rows=trade_rows)
    await repository.update_order_fills(session, fills=fill_rows)
    return trades


async def _cancel_orders(
    session: AsyncSession, order_ids: list[uuid.UUID], *, base: Asset, quote: Asset, status: str, reason: str,
    batch: uuid.UUID,
) -> None:
    """Close these open orders (the book is locked) and release what they hold, in one ledger batch."""
    orders = [await repository.get_order(session, order_id) for order_id in order_ids]
    voids = [_release(o.id, o.hold_id) for o in orders if o and o.status == "open"]
    if voids:
        await ledger.settle_holds(session, batch_id=batch, void=voids)
        await repository.close_orders(session, order_ids=order_ids, status=status, reason=reason)


async def get_order(session: AsyncSession, order_id: uuid.UUID, *, visible_to: uuid.UUID | None = None) -> Order:
    """Raises OrderNotFound (also for another party's order when `visible_to` is given)."""
    order = await repository.get_order(session, order_id)
    if order is None or (visible_to is not None and order.party_id != visible_to):
        raise errors.OrderNotFound(f"order {order_id} does not exist")
    return order


async def cancel(session: AsyncSession, *, order_id: uuid.UUID, party_id: uuid.UUID | None, actor: str) -> Order:
    """Cancel an open order and release its hold; a party cancels its own, staff (`party_id` None) any.

    Raises OrderNotFound, OrderNotOpen.
    """
    order = await get_order(session, order_id, visible_to=party_id)
    await repository.lock_book(session, base_asset_id=order.base_asset_id, quote_asset_id=order.quote_asset_id)
    order = await get_order(session, order_id)
    if order.status != "open":
        raise errors.OrderNotOpen(f"order {order_id} is {order.status}", status=order.status)
    await ledger.settle_holds(
        session, batch_id=derived_id(order.id, "cancel"),
        void=[_release(order.id, order.hold_id)],
    )
    reason = "cancelled by the client" if party_id is not None else f"cancelled by the operator ({actor})"
    await repository.close_orders(session, order_ids=[order.id], status="cancelled", reason=reason)
    return await get_order(session, order_id)


async def _close_books(
    session: AsyncSession, books: list[tuple[int, int]], *, day_orders_before: date | None, status: str, reason: str,
    batch: uuid.UUID,
) -> int:
    closed = 0
    for base_id, quote_id in sorted(books):
        await repository.lock_book(session, base_asset_id=base_id, quote_asset_id=quote_id)
        orders = await repository.open_orders(
            session, base_asset_id=base_id, quote_asset_id=quote_id, day_orders_before=day_orders_before
        )
        if not orders:
            continue
        await ledger.settle_holds(
            session, batch_id=uuid.uuid5(batch, f"{base_id}:{quote_id}"),
            void=[_release(o.id, o.hold_id) for o in orders],
        )
        await repository.close_orders(session, order_ids=[o.id for o in orders], status=status, reason=reason)
        closed += len(orders)
    return closed


async def expire_day_orders(session: AsyncSession, *, today: date) -> int:
    """Day orders of an earlier trade date expire and release their holds; returns how many."""
    books = await repository.books_with_open_orders(session, day_orders_before=today)
    return await _close_books(
        session, books, day_orders_before=today, status="expired", reason="a day order expires at the day's close",
        batch=derived_id(uuid.uuid5(instructions.NAMESPACE, today.isoformat()), "expiry"),
    )


async def suspend(session: AsyncSession, *, asset_code: str, reason: str, actor: str) -> tuple[int, int]:
    """Suspend trading in an emission: its open orders are cancelled and its pending instructions fail,
    all their holds released. Returns (orders cancelled, instructions failed). Raises AssetNotFound."""
    asset = await ledger.get_asset(session, asset_code)
    if asset.kind != "dfa":
        raise errors.OrderInvalid(f"{asset_code} is not a DFA emission; only emissions are suspended")
    await repository.set_trading_status(session, asset_id=asset.id, suspended=True, reason=reason, actor=actor)
    books = await repository.books_with_open_orders(session, asset_id=asset.id)
    cancelled = await _close_books(
        session, books, day_orders_before=None, status="cancelled", reason=f"trading suspended: {reason}",
        batch=uuid.uuid4(),
    )
    failed = await instructions.fail_pending_of_asset(
        session, asset=asset, reason=f"trading suspended: {reason}", actor=actor
    )
    await audit.record(
        session, kind="trading.suspended", actor=actor, subject=asset_code,
        details={"reason": reason, "orders_cancelled": cancelled, "instructions_failed": failed},
    )
    return cancelled, failed


async def resume(session: AsyncSession, *, asset_code: str, reason: str, actor: str) -> None:
    """Lift a suspension: orders may be placed again (cancelled ones stay cancelled). Raises AssetNotFound."""
    asset = await ledger.get_asset(session, asset_code)
    await repository.set_trading_status(session, asset_id=asset.id, suspended=False, reason=reason, actor=actor)
    await audit.record(session, kind="trading.resumed", actor=actor, subject=asset_code, details={"reason": reason})


# --- market data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    price: int
    quantity: int
    orders: int


@dataclass(frozen=True)
class MarketData:
    base: str
    quote: str
    suspended: bool
    bids: list[Level]
    asks: list[Level]
    last_trades: list[Trade]

    @property
    def best_bid(self) -> int | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> int | None:
        return self.asks[0].price if self.asks else None


async def market_data(
    session: AsyncSession, *, base: str, quote: str = MONEY, levels: int = 10, trades: int = 20
) -> MarketData:
    """Best bid and ask, the depth by price level, and the last trades of one book."""
    base_asset, quote_asset = await _book(session, base, quote)
    rows = await repository.depth(session, base_asset_id=base_asset.id, quote_asset_id=quote_asset.id, levels=levels)
    status = await repository.get_trading_status(session, base_asset.id)
    return MarketData(
        base=base,
        quote=quote,
        suspended=bool(status and status.suspended),
        bids=[Level(r.price, r.quantity, r.orders) for r in rows if r.side == "buy"],
        asks=[Level(r.price, r.quantity, r.orders) for r in rows if r.side == "sell"],
        last_trades=await repository.last_trades(
            session, base_asset_id=base_asset.id, quote_asset_id=quote_asset.id, limit=trades
        ),
    )


async def list_orders(
    session: AsyncSession, *, party_id: uuid.UUID | None, status: str | None, before_seq: int | None, limit: int
) -> list[Order]:
    return await repository.list_orders(session, party_id=party_id, status=status, before_seq=before_seq, limit=limit)


async def list_trades(session: AsyncSession, *, party_id: uuid.UUID | None, before_seq: int | None, limit: int):
    return await repository.trades_of_party(session, party_id=party_id, before_seq=before_seq, limit=limit)
