"""Every SQL statement of trading and settlement instructions (money in and out keeps its own)."""

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.settlement.models import Instruction, InstructionEvent, Order, Trade, TradingStatus

# --- trading status ------------------------------------------------------------------------------------


async def suspended_assets(session: AsyncSession, asset_ids: Sequence[int]) -> set[int]:
    statement = select(TradingStatus.asset_id).where(
        TradingStatus.asset_id.in_(list(asset_ids)), TradingStatus.suspended.is_(True)
    )
    return set((await session.execute(statement)).scalars())


async def set_trading_status(session: AsyncSession, *, asset_id: int, suspended: bool, reason: str, actor: str) -> None:
    values = {"asset_id": asset_id, "suspended": suspended, "reason": reason, "changed_by": actor}
    statement = pg_insert(TradingStatus).values(**values, changed_at=func.now())
    statement = statement.on_conflict_do_update(
        index_elements=[TradingStatus.asset_id],
        set_={"suspended": suspended, "reason": reason, "changed_by": actor, "changed_at": func.now()},
    )
    await session.execute(statement)


async def get_trading_status(session: AsyncSession, asset_id: int) -> TradingStatus | None:
    return (
        await session.execute(
            select(TradingStatus).where(TradingStatus.asset_id == asset_id).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


# --- instructions -------------------------------------------------------------------------------------


async def claim_terms(session: AsyncSession, *, values: dict[str, Any]) -> Instruction | None:
    """Insert a half-submitted bilateral instruction, or None when one with these terms is waiting."""
    statement = (
        pg_insert(Instruction)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[Instruction.terms_digest],
            index_where=text("status = 'pending' AND (first_hold_id IS NULL OR second_hold_id IS NULL)"),
        )
        .returning(Instruction)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_waiting_instruction(session: AsyncSession, *, terms_digest: bytes) -> Instruction | None:
    statement = (
        select(Instruction)
        .where(
            Instruction.terms_digest == terms_digest,
            Instruction.status == "pending",
            or_(Instruction.first_hold_id.is_(None), Instruction.second_hold_id.is_(None)),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_instructions(session: AsyncSession, *, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(pg_insert(Instruction), rows)


async def get_instruction(session: AsyncSession, instruction_id: uuid.UUID, *, for_update: bool = False) -> Instruction | None:
    statement = select(Instruction).where(Instruction.id == instruction_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def update_instruction(session: AsyncSession, *, instruction_id: uuid.UUID, values: dict[str, Any]) -> Instruction:
    statement = (
        update(Instruction)
        .where(Instruction.id == instruction_id)
        .values(**values)
        .returning(Instruction)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def mark_settled(session: AsyncSession, *, instruction_ids: Sequence[uuid.UUID]) -> None:
    await session.execute(
        update(Instruction)
        .where(Instruction.id.in_(list(instruction_ids)), Instruction.status == "pending")
        .values(status="settled", closed_at=func.now(), terms_digest=None)
        .execution_options(synchronize_session=False)
    )


async def insert_events(session: AsyncSession, *, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(pg_insert(InstructionEvent), rows)


async def list_events(session: AsyncSession, instruction_id: uuid.UUID) -> list[InstructionEvent]:
    statement = (
        select(InstructionEvent).where(InstructionEvent.instruction_id == instruction_id).order_by(InstructionEvent.id)
    )
    return list((await session.execute(statement)).scalars())


async def list_instructions(
    session: AsyncSession,
    *,
    party_id: uuid.UUID | None,
    status: str | None,
    origin: str | None,
    before: datetime | None,
    limit: int,
) -> list[Instruction]:
    statement = select(Instruction).order_by(Instruction.created_at.desc(), Instruction.id).limit(limit)
    if party_id is not None:
        statement = statement.where(
            or_(Instruction.first_party_id == party_id, Instruction.second_party_id == party_id)
        )
    if status is not None:
        statement = statement.where(Instruction.status == status)
    if origin is not None:
        statement = statement.where(Instruction.origin == origin)
    if before is not None:
        statement = statement.where(Instruction.created_at < before)
    return list((await session.execute(statement)).scalars())


async def lock_pending_instructions(
    session: AsyncSession,
    *,
    settlement_date_before: date | None = None,
    due_on_or_before: date | None = None,
    asset_id: int | None = None,
    limit: int,
) -> list[Instruction]:
    """Pending instructions no other transaction is working on: overdue ones (settlement date before
    `settlement_date_before`), fully submitted ones due by `due_on_or_before`, or those of an asset."""
    statement = (
        select(Instruction)
        .where(Instruction.status == "pending")
        .order_by(Instruction.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if settlement_date_before is not None:
        statement = statement.where(Instruction.settlement_date < settlement_date_before)
    if due_on_or_before is not None:
        statement = statement.where(
            Instruction.settlement_date <= due_on_or_before,
            Instruction.first_hold_id.is_not(None),
            Instruction.second_hold_id.is_not(None),
        )
    if asset_id is not None:
        statement = statement.where(or_(Instruction.first_asset_id == asset_id, Instruction.second_asset_id == asset_id))
    return list((await session.execute(statement)).scalars())


# --- the order book ------------------------------------------------------------------------------------


async def lock_book(session: AsyncSession, *, base_asset_id: int, quote_asset_id: int) -> None:
    """Serialise every change to one book (placing, matching, cancelling, expiring) for the transaction."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(CAST(:base AS integer), CAST(:quote AS integer))"),
        {"base": base_asset_id, "quote": quote_asset_id},
    )


async def counter_orders(
    session: AsyncSession,
    *,
    base_asset_id: int,
    quote_asset_id: int,
    side: str,
    limit_price: int,
    after: tuple[int, int] | None,
    limit: int,
) -> list[Any]:
    """Open orders of the other side that a `side` order at `limit_price` would trade with, best price
    first, then oldest first (price-time priority); `after` is the (price, seq) of the last one seen."""
    buying = side == "buy"  # a buy order meets the asks, cheapest first; a sell order the bids, dearest first
    better, order = ("<=", "ASC") if buying else (">=", "DESC")
    beyond = ">" if buying else "<"
    statement = text(
        f"""
        SELECT id, seq, party_id, price, quantity, filled_quantity, hold_id
        FROM settlement_orders
        WHERE base_asset_id = :base AND quote_asset_id = :quote AND status = 'open' AND side = :counter_side
          AND price {better} :limit_price
          {"" if after is None else f"AND (price {beyond} :after_price OR (price = :after_price AND seq > :after_seq))"}
        ORDER BY price {order}, seq ASC
        LIMIT :limit
        """
    )
    parameters = {
        "base": base_asset_id,
        "quote": quote_asset_id,
        "counter_side": "sell" if buying else "buy",
        "limit_price": limit_price,
        "limit": limit,
    }
    if after is not None:
        parameters |= {"after_price": after[0], "after_seq": after[1]}
    return list(await session.execute(statement, parameters))


async def insert_order(session: AsyncSession, *, values: dict[str, Any]) -> Order:
    return (await session.execute(pg_insert(Order).values(**values).returning(Order))).scalar_one()


async def update_order_fills(session: AsyncSession, *, fills: list[dict[str, Any]]) -> None:
    """Add each `filled` quantity to its order; a filled order closes at `closed_at`."""
    if not fills:
        return
    await session.execute(
        text(
            """
            UPDATE settlement_orders o
            SET filled_quantity = o.filled_quantity + f.filled,
                status = CASE WHEN o.filled_quantity + f.filled = o.quantity THEN 'filled' ELSE o.status END,
                closed_at = CASE WHEN o.filled_quantity + f.filled = o.quantity THEN now() ELSE o.closed_at END
            FROM unnest(CAST(:ids AS uuid[]), CAST(:filled AS bigint[])) AS f (id, filled)
            WHERE o.id = f.id
            """
        ),
        {"ids": [f["id"] for f in fills], "filled": [f["filled"] for f in fills]},
    )


async def close_orders(session: AsyncSession, *, order_ids: Sequence[uuid.UUID], status: str, reason: str) -> None:
    await session.execute(
        update(Order)
        .where(Order.id.in_(list(order_ids)), Order.status == "open")
        .values(status=status, close_reason=reason, closed_at=func.now())
        .execution_options(synchronize_session=False)
    )


async def get_order(session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    statement = select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def list_orders(
    session: AsyncSession, *, party_id: uuid.UUID | None, status: str | None, before_seq: int | None, limit: int
) -> list[Order]:
    statement = select(Order).order_by(Order.seq.desc()).limit(limit)
    if party_id is not None:
        statement = statement.where(Order.party_id == party_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    if before_seq is not None:
        statement = statement.where(Order.seq < before_seq)
    return list((await session.execute(statement)).scalars())


async def open_orders(
    session: AsyncSession, *, base_asset_id: int, quote_asset_id: int, day_orders_before: date | None = None
) -> list[Order]:
    """Open orders of one book, oldest first; with `day_orders_before`, only day orders of an earlier trade date."""
    statement = select(Order).where(
        Order.base_asset_id == base_asset_id, Order.quote_asset_id == quote_asset_id, Order.status == "open"
    )
    if day_orders_before is not None:
        statement = statement.where(Order.time_in_force == "day", Order.trade_date < day_orders_before)
    return list((await session.execute(statement.order_by(Order.seq))).scalars())


async def books_with_open_orders(
    session: AsyncSession, *, asset_id: int | None = None, day_orders_before: date | None = None
) -> list[tuple[int, int]]:
    """(base, quote) of every book with open orders: those involving `asset_id`, or holding day orders
    of a trade date before `day_orders_before`."""
    statement = select(Order.base_asset_id, Order.quote_asset_id).where(Order.status == "open").distinct()
    if asset_id is not None:
        statement = statement.where(or_(Order.base_asset_id == asset_id, Order.quote_asset_id == asset_id))
    if day_orders_before is not None:
        statement = statement.where(Order.time_in_force == "day", Order.trade_date < day_orders_before)
    return [(row.base_asset_id, row.quote_asset_id) for row in await session.execute(statement)]


async def depth(session: AsyncSession, *, base_asset_id: int, quote_asset_id: int, levels: int) -> list[Any]:
    """Price levels of both sides, best first: (side, price, quantity open, orders)."""
    statement = text(
        """
        (SELECT side, price, CAST(sum(quantity - filled_quantity) AS bigint) AS quantity, count(*) AS orders
         FROM settlement_orders
         WHERE base_asset_id = :base AND quote_asset_id = :quote AND status = 'open' AND side = 'buy'
         GROUP BY side, price ORDER BY price DESC LIMIT :levels)
        UNION ALL
        (SELECT side, price, CAST(sum(quantity - filled_quantity) AS bigint), count(*)
         FROM settlement_orders
         WHERE base_asset_id = :base AND quote_asset_id = :quote AND status = 'open' AND side = 'sell'
         GROUP BY side, price ORDER BY price ASC LIMIT :levels)
        """
    )
    return list(await session.execute(statement, {"base": base_asset_id, "quote": quote_asset_id, "levels": levels}))


async def insert_trades(session: AsyncSession, *, rows: list[dict[str, Any]]) -> list[Trade]:
    if not rows:
        return []
    return list(await session.scalars(pg_insert(Trade).returning(Trade), rows))


async def last_trades(
    session: AsyncSession, *, base_asset_id: int, quote_asset_id: int, limit: int
) -> list[Trade]:
    statement = (
        select(Trade)
        .where(Trade.base_asset_id == base_asset_id, Trade.quote_asset_id == quote_asset_id)
        .order_by(Trade.seq.desc())
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def trades_of_party(
    session: AsyncSession, *, party_id: uuid.UUID | None, before_seq: int | None, limit: int
) -> list[Any]:
    """Trades, newest first, with their buyer and seller: the party's own, or (with no party) every one."""
    buy, sell = Order.__table__.alias("buy"), Order.__table__.alias("sell")
    statement = (
        select(Trade, buy.c.party_id.label("buyer_party_id"), sell.c.party_id.label("seller_party_id"))
        .join(buy, buy.c.id == Trade.buy_order_id)
        .join(sell, sell.c.id == Trade.sell_order_id)
        .order_by(Trade.seq.desc())
        .limit(limit)
    )
    if party_id is not None:
        statement = statement.where(or_(buy.c.party_id == party_id, sell.c.party_id == party_id))
    if before_seq is not None:
        statement = statement.where(Trade.seq < before_seq)
    return list(await session.execute(statement))
