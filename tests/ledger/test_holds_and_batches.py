import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from dfa.ledger import errors
from dfa.ledger import service as ledger
from dfa.ledger.service import PlaceHoldItem, PostHoldItem, TransferItem, TransferSpec, VoidHoldItem
from tests.factories import SETTINGS, funded_accounts, make_asset
from tests.ledger.helpers import assert_ledger_verifies, balance, count, refused


async def _held_twin(session, account) -> int:
    return (
        await session.execute(
            text("SELECT id FROM ledger_accounts WHERE owner_party_id = :o AND asset_id = :a AND kind = 'held'"),
            {"o": account.owner_party_id, "a": account.asset_id},
        )
    ).scalar_one()


async def test_hold_moves_funds_from_available_to_held_and_posts_in_parts(session):
    """REQ-38: money is prefunded by a hold before it is delivered."""
    _, _, (buyer, seller) = await funded_accounts(session, count=2, amount=1_000)
    held = await _held_twin(session, buyer)
    hold_id = uuid.uuid4()

    hold, created = await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=600)
    assert created and hold.status == "pending"
    assert (await balance(session, buyer.id), await balance(session, held)) == (400, 600)

    await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id, amount=200)
    assert (await ledger.get_hold(session, hold_id)).status == "pending"
    await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id)

    hold = await ledger.get_hold(session, hold_id)
    assert (hold.status, hold.posted_amount) == ("posted", 600)
    assert (await balance(session, held), await balance(session, seller.id)) == (0, 1_600)
    await assert_ledger_verifies(session)


async def test_posting_more_than_the_hold_has_left_is_refused(session):
    _, _, (buyer, seller) = await funded_accounts(session, count=2, amount=1_000)
    hold_id = uuid.uuid4()
    await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=300)
    await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id, amount=100)

    async with refused(session, errors.HoldAmountExceeded):
        await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id, amount=201)
    assert await balance(session, seller.id) == 1_100


async def test_voiding_returns_the_remainder_and_voiding_twice_is_refused(session):
    _, _, (buyer, seller) = await funded_accounts(session, count=2, amount=1_000)
    hold_id = uuid.uuid4()
    await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=300)
    await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id, amount=100)
    void_id = uuid.uuid4()

    await ledger.void_hold(session, hold_id=hold_id, transfer_id=void_id)
    replay = await ledger.void_hold(session, hold_id=hold_id, transfer_id=void_id)

    assert not replay.created
    assert await balance(session, buyer.id) == 900
    hold = await ledger.get_hold(session, hold_id)
    assert (hold.status, hold.posted_amount, hold.released_amount) == ("voided", 100, 200)
    async with refused(session, errors.HoldNotPending):
        await ledger.void_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4())
    async with refused(session, errors.HoldNotPending):
        await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id)


async def test_a_hold_beyond_the_available_balance_is_refused_and_leaves_nothing(session):
    _, _, (buyer,) = await funded_accounts(session, count=1, amount=100)
    hold_id = uuid.uuid4()

    async with refused(session, errors.InsufficientFunds):
        await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=101)

    assert await count(session, "ledger_holds WHERE id = :h", h=hold_id) == 0
    assert await balance(session, buyer.id) == 100


async def test_holds_are_placed_only_on_available_accounts(session):
    _, source, (buyer,) = await funded_accounts(session, count=1, amount=100)

    async with refused(session, errors.HoldRequiresAvailableAccount):
        await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=source.id, amount=1)
    async with refused(session, errors.HoldRequiresAvailableAccount):
        await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=await _held_twin(session, buyer), amount=1)


async def test_hold_id_reused_for_another_hold_is_refused(session):
    _, _, (buyer,) = await funded_accounts(session, count=1, amount=100)
    hold_id = uuid.uuid4()
    await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=10)

    _, created = await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=10)
    assert not created
    async with refused(session, errors.HoldIdReusedWithDifferentRequest):
        await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=11)


async def test_an_expired_hold_cannot_be_posted_and_the_sweep_releases_it(session):
    _, _, (buyer, seller) = await funded_accounts(session, count=2, amount=1_000)
    hold_id = uuid.uuid4()
    expires = datetime.now(UTC) + timedelta(milliseconds=300)
    await ledger.place_hold(session, hold_id=hold_id, account_id=buyer.id, amount=400, expires_at=expires)
    async with refused(session, errors.HoldExpiryInPast):
        await ledger.place_hold(
            session, hold_id=uuid.uuid4(), account_id=buyer.id, amount=1, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )

    later = expires + timedelta(seconds=1)
    released = await ledger.expire_holds(session, now=later, limit=100)

    assert released >= 1
    hold = await ledger.get_hold(session, hold_id)
    assert (hold.status, hold.released_amount) == ("expired", 400)
    assert await balance(session, buyer.id) == 1_000
    async with refused(session, errors.HoldNotPending):
        await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id)
    await assert_ledger_verifies(session)


async def test_posting_a_hold_after_its_expiry_is_refused_even_before_the_sweep(session):
    _, _, (buyer, seller) = await funded_accounts(session, count=2, amount=1_000)
    hold_id = uuid.uuid4()
    await ledger.place_hold(
        session, hold_id=hold_id, account_id=buyer.id, amount=400, expires_at=datetime.now(UTC) + timedelta(milliseconds=50)
    )
    await session.execute(text("SELECT pg_sleep(0.1)"))

    async with refused(session, errors.HoldExpired):
        await ledger.post_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4(), credit_account_id=seller.id)


async def test_dvp_batch_exchanges_money_for_units_against_prefunded_holds(session):
    """REQ-38: delivery versus payment, both legs in one linked batch against holds."""
    kzt, _, (buyer_cash, seller_cash) = await funded_accounts(session, count=2, amount=10_000)
    emission = await make_asset(session, kind="dfa")
    _, issued, _ = await funded_accounts(session, count=0, amount=0, asset=emission)
    seller_units = await ledger.open_account(session, owner_party_id=seller_cash.owner_party_id, asset_code=emission.code, kind="available", settings=SETTINGS)
    buyer_units = await ledger.open_account(session, owner_party_id=buyer_cash.owner_party_id, asset_code=emission.code, kind="available", settings=SETTINGS)
    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), issued.id, seller_units.id, 50))
    money_hold, units_hold = uuid.uuid4(), uuid.uuid4()
    await ledger.place_hold(session, hold_id=money_hold, account_id=buyer_cash.id, amount=5_000)
    await ledger.place_hold(session, hold_id=units_hold, account_id=seller_units.id, amount=10)

    result = await ledger.execute_batch(
        session,
        batch_id=uuid.uuid4(),
        items=[
            PostHoldItem(money_hold, uuid.uuid4(), seller_cash.id),
            PostHoldItem(units_hold, uuid.uuid4(), buyer_units.id),
        ],
    )

    assert len(result.transfers) == 2
    assert await balance(session, seller_cash.id) == 15_000
    assert await balance(session, buyer_units.id) == 10
    assert await balance(session, seller_units.id) == 40
    await assert_ledger_verifies(session)


async def test_dvp_leaves_nothing_settled_when_one_leg_fails(session):
    """REQ-38: if the units leg cannot settle, the money leg is undone too."""
    _, _, (buyer, seller) = await funded_accounts(session, count=2, amount=10_000)
    money_hold, gone_hold = uuid.uuid4(), uuid.uuid4()
    await ledger.place_hold(session, hold_id=money_hold, account_id=buyer.id, amount=5_000)
    await ledger.place_hold(session, hold_id=gone_hold, account_id=seller.id, amount=10)
    await ledger.void_hold(session, hold_id=gone_hold, transfer_id=uuid.uuid4())
    batch_id = uuid.uuid4()

    async with refused(session, errors.HoldNotPending):
        await ledger.execute_batch(
            session,
            batch_id=batch_id,
            items=[PostHoldItem(money_hold, uuid.uuid4(), seller.id), PostHoldItem(gone_hold, uuid.uuid4(), buyer.id)],
        )

    assert (await ledger.get_hold(session, money_hold)).status == "pending"
    assert await balance(session, seller.id) == 10_000
    assert await count(session, "ledger_batches WHERE id = :b", b=batch_id) == 0


async def test_batch_whose_last_transfer_fails_leaves_nothing_behind(session):
    _, _, (a, b, c) = await funded_accounts(session, count=3, amount=100)
    batch_id = uuid.uuid4()
    specs = [TransferSpec(uuid.uuid4(), a.id, b.id, 50), TransferSpec(uuid.uuid4(), b.id, c.id, 20), TransferSpec(uuid.uuid4(), c.id, a.id, 1_000)]

    async with refused(session, errors.InsufficientFunds):
        await ledger.execute_batch(session, batch_id=batch_id, items=[TransferItem(s) for s in specs])

    assert [await balance(session, x.id) for x in (a, b, c)] == [100, 100, 100]
    assert await count(session, "ledger_transfers WHERE batch_id = :b", b=batch_id) == 0


async def test_batch_refuses_a_balance_that_would_dip_below_zero_midway(session):
    """Linked transfers apply in order: a later credit does not excuse an earlier overdraft."""
    _, _, (a, b) = await funded_accounts(session, count=2, amount=100)

    async with refused(session, errors.InsufficientFunds):
        await ledger.post_transfers(
            session, transfers=[TransferSpec(uuid.uuid4(), a.id, b.id, 150), TransferSpec(uuid.uuid4(), b.id, a.id, 150)]
        )


async def test_batch_replay_returns_its_transfers_and_a_changed_batch_is_refused(session):
    _, _, (a, b) = await funded_accounts(session, count=2, amount=100)
    batch_id, hold_id = uuid.uuid4(), uuid.uuid4()
    items = [
        TransferItem(TransferSpec(uuid.uuid4(), a.id, b.id, 10)),
        PlaceHoldItem(hold_id, b.id, 30),
        PostHoldItem(hold_id, uuid.uuid4(), a.id, 5),
        VoidHoldItem(hold_id, uuid.uuid4()),
    ]

    first = await ledger.execute_batch(session, batch_id=batch_id, items=items)
    again = await ledger.execute_batch(session, batch_id=batch_id, items=items)

    assert again.created is False
    assert [t.id for t in again.transfers] == [t.id for t in first.transfers]
    assert [t.kind for t in first.transfers] == ["transfer", "hold", "post", "void"]
    assert (await balance(session, a.id), await balance(session, b.id)) == (95, 105)
    async with refused(session, errors.BatchIdReusedWithDifferentRequest):
        await ledger.execute_batch(session, batch_id=batch_id, items=items[:1])


async def test_batch_with_an_id_twice_is_refused(session):
    _, _, (a, b) = await funded_accounts(session, count=2, amount=100)
    same = uuid.uuid4()

    async with refused(session, errors.DuplicateIdInBatch):
        await ledger.post_transfers(session, transfers=[TransferSpec(same, a.id, b.id, 1), TransferSpec(same, a.id, b.id, 2)])


async def test_batch_refuses_a_transfer_id_already_in_the_journal(session):
    _, _, (a, b) = await funded_accounts(session, count=2, amount=100)
    spec = TransferSpec(uuid.uuid4(), a.id, b.id, 1)
    await ledger.post_transfer(session, transfer=spec)

    async with refused(session, errors.TransferExists):
        await ledger.post_transfers(session, transfers=[TransferSpec(uuid.uuid4(), a.id, b.id, 1), spec])
