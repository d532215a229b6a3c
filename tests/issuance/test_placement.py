"""Primary placement on the issuer's application (REQ-25), settled DvP against prefunded money (REQ-38)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from dfa.issuance import errors
from dfa.issuance.service import placement
from dfa.ledger import errors as ledger_errors
from dfa.ledger import service as ledger
from dfa.platform.identity.errors import AntiFraudMatch
from dfa.settlement import errors as settlement_errors
from dfa.settlement.service import accounts, instructions, orders
from tests.factories import SETTINGS, make_party
from tests.issuance.factories import make_emission
from tests.settlement.trading import antifraud

PRICE = 123_457  # tiyn per unit: odd, so any rounding of money would show
OPENS = datetime.now(UTC) + timedelta(seconds=1)
CLOSES = OPENS + timedelta(days=1)
DURING = OPENS + timedelta(hours=1)


async def balance(session, party_id, asset_id: int, kind: str = "available") -> int:
    """The balance as the database has it now (0 without an account)."""
    return (await session.execute(
        text("SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE owner_party_id = :p AND asset_id = :a"
             " AND kind = :k"), {"p": party_id, "a": asset_id, "k": kind},
    )).scalar_one()


async def kzt(session) -> int:
    await accounts.ensure_money(session, settings=SETTINGS)
    return (await ledger.get_asset(session, accounts.MONEY)).id


async def investor(session, *, money: int = 0, **party):
    """An identified investor with `money` tiyn on its KZT available account."""
    await accounts.ensure_money(session, settings=SETTINGS)
    found = await make_party(session, **party)
    if money:
        source = await accounts.operator_account(session, kind="client_money", settings=SETTINGS)
        target = await accounts.holder_account(session, party_id=found.id, asset_code="KZT", settings=SETTINGS)
        await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, target.id, money))
    return found


async def open_offer(session, *, units: int = 600, min_units: int | None = None, emission=None):
    await accounts.ensure_money(session, settings=SETTINGS)
    emission = emission or await make_emission(session, units=1_000, price=PRICE)
    opened = await placement.open_placement(
        session, emission=emission, units=units, min_units=min_units, opens_at=OPENS, closes_at=CLOSES, actor="issuer",
        settings=SETTINGS,
    )
    return emission, opened


async def subscribe(session, offer, party, units: int, centre=None):
    return await placement.subscribe(
        session, placement_id=offer.id, party_id=party.id, units=units, actor="investor",
        centre=centre or antifraud(), settings=SETTINGS, now=DURING,
    )


async def close(session, offer):
    return await placement.close_placement(session, placement_id=offer.id, actor="issuer", settings=SETTINGS, now=CLOSES)


# --- opening ---------------------------------------------------------------------------------------------


async def test_opening_a_placement_holds_the_offered_units_so_they_cannot_be_sold_elsewhere_req_25(session):
    emission, offer = await open_offer(session, units=600)

    assert (offer.status, offer.price, offer.units) == ("open", PRICE, 600)
    assert await balance(session, emission.issuer_party_id, emission.asset_id) == 400
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "held") == 600


async def test_a_placement_beyond_the_issuers_units_or_outside_the_application_period_is_refused_req_25(session):
    emission = await make_emission(session, units=1_000, price=PRICE)
    for terms in (
        {"units": 1_001, "opens_at": OPENS, "closes_at": CLOSES},
        {"units": 10, "min_units": 11, "opens_at": OPENS, "closes_at": CLOSES},
        {"units": 10, "opens_at": OPENS, "closes_at": OPENS + timedelta(days=90)},
        {"units": 10, "opens_at": CLOSES, "closes_at": OPENS},
    ):
        with pytest.raises(errors.PlacementTermsInvalid):
            await placement.open_placement(session, emission=emission, actor="issuer", settings=SETTINGS, **terms)
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "held") == 0
    await open_offer(session, emission=emission, units=10)
    with pytest.raises(errors.EmissionNotPlaceable):
        await open_offer(session, emission=emission, units=10)


# --- subscriptions -----------------------------------------------------------------------------------------


async def test_a_subscription_holds_its_money_and_is_one_per_investor_req_38(session):
    _, offer = await open_offer(session)
    buyer = await investor(session, money=100 * PRICE)
    money = await kzt(session)

    subscription = await subscribe(session, offer, buyer, 100)

    assert (subscription.status, subscription.amount) == ("pending", 100 * PRICE)
    assert await balance(session, buyer.id, money) == 0
    assert await balance(session, buyer.id, money, "held") == 100 * PRICE
    with pytest.raises(errors.SubscriptionExists):
        await subscribe(session, offer, buyer, 1)


async def test_subscriptions_are_refused_with_nothing_held_when_closed_short_flagged_or_suspended_req_18_req_38(session):
    emission, offer = await open_offer(session)
    money = await kzt(session)
    buyer = await investor(session, money=50 * PRICE)

    async def nothing_changed() -> None:
        assert await balance(session, buyer.id, money) == 50 * PRICE
        assert await balance(session, buyer.id, money, "held") == 0
        assert await placement.list_subscriptions(
            session, placement_id=offer.id, party_id=None, after_seq=None, limit=10
        ) == []

    with pytest.raises(errors.PlacementNotOpen):
        await placement.subscribe(session, placement_id=offer.id, party_id=buyer.id, units=1, actor="investor",
                                  centre=antifraud(), settings=SETTINGS, now=CLOSES)
    await nothing_changed()
    with pytest.raises(ledger_errors.InsufficientFunds):
        await subscribe(session, offer, buyer, 51)
    await nothing_changed()
    with pytest.raises(AntiFraudMatch):
        await subscribe(session, offer, buyer, 10, centre=antifraud(buyer.identifier))
    await nothing_changed()
    await orders.suspend(session, asset_code=emission.registration_number, reason="test", actor="compliance")
    with pytest.raises(settlement_errors.TradingSuspended):
        await subscribe(session, offer, buyer, 10)
    await nothing_changed()


async def test_a_cancelled_subscription_releases_its_money(session):
    _, offer = await open_offer(session)
    money = await kzt(session)
    buyer = await investor(session, money=10 * PRICE)
    subscription = await subscribe(session, offer, buyer, 10)

    cancelled = await placement.cancel_subscription(
        session, subscription_id=subscription.id, party_id=buyer.id, actor="investor", now=DURING
    )

    assert cancelled.status == "cancelled"
    assert await balance(session, buyer.id, money) == 10 * PRICE
    with pytest.raises(errors.SubscriptionNotCancellable):
        await placement.cancel_subscription(
            session, subscription_id=subscription.id, party_id=buyer.id, actor="investor", now=DURING
        )
    stranger = await investor(session)
    with pytest.raises(errors.SubscriptionNotFound):
        await placement.cancel_subscription(
            session, subscription_id=subscription.id, party_id=stranger.id, actor="investor", now=DURING
        )


# --- closing -----------------------------------------------------------------------------------------------


async def test_an_undersubscribed_placement_settles_dvp_to_the_tiyn_and_cancels_the_rest_req_25_req_38(session):
    emission, offer = await open_offer(session, units=600)
    money = await kzt(session)
    first, second = await investor(session, money=100 * PRICE + 7), await investor(session, money=200 * PRICE)
    issuer_money = await balance(session, emission.issuer_party_id, money)
    await subscribe(session, offer, first, 100)
    await subscribe(session, offer, second, 200)

    closed = await close(session, offer)

    assert (closed.status, closed.units_subscribed, closed.units_allocated, closed.units_cancelled) == (
        "allocated", 300, 300, 300
    )
    assert [await balance(session, p.id, emission.asset_id) for p in (first, second)] == [100, 200]
    assert [await balance(session, p.id, money) for p in (first, second)] == [7, 0]
    assert [await balance(session, p.id, money, "held") for p in (first, second)] == [0, 0]
    assert await balance(session, emission.issuer_party_id, money) - issuer_money == 300 * PRICE  # no fee
    assert await balance(session, emission.issuer_party_id, emission.asset_id) == 400
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "held") == 0
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "issued") == -700
    refreshed = await placement.get_emission_of(session, closed)
    assert (refreshed.status, refreshed.cancelled_units) == ("placed", 300)
    report = placement.report_of(closed)
    assert (report["money_raised"], report["subscribers"], report["fees"]) == (300 * PRICE, 2, 0)
    settled = await instructions.list_instructions(session, party_id=first.id, origin="placement", limit=10)
    assert [(i.status, i.first_amount, i.second_amount, i.second_fee) for i in settled] == [
        ("settled", 100, 100 * PRICE, 0)
    ]


def test_oversubscription_is_allocated_pro_rata_rounded_down_with_the_remainder_to_the_earliest():
    assert placement.allocate([7, 5, 3], 10) == [5, 3, 2]  # shares 4.67, 3.33, 2: one unit left, to the first
    assert placement.allocate([1, 1, 1], 2) == [1, 1, 0]
    assert placement.allocate([3, 4], 10) == [3, 4]
    assert placement.allocate([10, 10, 10, 1], 10) == [4, 3, 3, 0]


async def test_an_oversubscribed_placement_allocates_pro_rata_and_releases_the_unused_money_req_38(session):
    emission, offer = await open_offer(session, units=10)
    money = await kzt(session)
    buyers = [await investor(session, money=u * PRICE) for u in (7, 5, 3)]
    for buyer, units in zip(buyers, (7, 5, 3), strict=True):
        await subscribe(session, offer, buyer, units)

    closed = await close(session, offer)

    assert (closed.units_subscribed, closed.units_allocated, closed.units_cancelled) == (15, 10, 0)
    assert [await balance(session, b.id, emission.asset_id) for b in buyers] == [5, 3, 2]
    assert [await balance(session, b.id, money) for b in buyers] == [2 * PRICE, 2 * PRICE, PRICE]
    assert [await balance(session, b.id, money, "held") for b in buyers] == [0, 0, 0]
    rows = placement.report_of(closed)["subscriptions"]
    assert [(r["units_allocated"], r["amount_released"]) for r in rows] == [(5, 2 * PRICE), (3, 2 * PRICE), (2, PRICE)]


async def test_a_placement_short_of_its_minimum_fails_releases_everyone_and_cancels_the_units_req_25(session):
    emission, offer = await open_offer(session, units=600, min_units=500)
    money = await kzt(session)
    buyers = [await investor(session, money=300 * PRICE) for _ in range(2)]
    subscriptions = [await subscribe(session, offer, b, 200) for b in buyers]

    closed = await close(session, offer)

    assert (closed.status, closed.units_allocated, closed.units_cancelled) == ("failed", 0, 600)
    assert [await balance(session, b.id, money) for b in buyers] == [300 * PRICE, 300 * PRICE]
    assert [await balance(session, b.id, money, "held") for b in buyers] == [0, 0]
    assert [await balance(session, b.id, emission.asset_id) for b in buyers] == [0, 0]
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "issued") == -400
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "held") == 0
    refreshed = await placement.get_emission_of(session, closed)
    assert (refreshed.status, refreshed.cancelled_units) == ("not_placed", 600)
    statuses = [(await placement.get_subscription(session, s.id)).status for s in subscriptions]
    assert statuses == ["released", "released"]


async def test_a_placement_closes_once_and_only_after_its_window(session):
    _, offer = await open_offer(session)
    with pytest.raises(errors.PlacementStillOpen):
        await placement.close_placement(session, placement_id=offer.id, actor="issuer", settings=SETTINGS, now=DURING)
    with pytest.raises(errors.PlacementStillOpen):
        placement.report_of(offer)
    await close(session, offer)
    with pytest.raises(errors.PlacementNotOpen):
        await close(session, offer)


async def test_the_job_closes_every_placement_whose_window_has_closed(session):
    _, offer = await open_offer(session)
    await placement.close_due_placements(session, settings=SETTINGS, now=DURING)
    assert (await placement.get_placement(session, offer.id)).status == "open"
    assert await placement.close_due_placements(session, settings=SETTINGS, now=CLOSES) >= 1
    assert (await placement.get_placement(session, offer.id)).status == "failed"  # nobody subscribed


# --- settlement of prefunded exchanges -----------------------------------------------------------------------


async def test_prefunded_exchanges_settle_in_one_batch_as_settled_instructions_with_their_events_req_36(session):
    emission = await make_emission(session, units=50)
    money = await kzt(session)
    buyer = await investor(session, money=1_000)
    seller_account = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="available"
    )
    buyer_account = await accounts.holder_account(session, party_id=buyer.id, asset_code="KZT", settings=SETTINGS)
    units_hold, money_hold, exchange_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await ledger.settle_holds(session, batch_id=uuid.uuid4(), place=[
        ledger.PlaceHoldItem(units_hold, seller_account.id, 5), ledger.PlaceHoldItem(money_hold, buyer_account.id, 900),
    ])
    exchange = instructions.Exchange(
        id=exchange_id, first_party_id=emission.issuer_party_id, first_asset_id=emission.asset_id, first_amount=5,
        first_hold_id=units_hold, second_party_id=buyer.id, second_asset_id=money, second_amount=800,
        second_hold_id=money_hold,
    )

    await instructions.settle_prefunded_exchanges(
        session, exchanges=[exchange], origin="placement", batch_id=uuid.uuid4(), reference="placement test",
        actor="test", settings=SETTINGS, void=[ledger.VoidHoldItem(money_hold, uuid.uuid4())],
    )

    settled = await instructions.get_instruction(session, exchange_id)
    assert (settled.status, settled.origin, settled.kind) == ("settled", "placement", "dvp")
    assert [e.event for e in await instructions.history(session, exchange_id)] == ["settled"]
    assert await balance(session, buyer.id, emission.asset_id) == 5
    assert (await balance(session, buyer.id, money), await balance(session, buyer.id, money, "held")) == (200, 0)
    assert await balance(session, emission.issuer_party_id, money) == 800
