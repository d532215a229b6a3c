"""Registered emissions: the registration number (REQ-23) and the issuance that registration makes (REQ-24).

An emission's registration number is `<NBK number>-<year>-<serial>`: the operator's National Bank
registration number, the year of registration, and a six-digit (or longer) serial drawn from a
PostgreSQL sequence shared by all years. A sequence never hands out a value twice, also when the
registration that drew it rolls back, so a number is never reused, not even after a refusal; the
unique index on emissions is the last word. The number is also the emission's ledger asset code and
the token contract's registration number on chain.
"""

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import Application, Emission
from dfa.issuance.repository import emissions as repository
from dfa.issuance.service import underlying
from dfa.ledger import service as ledger
from dfa.platform.audit import service as audit
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings

NAMESPACE = uuid.UUID("8d1f4c2a-6e3b-4a57-9c0d-2b7e5f1a9d36")
NUMBER_MAX_LENGTH = 50
# What a ledger asset code may be (and so a registration number).
NUMBER_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,49}")


def derived_id(parent: object, purpose: str) -> uuid.UUID:
    """A deterministic id for one step of `parent`: a retry of the step hits the same ledger id."""
    return uuid.uuid5(NAMESPACE, f"{parent}:{purpose}")


def registration_number(prefix: str, year: int, serial: int) -> str:
    """Raises RegistrationNumberInvalid when the operator's number cannot prefix a valid emission number."""
    number = f"{prefix}-{year:04d}-{serial:06d}"
    if len(number) > NUMBER_MAX_LENGTH or not NUMBER_PATTERN.fullmatch(number):
        raise errors.RegistrationNumberInvalid(
            f"the operator's National Bank registration number {prefix!r} cannot prefix an emission number: "
            f"{number!r} must be at most {NUMBER_MAX_LENGTH} capital letters, digits, '.', '_' or '-'"
        )
    return number


async def issue(session: AsyncSession, *, application: Application, actor: str, settings: Settings) -> Emission:
    """Register the application's emission: draw its number, create its ledger asset, and issue the whole
    volume into the issuer's placement (available) account against the emission's issued account. The
    chain mirror deploys the token contract and mints on chain from the ledger's outbox (REQ-24).

    Raises RegistrationNumberInvalid.
    """
    today = parties.local_today(settings)
    number = registration_number(settings.operator_nbk_registration_number, today.year, await repository.next_serial(session))
    asset = await ledger.create_asset(session, code=number, kind="dfa", scale=0, name=application.name)
    issued = await ledger.open_account(
        session, owner_party_id=application.issuer_party_id, asset_code=number, kind="issued", settings=settings
    )
    placement = await ledger.open_account(
        session, owner_party_id=application.issuer_party_id, asset_code=number, kind="available", settings=settings
    )
    await ledger.post_transfer(
        session,
        transfer=ledger.TransferSpec(
            derived_id(asset.id, "issuance"), issued.id, placement.id, application.units, reference=f"issuance {number}"
        ),
    )
    emission = await repository.insert_emission(
        session,
        values={
            "asset_id": asset.id,
            "registration_number": number,
            "application_id": application.id,
            "issuer_party_id": application.issuer_party_id,
            "status": "registered",
            "units": application.units,
            "nominal": application.nominal,
            "registered_by": actor,
        },
    )
    await audit.record(
        session, kind="emission.issued", actor=actor, subject=number,
        details={"application_id": str(application.id), "units": application.units},
    )
    return emission


async def get_emission(
    session: AsyncSession, registration_number: str, *, visible_to: uuid.UUID | None = None, for_update: bool = False
) -> Emission:
    """The emission; with `visible_to`, only when that party is its issuer (others are "not found").

    Raises EmissionNotFound.
    """
    emission = await repository.get_emission_by_number(session, registration_number, for_update=for_update)
    if emission is None or (visible_to is not None and emission.issuer_party_id != visible_to):
        raise errors.EmissionNotFound(f"no emission {registration_number}", registration_number=registration_number)
    return emission


async def list_emissions(
    session: AsyncSession, *, issuer_party_id: uuid.UUID | None, after: int | None, limit: int
) -> list[Emission]:
    return await repository.list_emissions(session, issuer_party_id=issuer_party_id, after=after, limit=limit)


@dataclass(frozen=True)
class MonitoredEmission:
    """An emission as daily monitoring sees it (REQ-30): its volume, terms, issuer and underlying asset.
    `custodian` is None for an emission recorded as having no underlying asset (REQ-26)."""

    asset_id: int
    registration_number: str
    issuer_party_id: uuid.UUID
    status: str
    units: int
    cancelled_units: int
    platform_units: int
    nominal: int
    issuer_name: str
    issuer_bin: str
    coverage_ratio: Decimal | None
    no_underlying_reason: str | None
    custodian: str | None
    custodian_reference: str | None

    @property
    def outstanding_units(self) -> int:
        """Units not cancelled: those held here and those moved to trading platforms (REQ-46)."""
        return self.units - self.cancelled_units

    @property
    def required_value(self) -> int:
        """What the underlying asset must be worth now, in tiyn: outstanding units times nominal times
        the required ratio, rounded up to the tiyn (REQ-30); 0 without an underlying asset."""
        if self.coverage_ratio is None:
            return 0
        return underlying.covering_value(units=self.outstanding_units, nominal=self.nominal, ratio=self.coverage_ratio)


async def monitored_emissions(session: AsyncSession) -> list[MonitoredEmission]:
    """Every emission with units outstanding, in asset order."""
    return [MonitoredEmission(**row._mapping) for row in await repository.monitored_emissions(session)]
