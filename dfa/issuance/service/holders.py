"""Holder protections and the holders registry for the central depository.

A freeze is a ledger hold on the holder's available account of the asset (an emission's units or KZT
money) for exactly the frozen units, which never expires; lifting it voids the hold. A forced transfer
moves units without the holder's order — on a court order, or to a client's new account when it lost
access to the old one — as ledger transfers with the forced-move code, which the chain mirror applies
even through a pause, and which no trading suspension stops. The central depository's export is the
ledger's registry of an emission as of a business day's close, with every holder's identification and
frozen units (REQ-35).
"""

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.service.mirror import FORCED_MOVE_CODE
from dfa.issuance import errors
from dfa.issuance.models import ForcedTransfer, Freeze
from dfa.issuance.repository import holders as repository
from dfa.issuance.service import emissions
from dfa.issuance.service.emissions import derived_id
from dfa.ledger import service as ledger
from dfa.ledger.models import Account, Asset
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import invariant
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from dfa.settlement.service import accounts

REGISTRY_COLUMNS = (
    "registration_number", "as_of", "party_id", "identifier", "name", "kind", "resident",
    "available", "held", "frozen", "total",
)
# A spreadsheet reads a cell starting with one of these as a formula.
# What a spreadsheet reads as a formula: these first characters, and a tab or carriage return it strips before them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
REFERENCE_MAX_LENGTH = 200


def _reference(text: str) -> str:
    return text[:REFERENCE_MAX_LENGTH]


async def _available(session: AsyncSession, *, party_id: uuid.UUID, asset: Asset) -> Account | None:
    return await ledger.find_account(session, owner_party_id=party_id, asset_id=asset.id, kind="available")


# --- freezes --------------------------------------------------------------------------------------------


async def place_freeze(
    session: AsyncSession, *, asset_code: str, party_id: uuid.UUID, units: int, basis: str, order_reference: str,
    reason: str, actor: str, frozen_from: uuid.UUID | None = None,
) -> Freeze:
    """Freeze `units` of the holder's available units of the asset until lifted: a ledger hold that never
    expires, whose id derives from the freeze's. `frozen_from` names the freeze whose units these
    are the proceeds of.

    Raises AssetNotFound, PartyNotFound, HolderUnitsShort.
    """
    invariant(units > 0, "a freeze freezes a positive number of units")
    asset = await ledger.get_asset(session, asset_code)
    await parties.get_party(session, party_id)
    account = await _available(session, party_id=party_id, asset=asset)
    available = account.balance if account else 0
    if account is None or units > available:
        raise errors.HolderUnitsShort(
            f"party {party_id} has {available} available in {asset_code}; {units} cannot be frozen",
            available=available, requested=units,
        )
    freeze_id = uuid.uuid4()
    hold_id = derived_id(freeze_id, "hold")
    await ledger.place_hold(
        session, hold_id=hold_id, account_id=account.id, amount=units, reference=_reference(f"freeze {order_reference}")
    )
    freeze = await repository.insert_freeze(
        session,
        values={
            "id": freeze_id, "asset_id": asset.id, "party_id": party_id, "units": units, "hold_id": hold_id,
            "basis": basis, "order_reference": order_reference, "reason": reason, "status": "active",
            "frozen_from": frozen_from, "created_by": actor,
        },
    )
    await audit.record(
        session, kind="freeze.placed", actor=actor, subject=str(freeze_id),
        details={"asset": asset_code, "party_id": str(party_id), "units": units, "basis": basis,
                 "order_reference": order_reference},
    )
    return freeze


async def get_freeze(
    session: AsyncSession, freeze_id: uuid.UUID, *, visible_to: uuid.UUID | None = None, for_update: bool = False
) -> Freeze:
    """The freeze; with `visible_to`, only when it freezes that party's units. Raises FreezeNotFound."""
    freeze = await repository.get_freeze(session, freeze_id, for_update=for_update)
    if freeze is None or (visible_to is not None and freeze.party_id != visible_to):
        raise errors.FreezeNotFound(f"no freeze {freeze_id}", freeze_id=str(freeze_id))
    return freeze


async def end_freeze(session: AsyncSession, freeze: Freeze, *, reason: str, actor: str) -> None:
    """Mark an active freeze lifted whose hold the caller has already voided or posted (units moved by an
    order, cancelled by a redemption)."""
    invariant(freeze.status == "active", f"freeze {freeze.id} is {freeze.status}")
    freeze.status = "lifted"
    freeze.lifted_by = actor
    freeze.lifted_at = datetime.now(UTC)
    freeze.lift_reason = reason
    await session.flush()


async def lift_freeze(session: AsyncSession, *, freeze_id: uuid.UUID, reason: str, actor: str) -> Freeze:
    """Lift a freeze: its units are available to the holder again.

    Raises FreezeNotFound, FreezeNotActive.
    """
    freeze = await get_freeze(session, freeze_id, for_update=True)
    if freeze.status != "active":
        raise errors.FreezeNotActive(f"freeze {freeze_id} was lifted already", freeze_id=str(freeze_id))
    await ledger.void_hold(session, hold_id=freeze.hold_id, transfer_id=derived_id(freeze.id, "lifting"))
    await end_freeze(session, freeze, reason=reason, actor=actor)
    await audit.record(
        session, kind="freeze.lifted", actor=actor, subject=str(freeze_id),
        details={"party_id": str(freeze.party_id), "units": freeze.units, "reason": reason},
    )
    return freeze


async def list_freezes(
    session: AsyncSession, *, asset_code: str | None, party_id: uuid.UUID | None, status: str | None,
    before: datetime | None, limit: int,
) -> list[Freeze]:
    """Freezes, newest first. Raises AssetNotFound."""
    asset_id = (await ledger.get_asset(session, asset_code)).id if asset_code else None
    return await repository.list_freezes(
        session, asset_id=asset_id, party_id=party_id, status=status, before=before, limit=limit
    )


# --- forced transfers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What a forced transfer takes: units from the available account, then whole or partial freezes."""

    from_available: int
    frozen: list[tuple[Freeze, int]]

    @property
    def split(self) -> tuple[Freeze, int] | None:
        """The freeze only part of which moves, with the units that stay frozen."""
        if self.frozen and self.frozen[-1][1] < self.frozen[-1][0].units:
            freeze, taken = self.frozen[-1]
            return freeze, freeze.units - taken
        return None


def _plan(units: int, *, available: int, freezes: Iterable[Freeze]) -> _Plan:
    from_available = min(units, available)
    rest, frozen = units - from_available, []
    for freeze in freezes:
        if rest == 0:
            break
        taken = min(rest, freeze.units)
        frozen.append((freeze, taken))
        rest -= taken
    invariant(rest == 0, "a forced transfer is planned only when the units are there")
    return _Plan(from_available, frozen)


async def forced_transfer(
    session: AsyncSession, *, asset_code: str, from_party_id: uuid.UUID, to_party_id: uuid.UUID, units: int,
    basis: str, order_reference: str, reason: str, include_frozen: bool, actor: str, settings: Settings,
) -> ForcedTransfer:
    """Move `units` of the asset from one party to another on an order, not the holder's: available units
    first, then — only when the order says so — frozen units, oldest freeze first. Moved freezes end as
    lifted; a freeze moved in part stays frozen for the rest as a new freeze on the same order. Every
    ledger transfer carries the forced-move code, all of them in one linked batch. No anti-fraud
    screening: an authority's order is not a client's operation; the order is recorded instead.

    Raises ForcedTransferInvalid, AssetNotFound, PartyNotFound, PartyNotIdentified, UnderAge (the
    recipient), HolderUnitsShort.
    """
    invariant(units > 0, "a forced transfer moves a positive number of units")
    if from_party_id == to_party_id:
        raise errors.ForcedTransferInvalid("the units are to move to another party")
    asset = await ledger.get_asset(session, asset_code)
    await parties.get_party(session, from_party_id)
    recipient = await accounts.holder_account(session, party_id=to_party_id, asset_code=asset_code, settings=settings)
    source = await _available(session, party_id=from_party_id, asset=asset)
    available = source.balance if source else 0
    freezes = await repository.lock_active_freezes(session, asset_id=asset.id, party_id=from_party_id) if include_frozen else []
    if source is None or units > available + sum(f.units for f in freezes):
        frozen = f" and {sum(f.units for f in freezes)} frozen" if include_frozen else ""
        raise errors.HolderUnitsShort(
            f"party {from_party_id} has {available} available{frozen} in {asset_code}; {units} cannot be moved",
            available=available, requested=units,
        )
    plan = _plan(units, available=available, freezes=freezes)
    forced_id = uuid.uuid4()
    reference = _reference(f"forced transfer ({basis}) {order_reference}")
    items, remainder_freeze_id = _ledger_items(
        plan, forced_id=forced_id, source=source, recipient=recipient, reference=reference
    )
    await ledger.execute_batch(session, batch_id=derived_id(forced_id, "batch"), items=items)
    forced = await repository.insert_forced_transfer(
        session,
        values={
            "id": forced_id, "asset_id": asset.id, "from_party_id": from_party_id, "to_party_id": to_party_id,
            "units": units, "basis": basis, "order_reference": order_reference, "reason": reason,
            "transfer_id": derived_id(forced_id, "move"), "actor": actor,
        },
    )
    await _end_moved_freezes(session, plan, forced_id=forced_id, remainder_freeze_id=remainder_freeze_id, actor=actor)
    await audit.record(
        session, kind="forced_transfer.executed", actor=actor, subject=str(forced_id),
        details={
            "asset": asset_code, "from_party_id": str(from_party_id), "to_party_id": str(to_party_id),
            "units": units, "from_available": plan.from_available, "basis": basis, "order_reference": order_reference,
            "freezes_moved": {str(freeze.id): taken for freeze, taken in plan.frozen},
        },
    )
    return forced


def _ledger_items(
    plan: _Plan, *, forced_id: uuid.UUID, source: Account, recipient: Account, reference: str
) -> tuple[list[ledger.BatchItem], uuid.UUID | None]:
    """The ledger items of a planned forced transfer — its first movement has the id the forced transfer
    records — and the id of the freeze that keeps what a partly moved freeze leaves frozen."""
    # The first movement takes the id the forced transfer records; the others derive from their freeze.
    movement_ids = iter([derived_id(forced_id, "move")])
    items: list[ledger.BatchItem] = []
    if plan.from_available:
        spec = ledger.TransferSpec(
            next(movement_ids), source.id, recipient.id, plan.from_available, code=FORCED_MOVE_CODE, reference=reference
        )
        items.append(ledger.TransferItem(spec))
    for freeze, taken in plan.frozen:
        items.append(ledger.PostHoldItem(
            freeze.hold_id, next(movement_ids, derived_id(forced_id, f"frozen:{freeze.id}")), recipient.id,
            amount=taken, code=FORCED_MOVE_CODE, reference=reference,
        ))
    if plan.split is None:
        return items, None
    freeze, remaining = plan.split
    remainder_id = derived_id(forced_id, f"remainder:{freeze.id}")
    items += [
        ledger.VoidHoldItem(freeze.hold_id, derived_id(forced_id, f"release:{freeze.id}")),
        ledger.PlaceHoldItem(
            derived_id(remainder_id, "hold"), source.id, remaining, reference=_reference(f"freeze {freeze.order_reference}")
        ),
    ]
    return items, remainder_id


async def _end_moved_freezes(
    session: AsyncSession, plan: _Plan, *, forced_id: uuid.UUID, remainder_freeze_id: uuid.UUID | None, actor: str
) -> None:
    for freeze, _taken in plan.frozen:
        await end_freeze(session, freeze, reason=f"moved by forced transfer {forced_id}", actor=actor)
    if remainder_freeze_id is not None and (split := plan.split) is not None:
        freeze, remaining = split
        await repository.insert_freeze(
            session,
            values={
                "id": remainder_freeze_id, "asset_id": freeze.asset_id, "party_id": freeze.party_id,
                "units": remaining, "hold_id": derived_id(remainder_freeze_id, "hold"), "basis": freeze.basis,
                "order_reference": freeze.order_reference, "reason": freeze.reason, "status": "active",
                "frozen_from": freeze.frozen_from, "created_by": actor,
            },
        )


async def list_forced_transfers(
    session: AsyncSession, *, asset_code: str | None, party_id: uuid.UUID | None, before: datetime | None, limit: int
) -> list[ForcedTransfer]:
    """Forced transfers, newest first. Raises AssetNotFound."""
    asset_id = (await ledger.get_asset(session, asset_code)).id if asset_code else None
    return await repository.list_forced_transfers(session, asset_id=asset_id, party_id=party_id, before=before, limit=limit)


# --- the central depository's export --------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryExport:
    registration_number: str
    as_of: datetime
    chunks: AsyncIterator[bytes]

    @property
    def filename(self) -> str:
        return f"holders-registry-{self.registration_number}-{self.as_of.date().isoformat()}.csv"


def registry_instant(on: date, *, settings: Settings) -> datetime:
    """The instant the registry of business date `on` is fixed at: that day's close in the operator's time zone."""
    return datetime.combine(on, settings.business_day_closes_at, tzinfo=ZoneInfo(settings.timezone))


def neutralised(cell: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, made plain text by a leading apostrophe."""
    if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES):
        return "'" + cell
    return cell


def _csv(rows: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([neutralised(cell) for cell in row] for row in rows)
    return buffer.getvalue().encode()


async def export_registry(
    session: AsyncSession, *, database: Database, registration_number: str, on: date,
    visible_to: uuid.UUID | None, actor: str, settings: Settings,
) -> RegistryExport:
    """The emission's holders as of business date `on`'s close, as CSV streamed in chunks for the central
    securities depository (REQ-35): each holder's identification, available, held (frozen included),
    frozen and total units. The export is recorded as a security event before it starts; the stream
    reads in a session of its own, since the caller's ends before the response is sent.

    Raises EmissionNotFound, RegistryDateNotClosed.
    """
    emission = await emissions.get_emission(session, registration_number, visible_to=visible_to)
    instant = registry_instant(on, settings=settings)
    if instant > datetime.now(UTC):
        raise errors.RegistryDateNotClosed(
            f"the registry of {on.isoformat()} is fixed at its close, {instant.isoformat()}, which has not come yet"
        )
    asset = await ledger.get_asset_by_id(session, emission.asset_id)
    await audit.record_in_own_transaction(
        database, kind="registry.exported", actor=actor, subject=registration_number,
        details={"as_of": instant.isoformat(), "format": "csv", "recipient": "central securities depository"},
    )
    return RegistryExport(registration_number, instant, _registry_rows(database, asset=asset, as_of=instant))


async def _registry_rows(database: Database, *, asset: Asset, as_of: datetime) -> AsyncIterator[bytes]:
    async with database.read() as session:
        frozen = await repository.frozen_units_as_of(session, asset_id=asset.id, as_of=as_of)
        yield _csv([REGISTRY_COLUMNS])
        pending = b""
        async for chunk in ledger.export_registry(session, asset=asset, as_of=as_of, fmt="jsonl"):
            *lines, pending = (pending + chunk).split(b"\n")
            if lines:
                yield _csv(_registry_row(json.loads(line), code=asset.code, as_of=as_of, frozen=frozen) for line in lines)
        invariant(not pending.strip(), "the registry's last line was cut off")


def _registry_row(position: dict[str, Any], *, code: str, as_of: datetime, frozen: dict[uuid.UUID, int]) -> list[Any]:
    party_id = uuid.UUID(position["holder_party_id"])
    return [
        code, as_of.isoformat(), str(party_id), position["holder_identifier"], position["holder_name"],
        position["holder_kind"], "yes" if position["holder_resident"] else "no", position["available_units"],
        position["held_units"], frozen.get(party_id, 0), position["total_units"],
    ]
