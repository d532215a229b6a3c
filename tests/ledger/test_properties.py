"""Random sequences of transfers, batches and holds against a model of what the ledger must do."""

import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import text

from dfa.ledger import errors
from dfa.ledger import service as ledger
from dfa.ledger.service import TransferSpec
from dfa.platform.database import Database
from tests.factories import funded_accounts

HOLDERS = 4
START = 100

holder = st.integers(0, HOLDERS - 1)
amount = st.integers(1, 150)
pair = st.tuples(holder, holder).filter(lambda p: p[0] != p[1])
transfer_op = st.builds(lambda p, a: ("transfer", p[0], p[1], a), pair, amount)
operations = st.lists(
    st.one_of(
        transfer_op,
        st.builds(lambda ts: ("batch", ts), st.lists(transfer_op, min_size=1, max_size=5)),
        st.builds(lambda h, a: ("hold", h, a), holder, amount),
        st.builds(lambda k, h, a: ("post", k, h, a), st.integers(0, 5), holder, st.one_of(st.none(), amount)),
        st.builds(lambda k: ("void", k), st.integers(0, 5)),
    ),
    max_size=14,
)


class Model:
    def __init__(self) -> None:
        self.available = [START] * HOLDERS
        self.held = [0] * HOLDERS
        self.holds: list[dict] = []

    def transfers_succeed(self, transfers) -> bool:
        balances = list(self.available)
        for _, a, b, amt in transfers:
            if balances[a] < amt:
                return False
            balances[a] -= amt
            balances[b] += amt
        self.available = balances
        return True


async def run_scenario(database: Database, ops) -> None:
    async with database.sessions() as session:
        await session.begin()
        try:
            await _scenario(session, ops)
        finally:
            await session.rollback()


async def _attempt(session, expected_ok: bool, work) -> None:
    try:
        async with session.begin_nested():
            await work
    except (errors.InsufficientFunds, errors.HoldNotPending, errors.HoldAmountExceeded):
        assert not expected_ok, "the ledger refused what the model allows"
    else:
        assert expected_ok, "the ledger allowed what the model refuses"


async def _scenario(session, ops) -> None:
    asset, source, accounts = await funded_accounts(session, count=HOLDERS, amount=START)
    model = Model()
    for op in ops:
        kind = op[0]
        if kind == "transfer":
            _, a, b, amt = op
            ok = model.transfers_succeed([op])
            spec = TransferSpec(uuid.uuid4(), accounts[a].id, accounts[b].id, amt)
            await _attempt(session, ok, ledger.post_transfer(session, transfer=spec))
        elif kind == "batch":
            ok = model.transfers_succeed(op[1])
            specs = [TransferSpec(uuid.uuid4(), accounts[a].id, accounts[b].id, amt) for _, a, b, amt in op[1]]
            await _attempt(session, ok, ledger.post_transfers(session, transfers=specs, batch_id=uuid.uuid4()))
        elif kind == "hold":
            _, h, amt = op
            ok = model.available[h] >= amt
            hold_id = uuid.uuid4()
            await _attempt(session, ok, ledger.place_hold(session, hold_id=hold_id, account_id=accounts[h].id, amount=amt))
            if ok:
                model.available[h] -= amt
                model.held[h] += amt
                model.holds.append({"id": hold_id, "owner": h, "remaining": amt, "pending": True})
        elif kind in ("post", "void") and model.holds:
            hold = model.holds[op[1] % len(model.holds)]
            if kind == "post":
                _, _, to, amt = op
                wanted = hold["remaining"] if amt is None else amt
                ok = hold["pending"] and wanted <= hold["remaining"]
                await _attempt(
                    session,
                    ok,
                    ledger.post_hold(session, hold_id=hold["id"], transfer_id=uuid.uuid4(), credit_account_id=accounts[to].id, amount=amt),
                )
                if ok:
                    hold["remaining"] -= wanted
                    hold["pending"] = hold["remaining"] > 0
                    model.held[hold["owner"]] -= wanted
                    model.available[to] += wanted
            else:
                ok = hold["pending"]
                await _attempt(session, ok, ledger.void_hold(session, hold_id=hold["id"], transfer_id=uuid.uuid4()))
                if ok:
                    model.available[hold["owner"]] += hold["remaining"]
                    model.held[hold["owner"]] -= hold["remaining"]
                    hold["remaining"], hold["pending"] = 0, False

    positions = {p.account_id: (p.available_units, p.held_units) for p in (await ledger.holders_registry(session, asset_code=asset.code)).positions}
    for index, account in enumerate(accounts):
        assert positions.get(account.id, (0, 0)) == (model.available[index], model.held[index])
    total = (await session.execute(text("SELECT sum(balance) FROM ledger_accounts WHERE asset_id = :a"), {"a": asset.id})).scalar_one()
    assert total == 0
    verification = await ledger.verify(session)
    assert verification.ok, verification.first_discrepancy


@pytest.fixture(scope="module")
def thread_database(loop_thread, database_url, settings):
    database = Database.from_url(database_url, settings)
    yield database
    loop_thread.run(database.dispose())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_random_operations_keep_zero_sum_non_negativity_and_a_verifiable_journal(loop_thread, thread_database, ops):
    loop_thread.run(run_scenario(thread_database, ops))
