"""SQL of issuers, their representatives, documents and blocks."""

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from dfa.issuance.models import Document, Issuer, IssuerBlock, Representative

# --- issuers ------------------------------------------------------------------------------------------


async def insert_issuer(session: AsyncSession, *, values: dict[str, Any]) -> Issuer | None:
    """The new issuer, or None when the party is one already."""
    statement = pg_insert(Issuer).values(**values).on_conflict_do_nothing().returning(Issuer)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_issuer(session: AsyncSession, party_id: uuid.UUID, *, for_update: bool = False) -> Issuer | None:
    statement = select(Issuer).where(Issuer.party_id == party_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def list_issuers(
    session: AsyncSession, *, only: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[Issuer]:
    statement = select(Issuer).order_by(Issuer.party_id).limit(limit)
    if only is not None:
        statement = statement.where(Issuer.party_id == only)
    if after is not None:
        statement = statement.where(Issuer.party_id > after)
    return list((await session.execute(statement)).scalars())


# --- representatives ------------------------------------------------------------------------------------


async def insert_representative(session: AsyncSession, *, values: dict[str, Any]) -> Representative:
    representative = Representative(**values)
    session.add(representative)
    await session.flush()
    return representative


async def get_representative(
    session: AsyncSession, representative_id: uuid.UUID, *, for_update: bool = False
) -> Representative | None:
    statement = select(Representative).where(Representative.id == representative_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def find_active_representative(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, iin: str
) -> Representative | None:
    statement = select(Representative).where(
        Representative.issuer_party_id == issuer_party_id, Representative.iin == iin,
        Representative.revoked_at.is_(None),
    ).limit(1)
    return (await session.execute(statement)).scalar_one_or_none()


async def list_representatives(session: AsyncSession, *, issuer_party_id: uuid.UUID) -> list[Representative]:
    statement = (
        select(Representative)
        .where(Representative.issuer_party_id == issuer_party_id)
        .order_by(Representative.created_at, Representative.id)
    )
    return list((await session.execute(statement)).scalars())


async def update_representative(session: AsyncSession, representative_id: uuid.UUID, **values: Any) -> Representative:
    statement = (
        update(Representative).where(Representative.id == representative_id).values(**values).returning(Representative)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


# --- documents ------------------------------------------------------------------------------------------


async def insert_document(session: AsyncSession, *, values: dict[str, Any]) -> Document:
    document = Document(**values)
    session.add(document)
    await session.flush()
    return document


async def get_document(session: AsyncSession, document_id: uuid.UUID, *, with_content: bool = False) -> Document | None:
    statement = select(Document).where(Document.id == document_id).execution_options(populate_existing=True)
    if with_content:
        statement = statement.options(undefer(Document.content))
    return (await session.execute(statement)).scalar_one_or_none()


async def list_documents(
    session: AsyncSession, *, issuer_party_id: uuid.UUID | None = None, underlying_asset_id: uuid.UUID | None = None,
    limit: int,
) -> list[Document]:
    """Metadata of the documents (never their bytes), newest first."""
    statement = select(Document).order_by(Document.uploaded_at.desc(), Document.id).limit(limit)
    if issuer_party_id is not None:
        statement = statement.where(Document.issuer_party_id == issuer_party_id)
    if underlying_asset_id is not None:
        statement = statement.where(Document.underlying_asset_id == underlying_asset_id)
    return list((await session.execute(statement)).scalars())


# --- blocks ---------------------------------------------------------------------------------------------


async def insert_open_block(session: AsyncSession, *, values: dict[str, Any]) -> IssuerBlock | None:
    """The new block, or None when the same block (issuer, source, reference) is open already."""
    statement = (
        pg_insert(IssuerBlock)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[IssuerBlock.issuer_party_id, IssuerBlock.source, IssuerBlock.reference],
            index_where=IssuerBlock.lifted_at.is_(None),
        )
        .returning(IssuerBlock)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def find_open_block(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, source: str, reference: str, for_update: bool = False
) -> IssuerBlock | None:
    statement = select(IssuerBlock).where(
        IssuerBlock.issuer_party_id == issuer_party_id, IssuerBlock.source == source,
        IssuerBlock.reference == reference, IssuerBlock.lifted_at.is_(None),
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def get_block(session: AsyncSession, block_id: uuid.UUID, *, for_update: bool = False) -> IssuerBlock | None:
    statement = select(IssuerBlock).where(IssuerBlock.id == block_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement.execution_options(populate_existing=True))).scalar_one_or_none()


async def update_block(session: AsyncSession, block_id: uuid.UUID, **values: Any) -> IssuerBlock:
    statement = (
        update(IssuerBlock).where(IssuerBlock.id == block_id).values(**values).returning(IssuerBlock)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def list_blocks(
    session: AsyncSession, *, issuer_party_id: uuid.UUID | None, open_only: bool, source: str | None = None
) -> list[IssuerBlock]:
    """The issuer's blocks (every issuer's when `issuer_party_id` is None), from `source` when given, newest first."""
    statement = select(IssuerBlock).order_by(IssuerBlock.opened_at.desc(), IssuerBlock.id)
    if issuer_party_id is not None:
        statement = statement.where(IssuerBlock.issuer_party_id == issuer_party_id)
    if source is not None:
        statement = statement.where(IssuerBlock.source == source)
    if open_only:
        statement = statement.where(IssuerBlock.lifted_at.is_(None))
    return list((await session.execute(statement)).scalars())
