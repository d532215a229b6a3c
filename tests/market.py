"""A market for page and browser tests to act in: an issuer onboarded as the API would, and parties given money
(from client money, as a credited deposit is) or units of an emission (from its issuer's placement account)."""

import uuid
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance.models import Issuer
from dfa.ledger import service as ledger
from dfa.platform.database import Database
from dfa.platform.identity.models import Party
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from dfa.settlement.service import accounts


async def onboarded_issuer(session: AsyncSession, party_id: uuid.UUID) -> Party:
    """The party, onboarded as an issuer (once)."""
    now = datetime.now(UTC)
    await session.execute(insert(Issuer).values(
        party_id=party_id, legal_address="Astana, Mangilik El 55", contact_email="issuer@example.kz",
        custodian_consent_at=now, custodian_consent_scope="underlying assets", personal_data_consent_at=now,
        onboarded_by="test",
    ).on_conflict_do_nothing())
    return await parties.get_party(session, party_id)


async def fund(
    database: Database, settings: Settings, party_id: uuid.UUID, *, money: int = 0, units: dict[str, int] | None = None,
    issuer_id: uuid.UUID | None = None, reference: str | None = None,
) -> None:
    """Give the party `money` tiyn of client money and `units` of `issuer_id`'s emissions (by code)."""
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=settings)
        if money:
            client_money = await accounts.operator_account(session, kind="client_money", settings=settings)
            cash = await accounts.holder_account(session, party_id=party_id, asset_code="KZT", settings=settings)
            await ledger.post_transfer(session, transfer=ledger.TransferSpec(
                uuid.uuid4(), client_money.id, cash.id, money, reference=reference
            ))
        for code, amount in (units or {}).items():
            asset = await ledger.get_asset(session, code)
            placement = await ledger.find_account(session, owner_party_id=issuer_id, asset_id=asset.id, kind="available")
            holding = await accounts.holder_account(session, party_id=party_id, asset_code=code, settings=settings)
            await ledger.post_transfer(session, transfer=ledger.TransferSpec(
                uuid.uuid4(), placement.id, holding.id, amount, reference=reference
            ))
