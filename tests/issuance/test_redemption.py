"""Redemption under the operator's control of the issuer's obligations to holders (REQ-32)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from dfa.issuance import errors
from dfa.issuance.models import Freeze
from dfa.issuance.service import emissions, placement, redemption
from dfa.ledger import service as ledger
from dfa.platform.models import OutboxMessage
from dfa.settlement.service import accounts, orders
from tests.factories import SETTINGS, make_party
from tests.issuance.factories import make_emission
from tests.settlement.trading import antifraud

PRICE = 101_003  # the redemption price, tiyn per unit


async def balance(session, party_id, asset_id: int, kind: str = "available") -> int:
    return (await session.execute(
        text("SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE owner_party_id = :p AND asset_id = :a"
             " AND kind = :k"), {"p": party_id, "a": asset_id, "k": kind},
    )).scalar_one()


async def fund(session, party_id, amount: int) -> None:
    source = await accounts.operator_account(session, kind="client_money", settings=SETTINGS)
    target = await accounts.holder_account(session, party_id=party_id, asset_code="KZT", settings=SETTINGS)
    await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, target.id, amount))


async def held_emission(session, **terms):
    """An emission of 1 000 units: the first holder has 100 (30 of them frozen by a court), the second 50
    (10 of them offered on the book), the issuer keeps 850. Returns (emission, first, second, freeze, KZT id)."""
    await accounts.ensure_money(session, settings=SETTINGS)
    emission = await make_emission(session, units=1_000, redemption_price=PRICE, **terms)
    first, second = await make_party(session), await make_party(session)
    source = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="available"
    )
    targets = {}
    for party, units in ((first, 100), (second, 50)):
        targets[party.id] = await accounts.holder_account(
            session, party_id=party.id, asset_code=emission.registration_number, settings=SETTINGS
        )
        await ledger.post_transfer(
            session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, targets[party.id].id, units)
        )
    hold_id = uuid.uuid4()
    await ledger.place_hold(session, hold_id=hold_id, account_id=targets[first.id].id, amount=30)
    frozen = Freeze(
        id=uuid.uuid4(), asset_id=emission.asset_id, party_id=first.id, units=30, hold_id=hold_id, basis="court_order",
        order_reference="2-77/2026", reason="arrest", status="active", created_by="court-desk",
    )
    session.add(frozen)
    await session.flush()
    await orders.place(
        session, order_id=uuid.uuid4(), party_id=second.id, base=emission.registration_number, side="sell",
        price=PRICE * 2, quantity=10, actor="investor", centre=antifraud(), settings=SETTINGS,
    )
    return emission, first, second, frozen, (await ledger.get_asset(session, "KZT")).id


async def test_redemption_pays_every_holder_exactly_cancels_every_unit_and_freezes_frozen_proceeds_req_32(session):
    emission, first, second, frozen, money = await held_emission(session)
    await fund(session, emission.issuer_party_id, 150 * PRICE + 5)

    record = await redemption.redeem(session, emission=emission, kind="early", actor="issuer", settings=SETTINGS)

    assert (record.redemption.status, record.redemption.units, record.redemption.amount_due) == (
        "paid", 150, 150 * PRICE
    )
    assert {(p.party_id, p.units, p.frozen_units, p.amount) for p in record.payments} == {
        (first.id, 100, 30, 100 * PRICE), (second.id, 50, 0, 50 * PRICE)
    }
    assert [await balance(session, first.id, money, k) for k in ("available", "held")] == [70 * PRICE, 30 * PRICE]
    assert [await balance(session, second.id, money, k) for k in ("available", "held")] == [50 * PRICE, 0]
    assert await balance(session, emission.issuer_party_id, money) == 5
    for party_id in (first.id, second.id, emission.issuer_party_id):
        assert [await balance(session, party_id, emission.asset_id, k) for k in ("available", "held")] == [0, 0]
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "issued") == 0  # nothing outstanding
    freezes = (await session.execute(
        select(Freeze).where(Freeze.party_id == first.id).execution_options(populate_existing=True)
    )).scalars().all()
    by_asset = {f.asset_id: f for f in freezes}
    assert (by_asset[emission.asset_id].status, by_asset[emission.asset_id].lift_reason) == ("lifted", "redeemed")
    proceeds = by_asset[money]
    assert (proceeds.status, proceeds.units, proceeds.frozen_from, proceeds.order_reference) == (
        "active", 30 * PRICE, frozen.id, "2-77/2026"
    )
    refreshed = await emissions.get_emission(session, emission.registration_number)
    assert (refreshed.status, refreshed.cancelled_units) == ("redeemed", 1_000)
    with pytest.raises(errors.RedemptionNotAllowed):
        await redemption.redeem(session, emission=emission, kind="early", actor="issuer", settings=SETTINGS)


async def test_an_issuer_short_of_money_defaults_nobody_is_paid_and_staff_are_notified_req_32(session):
    emission, first, second, _, money = await held_emission(session)
    await fund(session, emission.issuer_party_id, 150 * PRICE - 1)

    record = await redemption.redeem(session, emission=emission, kind="early", actor="issuer", settings=SETTINGS)

    assert (record.redemption.status, record.payments) == ("defaulted", [])
    assert (record.default.amount_due, record.default.shortfall) == (150 * PRICE, 1)
    assert await balance(session, emission.issuer_party_id, money) == 150 * PRICE - 1
    assert [await balance(session, p.id, money) for p in (first, second)] == [0, 0]
    assert [await balance(session, first.id, emission.asset_id, k) for k in ("available", "held")] == [70, 30]
    assert await balance(session, second.id, emission.asset_id) == 50  # the order's hold released by the suspension
    assert await balance(session, emission.issuer_party_id, emission.asset_id, "issued") == -1_000
    notices = (await session.execute(
        select(OutboxMessage.payload).where(OutboxMessage.topic == "notifications")
        .order_by(OutboxMessage.id.desc()).limit(1)
    )).scalars().all()
    assert notices[0]["kind"] == "issuer-default"
    assert notices[0]["audience"] == ["operator_admin", "compliance_officer"]
    assert (notices[0]["registration_number"], notices[0]["shortfall"]) == (emission.registration_number, 1)
    listed = await redemption.list_redemptions(session, emission=emission, party_id=None, limit=10)
    assert [(r.redemption.status, r.default.shortfall) for r in listed] == [("defaulted", 1)]


async def test_early_redemption_is_refused_when_the_terms_forbid_it_and_nothing_changes_req_32(session):
    emission, _, second, _, money = await held_emission(session, early_redemption_allowed=False)
    await fund(session, emission.issuer_party_id, 150 * PRICE)

    with pytest.raises(errors.RedemptionNotAllowed):
        await redemption.redeem(session, emission=emission, kind="early", actor="issuer", settings=SETTINGS)

    assert await balance(session, second.id, emission.asset_id, "held") == 10  # the order still rests
    assert await balance(session, emission.issuer_party_id, money) == 150 * PRICE
    assert await redemption.list_redemptions(session, emission=emission, party_id=None, limit=10) == []


async def test_maturity_redemption_is_allowed_from_the_maturity_dates_business_day_on_req_32(session):
    maturity = datetime.now(UTC).date() + timedelta(days=60)
    emission, *_ = await held_emission(session, maturity_date=maturity)
    await fund(session, emission.issuer_party_id, 150 * PRICE)

    with pytest.raises(errors.RedemptionNotAllowed):
        await redemption.redeem(session, emission=emission, kind="maturity", actor="issuer", settings=SETTINGS)
    record = await redemption.redeem(
        session, emission=emission, kind="maturity", actor="issuer", settings=SETTINGS,
        now=datetime.combine(maturity + timedelta(days=3), datetime.min.time(), tzinfo=UTC),
    )
    assert record.redemption.status == "paid"


async def test_redemption_is_refused_while_a_placement_is_open(session):
    emission, *_ = await held_emission(session)
    await placement.open_placement(
        session, emission=emission, units=100, opens_at=datetime.now(UTC), closes_at=datetime.now(UTC) + timedelta(days=1),
        actor="issuer", settings=SETTINGS,
    )
    with pytest.raises(errors.RedemptionBlocked):
        await redemption.redeem(session, emission=emission, kind="early", actor="issuer", settings=SETTINGS)
