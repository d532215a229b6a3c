"""SQL of registered emissions and their registration numbers."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Emission, registration_serial


async def next_serial(session: AsyncSession) -> int:
    return (await session.execute(select(registration_serial.next_value()))).scalar_one()


async def insert_emission(session: AsyncSession, *, values: dict[str, Any]) -> Emission:
    emission = Emission(**values)
    session.add(emission)
    await session.flush()
    return emission


async def get_emission(session: AsyncSession, asset_id: int, *, for_update: bool = False) -> Emission | None:
    statement = select(Emission).where(Emission.asset_id == asset_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_emission_by_number(session: AsyncSession, registration_number: str, *, for_update: bool = False) -> Emission | None:
    statement = (
        select(Emission)
        .where(Emission.registration_number == registration_number)
        .execution_options(populate_existing=True)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def list_emissions(
    session: AsyncSession, *, issuer_party_id: Any | None, after: int | None, limit: int
) -> list[Emission]:
    statement = select(Emission).order_by(Emission.asset_id).limit(limit)
    if issuer_party_id is not None:
        statement = statement.where(Emission.issuer_party_id == issuer_party_id)
    if after is not None:
        statement = statement.where(Emission.asset_id > after)
    return list((await session.execute(statement)).scalars())
