"""Every SQL statement of money in and out: payment references, clients' bank accounts, bank statements
and their lines, withdrawals and the payment runs that carry them to the bank."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, cast, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dfa.settlement.models import (
    BankAccount,
    PaymentReference,
    PaymentRun,
    StatementImport,
    StatementLine,
    Withdrawal,
)

# --- payment references ---------------------------------------------------------------------------------


async def get_payment_reference(session: AsyncSession, party_id: uuid.UUID) -> PaymentReference | None:
    statement = select(PaymentReference).where(PaymentReference.party_id == party_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_payment_reference(session: AsyncSession, *, party_id: uuid.UUID, reference: str) -> None:
    """Insert unless the party has a reference or the reference is taken (the caller reads back which)."""
    await session.execute(
        pg_insert(PaymentReference).values(party_id=party_id, reference=reference).on_conflict_do_nothing()
    )


async def parties_of_references(session: AsyncSession, references: Iterable[str]) -> dict[str, uuid.UUID]:
    wanted = sorted(set(references))
    if not wanted:
        return {}
    rows = await session.execute(
        select(PaymentReference.reference, PaymentReference.party_id).where(PaymentReference.reference.in_(wanted))
    )
    return {reference: party_id for reference, party_id in rows}


# --- clients' bank accounts -----------------------------------------------------------------------------


async def insert_bank_account(session: AsyncSession, *, values: dict[str, Any]) -> BankAccount | None:
    """The new account, or None when the party has registered this IBAN already."""
    statement = pg_insert(BankAccount).values(**values).on_conflict_do_nothing().returning(BankAccount)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_bank_account(
    session: AsyncSession, bank_account_id: int, *, for_update: bool = False
) -> BankAccount | None:
    statement = select(BankAccount).where(BankAccount.id == bank_account_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def find_bank_account(session: AsyncSession, *, party_id: uuid.UUID, iban: str) -> BankAccount | None:
    statement = select(BankAccount).where(BankAccount.party_id == party_id, BankAccount.iban == iban)
    return (await session.execute(statement)).scalar_one_or_none()


async def count_bank_accounts(session: AsyncSession, *, party_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(BankAccount).where(BankAccount.party_id == party_id)
    return (await session.execute(statement)).scalar_one()


async def list_bank_accounts(
    session: AsyncSession, *, party_id: uuid.UUID | None, status: str | None, after: int | None, limit: int
) -> list[BankAccount]:
    statement = select(BankAccount).order_by(BankAccount.id).limit(limit)
    if party_id is not None:
        statement = statement.where(BankAccount.party_id == party_id)
    if status is not None:
        statement = statement.where(BankAccount.status == status)
    if after is not None:
        statement = statement.where(BankAccount.id > after)
    return list((await session.execute(statement)).scalars())


async def update_bank_account(session: AsyncSession, bank_account_id: int, **values: Any) -> BankAccount:
    statement = (
        update(BankAccount).where(BankAccount.id == bank_account_id).values(**values).returning(BankAccount)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def verify_unverified_accounts(
    session: AsyncSession, *, owners: Sequence[tuple[uuid.UUID, str]], verified_by: str, verified_at: datetime
) -> list[BankAccount]:
    """Mark verified the still unverified accounts among these (party, IBAN) pairs; returns them."""
    if not owners:
        return []
    statement = (
        update(BankAccount)
        .where(tuple_(BankAccount.party_id, BankAccount.iban).in_(sorted(set(owners))))
        .where(BankAccount.status == "unverified")
        .values(status="verified", verified_by=verified_by, verified_at=verified_at)
        .returning(BankAccount)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


# --- statements -----------------------------------------------------------------------------------------


async def statement_imported_before(
    session: AsyncSession, *, account_iban: str, statement_id: str, digest: bytes
) -> bool:
    statement = select(StatementImport.id).where(
        StatementImport.account_iban == account_iban,
        StatementImport.statement_id == statement_id,
        StatementImport.digest == digest,
    ).limit(1)
    return (await session.execute(statement)).first() is not None


async def insert_statement_import(session: AsyncSession, *, values: dict[str, Any]) -> int:
    statement = pg_insert(StatementImport).values(**values).returning(StatementImport.id)
    return (await session.execute(statement)).scalar_one()


async def update_statement_import(session: AsyncSession, import_id: int, **values: Any) -> None:
    await session.execute(
        update(StatementImport).where(StatementImport.id == import_id).values(**values)
        .execution_options(synchronize_session=False)
    )


async def list_statement_imports(
    session: AsyncSession, *, before: int | None, limit: int
) -> list[StatementImport]:
    statement = select(StatementImport).order_by(StatementImport.id.desc()).limit(limit)
    if before is not None:
        statement = statement.where(StatementImport.id < before)
    return list((await session.execute(statement)).scalars())


async def insert_statement_lines(session: AsyncSession, *, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the lines not stored yet; returns the entry references of those inserted now.

    A line another transaction is inserting at the same moment waits for it and is skipped once it
    commits, so concurrent imports of one statement store (and credit) every line once.
    """
    if not rows:
        return set()
    statement = (
        pg_insert(StatementLine)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["account_iban", "entry_reference"])
        .returning(StatementLine.entry_reference)
    )
    return set((await session.execute(statement)).scalars())


async def unmatched_credits_tiyn(session: AsyncSession) -> int:
    statement = select(cast(func.coalesce(func.sum(StatementLine.amount_tiyn), 0), BigInteger)).where(
        StatementLine.status == "unmatched", StatementLine.credit.is_(True)
    )
    return (await session.execute(statement)).scalar_one()


async def get_statement_line(session: AsyncSession, line_id: int, *, for_update: bool = False) -> StatementLine | None:
    statement = select(StatementLine).where(StatementLine.id == line_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def list_statement_lines(
    session: AsyncSession, *, status: str | None, party_id: uuid.UUID | None, after: int | None, limit: int
) -> list[StatementLine]:
    statement = select(StatementLine).order_by(StatementLine.id).limit(limit)
    if status is not None:
        statement = statement.where(StatementLine.status == status)
    if party_id is not None:
        statement = statement.where(StatementLine.party_id == party_id)
    if after is not None:
        statement = statement.where(StatementLine.id > after)
    return list((await session.execute(statement)).scalars())


async def update_statement_line(session: AsyncSession, line_id: int, **values: Any) -> StatementLine:
    statement = (
        update(StatementLine).where(StatementLine.id == line_id).values(**values).returning(StatementLine)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


# --- withdrawals ----------------------------------------------------------------------------------------


async def insert_withdrawal(session: AsyncSession, *, values: dict[str, Any]) -> Withdrawal | None:
    statement = pg_insert(Withdrawal).values(**values).on_conflict_do_nothing().returning(Withdrawal)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_withdrawal(session: AsyncSession, withdrawal_id: uuid.UUID, *, for_update: bool = False) -> Withdrawal | None:
    statement = select(Withdrawal).where(Withdrawal.id == withdrawal_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def withdrawals_by_end_to_end_id(session: AsyncSession, end_to_end_ids: Iterable[str]) -> dict[str, Withdrawal]:
    wanted = sorted(set(end_to_end_ids))
    if not wanted:
        return {}
    rows = await session.execute(select(Withdrawal).where(Withdrawal.end_to_end_id.in_(wanted)))
    return {withdrawal.end_to_end_id: withdrawal for withdrawal in rows.scalars()}


async def list_withdrawals(
    session: AsyncSession, *, party_id: uuid.UUID | None, status: str | None, before: uuid.UUID | None, limit: int
) -> list[Withdrawal]:
    """Newest first; `before` is the id of the last withdrawal of the previous page."""
    statement = select(Withdrawal).order_by(Withdrawal.created_at.desc(), Withdrawal.id.desc()).limit(limit)
    if party_id is not None:
        statement = statement.where(Withdrawal.party_id == party_id)
    if status is not None:
        statement = statement.where(Withdrawal.status == status)
    if before is not None:
        cursor_at = select(Withdrawal.created_at).where(Withdrawal.id == before).scalar_subquery()
        statement = statement.where(tuple_(Withdrawal.created_at, Withdrawal.id) < tuple_(cursor_at, before))
    return list((await session.execute(statement)).scalars())


async def lock_requested_withdrawals_to(session: AsyncSession, *, bank_account_id: int) -> list[Withdrawal]:
    statement = (
        select(Withdrawal)
        .where(Withdrawal.bank_account_id == bank_account_id, Withdrawal.status == "requested")
        .order_by(Withdrawal.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


async def claim_requested_withdrawals(session: AsyncSession, *, limit: int) -> list[tuple[Withdrawal, BankAccount]]:
    """The oldest requested withdrawals to verified accounts, locked; those another transaction holds
    (being claimed or cancelled) are skipped, so concurrent claims never take one withdrawal twice."""
    statement = (
        select(Withdrawal, BankAccount)
        .join(BankAccount, BankAccount.id == Withdrawal.bank_account_id)
        .where(Withdrawal.status == "requested", BankAccount.status == "verified")
        .order_by(Withdrawal.created_at, Withdrawal.id)
        .limit(limit)
        .with_for_update(of=Withdrawal, skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return [(withdrawal, account) for withdrawal, account in (await session.execute(statement)).all()]


async def update_withdrawals(session: AsyncSession, withdrawal_ids: Sequence[uuid.UUID], **values: Any) -> None:
    if not withdrawal_ids:
        return
    await session.execute(
        update(Withdrawal).where(Withdrawal.id.in_(list(withdrawal_ids))).values(**values)
        .execution_options(synchronize_session=False)
    )


async def withdrawals_of_run(session: AsyncSession, *, message_id: str) -> list[Withdrawal]:
    statement = (
        select(Withdrawal).where(Withdrawal.message_id == message_id).order_by(Withdrawal.id)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(statement)).scalars())


# --- payment runs ---------------------------------------------------------------------------------------


async def insert_payment_run(session: AsyncSession, *, values: dict[str, Any]) -> PaymentRun:
    statement = pg_insert(PaymentRun).values(**values).returning(PaymentRun)
    return (await session.execute(statement)).scalar_one()


async def built_payment_runs(session: AsyncSession, *, limit: int) -> list[PaymentRun]:
    statement = (
        select(PaymentRun).where(PaymentRun.status == "built").order_by(PaymentRun.created_at, PaymentRun.message_id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def get_payment_run(session: AsyncSession, message_id: str, *, for_update: bool = False) -> PaymentRun | None:
    statement = select(PaymentRun).where(PaymentRun.message_id == message_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def update_payment_run(session: AsyncSession, message_id: str, **values: Any) -> None:
    await session.execute(
        update(PaymentRun).where(PaymentRun.message_id == message_id).values(**values)
        .execution_options(synchronize_session=False)
    )


async def count_built_attempt(session: AsyncSession, *, message_id: str) -> None:
    """One more send of a run that is still waiting for the bank's answer."""
    await session.execute(
        update(PaymentRun)
        .where(PaymentRun.message_id == message_id, PaymentRun.status == "built")
        .values(attempts=PaymentRun.attempts + 1)
        .execution_options(synchronize_session=False)
    )


# --- the submission lock --------------------------------------------------------------------------------


async def try_advisory_lock(connection: AsyncConnection, *, key: int) -> bool:
    """Take the session-level advisory lock `key` on this connection if nobody holds it."""
    return bool((await connection.execute(select(func.pg_try_advisory_lock(key)))).scalar_one())


async def advisory_unlock(connection: AsyncConnection, *, key: int) -> None:
    await connection.execute(select(func.pg_advisory_unlock(key)))
