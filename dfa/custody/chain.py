"""The chain adapter: an EVM node behind the few calls custody makes.

By default the node is an in-process EVM (eth-tester on py-evm), so nothing needs installing;
CHAIN_RPC_URL points at any JSON-RPC node (anvil in tests, a permissioned network in production).
web3's errors never leave this module: a node that does not answer is `ChainUnavailable`, a node
that refuses a transaction is `ChainRefusal`. web3 is synchronous, so every call runs in a worker
thread, one at a time (the in-process EVM is not thread-safe).
"""

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_abi import encode as abi_encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import ValidationError, keccak
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import TransactionNotFound, Web3Exception

from dfa.custody.contract import token_contract
from dfa.custody.errors import ChainUnavailable
from dfa.platform.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
_NOWHERE = "0x" + "00" * 20
_OP_TUPLE = "(uint8,address,address,uint256,bytes32)"
_APPLY_BATCH_SELECTOR = keccak(text=f"apply_batch(uint256,{_OP_TUPLE}[])")[:4]
# What a development node's operator gets when it has no gas money (the in-process EVM and anvil).
DEV_GAS_FUNDING_WEI = 10**23


class ChainRefusal(Exception):
    """The node refused a transaction (not an outage): the caller decides what that means."""


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    succeeded: bool
    block_number: int
    contract_address: str | None


def _hex(value: bytes | str) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


class Chain:
    def __init__(self, web3: Web3, *, name: str) -> None:
        self.name = name
        self._web3 = web3
        self._lock = threading.Lock()
        self._token = web3.eth.contract(abi=token_contract().abi)
        # An operator's switch for drills and tests: while set, the node counts as down.
        self.down = False

    def __repr__(self) -> str:
        return f"Chain({self.name})"

    async def _call(self, work: Callable[[Web3], T]) -> T:
        if self.down:
            raise ChainUnavailable(f"the chain node ({self.name}) is down")

        def locked() -> T:
            with self._lock:
                return work(self._web3)

        try:
            return await asyncio.to_thread(locked)
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, OSError) as error:
            raise ChainUnavailable(f"the chain node ({self.name}) does not answer: {type(error).__name__}") from None

    async def chain_id(self) -> int:
        return await self._call(lambda w3: w3.eth.chain_id)

    async def genesis_hash(self) -> str:
        return await self._call(lambda w3: _hex(w3.eth.get_block(0)["hash"]))

    async def block_number(self) -> int:
        return await self._call(lambda w3: w3.eth.block_number)

    async def nonce(self, address: str) -> int:
        """Transactions of `address` the node knows of, pending ones included."""
        return await self._call(lambda w3: w3.eth.get_transaction_count(address, "pending"))

    async def gas_price(self) -> int:
        return await self._call(lambda w3: w3.eth.gas_price)

    async def send_raw(self, raw: bytes) -> str:
        """Broadcast a signed transaction; sending one the node already has or has mined is a no-op.
        Raises ChainUnavailable, ChainRefusal."""
        tx_hash = _hex(keccak(raw))

        def send(w3: Web3) -> str:
            try:
                w3.eth.send_raw_transaction(raw)
            except (Web3Exception, ValueError, ValidationError) as error:  # the in-process EVM raises the last
                try:
                    w3.eth.get_transaction(tx_hash)
                except TransactionNotFound:
                    raise ChainRefusal(str(error)[:500]) from None
            return tx_hash

        return await self._call(send)

    async def receipt(self, tx_hash: str) -> Receipt | None:
        def fetch(w3: Web3) -> Receipt | None:
            try:
                found = w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None
            if found is None or found.get("blockNumber") is None:
                return None
            return Receipt(tx_hash, found["status"] == 1, found["blockNumber"], found.get("contractAddress"))

        return await self._call(fetch)

    async def ensure_gas(self, address: str) -> None:
        """Give a development node's operator gas money; a production network's operator is funded
        by its administrators (or runs without gas prices), so nothing happens there."""

        def fund(w3: Web3) -> None:
            if w3.eth.get_balance(address) >= DEV_GAS_FUNDING_WEI // 2:
                return
            if isinstance(w3.provider, EthereumTesterProvider):
                w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": DEV_GAS_FUNDING_WEI})
                return
            try:
                w3.provider.make_request("anvil_setBalance", [address, hex(DEV_GAS_FUNDING_WEI)])
            except Web3Exception:
                log.warning("the chain operator %s has no gas money and the node cannot give it any", address)

        await self._call(fund)

    async def token_state(
        self, contract: str, *, holders: list[str], block: int
    ) -> tuple[int, int, bool, dict[str, int]]:
        """(next batch, total supply, paused, balance per holder) of a token contract at one block."""

        def read(w3: Web3) -> tuple[int, int, bool, dict[str, int]]:
            token = w3.eth.contract(address=contract, abi=self._token.abi)
            at = {"block_identifier": block}
            balances = {holder: token.functions.balanceOf(holder).call(**at) for holder in holders}
            return (
                token.functions.next_batch().call(**at),
                token.functions.totalSupply().call(**at),
                token.functions.paused().call(**at),
                balances,
            )

        return await self._call(read)

    async def next_batch(self, contract: str) -> int:
        return await self._call(
            lambda w3: w3.eth.contract(address=contract, abi=self._token.abi).functions.next_batch().call()
        )

    async def has_code(self, contract: str, *, block: int | str = "latest") -> bool:
        return await self._call(lambda w3: len(w3.eth.get_code(contract, block_identifier=block)) > 0)

    def deployment_data(self, *, registration_number: str, name: str) -> bytes:
        compiled = token_contract()
        constructor = self._web3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode).constructor(
            registration_number, name
        )
        return bytes.fromhex(constructor.data_in_transaction.removeprefix("0x"))

    @staticmethod
    def batch_data(*, seq: int, ops: list[Any]) -> bytes:
        """Call data of `apply_batch(seq, ops)`; an op is [kind, source, target, amount, ref hex].
        Encoded with eth_abi directly: web3's contract encoder is ten times slower."""
        encoded = [
            (kind, source or _NOWHERE, target or _NOWHERE, int(amount), bytes.fromhex(ref))
            for kind, source, target, amount, ref in ops
        ]
        return _APPLY_BATCH_SELECTOR + abi_encode(["uint256", _OP_TUPLE + "[]"], [seq, encoded])


def in_process_chain() -> Chain:
    """A new, empty EVM in this process; its genesis carries random bytes, so no two are alike and
    the mirror knows a restarted one for the new chain it is."""
    genesis = PyEVMBackend.generate_genesis_params(overrides={"extra_data": os.urandom(32), "gas_limit": 60_000_000})
    tester = EthereumTester(backend=PyEVMBackend(genesis_parameters=genesis))
    return Chain(Web3(EthereumTesterProvider(tester)), name="in-process EVM")


def rpc_chain(url: str, *, timeout_s: float) -> Chain:
    provider = HTTPProvider(url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None)
    return Chain(Web3(provider), name=url)


def chain_from_settings(settings: Settings) -> Chain:
    if settings.chain_rpc_url:
        return rpc_chain(settings.chain_rpc_url, timeout_s=settings.chain_timeout_s)
    return in_process_chain()
