import uuid

from sqlalchemy import text

from dfa.ledger import errors
from dfa.ledger import service as ledger
from dfa.ledger.service import TransferSpec
from tests.factories import funded_accounts, make_account, make_asset
from tests.ledger.helpers import assert_ledger_verifies, balance, count, refused


async def test_transfer_moves_the_amount_and_keeps_the_asset_summing_to_zero(session):
    asset, source, (alice, bob) = await funded_accounts(session, count=2, amount=1_000)

    posted = await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 250))

    assert posted.created
    assert (await balance(session, alice.id), await balance(session, bob.id)) == (750, 1_250)
    assert await balance(session, source.id) == -2_000
    total = (await session.execute(text("SELECT sum(balance) FROM ledger_accounts WHERE asset_id = :a"), {"a": asset.id})).scalar_one()
    assert total == 0
    await assert_ledger_verifies(session)


async def test_replayed_transfer_returns_the_original_and_posts_nothing_more(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=1_000)
    spec = TransferSpec(uuid.uuid4(), alice.id, bob.id, 100, code=7, reference="order 1")

    first = await ledger.post_transfer(session, transfer=spec)
    again = await ledger.post_transfer(session, transfer=spec)

    assert not again.created
    assert again.transfer.created_at == first.transfer.created_at
    assert await balance(session, alice.id) == 900
    assert await count(session, "ledger_entries WHERE transfer_id = :t", t=spec.id) == 2


async def test_transfer_id_reused_for_a_different_transfer_is_refused(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=1_000)
    transfer_id = uuid.uuid4()
    await ledger.post_transfer(session, transfer=TransferSpec(transfer_id, alice.id, bob.id, 100))

    async with refused(session, errors.TransferIdReusedWithDifferentRequest):
        await ledger.post_transfer(session, transfer=TransferSpec(transfer_id, alice.id, bob.id, 101))

    assert await balance(session, alice.id) == 900


async def test_overdraft_is_refused_and_nothing_is_written(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)
    transfer_id = uuid.uuid4()

    async with refused(session, errors.InsufficientFunds):
        await ledger.post_transfer(session, transfer=TransferSpec(transfer_id, alice.id, bob.id, 101))

    assert (await balance(session, alice.id), await balance(session, bob.id)) == (100, 100)
    assert await count(session, "ledger_transfers WHERE id = :t", t=transfer_id) == 0


async def test_single_transfer_refusals_leave_the_callers_transaction_usable(session):
    """A settlement engine can learn that a buyer is short and go on in the same transaction."""
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)

    for spec, error in [
        (TransferSpec(uuid.uuid4(), alice.id, bob.id, 1_000), errors.InsufficientFunds),
        (TransferSpec(uuid.uuid4(), alice.id, 987_654_321, 1), errors.AccountNotFound),
    ]:
        try:
            await ledger.post_transfer(session, transfer=spec)
        except error:
            pass
        else:
            raise AssertionError(f"{error.__name__} expected")

    await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 40))
    assert await balance(session, bob.id) == 140


async def test_unknown_account_is_refused(session):
    _, _, (alice,) = await funded_accounts(session, count=1, amount=100)

    async with refused(session, errors.AccountNotFound):
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, 9_999_999_999, 1))
    async with refused(session, errors.AccountNotFound):
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), 9_999_999_999, alice.id, 1))


async def test_accounts_of_different_assets_cannot_trade_directly(session):
    _, _, (cash,) = await funded_accounts(session, count=1, amount=100)
    _, _, (units,) = await funded_accounts(session, count=1, amount=100, asset=await make_asset(session, kind="dfa"))

    async with refused(session, errors.AccountsMustHaveSameAsset):
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), cash.id, units.id, 1))


async def test_a_transfer_to_the_same_account_is_refused(session):
    _, _, (alice,) = await funded_accounts(session, count=1, amount=100)

    async with refused(session, errors.AccountsMustBeDifferent):
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, alice.id, 1))


async def test_database_itself_refuses_a_negative_holder_balance(session):
    """Non-negativity is a constraint in the database, not only a check in Python."""
    _, _, (alice,) = await funded_accounts(session, count=1, amount=100)

    async with refused(session, Exception):
        await session.execute(text("UPDATE ledger_accounts SET balance = -1 WHERE id = :id"), {"id": alice.id})


async def test_database_refuses_a_contra_account_going_positive(session):
    """The bank mirror can never show more money taken out of the bank than was put in."""
    asset, source, (alice,) = await funded_accounts(session, count=1, amount=100)

    async with refused(session, errors.InsufficientFunds):
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, source.id, 100))
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, source.id, 1))
    async with refused(session, Exception):
        await session.execute(text("UPDATE ledger_accounts SET balance = 1 WHERE id = :id"), {"id": source.id})


async def test_journal_is_append_only(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=100)
    posted = await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, 10))

    for statement in [
        "UPDATE ledger_entries SET amount = amount * 2 WHERE transfer_id = :t",
        "DELETE FROM ledger_entries WHERE transfer_id = :t",
        "UPDATE ledger_transfers SET amount = 1 WHERE id = :t",
        "DELETE FROM ledger_transfers WHERE id = :t",
        "TRUNCATE ledger_entries",
        "TRUNCATE ledger_transfers CASCADE",
    ]:
        async with refused(session, Exception):
            await session.execute(text(statement), {"t": posted.transfer.id} if ":t" in statement else {})


async def test_outstanding_volume_is_minus_the_issued_account_balance(session):
    """REQ-34: holdings of an emission sum to its outstanding volume at every commit."""
    emission = await make_asset(session, kind="dfa")
    _, issued, (alice, bob) = await funded_accounts(session, count=2, amount=0, asset=emission)
    await ledger.post_transfers(
        session,
        transfers=[TransferSpec(uuid.uuid4(), issued.id, alice.id, 600), TransferSpec(uuid.uuid4(), alice.id, bob.id, 150)],
    )

    registry = await ledger.holders_registry(session, asset_code=emission.code)

    outstanding = -(await balance(session, issued.id))
    assert outstanding == 600
    assert sum(p.available_units + p.held_units for p in registry.positions) == outstanding
    assert {p.account_id: p.available_units for p in registry.positions} == {alice.id: 450, bob.id: 150}


async def test_money_only_and_dfa_only_account_kinds_are_enforced(session):
    money = await make_asset(session, kind="money")
    emission = await make_asset(session, kind="dfa")

    async with refused(session, errors.AccountKindNotAllowed):
        await make_account(session, asset=emission, kind="client_money")
    async with refused(session, errors.AccountKindNotAllowed):
        await make_account(session, asset=money, kind="issued")
    await make_account(session, asset=emission, kind="issued")
    async with refused(session, errors.AccountAlreadyExists):
        await make_account(session, asset=emission, kind="issued")


async def test_account_history_pages_newest_first(session):
    _, _, (alice, bob) = await funded_accounts(session, count=2, amount=1_000)
    for amount in range(1, 6):
        await ledger.post_transfer(session, transfer=TransferSpec(uuid.uuid4(), alice.id, bob.id, amount))

    first = await ledger.account_history(session, account_id=alice.id, before_seq=None, limit=4)
    second = await ledger.account_history(session, account_id=alice.id, before_seq=first.next_before_seq, limit=4)

    assert [e.seq for e in first.entries] == [6, 5, 4, 3]
    assert [e.seq for e in second.entries] == [2, 1]
    assert second.next_before_seq is None
    assert [e.balance_after for e in first.entries] == [985, 990, 994, 997]
