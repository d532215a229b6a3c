"""Every SQL statement of the ledger.

The hot path is hand-written SQL: a single transfer is one statement, a run of transfers one call of
the set-based `ledger_post_batch` function. Database errors are translated to the ledger's named
errors here; no driver exception leaves this module.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import errors
from dfa.ledger.models import CONTRA_KINDS, Account, Asset, Batch, Hold, Transfer
from dfa.platform import faults
from dfa.platform.database import driver_connection

_CONTRA = ", ".join(f"'{kind}'" for kind in CONTRA_KINDS)


@dataclass(frozen=True)
class DatabaseError:
    sqlstate: str | None
    detail: dict[str, Any]
    constraint: str | None


def database_error(error: DBAPIError) -> DatabaseError:
    cause = getattr(error.orig, "__cause__", None)
    raw_detail = getattr(cause, "detail", None)
    try:
        detail = json.loads(raw_detail) if raw_detail else {}
    except ValueError:
        detail = {"text": raw_detail}
    return DatabaseError(
        sqlstate=getattr(cause, "sqlstate", None) or getattr(error.orig, "sqlstate", None),
        detail=detail if isinstance(detail, dict) else {"value": detail},
        constraint=getattr(cause, "constraint_name", None),
    )


# --- assets and accounts ---------------------------------------------------------------------------


async def insert_asset(session: AsyncSession, *, code: str, kind: str, scale: int, name: str) -> Asset | None:
    statement = (
        pg_insert(Asset)
        .values(code=code, kind=kind, scale=scale, name=name)
        .on_conflict_do_nothing()
        .returning(Asset)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def get_asset_by_code(session: AsyncSession, code: str) -> Asset | None:
    return (await session.execute(select(Asset).where(Asset.code == code))).scalar_one_or_none()


async def get_assets_by_code(session: AsyncSession, codes: Sequence[str]) -> list[Asset]:
    return list((await session.execute(select(Asset).where(Asset.code.in_(list(codes))))).scalars())


async def asset_codes(session: AsyncSession, asset_ids: Sequence[int]) -> dict[int, str]:
    statement = select(Asset.id, Asset.code).where(Asset.id.in_(list(asset_ids)))
    return dict((await session.execute(statement)).all())


async def get_asset(session: AsyncSession, asset_id: int) -> Asset | None:
    return await session.get(Asset, asset_id)


async def list_assets(session: AsyncSession, *, after: int | None, limit: int) -> list[Asset]:
    statement = select(Asset).order_by(Asset.id).limit(limit)
    if after is not None:
        statement = statement.where(Asset.id > after)
    return list((await session.execute(statement)).scalars())


async def asset_ids_of_kind(session: AsyncSession, *, kind: str) -> list[int]:
    return list((await session.execute(select(Asset.id).where(Asset.kind == kind).order_by(Asset.id))).scalars())


async def nonzero_accounts(session: AsyncSession, *, asset_id: int) -> list[Account]:
    statement = select(Account).where(Account.asset_id == asset_id, Account.balance != 0).order_by(Account.id)
    return list((await session.execute(statement)).scalars())


async def insert_accounts(session: AsyncSession, *, rows: list[dict[str, Any]]) -> list[Account] | None:
    """The new accounts in the given order, or None when a uniqueness rule refused one of them."""
    statement = pg_insert(Account).values(rows).on_conflict_do_nothing().returning(Account)
    created = list((await session.execute(statement)).scalars())
    if len(created) != len(rows):
        return None
    by_kind = {account.kind: account for account in created}
    return [by_kind[row["kind"]] for row in rows]


# Balances change through the journal functions, behind the ORM's back: an account read again in the same
# transaction is refreshed, never served stale from the session.
async def get_account(session: AsyncSession, account_id: int) -> Account | None:
    statement = select(Account).where(Account.id == account_id).execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def find_account(
    session: AsyncSession, *, owner_party_id: uuid.UUID, asset_id: int, kind: str
) -> Account | None:
    statement = select(Account).where(
        Account.owner_party_id == owner_party_id, Account.asset_id == asset_id, Account.kind == kind
    ).execution_options(populate_existing=True)
    return (await session.execute(statement)).scalars().first()


async def account_ids(
    session: AsyncSession, *, owners: Sequence[uuid.UUID], asset_ids: Sequence[int], kinds: Sequence[str]
) -> list[Any]:
    """(owner_party_id, asset_id, kind, id) of the first account of each (owner, asset, kind) asked for."""
    statement = text(
        """
        SELECT DISTINCT ON (a.owner_party_id, a.asset_id, a.kind) a.owner_party_id, a.asset_id, a.kind, a.id
        FROM unnest(CAST(:owners AS uuid[]), CAST(:assets AS integer[]), CAST(:kinds AS text[])) AS k (owner, asset, kind)
        JOIN ledger_accounts a ON a.owner_party_id = k.owner AND a.asset_id = k.asset AND a.kind = k.kind
        ORDER BY a.owner_party_id, a.asset_id, a.kind, a.id
        """
    )
    return list(await session.execute(statement, {"owners": list(owners), "assets": list(asset_ids), "kinds": list(kinds)}))


async def list_accounts(
    session: AsyncSession,
    *,
    owner_party_id: uuid.UUID | None,
    asset_id: int | None,
    after: int | None,
    limit: int,
) -> list[Account]:
    statement = select(Account).order_by(Account.id).limit(limit)
    if owner_party_id is not None:
        statement = statement.where(Account.owner_party_id == owner_party_id)
    if asset_id is not None:
        statement = statement.where(Account.asset_id == asset_id)
    if after is not None:
        statement = statement.where(Account.id > after)
    return list((await session.execute(statement)).scalars())


async def lock_accounts(session: AsyncSession, *, account_ids: Sequence[int], held_twins_of: Sequence[int]) -> None:
    """Lock these accounts and the held twins of `held_twins_of`, in ascending id order."""
    await session.execute(
        text(
            """
            SELECT a.id FROM ledger_accounts a
            WHERE a.id = ANY (CAST(:ids AS bigint[]))
               OR a.id IN (SELECT h.id FROM ledger_accounts s JOIN ledger_accounts h
                           ON h.owner_party_id = s.owner_party_id AND h.asset_id = s.asset_id AND h.kind = 'held'
                           WHERE s.id = ANY (CAST(:twins AS bigint[])))
            ORDER BY a.id FOR UPDATE OF a
            """
        ),
        {"ids": list(account_ids), "twins": list(held_twins_of)},
    )


# --- transfers ---------------------------------------------------------------------------------------

_POST_ONE = text(
    f"""
    WITH
    args AS (
        SELECT CAST(:id AS uuid) AS id, CAST(:debit AS bigint) AS debit, CAST(:credit AS bigint) AS credit,
               CAST(:amount AS bigint) AS amount, CAST(:kind AS text) AS kind, CAST(:hold_id AS uuid) AS hold_id,
               CAST(:batch_id AS uuid) AS batch_id, CAST(:code AS integer) AS code,
               CAST(:reference AS text) AS reference),
    prior AS (SELECT t.* FROM ledger_transfers t, args WHERE t.id = args.id),
    locked AS (
        SELECT a.id, a.asset_id, a.kind, a.balance, a.version,
               coalesce(a.last_hash, ledger_genesis_hash(a.id)) AS last_hash
        FROM ledger_accounts a, args WHERE a.id IN (args.debit, args.credit) ORDER BY a.id FOR UPDATE OF a),
    -- Stamped after the locks are held, so an account's entries are in time order as well as seq order.
    stamp AS (SELECT clock_timestamp() AS now FROM (SELECT count(*) FROM locked) AS taken),
    pair AS (
        SELECT d.asset_id, d.balance - args.amount AS debit_after, d.version + 1 AS debit_seq, d.last_hash AS debit_prev,
               c.balance + args.amount AS credit_after, c.version + 1 AS credit_seq, c.last_hash AS credit_prev,
               CASE WHEN d.kind IN ({_CONTRA}) THEN d.balance - args.amount <= 0
                    ELSE d.balance - args.amount >= 0 END AS debit_ok,
               CASE WHEN c.kind IN ({_CONTRA}) THEN c.balance + args.amount <= 0
                    ELSE c.balance + args.amount >= 0 END AS credit_ok
        FROM locked d, locked c, args
        WHERE d.id = args.debit AND c.id = args.credit AND d.asset_id = c.asset_id
          AND NOT EXISTS (SELECT FROM prior)),
    legs AS (
        SELECT args.debit AS account_id, pair.debit_seq AS seq, args.credit AS counter, -args.amount AS amount,
               pair.debit_after AS balance_after, pair.debit_prev AS prev_hash
        FROM pair, args WHERE pair.debit_ok AND pair.credit_ok
        UNION ALL
        SELECT args.credit, pair.credit_seq, args.debit, args.amount, pair.credit_after, pair.credit_prev
        FROM pair, args WHERE pair.debit_ok AND pair.credit_ok),
    chained AS (
        SELECT legs.*, ledger_entry_hash(legs.prev_hash, legs.account_id, legs.seq, args.id, legs.counter,
                                         legs.amount, legs.balance_after, stamp.now) AS hash
        FROM legs, args, stamp),
    moved AS (
        UPDATE ledger_accounts a SET balance = c.balance_after, version = c.seq, last_hash = c.hash
        FROM chained c WHERE a.id = c.account_id),
    entries AS (
        INSERT INTO ledger_entries
            (account_id, seq, transfer_id, counter_account_id, amount, balance_after, created_at, prev_hash, hash)
        SELECT c.account_id, c.seq, args.id, c.counter, c.amount, c.balance_after, stamp.now, c.prev_hash, c.hash
        FROM chained c, args, stamp),
    transfer AS (
        INSERT INTO ledger_transfers
            (id, debit_account_id, credit_account_id, asset_id, amount, kind, hold_id, batch_id, code, reference,
             created_at)
        SELECT args.id, args.debit, args.credit, pair.asset_id, args.amount, args.kind, args.hold_id, args.batch_id,
               args.code, args.reference, stamp.now
        FROM pair, args, stamp WHERE pair.debit_ok AND pair.credit_ok
        RETURNING created_at, asset_id)
    SELECT (SELECT created_at FROM transfer) AS created_at,
           (SELECT asset_id FROM transfer) AS asset_id,
           (SELECT array_agg(id) FROM locked) AS found_account_ids,
           (SELECT count(DISTINCT asset_id) FROM locked) AS asset_count,
           (SELECT debit_ok FROM pair) AS debit_ok,
           (SELECT credit_ok FROM pair) AS credit_ok,
           (SELECT row_to_json(prior) FROM prior) AS prior
    """
)


@dataclass(frozen=True)
class PostOutcome:
    """What the one-statement transfer did: posted it (created_at set) or why not."""

    created_at: datetime | None
    asset_id: int | None
    found_account_ids: list[int]
    asset_count: int
    debit_ok: bool | None
    credit_ok: bool | None
    prior: dict[str, Any] | None


async def post_one(
    session: AsyncSession,
    *,
    id: uuid.UUID,
    debit_account_id: int,
    credit_account_id: int,
    amount: int,
    kind: str,
    hold_id: uuid.UUID | None,
    batch_id: uuid.UUID | None,
    code: int,
    reference: str | None,
) -> PostOutcome:
    """Post one transfer in one statement, or report why it was not posted (nothing written then).

    Raises TransferExists when a concurrent transaction committed the same id first and
    BalanceLimitExceeded when a balance would overflow.
    """
    stale = await _naive_read(session, debit_account_id, credit_account_id)
    try:
        row = (
            await session.execute(
                _POST_ONE,
                {
                    "id": id,
                    "debit": debit_account_id,
                    "credit": credit_account_id,
                    "amount": amount,
                    "kind": kind,
                    "hold_id": hold_id,
                    "batch_id": batch_id,
                    "code": code,
                    "reference": reference,
                },
            )
        ).one()
    except DBAPIError as error:
        raise _translate(error, transfer_id=id) from None
    if stale is not None and row.created_at is not None:
        await _naive_write(session, stale, debit_account_id=debit_account_id, credit_account_id=credit_account_id,
                           amount=amount)
    prior = row.prior
    return PostOutcome(
        created_at=row.created_at,
        asset_id=row.asset_id,
        found_account_ids=list(row.found_account_ids or []),
        asset_count=row.asset_count,
        debit_ok=row.debit_ok,
        credit_ok=row.credit_ok,
        prior=json.loads(prior) if isinstance(prior, str) else prior,
    )


async def _naive_read(session: AsyncSession, *account_ids: int) -> dict[int, int] | None:
    """The balances as an unlocked read sees them, when the deliberately broken ledger is switched on."""
    if not faults.enabled(faults.NAIVE_READ_MODIFY_WRITE):
        return None
    rows = await session.execute(
        text("SELECT id, balance FROM ledger_accounts WHERE id = ANY (CAST(:ids AS bigint[]))"), {"ids": list(account_ids)}
    )
    await asyncio.sleep(0.002)  # the window in which another transfer commits
    return {row.id: row.balance for row in rows}


async def _naive_write(
    session: AsyncSession, stale: dict[int, int], *, debit_account_id: int, credit_account_id: int, amount: int
) -> None:
    """Write back balances computed from the unlocked read: a concurrent transfer's update is lost."""
    for account_id, balance in (
        (debit_account_id, stale[debit_account_id] - amount),
        (credit_account_id, stale[credit_account_id] + amount),
    ):
        await session.execute(
            text("UPDATE ledger_accounts SET balance = :balance WHERE id = :id"), {"balance": balance, "id": account_id}
        )


async def post_batch(
    session: AsyncSession,
    *,
    ids: list[uuid.UUID],
    debits: list[int],
    credits: list[int],
    amounts: list[int],
    codes: list[int],
    references: list[str | None],
    batch_id: uuid.UUID | None,
) -> tuple[datetime, list[int]]:
    """Post these transfers in order, all or none; returns their timestamp and asset ids.

    Raises AccountNotFound, AccountsMustHaveSameAsset, InsufficientFunds, TransferExists,
    BalanceLimitExceeded. A refusal here aborts the caller's transaction.
    """
    try:
        row = (
            await session.execute(
                text(
                    "SELECT * FROM ledger_post_batch(CAST(:ids AS uuid[]), CAST(:debits AS bigint[]), "
                    "CAST(:credits AS bigint[]), CAST(:amounts AS bigint[]), CAST(:codes AS integer[]), "
                    "CAST(:references AS text[]), CAST(:batch_id AS uuid))"
                ),
                {
                    "ids": ids,
                    "debits": debits,
                    "credits": credits,
                    "amounts": amounts,
                    "codes": codes,
                    "references": references,
                    "batch_id": batch_id,
                },
            )
        ).one()
    except DBAPIError as error:
        raise _translate(error, transfer_id=None) from None
    return row.created_at, row.asset_ids


def _translate(error: DBAPIError, *, transfer_id: uuid.UUID | None) -> Exception:
    found = database_error(error)
    detail = found.detail
    if found.sqlstate == "DL001":
        if not detail.get("debit_found") or not detail.get("credit_found"):
            missing = detail["debit"] if not detail.get("debit_found") else detail["credit"]
            return errors.AccountNotFound(
                f"transfer {detail['id']}: account {missing} does not exist",
                transfer_id=detail["id"],
                account_id=missing,
            )
        return errors.AccountsMustHaveSameAsset(
            f"transfer {detail['id']}: account {detail['debit']} holds asset {detail['debit_asset_id']}, "
            f"account {detail['credit']} holds asset {detail['credit_asset_id']}",
            transfer_id=detail["id"],
        )
    if found.sqlstate == "DL002" or (found.sqlstate == "23514" and found.constraint == "ck_ledger_accounts_balance_sign"):
        return errors.InsufficientFunds(
            f"transfer {detail.get('transfer_id', transfer_id)} would take account "
            f"{detail.get('account_id', '?')} past its limit",
            **detail,
        )
    if found.sqlstate == "DL003" or (found.sqlstate == "23505" and found.constraint == "pk_ledger_transfers"):
        existing = detail.get("transfer_id", str(transfer_id))
        return errors.TransferExists(f"transfer {existing} exists", transfer_id=existing)
    if found.sqlstate == "22003":
        return errors.BalanceLimitExceeded("a resulting balance would exceed the ledger's 64-bit range")
    return error


_SETTLE_HOLDS = text(
    "SELECT ledger_settle_holds(CAST(:batch_id AS uuid), CAST(:place_ids AS uuid[]), "
    "CAST(:place_accounts AS bigint[]), CAST(:place_amounts AS bigint[]), CAST(:place_references AS text[]), "
    "CAST(:post_holds AS uuid[]), CAST(:post_ids AS uuid[]), CAST(:post_credits AS bigint[]), "
    "CAST(:post_amounts AS bigint[]), CAST(:post_references AS text[]), CAST(:void_holds AS uuid[]), "
    "CAST(:void_ids AS uuid[]))"
)


async def settle_holds(session: AsyncSession, **arrays: Any) -> datetime:
    """Place, post and void holds in one statement (see `ledger_settle_holds`); returns its timestamp.

    Raises HoldNotFound, HoldNotPending, HoldExpired, HoldAmountExceeded, HoldRequiresAvailableAccount,
    HoldIdReusedWithDifferentRequest and what `post_batch` raises. A refusal aborts the caller's transaction.
    """
    try:
        return (await session.execute(_SETTLE_HOLDS, arrays)).scalar_one()
    except DBAPIError as error:
        raise _translate_settlement(error) from None


def _translate_settlement(error: DBAPIError) -> Exception:
    found = database_error(error)
    detail = found.detail
    hold = detail.get("hold_id")
    match found.sqlstate:
        case "DL004":
            return errors.HoldNotPending(f"hold {hold} is {detail['status']}", hold_id=hold, status=detail["status"])
        case "DL005":
            return errors.HoldAmountExceeded(
                f"hold {hold} has {detail['remaining']} remaining; {detail['asked']} was asked for",
                remaining=detail["remaining"],
            )
        case "DL006":
            return errors.HoldExpired(f"hold {hold} expired at {detail['expires_at']}", hold_id=hold)
        case "DL007":
            return errors.HoldNotFound(f"hold {hold} does not exist", hold_id=hold)
        case "DL008":
            return (
                errors.AccountNotFound(f"account {detail['account_id']} does not exist", account_id=detail["account_id"])
                if detail.get("kind") is None
                else errors.HoldRequiresAvailableAccount(
                    f"account {detail['account_id']} is a {detail['kind']} account; holds are placed on available accounts"
                )
            )
        case "DL009":
            return errors.HoldIdReusedWithDifferentRequest("a hold id of this batch was used before")
    return _translate(error, transfer_id=None)


async def get_transfers(session: AsyncSession, transfer_ids: Sequence[uuid.UUID]) -> list[Any]:
    table = Transfer.__table__
    return list(await session.execute(select(table).where(table.c.id.in_(list(transfer_ids)))))


# --- batches and holds --------------------------------------------------------------------------------


async def insert_batch(session: AsyncSession, *, id: uuid.UUID, request_hash: bytes, item_count: int) -> bool:
    """False when the batch id exists (waits while a concurrent transaction holds it)."""
    statement = (
        pg_insert(Batch)
        .values(id=id, request_hash=request_hash, item_count=item_count)
        .on_conflict_do_nothing()
        .returning(Batch.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def get_batch(session: AsyncSession, batch_id: uuid.UUID) -> Batch | None:
    return await session.get(Batch, batch_id)


async def get_hold(session: AsyncSession, hold_id: uuid.UUID, *, for_update: bool = False) -> Hold | None:
    statement = select(Hold).where(Hold.id == hold_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_holds(session: AsyncSession, hold_ids: Sequence[uuid.UUID]) -> list[Hold]:
    """Lock these holds in ascending id order."""
    statement = (
        select(Hold)
        .where(Hold.id.in_(sorted(set(hold_ids))))
        .order_by(Hold.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def insert_hold(session: AsyncSession, *, values: dict[str, Any]) -> Hold:
    statement = pg_insert(Hold).values(**values).returning(Hold)
    return (await session.execute(statement)).scalar_one()


async def update_hold(session: AsyncSession, *, hold_id: uuid.UUID, values: dict[str, Any]) -> Hold:
    statement = (
        update(Hold)
        .where(Hold.id == hold_id)
        .values(**values)
        .returning(Hold)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def lock_expired_holds(session: AsyncSession, *, now: datetime, limit: int) -> list[Hold]:
    """Pending holds past their expiry that no other transaction is working on."""
    statement = (
        select(Hold)
        .where(Hold.status == "pending", Hold.expires_at <= now)
        .order_by(Hold.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


# --- history and registries -----------------------------------------------------------------------------


async def account_entries(
    session: AsyncSession, *, account_id: int, before_seq: int | None, limit: int
) -> list[Any]:
    """An account's entries, newest first, with their transfers' kind, code and reference."""
    return list(
        await session.execute(
            text(
                """
                SELECT e.seq, e.transfer_id, e.counter_account_id, e.amount, e.balance_after, e.created_at,
                       e.hash, t.kind, t.code, t.reference, t.hold_id, t.batch_id
                FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
                WHERE e.account_id = :account_id AND e.seq < coalesce(CAST(:before AS bigint), 9223372036854775807)
                ORDER BY e.seq DESC LIMIT :limit
                """
            ),
            {"account_id": account_id, "before": before_seq, "limit": limit},
        )
    )


def _balance_before(instant: str) -> str:
    return f"""coalesce((SELECT e.balance_after FROM ledger_entries e
                         WHERE e.account_id = a.id AND e.created_at < {instant}
                         ORDER BY e.created_at DESC, e.seq DESC LIMIT 1), 0)"""


async def balances_around(
    session: AsyncSession, *, account_ids: Sequence[int], start: datetime, end: datetime
) -> list[Any]:
    """(account_id, opening, closing) of each account: its running balance after its last entry before `start`
    and before `end`, 0 before its first entry. An account's entries are stamped in sequence order (after its
    lock), so its latest entry by time is its latest by sequence."""
    statement = text(
        f"""
        SELECT a.id AS account_id, {_balance_before(":start")} AS opening, {_balance_before(":end")} AS closing
        FROM unnest(CAST(:ids AS bigint[])) AS a (id)
        """
    )
    return list(await session.execute(statement, {"ids": list(account_ids), "start": start, "end": end}))


async def entries_between(
    session: AsyncSession, *, account_ids: Sequence[int], start: datetime, end: datetime
) -> list[Any]:
    """The accounts' entries stamped from `start` (inclusive) to `end` (exclusive), by account and sequence,
    with their transfers' kind and reference."""
    return list(
        await session.execute(
            text(
                """
                SELECT e.account_id, e.seq, e.created_at, e.transfer_id, t.kind, t.reference, e.amount,
                       e.balance_after
                FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer_id
                WHERE e.account_id = ANY (CAST(:ids AS bigint[])) AND e.created_at >= :start AND e.created_at < :end
                ORDER BY e.account_id, e.seq
                """
            ),
            {"ids": list(account_ids), "start": start, "end": end},
        )
    )


def _named(name: str) -> str:
    return f":{name}"


def _holders_query(*, as_of: bool, param=_named) -> str:
    """Holders of one asset with available and held units, now or as of an instant."""
    asset_id = param("asset_id")
    if as_of:
        instant = f"CAST({param('as_of')} AS timestamptz)"
        balance = f"""(SELECT e.balance_after FROM ledger_entries e
                       WHERE e.account_id = {{account}}.id AND e.created_at <= {instant}
                       ORDER BY e.created_at DESC, e.seq DESC LIMIT 1)"""
        available = f"coalesce({balance.format(account='av')}, 0)"
        held = f"coalesce({balance.format(account='h')}, 0)"
        created_filter = f"AND av.created_at <= {instant}"
    else:
        available, held, created_filter = "av.balance", "coalesce(h.balance, 0)", ""
    return f"""
        SELECT * FROM (
            SELECT p.id AS holder_party_id, p.kind AS holder_kind, p.name AS holder_name,
                   p.identifier AS holder_identifier, p.resident AS holder_resident,
                   av.id AS account_id, {available} AS available_units, {held} AS held_units
            FROM ledger_accounts av
            JOIN parties p ON p.id = av.owner_party_id
            LEFT JOIN ledger_accounts h
                ON h.owner_party_id = av.owner_party_id AND h.asset_id = av.asset_id AND h.kind = 'held'
            WHERE av.asset_id = {asset_id} AND av.kind = 'available' {created_filter}
        ) AS positions
        WHERE available_units <> 0 OR held_units <> 0
        ORDER BY account_id
    """


async def holders(session: AsyncSession, *, asset_id: int, as_of: datetime | None) -> list[Any]:
    params: dict[str, Any] = {"asset_id": asset_id}
    if as_of is not None:
        params["as_of"] = as_of
    return list(await session.execute(text(_holders_query(as_of=as_of is not None)), params))


_POSITIONAL = {"asset_id": "$1", "as_of": "$2", "asset_code": "$3"}


async def copy_holders(
    session: AsyncSession, *, asset_id: int, asset_code: str, as_of: datetime, fmt: str
) -> AsyncIterator[bytes]:
    """Stream the registry as of `as_of` with PostgreSQL's COPY: CSV with a header, or JSON lines."""
    positions = _holders_query(as_of=True, param=_POSITIONAL.__getitem__)
    name = "holder_name"
    if fmt == "csv":
        # A holder's name comes from outside: one a spreadsheet would run as a formula (it starts with
        # = + - @, a tab or a carriage return) is written after an apostrophe, as plain text.
        name = (
            "CASE WHEN left(holder_name, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
            "THEN '''' || holder_name ELSE holder_name END"
        )
    query = (
        "SELECT CAST($3 AS text) AS asset_code, CAST($2 AS timestamptz) AS as_of, holder_party_id, holder_kind, "
        f"{name} AS holder_name, holder_identifier, holder_resident, account_id, available_units, held_units, "
        f"available_units + held_units AS total_units FROM ({positions}) AS r"
    )
    if fmt == "csv":
        options: dict[str, Any] = {"format": "csv", "header": True}
    else:
        # JSON text never holds a raw control character, so CSV quoting with control characters as
        # quote and delimiter writes each JSON object verbatim, one per line.
        query = f"SELECT row_to_json(r)::text FROM ({query}) AS r"
        options = {"format": "csv", "quote": "\x01", "delimiter": "\x02"}
    driver = await driver_connection(session)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)

    async def sink(chunk: bytes) -> None:
        await queue.put(bytes(chunk))

    async def run_copy() -> None:
        try:
            await driver.copy_from_query(query, asset_id, as_of, asset_code, output=sink, **options)
        finally:
            await queue.put(None)

    task = asyncio.create_task(run_copy())
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await task
    finally:
        if not task.done():
            task.cancel()


# --- verification ------------------------------------------------------------------------------------

# An entry's hash as the journal function computes it from the entry's own fields.
_RECOMPUTED_HASH = (
    "ledger_entry_hash(e.prev_hash, e.account_id, e.seq, e.transfer_id, e.counter_account_id, e.amount, "
    "e.balance_after, e.created_at)"
)

VERIFY_CHECKS: list[tuple[str, str]] = [
    (
        "entry_hash",
        f"""
        SELECT e.account_id, e.seq, e.created_at, 'stored hash differs from the recomputed hash' AS detail
        FROM ledger_entries e
        WHERE e.hash <> {_RECOMPUTED_HASH}
        """,
    ),
    (
        "chain_link",
        """
        SELECT account_id, seq, created_at, detail FROM (
            SELECT e.account_id, e.seq, e.created_at, e.prev_hash,
                   lag(e.hash) OVER w AS previous_hash, lag(e.seq) OVER w AS previous_seq,
                   sum(e.amount) OVER w AS running_balance, e.balance_after,
                   CASE
                       WHEN e.seq <> coalesce(lag(e.seq) OVER w, 0) + 1 THEN 'sequence gap before this entry'
                       WHEN e.prev_hash <> coalesce(lag(e.hash) OVER w, ledger_genesis_hash(e.account_id))
                           THEN 'prev_hash does not match the previous entry'
                       WHEN e.balance_after <> sum(e.amount) OVER w THEN 'balance_after is not the running sum'
                   END AS detail
            FROM ledger_entries e
            WINDOW w AS (PARTITION BY e.account_id ORDER BY e.seq)
        ) AS chained WHERE detail IS NOT NULL
        """,
    ),
    (
        "account_state",
        """
        SELECT a.id AS account_id, a.version AS seq, a.created_at,
               'stored balance, version or last hash differs from the journal' AS detail
        FROM ledger_accounts a
        LEFT JOIN LATERAL (
            SELECT e.balance_after, e.seq, e.hash FROM ledger_entries e
            WHERE e.account_id = a.id ORDER BY e.seq DESC LIMIT 1) last ON true
        WHERE a.balance <> coalesce(last.balance_after, 0)
           OR a.version <> coalesce(last.seq, 0)
           OR a.last_hash IS DISTINCT FROM last.hash
        """,
    ),
    (
        "transfer_entries",
        """
        SELECT coalesce(t.debit_account_id, e.account_id) AS account_id, e.seq,
               coalesce(t.created_at, e.created_at) AS created_at,
               'transfer ' || coalesce(t.id, e.transfer_id) || ' does not match its two entries' AS detail
        FROM ledger_transfers t
        FULL JOIN ledger_entries e ON e.transfer_id = t.id
        WHERE t.id IS NULL OR e.transfer_id IS NULL
           OR NOT ((e.account_id = t.debit_account_id AND e.counter_account_id = t.credit_account_id
                    AND e.amount = -t.amount)
                OR (e.account_id = t.credit_account_id AND e.counter_account_id = t.debit_account_id
                    AND e.amount = t.amount))
           OR e.created_at <> t.created_at
        UNION ALL
        SELECT t.debit_account_id, NULL, t.created_at, 'transfer ' || t.id || ' has ' || count(e.*) || ' entries'
        FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id
        GROUP BY t.id HAVING count(e.*) <> 2 OR sum(e.amount) <> 0
        """,
    ),
    (
        "zero_sum",
        """
        SELECT NULL::bigint AS account_id, NULL::bigint AS seq, NULL::timestamptz AS created_at,
               'asset ' || s.code || ' balances sum to ' || s.total AS detail
        FROM (SELECT x.code, sum(a.balance) AS total FROM ledger_accounts a JOIN ledger_assets x ON x.id = a.asset_id
              GROUP BY x.code) s
        WHERE s.total <> 0
        """,
    ),
    (
        "balance_sign",
        f"""
        SELECT e.account_id, e.seq, e.created_at, 'balance crossed the account kind''s sign' AS detail
        FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
        WHERE CASE WHEN a.kind IN ({_CONTRA}) THEN e.balance_after > 0 ELSE e.balance_after < 0 END
        """,
    ),
    (
        "holds",
        """
        SELECT a.id AS account_id, NULL::bigint AS seq, NULL::timestamptz AS created_at,
               'held balance ' || a.balance || ' differs from pending holds ' || coalesce(p.remaining, 0) AS detail
        FROM ledger_accounts a
        LEFT JOIN (SELECT held_account_id, sum(amount - posted_amount - released_amount) AS remaining
                   FROM ledger_holds WHERE status = 'pending' GROUP BY held_account_id) p
            ON p.held_account_id = a.id
        WHERE a.kind = 'held' AND a.balance <> coalesce(p.remaining, 0)
        """,
    ),
]


async def first_discrepancy(session: AsyncSession, *, check_sql: str) -> Any | None:
    wrapped = f"SELECT * FROM ({check_sql}) AS found ORDER BY created_at NULLS LAST, account_id, seq LIMIT 1"
    return (await session.execute(text(wrapped))).first()


async def journal_counts(session: AsyncSession) -> Any:
    return (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM ledger_entries) AS entries, "
                "(SELECT count(*) FROM ledger_transfers) AS transfers, "
                "(SELECT count(*) FROM ledger_accounts) AS accounts"
            )
        )
    ).one()


# --- per-asset integrity, for the daily reconciliation ------------------------------------------------

_INTEGRITY_BY_ASSET = f"""
WITH judged AS (
    -- Each entry against its own fields and its predecessor's: by induction along the chain this proves
    -- the hashes, the links, the gapless sequence and every running balance, and unlike a window over
    -- each account it is a join PostgreSQL runs in parallel.
    SELECT e.account_id,
           e.hash <> {_RECOMPUTED_HASH}
           OR CASE WHEN e.seq = 1 THEN e.prev_hash <> ledger_genesis_hash(e.account_id) OR e.balance_after <> e.amount
                   ELSE p.seq IS NULL OR e.prev_hash <> p.hash OR e.balance_after <> p.balance_after + e.amount
              END AS broken
    FROM ledger_entries e
    LEFT JOIN ledger_entries p ON p.account_id = e.account_id AND p.seq = e.seq - 1
),
broken AS (
    SELECT a.asset_id, count(*) AS broken_entries
    FROM judged j JOIN ledger_accounts a ON a.id = j.account_id
    WHERE j.broken GROUP BY a.asset_id
),
accounts AS (
    -- An account's state is its entry numbered `version`, and no entry follows it (with the chain gapless,
    -- a later entry would be numbered version + 1).
    SELECT a.asset_id, count(*) AS accounts, coalesce(sum(a.balance), 0) AS balance_sum,
           coalesce(sum(a.balance) FILTER (WHERE a.kind IN ('available', 'held')), 0) AS holdings,
           -sum(a.balance) FILTER (WHERE a.kind = 'issued') AS issued,
           count(*) FILTER (WHERE CASE WHEN a.kind IN ({_CONTRA}) THEN a.balance > 0 ELSE a.balance < 0 END)
               AS negative_balances,
           count(*) FILTER (WHERE a.balance <> coalesce(l.balance_after, 0) OR a.last_hash IS DISTINCT FROM l.hash
                                  OR (a.version <> 0 AND l.seq IS NULL) OR n.seq IS NOT NULL) AS state_mismatches
    FROM ledger_accounts a
    LEFT JOIN ledger_entries l ON l.account_id = a.id AND l.seq = a.version
    LEFT JOIN ledger_entries n ON n.account_id = a.id AND n.seq = a.version + 1
    GROUP BY a.asset_id
),
unmatched AS (
    SELECT t.asset_id, count(*) AS unmatched_transfers
    FROM ledger_transfers t
    LEFT JOIN ledger_entries d ON d.transfer_id = t.id AND d.account_id = t.debit_account_id
        AND d.counter_account_id = t.credit_account_id AND d.amount = -t.amount AND d.created_at = t.created_at
    LEFT JOIN ledger_entries c ON c.transfer_id = t.id AND c.account_id = t.credit_account_id
        AND c.counter_account_id = t.debit_account_id AND c.amount = t.amount AND c.created_at = t.created_at
    WHERE d.transfer_id IS NULL OR c.transfer_id IS NULL
    GROUP BY t.asset_id
)
SELECT x.id AS asset_id, x.code, x.kind, coalesce(a.accounts, 0) AS accounts,
       CAST(coalesce(a.balance_sum, 0) AS bigint) AS balance_sum, CAST(coalesce(a.holdings, 0) AS bigint) AS holdings,
       CAST(a.issued AS bigint) AS issued,
       coalesce(a.negative_balances, 0) AS negative_balances, coalesce(a.state_mismatches, 0) AS state_mismatches,
       coalesce(b.broken_entries, 0) + coalesce(u.unmatched_transfers, 0) AS broken_entries
FROM ledger_assets x
LEFT JOIN accounts a ON a.asset_id = x.id
LEFT JOIN broken b ON b.asset_id = x.id
LEFT JOIN unmatched u ON u.asset_id = x.id
ORDER BY x.id
"""


async def integrity_by_asset(session: AsyncSession) -> list[Any]:
    return list(await session.execute(text(_INTEGRITY_BY_ASSET)))


async def stream_holdings(session: AsyncSession, *, asset_ids: list[int], chunk_rows: int) -> AsyncIterator[list[Any]]:
    """Each holder's available + held units per asset, in (asset, available account) order, in chunks.

    Read through the driver's cursor in the session's transaction: a daily run reads a million of these,
    and rows built by the driver alone cost a fraction of mapped ones."""
    driver = await driver_connection(session)
    cursor = await driver.cursor(
        """
        SELECT asset_id, owner_party_id, min(id) FILTER (WHERE kind = 'available') AS account_id,
               CAST(sum(balance) AS bigint) AS quantity
        FROM ledger_accounts
        WHERE asset_id = ANY($1::integer[]) AND kind IN ('available', 'held')
        GROUP BY asset_id, owner_party_id
        HAVING sum(balance) > 0
        ORDER BY asset_id, account_id
        """,
        asset_ids,
    )
    while rows := await cursor.fetch(chunk_rows):
        yield rows
