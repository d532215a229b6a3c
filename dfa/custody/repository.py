"""Every SQL statement of custody's wallets, tokens and chain batches (the vault keeps its own)."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.models import ChainBatch, ChainSender, Token, Wallet, WalletAddress

# --- wallets -----------------------------------------------------------------------------------------


async def insert_wallet(session: AsyncSession, *, values: dict[str, Any]) -> None:
    await session.execute(pg_insert(Wallet).values(**values).on_conflict_do_nothing())


async def lock_wallet(session: AsyncSession, *, segment: str, activity: str) -> Wallet | None:
    statement = select(Wallet).where(Wallet.segment == segment, Wallet.activity == activity).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_wallets(session: AsyncSession) -> list[Wallet]:
    return list((await session.execute(select(Wallet).order_by(Wallet.segment, Wallet.activity))).scalars())


async def get_wallet(session: AsyncSession, wallet_id: uuid.UUID) -> Wallet | None:
    return await session.get(Wallet, wallet_id)


async def find_address(
    session: AsyncSession, *, segment: str, activity: str, party_id: uuid.UUID, purpose: str
) -> WalletAddress | None:
    statement = (
        select(WalletAddress)
        .join(Wallet, Wallet.id == WalletAddress.wallet_id)
        .where(
            Wallet.segment == segment,
            Wallet.activity == activity,
            WalletAddress.party_id == party_id,
            WalletAddress.purpose == purpose,
        )
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_address(session: AsyncSession, *, values: dict[str, Any]) -> WalletAddress:
    return (await session.execute(pg_insert(WalletAddress).values(**values).returning(WalletAddress))).scalar_one()


async def advance_wallet_account(session: AsyncSession, *, wallet_id: uuid.UUID) -> int:
    """The wallet's next unused BIP-44 account number, taken."""
    statement = (
        update(Wallet)
        .where(Wallet.id == wallet_id)
        .values(next_account=Wallet.next_account + 1)
        .returning(Wallet.next_account - 1)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one()


async def get_address(session: AsyncSession, address: str) -> WalletAddress | None:
    return await session.get(WalletAddress, address)


async def list_addresses(
    session: AsyncSession, *, party_id: uuid.UUID | None, after: str | None, limit: int
) -> list[tuple[WalletAddress, Wallet]]:
    statement = (
        select(WalletAddress, Wallet)
        .join(Wallet, Wallet.id == WalletAddress.wallet_id)
        .order_by(WalletAddress.address)
        .limit(limit)
    )
    if party_id is not None:
        statement = statement.where(WalletAddress.party_id == party_id)
    if after is not None:
        statement = statement.where(WalletAddress.address > after)
    return [(row[0], row[1]) for row in (await session.execute(statement)).all()]


# --- chain senders, tokens, batches ---------------------------------------------------------------


async def lock_sender(session: AsyncSession, *, chain_id: int, address: str) -> ChainSender | None:
    statement = (
        select(ChainSender).where(ChainSender.chain_id == chain_id, ChainSender.address == address).with_for_update()
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_sender(session: AsyncSession, *, values: dict[str, Any]) -> None:
    await session.execute(pg_insert(ChainSender).values(**values).on_conflict_do_nothing())


async def get_token(session: AsyncSession, *, chain_id: int, asset_id: int) -> Token | None:
    return await session.get(Token, (chain_id, asset_id))


async def list_tokens(session: AsyncSession, *, chain_id: int) -> list[Token]:
    statement = select(Token).where(Token.chain_id == chain_id).order_by(Token.asset_id)
    return list((await session.execute(statement)).scalars())


async def insert_token(session: AsyncSession, *, values: dict[str, Any]) -> Token:
    return (await session.execute(pg_insert(Token).values(**values).returning(Token))).scalar_one()


async def insert_batch(session: AsyncSession, *, values: dict[str, Any]) -> ChainBatch:
    return (await session.execute(pg_insert(ChainBatch).values(**values).returning(ChainBatch))).scalar_one()


async def batches_in_status(
    session: AsyncSession, *, chain_id: int, statuses: Sequence[str], limit: int
) -> list[ChainBatch]:
    statement = (
        select(ChainBatch)
        .where(ChainBatch.chain_id == chain_id, ChainBatch.status.in_(statuses))
        .order_by(ChainBatch.nonce)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def count_open_batches(session: AsyncSession, *, chain_id: int) -> int:
    statement = select(func.count()).where(
        ChainBatch.chain_id == chain_id, ChainBatch.status.in_(("prepared", "signed", "sent"))
    )
    return (await session.execute(statement)).scalar_one()


async def count_batches_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(ChainBatch.status, func.count()).group_by(ChainBatch.status))
    return {status: count for status, count in rows.all()}


async def update_batch(session: AsyncSession, *, batch_id: int, values: dict[str, Any]) -> None:
    await session.execute(
        update(ChainBatch)
        .where(ChainBatch.id == batch_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def update_token(session: AsyncSession, *, chain_id: int, asset_id: int, values: dict[str, Any]) -> None:
    await session.execute(
        update(Token)
        .where(Token.chain_id == chain_id, Token.asset_id == asset_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def set_sender(session: AsyncSession, *, chain_id: int, address: str, values: dict[str, Any]) -> None:
    await session.execute(
        update(ChainSender)
        .where(ChainSender.chain_id == chain_id, ChainSender.address == address)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def supersede_chain(session: AsyncSession, *, chain_id: int) -> None:
    """Forget what was sent to a chain that no longer exists (a development node that restarted empty)."""
    await session.execute(
        text(
            "UPDATE custody_chain_batches SET status = 'superseded' WHERE chain_id = :chain AND status <> 'superseded'"
        ),
        {"chain": chain_id},
    )
    await session.execute(text("DELETE FROM custody_tokens WHERE chain_id = :chain"), {"chain": chain_id})
    await session.execute(text("DELETE FROM custody_chain_senders WHERE chain_id = :chain"), {"chain": chain_id})


async def unconfirmed_ops(session: AsyncSession, *, chain_id: int, asset_id: int, from_seq: int) -> list[Any]:
    """The ops of the token's batches the chain has not applied yet (seq >= the chain's next batch)."""
    statement = (
        select(ChainBatch.ops)
        .where(
            ChainBatch.chain_id == chain_id,
            ChainBatch.asset_id == asset_id,
            ChainBatch.kind == "ops",
            ChainBatch.status != "superseded",
            ChainBatch.seq >= from_seq,
        )
        .order_by(ChainBatch.seq)
    )
    return [op for ops in (await session.execute(statement)).scalars() for op in ops]


async def addresses_used(session: AsyncSession, *, chain_id: int, asset_id: int) -> list[str]:
    """Every address an op of the token's batches named: the addresses that can hold units on chain."""
    rows = await session.execute(
        text(
            """
            SELECT DISTINCT address FROM (
                SELECT op ->> 1 AS address FROM custody_chain_batches b, jsonb_array_elements(b.ops) op
                WHERE b.chain_id = :chain AND b.asset_id = :asset AND b.kind = 'ops' AND b.status <> 'superseded'
                UNION
                SELECT op ->> 2 FROM custody_chain_batches b, jsonb_array_elements(b.ops) op
                WHERE b.chain_id = :chain AND b.asset_id = :asset AND b.kind = 'ops' AND b.status <> 'superseded'
            ) used WHERE address IS NOT NULL
            """
        ),
        {"chain": chain_id, "asset": asset_id},
    )
    return [row.address for row in rows]
