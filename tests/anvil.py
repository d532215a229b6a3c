"""A real anvil node for tests and benchmarks, and a TCP proxy that can cut it off.

anvil comes from PATH or from the npm registry's `@foundry-rs/anvil` package, installed once into a
cache directory shared by every checkout on the machine (the binary is in the platform sub-package,
so npm skipping the package's postinstall script does not matter).
"""

import fcntl
import os
import platform
import selectors
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

import httpx

from tests.servers import free_port

ANVIL_PACKAGE = "@foundry-rs/anvil@1.7.1"
CACHE_DIR = Path.home() / ".cache" / "dfa-test-tools" / "anvil"
INSTALL_TIMEOUT_S = 300
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
# The npm sub-package that carries the binary, per `platform.machine()`.
_PLATFORM_PACKAGES = {"x86_64": "anvil-linux-amd64", "amd64": "anvil-linux-amd64", "aarch64": "anvil-linux-arm64", "arm64": "anvil-linux-arm64"}


def _cached_binary() -> Path | None:
    package = _PLATFORM_PACKAGES.get(platform.machine().lower())
    if package is None:
        return None
    return CACHE_DIR / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"


def _works(binary: Path) -> bool:
    try:
        return subprocess.run([str(binary), "--version"], check=False, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def anvil_binary() -> Path | None:
    """A runnable anvil, installed into the cache if need be; None when it cannot be had (no npm,
    an unsupported machine, or the install failed)."""
    found = shutil.which("anvil")
    if found:
        return Path(found)
    cached = _cached_binary()
    if cached is None:
        return None
    if cached.is_file() and _works(cached):
        return cached
    npm = shutil.which("npm")
    if npm is None:
        return None
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Two test processes (xdist workers, a test run and a benchmark) must not install at once.
    with open(CACHE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cached.is_file() and _works(cached)):
            try:
                subprocess.run(
                    [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE_DIR), ANVIL_PACKAGE],
                    capture_output=True,
                    timeout=INSTALL_TIMEOUT_S,
                    check=True,
                )
            except (OSError, subprocess.SubprocessError):
                return None
            if cached.is_file() and not os.access(cached, os.X_OK):
                cached.chmod(0o755)
    return cached if cached.is_file() and _works(cached) else None


def chain_id_of(url: str, *, timeout_s: float = 2.0) -> int:
    """The node's `eth_chainId`. Raises httpx.HTTPError when it does not answer."""
    response = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=timeout_s)
    response.raise_for_status()
    return int(response.json()["result"], 16)


class AnvilNode:
    """An anvil process on a free local port: `with AnvilNode() as node: ... node.url`."""

    def __init__(self, *, binary: Path | None = None, block_time_s: float | None = None, chain_id: int = 31337) -> None:
        binary = binary or anvil_binary()
        if binary is None:
            raise RuntimeError("anvil is not on PATH and could not be installed with npm")
        self.binary = binary
        self.block_time_s = block_time_s
        self.chain_id = chain_id
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"AnvilNode({self.url})"

    def start(self) -> Self:
        """Start the node and wait until it answers `eth_chainId`. Raises RuntimeError."""
        command = [
            str(self.binary), "--host", "127.0.0.1", "--port", str(self.port), "--silent",
            "--chain-id", str(self.chain_id),
        ]  # fmt: skip
        if self.block_time_s is not None:
            command += ["--block-time", str(self.block_time_s)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace")[-2000:] if self._process.stderr else ""
                raise RuntimeError(f"anvil exited with {self._process.returncode}: {error}")
            try:
                chain_id_of(self.url, timeout_s=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"anvil did not answer on {self.url} within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Terminate the node (kill it if it lingers); its state is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if process.stderr:
            process.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same port, empty: what a crashed development node does."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()


class TcpProxy:
    """Forwards a local free port to (host, port); `cut()` drops every connection and refuses new
    ones (a node that is down, a network partition), `restore()` lets them through again."""

    BUFFER = 65536
    POLL_S = 0.5

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = self._listen(0)
        self.url = f"http://127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return f"TcpProxy({self.url} -> {self.target[0]}:{self.target[1]})"

    def _listen(self, port: int) -> int:
        listener = socket.create_server(("127.0.0.1", port))
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), name=f"tcp-proxy-{port}", daemon=True)
        self._thread.start()
        return listener.getsockname()[1]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by cut() or close()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._connections.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy both ways until either side closes or `cut()` forgets the pair."""
        peers = {client: upstream, upstream: client}
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ)
                selector.register(upstream, selectors.EVENT_READ)
                while True:
                    with self._lock:
                        if client not in self._connections:
                            return
                    for key, _ in selector.select(timeout=self.POLL_S):
                        data = key.fileobj.recv(self.BUFFER)
                        if not data:
                            return
                        peers[key.fileobj].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._connections.difference_update(peers)
            _close(client)
            _close(upstream)

    def _stop_listening(self) -> None:
        listener, thread = self._listener, self._thread
        self._listener = self._thread = None
        if listener is not None:
            # shutdown wakes the accept() blocked in the other thread; close alone would not.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        if thread is not None:
            thread.join(timeout=STOP_TIMEOUT_S)
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            # Only shut down here: the pipe thread that owns the socket closes it.
            _reset(connection)

    def cut(self) -> None:
        """Drop every live connection and refuse new ones (connection refused) until `restore()`."""
        self._stop_listening()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self._listener is None:
            self._listen(self.port)

    def close(self) -> None:
        self._stop_listening()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_) -> None:
        self.close()


def _reset(connection: socket.socket) -> None:
    """End a connection at once: the peer sees a reset on close, not a graceful end."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()
