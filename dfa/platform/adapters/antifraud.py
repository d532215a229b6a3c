"""The anti-fraud centre (REQ-17, REQ-18): before an operation is executed, the identification data of
its sender and of its recipient are compared with the centre's databases.

One interface, `AntiFraudCentre`, and three things behind it: `HttpAntiFraudCentre` talks to the centre;
`AntiFraudSimulator` answers from a watch list in-process, and can be down or slow like the real
centre; `simulator_app` serves that simulator over the centre's HTTP API, so the HTTP client is tested
against it over real HTTP.

A match is an answer, not an error: what to do with it (hold the operation for review) is the caller's
decision. Only the absence of a usable answer raises.
"""

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Protocol

import httpx
from fastapi import FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dfa.platform.adapters.external import (
    JsonApiClient,
    SimulatedParty,
    mask_identifier,
    require_identification_number,
    simulator_api,
)
from dfa.platform.errors import invariant
from dfa.platform.identifiers import is_valid_identification_number
from dfa.platform.settings import Settings
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, Text

PARTY = "anti-fraud centre"
DEMO_WATCH_LIST = Path(__file__).parent / "data" / "antifraud_watch_list.json"

OPERATION_PATTERN = r"^[a-z][a-z0-9_-]{0,49}$"
NAME_MAX_LENGTH = 300
MATCHES_MAX = 100
WATCH_LIST_ENTRIES_MAX = 1_000_000

log = logging.getLogger("dfa.antifraud")

SubjectKind = Literal["person", "legal_entity"]
Role = Literal["sender", "recipient"]


@dataclass(frozen=True)
class Subject:
    """One party to an operation as the centre sees it; `identifier` is a valid IIN/BIN."""

    identifier: str
    name: str
    kind: SubjectKind

    def __post_init__(self) -> None:
        require_identification_number(self.identifier, what="subject's identifier")
        invariant(self.kind in ("person", "legal_entity"), f"unknown subject kind {self.kind!r}")
        invariant(0 < len(self.name) <= NAME_MAX_LENGTH, f"a subject's name has 1 to {NAME_MAX_LENGTH} characters")


@dataclass(frozen=True)
class Match:
    """One party of the operation found on one of the centre's lists."""

    identifier: str
    role: Role
    list_name: str
    reason: str


@dataclass(frozen=True)
class Screening:
    """The centre's answer for one operation: its check reference and every match (none when clear)."""

    reference: str
    matches: tuple[Match, ...] = ()

    @property
    def clear(self) -> bool:
        """Neither party is on any of the centre's lists."""
        return not self.matches


class AntiFraudCentre(Protocol):
    async def screen(
        self,
        *,
        operation: str,
        sender: Subject,
        recipient: Subject,
        amount: int | None = None,
        asset: str | None = None,
    ) -> Screening:
        """The centre's verdict on both parties of one operation, with a fresh reference (REQ-18).

        `operation` is a short lowercase label ("transfer", "dvp"); `amount` is in the asset's smallest
        unit. Raises ExternalPartyUnavailable on a timeout, a connection failure, an error status or a
        malformed answer — never a verdict the centre did not give.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; call once at shutdown."""
        ...


def _check_operation(operation: str, amount: int | None) -> None:
    invariant(re.fullmatch(OPERATION_PATTERN, operation) is not None, f"operation label {operation!r} is malformed")
    invariant(amount is None or 0 <= amount <= BIGINT_MAX, "an amount is a non-negative 64-bit integer")


def _log_requested(operation: str, sender: Subject, recipient: Subject, amount: int | None, asset: str | None) -> None:
    # Names and identifiers are personal data; the last four digits are enough to find the operation.
    log.info(
        "anti-fraud screening requested",
        extra={
            "operation": operation,
            "sender": mask_identifier(sender.identifier),
            "recipient": mask_identifier(recipient.identifier),
            "amount": amount,
            "asset": asset,
        },
    )


def _log_answered(operation: str, screening: Screening, elapsed_ms: float | None) -> None:
    log.info(
        "anti-fraud screening answered",
        extra={
            "operation": operation,
            "reference": screening.reference,
            "clear": screening.clear,
            "matched_roles": sorted({m.role for m in screening.matches}),
            "lists": sorted({m.list_name for m in screening.matches}),
            "elapsed_ms": elapsed_ms,
        },
    )


# The centre's HTTP API --------------------------------------------------------------------------


def _identification_number(value: str) -> str:
    if not is_valid_identification_number(value):
        raise ValueError("not a valid 12-digit IIN/BIN")
    return value


IdentificationNumber = Annotated[str, AfterValidator(_identification_number)]


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifier: IdentificationNumber = Field(description="IIN of a person or BIN of a legal entity.")
    name: Text = Field(min_length=1, max_length=NAME_MAX_LENGTH, description="Full name or registered legal name.")
    kind: SubjectKind = Field(description="person or legal_entity.")


class ScreeningRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: str = Field(pattern=OPERATION_PATTERN, description="Kind of operation about to be executed, e.g. transfer, dvp.")
    sender: SubjectIn = Field(description="The party the asset or money leaves.")
    recipient: SubjectIn = Field(description="The party the asset or money goes to.")
    amount: int | None = Field(
        default=None, ge=0, le=BIGINT_MAX, description="Amount in the asset's smallest unit, when the operation has one."
    )
    asset: str | None = Field(default=None, pattern=ASSET_CODE_PATTERN, description="Asset code, when the operation has one.")


class MatchOut(BaseModel):
    identifier: str = Field(pattern=r"^\d{12}$", description="IIN/BIN of the party found on a list.")
    role: Role = Field(description="sender or recipient: which party of the operation was found.")
    list_name: str = Field(min_length=1, max_length=100, description="The centre's list the party is on.")
    reason: str = Field(min_length=1, max_length=500, description="Why the party is on that list.")


class ScreeningAnswer(BaseModel):
    reference: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$", description="The centre's id of this check."
    )
    matches: list[MatchOut] = Field(max_length=MATCHES_MAX, description="Every list entry either party matched; empty when clear.")


def _subject_payload(subject: Subject) -> dict[str, str]:
    return {"identifier": subject.identifier, "name": subject.name, "kind": subject.kind}


class HttpAntiFraudCentre:
    """The anti-fraud centre's API: `POST {base_url}/v1/screenings`, bearer `token` when given.

    Any status but 200 is a failure, as is a match naming someone who is not a party to the request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api = JsonApiClient(
            party=PARTY, base_url=base_url, timeout_s=timeout_s, token=token, transport=transport, log=log
        )

    async def screen(
        self,
        *,
        operation: str,
        sender: Subject,
        recipient: Subject,
        amount: int | None = None,
        asset: str | None = None,
    ) -> Screening:
        """See `AntiFraudCentre.screen`. Raises ExternalPartyUnavailable."""
        _check_operation(operation, amount)
        payload = {
            "operation": operation,
            "sender": _subject_payload(sender),
            "recipient": _subject_payload(recipient),
            "amount": amount,
            "asset": asset,
        }
        _log_requested(operation, sender, recipient, amount, asset)
        answer, elapsed_ms = await self._api.post("/v1/screenings", payload, ScreeningAnswer)
        screened = {"sender": sender.identifier, "recipient": recipient.identifier}
        if any(m.identifier != screened[m.role] for m in answer.matches):
            raise self._api.malformed("a match names someone who is not a party to the operation")
        screening = Screening(
            reference=answer.reference,
            matches=tuple(Match(m.identifier, m.role, m.list_name, m.reason) for m in answer.matches),
        )
        _log_answered(operation, screening, elapsed_ms)
        return screening

    async def aclose(self) -> None:
        await self._api.aclose()


# The simulator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchListEntry:
    identifier: str
    list_name: str
    reason: str


class WatchListEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifier: IdentificationNumber = Field(description="IIN or BIN on the list.")
    list_name: str = Field(alias="list", min_length=1, max_length=100, description="Name of the list.")
    reason: str = Field(min_length=1, max_length=500, description="Why the identifier is on the list.")


class WatchListFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[WatchListEntryIn] = Field(max_length=WATCH_LIST_ENTRIES_MAX, description="Every listed identifier.")


class WatchList:
    """The centre's databases as the simulator knows them: identifiers on named lists, with reasons.
    One identifier may be on several lists."""

    def __init__(self, entries: Iterable[WatchListEntry]) -> None:
        self._by_identifier: dict[str, tuple[WatchListEntry, ...]] = {}
        for entry in entries:
            self._by_identifier[entry.identifier] = (*self._by_identifier.get(entry.identifier, ()), entry)

    @classmethod
    def from_json(cls, text: str | bytes) -> "WatchList":
        """Raises pydantic.ValidationError (a ValueError) when the document is not a valid watch list."""
        document = WatchListFile.model_validate_json(text)
        return cls(WatchListEntry(e.identifier, e.list_name, e.reason) for e in document.entries)

    @classmethod
    def load(cls, path: Path) -> "WatchList":
        return cls.from_json(path.read_bytes())

    def entries_for(self, identifier: str) -> tuple[WatchListEntry, ...]:
        return self._by_identifier.get(identifier, ())

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_identifier.values())


@dataclass(frozen=True)
class ScreeningRecord:
    """One screening the simulator answered, kept so tests can see who was screened for what."""

    operation: str
    sender: Subject
    recipient: Subject
    amount: int | None
    asset: str | None
    screening: Screening


class AntiFraudSimulator(SimulatedParty):
    """An anti-fraud centre that matches identifiers against a watch list.

    `down` and `latency_s` (against `timeout_s`, the caller's timeout) make `screen` raise
    ExternalPartyUnavailable as the HTTP client would. `requests` keeps the newest `requests_kept`
    screenings answered, oldest first.
    """

    party = PARTY
    logger = log

    def __init__(self, watch_list: WatchList, *, timeout_s: float | None = None, requests_kept: int = 1_000) -> None:
        super().__init__(timeout_s=timeout_s, requests_kept=requests_kept)
        self.watch_list = watch_list
        self.requests: list[ScreeningRecord] = []

    async def screen(
        self,
        *,
        operation: str,
        sender: Subject,
        recipient: Subject,
        amount: int | None = None,
        asset: str | None = None,
    ) -> Screening:
        """See `AntiFraudCentre.screen`. Raises ExternalPartyUnavailable."""
        _check_operation(operation, amount)
        _log_requested(operation, sender, recipient, amount, asset)
        await self._reach()
        screening = self.answer(operation=operation, sender=sender, recipient=recipient, amount=amount, asset=asset)
        _log_answered(operation, screening, None)
        return screening

    def answer(
        self, *, operation: str, sender: Subject, recipient: Subject, amount: int | None, asset: str | None
    ) -> Screening:
        """The centre's answer itself, with no network in between: every list entry of either party."""
        matches = tuple(
            Match(subject.identifier, role, entry.list_name, entry.reason)
            for role, subject in (("sender", sender), ("recipient", recipient))
            for entry in self.watch_list.entries_for(subject.identifier)
        )
        screening = Screening(reference=f"AF-{uuid.uuid4().hex}", matches=matches)
        self._keep(self.requests, ScreeningRecord(operation, sender, recipient, amount, asset, screening))
        return screening

    async def aclose(self) -> None:
        return None


def simulator_app(simulator: AntiFraudSimulator, *, token: str | None = None) -> FastAPI:
    """The centre's HTTP API answered by `simulator`: 503 while it is down, 401 without the bearer
    `token` when one is set, 422 for a request the centre would not accept."""
    app = simulator_api(simulator, title="Anti-fraud centre (simulator)", token=token)

    @app.post("/v1/screenings", response_model=ScreeningAnswer)
    async def create_screening(request: ScreeningRequest) -> ScreeningAnswer:
        screening = simulator.answer(
            operation=request.operation,
            sender=Subject(**request.sender.model_dump()),
            recipient=Subject(**request.recipient.model_dump()),
            amount=request.amount,
            asset=request.asset,
        )
        return ScreeningAnswer(
            reference=screening.reference,
            matches=[
                MatchOut(identifier=m.identifier, role=m.role, list_name=m.list_name, reason=m.reason)
                for m in screening.matches
            ],
        )

    return app


def antifraud_centre_from_settings(settings: Settings) -> AntiFraudCentre:
    """The centre at `antifraud_url`, or — outside production only — the simulator with the configured
    or the bundled demo watch list.

    Raises ValueError in production without `antifraud_url`: a simulated centre would let operations
    through that the real one was never asked about (REQ-18).
    """
    if settings.antifraud_url:
        token = (settings.antifraud_token.get_secret_value() if settings.antifraud_token else "") or None
        return HttpAntiFraudCentre(settings.antifraud_url, timeout_s=settings.external_timeout_s, token=token)
    if settings.environment == "production":
        raise ValueError("antifraud_url is required in production; the anti-fraud simulator is for development")
    watch_list = WatchList.load(settings.antifraud_watch_list or DEMO_WATCH_LIST)
    return AntiFraudSimulator(watch_list, timeout_s=settings.external_timeout_s)
