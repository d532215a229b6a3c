"""The signing service: the only place a wallet key signs anything.

There is no route to it: only the platform's own services hold a `Signer`, each signs for one of the
purposes below and only with the addresses that purpose allows, and every signature is a security
event (REQ-42: key use is audited). Derived keys stay in this object's memory; nothing returns them.
"""

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody import repository
from dfa.custody.errors import SigningRefused
from dfa.custody.service import wallets
from dfa.custody.vault import Vault
from dfa.platform.audit import service as audit


class SigningPurpose(StrEnum):
    CHAIN_MIRROR = "chain-mirror"  # token deployments and batches of mirrored ledger movements
    KEY_PROOF = "key-proof"  # a signed statement proving control of a wallet key (handover acceptance)


# Which address purposes each signing purpose may use.
_ALLOWED = {
    SigningPurpose.CHAIN_MIRROR: frozenset({"chain_operator"}),
    SigningPurpose.KEY_PROOF: frozenset({"chain_operator", "holdings", "settlement", "money"}),
}


@dataclass(frozen=True)
class SignedTransaction:
    raw: bytes
    tx_hash: str


class Signer:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._keys: dict[str, LocalAccount] = {}

    def __repr__(self) -> str:
        return f"Signer(<{len(self._keys)} keys in memory>)"

    async def _key(self, session: AsyncSession, *, address: str, purpose: SigningPurpose) -> LocalAccount:
        if not isinstance(purpose, SigningPurpose):
            raise SigningRefused(f"unknown signing purpose {purpose!r}")
        record = await repository.get_address(session, address)
        if record is None or record.purpose not in _ALLOWED[purpose]:
            raise SigningRefused(f"{purpose} may not sign with {address}")
        key = self._keys.get(address)
        if key is None:
            wallet = await repository.get_wallet(session, record.wallet_id)
            key = wallets.derive(await wallets.mnemonic_of(session, self._vault, wallet), record.account)
            if record.purpose == "chain_operator":  # the one key used on every batch stays at hand
                self._keys[address] = key
        return key

    async def sign_transaction(
        self, session: AsyncSession, *, address: str, transaction: dict[str, Any], purpose: SigningPurpose
    ) -> SignedTransaction:
        """Sign a chain transaction from `address`, recording the signature. Raises SigningRefused."""
        key = await self._key(session, address=address, purpose=purpose)
        signed = key.sign_transaction(transaction)
        tx_hash = "0x" + signed.hash.hex().removeprefix("0x")
        await audit.record(
            session,
            kind="custody.signature",
            actor=f"service:{purpose}",
            subject=address,
            details={"tx_hash": tx_hash, "nonce": transaction.get("nonce"), "to": transaction.get("to")},
        )
        return SignedTransaction(bytes(signed.raw_transaction), tx_hash)

    async def sign_statement(
        self, session: AsyncSession, *, address: str, statement: bytes, purpose: SigningPurpose
    ) -> bytes:
        """Sign a statement (EIP-191) with `address`'s key, recording the signature. Raises SigningRefused."""
        key = await self._key(session, address=address, purpose=purpose)
        signature = bytes(key.sign_message(encode_defunct(primitive=statement)).signature)
        await audit.record(
            session,
            kind="custody.signature",
            actor=f"service:{purpose}",
            subject=address,
            details={"statement_sha256": hashlib.sha256(statement).hexdigest()},
        )
        return signature
