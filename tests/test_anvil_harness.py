"""The anvil harness itself: the node answers, the proxy forwards, cuts and restores."""

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.anvil import AnvilNode, TcpProxy, anvil_binary, chain_id_of


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    binary = anvil_binary()
    if binary is None:
        pytest.skip("anvil is not on PATH and npm could not install @foundry-rs/anvil (is npm installed?)")
    with AnvilNode(binary=binary) as started:
        yield started


def test_the_node_answers_its_chain_id(node: AnvilNode):
    assert chain_id_of(node.url) == 31337


def test_the_proxy_forwards_to_the_node(node: AnvilNode):
    with TcpProxy("127.0.0.1", node.port) as proxy:
        assert proxy.url != node.url
        assert chain_id_of(proxy.url) == 31337


def test_a_cut_proxy_fails_fast_and_a_restored_one_forwards_again(node: AnvilNode):
    with TcpProxy("127.0.0.1", node.port) as proxy, httpx.Client(timeout=5) as client:
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        assert client.post(proxy.url, json=request).status_code == 200  # a live keep-alive connection

        proxy.cut()
        started = time.monotonic()
        with pytest.raises(httpx.TransportError):
            client.post(proxy.url, json=request)
        with pytest.raises(httpx.ConnectError):
            chain_id_of(proxy.url)
        assert time.monotonic() - started < 2.0

        proxy.restore()
        assert chain_id_of(proxy.url) == 31337
        assert client.post(proxy.url, json=request).status_code == 200


def test_a_restarted_node_answers_on_the_same_port_with_its_state_gone(node: AnvilNode):
    request = {"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}
    httpx.post(node.url, json=request, timeout=5).raise_for_status()
    block = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    assert int(httpx.post(node.url, json=block, timeout=5).json()["result"], 16) >= 1

    url = node.url
    node.restart()
    assert node.url == url
    assert int(httpx.post(node.url, json=block, timeout=5).json()["result"], 16) == 0
