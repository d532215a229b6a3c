"""SQL of holder snapshots, primary placements and their subscriptions, redemptions and defaults."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import (
    Application,
    DefaultEvent,
    Emission,
    Freeze,
    Placement,
    Redemption,
    RedemptionPayment,
    Snapshot,
    SnapshotPosition,
    Subscription,
)

# --- emissions and their applications -------------------------------------------------------------------


async def get_application(session: AsyncSession, application_id: uuid.UUID) -> Application:
    return (await session.execute(select(Application).where(Application.id == application_id))).scalar_one()


async def update_emission(session: AsyncSession, *, asset_id: int, cancelled: int = 0, status: str) -> Emission:
    """Set the emission's status and add `cancelled` units to its cancelled volume, in one statement."""
    statement = (
        update(Emission)
        .where(Emission.asset_id == asset_id)
        .values(status=status, cancelled_units=Emission.cancelled_units + cancelled)
        .returning(Emission)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


# --- snapshots and freezes --------------------------------------------------------------------------------


async def insert_snapshot(
    session: AsyncSession, *, snapshot: Snapshot, positions: Sequence[SnapshotPosition]
) -> None:
    session.add(snapshot)
    await session.flush()
    session.add_all(positions)
    await session.flush()


async def get_snapshot(session: AsyncSession, *, snapshot_id: uuid.UUID, asset_id: int) -> Snapshot | None:
    statement = select(Snapshot).where(Snapshot.id == snapshot_id, Snapshot.asset_id == asset_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def snapshot_positions(session: AsyncSession, snapshot_id: uuid.UUID) -> list[SnapshotPosition]:
    statement = (
        select(SnapshotPosition)
        .where(SnapshotPosition.snapshot_id == snapshot_id)
        .order_by(SnapshotPosition.party_id)
    )
    return list((await session.execute(statement)).scalars())


async def frozen_units(session: AsyncSession, *, asset_id: int, as_of: datetime | None) -> dict[uuid.UUID, int]:
    """Units frozen per holder: by the freezes active now, or by those in force at `as_of`."""
    if as_of is None:
        in_force = Freeze.status == "active"
    else:
        in_force = and_(Freeze.created_at <= as_of, or_(Freeze.lifted_at.is_(None), Freeze.lifted_at > as_of))
    statement = (
        select(Freeze.party_id, func.sum(Freeze.units))
        .where(Freeze.asset_id == asset_id, in_force)
        .group_by(Freeze.party_id)
    )
    return {party_id: int(units) for party_id, units in await session.execute(statement)}


async def lock_active_freezes(session: AsyncSession, *, asset_id: int) -> list[Freeze]:
    statement = (
        select(Freeze)
        .where(Freeze.asset_id == asset_id, Freeze.status == "active")
        .order_by(Freeze.created_at, Freeze.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def insert_freezes(session: AsyncSession, *, freezes: Sequence[Freeze]) -> None:
    session.add_all(freezes)
    await session.flush()


async def lift_freezes(session: AsyncSession, *, freeze_ids: Sequence[uuid.UUID], actor: str, reason: str) -> None:
    await session.execute(
        update(Freeze)
        .where(Freeze.id.in_(list(freeze_ids)), Freeze.status == "active")
        .values(status="lifted", lifted_by=actor, lifted_at=func.now(), lift_reason=reason)
        .execution_options(synchronize_session=False)
    )


# --- placements and subscriptions -----------------------------------------------------------------------


async def insert_placement(session: AsyncSession, *, values: dict[str, Any]) -> Placement:
    placement = Placement(**values)
    session.add(placement)
    await session.flush()
    return placement


async def get_placement(session: AsyncSession, placement_id: uuid.UUID, *, for_update: bool = False) -> Placement | None:
    statement = select(Placement).where(Placement.id == placement_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def open_placement_of(session: AsyncSession, asset_id: int) -> Placement | None:
    statement = select(Placement).where(Placement.asset_id == asset_id, Placement.status == "open")
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_due_placements(session: AsyncSession, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Open placements whose window has closed, oldest close first; others closing them are skipped."""
    statement = (
        select(Placement.id)
        .where(Placement.status == "open", Placement.closes_at <= now)
        .order_by(Placement.closes_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(statement)).scalars())


async def update_placement(session: AsyncSession, *, placement_id: uuid.UUID, values: dict[str, Any]) -> Placement:
    statement = (
        update(Placement)
        .where(Placement.id == placement_id)
        .values(**values)
        .returning(Placement)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def units_placed(session: AsyncSession, asset_id: int) -> int:
    """Units of the emission its closed placements have placed with investors."""
    statement = select(func.coalesce(func.sum(Placement.units_allocated), 0)).where(
        Placement.asset_id == asset_id, Placement.status == "allocated"
    )
    return int((await session.execute(statement)).scalar_one())


async def insert_subscription(session: AsyncSession, *, values: dict[str, Any]) -> Subscription:
    subscription = Subscription(**values)
    session.add(subscription)
    await session.flush()
    await session.refresh(subscription, ["seq", "created_at"])
    return subscription


async def get_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, *, for_update: bool = False
) -> Subscription | None:
    statement = (
        select(Subscription).where(Subscription.id == subscription_id).execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def live_subscription(session: AsyncSession, *, placement_id: uuid.UUID, party_id: uuid.UUID) -> Subscription | None:
    statement = select(Subscription).where(
        Subscription.placement_id == placement_id, Subscription.party_id == party_id, Subscription.status == "pending"
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_pending_subscriptions(session: AsyncSession, placement_id: uuid.UUID) -> list[Subscription]:
    """The placement's live subscriptions, earliest first."""
    statement = (
        select(Subscription)
        .where(Subscription.placement_id == placement_id, Subscription.status == "pending")
        .order_by(Subscription.seq)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def list_subscriptions(
    session: AsyncSession, *, placement_id: uuid.UUID, party_id: uuid.UUID | None, after_seq: int | None, limit: int
) -> list[Subscription]:
    statement = select(Subscription).where(Subscription.placement_id == placement_id).order_by(Subscription.seq)
    if party_id is not None:
        statement = statement.where(Subscription.party_id == party_id)
    if after_seq is not None:
        statement = statement.where(Subscription.seq > after_seq)
    return list((await session.execute(statement.limit(limit))).scalars())


async def close_subscriptions(session: AsyncSession, *, rows: Sequence[dict[str, Any]]) -> None:
    """Set each subscription's status, allocated units and settled instruction: rows of `id`, `status`,
    `allocated_units` and `instruction_id`."""
    if not rows:
        return
    statement = (
        update(Subscription)
        .where(Subscription.id == bindparam("subscription_id"))
        .values(
            status=bindparam("new_status"),
            allocated_units=bindparam("new_allocated_units"),
            instruction_id=bindparam("new_instruction_id"),
        )
        .execution_options(synchronize_session=False)
    )
    connection = await session.connection()
    await connection.execute(statement, [
        {
            "subscription_id": row["id"], "new_status": row["status"],
            "new_allocated_units": row["allocated_units"], "new_instruction_id": row["instruction_id"],
        }
        for row in rows
    ])


async def set_subscription_status(session: AsyncSession, *, subscription_id: uuid.UUID, status: str) -> Subscription:
    statement = (
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(status=status)
        .returning(Subscription)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


# --- redemptions ----------------------------------------------------------------------------------------


async def insert_redemption(
    session: AsyncSession, *, redemption: Redemption, payments: Sequence[RedemptionPayment] = (),
    default: DefaultEvent | None = None,
) -> None:
    session.add(redemption)
    await session.flush()
    session.add_all([*payments, *([default] if default else [])])
    await session.flush()


async def list_redemptions(session: AsyncSession, *, asset_id: int, limit: int) -> list[Redemption]:
    statement = (
        select(Redemption)
        .where(Redemption.asset_id == asset_id)
        .order_by(Redemption.created_at.desc(), Redemption.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def redemption_payments(
    session: AsyncSession, *, redemption_ids: Sequence[uuid.UUID], party_id: uuid.UUID | None
) -> list[RedemptionPayment]:
    statement = (
        select(RedemptionPayment)
        .where(RedemptionPayment.redemption_id.in_(list(redemption_ids)))
        .order_by(RedemptionPayment.redemption_id, RedemptionPayment.party_id)
    )
    if party_id is not None:
        statement = statement.where(RedemptionPayment.party_id == party_id)
    return list((await session.execute(statement)).scalars())


async def default_events(session: AsyncSession, *, redemption_ids: Sequence[uuid.UUID]) -> list[DefaultEvent]:
    statement = select(DefaultEvent).where(DefaultEvent.redemption_id.in_(list(redemption_ids)))
    return list((await session.execute(statement)).scalars())
