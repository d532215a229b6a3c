"""Parties and their identification (KYC): REQ-14 identified clients only, REQ-15 remote biometrics
through the identification data exchange centre, REQ-16 adults only."""

import uuid
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.adapters.identification import IdentificationCentre
from dfa.platform.audit import service as audit
from dfa.platform.identifiers import decode_iin, is_valid_identification_number, looks_like_bin
from dfa.platform.identity import repository
from dfa.platform.identity.errors import (
    IdentityDataMismatch,
    IdentityNotConfirmed,
    InvalidIdentificationNumber,
    InvalidKycDecision,
    PartyAlreadyExists,
    PartyNotFound,
    PartyNotIdentified,
    RemoteIdentificationNotAllowed,
    UnderAge,
)
from dfa.platform.identity.models import KYC_LEVELS, KYC_STATUSES, BiometricCheck, KycEvent, Party
from dfa.platform.settings import Settings

ADULT_AGE_YEARS = 18  # REQ-16
KYC_METHODS = ("in_person", "remote_biometric", "staff_decision", "system")


def local_today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.timezone)).date()


def age_in_years(birth_date: date, on: date) -> int:
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


def _require_adult(birth_date: date, *, today: date, subject: str) -> None:
    if age_in_years(birth_date, today) < ADULT_AGE_YEARS:
        raise UnderAge(
            f"{subject} is under {ADULT_AGE_YEARS} (born {birth_date.isoformat()}); the platform serves adults only",
            birth_date=birth_date.isoformat(),
        )


def check_identity_data(
    *, kind: str, identifier: str, birth_date: date | None, sex: str | None, today: date
) -> tuple[date | None, str | None]:
    """Validate an IIN/BIN with what it encodes; returns the person's birth date and sex (taken from
    the IIN where it encodes them and none were given).

    Raises InvalidIdentificationNumber, IdentityDataMismatch, UnderAge.
    """
    if not is_valid_identification_number(identifier):
        raise InvalidIdentificationNumber(
            f"{identifier!r} is not a valid 12-digit IIN/BIN (check digit mismatch or not digits)",
            identifier=identifier,
        )
    if kind == "legal_entity":
        if not looks_like_bin(identifier):
            raise InvalidIdentificationNumber(f"{identifier} is an IIN, not a BIN (its fifth digit is not 4, 5 or 6)")
        if birth_date is not None or sex is not None:
            raise IdentityDataMismatch("a legal entity has no date of birth or sex")
        return None, None
    if looks_like_bin(identifier):
        raise InvalidIdentificationNumber(f"{identifier} is a BIN, not an IIN")
    encoded = decode_iin(identifier)
    if encoded is not None:
        if birth_date is not None and birth_date != encoded.birth_date:
            raise IdentityDataMismatch(
                f"the IIN encodes the date of birth {encoded.birth_date.isoformat()}, not {birth_date.isoformat()}"
            )
        if sex is not None and sex != encoded.sex:
            raise IdentityDataMismatch(f"the IIN encodes the sex {encoded.sex}, not {sex}")
        birth_date, sex = encoded.birth_date, encoded.sex
    if birth_date is None:
        raise IdentityDataMismatch("this IIN does not encode a date of birth; give it (REQ-16 needs it)")
    if birth_date > today:
        raise IdentityDataMismatch("the date of birth is in the future")
    _require_adult(birth_date, today=today, subject="the person")
    return birth_date, sex


async def create_party(
    session: AsyncSession,
    *,
    kind: str,
    name: str,
    identifier: str,
    resident: bool,
    settings: Settings,
    birth_date: date | None = None,
    sex: str | None = None,
) -> Party:
    """Register a person (IIN) or legal entity (BIN), not yet identified.

    Raises InvalidIdentificationNumber, IdentityDataMismatch, UnderAge, PartyAlreadyExists.
    """
    birth_date, sex = check_identity_data(
        kind=kind, identifier=identifier, birth_date=birth_date, sex=sex, today=local_today(settings)
    )
    party = await repository.insert_party(
        session,
        party={
            "id": uuid.uuid4(),
            "kind": kind,
            "name": name,
            "identifier": identifier,
            "resident": resident,
            "birth_date": birth_date,
            "sex": sex,
        },
    )
    if party is None:
        raise PartyAlreadyExists(f"a party with identifier {identifier} exists", identifier=identifier)
    return party


async def get_party(session: AsyncSession, party_id: uuid.UUID, *, visible_to: uuid.UUID | None = None) -> Party:
    """The party; with `visible_to`, only when it is that party (others are "not found").

    Raises PartyNotFound.
    """
    party = await repository.get_party(session, party_id)
    if party is None or (visible_to is not None and party.id != visible_to):
        raise PartyNotFound(f"party {party_id} does not exist", party_id=str(party_id))
    return party


async def party_by_identifier(session: AsyncSession, identifier: str) -> Party:
    """Raises PartyNotFound."""
    party = await repository.get_party_by_identifier(session, identifier)
    if party is None:
        raise PartyNotFound(f"no party has the identifier {identifier}")
    return party


async def list_parties(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, visible_to: uuid.UUID | None = None
) -> list[Party]:
    return await repository.list_parties(session, after=after, limit=limit, only=visible_to)


async def ensure_operator_party(session: AsyncSession, *, settings: Settings) -> Party:
    """The operator as a party (owner of its own, client-money and fee accounts), created once."""
    existing = await repository.get_party_by_identifier(session, settings.operator_bin)
    if existing is not None:
        return existing
    party = await create_party(
        session, kind="legal_entity", name=settings.operator_name, identifier=settings.operator_bin,
        resident=True, settings=settings,
    )
    await decide_kyc(
        session, party_id=party.id, status="identified", level="full", method="system",
        reason="the operator itself", actor="system", settings=settings,
    )
    return party


async def decide_kyc(
    session: AsyncSession,
    *,
    party_id: uuid.UUID,
    status: str,
    level: str,
    method: str,
    reason: str,
    actor: str,
    settings: Settings,
    biometric_check_id: uuid.UUID | None = None,
) -> Party:
    """Record an identification decision in the party's history and make it the party's status.

    Raises PartyNotFound, InvalidKycDecision, UnderAge.
    """
    if status not in KYC_STATUSES or level not in KYC_LEVELS or method not in KYC_METHODS:
        raise InvalidKycDecision(f"unknown status {status!r}, level {level!r} or method {method!r}")
    if (status == "identified") != (level != "none"):
        raise InvalidKycDecision("an identified party has a level (simplified or full); any other status has none")
    party = await repository.get_party(session, party_id, for_update=True)
    if party is None:
        raise PartyNotFound(f"party {party_id} does not exist", party_id=str(party_id))
    if status == "identified" and party.birth_date is not None:
        _require_adult(party.birth_date, today=local_today(settings), subject="the person")
    previous = party.kyc_status
    identified_at = datetime.now(UTC) if status == "identified" else None
    await repository.set_kyc(session, party_id=party_id, status=status, level=level, identified_at=identified_at)
    await repository.add_kyc_event(
        session,
        event={
            "party_id": party_id, "status": status, "level": level, "method": method, "reason": reason,
            "actor": actor, "biometric_check_id": biometric_check_id,
        },
    )
    await audit.record(
        session, kind="kyc.changed", actor=actor, subject=str(party_id),
        details={"from": previous, "to": status, "level": level, "method": method},
    )
    return party  # the update above refreshed it in the session


async def kyc_history(session: AsyncSession, party_id: uuid.UUID, *, visible_to: uuid.UUID | None = None) -> list[KycEvent]:
    await get_party(session, party_id, visible_to=visible_to)
    return await repository.kyc_history(session, party_id)


async def check_biometrics(
    session: AsyncSession,
    *,
    centre: IdentificationCentre,
    identifier: str,
    sample: bytes,
    purpose: str,
    resident: bool,
    party_id: uuid.UUID | None,
    expected_birth_date: date | None,
    actor: str,
) -> BiometricCheck:
    """Ask the identification data exchange centre whether `sample` is the person with this IIN and
    record the check (REQ-15: result, time and reference). Raises IdentityNotConfirmed unless it is,
    and ExternalPartyUnavailable when the centre does not answer."""
    verdict = await centre.verify(iin=identifier, sample=sample)
    check = await repository.add_biometric_check(
        session,
        check={
            "id": uuid.uuid4(), "identifier": identifier, "party_id": party_id, "purpose": purpose,
            "outcome": verdict.outcome, "centre_reference": verdict.reference, "resident": resident,
            "checked_at": verdict.checked_at,
        },
    )
    confirmed = verdict.outcome == "match" and (
        expected_birth_date is None or verdict.birth_date is None or verdict.birth_date == expected_birth_date
    )
    await audit.record(
        session, kind="biometric.checked", actor=actor, subject=str(party_id) if party_id else None,
        outcome="success" if confirmed else "failure",
        details={"purpose": purpose, "outcome": verdict.outcome, "reference": verdict.reference},
    )
    if not confirmed:
        raise IdentityNotConfirmed(
            "the identification data exchange centre did not confirm this person's identity",
            reference=verdict.reference,
        )
    return check


async def identify_remotely(
    session: AsyncSession,
    *,
    party_id: uuid.UUID,
    sample: bytes,
    centre: IdentificationCentre,
    actor: str,
    settings: Settings,
    visible_to: uuid.UUID | None = None,
) -> Party:
    """Identify a resident person by a biometric check through the centre (REQ-15).

    Raises PartyNotFound, RemoteIdentificationNotAllowed, IdentityNotConfirmed, ExternalPartyUnavailable.
    """
    party = await get_party(session, party_id, visible_to=visible_to)
    if party.kind != "person" or not party.resident:
        raise RemoteIdentificationNotAllowed(
            "only resident persons are identified remotely; others are identified in person by staff"
        )
    if party.kyc_status in ("identified", "rejected"):
        raise RemoteIdentificationNotAllowed(f"the party is {party.kyc_status}; only staff can change that")
    check = await check_biometrics(
        session, centre=centre, identifier=party.identifier, sample=sample, purpose="identification",
        resident=True, party_id=party.id, expected_birth_date=party.birth_date, actor=actor,
    )
    return await decide_kyc(
        session, party_id=party.id, status="identified", level="full", method="remote_biometric",
        reason="biometric check by the identification data exchange centre", actor=actor, settings=settings,
        biometric_check_id=check.id,
    )


def require_may_operate(party: Party, *, settings: Settings) -> None:
    """Raises PartyNotIdentified or UnderAge unless the party may hold, pay and receive (REQ-14, REQ-16)."""
    if party.kyc_status != "identified":
        raise PartyNotIdentified(
            f"party {party.id} is {party.kyc_status}; only identified parties may hold accounts, trade, pay or receive",
            party_id=str(party.id),
        )
    if party.birth_date is not None:
        _require_adult(party.birth_date, today=local_today(settings), subject=f"party {party.id}")


async def ensure_may_operate(session: AsyncSession, party_id: uuid.UUID, *, settings: Settings) -> Party:
    """The party, when it is identified and (for a person) an adult.

    Raises PartyNotFound, PartyNotIdentified, UnderAge.
    """
    party = await get_party(session, party_id)
    require_may_operate(party, settings=settings)
    return party
