"""Transfers of an emission's units to and from digital-asset trading platforms (REQ-44..REQ-47)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dfa.issuance import errors
from dfa.issuance.models import Emission, PlatformMessage
from dfa.issuance.repository import emissions as emission_repository
from dfa.issuance.service import holders, platforms, suspensions
from dfa.issuance.trading_platforms import TradingPlatformSimulator
from dfa.ledger import service as ledger
from dfa.platform.calendar.service import load_calendar
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.models import OutboxMessage
from tests.factories import SETTINGS
from tests.issuance.factories import make_emission

UNITS = 1_000


@pytest.fixture
def simulator() -> TradingPlatformSimulator:
    return TradingPlatformSimulator(platforms=())


@pytest.fixture
async def platform(session, simulator) -> str:
    """A fresh trading platform, registered here and known to the simulated gateway."""
    code = f"tp-{uuid.uuid4().hex[:10]}"
    await platforms.register_platform(
        session, code=code, name="Astana Digital Exchange", nbk_registration_number="NBK-TP-7", actor="admin"
    )
    simulator.platforms.add(code)
    return code


@pytest.fixture
async def emission(session) -> Emission:
    return await make_emission(session, units=UNITS)


async def _issuer_units(session, emission: Emission) -> tuple[int, int, int]:
    """The issuer's (available, held) units and what is outstanding here (the issued account, negated)."""
    registry = await ledger.holders_registry(session, asset_code=emission.registration_number)
    [position] = [p for p in registry.positions if p.holder_party_id == emission.issuer_party_id]
    issued = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="issued"
    )
    page = await ledger.account_history(session, account_id=issued.id, before_seq=None, limit=1)
    return position.available_units, position.held_units, -page.entries[0].balance_after


async def _volume_holds(session, emission: Emission) -> Emission:
    """REQ-46: outstanding here + on trading platforms + cancelled = registered, whatever moved."""
    fresh = await emission_repository.get_emission(session, emission.asset_id)
    *_, outstanding = await _issuer_units(session, fresh)
    assert outstanding + fresh.platform_units + fresh.cancelled_units == fresh.units == UNITS
    return fresh


async def _transfer_out(session, emission, platform, simulator, units=300):
    view = await platforms.request_transfer(
        session, registration_number=emission.registration_number, platform_code=platform, units=units,
        issuer_party_id=emission.issuer_party_id, actor="issuer", platforms=simulator, settings=SETTINGS,
    )
    return view.transfer


async def _return(session, emission, platform, simulator, units):
    view = await platforms.request_return(
        session, registration_number=emission.registration_number, platform_code=platform, units=units,
        issuer_party_id=emission.issuer_party_id, actor="issuer", platforms=simulator, settings=SETTINGS,
    )
    return view.transfer


async def _refresh(session, simulator, now=None):
    return await platforms.refresh_transfers(session, platforms=simulator, settings=SETTINGS, now=now)


async def _messages(session, transfer_id) -> list[tuple[str, dict]]:
    rows = await session.execute(
        select(PlatformMessage).where(PlatformMessage.transfer_id == transfer_id).order_by(PlatformMessage.id)
    )
    return [(m.direction, m.body) for m in rows.scalars()]


async def test_req44_req45_the_units_are_checked_blocked_and_the_platform_notified(session, emission, platform, simulator):
    transfer = await _transfer_out(session, emission, platform, simulator)

    assert (transfer.status, transfer.direction, transfer.units) == ("notified", "out", 300)
    assert await _issuer_units(session, emission) == (700, 300, UNITS)
    check = transfer.encumbrance_check
    assert (check["available_units"], check["frozen_units"], check["trading_suspended"], check["findings"]) == (
        1_000, 0, False, []
    )
    calendar = await load_calendar(session, settings=SETTINGS)
    today = calendar.business_date_of(datetime.now(UTC))
    assert calendar.business_days_between(today, transfer.deadline) == 3
    [notice] = simulator.requests
    assert (notice["platform"], notice["emission"], notice["units"], notice["direction"]) == (
        platform, emission.registration_number, 300, "out"
    )
    assert await _messages(session, transfer.id) == [
        ("sent", {k: v for k, v in notice.items() if k != "platform"}),
        ("received", {"reference": transfer.platform_reference}),
    ]
    await _volume_holds(session, emission)


async def test_req46_on_confirmation_the_units_are_cancelled_here_and_the_volume_is_unchanged(
    session, emission, platform, simulator
):
    simulator.confirm_next()
    transfer = await _transfer_out(session, emission, platform, simulator)
    receipt = transfer.platform_reference

    counts = await _refresh(session, simulator)

    assert counts["confirmed"] >= 1
    answered = await platforms.get_transfer(session, transfer.id)
    assert answered.status == "confirmed" and answered.answered_at is not None
    assert answered.platform_reference.startswith(f"{platform.upper()}-REC-")
    assert await _issuer_units(session, emission) == (700, 0, 700)
    fresh = await _volume_holds(session, emission)
    assert fresh.platform_units == 300
    cancellation = await ledger.get_transfer(session, platforms.derived_id(transfer.id, "cancellation"))
    assert answered.platform_reference in cancellation.reference
    messages = await _messages(session, transfer.id)
    assert [d for d, _ in messages] == ["sent", "received", "sent", "received"]
    assert messages[2][1] == {"reference": receipt}
    assert messages[3][1]["status"] == "confirmed"


async def test_req45_on_refusal_the_block_is_released_and_the_reasons_kept(session, emission, platform, simulator):
    simulator.refuse_next(["the issuer is not admitted to our listing", "units must be at least 500"])
    transfer = await _transfer_out(session, emission, platform, simulator)

    await _refresh(session, simulator)

    refused = await platforms.get_transfer(session, transfer.id)
    assert refused.status == "refused"
    assert refused.reasons == "the issuer is not admitted to our listing; units must be at least 500"
    assert await _issuer_units(session, emission) == (1_000, 0, 1_000)
    assert (await _volume_holds(session, emission)).platform_units == 0


async def test_req45_silence_past_the_third_business_days_close_lapses_the_transfer_and_staff_are_told(
    session, emission, platform, simulator
):
    simulator.stay_silent()
    transfer = await _transfer_out(session, emission, platform, simulator)
    calendar = await load_calendar(session, settings=SETTINGS)
    close = calendar.close_of(transfer.deadline)

    await _refresh(session, simulator, now=close - timedelta(seconds=1))
    assert (await platforms.get_transfer(session, transfer.id)).status == "notified"

    await _refresh(session, simulator, now=close)

    lapsed = await platforms.get_transfer(session, transfer.id)
    assert lapsed.status == "lapsed"
    assert await _issuer_units(session, emission) == (1_000, 0, 1_000)
    await _volume_holds(session, emission)
    notices = (await session.execute(select(OutboxMessage).where(OutboxMessage.topic == "notifications"))).scalars()
    [notice] = [n.payload for n in notices if n.payload.get("transfer_id") == str(transfer.id)]
    assert (notice["kind"], notice["audience"]) == ("platform-transfer-lapsed", ["operator_admin", "compliance_officer"])


async def test_a_platform_that_is_down_changes_nothing(session, emission, platform, simulator):
    simulator.down = True

    with pytest.raises(ExternalPartyUnavailable):
        await _transfer_out(session, emission, platform, simulator)

    assert await _issuer_units(session, emission) == (1_000, 0, 1_000)
    assert await platforms.list_transfers(
        session, holder_party_id=emission.issuer_party_id, registration_number=None, status=None, before=None, limit=10
    ) == []


async def test_a_platform_down_when_asked_leaves_the_transfer_waiting(session, emission, platform, simulator):
    simulator.confirm_next()
    transfer = await _transfer_out(session, emission, platform, simulator)
    simulator.down = True

    await _refresh(session, simulator)

    assert (await platforms.get_transfer(session, transfer.id)).status == "notified"
    assert await _issuer_units(session, emission) == (700, 300, UNITS)


async def test_req44_units_the_issuer_does_not_have_free_are_refused_and_nothing_changes(
    session, emission, platform, simulator
):
    await holders.place_freeze(
        session, asset_code=emission.registration_number, party_id=emission.issuer_party_id, units=800,
        basis="court_order", order_reference="court 9", reason="securing a claim", actor="officer",
    )

    with pytest.raises(errors.EmissionNotTransferable) as refused:
        await _transfer_out(session, emission, platform, simulator, units=300)

    assert refused.value.context["findings"] == ["the issuer has 200 units available (800 frozen); 300 were asked for"]
    assert simulator.requests == []
    assert await _issuer_units(session, emission) == (200, 800, UNITS)


async def test_req44_a_suspended_emission_is_not_transferred(session, emission, platform, simulator):
    await suspensions.suspend(
        session, ground="operator_decision", issuer_party_id=None, registration_number=emission.registration_number,
        arrested_share=None, reference="decision 3", details="under review", actor="admin",
    )

    with pytest.raises(errors.EmissionNotTransferable) as refused:
        await _transfer_out(session, emission, platform, simulator)

    assert refused.value.context["findings"] == ["trading in the emission is suspended"]
    assert await _issuer_units(session, emission) == (1_000, 0, 1_000)


async def test_an_unknown_platform_or_another_issuers_emission_is_not_found(session, emission, platform, simulator):
    with pytest.raises(errors.TradingPlatformNotFound):
        await _transfer_out(session, emission, "tp-nowhere", simulator)
    with pytest.raises(errors.EmissionNotFound):
        await platforms.request_transfer(
            session, registration_number=emission.registration_number, platform_code=platform, units=1,
            issuer_party_id=uuid.uuid4(), actor="intruder", platforms=simulator, settings=SETTINGS,
        )
    assert simulator.requests == []


async def test_units_come_back_from_a_platform_when_it_confirms_it_cancelled_them(session, emission, platform, simulator):
    simulator.confirm_next()
    await _transfer_out(session, emission, platform, simulator, units=300)
    await _refresh(session, simulator)

    with pytest.raises(errors.PlatformUnitsShort):
        await _return(session, emission, platform, simulator, 301)

    simulator.confirm_next()
    back = await _return(session, emission, platform, simulator, 120)
    assert (back.direction, back.status, back.hold_id) == ("in", "notified", None)
    with pytest.raises(errors.PlatformUnitsShort):
        await _return(session, emission, platform, simulator, 181)

    await _refresh(session, simulator)

    assert (await platforms.get_transfer(session, back.id)).status == "confirmed"
    assert await _issuer_units(session, emission) == (820, 0, 820)
    assert (await _volume_holds(session, emission)).platform_units == 180
    assert simulator.issued(platform, emission.registration_number) == 180


async def test_a_duplicate_platform_code_is_refused(session, platform):
    with pytest.raises(errors.TradingPlatformExists):
        await platforms.register_platform(session, code=platform, name="Again", nbk_registration_number="X", actor="admin")
