"""The order book: holds on placement, price-time priority, partial fills, DvP and DvD settlement at
once, fees to the operator's fee account, self-trade prevention, cancellation, expiry, suspension."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from dfa.ledger import errors as ledger_errors
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.identity.errors import AntiFraudMatch
from dfa.settlement import errors
from dfa.settlement.service import day, instructions, orders
from tests.ledger.helpers import assert_ledger_verifies, refused

PRICE = 10_000  # 100.00 KZT per unit


def fee(value: int) -> int:
    return value * 10 // 10_000


async def test_req38_a_buy_order_holds_its_money_and_fee_and_rests_on_the_book(market):
    buyer = await market.investor(money=2_000_000)
    placed = await market.order(buyer, "buy", PRICE, 100)

    assert (placed.order.status, placed.trades) == ("open", [])
    held = 100 * PRICE + fee(100 * PRICE)
    assert await market.balance(buyer, market.kzt, "held") == held
    assert await market.balance(buyer, market.kzt) == 2_000_000 - held
    data = await orders.market_data(market.session, base=market.emission.code)
    assert (data.best_bid, data.best_ask, data.bids[0].quantity) == (PRICE, None, 100)


async def test_req38_a_match_settles_both_legs_and_both_fees_at_once(market):
    seller = await market.investor(units=100)
    buyer = await market.investor(money=2_000_000)
    await market.order(seller, "sell", PRICE, 60)

    placed = await market.order(buyer, "buy", PRICE, 60)

    value = 60 * PRICE
    assert placed.order.status == "filled" and len(placed.trades) == 1
    trade = placed.trades[0]
    assert (trade.price, trade.quantity, trade.value, trade.buyer_fee, trade.seller_fee) == (PRICE, 60, value, fee(value), fee(value))
    assert await market.balance(buyer, market.emission) == 60
    assert await market.balance(seller, market.emission) == 40
    assert await market.balance(buyer, market.kzt) == 2_000_000 - value - fee(value)
    assert await market.balance(seller, market.kzt) == value - fee(value)
    assert await market.fees() == 2 * fee(value)
    for party in (buyer, seller):
        assert await market.balance(party, market.kzt, "held") == 0
        assert await market.balance(party, market.emission, "held") == 0
    instruction = await instructions.get_instruction(market.session, trade.instruction_id)
    assert (instruction.kind, instruction.origin, instruction.status) == ("dvp", "order_book", "settled")
    await assert_ledger_verifies(market.session)


async def test_price_time_priority_fills_the_best_price_then_the_oldest_at_the_resting_price(market):
    early, late, dear = [await market.investor(units=10) for _ in range(3)]
    await market.order(dear, "sell", PRICE + 500, 10)
    first = await market.order(early, "sell", PRICE, 10)
    second = await market.order(late, "sell", PRICE, 10)
    buyer = await market.investor(money=10_000_000)

    placed = await market.order(buyer, "buy", PRICE + 1_000, 15)

    assert [(t.sell_order_id, t.quantity, t.price) for t in placed.trades] == [
        (first.order.id, 10, PRICE), (second.order.id, 5, PRICE)
    ]
    # The buyer bid more but paid the resting price; what its hold kept for the better price is released.
    assert await market.balance(buyer, market.kzt, "held") == 0
    assert await market.balance(buyer, market.kzt) == 10_000_000 - 15 * PRICE - fee(15 * PRICE)
    assert (await orders.get_order(market.session, second.order.id)).filled_quantity == 5
    data = await orders.market_data(market.session, base=market.emission.code)
    assert [(a.price, a.quantity) for a in data.asks] == [(PRICE, 5), (PRICE + 500, 10)]
    assert [t.quantity for t in data.last_trades] == [5, 10]


async def test_a_partially_filled_order_keeps_exactly_the_hold_its_remainder_needs(market):
    buyer = await market.investor(money=5_000_000)
    resting = await market.order(buyer, "buy", PRICE, 100)
    for quantity in (30, 25):
        seller = await market.investor(units=quantity)
        await market.order(seller, "sell", PRICE, quantity)

    order = await orders.get_order(market.session, resting.order.id)
    assert (order.status, order.filled_quantity) == ("open", 55)
    held = await market.balance(buyer, market.kzt, "held")
    assert held >= 45 * PRICE + fee(45 * PRICE)
    cancelled = await orders.cancel(market.session, order_id=order.id, party_id=buyer.id, actor="test")
    assert cancelled.status == "cancelled"
    assert await market.balance(buyer, market.kzt, "held") == 0
    assert await market.balance(buyer, market.kzt) == 5_000_000 - 30 * PRICE - fee(30 * PRICE) - 25 * PRICE - fee(25 * PRICE)
    await assert_ledger_verifies(market.session)


async def test_req38_a_buyer_short_of_money_is_refused_and_nothing_moves(market):
    seller = await market.investor(units=10)
    await market.order(seller, "sell", PRICE, 10)
    buyer = await market.investor(money=10 * PRICE)  # not enough for the fee on top

    async with refused(market.session, ledger_errors.InsufficientFunds):
        await market.order(buyer, "buy", PRICE, 10)

    assert await market.balance(buyer, market.kzt) == 10 * PRICE
    assert await market.balance(seller, market.emission, "held") == 10
    assert await orders.list_orders(market.session, party_id=buyer.id, status=None, before_seq=None, limit=10) == []


async def test_req39_a_seller_short_of_units_is_refused_and_nothing_moves(market):
    seller = await market.investor(units=5)
    async with refused(market.session, ledger_errors.InsufficientFunds):
        await market.order(seller, "sell", PRICE, 6)
    assert await market.balance(seller, market.emission) == 5


async def test_req39_an_exchange_of_two_emissions_settles_delivery_versus_delivery(market):
    other = await market.new_emission()
    alice = await market.investor(units=100)  # holds the base emission
    bob = await market.investor(units=500, asset=other)  # holds the quote emission
    await market.order(alice, "sell", 3, 40, quote=other.code)  # 3 units of `other` per unit

    placed = await market.order(bob, "buy", 3, 40, quote=other.code)

    assert placed.trades[0].value == 120 and placed.trades[0].buyer_fee == 0
    assert (await market.balance(alice, market.emission), await market.balance(alice, other)) == (60, 120)
    assert (await market.balance(bob, market.emission), await market.balance(bob, other)) == (40, 380)
    instruction = await instructions.get_instruction(market.session, placed.trades[0].instruction_id)
    assert instruction.kind == "dvd"
    assert await market.total(market.emission) == 0 and await market.total(other) == 0


async def test_self_trade_prevention_cancels_the_rest_of_the_incoming_order(market):
    trader = await market.investor(money=5_000_000, units=50)
    stranger = await market.investor(units=10)
    await market.order(stranger, "sell", PRICE - 100, 10)
    own = await market.order(trader, "sell", PRICE, 50)

    placed = await market.order(trader, "buy", PRICE, 30)

    assert [t.quantity for t in placed.trades] == [10]
    assert (placed.order.status, placed.order.filled_quantity) == ("cancelled", 10)
    assert "self-trade" in placed.order.close_reason
    assert (await orders.get_order(market.session, own.order.id)).status == "open"
    assert await market.balance(trader, market.kzt, "held") == 0


async def test_req18_an_anti_fraud_hit_on_the_incoming_party_refuses_the_order(market):
    seller = await market.investor(units=10)
    await market.order(seller, "sell", PRICE, 10)
    flagged = await market.investor(money=1_000_000, identifier=market.flagged)

    async with refused(market.session, AntiFraudMatch):
        await market.order(flagged, "buy", PRICE, 10)
    assert await market.balance(seller, market.emission, "held") == 10


async def test_req18_an_anti_fraud_hit_on_a_resting_party_cancels_that_order_and_matching_goes_on(market):
    flagged = await market.investor(units=10, identifier=market.flagged)
    honest = await market.investor(units=10)
    bad = await market.order(flagged, "sell", PRICE, 10)
    await market.order(honest, "sell", PRICE, 10)
    buyer = await market.investor(money=1_000_000)

    placed = await market.order(buyer, "buy", PRICE, 10)

    assert [t.quantity for t in placed.trades] == [10]
    assert (await orders.get_order(market.session, bad.order.id)).status == "cancelled"
    assert await market.balance(flagged, market.emission) == 10


async def test_req18_the_anti_fraud_centre_down_refuses_a_matching_order(market):
    seller = await market.investor(units=10)
    await market.order(seller, "sell", PRICE, 10)
    buyer = await market.investor(money=1_000_000)
    market.centre.down = True

    async with refused(market.session, ExternalPartyUnavailable):
        await market.order(buyer, "buy", PRICE, 10)
    assert await market.balance(buyer, market.kzt) == 1_000_000


async def test_suspension_cancels_open_orders_releases_holds_and_refuses_new_ones(market):
    seller = await market.investor(units=10)
    buyer = await market.investor(money=1_000_000)
    await market.order(seller, "sell", PRICE + 1, 10)
    await market.order(buyer, "buy", PRICE, 5)

    cancelled, failed = await orders.suspend(
        market.session, asset_code=market.emission.code, reason="coverage shortfall", actor="compliance"
    )

    assert (cancelled, failed) == (2, 0)
    assert await market.balance(seller, market.emission, "held") == 0
    assert await market.balance(buyer, market.kzt) == 1_000_000
    async with refused(market.session, errors.TradingSuspended):
        await market.order(buyer, "buy", PRICE, 5)
    await orders.resume(market.session, asset_code=market.emission.code, reason="cleared", actor="compliance")
    assert (await market.order(buyer, "buy", PRICE, 5)).order.status == "open"


async def test_day_orders_expire_after_their_trade_date_and_release_their_holds(market):
    buyer = await market.investor(money=1_000_000)
    day_order = await market.order(buyer, "buy", PRICE, 5, time_in_force="day")
    gtc = await market.order(buyer, "buy", PRICE - 1, 5)

    tomorrow = day_order.order.trade_date + timedelta(days=1)
    expired = await orders.expire_day_orders(market.session, today=tomorrow)

    assert expired >= 1  # the day orders of committed tests expire with it
    assert (await orders.get_order(market.session, day_order.order.id)).status == "expired"
    assert (await orders.get_order(market.session, gtc.order.id)).status == "open"
    assert await market.balance(buyer, market.kzt, "held") == 5 * (PRICE - 1) + fee(5 * (PRICE - 1))


async def test_a_cancelled_order_cannot_be_cancelled_again_and_others_cannot_cancel_it(market):
    buyer = await market.investor(money=1_000_000)
    placed = await market.order(buyer, "buy", PRICE, 5)
    stranger = await market.investor()
    async with refused(market.session, errors.OrderNotFound):
        await orders.cancel(market.session, order_id=placed.order.id, party_id=stranger.id, actor="x")
    await orders.cancel(market.session, order_id=placed.order.id, party_id=buyer.id, actor="test")
    async with refused(market.session, errors.OrderNotOpen):
        await orders.cancel(market.session, order_id=placed.order.id, party_id=buyer.id, actor="test")


@pytest.mark.parametrize("quote", ["self", "money-base"])
async def test_an_order_on_a_book_that_is_not_an_emission_is_refused(market, quote):
    investor = await market.investor(money=1_000)
    base, quote_code = (market.emission.code, market.emission.code) if quote == "self" else ("KZT", market.emission.code)
    async with refused(market.session, errors.OrderInvalid):
        await market.order(investor, "buy", 1, 1, base=base, quote=quote_code)


async def test_the_end_of_day_run_expires_day_orders(market):
    buyer = await market.investor(money=1_000_000)
    await market.order(buyer, "buy", PRICE, 5, time_in_force="day")
    report = await day.end_of_day(
        market.session, centre=market.centre, settings=market.settings, actor="test",
        now=instructions._now() + timedelta(days=7),
    )
    assert report.expired >= 1
    assert await market.balance(buyer, market.kzt) == 1_000_000


async def test_an_order_id_is_placed_once(market):
    buyer = await market.investor(money=1_000_000)
    order_id = uuid.uuid4()
    await orders.place(market.session, order_id=order_id, party_id=buyer.id, base=market.emission.code, side="buy",
                       price=PRICE, quantity=1, actor="t", centre=market.centre, settings=market.settings)
    with pytest.raises(IntegrityError):
        async with market.session.begin_nested():
            await orders.place(market.session, order_id=order_id, party_id=buyer.id, base=market.emission.code,
                               side="buy", price=PRICE, quantity=1, actor="t", centre=market.centre,
                               settings=market.settings)
    assert await market.balance(buyer, market.kzt, "held") == PRICE + fee(PRICE)
