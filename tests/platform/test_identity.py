"""Parties and identification: IIN/BIN with what they encode, adults only (REQ-16), identified
clients only (REQ-14), remote biometric identification (REQ-15), and the gate before operations (REQ-18)."""

import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from dfa.ledger import service as ledger
from dfa.platform.adapters.antifraud import DEMO_WATCH_LIST, AntiFraudSimulator, WatchList
from dfa.platform.adapters.identification import DEMO_REGISTRY, IdentificationCentreSimulator, Registry, demo_sample
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.identifiers import check_digit
from dfa.platform.identity.errors import (
    AntiFraudMatch,
    IdentityDataMismatch,
    IdentityNotConfirmed,
    InvalidIdentificationNumber,
    InvalidKycDecision,
    PartyNotFound,
    PartyNotIdentified,
    RemoteIdentificationNotAllowed,
    UnderAge,
)
from dfa.platform.identity.models import BiometricCheck
from dfa.platform.identity.service import parties, screening
from tests.factories import SETTINGS, make_asset, make_party, new_identifier

FLAGGED_PERSON = "770515300019"  # on the simulator's demo watch list
ENROLLED_PERSON = "920712400019"  # enrolled in the identification centre simulator's demo registry


def iin_born(born: date, *, female: bool = False) -> str:
    """A valid IIN of a person born on `born`."""
    century = {1800: 1, 1900: 3, 2000: 5}[born.year // 100 * 100] + female
    for serial in range(10_000):
        body = f"{born:%y%m%d}{century}{serial:04d}"
        digit = check_digit(body)
        if digit is not None:
            return body + str(digit)
    raise AssertionError("no serial gives a check digit")


def today() -> date:
    return parties.local_today(SETTINGS)


async def create(session, **fields):
    defaults = {"kind": "person", "name": "Someone", "resident": True, "settings": SETTINGS}
    return await parties.create_party(session, **{**defaults, **fields})


async def test_a_persons_birth_date_and_sex_come_from_the_iin(session):
    party = await create(session, identifier=iin_born(date(1990, 5, 17), female=True))
    assert (party.birth_date, party.sex, party.kyc_status, party.kyc_level) == (date(1990, 5, 17), "female", "pending", "none")


async def test_a_birth_date_or_sex_contradicting_the_iin_is_a_clear_422(session):
    iin = iin_born(date(1990, 5, 17))
    with pytest.raises(IdentityDataMismatch, match="1990-05-17"):
        await create(session, identifier=iin, birth_date=date(1990, 5, 18))
    with pytest.raises(IdentityDataMismatch, match="male"):
        await create(session, identifier=iin, sex="female")


async def test_an_iin_is_not_accepted_as_a_bin_nor_a_bin_as_an_iin(session):
    with pytest.raises(InvalidIdentificationNumber, match="not a BIN"):
        await create(session, kind="legal_entity", identifier=new_identifier(kind="person"))
    with pytest.raises(InvalidIdentificationNumber, match="not an IIN"):
        await create(session, identifier=new_identifier(kind="legal_entity"))


async def test_a_wrong_check_digit_is_refused(session):
    valid = new_identifier()
    wrong = valid[:11] + str((int(valid[11]) + 1) % 10)
    with pytest.raises(InvalidIdentificationNumber, match="check digit"):
        await create(session, identifier=wrong)


async def test_req16_a_person_under_18_is_refused_onboarding(session):
    seventeen = today().replace(year=today().year - 18) + timedelta(days=1)
    with pytest.raises(UnderAge, match="under 18"):
        await create(session, identifier=iin_born(seventeen))


async def test_req16_a_person_turning_18_today_is_accepted(session):
    born = today().replace(year=today().year - 18) if (today().month, today().day) != (2, 29) else date(today().year - 18, 3, 1)
    party = await create(session, identifier=iin_born(born))
    assert party.birth_date == born


async def test_req14_an_unidentified_party_cannot_hold_an_account(session):
    asset = await make_asset(session)
    pending = await make_party(session, identified=False)
    with pytest.raises(PartyNotIdentified):
        await ledger.open_account(session, owner_party_id=pending.id, asset_code=asset.code, kind="available", settings=SETTINGS)


async def test_the_kyc_history_records_every_decision_with_actor_and_reason(session):
    party = await make_party(session, identified=False)
    await parties.decide_kyc(session, party_id=party.id, status="identified", level="full", method="in_person",
                             reason="passport seen", actor="officer-1", settings=SETTINGS)
    suspended = await parties.decide_kyc(session, party_id=party.id, status="suspended", level="none",
                                         method="staff_decision", reason="document expired", actor="officer-2", settings=SETTINGS)

    history = await parties.kyc_history(session, party.id)
    assert [(e.status, e.actor, e.reason) for e in history] == [
        ("identified", "officer-1", "passport seen"), ("suspended", "officer-2", "document expired"),
    ]
    assert suspended.kyc_status == "suspended" and suspended.identified_at is None
    with pytest.raises(PartyNotIdentified, match="suspended"):
        await parties.ensure_may_operate(session, party.id, settings=SETTINGS)


async def test_an_identified_party_needs_a_level_and_others_none(session):
    party = await make_party(session, identified=False)
    with pytest.raises(InvalidKycDecision):
        await parties.decide_kyc(session, party_id=party.id, status="identified", level="none", method="in_person",
                                 reason="x", actor="a", settings=SETTINGS)


def centre() -> IdentificationCentreSimulator:
    return IdentificationCentreSimulator(Registry.load(DEMO_REGISTRY))


async def test_req15_a_resident_is_identified_remotely_by_a_matching_biometric_check(session):
    party = await make_party(session, identified=False, identifier=ENROLLED_PERSON)
    simulator = centre()

    identified = await parties.identify_remotely(
        session, party_id=party.id, sample=demo_sample(ENROLLED_PERSON), centre=simulator, actor="self", settings=SETTINGS
    )

    assert (identified.kyc_status, identified.kyc_level) == ("identified", "full")
    history = await parties.kyc_history(session, party.id)
    assert history[-1].method == "remote_biometric" and history[-1].biometric_check_id is not None
    check = await session.get(BiometricCheck, history[-1].biometric_check_id)
    assert (check.outcome, check.purpose, check.resident) == ("match", "identification", True)
    assert check.centre_reference


async def test_req15_a_non_matching_sample_is_recorded_and_leaves_the_party_unidentified(session):
    party = await make_party(session, identified=False, identifier=ENROLLED_PERSON)
    with pytest.raises(IdentityNotConfirmed):
        await parties.identify_remotely(
            session, party_id=party.id, sample=b"someone else's face", centre=centre(), actor="self", settings=SETTINGS
        )
    checks = await session.scalar(select(func.count()).select_from(BiometricCheck).where(BiometricCheck.party_id == party.id))
    assert checks == 1
    assert (await parties.get_party(session, party.id)).kyc_status == "pending"


async def test_a_non_resident_is_not_identified_remotely(session):
    party = await make_party(session, identified=False, resident=False)
    with pytest.raises(RemoteIdentificationNotAllowed, match="in person"):
        await parties.identify_remotely(session, party_id=party.id, sample=b"x", centre=centre(), actor="self", settings=SETTINGS)


async def test_the_identification_centre_being_down_identifies_no_one(session):
    party = await make_party(session, identified=False, identifier=ENROLLED_PERSON)
    simulator = centre()
    simulator.down = True
    with pytest.raises(ExternalPartyUnavailable):
        await parties.identify_remotely(
            session, party_id=party.id, sample=demo_sample(ENROLLED_PERSON), centre=simulator, actor="self", settings=SETTINGS
        )


def antifraud() -> AntiFraudSimulator:
    return AntiFraudSimulator(WatchList.load(DEMO_WATCH_LIST))


def movement(sender, recipient) -> screening.Movement:
    return screening.Movement(sender_party_id=sender.id, recipient_party_id=recipient.id, asset="KZT", amount=100)


async def test_req18_both_parties_are_screened_before_an_operation(session):
    alice, bob = await make_party(session), await make_party(session)
    simulator = antifraud()
    references = await screening.screen_operation(
        session, operation="transfer", movements=[movement(alice, bob)], centre=simulator, actor="t", settings=SETTINGS
    )
    assert len(references) == 1
    [request] = simulator.requests
    assert (request.sender.identifier, request.recipient.identifier) == (alice.identifier, bob.identifier)


@pytest.mark.parametrize("flagged_role", ["sender", "recipient"])
async def test_req18_a_watch_list_match_on_either_side_refuses_the_operation(session, flagged_role):
    flagged, clean = await make_party(session, identifier=FLAGGED_PERSON), await make_party(session)
    pair = (flagged, clean) if flagged_role == "sender" else (clean, flagged)
    with pytest.raises(AntiFraudMatch, match=flagged_role) as refusal:
        await screening.screen_operation(
            session, operation="transfer", movements=[movement(*pair)], centre=antifraud(), actor="t", settings=SETTINGS
        )
    assert refusal.value.security_event["kind"] == "antifraud.match"


async def test_req18_the_anti_fraud_centre_down_refuses_the_operation(session):
    simulator = antifraud()
    simulator.down = True
    alice, bob = await make_party(session), await make_party(session)
    with pytest.raises(ExternalPartyUnavailable, match="refused") as refusal:
        await screening.screen_operation(
            session, operation="transfer", movements=[movement(alice, bob)], centre=simulator, actor="t", settings=SETTINGS
        )
    assert refusal.value.security_event["kind"] == "antifraud.unavailable"


async def test_a_movement_within_one_party_needs_no_screening_but_an_identified_party(session):
    simulator = antifraud()
    simulator.down = True
    alice = await make_party(session)
    assert await screening.screen_operation(
        session, operation="hold", movements=[movement(alice, alice)], centre=simulator, actor="t", settings=SETTINGS
    ) == []
    pending = await make_party(session, identified=False)
    with pytest.raises(PartyNotIdentified):
        await screening.screen_operation(
            session, operation="hold", movements=[movement(pending, pending)], centre=simulator, actor="t", settings=SETTINGS
        )


async def test_an_unknown_party_cannot_be_screened(session):
    alice = await make_party(session)
    ghost = type("Ghost", (), {"id": uuid.uuid4()})()
    with pytest.raises(PartyNotFound):
        await screening.screen_operation(
            session, operation="transfer", movements=[movement(alice, ghost)], centre=antifraud(), actor="t", settings=SETTINGS
        )


async def test_a_kyc_change_is_a_security_event_naming_both_statuses(session):
    from dfa.platform.audit import service as audit

    party = await make_party(session, identified=False)
    await parties.decide_kyc(session, party_id=party.id, status="identified", level="simplified", method="in_person",
                             reason="id card", actor="officer-9", settings=SETTINGS)
    [event] = await audit.search(session, kind="kyc.changed", subject=str(party.id), limit=5)
    assert event.details == {"from": "pending", "to": "identified", "level": "simplified", "method": "in_person"}
    assert event.actor == "officer-9"


@given(born=st.dates(min_value=date(1850, 1, 1), max_value=date(2099, 12, 31)), female=st.booleans())
def test_an_iin_always_gives_back_the_birth_date_and_sex_it_was_made_from(born, female):
    from dfa.platform.identifiers import decode_iin, is_valid_identification_number, looks_like_bin

    iin = iin_born(born, female=female)
    decoded = decode_iin(iin)
    assert is_valid_identification_number(iin) and not looks_like_bin(iin)
    assert (decoded.birth_date, decoded.sex) == (born, "female" if female else "male")
