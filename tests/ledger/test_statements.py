"""Account statements: an account's balance when a period opens, every movement booked in it, and its balance
when it closes, read from the journal."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfa.ledger import errors
from dfa.ledger import service as ledger
from dfa.ledger.service import TransferSpec
from dfa.platform.database import Database
from tests.factories import make_account, make_asset

MICROSECOND = timedelta(microseconds=1)


async def transfer(session, debit, credit, amount, reference=None) -> datetime:
    posted = await ledger.post_transfer(
        session, transfer=TransferSpec(uuid.uuid4(), debit.id, credit.id, amount, reference=reference)
    )
    return posted.transfer.created_at


@pytest.fixture
async def books(session):
    """A money asset, its client-money (contra) account, and two holders' available accounts."""
    asset = await make_asset(session)
    source = await make_account(session, asset=asset, kind="client_money")
    return source, await make_account(session, asset=asset), await make_account(session, asset=asset)


async def test_a_statement_opens_with_the_balance_before_the_period_and_closes_with_the_balance_at_its_end(
    session, books
):
    source, holder, other = books
    await transfer(session, source, holder, 10_000)
    start = await transfer(session, holder, other, 2_500, reference="order 1")
    await transfer(session, source, holder, 700, reference="deposit X1")
    end = await transfer(session, holder, other, 1_000)

    [account] = await ledger.statement(session, account_ids=[holder.id], start=start, end=end)

    assert (account.account_id, account.opening, account.closing) == (holder.id, 10_000, 8_200)
    assert [(e.kind, e.reference, e.amount, e.balance_after) for e in account.entries] == [
        ("transfer", "order 1", -2_500, 7_500), ("transfer", "deposit X1", 700, 8_200),
    ]
    assert account.opening + sum(e.amount for e in account.entries) == account.closing


async def test_holds_and_their_release_are_movements_of_both_the_available_and_the_held_account(session, books):
    source, holder, _ = books
    start = await transfer(session, source, holder, 5_000)
    [held] = [a for a in await ledger.list_accounts(session, owner_party_id=holder.owner_party_id, limit=10)
              if a.kind == "held"]
    hold_id = uuid.uuid4()
    await ledger.place_hold(session, hold_id=hold_id, account_id=holder.id, amount=1_200, reference="withdrawal W")
    released = await ledger.void_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4())

    available, on_hold = await ledger.statement(
        session, account_ids=[holder.id, held.id], start=start, end=released.transfer.created_at + MICROSECOND
    )

    assert [(e.kind, e.amount) for e in available.entries] == [("transfer", 5_000), ("hold", -1_200), ("void", 1_200)]
    assert [(e.kind, e.reference, e.amount) for e in on_hold.entries] == [
        ("hold", "withdrawal W", 1_200), ("void", None, -1_200),
    ]
    assert (available.closing, on_hold.opening, on_hold.closing) == (5_000, 0, 0)


async def test_an_account_without_movements_in_the_period_shows_its_balance_throughout(session, books):
    source, holder, other = books
    await transfer(session, source, holder, 300)
    booked = await transfer(session, source, other, 1)

    [quiet, contra] = await ledger.statement(
        session, account_ids=[holder.id, source.id], start=booked + MICROSECOND, end=booked + timedelta(days=1)
    )
    [before_any] = await ledger.statement(
        session, account_ids=[other.id], start=booked - timedelta(days=1), end=booked
    )

    assert (quiet.opening, quiet.entries, quiet.closing) == (300, [], 300)
    assert (contra.opening, contra.entries, contra.closing) == (-301, [], -301)  # mirrors the money at the bank
    assert (before_any.opening, before_any.entries, before_any.closing) == (0, [], 0)


# Random journals


HOLDERS = 3
FUNDED = 100
holder_index = st.integers(0, HOLDERS - 1)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("transfer"), holder_index, holder_index, st.integers(1, 80)),
        st.tuples(st.just("hold"), holder_index, st.integers(1, 80)),
        st.tuples(st.just("void"), st.integers(0, 5)),
    ),
    max_size=12,
)


@dataclass
class Journal:
    """What the test booked, as (instant, account id, signed amount) movements, to hold the statement against."""

    movements: list[tuple[datetime, int, int]] = field(default_factory=list)

    def book(self, instant: datetime, debit_id: int, credit_id: int, amount: int) -> None:
        self.movements += [(instant, debit_id, -amount), (instant, credit_id, amount)]

    def balance_before(self, account_id: int, instant: datetime) -> int:
        return sum(amount for at, account, amount in self.movements if account == account_id and at < instant)

    def amounts_between(self, account_id: int, start: datetime, end: datetime) -> list[int]:
        return [amount for at, account, amount in self.movements if account == account_id and start <= at < end]


async def _book_randomly(session, ops) -> tuple[list[int], Journal]:
    """Fund holders, then book `ops` (those the balances allow); returns every holder account id and the journal."""
    asset = await make_asset(session)
    source = await make_account(session, asset=asset, kind="client_money")
    holders = [await make_account(session, asset=asset) for _ in range(HOLDERS)]
    journal = Journal()
    for holder in holders:
        journal.book(await transfer(session, source, holder, FUNDED), source.id, holder.id, FUNDED)
    held = [a for h in holders for a in await ledger.list_accounts(session, owner_party_id=h.owner_party_id, limit=10)
            if a.kind == "held"]
    holds: list[tuple[uuid.UUID, int, int, int]] = []  # hold id, available account, held account, amount
    for op in ops:
        try:
            async with session.begin_nested():
                if op[0] == "transfer" and op[1] != op[2]:
                    debit, credit = holders[op[1]], holders[op[2]]
                    journal.book(await transfer(session, debit, credit, op[3]), debit.id, credit.id, op[3])
                elif op[0] == "hold":
                    account, hold_id = holders[op[1]], uuid.uuid4()
                    hold, _ = await ledger.place_hold(session, hold_id=hold_id, account_id=account.id, amount=op[2])
                    journal.book(hold.created_at, account.id, hold.held_account_id, op[2])
                    holds.append((hold_id, account.id, hold.held_account_id, op[2]))
                elif op[0] == "void" and holds:
                    hold_id, account_id, held_id, amount = holds.pop(op[1] % len(holds))
                    released = await ledger.void_hold(session, hold_id=hold_id, transfer_id=uuid.uuid4())
                    journal.book(released.transfer.created_at, held_id, account_id, amount)
        except errors.InsufficientFunds:
            pass
    return [a.id for a in (*holders, *held)], journal


async def _check_statements(database: Database, ops, bounds) -> None:
    async with database.sessions() as session:
        await session.begin()
        try:
            account_ids, journal = await _book_randomly(session, ops)
            instants = sorted({at for at, _, _ in journal.movements})
            edges = [instants[0] - MICROSECOND, *instants, instants[-1] + MICROSECOND]
            start, end = sorted(edges[min(i, len(edges) - 1)] for i in bounds)
            statements = await ledger.statement(session, account_ids=account_ids, start=start, end=end)
        finally:
            await session.rollback()
    for account_id, found in zip(account_ids, statements, strict=True):
        assert found.opening == journal.balance_before(account_id, start)
        assert [e.amount for e in found.entries] == journal.amounts_between(account_id, start, end)
        assert found.closing == journal.balance_before(account_id, end)
        assert found.opening + sum(e.amount for e in found.entries) == found.closing
        running = found.opening
        for entry in found.entries:
            running += entry.amount
            assert entry.balance_after == running


@pytest.fixture(scope="module")
def thread_database(loop_thread, database_url, settings):
    database = Database.from_url(database_url, settings)
    yield database
    loop_thread.run(database.dispose())


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=operations, bounds=st.tuples(st.integers(0, 40), st.integers(0, 40)))
def test_opening_plus_the_movements_is_the_closing_balance_of_every_account_for_any_journal_and_period(
    loop_thread, thread_database, ops, bounds
):
    loop_thread.run(_check_statements(thread_database, ops, bounds))
