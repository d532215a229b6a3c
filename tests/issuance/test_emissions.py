"""Issuance by registration: the number (REQ-23) and the volume issued into the issuer's account (REQ-24)."""

import pytest

from dfa.issuance import errors
from dfa.issuance.service import emissions
from dfa.ledger import service as ledger
from tests.factories import SETTINGS
from tests.issuance.factories import make_emission


async def test_registration_issues_the_whole_volume_into_the_issuers_placement_account_req_24(session):
    emission = await make_emission(session, units=5_000)
    asset = await ledger.get_asset(session, emission.registration_number)
    placement = await ledger.find_account(session, owner_party_id=emission.issuer_party_id, asset_id=asset.id, kind="available")
    issued = await ledger.find_account(session, owner_party_id=emission.issuer_party_id, asset_id=asset.id, kind="issued")
    assert (placement.balance, issued.balance) == (5_000, -5_000)


async def test_registration_numbers_start_with_the_operators_nbk_number_and_are_never_reused_req_23(session):
    first = await make_emission(session)
    second = await make_emission(session)
    prefix = f"{SETTINGS.operator_nbk_registration_number}-"
    assert first.registration_number.startswith(prefix) and second.registration_number.startswith(prefix)
    assert first.registration_number != second.registration_number
    assert len(first.registration_number) <= 50


def test_an_operator_number_that_cannot_prefix_an_emission_number_is_refused_req_23():
    with pytest.raises(errors.RegistrationNumberInvalid):
        emissions.registration_number("X" * 40, 2026, 1)
    with pytest.raises(errors.RegistrationNumberInvalid):
        emissions.registration_number("kz dfa", 2026, 1)
    assert emissions.registration_number("KZDFA0001", 2026, 17) == "KZDFA0001-2026-000017"
