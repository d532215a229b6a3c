"""Demo data for a fresh development platform: a few parties, KZT, one emission, some movements.

Deterministic ids make seeding idempotent: running it twice changes nothing the second time.
"""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import errors as ledger_errors
from dfa.ledger import service as ledger
from dfa.platform import errors as platform_errors
from dfa.platform import service as platform
from dfa.platform.settings import Settings

DEMO = uuid.UUID("0b7c5f7e-3c1e-4f0a-9d55-6f4f5d0c2a11")

PEOPLE = [
    ("person", "Aigerim Nurlanovna Sadykova", "900101300007"),
    ("person", "Daniyar Serikovich Akhmetov", "850202400000"),
    ("legal_entity", "Steppe Grain LLP", "190840000005"),
]


def demo_id(name: str) -> uuid.UUID:
    return uuid.uuid5(DEMO, name)


async def _party(session: AsyncSession, kind: str, name: str, identifier: str):
    try:
        return await platform.create_party(session, kind=kind, name=name, identifier=identifier, resident=True)
    except platform_errors.PartyAlreadyExists:
        return None


async def seed(session: AsyncSession, *, settings: Settings) -> bool:
    """Seed the demo data unless it is there; returns whether anything was written."""
    operator = await platform.ensure_operator_party(session, settings=settings)
    try:
        await ledger.get_asset(session, "KZT")
        return False
    except ledger_errors.AssetNotFound:
        pass
    investor_a, investor_b, issuer = [await _party(session, *person) for person in PEOPLE]
    if None in (investor_a, investor_b, issuer):
        return False

    await ledger.create_asset(session, code="KZT", kind="money", scale=2, name="Kazakhstani tenge")
    emission = f"{settings.operator_nbk_registration_number}-000001"
    await ledger.create_asset(session, code=emission, kind="dfa", scale=0, name="Steppe Grain warehouse receipt DFA")

    client_money = await ledger.open_account(session, owner_party_id=operator.id, asset_code="KZT", kind="client_money")
    await ledger.open_account(session, owner_party_id=operator.id, asset_code="KZT", kind="own_money")
    await ledger.open_account(session, owner_party_id=operator.id, asset_code="KZT", kind="fees")
    cash = {
        p.id: await ledger.open_account(session, owner_party_id=p.id, asset_code="KZT", kind="available")
        for p in (investor_a, investor_b, issuer)
    }
    issued = await ledger.open_account(session, owner_party_id=issuer.id, asset_code=emission, kind="issued")
    units = {
        p.id: await ledger.open_account(session, owner_party_id=p.id, asset_code=emission, kind="available")
        for p in (investor_a, investor_b, issuer)
    }
    deposits = [
        ledger.TransferSpec(demo_id(f"deposit-{p.id}"), client_money.id, cash[p.id].id, 5_000_000_00, reference="bank deposit")
        for p in (investor_a, investor_b)
    ]
    await ledger.post_transfers(session, transfers=deposits)
    await ledger.post_transfer(
        session,
        transfer=ledger.TransferSpec(demo_id("issue"), issued.id, units[issuer.id].id, 10_000, reference="issuance"),
    )
    await ledger.execute_batch(
        session,
        batch_id=demo_id("placement-a"),
        items=[
            ledger.TransferItem(ledger.TransferSpec(demo_id("placement-a-cash"), cash[investor_a.id].id, cash[issuer.id].id, 1_500_000_00)),
            ledger.TransferItem(ledger.TransferSpec(demo_id("placement-a-units"), units[issuer.id].id, units[investor_a.id].id, 1_500)),
        ],
    )
    await ledger.place_hold(session, hold_id=demo_id("order-b"), account_id=cash[investor_b.id].id, amount=250_000_00)
    return True
