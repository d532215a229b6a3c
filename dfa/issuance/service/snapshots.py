"""Holder snapshots: who held an emission, and how much of it, at a record point (REQ-32, REQ-35).

A snapshot is taken as of the close of a record date (the calendar's business-day close), as of an
instant, or now. It reads the ledger's holders registry (each holder's available and held units) and
the freezes in force at that point. Every holder is in it, the issuer's own placement account too, so
its total is the emission's outstanding volume here.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import Emission, Snapshot, SnapshotPosition
from dfa.issuance.repository import offering as repository
from dfa.ledger import service as ledger
from dfa.platform.audit import service as audit
from dfa.platform.calendar.service import load_calendar
from dfa.platform.settings import Settings


@dataclass(frozen=True)
class Holders:
    """A snapshot with its positions, one per holder."""

    snapshot: Snapshot
    positions: list[SnapshotPosition]


async def take_snapshot(
    session: AsyncSession,
    *,
    emission: Emission,
    record_date: date | None = None,
    as_of: datetime | None = None,
    actor: str,
    settings: Settings,
) -> Holders:
    """Fix the emission's holders as of the close of `record_date`, as of `as_of`, or (neither given) as
    of now, the caller's own transaction included.

    Raises SnapshotInstantInvalid, NotABusinessDay (a record date that is not a business day).
    """
    calendar = await load_calendar(session, settings=settings)
    now = datetime.now(UTC)
    if record_date is not None and as_of is not None:
        raise errors.SnapshotInstantInvalid("give a record date or an instant, not both")
    if record_date is not None:
        as_of = calendar.close_of(record_date)
    if as_of is not None and as_of > now:
        raise errors.SnapshotInstantInvalid(
            f"{as_of.isoformat()} has not come yet; a snapshot fixes holdings that exist", as_of=as_of.isoformat()
        )
    instant = as_of or now
    registry = await ledger.holders_registry(session, asset_code=emission.registration_number, as_of=as_of)
    frozen = await repository.frozen_units(session, asset_id=emission.asset_id, as_of=as_of)
    snapshot_id = uuid.uuid4()
    positions = [
        SnapshotPosition(
            snapshot_id=snapshot_id,
            party_id=row.holder_party_id,
            available=row.available_units,
            held=row.held_units,
            # A freeze row is stamped at its transaction's start, its hold a moment later: at an instant
            # in between, the freeze counts only what its hold has already moved.
            frozen=min(frozen.get(row.holder_party_id, 0), row.held_units),
        )
        for row in registry.positions
    ]
    snapshot = Snapshot(
        id=snapshot_id,
        asset_id=emission.asset_id,
        record_date=record_date or calendar.business_date_of(instant),
        as_of=instant,
        total_units=sum(p.available + p.held for p in positions),
        holders=len(positions),
        taken_by=actor,
    )
    await repository.insert_snapshot(session, snapshot=snapshot, positions=positions)
    await audit.record(
        session, kind="snapshot.taken", actor=actor, subject=emission.registration_number,
        details={"snapshot_id": str(snapshot_id), "as_of": instant.isoformat(), "total_units": snapshot.total_units},
    )
    return Holders(snapshot, positions)


async def get_snapshot(session: AsyncSession, *, emission: Emission, snapshot_id: uuid.UUID) -> Holders:
    """Raises SnapshotNotFound (also for a snapshot of another emission)."""
    snapshot = await repository.get_snapshot(session, snapshot_id=snapshot_id, asset_id=emission.asset_id)
    if snapshot is None:
        raise errors.SnapshotNotFound(f"no snapshot {snapshot_id} of {emission.registration_number}")
    return Holders(snapshot, await repository.snapshot_positions(session, snapshot_id))
