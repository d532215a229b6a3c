"""Real HTTP servers for tests: a free port, an ASGI app served by uvicorn in a thread, and an HTTP client of a
served simulator."""

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app, *, lifespan: str = "off") -> Iterator[str]:
    """`app` served over real HTTP by uvicorn in a thread with its own event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def reset_party(simulator: Any) -> None:
    """A simulated party as a test should find it: up, answering at once, remembering no earlier request or notice."""
    simulator.down = False
    simulator.latency_s = 0.0
    simulator.requests.clear()
    if hasattr(simulator, "notices"):
        simulator.notices.clear()


@contextlib.asynccontextmanager
async def client_of(simulator: Any, client: Any) -> AsyncIterator[tuple[Any, Any]]:
    """(`client`, `simulator`) for one test: the served simulator reset before and after, the client closed after."""
    reset_party(simulator)
    try:
        yield client, simulator
    finally:
        await client.aclose()
        reset_party(simulator)
