import contextlib
import hashlib

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger


@contextlib.asynccontextmanager
async def refused(session: AsyncSession, error_type: type[Exception]):
    """Expect `error_type` from the block; the block's writes are rolled back to a savepoint."""
    with pytest.raises(error_type):
        async with session.begin_nested():
            yield


async def balance(session: AsyncSession, account_id: int) -> int:
    return (await session.execute(text("SELECT balance FROM ledger_accounts WHERE id = :id"), {"id": account_id})).scalar_one()


async def count(session: AsyncSession, sql: str, **params) -> int:
    return (await session.execute(text(f"SELECT count(*) FROM {sql}"), params)).scalar_one()


async def assert_ledger_verifies(session: AsyncSession) -> None:
    result = await ledger.verify(session)
    assert result.ok, result.first_discrepancy


def python_entry_hash(prev: bytes, account_id, seq, transfer_id, counter, amount, balance_after, created_at) -> bytes:
    """The documented canonical entry text, hashed independently of the database's function."""
    micros = int(created_at.timestamp()) * 1_000_000 + created_at.microsecond
    canonical = "|".join(str(v) for v in (account_id, seq, transfer_id, counter, amount, balance_after, micros))
    return hashlib.sha256(prev + canonical.encode()).digest()


def python_genesis_hash(account_id: int) -> bytes:
    return hashlib.sha256(f"dfa-ledger-account|{account_id}".encode()).digest()
