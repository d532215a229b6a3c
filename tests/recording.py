"""Everything the platform said during the test session: each response it sent and each log line it
wrote, kept so a late test can search them all for key material."""

import logging
import traceback
from dataclasses import dataclass


@dataclass(frozen=True)
class RecordedResponse:
    method: str
    path: str
    status: int
    headers: bytes
    body: bytes


RESPONSES: list[RecordedResponse] = []
LOG_LINES: list[str] = []


class ResponseRecorder:
    """Pure ASGI middleware that keeps a copy of every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, headers, body = 0, b"", bytearray()

        async def recording_send(message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = b"\n".join(k + b": " + v for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    RESPONSES.append(RecordedResponse(scope["method"], scope["path"], status, headers, bytes(body)))
            await send(message)

        await self.app(scope, receive, recording_send)


class LogRecorder(logging.Handler):
    """Keeps every log record as it would be written, with its arguments, extras and traceback."""

    def __init__(self, level: int = logging.NOTSET, *, lines: list[str] = LOG_LINES) -> None:
        super().__init__(level)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        parts = [record.getMessage(), repr(record.__dict__)]
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        self.lines.append("\n".join(parts))


def start_recording() -> None:
    """Record everything the platform logs, down to DEBUG, so the scan sees what a production log at any level
    would hold; libraries stay at INFO (their DEBUG output would flood memory and slow every test for nothing
    the platform wrote)."""
    handler = LogRecorder(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    logging.getLogger("dfa").setLevel(logging.DEBUG)
