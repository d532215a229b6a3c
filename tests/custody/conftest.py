"""Custody's chain tests run on a database of their own (the mirror there owns every outbox message,
and no other test's movements reach its chains), each against the in-process EVM and a real anvil.

The wallets of that database, and a second set of wallets in the session's database, hold the secret
canary's marker mnemonics: fixed phrases the session-end scan knows in advance and searches for in every
response, log line, database row, backup and export (tests/custody/test_no_key_material.py).
"""

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from eth_account.hdaccount.mnemonic import Mnemonic

from dfa.custody.chain import Chain, in_process_chain, rpc_chain
from dfa.custody.models import SEGMENTS
from dfa.custody.service import wallets
from dfa.custody.service.mirror import Mirror
from dfa.custody.service.signing import Signer, SigningPurpose
from dfa.custody.vault import AesKek, KeyRing, Vault
from dfa.platform.database import Database, run_migrations
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings
from tests.anvil import AnvilNode, TcpProxy, anvil_binary
from tests.conftest import outside_transaction, url_of
from tests.identity import Users

# The canary's markers: one fixed BIP-39 mnemonic per wallet segment, from fixed entropy, so a leak of any of
# them, or of a key derived from them, is a value the scan knows without asking the vault.
MARKER_MNEMONICS = {
    segment: Mnemonic().to_mnemonic(hashlib.sha256(f"dfa secret canary: {segment}".encode()).digest())
    for segment in SEGMENTS
}
# The marker wallets of the session's database are those of an activity no other test opens addresses in.
MARKER_ACTIVITY = "trading_platform"


@contextmanager
def wallets_created_from(mnemonics: Iterable[str]) -> Iterator[None]:
    """Wallets created inside the block get these mnemonics, in turn, instead of fresh random ones: the
    platform's own wallet code seals and fingerprints them, only its source of randomness is fixed."""
    pending = list(mnemonics)

    def create_with_mnemonic(*_args, **_kwargs):
        return None, pending.pop(0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wallets.Account, "create_with_mnemonic", create_with_mnemonic)
        yield
    assert not pending, "every marker mnemonic became a wallet"


@dataclass(frozen=True)
class Canary:
    """The marker wallets of the session's database, in use: addresses derived, transactions and statements signed."""

    mnemonics: dict[str, str]
    addresses: list[wallets.AddressRecord]


@pytest.fixture(scope="session")
async def canary(app, users: Users, database: Database, settings: Settings) -> Canary:
    """The marker mnemonics as wallets of the session's database (one per segment, created by the platform's
    wallet code), with addresses for the operator and two investors, and signatures made with their keys."""
    vault, signer = app.state.vault, app.state.signer
    async with database.unit_of_work() as session:
        operator = await parties.ensure_operator_party(session, settings=settings)
        wanted = [
            (operator.id, "operator_own", "chain_operator"),
            (operator.id, "operator_own", "holdings"),
            (operator.id, "client_money", "money"),
            (users["investor"].party_id, "client", "holdings"),
            (users["investor"].party_id, "client", "settlement"),
            (users["other_investor"].party_id, "client", "holdings"),
        ]
        with wallets_created_from(MARKER_MNEMONICS[segment] for segment in ("operator_own", "client_money", "client")):
            addresses = [
                await wallets.open_address(
                    session, vault, party_id=party_id, segment=segment, purpose=purpose, activity=MARKER_ACTIVITY
                )
                for party_id, segment, purpose in wanted
            ]
        transaction = {"to": addresses[3].address, "value": 1, "gas": 21_000, "gasPrice": 1, "nonce": 0, "chainId": 1}
        await signer.sign_transaction(
            session, address=addresses[0].address, transaction=transaction, purpose=SigningPurpose.CHAIN_MIRROR
        )
        for address in addresses[1:]:
            await signer.sign_statement(
                session, address=address.address, statement=b"canary: control of this address",
                purpose=SigningPurpose.KEY_PROOF,
            )
    return Canary(dict(MARKER_MNEMONICS), addresses)


@pytest.fixture(scope="session")
def vault() -> Vault:
    return Vault(KeyRing(AesKek(os.urandom(32))))


@pytest.fixture(scope="session")
async def chain_database(
    database: Database, database_url: str, settings: Settings, vault: Vault
) -> AsyncIterator[Database]:
    """The chain tests' database, whose wallets (the chain operator's, the client segments') hold the marker
    mnemonics: every chain transaction the mirror tests sign is signed with a marker key."""
    name = f"dfa_custody_{uuid.uuid4().hex[:8]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}"')
    url = url_of(database_url, name)
    await asyncio.to_thread(run_migrations, url)
    db = Database.from_url(url, settings)
    async with db.unit_of_work() as session:
        with wallets_created_from(MARKER_MNEMONICS[segment] for segment in ("operator_own", "client_money", "client")):
            await wallets.ensure_segment_wallets(session, vault, settings=settings)
            operator = await parties.ensure_operator_party(session, settings=settings)
            await wallets.open_address(session, vault, party_id=operator.id, segment="client", purpose="settlement")
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def anvil() -> Iterator[TcpProxy]:
    """A real anvil node, reached through a proxy that can cut it off (an outage)."""
    binary = anvil_binary()
    if binary is None:
        pytest.skip("anvil is not on PATH and npm could not install @foundry-rs/anvil (is npm installed?)")
    with AnvilNode(binary=binary) as node, TcpProxy("127.0.0.1", node.port) as proxy:
        yield proxy


@dataclass
class Node:
    """The chain a test mirrors to, and how to take it down and bring it back."""

    chain: Chain
    cut: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture(params=["in-process", "anvil"])
def node(request: pytest.FixtureRequest) -> Node:
    if request.param == "in-process":
        chain = in_process_chain()
        return Node(chain, lambda: setattr(chain, "down", True), lambda: setattr(chain, "down", False))
    proxy: TcpProxy = request.getfixturevalue("anvil")
    return Node(rpc_chain(proxy.url, timeout_s=2), proxy.cut, proxy.restore)


@pytest.fixture
def chain(node: Node) -> Chain:
    return node.chain


@pytest.fixture
def mirror(chain_database: Database, chain: Chain, vault: Vault, settings: Settings) -> Mirror:
    return Mirror(database=chain_database, chain=chain, vault=vault, signer=Signer(vault), settings=settings)
