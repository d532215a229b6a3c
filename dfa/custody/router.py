"""The custody API: wallet addresses (clients see their own, never keys), wallets, token contracts,
the chain mirror's status and its comparison with the ledger."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from dfa.custody import schemas
from dfa.custody.service import mirror as mirror_service
from dfa.custody.service import wallets
from dfa.custody.service.mirror import Mirror
from dfa.custody.vault import Vault
from dfa.ledger import service as ledger
from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.identity.errors import PartyNotFound
from dfa.platform.identity.service import parties
from dfa.platform.types import AssetCodePath, Limit
from dfa.platform.web import (
    IdempotencyKeyHeader,
    SessionDep,
    SettingsDep,
    UnitOfWorkRoute,
    app_state,
)

router = APIRouter(prefix="/v1", tags=["custody"], route_class=UnitOfWorkRoute)

Staff = Annotated[Principal, Depends(allow(*STAFF_ROLES))]
Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Opener = Annotated[Principal, Depends(allow(Role.INVESTOR, Role.ISSUER, Role.OPERATOR_ADMIN))]
VaultDep = Annotated[Vault, Depends(app_state("vault"))]
MirrorDep = Annotated[Mirror, Depends(app_state("mirror"))]


@router.get("/wallet-addresses", response_model=list[schemas.AddressOut])
async def list_addresses(
    principal: Anyone,
    session: SessionDep,
    settings: SettingsDep,
    party_id: Annotated[uuid.UUID | None, Query(description="Only this party's addresses (staff).")] = None,
    after: Annotated[str | None, Query(max_length=42, description="Page after this address.")] = None,
    limit: Limit = None,
):
    """The registry of wallet addresses by segment, activity and purpose (REQ-40): a client sees its
    own addresses, staff all of them. Keys and mnemonics are never shown to anyone (REQ-43)."""
    return await wallets.list_addresses(
        session, party_id=principal.party_scope(party_id), after=after, limit=settings.page_size(limit)
    )


@router.post("/wallet-addresses", status_code=status.HTTP_201_CREATED, response_model=schemas.AddressOut)
async def open_address(
    body: schemas.AddressOpen,
    principal: Opener,
    session: SessionDep,
    settings: SettingsDep,
    vault: VaultDep,
    _key: IdempotencyKeyHeader,
):
    """Open the party's address for its DFA holdings (or return the one it has). Only an identified
    adult gets a wallet address (REQ-14, REQ-16)."""
    party_id = principal.party_scope(body.party_id)
    if party_id is None:
        raise PartyNotFound("name the party whose address to open")
    await parties.ensure_may_operate(session, party_id, settings=settings)
    return await wallets.open_address(session, vault, party_id=party_id, segment="client", purpose="holdings")


@router.get("/wallets", response_model=list[schemas.WalletOut])
async def list_wallets(_staff: Staff, session: SessionDep):
    """The operator's HD wallets, one per segment and activity, named by fingerprint (no secrets)."""
    return await wallets.list_wallets(session)


@router.get("/chain/tokens", response_model=list[schemas.TokenOut])
async def list_tokens(_staff: Staff, session: SessionDep, mirror: MirrorDep):
    """Every emission's token contract on the chain the mirror writes to."""
    return await mirror_service.list_tokens(session, chain_id=await mirror.chain.chain_id())


@router.get("/chain/status", response_model=schemas.MirrorStatusOut)
async def mirror_status(_staff: Staff, session: SessionDep, mirror: MirrorDep):
    """How far the chain is behind the ledger."""
    return await mirror_service.status(session, chain=mirror.chain)


@router.get("/chain/comparison", response_model=list[schemas.ComparisonOut])
async def compare_all(_staff: Staff, mirror: MirrorDep):
    """Every emission's total supply and holders on chain against the ledger, at one block."""
    return await mirror.compare()


@router.get("/chain/comparison/{code}", response_model=schemas.ComparisonOut)
async def compare_one(code: AssetCodePath, _staff: Staff, session: SessionDep, mirror: MirrorDep):
    """One emission's total supply and holders on chain against the ledger, at one block."""
    asset = await ledger.get_asset(session, code)
    [comparison] = await mirror.compare(asset_id=asset.id)
    return comparison
