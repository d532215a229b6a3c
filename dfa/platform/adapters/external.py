"""What every external-party adapter shares: one JSON call that either answers or raises
`ExternalPartyUnavailable`, identifiers masked for logs, and simulators that can be down or slow.

The operator must not act on a missing or garbled answer (REQ-18 reads best as fail closed), so a
call has exactly two outcomes: an answer validated against the party's schema, or
`ExternalPartyUnavailable`. No httpx or pydantic exception leaves this module.
"""

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ValidationError

from dfa.platform.errors import ExternalPartyUnavailable, invariant
from dfa.platform.identifiers import is_valid_identification_number
from dfa.platform.logs import request_id_var

ANSWER_MAX_BYTES = 1_048_576
UNMASKED_DIGITS = 4

Answer = TypeVar("Answer", bound=BaseModel)


def mask_identifier(identifier: str) -> str:
    """The identifier with every character but the last four replaced by `*`, fit for logs."""
    hidden = max(len(identifier) - UNMASKED_DIGITS, 0)
    return "*" * hidden + identifier[hidden:]


def unavailable(party: str, reason: str) -> ExternalPartyUnavailable:
    """The refusal raised when `party` gave no usable answer; its detail never carries request data."""
    return ExternalPartyUnavailable(f"the {party} {reason}", party=party)


@dataclass(frozen=True)
class Receipt:
    """A party's acknowledgement that it received a notice: its own id for the receipt and the time it
    states it received it. Sending the same notice again gets the same receipt."""

    receipt_id: str
    received_at: datetime


class _AnswerTooLarge(Exception):
    pass


class JsonApiClient:
    """Calls to one external party that answer or raise `ExternalPartyUnavailable` — on a timeout, a
    connection failure, or an answer larger than the client's limit. `post` also refuses any status
    but 200 and an answer that does not match its schema; `request` hands back status and body for
    parties whose refusals carry meaning (a bank's 4xx).

    One connection pool per client, opened on first use; `aclose()` releases it.
    """

    def __init__(
        self,
        *,
        party: str,
        base_url: str,
        timeout_s: float,
        token: str | None,
        transport: httpx.AsyncBaseTransport | None,
        log: logging.Logger,
        accept: str = "application/json",
        answer_max_bytes: int = ANSWER_MAX_BYTES,
    ) -> None:
        self.party = party
        self.timeout_s = timeout_s
        self.answer_max_bytes = answer_max_bytes
        self._base_url = base_url
        self._token = token
        self._transport = transport
        self._accept = accept
        self._log = log
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Accept": self._accept}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, float]:
        """The party's status, body (at most `answer_max_bytes`) and milliseconds taken; `headers` go
        with this request only (an Idempotency-Key).

        Raises ExternalPartyUnavailable.
        """
        started = time.perf_counter()
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        request_id = request_id_var.get()
        if request_id:
            sent["X-Request-Id"] = request_id
        try:
            # httpx's timeout bounds each phase; the party's answer as a whole gets the same budget.
            async with asyncio.timeout(self.timeout_s):
                async with self._http().stream(method, path, json=json, content=content, headers=sent) as response:
                    body = await _read_limited(response, max_bytes=self.answer_max_bytes)
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            raise self.failed(f"did not answer within {self.timeout_s} s", "timeout") from None
        except _AnswerTooLarge:
            raise self.failed(f"answered with more than {self.answer_max_bytes} bytes", "malformed") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self.failed("could not be reached", "unreachable", error=type(exc).__name__) from exc
        return status, body, round((time.perf_counter() - started) * 1000, 1)

    async def post(
        self, path: str, payload: dict[str, Any], answer: type[Answer], *, headers: Mapping[str, str] | None = None
    ) -> tuple[Answer, float]:
        """The party's validated answer to `payload` and how long it took in milliseconds.

        Raises ExternalPartyUnavailable.
        """
        status, body, elapsed_ms = await self.request("POST", path, json=payload, headers=headers)
        if status != 200:
            raise self.failed(f"answered HTTP {status}", "status", status=status, elapsed_ms=elapsed_ms)
        return self.parse(body, answer), elapsed_ms

    def parse(self, body: bytes, answer: type[Answer]) -> Answer:
        """The answer validated against its schema. Raises ExternalPartyUnavailable."""
        try:
            return answer.model_validate_json(body)
        except ValidationError as exc:
            # The validation error quotes the answer, which may carry names and identifiers: keep only
            # where it failed.
            where = sorted({".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()})
            raise self.failed("gave a malformed answer", "malformed", fields=where) from None

    def malformed(self, why: str) -> ExternalPartyUnavailable:
        """The refusal for an answer that is well-formed JSON but does not fit the request it answers."""
        return self.failed("gave a malformed answer", "malformed", why=why)

    def failed(self, reason: str, failure: str, **extra: Any) -> ExternalPartyUnavailable:
        """Log why the party gave no usable answer and return the refusal to raise."""
        self._log.warning("%s unavailable", self.party, extra={"failure": failure, **extra})
        return unavailable(self.party, reason)

    async def aclose(self) -> None:
        """Close the connection pool; the next call opens a new one."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


async def _read_limited(response: httpx.Response, *, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _AnswerTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class SimulatedParty:
    """The network behaviour simulators share: a party that is `down` answers nothing, and one slower
    than the caller's timeout is given up on — in both cases the caller gets `ExternalPartyUnavailable`,
    exactly as from the HTTP client.

    Tests flip `down` and `latency_s` at will; a served simulator reads them on every request.
    """

    party: str = "external party"
    logger: logging.Logger = logging.getLogger("dfa.external")

    def __init__(self, *, timeout_s: float | None = None, requests_kept: int = 1_000) -> None:
        self.down = False
        self.latency_s = 0.0
        self.timeout_s = timeout_s
        invariant(requests_kept >= 1, "a simulator keeps at least its latest request")
        self.requests_kept = requests_kept

    async def _reach(self) -> None:
        """Wait as the network would, or raise ExternalPartyUnavailable as the HTTP client would."""
        if self.down:
            self.logger.warning("%s unavailable", self.party, extra={"failure": "status", "status": 503})
            raise unavailable(self.party, "answered HTTP 503")
        if self.timeout_s is not None and self.latency_s >= self.timeout_s:
            await asyncio.sleep(self.timeout_s)
            self.logger.warning("%s unavailable", self.party, extra={"failure": "timeout"})
            raise unavailable(self.party, f"did not answer within {self.timeout_s} s")
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)

    def _keep(self, records: list[Any], record: Any) -> None:
        # A simulator serving a long-running development platform must not grow without bound.
        records.append(record)
        del records[: -self.requests_kept]


def simulator_api(simulator: SimulatedParty, *, title: str, token: str | None) -> FastAPI:
    """An app whose every route first behaves like the party's front door: 401 without the bearer
    `token` (when one is set), 503 while the simulator is down, then the simulator's latency."""

    async def front_door(request: Request) -> None:
        if token is not None:
            expected = f"Bearer {token}".encode()
            given = request.headers.get("authorization", "").encode()
            if not secrets.compare_digest(given, expected):
                raise HTTPException(401, "missing or wrong bearer token")
        if simulator.down:
            raise HTTPException(503, f"the {simulator.party} is down")
        if simulator.latency_s > 0:
            await asyncio.sleep(simulator.latency_s)

    return FastAPI(title=title, dependencies=[Depends(front_door)], docs_url=None, redoc_url=None)


def require_identification_number(value: str, *, what: str) -> None:
    """Return only if `value` is a valid IIN/BIN.

    Callers pass identifiers of parties already identified, so a malformed one is a bug, not a refusal;
    the message never echoes the value.
    """
    invariant(is_valid_identification_number(value), f"the {what} is not a valid 12-digit IIN/BIN")
