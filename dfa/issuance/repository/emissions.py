"""SQL of registered emissions and their registration numbers."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Application, Emission, UnderlyingAsset, registration_serial
from dfa.platform.identity.models import Party


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


async def monitored_emissions(session: AsyncSession) -> list[Any]:
    """Every emission with units still outstanding here or on trading platforms, with its terms, issuer and
    underlying asset, in asset order."""
    statement = (
        select(
            Emission.asset_id, Emission.registration_number, Emission.issuer_party_id, Emission.status,
            Emission.units, Emission.cancelled_units, Emission.platform_units, Emission.nominal,
            Party.name.label("issuer_name"), Party.identifier.label("issuer_bin"),
            Application.coverage_ratio, Application.no_underlying_reason,
            UnderlyingAsset.custodian, UnderlyingAsset.custodian_reference,
        )
        .join(Application, Application.id == Emission.application_id)
        .join(Party, Party.id == Emission.issuer_party_id)
        .outerjoin(UnderlyingAsset, UnderlyingAsset.id == Application.underlying_asset_id)
        .where(Emission.units > Emission.cancelled_units)
        .order_by(Emission.asset_id)
    )
    return list(await session.execute(statement))
