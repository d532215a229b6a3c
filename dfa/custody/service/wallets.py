"""HD wallets: one BIP-39 mnemonic per segment and activity, sealed in the vault; BIP-44 addresses.

The operator keeps its own assets, clients' money and clients' DFAs in separate wallets, separately
for each activity (REQ-40, REQ-50). Each address is m/44'/60'/<account>'/0/0 of its wallet, with a
fresh hardened account number per address, so no address's key can be derived from another's.
Keys and mnemonics never leave this module except as signatures (signing.py) or inside the
encrypted handover package (REQ-42, REQ-43).
"""

import hashlib
import uuid
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody import repository
from dfa.custody.models import Wallet, WalletAddress
from dfa.custody.vault import Vault
from dfa.platform.audit import service as audit
from dfa.platform.errors import invariant
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings

Account.enable_unaudited_hdwallet_features()

MNEMONIC_WORDS = 24
DFA_PLATFORM = "dfa_platform"


def derivation_path(account: int) -> str:
    return f"m/44'/60'/{account}'/0/0"


def derive(mnemonic: str, account: int) -> LocalAccount:
    """The key of one address of a wallet."""
    return Account.from_mnemonic(mnemonic, account_path=derivation_path(account))


def wallet_fingerprint(mnemonic: str) -> str:
    """Names a mnemonic without revealing it: a digest of its account-0 public key."""
    public_key = derive(mnemonic, 0)._key_obj.public_key.to_bytes()
    return hashlib.sha256(b"dfa-wallet-fingerprint|" + public_key).hexdigest()[:32]


@dataclass(frozen=True)
class AddressRecord:
    address: str
    segment: str
    activity: str
    purpose: str
    party_id: uuid.UUID
    path: str


def _record(address: WalletAddress, wallet: Wallet) -> AddressRecord:
    return AddressRecord(
        address.address, wallet.segment, wallet.activity, address.purpose, address.party_id, address.path
    )


async def _locked_wallet(session: AsyncSession, vault: Vault, *, segment: str, activity: str) -> Wallet:
    """The segment's wallet, locked for allocating an address; created with a new mnemonic if none."""
    wallet = await repository.lock_wallet(session, segment=segment, activity=activity)
    if wallet is not None:
        return wallet
    _, mnemonic = Account.create_with_mnemonic(num_words=MNEMONIC_WORDS)
    wallet_id = uuid.uuid4()
    secret_id = await vault.seal(session, kind="mnemonic", plaintext=mnemonic.encode())
    await repository.insert_wallet(
        session,
        values={
            "id": wallet_id,
            "segment": segment,
            "activity": activity,
            "secret_id": secret_id,
            "fingerprint": wallet_fingerprint(mnemonic),
        },
    )
    del mnemonic
    wallet = await repository.lock_wallet(session, segment=segment, activity=activity)
    invariant(wallet is not None, "a wallet exists after it was created")
    if wallet.id == wallet_id:
        await audit.record(
            session,
            kind="custody.wallet-created",
            actor="service:custody",
            subject=str(wallet_id),
            details={"segment": segment, "activity": activity, "fingerprint": wallet.fingerprint},
        )
    return wallet


async def mnemonic_of(session: AsyncSession, vault: Vault, wallet: Wallet) -> str:
    return (await vault.unseal(session, wallet.secret_id)).reveal().decode()


async def open_address(
    session: AsyncSession,
    vault: Vault,
    *,
    party_id: uuid.UUID,
    segment: str,
    purpose: str,
    activity: str = DFA_PLATFORM,
) -> AddressRecord:
    """The party's address for this purpose in the segment's wallet, opened on first use (REQ-40)."""
    existing = await repository.find_address(
        session, segment=segment, activity=activity, party_id=party_id, purpose=purpose
    )
    if existing is not None:
        return _record(existing, await repository.get_wallet(session, existing.wallet_id))
    wallet = await _locked_wallet(session, vault, segment=segment, activity=activity)
    existing = await repository.find_address(
        session, segment=segment, activity=activity, party_id=party_id, purpose=purpose
    )
    if existing is not None:  # opened by a concurrent transaction while we waited for the wallet lock
        return _record(existing, wallet)
    account = await repository.advance_wallet_account(session, wallet_id=wallet.id)
    key = derive(await mnemonic_of(session, vault, wallet), account)
    address = await repository.insert_address(
        session,
        values={
            "address": key.address,
            "wallet_id": wallet.id,
            "party_id": party_id,
            "purpose": purpose,
            "account": account,
            "path": derivation_path(account),
        },
    )
    await audit.record(
        session,
        kind="custody.address-opened",
        actor="service:custody",
        subject=key.address,
        details={"party_id": str(party_id), "segment": segment, "activity": activity, "purpose": purpose},
    )
    return _record(address, wallet)


async def chain_operator(session: AsyncSession, vault: Vault, *, settings: Settings) -> AddressRecord:
    """The operator's own address that deploys the token contracts and sends every chain transaction."""
    operator = await parties.ensure_operator_party(session, settings=settings)
    return await open_address(session, vault, party_id=operator.id, segment="operator_own", purpose="chain_operator")


async def address_of_account(
    session: AsyncSession, vault: Vault, *, party_id: uuid.UUID, kind: str, operator_party_id: uuid.UUID
) -> str | None:
    """Where a ledger account's units sit on chain; None for the issued account (mint and burn).

    A holder's available and held units share the holder's address; the operator's own holdings
    sit in its own wallet, units in settlement in the client segment, apart from the operator's own.
    """
    if kind == "issued":
        return None
    if kind == "settlement":
        segment, purpose = "client", "settlement"
    elif kind == "fees" or party_id == operator_party_id:
        segment, purpose = "operator_own", "holdings"
    else:
        invariant(kind in ("available", "held"), f"a {kind} account holds no DFA units")
        segment, purpose = "client", "holdings"
    return (await open_address(session, vault, party_id=party_id, segment=segment, purpose=purpose)).address


async def ensure_segment_wallets(session: AsyncSession, vault: Vault, *, settings: Settings) -> list[AddressRecord]:
    """The operator's wallets every deployment has: its own (with the chain operator address) and
    client money, each with an address of the operator's (REQ-40 lists them in internal rules)."""
    operator = await parties.ensure_operator_party(session, settings=settings)
    return [
        await chain_operator(session, vault, settings=settings),
        await open_address(session, vault, party_id=operator.id, segment="operator_own", purpose="holdings"),
        await open_address(session, vault, party_id=operator.id, segment="client_money", purpose="money"),
    ]


async def list_addresses(
    session: AsyncSession, *, party_id: uuid.UUID | None, after: str | None, limit: int
) -> list[AddressRecord]:
    """Addresses (never keys), of one party or all of them: the registry of wallet addresses by purpose."""
    return [
        _record(a, w) for a, w in await repository.list_addresses(session, party_id=party_id, after=after, limit=limit)
    ]


async def list_wallets(session: AsyncSession) -> list[Wallet]:
    return await repository.list_wallets(session)
