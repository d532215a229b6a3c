"""Custody's chain tests run on a database of their own (the mirror there owns every outbox message,
and no other test's movements reach its chains), each against the in-process EVM and a real anvil."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from dfa.custody.chain import Chain, in_process_chain, rpc_chain
from dfa.custody.service.mirror import Mirror
from dfa.custody.service.signing import Signer
from dfa.custody.vault import AesKek, KeyRing, Vault
from dfa.platform.database import Database, run_migrations
from dfa.platform.settings import Settings
from tests.anvil import AnvilNode, TcpProxy, anvil_binary
from tests.conftest import outside_transaction, url_of


@pytest.fixture(scope="session")
async def chain_database(database: Database, database_url: str, settings: Settings) -> AsyncIterator[Database]:
    name = f"dfa_custody_{uuid.uuid4().hex[:8]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}"')
    url = url_of(database_url, name)
    await asyncio.to_thread(run_migrations, url)
    db = Database.from_url(url, settings)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def vault() -> Vault:
    return Vault(KeyRing(AesKek(os.urandom(32))))


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
