"""The settlement hot path: placing, posting and voiding holds as one unit in one statement."""

import uuid

from dfa.ledger import errors
from dfa.ledger import service as ledger
from dfa.ledger.service import PlaceHoldItem, PostHoldItem, VoidHoldItem
from tests.factories import funded_accounts, make_account, make_asset, make_party
from tests.ledger.helpers import assert_ledger_verifies, balance, count, refused


async def _dvp_accounts(session):
    """A buyer with 10 000 tiyn, a seller with 50 units, and a fee account."""
    money, _, (buyer_cash, seller_cash) = await funded_accounts(session, count=2, amount=10_000)
    _, _, (seller_units, buyer_units) = await funded_accounts(session, count=2, amount=50)
    operator = await make_party(session, kind="legal_entity", name="Operator")
    fees = await make_account(session, asset=money, owner=operator, kind="fees")
    return buyer_cash, seller_cash, seller_units, buyer_units, fees


async def test_a_dvp_places_posts_and_releases_in_one_unit(session):
    """REQ-38: the buyer's money and the seller's units are held, then both legs and the fee move together."""
    buyer_cash, seller_cash, seller_units, buyer_units, fees = await _dvp_accounts(session)
    money_hold, unit_hold = uuid.uuid4(), uuid.uuid4()
    await ledger.settle_holds(
        session, batch_id=uuid.uuid4(),
        place=[PlaceHoldItem(money_hold, buyer_cash.id, 5_100), PlaceHoldItem(unit_hold, seller_units.id, 10)],
    )

    settled = await ledger.settle_holds(
        session,
        batch_id=uuid.uuid4(),
        post=[
            PostHoldItem(money_hold, uuid.uuid4(), seller_cash.id, amount=4_000),
            PostHoldItem(money_hold, uuid.uuid4(), fees.id, amount=40),
            PostHoldItem(unit_hold, uuid.uuid4(), buyer_units.id, amount=10),
        ],
        void=[VoidHoldItem(money_hold, uuid.uuid4()), VoidHoldItem(unit_hold, uuid.uuid4())],
    )

    assert settled.created
    assert await balance(session, buyer_cash.id) == 10_000 - 4_040
    assert await balance(session, seller_cash.id) == 14_000
    assert await balance(session, fees.id) == 40
    assert (await balance(session, seller_units.id), await balance(session, buyer_units.id)) == (40, 60)
    money, units = await ledger.get_hold(session, money_hold), await ledger.get_hold(session, unit_hold)
    assert (money.status, money.posted_amount, money.released_amount) == ("voided", 4_040, 1_060)
    assert (units.status, units.posted_amount, units.released_amount) == ("posted", 10, 0)
    await assert_ledger_verifies(session)


async def test_a_hold_placed_and_posted_in_the_same_unit_stays_pending_for_the_rest(session):
    buyer_cash, seller_cash, *_ = await _dvp_accounts(session)
    hold_id = uuid.uuid4()
    await ledger.settle_holds(
        session, batch_id=uuid.uuid4(), place=[PlaceHoldItem(hold_id, buyer_cash.id, 3_000)],
        post=[PostHoldItem(hold_id, uuid.uuid4(), seller_cash.id, amount=1_000)],
    )
    hold = await ledger.get_hold(session, hold_id)
    assert (hold.status, hold.posted_amount) == ("pending", 1_000)
    assert (await balance(session, buyer_cash.id), await balance(session, seller_cash.id)) == (7_000, 11_000)
    await assert_ledger_verifies(session)


async def test_nothing_moves_when_one_leg_is_short(session):
    """REQ-38: a buyer short of money moves neither leg."""
    buyer_cash, _, seller_units, buyer_units, _ = await _dvp_accounts(session)
    unit_hold = uuid.uuid4()
    await ledger.settle_holds(session, batch_id=uuid.uuid4(), place=[PlaceHoldItem(unit_hold, seller_units.id, 10)])
    transfers = await count(session, "ledger_transfers")

    async with refused(session, errors.InsufficientFunds):
        await ledger.settle_holds(
            session, batch_id=uuid.uuid4(),
            place=[PlaceHoldItem(uuid.uuid4(), buyer_cash.id, 10_001)],
            post=[PostHoldItem(unit_hold, uuid.uuid4(), buyer_units.id, amount=10)],
        )

    assert await count(session, "ledger_transfers") == transfers
    assert (await balance(session, seller_units.id), await balance(session, buyer_units.id)) == (40, 50)
    assert (await ledger.get_hold(session, unit_hold)).status == "pending"


async def test_refusals_name_what_is_wrong_with_a_hold(session):
    buyer_cash, seller_cash, *_ = await _dvp_accounts(session)
    hold_id = uuid.uuid4()
    await ledger.settle_holds(session, batch_id=uuid.uuid4(), place=[PlaceHoldItem(hold_id, buyer_cash.id, 100)])

    async with refused(session, errors.HoldAmountExceeded):
        await ledger.settle_holds(
            session, batch_id=uuid.uuid4(),
            post=[PostHoldItem(hold_id, uuid.uuid4(), seller_cash.id, amount=60),
                  PostHoldItem(hold_id, uuid.uuid4(), seller_cash.id, amount=41)],
        )
    async with refused(session, errors.HoldNotFound):
        await ledger.settle_holds(session, batch_id=uuid.uuid4(), void=[VoidHoldItem(uuid.uuid4(), uuid.uuid4())])
    async with refused(session, errors.HoldIdReusedWithDifferentRequest):
        await ledger.settle_holds(session, batch_id=uuid.uuid4(), place=[PlaceHoldItem(hold_id, buyer_cash.id, 5)])
    held = await make_asset(session)
    issuer_side = await make_account(session, asset=held, kind="settlement")
    async with refused(session, errors.HoldRequiresAvailableAccount):
        await ledger.settle_holds(session, batch_id=uuid.uuid4(), place=[PlaceHoldItem(uuid.uuid4(), issuer_side.id, 5)])

    await ledger.settle_holds(session, batch_id=uuid.uuid4(), void=[VoidHoldItem(hold_id, uuid.uuid4())])
    async with refused(session, errors.HoldNotPending):
        await ledger.settle_holds(
            session, batch_id=uuid.uuid4(), post=[PostHoldItem(hold_id, uuid.uuid4(), seller_cash.id, amount=1)]
        )
    assert await balance(session, buyer_cash.id) == 10_000


async def test_the_same_batch_twice_settles_once(session):
    buyer_cash, seller_cash, *_ = await _dvp_accounts(session)
    batch_id, hold_id, post_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    items = {
        "place": [PlaceHoldItem(hold_id, buyer_cash.id, 500)],
        "post": [PostHoldItem(hold_id, post_id, seller_cash.id, amount=500)],
    }
    first = await ledger.settle_holds(session, batch_id=batch_id, **items)
    again = await ledger.settle_holds(session, batch_id=batch_id, **items)

    assert (first.created, again.created) == (True, False)
    assert await balance(session, seller_cash.id) == 10_500
    async with refused(session, errors.BatchIdReusedWithDifferentRequest):
        await ledger.settle_holds(session, batch_id=batch_id, place=[PlaceHoldItem(uuid.uuid4(), buyer_cash.id, 1)])
