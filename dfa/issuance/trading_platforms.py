"""Digital-asset trading platforms (REQ-44..REQ-47): the operator tells a platform that units of an
emission are ready to move to it (`out`) or are coming back from it (`in`), and later asks for the
platform's answer — confirmed (with the platform's issue record, or its cancellation, for a return),
refused with its reasons, or still pending.

One interface, `TradingPlatforms`, and three things behind it: `HttpTradingPlatforms` talks to the
platforms' gateway; `TradingPlatformSimulator` answers in-process from decisions set in advance and
from what it has issued, and can be down or slow like a real platform; `simulator_app` serves that
simulator over the gateway's HTTP API, so the HTTP client is tested against it over real HTTP.

Every message crosses as a JSON object, and both the object sent and the one received are handed
back to the caller, who keeps them (REQ-47).
"""

import logging
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.adapters.external import (
    JsonApiClient,
    SimulatedParty,
    require_identification_number,
    simulator_api,
    unavailable,
)
from dfa.platform.errors import invariant
from dfa.platform.settings import Settings
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX

PARTY = "trading platform"
PLATFORM_CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{1,49}$"
REFERENCE_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"
REASONS_MAX = 20
REASON_MAX_LENGTH = 500
# The platforms the development simulator knows, until the operator registers its own.
DEMO_PLATFORMS = ("astana-digital", "steppe-exchange")

log = logging.getLogger("dfa.trading_platforms")

Direction = Literal["out", "in"]
Status = Literal["pending", "confirmed", "refused"]


@dataclass(frozen=True)
class Receipt:
    """The platform took the notice: `reference` is its id of the transfer, to ask for its answer by."""

    reference: str
    sent: dict[str, Any]
    received: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """The platform's answer about one transfer. `record_reference` (confirmed only) is its issue record
    (or, for a return, its cancellation record); `reasons` (refused only) say why it will not accept."""

    status: Status
    record_reference: str | None
    reasons: tuple[str, ...]
    sent: dict[str, Any]
    received: dict[str, Any]


class TradingPlatforms(Protocol):
    async def notify_transfer(
        self, platform: str, *, transfer_id: uuid.UUID, emission: str, units: int, issuer_bin: str, direction: Direction
    ) -> Receipt:
        """Tell `platform` that `units` of `emission` (the registration number) of the issuer with
        `issuer_bin` are ready to move to it (`out`) or back from it (`in`) (REQ-45).

        Raises ExternalPartyUnavailable on a timeout, a connection failure, an error status (an unknown
        platform included) or a malformed answer.
        """
        ...

    async def answer(self, platform: str, *, reference: str) -> Answer:
        """The platform's answer so far about the transfer it gave `reference` to.

        Raises ExternalPartyUnavailable.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; call once at shutdown."""
        ...


def _check_notice(platform: str, units: int, issuer_bin: str, direction: str) -> None:
    invariant(0 < units <= BIGINT_MAX, "a transfer moves a positive number of units")
    invariant(direction in ("out", "in"), f"unknown direction {direction!r}")
    invariant(len(platform) <= 50, "a platform code has at most 50 characters")
    require_identification_number(issuer_bin, what="issuer's BIN")


def _notice(transfer_id: uuid.UUID, emission: str, units: int, issuer_bin: str, direction: str) -> dict[str, Any]:
    return {
        "transfer_id": str(transfer_id), "emission": emission, "units": units, "issuer_bin": issuer_bin,
        "direction": direction,
    }


# The gateway's HTTP API ---------------------------------------------------------------------------


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfer_id: uuid.UUID = Field(description="The operator's id of the transfer.")
    emission: str = Field(pattern=ASSET_CODE_PATTERN, description="The emission's registration number.")
    units: int = Field(ge=1, le=BIGINT_MAX, description="How many units move.")
    issuer_bin: str = Field(pattern=r"^\d{12}$", description="The issuer's BIN.")
    direction: Direction = Field(description="out: to the platform; in: back from it to the operator.")


class ReceiptOut(BaseModel):
    reference: str = Field(pattern=REFERENCE_PATTERN, description="The platform's id of the transfer.")


class AnswerOut(BaseModel):
    reference: str = Field(pattern=REFERENCE_PATTERN, description="The platform's id of the transfer.")
    status: Status = Field(description="pending, confirmed or refused.")
    record_reference: str | None = Field(
        default=None, pattern=REFERENCE_PATTERN,
        description="Confirmed: the platform's issue record (its cancellation record, for a return).",
    )
    reasons: list[str] = Field(
        default_factory=list, max_length=REASONS_MAX, description="Refused: the objective reasons or conditions."
    )


def _answer_of(reply: AnswerOut, *, sent: dict[str, Any], received: dict[str, Any]) -> Answer:
    return Answer(reply.status, reply.record_reference, tuple(reply.reasons), sent, received)


def _consistent(reply: AnswerOut, reference: str) -> str | None:
    """Why the answer does not fit the question, or None when it does."""
    if reply.reference != reference:
        return "the answer is about another transfer"
    if (reply.status == "confirmed") != (reply.record_reference is not None):
        return "a confirmation, and only a confirmation, names the platform's record"
    if (reply.status == "refused") != bool(reply.reasons):
        return "a refusal, and only a refusal, gives reasons"
    return None


class HttpTradingPlatforms:
    """The trading platforms' gateway: `POST {base_url}/v1/platforms/{code}/transfers` to notify,
    `GET {base_url}/v1/platforms/{code}/transfers/{reference}` for the answer; bearer `token` when given.
    Any status but 200 is a failure, as is an answer that contradicts itself or the question."""

    def __init__(
        self, base_url: str, *, timeout_s: float, token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api = JsonApiClient(
            party=PARTY, base_url=base_url, timeout_s=timeout_s, token=token, transport=transport, log=log
        )

    async def notify_transfer(
        self, platform: str, *, transfer_id: uuid.UUID, emission: str, units: int, issuer_bin: str, direction: Direction
    ) -> Receipt:
        """See `TradingPlatforms.notify_transfer`. Raises ExternalPartyUnavailable."""
        _check_notice(platform, units, issuer_bin, direction)
        sent = _notice(transfer_id, emission, units, issuer_bin, direction)
        reply, elapsed_ms = await self._api.post(f"/v1/platforms/{platform}/transfers", sent, ReceiptOut)
        log.info("trading platform notified", extra={"platform": platform, "direction": direction, "elapsed_ms": elapsed_ms})
        return Receipt(reply.reference, sent, reply.model_dump(mode="json"))

    async def answer(self, platform: str, *, reference: str) -> Answer:
        """See `TradingPlatforms.answer`. Raises ExternalPartyUnavailable."""
        status, body, elapsed_ms = await self._api.request("GET", f"/v1/platforms/{platform}/transfers/{reference}")
        if status != 200:
            raise self._api.failed(f"answered HTTP {status}", "status", status=status, elapsed_ms=elapsed_ms)
        reply = self._api.parse(body, AnswerOut)
        if (why := _consistent(reply, reference)) is not None:
            raise self._api.malformed(why)
        return _answer_of(reply, sent={"reference": reference}, received=reply.model_dump(mode="json"))

    async def aclose(self) -> None:
        await self._api.aclose()


# The simulator --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """How the simulated platform will answer a transfer: confirm it, refuse it with reasons, or stay silent."""

    status: Status
    reasons: tuple[str, ...] = ()


@dataclass
class SimulatedTransfer:
    """One transfer as the simulated platform keeps it."""

    reference: str
    platform: str
    notice: dict[str, Any]
    status: Status = "pending"
    record_reference: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass
class _Book:
    transfers: dict[str, SimulatedTransfer] = field(default_factory=dict)
    issued: dict[tuple[str, str], int] = field(default_factory=dict)  # (platform, emission) -> units


class TradingPlatformSimulator(SimulatedParty):
    """Trading platforms that know their codes and answer each transfer as tests (or a developer) decide.

    Each notice takes the next decision queued with `confirm_next`, `refuse_next` or `stay_silent`;
    with none queued it stays pending until `decide` settles it. A platform never confirms a return of
    more units than it issued for the emission (it refuses), and keeps track of what it issued.
    `down` and `latency_s` make every call raise ExternalPartyUnavailable as the HTTP client would;
    `requests` keeps the newest notices received, oldest first.
    """

    party = PARTY
    logger = log

    def __init__(
        self, platforms: Iterable[str] = DEMO_PLATFORMS, *, timeout_s: float | None = None, requests_kept: int = 1_000
    ) -> None:
        super().__init__(timeout_s=timeout_s, requests_kept=requests_kept)
        self.platforms: set[str] = set(platforms)
        self.requests: list[dict[str, Any]] = []
        self._decisions: deque[Decision] = deque()
        self._book = _Book()

    def confirm_next(self) -> None:
        """The next transfer notified is confirmed."""
        self._decisions.append(Decision("confirmed"))

    def refuse_next(self, reasons: Iterable[str]) -> None:
        """The next transfer notified is refused for these reasons."""
        decision = Decision("refused", tuple(reasons))
        invariant(0 < len(decision.reasons) <= REASONS_MAX, "a refusal gives 1 to 20 reasons")
        self._decisions.append(decision)

    def stay_silent(self) -> None:
        """The next transfer notified gets no answer."""
        self._decisions.append(Decision("pending"))

    def decide(self, reference: str, decision: Decision) -> None:
        """Answer a pending transfer now."""
        transfer = self._book.transfers[reference]
        invariant(transfer.status == "pending", f"transfer {reference} was answered already")
        self._apply(transfer, decision)

    def issued(self, platform: str, emission: str) -> int:
        """Units of `emission` the platform has issued and not cancelled."""
        return self._book.issued.get((platform, emission), 0)

    def _apply(self, transfer: SimulatedTransfer, decision: Decision) -> None:
        key = (transfer.platform, transfer.notice["emission"])
        units = transfer.notice["units"]
        returning = transfer.notice["direction"] == "in"
        if decision.status == "confirmed" and returning and units > self.issued(*key):
            decision = Decision("refused", (f"only {self.issued(*key)} units of {key[1]} are issued on {key[0]}",))
        transfer.status, transfer.reasons = decision.status, decision.reasons
        if decision.status == "confirmed":
            transfer.record_reference = f"{transfer.platform.upper()}-REC-{uuid.uuid4().hex[:12]}"
            self._book.issued[key] = self.issued(*key) + (-units if returning else units)

    def receive(self, platform: str, notice: dict[str, Any]) -> str:
        """Take a notice, with no network in between; returns the platform's reference.
        Raises KeyError for a platform it does not know."""
        if platform not in self.platforms:
            raise KeyError(platform)
        transfer = SimulatedTransfer(f"{platform.upper()}-{uuid.uuid4().hex}", platform, notice)
        self._book.transfers[transfer.reference] = transfer
        self._keep(self.requests, {"platform": platform, **notice})
        decision = self._decisions.popleft() if self._decisions else Decision("pending")
        if decision.status != "pending":
            self._apply(transfer, decision)
        return transfer.reference

    def look_up(self, platform: str, reference: str) -> AnswerOut:
        """The answer about one transfer, with no network in between. Raises KeyError for an unknown one."""
        transfer = self._book.transfers[reference]
        if transfer.platform != platform:
            raise KeyError(reference)
        return AnswerOut(
            reference=reference, status=transfer.status, record_reference=transfer.record_reference,
            reasons=list(transfer.reasons),
        )

    async def notify_transfer(
        self, platform: str, *, transfer_id: uuid.UUID, emission: str, units: int, issuer_bin: str, direction: Direction
    ) -> Receipt:
        """See `TradingPlatforms.notify_transfer`. Raises ExternalPartyUnavailable."""
        _check_notice(platform, units, issuer_bin, direction)
        await self._reach()
        sent = _notice(transfer_id, emission, units, issuer_bin, direction)
        try:
            reference = self.receive(platform, sent)
        except KeyError:
            raise unavailable(self.party, f"gateway does not know the platform {platform}") from None
        return Receipt(reference, sent, {"reference": reference})

    async def answer(self, platform: str, *, reference: str) -> Answer:
        """See `TradingPlatforms.answer`. Raises ExternalPartyUnavailable."""
        await self._reach()
        try:
            reply = self.look_up(platform, reference)
        except KeyError:
            raise unavailable(self.party, f"{platform} does not know the transfer {reference}") from None
        return _answer_of(reply, sent={"reference": reference}, received=reply.model_dump(mode="json"))

    async def aclose(self) -> None:
        return None


def simulator_app(simulator: TradingPlatformSimulator, *, token: str | None = None) -> FastAPI:
    """The gateway's HTTP API answered by `simulator`: 503 while it is down, 401 without the bearer
    `token` when one is set, 404 for a platform or transfer it does not know, 422 for a malformed notice."""
    app = simulator_api(simulator, title="Trading platforms (simulator)", token=token)

    @app.post("/v1/platforms/{platform}/transfers", response_model=ReceiptOut)
    async def notify(platform: str, notice: NoticeIn) -> ReceiptOut:
        try:
            return ReceiptOut(reference=simulator.receive(platform, notice.model_dump(mode="json")))
        except KeyError:
            raise HTTPException(404, f"no platform {platform}") from None

    @app.get("/v1/platforms/{platform}/transfers/{reference}", response_model=AnswerOut)
    async def answer(platform: str, reference: str) -> AnswerOut:
        try:
            return simulator.look_up(platform, reference)
        except KeyError:
            raise HTTPException(404, f"no transfer {reference} on {platform}") from None

    return app


def trading_platforms_from_settings(settings: Settings) -> TradingPlatforms:
    """The gateway at `trading_platform_url`, or — outside production only — the simulator.

    Raises ValueError in production without `trading_platform_url`: units would be cancelled here on a
    confirmation no platform gave (REQ-46).
    """
    if settings.trading_platform_url:
        token = (settings.trading_platform_token.get_secret_value() if settings.trading_platform_token else "") or None
        return HttpTradingPlatforms(settings.trading_platform_url, timeout_s=settings.external_timeout_s, token=token)
    if settings.environment == "production":
        raise ValueError("trading_platform_url is required in production; the trading-platform simulator is for development")
    return TradingPlatformSimulator(timeout_s=settings.external_timeout_s)
