"""Holder protections: freezes on orders of authorities and forced transfers."""

import uuid

import pytest

from dfa.custody.service.mirror import FORCED_MOVE_CODE
from dfa.issuance import errors
from dfa.issuance.models import Emission
from dfa.issuance.service import holders
from dfa.ledger import service as ledger
from dfa.platform.identity.errors import PartyNotIdentified
from dfa.settlement.service import accounts
from tests.factories import SETTINGS, make_party
from tests.issuance.factories import make_emission


async def _units(session, emission: Emission, party_id: uuid.UUID) -> tuple[int, int]:
    """The party's (available, held) units of the emission, straight from the ledger's registry."""
    registry = await ledger.holders_registry(session, asset_code=emission.registration_number)
    for position in registry.positions:
        if position.holder_party_id == party_id:
            return position.available_units, position.held_units
    return 0, 0


async def _holder_with(session, emission: Emission, units: int):
    """A fresh identified holder given `units` of the emission by its issuer."""
    holder = await make_party(session)
    account = await accounts.holder_account(
        session, party_id=holder.id, asset_code=emission.registration_number, settings=SETTINGS
    )
    placement = await ledger.find_account(
        session, owner_party_id=emission.issuer_party_id, asset_id=emission.asset_id, kind="available"
    )
    await ledger.post_transfer(
        session, transfer=ledger.TransferSpec(uuid.uuid4(), placement.id, account.id, units, reference="sale")
    )
    return holder


async def _freeze(session, emission: Emission, party_id: uuid.UUID, units: int, order: str = "court 2-101/2026"):
    return await holders.place_freeze(
        session, asset_code=emission.registration_number, party_id=party_id, units=units, basis="court_order",
        order_reference=order, reason="securing a claim", actor="officer",
    )


# --- freezes --------------------------------------------------------------------------------------------


async def test_a_freeze_holds_part_of_the_holders_units_until_lifted(session):
    emission = await make_emission(session)
    holder = await _holder_with(session, emission, 100)

    freeze = await _freeze(session, emission, holder.id, 40)

    assert await _units(session, emission, holder.id) == (60, 40)
    hold = await ledger.get_hold(session, freeze.hold_id)
    assert (hold.amount, hold.status, hold.expires_at) == (40, "pending", None)
    assert (freeze.status, freeze.order_reference) == ("active", "court 2-101/2026")

    lifted = await holders.lift_freeze(session, freeze_id=freeze.id, reason="the claim was settled", actor="officer")

    assert (lifted.status, lifted.lift_reason, lifted.lifted_by) == ("lifted", "the claim was settled", "officer")
    assert (await ledger.get_hold(session, freeze.hold_id)).status == "voided"
    assert await _units(session, emission, holder.id) == (100, 0)


async def test_a_freeze_of_more_than_the_holder_has_available_is_refused_and_changes_nothing(session):
    emission = await make_emission(session)
    holder = await _holder_with(session, emission, 100)
    await _freeze(session, emission, holder.id, 70)

    with pytest.raises(errors.HolderUnitsShort) as refused:
        await _freeze(session, emission, holder.id, 31)

    assert refused.value.context == {"available": 30, "requested": 31}
    assert await _units(session, emission, holder.id) == (30, 70)
    assert [f.units for f in await holders.list_freezes(
        session, asset_code=emission.registration_number, party_id=holder.id, status=None, before=None, limit=10
    )] == [70]


async def test_a_freeze_of_a_party_without_units_is_refused(session):
    emission = await make_emission(session)
    stranger = await make_party(session)

    with pytest.raises(errors.HolderUnitsShort):
        await _freeze(session, emission, stranger.id, 1)


async def test_money_can_be_frozen_too(session):
    await accounts.ensure_money(session, settings=SETTINGS)
    holder = await make_party(session)
    cash = await accounts.holder_account(session, party_id=holder.id, asset_code=accounts.MONEY, settings=SETTINGS)
    client_money = await accounts.operator_account(session, kind="client_money", settings=SETTINGS)
    await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), client_money.id, cash.id, 50_000))

    freeze = await holders.place_freeze(
        session, asset_code="KZT", party_id=holder.id, units=20_000, basis="authority_order",
        order_reference="AFM 77", reason="financial monitoring", actor="officer",
    )

    assert (await ledger.get_hold(session, freeze.hold_id)).amount == 20_000


async def test_a_lifted_freeze_cannot_be_lifted_again(session):
    emission = await make_emission(session)
    holder = await _holder_with(session, emission, 10)
    freeze = await _freeze(session, emission, holder.id, 10)
    await holders.lift_freeze(session, freeze_id=freeze.id, reason="done", actor="officer")

    with pytest.raises(errors.FreezeNotActive):
        await holders.lift_freeze(session, freeze_id=freeze.id, reason="again", actor="officer")
    assert await _units(session, emission, holder.id) == (10, 0)


async def test_a_holder_sees_only_its_own_freezes(session):
    emission = await make_emission(session)
    holder = await _holder_with(session, emission, 10)
    other = await make_party(session)
    freeze = await _freeze(session, emission, holder.id, 5)

    assert (await holders.get_freeze(session, freeze.id, visible_to=holder.id)).id == freeze.id
    with pytest.raises(errors.FreezeNotFound):
        await holders.get_freeze(session, freeze.id, visible_to=other.id)


# --- forced transfers -----------------------------------------------------------------------------------


async def _force(session, emission, source, target, units, *, include_frozen=False, basis="court_order"):
    return await holders.forced_transfer(
        session, asset_code=emission.registration_number, from_party_id=source.id, to_party_id=target.id,
        units=units, basis=basis, order_reference="court 2-555/2026", reason="enforcement of a judgment",
        include_frozen=include_frozen, actor="admin", settings=SETTINGS,
    )


async def test_a_forced_transfer_moves_available_units_as_a_forced_move_keeping_the_order_reference(session):
    emission = await make_emission(session)
    debtor = await _holder_with(session, emission, 100)
    creditor = await make_party(session)

    forced = await _force(session, emission, debtor, creditor, 60)

    assert await _units(session, emission, debtor.id) == (40, 0)
    assert await _units(session, emission, creditor.id) == (60, 0)
    assert (forced.order_reference, forced.basis, forced.units) == ("court 2-555/2026", "court_order", 60)
    transfer = await ledger.get_transfer(session, forced.transfer_id)
    assert (transfer.code, transfer.amount) == (FORCED_MOVE_CODE, 60)
    assert "court 2-555/2026" in transfer.reference


async def test_a_forced_transfer_leaves_frozen_units_alone_unless_the_order_says_so(session):
    emission = await make_emission(session)
    debtor = await _holder_with(session, emission, 100)
    creditor = await make_party(session)
    freeze = await _freeze(session, emission, debtor.id, 70)

    with pytest.raises(errors.HolderUnitsShort):
        await _force(session, emission, debtor, creditor, 50)

    assert await _units(session, emission, debtor.id) == (30, 70)
    assert await _units(session, emission, creditor.id) == (0, 0)
    assert (await holders.get_freeze(session, freeze.id)).status == "active"


async def test_a_forced_transfer_including_frozen_units_posts_the_freezes_and_ends_them(session):
    emission = await make_emission(session)
    debtor = await _holder_with(session, emission, 100)
    creditor = await make_party(session)
    first = await _freeze(session, emission, debtor.id, 30, order="court A")
    second = await _freeze(session, emission, debtor.id, 50, order="court B")

    forced = await _force(session, emission, debtor, creditor, 100, include_frozen=True)

    assert await _units(session, emission, debtor.id) == (0, 0)
    assert await _units(session, emission, creditor.id) == (100, 0)
    assert (await ledger.get_transfer(session, forced.transfer_id)).code == FORCED_MOVE_CODE
    for moved in (first, second):
        ended = await holders.get_freeze(session, moved.id)
        assert (ended.status, ended.lift_reason) == ("lifted", f"moved by forced transfer {forced.id}")
        assert (await ledger.get_hold(session, moved.hold_id)).status == "posted"


async def test_a_freeze_moved_in_part_stays_frozen_for_the_rest_on_the_same_order(session):
    emission = await make_emission(session)
    debtor = await _holder_with(session, emission, 100)
    creditor = await make_party(session)
    freeze = await _freeze(session, emission, debtor.id, 80, order="court B")

    forced = await _force(session, emission, debtor, creditor, 50, include_frozen=True)

    # 20 available units first, then 30 of the freeze; its other 50 stay frozen.
    assert await _units(session, emission, debtor.id) == (0, 50)
    assert await _units(session, emission, creditor.id) == (50, 0)
    assert (await holders.get_freeze(session, freeze.id)).status == "lifted"
    active = await holders.list_freezes(
        session, asset_code=emission.registration_number, party_id=debtor.id, status="active", before=None, limit=10
    )
    assert [(f.units, f.order_reference, f.basis) for f in active] == [(50, "court B", "court_order")]
    remaining = await ledger.get_hold(session, active[0].hold_id)
    assert (remaining.amount, remaining.status) == (50, "pending")
    moved = await ledger.get_transfer(session, forced.transfer_id)
    assert (moved.code, moved.amount) == (FORCED_MOVE_CODE, 20)


async def test_a_forced_transfer_of_frozen_units_only_is_a_forced_move_too(session):
    emission = await make_emission(session)
    debtor = await _holder_with(session, emission, 40)
    heir = await make_party(session)
    await _freeze(session, emission, debtor.id, 40)

    forced = await _force(session, emission, debtor, heir, 40, include_frozen=True, basis="access_recovery")

    transfer = await ledger.get_transfer(session, forced.transfer_id)
    assert (transfer.code, transfer.amount, transfer.kind) == (FORCED_MOVE_CODE, 40, "post")
    assert await _units(session, emission, heir.id) == (40, 0)


async def test_a_forced_transfer_to_an_unidentified_party_is_refused_and_changes_nothing(session):
    emission = await make_emission(session)
    debtor = await _holder_with(session, emission, 10)
    unidentified = await make_party(session, identified=False)

    with pytest.raises(PartyNotIdentified):
        await _force(session, emission, debtor, unidentified, 5)
    assert await _units(session, emission, debtor.id) == (10, 0)


async def test_a_forced_transfer_to_the_same_party_is_refused(session):
    emission = await make_emission(session)
    debtor = await _holder_with(session, emission, 10)

    with pytest.raises(errors.ForcedTransferInvalid):
        await _force(session, emission, debtor, debtor, 5)
    assert await _units(session, emission, debtor.id) == (10, 0)
