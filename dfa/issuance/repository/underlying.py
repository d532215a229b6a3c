"""SQL of underlying assets and their certifications."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Application, Certification, UnderlyingAsset


async def insert_underlying_asset(session: AsyncSession, *, values: dict[str, Any]) -> UnderlyingAsset | None:
    """The new asset, or None when the custodian's reference is registered already."""
    statement = pg_insert(UnderlyingAsset).values(**values).on_conflict_do_nothing().returning(UnderlyingAsset)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_underlying_asset(session: AsyncSession, underlying_asset_id: uuid.UUID) -> UnderlyingAsset | None:
    return await session.get(UnderlyingAsset, underlying_asset_id)


async def list_underlying_assets(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, limit: int
) -> list[UnderlyingAsset]:
    statement = (
        select(UnderlyingAsset)
        .where(UnderlyingAsset.issuer_party_id == issuer_party_id)
        .order_by(UnderlyingAsset.created_at, UnderlyingAsset.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def get_application(session: AsyncSession, application_id: uuid.UUID) -> Application | None:
    return await session.get(Application, application_id)


async def insert_certification(session: AsyncSession, *, values: dict[str, Any]) -> Certification:
    certification = Certification(**values)
    session.add(certification)
    await session.flush()
    return certification


async def list_certifications(
    session: AsyncSession, *, underlying_asset_id: uuid.UUID, limit: int
) -> list[Certification]:
    """The asset's certifications, newest first."""
    statement = (
        select(Certification)
        .where(Certification.underlying_asset_id == underlying_asset_id)
        .order_by(Certification.obtained_at.desc(), Certification.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def latest_certification(
    session: AsyncSession, *, underlying_asset_id: uuid.UUID, application_id: uuid.UUID | None
) -> Certification | None:
    statement = (
        select(Certification)
        .where(Certification.underlying_asset_id == underlying_asset_id)
        .where(
            Certification.application_id.is_(None) if application_id is None
            else Certification.application_id == application_id
        )
        .order_by(Certification.obtained_at.desc())
        .limit(1)
    )
    return (await session.execute(statement)).scalar_one_or_none()
