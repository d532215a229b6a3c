"""Holder snapshots: every holder's units at a record point, summing to the outstanding volume (REQ-32, REQ-35)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from dfa.issuance import errors
from dfa.issuance.models import Freeze
from dfa.issuance.service import snapshots
from dfa.ledger import service as ledger
from dfa.platform.calendar.service import load_calendar
from dfa.settlement.service import accounts
from tests.factories import SETTINGS, make_party
from tests.issuance.factories import make_emission


async def outstanding(session, emission) -> int:
    """The emission's outstanding volume: minus its issued account's balance."""
    return -(await session.execute(
        text("SELECT balance FROM ledger_accounts WHERE asset_id = :a AND kind = 'issued'"), {"a": emission.asset_id}
    )).scalar_one()


async def deliver(session, emission, party, units: int) -> int:
    """Move units from the issuer's placement account to the party's; returns the party's account id."""
    source = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="available"
    )
    target = await accounts.holder_account(
        session, party_id=party.id, asset_code=emission.registration_number, settings=SETTINGS
    )
    await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, target.id, units))
    return target.id


async def freeze(session, emission, party, account_id: int, units: int) -> Freeze:
    """Freeze units as a court order would: a hold that never expires, and its freeze record."""
    hold_id = uuid.uuid4()
    await ledger.place_hold(session, hold_id=hold_id, account_id=account_id, amount=units, reference="court order")
    frozen = Freeze(
        id=uuid.uuid4(), asset_id=emission.asset_id, party_id=party.id, units=units, hold_id=hold_id,
        basis="court_order", order_reference="2-1234/2026", reason="arrest of the debtor's property",
        status="active", created_by="court-desk",
    )
    session.add(frozen)
    await session.flush()
    return frozen


async def test_a_snapshot_counts_every_holder_with_held_and_frozen_units_and_totals_the_outstanding_req_32(session):
    emission = await make_emission(session, units=1_000)
    first, second = await make_party(session), await make_party(session)
    first_account = await deliver(session, emission, first, 100)
    await deliver(session, emission, second, 50)
    await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=first_account, amount=20)  # an order's hold
    await freeze(session, emission, first, first_account, 30)

    taken = await snapshots.take_snapshot(session, emission=emission, actor="registrar", settings=SETTINGS)

    positions = {p.party_id: (p.available, p.held, p.frozen) for p in taken.positions}
    assert positions == {first.id: (50, 50, 30), second.id: (50, 0, 0), emission.issuer_party_id: (850, 0, 0)}
    assert (taken.snapshot.total_units, taken.snapshot.holders) == (1_000, 3)
    assert taken.snapshot.total_units == await outstanding(session, emission)
    again = await snapshots.get_snapshot(session, emission=emission, snapshot_id=taken.snapshot.id)
    assert {p.party_id: (p.available, p.held, p.frozen) for p in again.positions} == positions


async def test_a_snapshot_as_of_an_instant_ignores_later_transfers_req_35(session):
    emission = await make_emission(session, units=1_000)
    first, second = await make_party(session), await make_party(session)
    await deliver(session, emission, first, 100)
    instant = datetime.now(UTC)
    await deliver(session, emission, second, 40)

    taken = await snapshots.take_snapshot(
        session, emission=emission, as_of=instant, actor="registrar", settings=SETTINGS
    )

    assert {p.party_id: p.available for p in taken.positions} == {first.id: 100, emission.issuer_party_id: 900}
    assert taken.snapshot.total_units == 1_000


async def test_a_snapshot_of_a_record_date_is_fixed_at_that_business_days_close_req_32(session):
    emission = await make_emission(session, units=1_000)
    calendar = await load_calendar(session, settings=SETTINGS)
    today = calendar.business_date_of(datetime.now(UTC))
    before = today - timedelta(days=1)
    while not calendar.is_business_day(before):
        before -= timedelta(days=1)

    taken = await snapshots.take_snapshot(
        session, emission=emission, record_date=before, actor="registrar", settings=SETTINGS
    )

    assert (taken.snapshot.as_of, taken.snapshot.record_date) == (calendar.close_of(before), before)
    assert (taken.snapshot.total_units, taken.positions) == (0, [])  # registered after that close


async def test_a_snapshot_of_the_future_or_of_two_points_is_refused_and_nothing_is_recorded(session):
    emission = await make_emission(session)
    calendar = await load_calendar(session, settings=SETTINGS)
    count = text("SELECT count(*) FROM issuance_snapshots WHERE asset_id = :a")
    for point in (
        {"as_of": datetime.now(UTC) + timedelta(hours=1)},
        {"record_date": calendar.business_day_on_or_after(datetime.now(UTC).date() + timedelta(days=21))},
        {"as_of": datetime.now(UTC), "record_date": datetime.now(UTC).date()},
    ):
        with pytest.raises(errors.SnapshotInstantInvalid):
            await snapshots.take_snapshot(session, emission=emission, actor="registrar", settings=SETTINGS, **point)
    assert (await session.execute(count, {"a": emission.asset_id})).scalar_one() == 0
    with pytest.raises(errors.SnapshotNotFound):
        await snapshots.get_snapshot(session, emission=emission, snapshot_id=uuid.uuid4())
