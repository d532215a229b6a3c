"""Responses of the custody API: addresses, wallets, tokens and the chain comparison. Never a key."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class AddressOpen(Request):
    party_id: uuid.UUID | None = Field(
        default=None, description="Whose address to open; an investor or issuer may leave it out (their own)."
    )


class AddressOut(Response):
    address: str = Field(description="EVM address (EIP-55 checksummed).")
    segment: str = Field(description="operator_own, client_money or client: whose assets the wallet keeps.")
    activity: str = Field(description="dfa_platform or trading_platform.")
    purpose: str = Field(description="chain_operator, holdings, settlement or money.")
    party_id: uuid.UUID = Field(description="The party the address is kept for.")
    path: str = Field(description="BIP-44 derivation path inside the wallet.")


class WalletOut(Response):
    id: uuid.UUID
    segment: str = Field(description="operator_own, client_money or client.")
    activity: str = Field(description="dfa_platform or trading_platform.")
    fingerprint: str = Field(description="Names the wallet's mnemonic without revealing it.")
    addresses: int = Field(description="Addresses opened in the wallet.", validation_alias="next_account")
    created_at: datetime


class TokenOut(Response):
    asset_id: int = Field(description="Ledger asset of the emission.")
    chain_id: int
    registration_number: str = Field(description="The emission's registration number, also stored in the contract.")
    address: str = Field(description="Address of the emission's token contract.")
    status: str = Field(description="deploying or deployed.")
    next_batch: int = Field(description="Batches of mirrored movements prepared for the contract so far.")


class DifferenceOut(Response):
    address: str
    expected: int = Field(
        description="Units the ledger says the address holds (minus what the chain has yet to apply)."
    )
    on_chain: int = Field(description="Units the token contract says the address holds.")


class ComparisonOut(Response):
    asset_id: int
    asset_code: str
    token_address: str | None
    deployed: bool
    block: int = Field(description="The block the chain was read at.")
    paused: bool
    ledger_outstanding: int = Field(description="Units outstanding on the ledger.")
    expected_supply: int = Field(description="Outstanding units minus the movements the chain has yet to apply.")
    chain_supply: int = Field(description="The token contract's total supply at the block.")
    unapplied_ops: int = Field(description="Movements on their way to the chain (outbox and unconfirmed batches).")
    in_sync: bool
    differences: list[DifferenceOut]


class MirrorStatusOut(Response):
    chain: str = Field(description="Which node: the in-process EVM or the JSON-RPC URL's host.")
    pending_movements: int = Field(description="Ledger movements waiting in the outbox (counted up to 1000).")
    batches: dict[str, int] = Field(description="Chain batches per status.")
    oldest_pending_at: datetime | None = Field(description="When the oldest movement still waiting was written.")
