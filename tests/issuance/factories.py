"""Issuers and registered emissions for issuance tests, made straight through the services."""

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Application, Emission, Issuer
from dfa.issuance.service import emissions
from dfa.platform.identity.models import Party
from tests.factories import SETTINGS, make_party, today_in_almaty


async def make_issuer(session: AsyncSession, *, name: str = "Test Issuer LLP") -> Party:
    """An identified legal entity onboarded as an issuer with both consents given."""
    party = await make_party(session, kind="legal_entity", name=name)
    now = datetime.now(UTC)
    session.add(Issuer(
        party_id=party.id, legal_address="Almaty, Abai ave 1", contact_email="issuer@example.kz",
        custodian_consent_at=now, custodian_consent_scope="state, quantity and value of underlying assets",
        personal_data_consent_at=now, onboarded_by="test",
    ))
    await session.flush()
    return party


async def make_application(
    session: AsyncSession, *, issuer: Party, units: int = 1_000, nominal: int = 100_000, price: int | None = None,
    status: str = "in_review", underlying_asset_id: uuid.UUID | None = None, coverage_ratio: Decimal | None = None,
    min_placement_units: int | None = None, maturity_date: date | None = None, redemption_price: int | None = None,
    early_redemption_allowed: bool = True,
) -> Application:
    today = today_in_almaty()
    application = Application(
        id=uuid.uuid4(), issuer_party_id=issuer.id, status=status, name="Test grain receipts", dfa_kind="commodity",
        nominal=nominal, units=units, placement_start=today, placement_end=today + timedelta(days=30),
        placement_price=price or nominal, min_placement_units=min_placement_units,
        maturity_date=maturity_date or today + timedelta(days=365), redemption_price=redemption_price,
        early_redemption_allowed=early_redemption_allowed, underlying_asset_id=underlying_asset_id,
        coverage_ratio=coverage_ratio,
        no_underlying_reason=None if underlying_asset_id else "a monetary claim on the issuer, unsecured",
        submitted_by="test",
    )
    session.add(application)
    await session.flush()
    return application


async def make_emission(session: AsyncSession, *, issuer: Party | None = None, units: int = 1_000, **terms) -> Emission:
    """A registered emission whose whole volume sits in the issuer's placement account."""
    issuer = issuer or await make_issuer(session)
    application = await make_application(session, issuer=issuer, units=units, **terms)
    emission = await emissions.issue(session, application=application, actor="test", settings=SETTINGS)
    application.status = "registered"
    await session.flush()
    return emission
