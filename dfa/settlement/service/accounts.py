"""The ledger accounts settlement books to: clients' money and units, the operator's money accounts."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import errors as ledger_errors
from dfa.ledger import service as ledger
from dfa.ledger.models import Account
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings

MONEY = "KZT"
# The operator's books in money, kept apart (REQ-50): what clients hold at the bank, what the operator
# owns, and the fees it earned from clients.
OPERATOR_MONEY_KINDS = ("client_money", "own_money", "fees")


async def ensure_money(session: AsyncSession, *, settings: Settings) -> None:
    """KZT and the operator's money accounts exist (created once; safe at every start)."""
    try:
        await ledger.get_asset(session, MONEY)
    except ledger_errors.AssetNotFound:
        await ledger.create_asset(session, code=MONEY, kind="money", scale=2, name="Kazakhstani tenge")
    for kind in OPERATOR_MONEY_KINDS:
        await operator_account(session, kind=kind, settings=settings)


async def operator_account(session: AsyncSession, *, kind: str, settings: Settings) -> Account:
    """The operator's KZT account of this kind: client_money, own_money or fees."""
    operator = await parties.ensure_operator_party(session, settings=settings)
    return await ledger.ensure_account(
        session, owner_party_id=operator.id, asset_code=MONEY, kind=kind, settings=settings
    )


async def holder_account(session: AsyncSession, *, party_id: uuid.UUID, asset_code: str, settings: Settings) -> Account:
    """The party's available account in this asset, opened (with its held twin) when it has none.

    Raises PartyNotFound, PartyNotIdentified, UnderAge, AssetNotFound.
    """
    return await ledger.ensure_account(
        session, owner_party_id=party_id, asset_code=asset_code, kind="available", settings=settings
    )
