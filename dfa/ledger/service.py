"""Ledger operations. Every function takes the caller's session and flushes, never commits.

Refusals are named errors from `dfa.ledger.errors`. A single transfer, a hold, a post and a void
refuse without aborting the caller's transaction (nothing is written, the caller may go on); a
refused linked batch aborts it, since the batch is all-or-none by definition.
"""

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import errors, repository
from dfa.ledger.models import HOLDER_KINDS, Account, Asset, Hold
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.errors import invariant
from dfa.platform.identity.service import parties, screening
from dfa.platform.settings import Settings

# The largest amount one transfer may move: 10^17 tiyn is a thousand times Kazakhstan's money supply.
MAX_AMOUNT = 10**17
EXPIRY_NAMESPACE = uuid.UUID("6f0e1d9a-5b8c-4f7e-9a31-1c2d3e4f5a6b")

AssetKind = Literal["money", "dfa"]
AccountKind = Literal["available", "issued", "client_money", "own_money", "settlement", "fees"]
MONEY_ONLY_KINDS = frozenset({"client_money", "own_money"})


# --- assets and accounts -------------------------------------------------------------------------------


async def create_asset(session: AsyncSession, *, code: str, kind: AssetKind, scale: int, name: str) -> Asset:
    """Raises AssetAlreadyExists."""
    asset = await repository.insert_asset(session, code=code, kind=kind, scale=scale, name=name)
    if asset is None:
        raise errors.AssetAlreadyExists(f"asset {code} exists", code=code)
    return asset


async def get_asset(session: AsyncSession, code: str) -> Asset:
    """Raises AssetNotFound."""
    asset = await repository.get_asset_by_code(session, code)
    if asset is None:
        raise errors.AssetNotFound(f"asset {code} does not exist", code=code)
    return asset


async def get_assets(session: AsyncSession, codes: Sequence[str]) -> list[Asset]:
    """These assets in the order asked, in one query. Raises AssetNotFound."""
    found = {asset.code: asset for asset in await repository.get_assets_by_code(session, codes)}
    for code in codes:
        if code not in found:
            raise errors.AssetNotFound(f"asset {code} does not exist", code=code)
    return [found[code] for code in codes]


async def get_asset_by_id(session: AsyncSession, asset_id: int) -> Asset:
    """Raises AssetNotFound."""
    asset = await repository.get_asset(session, asset_id)
    if asset is None:
        raise errors.AssetNotFound(f"asset {asset_id} does not exist", asset_id=asset_id)
    return asset


async def asset_codes(session: AsyncSession, asset_ids: Iterable[int]) -> dict[int, str]:
    """The code of each of these assets, by id, in one query (ids of no asset are left out)."""
    ids = set(asset_ids)
    return await repository.asset_codes(session, sorted(ids)) if ids else {}


async def dfa_asset_ids(session: AsyncSession) -> list[int]:
    """Every emission's asset id, oldest first."""
    return await repository.asset_ids_of_kind(session, kind="dfa")


async def positions(session: AsyncSession, *, asset_id: int) -> list[Account]:
    """Every account of the asset whose balance is not zero, as of the caller's snapshot."""
    return await repository.nonzero_accounts(session, asset_id=asset_id)


async def list_assets(session: AsyncSession, *, after: int | None, limit: int) -> list[Asset]:
    return await repository.list_assets(session, after=after, limit=limit)


async def open_account(
    session: AsyncSession, *, owner_party_id: uuid.UUID, asset_code: str, kind: AccountKind, settings: Settings
) -> Account:
    """Open an account; an `available` account comes with its `held` twin, which holds encumbrances.
    Only an identified party (an adult, for a person) may hold accounts (REQ-14, REQ-16).

    Raises PartyNotFound, PartyNotIdentified, UnderAge, AssetNotFound, AccountKindNotAllowed,
    AccountAlreadyExists.
    """
    await parties.ensure_may_operate(session, owner_party_id, settings=settings)
    asset = await get_asset(session, asset_code)
    if kind in MONEY_ONLY_KINDS and asset.kind != "money":
        raise errors.AccountKindNotAllowed(f"{kind} accounts mirror bank money; {asset_code} is not money")
    if kind == "issued" and asset.kind != "dfa":
        raise errors.AccountKindNotAllowed(f"only a DFA emission has an issued account; {asset_code} is money")
    kinds = list(HOLDER_KINDS) if kind == "available" else [kind]
    rows = [{"owner_party_id": owner_party_id, "asset_id": asset.id, "kind": k} for k in kinds]
    created = await repository.insert_accounts(session, rows=rows)
    if created is None:
        raise errors.AccountAlreadyExists(
            f"party {owner_party_id} already has a {kind} account in {asset_code}"
            if kind != "issued"
            else f"{asset_code} already has its issued account",
            owner_party_id=str(owner_party_id),
            asset=asset_code,
            kind=kind,
        )
    return created[0]


async def find_account(session: AsyncSession, *, owner_party_id: uuid.UUID, asset_id: int, kind: str) -> Account | None:
    """The party's (first) account of this kind in this asset, if it has one."""
    return await repository.find_account(session, owner_party_id=owner_party_id, asset_id=asset_id, kind=kind)


AccountKey = tuple[uuid.UUID, int, str]  # owner party, asset id, kind


async def account_ids(session: AsyncSession, *, keys: Sequence[AccountKey]) -> dict[AccountKey, int]:
    """The id of each (owner, asset id, kind) account that exists, in one query; missing keys are left out."""
    if not keys:
        return {}
    rows = await repository.account_ids(
        session, owners=[k[0] for k in keys], asset_ids=[k[1] for k in keys], kinds=[k[2] for k in keys]
    )
    return {(row.owner_party_id, row.asset_id, row.kind): row.id for row in rows}


async def ensure_account(
    session: AsyncSession, *, owner_party_id: uuid.UUID, asset_code: str, kind: AccountKind, settings: Settings
) -> Account:
    """The party's account of this kind in this asset, opened when it has none (see `open_account`)."""
    asset = await get_asset(session, asset_code)
    account = await find_account(session, owner_party_id=owner_party_id, asset_id=asset.id, kind=kind)
    if account is not None:
        return account
    try:
        async with session.begin_nested():
            return await open_account(
                session, owner_party_id=owner_party_id, asset_code=asset_code, kind=kind, settings=settings
            )
    except errors.AccountAlreadyExists:  # a concurrent transaction opened it first
        account = await find_account(session, owner_party_id=owner_party_id, asset_id=asset.id, kind=kind)
        invariant(account is not None, "an account that exists was not found")
        return account


async def screen_movements(
    session: AsyncSession,
    *,
    movements: Sequence[tuple[int, int, int]],
    centre: AntiFraudCentre,
    actor: str,
    settings: Settings,
) -> None:
    """The gate before moving money or DFAs between accounts, as (debit, credit, amount): both
    owners identified adults, neither flagged by the anti-fraud centre (REQ-14, REQ-16, REQ-18).

    Raises AccountNotFound, PartyNotIdentified, UnderAge, AntiFraudMatch, ExternalPartyUnavailable.
    """
    accounts = {i: await get_account(session, i) for i in {a for m in movements for a in m[:2]}}
    assets = {a.asset_id: await repository.get_asset(session, a.asset_id) for a in accounts.values()}
    await screening.screen_operation(
        session,
        operation="transfer",
        movements=[
            screening.Movement(
                sender_party_id=accounts[debit].owner_party_id,
                recipient_party_id=accounts[credit].owner_party_id,
                asset=assets[accounts[debit].asset_id].code,
                amount=amount,
            )
            for debit, credit, amount in movements
        ],
        centre=centre,
        actor=actor,
        settings=settings,
    )


async def get_account(session: AsyncSession, account_id: int, *, visible_to: uuid.UUID | None = None) -> Account:
    """The account; with `visible_to`, only when that party owns it (others' accounts are "not
    found", so their ids tell nothing). Raises AccountNotFound."""
    account = await repository.get_account(session, account_id)
    if account is None or (visible_to is not None and account.owner_party_id != visible_to):
        raise errors.AccountNotFound(f"account {account_id} does not exist", account_id=account_id)
    return account


async def list_accounts(
    session: AsyncSession,
    *,
    owner_party_id: uuid.UUID | None = None,
    asset_code: str | None = None,
    after: int | None = None,
    limit: int,
) -> list[Account]:
    asset_id = (await get_asset(session, asset_code)).id if asset_code else None
    return await repository.list_accounts(
        session, owner_party_id=owner_party_id, asset_id=asset_id, after=after, limit=limit
    )


# --- transfers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferSpec:
    """A transfer as asked for: `amount` of the accounts' asset moves from debit to credit."""

    id: uuid.UUID
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: int = 0
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer in the journal."""

    id: uuid.UUID
    debit_account_id: int
    credit_account_id: int
    asset_id: int
    amount: int
    kind: str
    hold_id: uuid.UUID | None
    batch_id: uuid.UUID | None
    code: int
    reference: str | None
    created_at: datetime


@dataclass(frozen=True)
class Posted:
    transfer: TransferRecord
    created: bool  # False when this exact transfer had been posted before (a replay)


def _check_spec(spec: TransferSpec) -> None:
    if spec.debit_account_id == spec.credit_account_id:
        raise errors.AccountsMustBeDifferent(
            f"transfer {spec.id} debits and credits the same account {spec.debit_account_id}",
            transfer_id=str(spec.id),
        )
    invariant(0 < spec.amount <= MAX_AMOUNT, f"transfer {spec.id}: amount {spec.amount} out of range")


def _transfer_from_prior(prior: dict[str, Any]) -> TransferRecord:
    return TransferRecord(
        id=uuid.UUID(prior["id"]),
        debit_account_id=prior["debit_account_id"],
        credit_account_id=prior["credit_account_id"],
        asset_id=prior["asset_id"],
        amount=prior["amount"],
        kind=prior["kind"],
        hold_id=uuid.UUID(prior["hold_id"]) if prior["hold_id"] else None,
        batch_id=uuid.UUID(prior["batch_id"]) if prior["batch_id"] else None,
        code=prior["code"],
        reference=prior["reference"],
        created_at=datetime.fromisoformat(prior["created_at"]),
    )


def _same_transfer(existing: TransferRecord, spec: TransferSpec, *, kind: str, hold_id: uuid.UUID | None) -> bool:
    return (
        existing.debit_account_id == spec.debit_account_id
        and existing.credit_account_id == spec.credit_account_id
        and existing.amount == spec.amount
        and existing.code == spec.code
        and existing.reference == spec.reference
        and existing.kind == kind
        and existing.hold_id == hold_id
    )


async def _post(
    session: AsyncSession,
    spec: TransferSpec,
    *,
    kind: str = "transfer",
    hold_id: uuid.UUID | None = None,
    batch_id: uuid.UUID | None = None,
) -> Posted:
    _check_spec(spec)
    outcome = await repository.post_one(
        session,
        id=spec.id,
        debit_account_id=spec.debit_account_id,
        credit_account_id=spec.credit_account_id,
        amount=spec.amount,
        kind=kind,
        hold_id=hold_id,
        batch_id=batch_id,
        code=spec.code,
        reference=spec.reference,
    )
    if outcome.prior is not None:
        existing = _transfer_from_prior(outcome.prior)
        if _same_transfer(existing, spec, kind=kind, hold_id=hold_id) and batch_id is None:
            return Posted(existing, created=False)
        raise errors.TransferIdReusedWithDifferentRequest(
            f"transfer id {spec.id} was used for a different transfer", transfer_id=str(spec.id)
        )
    for account_id in (spec.debit_account_id, spec.credit_account_id):
        if account_id not in outcome.found_account_ids:
            raise errors.AccountNotFound(
                f"transfer {spec.id}: account {account_id} does not exist", account_id=account_id
            )
    if outcome.asset_count != 1:
        raise errors.AccountsMustHaveSameAsset(
            f"transfer {spec.id}: accounts {spec.debit_account_id} and {spec.credit_account_id} hold different assets",
            transfer_id=str(spec.id),
        )
    if not (outcome.debit_ok and outcome.credit_ok):
        short = spec.debit_account_id if not outcome.debit_ok else spec.credit_account_id
        raise errors.InsufficientFunds(
            f"transfer {spec.id} of {spec.amount} would take account {short} past its limit",
            transfer_id=str(spec.id),
            account_id=short,
        )
    invariant(outcome.created_at is not None, f"transfer {spec.id} neither posted nor refused")
    transfer = TransferRecord(
        id=spec.id,
        debit_account_id=spec.debit_account_id,
        credit_account_id=spec.credit_account_id,
        asset_id=outcome.asset_id,
        amount=spec.amount,
        kind=kind,
        hold_id=hold_id,
        batch_id=batch_id,
        code=spec.code,
        reference=spec.reference,
        created_at=outcome.created_at,
    )
    return Posted(transfer, created=True)


async def post_transfer(session: AsyncSession, *, transfer: TransferSpec) -> Posted:
    """Move an amount between two accounts of the same asset, exactly once per transfer id.

    A replay of the same transfer returns it with created=False.
    Raises AccountsMustBeDifferent, AccountNotFound, AccountsMustHaveSameAsset, InsufficientFunds,
    TransferIdReusedWithDifferentRequest, TransferExists (a concurrent twin won), BalanceLimitExceeded.
    """
    return await _post(session, transfer)


async def post_transfers(
    session: AsyncSession, *, transfers: Sequence[TransferSpec], batch_id: uuid.UUID | None = None
) -> list[TransferRecord]:
    """Post these transfers in order as one linked unit: all of them or none.

    Raises DuplicateIdInBatch, AccountsMustBeDifferent, AccountNotFound, AccountsMustHaveSameAsset,
    InsufficientFunds (also when an intermediate balance would cross its limit), TransferExists,
    BalanceLimitExceeded.
    """
    if not transfers:
        return []
    _require_unique([t.id for t in transfers])
    for spec in transfers:
        _check_spec(spec)
    created_at, asset_ids = await repository.post_batch(
        session,
        ids=[t.id for t in transfers],
        debits=[t.debit_account_id for t in transfers],
        credits=[t.credit_account_id for t in transfers],
        amounts=[t.amount for t in transfers],
        codes=[t.code for t in transfers],
        references=[t.reference for t in transfers],
        batch_id=batch_id,
    )
    invariant(len(asset_ids) == len(transfers), "the batch function lost a transfer")
    return [
        TransferRecord(
            t.id, t.debit_account_id, t.credit_account_id, asset_id, t.amount, "transfer", None, batch_id,
            t.code, t.reference, created_at,
        )
        for t, asset_id in zip(transfers, asset_ids, strict=True)
    ]


async def _journal_transfers(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[TransferRecord]:
    """These transfers as the journal holds them, in the given order."""
    by_id = {row.id: TransferRecord(**row._mapping) for row in await repository.get_transfers(session, ids)}
    invariant(len(by_id) == len(set(ids)), "a posted transfer is missing from the journal")
    return [by_id[i] for i in ids]


def _require_unique(ids: Sequence[uuid.UUID]) -> None:
    seen: set[uuid.UUID] = set()
    for item_id in ids:
        if item_id in seen:
            raise errors.DuplicateIdInBatch(f"id {item_id} appears twice in the batch", id=str(item_id))
        seen.add(item_id)


async def find_transfer(session: AsyncSession, transfer_id: uuid.UUID) -> TransferRecord | None:
    rows = await repository.get_transfers(session, [transfer_id])
    return TransferRecord(**rows[0]._mapping) if rows else None


async def get_transfer(session: AsyncSession, transfer_id: uuid.UUID) -> TransferRecord:
    """Raises TransferNotFound."""
    transfer = await find_transfer(session, transfer_id)
    if transfer is None:
        raise errors.TransferNotFound(f"transfer {transfer_id} does not exist", transfer_id=str(transfer_id))
    return transfer


# --- holds -----------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


async def place_hold(
    session: AsyncSession,
    *,
    hold_id: uuid.UUID,
    account_id: int,
    amount: int,
    expires_at: datetime | None = None,
    code: int = 0,
    reference: str | None = None,
    batch_id: uuid.UUID | None = None,
) -> tuple[Hold, bool]:
    """Reserve `amount` on a holder's available account by moving it to the held twin.

    Returns the hold and whether it was created now (False for a replay of the same hold).
    Raises AccountNotFound, HoldRequiresAvailableAccount, HoldExpiryInPast, InsufficientFunds,
    HoldIdReusedWithDifferentRequest, TransferExists.
    """
    existing = await repository.get_hold(session, hold_id)
    if existing is not None:
        same = (existing.account_id, existing.amount, existing.expires_at, existing.reference) == (
            account_id,
            amount,
            expires_at,
            reference,
        )
        if same and batch_id is None:
            return existing, False
        raise errors.HoldIdReusedWithDifferentRequest(f"hold id {hold_id} was used for a different hold")
    if expires_at is not None and expires_at <= _now():
        raise errors.HoldExpiryInPast(f"expires_at {expires_at.isoformat()} is not in the future")
    account = await get_account(session, account_id)
    if account.kind != "available":
        raise errors.HoldRequiresAvailableAccount(
            f"account {account_id} is a {account.kind} account; holds are placed on available accounts"
        )
    held = await repository.find_account(
        session, owner_party_id=account.owner_party_id, asset_id=account.asset_id, kind="held"
    )
    invariant(held is not None, f"available account {account_id} has no held twin")
    posted = await _post(
        session,
        TransferSpec(hold_id, account_id, held.id, amount, code, reference),
        kind="hold",
        hold_id=hold_id,
        batch_id=batch_id,
    )
    if not posted.created:
        raise errors.TransferExists(f"transfer {hold_id} exists", transfer_id=str(hold_id))
    hold = await repository.insert_hold(
        session,
        values={
            "id": hold_id,
            "account_id": account_id,
            "held_account_id": held.id,
            "asset_id": account.asset_id,
            "amount": amount,
            "status": "pending",
            "expires_at": expires_at,
            "reference": reference,
            "created_at": posted.transfer.created_at,
        },
    )
    return hold, True


async def get_hold(session: AsyncSession, hold_id: uuid.UUID, *, for_update: bool = False) -> Hold:
    """Raises HoldNotFound."""
    hold = await repository.get_hold(session, hold_id, for_update=for_update)
    if hold is None:
        raise errors.HoldNotFound(f"hold {hold_id} does not exist", hold_id=str(hold_id))
    return hold


def _remaining(hold: Hold) -> int:
    return hold.amount - hold.posted_amount - hold.released_amount


async def _replayed_hold_transfer(
    session: AsyncSession, transfer_id: uuid.UUID, *, hold: Hold, kind: str, credit_account_id: int | None,
    amount: int | None,
) -> TransferRecord | None:
    existing = await find_transfer(session, transfer_id)
    if existing is None:
        return None
    if (
        existing.hold_id == hold.id
        and existing.kind == kind
        and (credit_account_id is None or existing.credit_account_id == credit_account_id)
        and (amount is None or existing.amount == amount)
    ):
        return existing
    raise errors.TransferIdReusedWithDifferentRequest(
        f"transfer id {transfer_id} was used for a different transfer", transfer_id=str(transfer_id)
    )


def _require_pending(hold: Hold) -> None:
    if hold.status != "pending":
        raise errors.HoldNotPending(f"hold {hold.id} is {hold.status}", hold_id=str(hold.id), status=hold.status)


async def post_hold(
    session: AsyncSession,
    *,
    hold_id: uuid.UUID,
    transfer_id: uuid.UUID,
    credit_account_id: int,
    amount: int | None = None,
    code: int = 0,
    reference: str | None = None,
    batch_id: uuid.UUID | None = None,
) -> Posted:
    """Deliver `amount` (default: all that remains) of a pending hold to `credit_account_id`.

    The hold stays pending while something remains, so an order can be filled in parts.
    Raises HoldNotFound, HoldNotPending, HoldExpired, HoldAmountExceeded, AccountNotFound,
    AccountsMustHaveSameAsset, TransferIdReusedWithDifferentRequest.
    """
    hold = await get_hold(session, hold_id, for_update=True)
    replay = await _replayed_hold_transfer(
        session, transfer_id, hold=hold, kind="post", credit_account_id=credit_account_id, amount=amount
    )
    if replay is not None and batch_id is None:
        return Posted(replay, created=False)
    _require_pending(hold)
    if hold.expires_at is not None and hold.expires_at <= _now():
        raise errors.HoldExpired(f"hold {hold_id} expired at {hold.expires_at.isoformat()}", hold_id=str(hold_id))
    remaining = _remaining(hold)
    amount = remaining if amount is None else amount
    if amount > remaining:
        raise errors.HoldAmountExceeded(
            f"hold {hold_id} has {remaining} remaining; {amount} was asked for", remaining=remaining
        )
    posted = await _post(
        session,
        TransferSpec(transfer_id, hold.held_account_id, credit_account_id, amount, code, reference),
        kind="post",
        hold_id=hold_id,
        batch_id=batch_id,
    )
    exhausted = amount == remaining
    await repository.update_hold(
        session,
        hold_id=hold_id,
        values={
            "posted_amount": hold.posted_amount + amount,
            "status": "posted" if exhausted else "pending",
            "closed_at": posted.transfer.created_at if exhausted else None,
        },
    )
    return posted


async def void_hold(
    session: AsyncSession,
    *,
    hold_id: uuid.UUID,
    transfer_id: uuid.UUID,
    batch_id: uuid.UUID | None = None,
) -> Posted:
    """Release what remains of a pending hold back to the holder's available account.

    Raises HoldNotFound, HoldNotPending (voiding twice), TransferIdReusedWithDifferentRequest.
    """
    hold = await get_hold(session, hold_id, for_update=True)
    replay = await _replayed_hold_transfer(
        session, transfer_id, hold=hold, kind="void", credit_account_id=None, amount=None
    )
    if replay is not None and batch_id is None:
        return Posted(replay, created=False)
    _require_pending(hold)
    return await _release(session, hold, transfer_id=transfer_id, kind="void", batch_id=batch_id)


async def _release(
    session: AsyncSession, hold: Hold, *, transfer_id: uuid.UUID, kind: str, batch_id: uuid.UUID | None
) -> Posted:
    remaining = _remaining(hold)
    posted = await _post(
        session,
        TransferSpec(transfer_id, hold.held_account_id, hold.account_id, remaining),
        kind=kind,
        hold_id=hold.id,
        batch_id=batch_id,
    )
    invariant(posted.created, f"release of hold {hold.id} was not posted")
    await repository.update_hold(
        session,
        hold_id=hold.id,
        values={
            "released_amount": hold.released_amount + remaining,
            "status": "voided" if kind == "void" else "expired",
            "closed_at": posted.transfer.created_at,
        },
    )
    return posted


async def expire_holds(session: AsyncSession, *, now: datetime | None = None, limit: int) -> int:
    """Release pending holds whose expiry has passed; returns how many. Safe to run concurrently."""
    expired = await repository.lock_expired_holds(session, now=now or _now(), limit=limit)
    for hold in expired:
        transfer_id = uuid.uuid5(EXPIRY_NAMESPACE, str(hold.id))
        await _release(session, hold, transfer_id=transfer_id, kind="expire", batch_id=None)
    return len(expired)


# --- linked batches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferItem:
    transfer: TransferSpec
    type: Literal["transfer"] = "transfer"


@dataclass(frozen=True)
class PlaceHoldItem:
    hold_id: uuid.UUID
    account_id: int
    amount: int
    expires_at: datetime | None = None
    code: int = 0
    reference: str | None = None
    type: Literal["place_hold"] = "place_hold"


@dataclass(frozen=True)
class PostHoldItem:
    hold_id: uuid.UUID
    transfer_id: uuid.UUID
    credit_account_id: int
    amount: int | None = None
    code: int = 0
    reference: str | None = None
    type: Literal["post_hold"] = "post_hold"


@dataclass(frozen=True)
class VoidHoldItem:
    hold_id: uuid.UUID
    transfer_id: uuid.UUID
    type: Literal["void_hold"] = "void_hold"


BatchItem = TransferItem | PlaceHoldItem | PostHoldItem | VoidHoldItem


@dataclass(frozen=True)
class BatchResult:
    batch_id: uuid.UUID
    transfers: list[TransferRecord]
    created: bool = field(default=True)


def _arguments(item: BatchItem) -> dict[str, Any]:
    """A hold item's fields, named as the hold function's keyword arguments."""
    return {f.name: getattr(item, f.name) for f in fields(item) if f.name != "type"}


def _item_transfer_id(item: BatchItem) -> uuid.UUID:
    if isinstance(item, TransferItem):
        return item.transfer.id
    if isinstance(item, PlaceHoldItem):
        return item.hold_id
    return item.transfer_id


def _batch_fingerprint(items: Sequence[BatchItem]) -> bytes:
    canonical = json.dumps([asdict(item) for item in items], default=str, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


async def _claim_batch(session: AsyncSession, batch_id: uuid.UUID, items: Sequence[BatchItem]) -> bool:
    """Record the batch id with its items' fingerprint: True the first time; False for a replay of the
    same items. Raises BatchIdReusedWithDifferentRequest for other items under the same id."""
    fingerprint = _batch_fingerprint(items)
    if await repository.insert_batch(session, id=batch_id, request_hash=fingerprint, item_count=len(items)):
        return True
    batch = await repository.get_batch(session, batch_id)
    invariant(batch is not None, f"batch {batch_id} vanished")
    if batch.request_hash != fingerprint:
        raise errors.BatchIdReusedWithDifferentRequest(f"batch id {batch_id} was used for a different batch")
    return False


async def execute_batch(session: AsyncSession, *, batch_id: uuid.UUID, items: Sequence[BatchItem]) -> BatchResult:
    """Run transfers and hold operations as one linked unit: all of them or none, exactly once.

    Every hold and account involved is locked up front in a fixed order (holds, then accounts, each
    by ascending id), so concurrent batches cannot deadlock. A replay of the same batch returns its
    transfers with created=False.
    Raises BatchIdReusedWithDifferentRequest, DuplicateIdInBatch, and whatever its items raise.
    """
    transfer_ids = [_item_transfer_id(item) for item in items]
    if not await _claim_batch(session, batch_id, items):
        return BatchResult(batch_id, await _journal_transfers(session, transfer_ids), created=False)
    _require_unique(transfer_ids)

    hold_ids = [item.hold_id for item in items if isinstance(item, PostHoldItem | VoidHoldItem)]
    holds = await repository.lock_holds(session, hold_ids)
    account_ids = {a for h in holds for a in (h.account_id, h.held_account_id)}
    for item in items:
        if isinstance(item, TransferItem):
            account_ids |= {item.transfer.debit_account_id, item.transfer.credit_account_id}
        elif isinstance(item, PlaceHoldItem):
            account_ids.add(item.account_id)
        elif isinstance(item, PostHoldItem):
            account_ids.add(item.credit_account_id)
    await repository.lock_accounts(
        session,
        account_ids=sorted(account_ids),
        held_twins_of=[item.account_id for item in items if isinstance(item, PlaceHoldItem)],
    )

    run: list[TransferSpec] = []
    for item in [*items, None]:
        if isinstance(item, TransferItem):
            run.append(item.transfer)
            continue
        if run:
            await post_transfers(session, transfers=run, batch_id=batch_id)
            run = []
        if isinstance(item, PlaceHoldItem):
            await place_hold(session, **_arguments(item), batch_id=batch_id)
        elif isinstance(item, PostHoldItem):
            await post_hold(session, **_arguments(item), batch_id=batch_id)
        elif isinstance(item, VoidHoldItem):
            await void_hold(session, **_arguments(item), batch_id=batch_id)
    return BatchResult(batch_id, await _journal_transfers(session, transfer_ids))


@dataclass(frozen=True)
class Settled:
    batch_id: uuid.UUID
    created_at: datetime | None  # None for a replay
    created: bool


async def settle_holds(
    session: AsyncSession,
    *,
    batch_id: uuid.UUID,
    place: Sequence[PlaceHoldItem] = (),
    post: Sequence[PostHoldItem] = (),
    void: Sequence[VoidHoldItem] = (),
) -> Settled:
    """Settlement's hot path, one round trip: place these holds, then post these parts of holds (holds
    placed here included, several parts of one hold allowed), then release what remains of the voided
    holds (a void of a hold the posts exhausted moves nothing). All or none, exactly once per batch id.

    Placed holds never expire; posts and voids name their amounts and transfer ids. Raises
    BatchIdReusedWithDifferentRequest, HoldNotFound, HoldNotPending, HoldExpired, HoldAmountExceeded,
    HoldRequiresAvailableAccount, AccountNotFound, AccountsMustHaveSameAsset, InsufficientFunds,
    TransferExists, HoldIdReusedWithDifferentRequest; any refusal aborts the caller's transaction.
    """
    items = [*place, *post, *void]
    invariant(all(isinstance(item, PlaceHoldItem) and item.expires_at is None for item in place), "placed holds never expire")
    invariant(all(isinstance(item, PostHoldItem) and item.amount is not None for item in post), "posts name their amounts")
    invariant(all(isinstance(item, VoidHoldItem) for item in void), "voids are void items")
    invariant(all(0 < item.amount <= MAX_AMOUNT for item in [*place, *post]), "amounts are positive and in range")
    _require_unique([_item_transfer_id(item) for item in items])
    if not await _claim_batch(session, batch_id, items):
        return Settled(batch_id, None, created=False)
    created_at = await repository.settle_holds(
        session,
        batch_id=batch_id,
        place_ids=[i.hold_id for i in place],
        place_accounts=[i.account_id for i in place],
        place_amounts=[i.amount for i in place],
        place_references=[i.reference for i in place],
        post_holds=[i.hold_id for i in post],
        post_ids=[i.transfer_id for i in post],
        post_credits=[i.credit_account_id for i in post],
        post_amounts=[i.amount for i in post],
        post_references=[i.reference for i in post],
        void_holds=[i.hold_id for i in void],
        void_ids=[i.transfer_id for i in void],
    )
    return Settled(batch_id, created_at, created=True)


# --- history, registries, verification ---------------------------------------------------------------


@dataclass(frozen=True)
class EntryPage:
    entries: list[Any]
    next_before_seq: int | None


async def account_history(
    session: AsyncSession, *, account_id: int, before_seq: int | None, limit: int
) -> EntryPage:
    """An account's entries, newest first; pass `next_before_seq` back to get the next page."""
    await get_account(session, account_id)
    rows = await repository.account_entries(session, account_id=account_id, before_seq=before_seq, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return EntryPage(rows, rows[-1].seq if more else None)


@dataclass(frozen=True)
class StatementEntry:
    """One movement on an account: `amount` is signed (positive credits the account), `balance_after` is the
    account's running balance once it was booked."""

    seq: int
    created_at: datetime
    transfer_id: uuid.UUID
    kind: str
    reference: str | None
    amount: int
    balance_after: int


@dataclass(frozen=True)
class AccountStatement:
    """An account over a period: its balance when the period opens, every movement in it, and its balance when
    the period closes."""

    account_id: int
    opening: int
    entries: list[StatementEntry]
    closing: int


async def statement(
    session: AsyncSession, *, account_ids: Sequence[int], start: datetime, end: datetime
) -> list[AccountStatement]:
    """Each account's statement from `start` (inclusive) to `end` (exclusive), in the order asked. The balances
    are the journal's running balances, read independently of the movements, so opening plus the movements is
    the closing balance exactly when the journal is whole."""
    invariant(start <= end, f"a statement's period opens at {start} after it closes at {end}")
    balances = {row.account_id: row for row in await repository.balances_around(
        session, account_ids=account_ids, start=start, end=end
    )}
    entries: dict[int, list[StatementEntry]] = {account_id: [] for account_id in account_ids}
    for row in await repository.entries_between(session, account_ids=account_ids, start=start, end=end):
        entries[row.account_id].append(StatementEntry(**{k: v for k, v in row._mapping.items() if k != "account_id"}))
    return [
        AccountStatement(account_id, balances[account_id].opening, entries[account_id], balances[account_id].closing)
        for account_id in account_ids
    ]


@dataclass(frozen=True)
class Registry:
    asset: Asset
    as_of: datetime | None
    positions: list[Any]


async def holders_registry(session: AsyncSession, *, asset_code: str, as_of: datetime | None = None) -> Registry:
    """Who holds the asset, with available and held (encumbered) units, now or as of an instant (REQ-34)."""
    asset = await get_asset(session, asset_code)
    positions = await repository.holders(session, asset_id=asset.id, as_of=as_of)
    return Registry(asset, as_of, positions)


async def export_registry(
    session: AsyncSession, *, asset: Asset, as_of: datetime, fmt: Literal["csv", "jsonl"]
) -> AsyncIterator[bytes]:
    """The full holders registry for the central depository, streamed (REQ-35)."""
    async for chunk in repository.copy_holders(
        session, asset_id=asset.id, asset_code=asset.code, as_of=as_of, fmt=fmt
    ):
        yield chunk


@dataclass(frozen=True)
class Discrepancy:
    check: str
    account_id: int | None
    seq: int | None
    detail: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    transfers: int
    accounts: int
    checks: list[str]
    first_discrepancy: Discrepancy | None


async def verify(session: AsyncSession) -> Verification:
    """Recompute every hash chain and balance from the journal; report the first discrepancy.

    Checks, in order: each entry's hash, the chain links and running balances, the accounts' stored
    state, each transfer against its two entries, zero sum per asset, balance signs, held balances
    against pending holds.
    """
    counts = await repository.journal_counts(session)
    checks = [name for name, _ in repository.VERIFY_CHECKS]
    for name, check_sql in repository.VERIFY_CHECKS:
        found = await repository.first_discrepancy(session, check_sql=check_sql)
        if found is not None:
            return Verification(
                False, counts.entries, counts.transfers, counts.accounts, checks,
                Discrepancy(name, found.account_id, found.seq, found.detail),
            )
    return Verification(True, counts.entries, counts.transfers, counts.accounts, checks, None)



@dataclass(frozen=True)
class AssetIntegrity:
    """One asset's books as the journal and the accounts show them, from one set-based pass.

    `holdings` is what holders have (available + held); `issued` the units in circulation by the asset's
    issued account (None for money); `balance_sum` is zero when the books balance. `broken_entries`
    counts entries whose hash, chain link or running balance is wrong and transfers that do not match
    their two entries; `state_mismatches` accounts whose stored balance, version or last hash differ from
    their journal.
    """

    asset_id: int
    code: str
    kind: str
    accounts: int
    balance_sum: int
    holdings: int
    issued: int | None
    negative_balances: int
    broken_entries: int
    state_mismatches: int

    @property
    def intact(self) -> bool:
        return (
            self.balance_sum == 0 and self.negative_balances == 0 and self.broken_entries == 0
            and self.state_mismatches == 0 and (self.issued is None or self.issued == self.holdings)
        )


async def integrity_by_asset(session: AsyncSession) -> list[AssetIntegrity]:
    """Every asset's zero sum, holdings against circulation, balance signs and hash chains, recomputed
    from the journal in one pass over sets (the daily reconciliation's ledger check)."""
    return [AssetIntegrity(**row._mapping) for row in await repository.integrity_by_asset(session)]


class Holding(NamedTuple):  # a tuple: a daily run makes millions
    """What one holder has of one asset: available and held units together, on their available account."""

    asset_id: int
    owner_party_id: uuid.UUID
    account_id: int
    quantity: int


async def stream_holdings(
    session: AsyncSession, *, asset_ids: Sequence[int], chunk_rows: int = 10_000
) -> AsyncIterator[list[Holding]]:
    """Every positive holding of the assets, ordered by asset and then account id, streamed in chunks so
    a million holders never sit in memory at once."""
    async for rows in repository.stream_holdings(session, asset_ids=list(asset_ids), chunk_rows=chunk_rows):
        yield [Holding(*row) for row in rows]
