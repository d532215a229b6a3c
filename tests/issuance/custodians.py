"""Underlying assets kept by the custodian simulator, for issuance tests."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.custodian import CustodianSimulator
from dfa.issuance.models import UnderlyingAsset
from dfa.issuance.service import underlying
from dfa.platform.identity.models import Party

CUSTODIAN = "kazgrain"


def new_reference(prefix: str = "WR-T") -> str:
    """A custodian's reference nobody has used yet."""
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


def kept(simulator: CustodianSimulator, *, market_value: int, quantity: int = 1_000, unit: str = "t") -> str:
    """The reference of a fresh clear, unencumbered asset the simulator's `kazgrain` keeps."""
    reference = new_reference()
    simulator.keep(CUSTODIAN, reference, quantity=quantity, unit=unit, market_value=market_value)
    return reference


async def make_underlying_asset(
    session: AsyncSession, *, issuer: Party, reference: str | None = None, custodian: str = CUSTODIAN,
    quantity: int = 1_000,
) -> UnderlyingAsset:
    """The issuer's underlying asset kept by `custodian` under `reference` (a fresh one by default)."""
    return await underlying.register_underlying_asset(
        session, issuer_party_id=issuer.id, kind="goods", description="class 3 wheat, harvest 2025",
        custodian=custodian, custodian_reference=reference or new_reference(), quantity=quantity, unit="t",
        actor="test",
    )
