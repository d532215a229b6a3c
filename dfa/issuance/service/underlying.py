"""Underlying assets (REQ-26, REQ-27, REQ-70) and their initial certification (REQ-28, REQ-29).

An underlying asset is what backs an emission, kept by a custodian organisation under the custodian's
own reference. Certifying it asks the custodian for a statement and records the four findings —
existence, legal status, encumbrances, market value — with the source and time. For an application the
value must also cover the issue volume at the application's coverage ratio. A certification that fails
is recorded all the same: it is the evidence that the asset was checked and why it did not pass.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.custodian import Custodian, CustodianStatement
from dfa.issuance.models import UNDERLYING_KINDS, Application, Certification, Document, UnderlyingAsset
from dfa.issuance.repository import issuers as issuers_repository
from dfa.issuance.repository import underlying as repository
from dfa.issuance.service.issuers import get_issuer
from dfa.platform.audit import service as audit
from dfa.platform.errors import invariant
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings

DESCRIPTION_MAX_LENGTH = 1_000


# --- underlying assets ------------------------------------------------------------------------------------


async def register_underlying_asset(
    session: AsyncSession,
    *,
    issuer_party_id: uuid.UUID,
    kind: str,
    description: str,
    custodian: str,
    custodian_reference: str,
    quantity: int,
    unit: str,
    actor: str,
    visible_to: uuid.UUID | None = None,
) -> UnderlyingAsset:
    """Record an asset of the issuer's as its custodian keeps it. One custodian's reference names one asset.

    Raises IssuerNotFound, UnderlyingAssetAlreadyRegistered.
    """
    invariant(kind in UNDERLYING_KINDS and quantity > 0, "an underlying asset has a known kind and a positive quantity")
    await get_issuer(session, issuer_party_id, visible_to=visible_to)
    asset = await repository.insert_underlying_asset(
        session,
        values={
            "id": uuid.uuid4(), "issuer_party_id": issuer_party_id, "kind": kind, "description": description,
            "custodian": custodian, "custodian_reference": custodian_reference, "quantity": quantity, "unit": unit,
            "created_by": actor,
        },
    )
    if asset is None:
        raise errors.UnderlyingAssetAlreadyRegistered(
            f"the asset {custodian_reference!r} of custodian {custodian} is registered already",
            custodian=custodian, custodian_reference=custodian_reference,
        )
    await audit.record(
        session, kind="underlying_asset.registered", actor=actor, subject=str(asset.id),
        details={"issuer_party_id": str(issuer_party_id), "custodian": custodian,
                 "custodian_reference": custodian_reference},
    )
    return asset


async def get_underlying_asset(
    session: AsyncSession, underlying_asset_id: uuid.UUID, *, visible_to: uuid.UUID | None = None
) -> UnderlyingAsset:
    """The asset; with `visible_to`, only when it is that party's. Raises UnderlyingAssetNotFound."""
    asset = await repository.get_underlying_asset(session, underlying_asset_id)
    if asset is None or (visible_to is not None and asset.issuer_party_id != visible_to):
        raise errors.UnderlyingAssetNotFound(f"no underlying asset {underlying_asset_id}")
    return asset


async def list_underlying_assets(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, limit: int, visible_to: uuid.UUID | None = None
) -> list[UnderlyingAsset]:
    """The issuer's underlying assets, oldest first. Raises IssuerNotFound."""
    await get_issuer(session, issuer_party_id, visible_to=visible_to)
    return await repository.list_underlying_assets(session, issuer_party_id=issuer_party_id, limit=limit)


@dataclass(frozen=True)
class UnderlyingAssetFile:
    """An asset with the documents that evidence it and its certifications, newest first."""

    asset: UnderlyingAsset
    documents: list[Document]
    certifications: list[Certification]


async def underlying_asset_file(
    session: AsyncSession, underlying_asset_id: uuid.UUID, *, limit: int, visible_to: uuid.UUID | None = None
) -> UnderlyingAssetFile:
    """Raises UnderlyingAssetNotFound."""
    asset = await get_underlying_asset(session, underlying_asset_id, visible_to=visible_to)
    documents = await issuers_repository.list_documents(session, underlying_asset_id=asset.id, limit=limit)
    certifications = await repository.list_certifications(session, underlying_asset_id=asset.id, limit=limit)
    return UnderlyingAssetFile(asset, documents, certifications)


# --- certification (REQ-28, REQ-29) ---------------------------------------------------------------------


def required_value(application: Application) -> int:
    """What the underlying asset must be worth for the application, in tiyn: the issue volume (units
    times nominal) times the coverage ratio, rounded up to the tiyn (REQ-29)."""
    invariant(application.coverage_ratio is not None, "an application without an underlying asset has no ratio")
    return covering_value(units=application.units, nominal=application.nominal, ratio=application.coverage_ratio)


def covering_value(*, units: int, nominal: int, ratio: Decimal) -> int:
    """The value in tiyn that covers `units` of `nominal` tiyn at `ratio`, rounded up to the tiyn."""
    return int((Decimal(units) * Decimal(nominal) * ratio).to_integral_value(rounding=ROUND_CEILING))


def _kzt(tiyn: int) -> str:
    return f"{tiyn // 100:,}.{tiyn % 100:02d} KZT"


def findings(
    statement: CustodianStatement, *, custodian: str, reference: str, required: int | None,
    coverage_ratio: Decimal | None, today: date, max_age_days: int,
) -> list[str]:
    """Why the statement does not certify the asset: one human reason per failed check, none when it
    passes. An asset the custodian does not keep fails on that alone — the other checks presuppose it."""
    if not statement.exists:
        return [f"the custodian {custodian} keeps no asset under reference {reference!r}"]
    reasons = []
    if statement.legal_status != "clear":
        reasons.append(f"the custodian states the legal status as {statement.legal_status}, not clear")
    if statement.encumbered:
        reasons.append(f"encumbered: {'; '.join(statement.encumbrances)}")
    if statement.market_value is None or statement.valued_on is None:
        reasons.append("the custodian states no market value")
        return reasons
    age_days = (today - statement.valued_on).days
    if age_days > max_age_days:
        # A valuation this old is not a market value to rely on (the same age limit as a certification's).
        reasons.append(f"the market value is as of {statement.valued_on.isoformat()}, more than {max_age_days} days ago")
    if required is not None and statement.market_value < required:
        reasons.append(
            f"the market value {_kzt(statement.market_value)} is {_kzt(required - statement.market_value)} short of "
            f"the {_kzt(required)} required at coverage ratio {coverage_ratio.normalize():f}"
        )
    return reasons


async def certify(
    session: AsyncSession,
    *,
    underlying_asset_id: uuid.UUID,
    application: Application | None = None,
    custodian: Custodian,
    actor: str,
    settings: Settings,
) -> Certification:
    """Obtain the custodian's statement on the asset and record the certification: its four findings, the
    value required for `application` (when given), the source and time, whether it passed, and why not.
    A failed certification is recorded, not refused; nothing is recorded when the custodian does not answer.

    Raises UnderlyingAssetNotFound, CertificationApplicationMismatch, ExternalPartyUnavailable.
    """
    asset = await get_underlying_asset(session, underlying_asset_id)
    if application is not None and application.underlying_asset_id != asset.id:
        raise errors.CertificationApplicationMismatch(
            f"application {application.id} is not backed by underlying asset {asset.id}"
        )
    statement = await custodian.statement(custodian=asset.custodian, reference=asset.custodian_reference)
    required = required_value(application) if application is not None else None
    reasons = findings(
        statement, custodian=asset.custodian, reference=asset.custodian_reference, required=required,
        coverage_ratio=application.coverage_ratio if application is not None else None,
        today=parties.local_today(settings), max_age_days=settings.certification_max_age_days,
    )
    certification = await repository.insert_certification(
        session,
        values={
            "id": uuid.uuid4(), "underlying_asset_id": asset.id,
            "application_id": application.id if application is not None else None,
            "exists": statement.exists, "legal_status": statement.legal_status, "encumbered": statement.encumbered,
            "encumbrances": "\n".join(statement.encumbrances) or None, "quantity": statement.quantity,
            "market_value": statement.market_value, "valued_on": statement.valued_on, "required_value": required,
            "source": f"{asset.custodian}:{statement.statement_id}", "obtained_at": datetime.now(UTC),
            "officer": actor, "passed": not reasons, "findings": reasons,
        },
    )
    await audit.record(
        session, kind="underlying_asset.certified", actor=actor, subject=str(asset.id),
        outcome="success" if certification.passed else "failure",
        details={"certification_id": str(certification.id), "source": certification.source,
                 "application_id": str(application.id) if application is not None else None, "findings": reasons},
    )
    return certification


async def request_certification(
    session: AsyncSession,
    *,
    underlying_asset_id: uuid.UUID,
    application_id: uuid.UUID | None,
    custodian: Custodian,
    actor: str,
    settings: Settings,
) -> Certification:
    """`certify` for the application named by id, if any.

    Raises ApplicationNotFound, UnderlyingAssetNotFound, CertificationApplicationMismatch,
    ExternalPartyUnavailable.
    """
    application = None
    if application_id is not None:
        application = await repository.get_application(session, application_id)
        if application is None:
            raise errors.ApplicationNotFound(f"no emission application {application_id}")
    return await certify(
        session, underlying_asset_id=underlying_asset_id, application=application, custodian=custodian, actor=actor,
        settings=settings,
    )


async def list_certifications(
    session: AsyncSession, *, underlying_asset_id: uuid.UUID, limit: int, visible_to: uuid.UUID | None = None
) -> list[Certification]:
    """The asset's certifications, newest first. Raises UnderlyingAssetNotFound."""
    await get_underlying_asset(session, underlying_asset_id, visible_to=visible_to)
    return await repository.list_certifications(session, underlying_asset_id=underlying_asset_id, limit=limit)


async def latest_certification(
    session: AsyncSession, *, underlying_asset_id: uuid.UUID, application_id: uuid.UUID | None
) -> Certification | None:
    """The newest certification of the asset made for the application (for None: made for no application)."""
    return await repository.latest_certification(
        session, underlying_asset_id=underlying_asset_id, application_id=application_id
    )
