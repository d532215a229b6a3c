"""Breaches: opened by the run that finds one, carried while later runs still find it, cleared by the first
run that finds its subject right again; acknowledged by compliance officers. Coverage history per emission."""

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.service import emissions as issuance_emissions
from dfa.platform.audit import service as audit
from dfa.reconciliation import errors
from dfa.reconciliation.models import Breach
from dfa.reconciliation.repository import breaches as repository
from dfa.reconciliation.repository import reports as reports_repository
from dfa.reconciliation.service.reports import checked_comment

PLATFORM_SUBJECT = 0  # the asset id of breaches about the platform as a whole (client money)


@dataclass(frozen=True)
class Found:
    """Something a run found wrong about a subject (an asset, or the platform)."""

    kind: str
    asset_id: int
    issuer_party_id: uuid.UUID | None
    detail: str


@dataclass(frozen=True)
class Outcome:
    """What a run's findings did to the breaches: those it found (new ones first opened now) and those it cleared."""

    current: list[tuple[Breach, bool]]  # (breach, opened by this run)
    cleared: list[Breach]

    @property
    def opened(self) -> list[Breach]:
        return [breach for breach, new in self.current if new]


async def apply_findings(
    session: AsyncSession, *, report_id: int, found: list[Found], checked_assets: set[int]
) -> Outcome:
    """Open a breach for each finding not open yet, carry the open ones found again, and clear the open
    ones whose subject this run checked and found right. `checked_assets` are the subjects the run checked
    (breaches of subjects it did not check stay open: not looking is not finding right)."""
    open_breaches = {(b.kind, b.asset_id): b for b in await repository.lock_open_breaches(session)}
    current = []
    for item in found:
        breach = open_breaches.pop((item.kind, item.asset_id), None)
        if breach is None:
            breach = await repository.insert_breach(session, values={
                "kind": item.kind, "asset_id": item.asset_id, "issuer_party_id": item.issuer_party_id,
                "detail": item.detail, "opened_report_id": report_id, "last_report_id": report_id,
            })
            current.append((breach, True))
        else:
            breach.last_report_id, breach.detail = report_id, item.detail
            current.append((breach, False))
    cleared = [b for b in open_breaches.values() if b.asset_id in checked_assets]
    for breach in cleared:
        breach.status, breach.cleared_report_id = "cleared", report_id
    await session.flush()
    return Outcome(current, cleared)


async def get_breach(session: AsyncSession, breach_id: int, *, for_update: bool = False) -> Breach:
    """Raises BreachNotFound."""
    breach = await repository.get_breach(session, breach_id, for_update=for_update)
    if breach is None:
        raise errors.BreachNotFound(f"there is no breach {breach_id}")
    return breach


async def list_breaches(
    session: AsyncSession, *, status: Literal["open", "cleared"] | None, report_id: int | None = None,
    before: int | None = None, limit: int,
) -> list[Breach]:
    """Breaches newest first; with `report_id`, those the report found."""
    return await repository.list_breaches(session, status=status, report_id=report_id, before=before, limit=limit)


async def acknowledge(session: AsyncSession, *, breach_id: int, comment: str, actor: str) -> Breach:
    """Record that a compliance officer has taken the breach up, with their comment; a security event.
    Acknowledging does not clear a breach: only a run that finds its subject right does.

    Raises BreachNotFound, BreachAcknowledgedAlready, CommentInvalid.
    """
    comment = checked_comment(comment)
    breach = await get_breach(session, breach_id, for_update=True)
    if breach.acknowledged_at is not None:
        raise errors.BreachAcknowledgedAlready(
            f"breach {breach.id} was acknowledged by {breach.acknowledged_by} at {breach.acknowledged_at.isoformat()}"
        )
    await repository.update_breaches(
        session, [breach.id], acknowledged_by=actor[:200], acknowledged_at=func.now(), acknowledgement=comment
    )
    await audit.record(
        session, kind="reconciliation.breach_acknowledged", actor=actor, subject=f"breach:{breach.id}",
        details={"kind": breach.kind, "asset_id": breach.asset_id, "comment": comment},
    )
    return await get_breach(session, breach.id)


@dataclass(frozen=True)
class CoveragePoint:
    business_date: date
    version: int
    report_id: int
    status: str
    outstanding_units: int
    required_value: int
    market_value: int | None
    valued_on: date | None


async def coverage_history(session: AsyncSession, *, asset_code: str, limit: int) -> list[CoveragePoint]:
    """The emission's coverage day by day (the latest version of each day's report), oldest first.

    Raises EmissionNotFound.
    """
    emission = await issuance_emissions.get_emission(session, asset_code)
    rows = await reports_repository.coverage_history(session, asset_id=emission.asset_id, limit=limit)
    return [
        CoveragePoint(r.business_date, r.version, r.report_id, r.status, r.outstanding_units, r.required_value,
                      r.market_value, r.valued_on)
        for r in rows
    ]
