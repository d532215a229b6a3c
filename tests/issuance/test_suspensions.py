"""Trading suspensions on the grounds of REQ-62 and on the operator's decision."""

from decimal import Decimal

import pytest
from sqlalchemy import select

from dfa.issuance import errors
from dfa.issuance.models import Emission
from dfa.issuance.service import suspensions
from dfa.ledger import service as ledger
from dfa.platform.models import OutboxMessage
from dfa.settlement.errors import TradingSuspended
from dfa.settlement.service import instructions
from tests.issuance.factories import make_emission, make_issuer


async def _tradable(session, emission: Emission) -> bool:
    try:
        await instructions.require_tradable(session, [await ledger.get_asset(session, emission.registration_number)])
    except TradingSuspended:
        return False
    return True


async def _suspend(session, *, ground, issuer=None, emission=None, share=None):
    return await suspensions.suspend(
        session, ground=ground, issuer_party_id=issuer, registration_number=emission, arrested_share=share,
        reference="decision 12/2026", details="recorded from the state register", actor="admin",
    )


@pytest.mark.parametrize(
    ("ground", "share"),
    [
        ("liquidation", None), ("reorganisation", None), ("compulsory_liquidation", None), ("bankruptcy", None),
        ("asset_arrest", Decimal("0.5001")),
    ],
)
async def test_req62_an_issuer_event_suspends_trading_in_every_emission_of_the_issuer(session, ground, share):
    issuer = await make_issuer(session)
    first, second = await make_emission(session, issuer=issuer), await make_emission(session, issuer=issuer)
    bystander = await make_emission(session)

    suspension = await _suspend(session, ground=ground, issuer=issuer.id, share=share)

    assert (suspension.ground, suspension.asset_id, suspension.lifted_at) == (ground, None, None)
    assert [await _tradable(session, e) for e in (first, second, bystander)] == [False, False, True]
    assert {e.asset_id for e in await suspensions.suspended_emissions_of(session, issuer.id)} == {
        first.asset_id, second.asset_id
    }


async def test_req62_the_operators_decision_suspends_one_emission_and_staff_are_told(session):
    issuer = await make_issuer(session)
    suspended, other = await make_emission(session, issuer=issuer), await make_emission(session, issuer=issuer)

    suspension = await _suspend(session, ground="operator_decision", emission=suspended.registration_number)

    assert (suspension.issuer_party_id, suspension.asset_id) == (issuer.id, suspended.asset_id)
    assert [await _tradable(session, e) for e in (suspended, other)] == [False, True]
    notices = (await session.execute(select(OutboxMessage).where(OutboxMessage.topic == "notifications"))).scalars()
    [notice] = [n.payload for n in notices if n.payload.get("suspension_id") == str(suspension.id)]
    assert notice["kind"] == "trading-suspended"
    assert notice["audience"] == ["operator_admin", "compliance_officer"]
    assert notice["emissions"] == [suspended.registration_number]


@pytest.mark.parametrize("share", [Decimal("0.5"), Decimal("0.1")])
async def test_req62_an_arrest_of_at_most_half_of_the_assets_is_refused_and_changes_nothing(session, share):
    issuer = await make_issuer(session)
    emission = await make_emission(session, issuer=issuer)

    with pytest.raises(errors.ArrestBelowHalf):
        await _suspend(session, ground="asset_arrest", issuer=issuer.id, share=share)

    assert await _tradable(session, emission)
    assert await suspensions.list_suspensions(session, issuer_party_id=issuer.id, active=None, before=None, limit=10) == []


async def test_a_suspension_naming_the_wrong_scope_is_refused(session):
    issuer = await make_issuer(session)
    emission = await make_emission(session, issuer=issuer)

    with pytest.raises(errors.SuspensionInvalid):
        await _suspend(session, ground="operator_decision", issuer=issuer.id)
    with pytest.raises(errors.SuspensionInvalid):
        await _suspend(session, ground="bankruptcy", issuer=issuer.id, emission=emission.registration_number)
    with pytest.raises(errors.SuspensionInvalid):
        await _suspend(session, ground="asset_arrest", issuer=issuer.id)
    with pytest.raises(errors.IssuerNotFound):
        await _suspend(session, ground="bankruptcy", issuer=emission.application_id)
    assert await _tradable(session, emission)


async def test_lifting_resumes_only_emissions_no_other_active_suspension_covers(session):
    issuer = await make_issuer(session)
    singled_out, other = await make_emission(session, issuer=issuer), await make_emission(session, issuer=issuer)
    decision = await _suspend(session, ground="operator_decision", emission=singled_out.registration_number)
    bankruptcy = await _suspend(session, ground="bankruptcy", issuer=issuer.id)

    await suspensions.lift(session, suspension_id=bankruptcy.id, reason="the court reversed its decision", actor="admin")
    assert [await _tradable(session, e) for e in (singled_out, other)] == [False, True]

    lifted = await suspensions.lift(session, suspension_id=decision.id, reason="resolved", actor="admin")
    assert (lifted.lift_reason, lifted.lifted_by) == ("resolved", "admin")
    assert [await _tradable(session, e) for e in (singled_out, other)] == [True, True]
    assert await suspensions.suspended_emissions_of(session, issuer.id) == []

    with pytest.raises(errors.SuspensionAlreadyLifted):
        await suspensions.lift(session, suspension_id=decision.id, reason="again", actor="admin")


async def test_an_emission_registered_while_its_issuer_is_suspended_is_suspended_too(session):
    issuer = await make_issuer(session)
    await _suspend(session, ground="liquidation", issuer=issuer.id)
    late = await make_emission(session, issuer=issuer)
    unaffected = await make_emission(session)

    assert await suspensions.apply_active_suspensions(session, emission=late, actor="system")
    assert not await suspensions.apply_active_suspensions(session, emission=unaffected, actor="system")
    assert [await _tradable(session, e) for e in (late, unaffected)] == [False, True]


async def test_an_issuer_sees_only_its_own_suspensions(session):
    issuer, other = await make_issuer(session), await make_issuer(session)
    suspension = await _suspend(session, ground="reorganisation", issuer=issuer.id)

    assert (await suspensions.get_suspension(session, suspension.id, visible_to=issuer.id)).id == suspension.id
    with pytest.raises(errors.SuspensionNotFound):
        await suspensions.get_suspension(session, suspension.id, visible_to=other.id)
