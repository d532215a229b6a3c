"""The order book under concurrent placement, matching and cancelling from many connections, on
committed data: no double fill, no negative balance, money and units conserved, holds exact."""

import asyncio
import random
import uuid
from collections import defaultdict

from sqlalchemy import text

from dfa.ledger import errors as ledger_errors
from dfa.ledger import service as ledger
from dfa.platform.database import Database
from dfa.settlement import errors
from dfa.settlement.service import accounts, orders
from tests.ledger.helpers import assert_ledger_verifies
from tests.settlement.trading import Market, antifraud

INVESTORS = 12
WORKERS = 8
ORDERS_PER_WORKER = 40
MONEY = 50_000_000
UNITS = 1_000


BOOKS = 3


async def _committed_market(database: Database) -> tuple[Market, list, list]:
    """Investors holding money and units of several emissions: one book each, sharing their cash."""
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=Market.settings)
        emissions = [
            await ledger.create_asset(
                session, code=f"C{uuid.uuid4().hex[:12].upper()}", kind="dfa", scale=0, name="contended emission"
            )
            for _ in range(BOOKS)
        ]
        market = Market(session, await ledger.get_asset(session, "KZT"), emissions[0])
        investors = [await market.investor(money=MONEY) for _ in range(INVESTORS)]
        for emission in emissions:
            for investor in investors:
                await market.fund(investor, emission, UNITS)
    return market, investors, emissions


async def test_concurrent_orders_never_double_fill_and_conserve_money_and_units(database: Database):
    """REQ-36, REQ-38: every fill settles once, both legs together, from eight connections at once on
    three books whose traders share their cash accounts (so no order of locks may deadlock)."""
    market, investors, emissions = await _committed_market(database)
    centre = antifraud()
    placed: list[uuid.UUID] = []
    refusals: dict[str, int] = defaultdict(int)

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(ORDERS_PER_WORKER):
            party = rng.choice(investors)
            order_id = uuid.uuid4()
            try:
                async with database.unit_of_work() as session:
                    if placed and rng.random() < 0.15:
                        await orders.cancel(session, order_id=rng.choice(placed), party_id=None, actor="test")
                        continue
                    await orders.place(
                        session, order_id=order_id, party_id=party.id, base=rng.choice(emissions).code,
                        side=rng.choice(["buy", "sell"]), price=rng.randint(95, 105) * 100,
                        quantity=rng.randint(1, 60), time_in_force=rng.choice(["gtc", "day"]), actor="test",
                        centre=centre, settings=market.settings,
                    )
                placed.append(order_id)
            except (errors.OrderNotOpen, ledger_errors.InsufficientFunds) as refusal:
                refusals[type(refusal).__name__] += 1

    await asyncio.gather(*(worker(seed) for seed in range(WORKERS)))

    async with database.read() as session:
        rows = (await session.execute(text(
            """
            SELECT o.id, o.quantity, o.filled_quantity, o.status,
                   (SELECT coalesce(sum(t.quantity), 0) FROM settlement_trades t
                    WHERE t.buy_order_id = o.id OR t.sell_order_id = o.id) AS traded
            FROM settlement_orders o WHERE o.base_asset_id = ANY(:assets)
            """
        ), {"assets": [e.id for e in emissions]})).all()
        assert len(rows) >= WORKERS * ORDERS_PER_WORKER // 2
        for row in rows:
            assert row.traded == row.filled_quantity <= row.quantity, row
            assert (row.status == "filled") == (row.filled_quantity == row.quantity), row
        trades = (await session.execute(
            text("SELECT count(*) FROM settlement_trades WHERE base_asset_id = ANY(:a)"), {"a": [e.id for e in emissions]}
        )).scalar_one()
        assert trades > 0

        # What is held is exactly what the open orders still need, per party and asset.
        held = (await session.execute(text(
            """
            SELECT h.account_id, sum(h.amount - h.posted_amount - h.released_amount) AS pending
            FROM ledger_holds h JOIN settlement_orders o ON o.hold_id = h.id
            WHERE o.base_asset_id = ANY(:assets) AND h.status = 'pending' GROUP BY h.account_id
            """
        ), {"assets": [e.id for e in emissions]})).all()
        open_holds = (await session.execute(text(
            "SELECT count(*) FROM settlement_orders o JOIN ledger_holds h ON h.id = o.hold_id "
            "WHERE o.base_asset_id = ANY(:assets) AND (o.status = 'open') <> (h.status = 'pending')"
        ), {"assets": [e.id for e in emissions]})).scalar_one()
        assert open_holds == 0, "an open order without its hold, or a closed order still holding"
        assert all(row.pending > 0 for row in held)

        totals = (await session.execute(text(
            "SELECT asset_id, sum(balance) FROM ledger_accounts WHERE asset_id = ANY(:ids) GROUP BY asset_id"
        ), {"ids": [market.kzt.id, *(e.id for e in emissions)]})).all()
        assert all(total == 0 for _, total in totals)
        negative = (await session.execute(text(
            "SELECT count(*) FROM ledger_accounts WHERE kind IN ('available', 'held', 'fees') AND balance < 0"
        ))).scalar_one()
        assert negative == 0
        for emission in emissions:
            client_units = (await session.execute(text(
                "SELECT sum(balance) FROM ledger_accounts WHERE asset_id = :a AND kind IN ('available', 'held')"
            ), {"a": emission.id})).scalar_one()
            assert client_units == INVESTORS * UNITS
        client_money = (await session.execute(text(
            "SELECT sum(balance) FROM ledger_accounts WHERE asset_id = :kzt AND owner_party_id = ANY(:owners)"
        ), {"kzt": market.kzt.id, "owners": [p.id for p in investors]})).scalar_one()
        fees = (await session.execute(text(
            "SELECT coalesce(sum(buyer_fee + seller_fee), 0) FROM settlement_trades WHERE base_asset_id = ANY(:a)"
        ), {"a": [e.id for e in emissions]})).scalar_one()
        assert client_money + fees == INVESTORS * MONEY
        await assert_ledger_verifies(session)
