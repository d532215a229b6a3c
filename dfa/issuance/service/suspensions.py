"""Trading suspensions (REQ-62): a recorded event of the issuer — reorganisation, liquidation,
compulsory liquidation, bankruptcy, or an arrest of more than half of its assets — suspends trading in
every emission of that issuer, those registered later included; the operator's own decision suspends
one emission. Suspending cancels the emission's open orders and fails its pending instructions, every
hold released. Lifting a suspension resumes trading in each emission no other active suspension covers.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import Emission, Suspension
from dfa.issuance.repository import holders as repository
from dfa.issuance.service import emissions, issuers
from dfa.platform import service as outbox
from dfa.platform.access import Role
from dfa.platform.audit import service as audit
from dfa.platform.errors import invariant
from dfa.settlement.service import orders

ISSUER_GROUNDS = ("liquidation", "reorganisation", "compulsory_liquidation", "bankruptcy", "asset_arrest")
ARREST_THRESHOLD = Decimal("0.5")
STAFF_AUDIENCE = (Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER)


def _trading_reason(suspension: Suspension) -> str:
    return f"{suspension.ground.replace('_', ' ')} ({suspension.reference})"


async def _check_ground(
    session: AsyncSession, *, ground: str, issuer_party_id: uuid.UUID | None, registration_number: str | None,
    arrested_share: Decimal | None,
) -> tuple[uuid.UUID, Emission | None]:
    """The issuer and (for the operator's decision) the emission a suspension on this ground covers.
    Raises SuspensionInvalid, ArrestBelowHalf, IssuerNotFound, EmissionNotFound."""
    if (ground == "asset_arrest") != (arrested_share is not None):
        raise errors.SuspensionInvalid("the arrested share of the issuer's assets is given for an arrest, and only then")
    if arrested_share is not None and arrested_share <= ARREST_THRESHOLD:
        raise errors.ArrestBelowHalf(
            f"an arrest of {arrested_share:%} of the issuer's assets does not suspend trading; more than 50% does",
            arrested_share=str(arrested_share),
        )
    if ground == "operator_decision":
        if registration_number is None:
            raise errors.SuspensionInvalid("the operator's decision suspends one emission: name it")
        emission = await emissions.get_emission(session, registration_number)
        if issuer_party_id not in (None, emission.issuer_party_id):
            raise errors.SuspensionInvalid(f"{registration_number} is not an emission of issuer {issuer_party_id}")
        return emission.issuer_party_id, emission
    if registration_number is not None:
        raise errors.SuspensionInvalid("an issuer's event suspends every emission of the issuer: name none")
    if issuer_party_id is None:
        raise errors.IssuerNotFound("an issuer's event names the issuer")
    await issuers.get_issuer(session, issuer_party_id)
    return issuer_party_id, None


async def suspend(
    session: AsyncSession, *, ground: str, issuer_party_id: uuid.UUID | None, registration_number: str | None,
    arrested_share: Decimal | None, reference: str, details: str, actor: str,
) -> Suspension:
    """Record a ground for suspending trading and suspend every emission it covers; staff are told.

    Raises SuspensionInvalid, ArrestBelowHalf, IssuerNotFound, EmissionNotFound.
    """
    invariant(ground in (*ISSUER_GROUNDS, "operator_decision"), f"unknown ground {ground!r}")
    issuer, emission = await _check_ground(
        session, ground=ground, issuer_party_id=issuer_party_id, registration_number=registration_number,
        arrested_share=arrested_share,
    )
    suspension = await repository.insert_suspension(
        session,
        values={
            "id": uuid.uuid4(), "issuer_party_id": issuer, "asset_id": emission.asset_id if emission else None,
            "ground": ground, "arrested_share": arrested_share, "reference": reference, "details": details,
            "recorded_by": actor,
        },
    )
    covered = [emission] if emission else await repository.emissions_of_issuer(session, issuer)
    for each in covered:
        await orders.suspend(session, asset_code=each.registration_number, reason=_trading_reason(suspension), actor=actor)
    numbers = [each.registration_number for each in covered]
    await audit.record(
        session, kind="suspension.recorded", actor=actor, subject=str(suspension.id),
        details={"ground": ground, "issuer_party_id": str(issuer), "reference": reference, "emissions": numbers},
    )
    await outbox.notify(
        session, audience=STAFF_AUDIENCE, kind="trading-suspended", suspension_id=str(suspension.id), ground=ground,
        issuer_party_id=str(issuer), emissions=numbers,
    )
    return suspension


async def lift(session: AsyncSession, *, suspension_id: uuid.UUID, reason: str, actor: str) -> Suspension:
    """Lift a suspension and resume trading in each emission it covered that no other active suspension
    covers; staff are told.

    Raises SuspensionNotFound, SuspensionAlreadyLifted.
    """
    suspension = await repository.get_suspension(session, suspension_id, for_update=True)
    if suspension is None:
        raise errors.SuspensionNotFound(f"no trading suspension {suspension_id}")
    if suspension.lifted_at is not None:
        raise errors.SuspensionAlreadyLifted(f"trading suspension {suspension_id} was lifted already")
    suspension.lifted_by, suspension.lifted_at, suspension.lift_reason = actor, datetime.now(UTC), reason
    await session.flush()
    covered = [
        each for each in await repository.emissions_of_issuer(session, suspension.issuer_party_id)
        if suspension.asset_id in (None, each.asset_id)
    ]
    resumed = []
    for each in covered:
        if not await repository.active_suspensions_covering(session, each):
            await orders.resume(session, asset_code=each.registration_number, reason=reason, actor=actor)
            resumed.append(each.registration_number)
    await audit.record(
        session, kind="suspension.lifted", actor=actor, subject=str(suspension_id),
        details={"reason": reason, "resumed": resumed},
    )
    await outbox.notify(
        session, audience=STAFF_AUDIENCE, kind="trading-resumed", suspension_id=str(suspension_id),
        issuer_party_id=str(suspension.issuer_party_id), emissions=resumed,
    )
    return suspension


async def get_suspension(session: AsyncSession, suspension_id: uuid.UUID, *, visible_to: uuid.UUID | None = None) -> Suspension:
    """The suspension; with `visible_to`, only when that party is its issuer. Raises SuspensionNotFound."""
    suspension = await repository.get_suspension(session, suspension_id)
    if suspension is None or (visible_to is not None and suspension.issuer_party_id != visible_to):
        raise errors.SuspensionNotFound(f"no trading suspension {suspension_id}")
    return suspension


async def list_suspensions(
    session: AsyncSession, *, issuer_party_id: uuid.UUID | None, active: bool | None, before: datetime | None,
    limit: int,
) -> list[Suspension]:
    """Suspensions, newest first."""
    return await repository.list_suspensions(
        session, issuer_party_id=issuer_party_id, active=active, before=before, limit=limit
    )


async def suspended_emissions_of(session: AsyncSession, issuer_party_id: uuid.UUID) -> list[Emission]:
    """The issuer's emissions an active suspension covers."""
    return await repository.suspended_emissions_of(session, issuer_party_id)


async def apply_active_suspensions(session: AsyncSession, *, emission: Emission, actor: str) -> bool:
    """Suspend trading in a newly registered emission when an active event of its issuer suspends all
    of the issuer's emissions; returns whether it did."""
    covering = await repository.active_suspensions_covering(session, emission)
    if not covering:
        return False
    await orders.suspend(
        session, asset_code=emission.registration_number, reason=_trading_reason(covering[0]), actor=actor
    )
    return True
