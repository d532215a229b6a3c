"""The National Bank of Kazakhstan as the receiver of the operator's notices (REQ-31): a breach found by the
daily reconciliation is reported at once, and the Bank's receipt is the evidence that it was.

One interface, `NationalBank`, and three things behind it: `HttpNationalBank` talks to the Bank's API;
`NationalBankSimulator` receives notices in-process, and can be down or slow like the real Bank;
`simulator_app` serves that simulator over the Bank's HTTP API, so the HTTP client is tested against it
over real HTTP.

The operator's id of a notice is its idempotency key: the Bank keeps a notice sent twice once and answers
the repeat with the first receipt, which is what lets a notice be sent again after a crash without being
received twice. A refusal (`NoticeRefused`) is an answer: the notice as written will never be accepted.
Only the absence of a usable answer raises `ExternalPartyUnavailable`.
"""

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Protocol

import httpx
from fastapi import Body, FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dfa.platform.adapters.external import JsonApiClient, Receipt, SimulatedParty, simulator_api
from dfa.platform.errors import Category, DomainError, invariant
from dfa.platform.settings import Settings
from dfa.platform.types import AwareDatetime, Text

PARTY = "National Bank"
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"  # notice ids and receipt ids
NOTICE_KIND_PATTERN = r"^[a-z][a-z_]{0,49}$"
DETAIL_MAX_LENGTH = 10_000
REFUSAL_REASON_MAX_LENGTH = 500

log = logging.getLogger("dfa.national_bank")


class NoticeRefused(DomainError):
    """The National Bank received a notice and refused it: sending the same notice again gets the same
    refusal. `reason` is the Bank's own words; it never quotes the notice."""

    type = "notice-refused"
    title = "The National Bank refused the notice"
    category = Category.REFUSED


def _refused(reason: str) -> NoticeRefused:
    reason = reason[:REFUSAL_REASON_MAX_LENGTH]
    return NoticeRefused(f"the {PARTY} refused the notice: {reason}", reason=reason)


class NationalBank(Protocol):
    async def send_notice(self, *, notice_id: str, body: dict[str, Any]) -> Receipt:
        """Deliver the notice `body` under the operator's `notice_id`, and the Bank's receipt for it.

        The same `notice_id` sent again gets the first receipt, the notice kept once. `body` carries at
        least `notice_id` (the same id), `kind`, `operator` (name, bin, nbk_registration_number),
        `business_date`, `found_at` and `detail`. Raises NoticeRefused when the Bank refuses the notice,
        ExternalPartyUnavailable on a timeout, a connection failure, an error status or a malformed
        answer — never a receipt the Bank did not give.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; call once at shutdown."""
        ...


def _check_notice_id(notice_id: str) -> None:
    invariant(re.fullmatch(ID_PATTERN, notice_id) is not None, "a notice id is 1 to 100 URL-safe characters")


# The Bank's HTTP API ----------------------------------------------------------------------------


class OperatorIn(BaseModel):
    name: Text = Field(min_length=1, max_length=300, description="The operator's legal name.")
    bin: str = Field(pattern=r"^\d{12}$", description="The operator's business identification number (BIN).")
    nbk_registration_number: str = Field(
        min_length=1, max_length=20, description="The registration number the National Bank gave the operator."
    )


class NoticeIn(BaseModel):
    """What the Bank requires of every notice; the rest of the body is the notice's particulars."""

    model_config = ConfigDict(extra="allow")

    notice_id: str = Field(pattern=ID_PATTERN, description="The operator's id of the notice.")
    kind: str = Field(pattern=NOTICE_KIND_PATTERN, description="What was found, e.g. coverage_shortfall.")
    operator: OperatorIn = Field(description="The operator sending the notice.")
    business_date: date = Field(description="The business day the finding is about.")
    found_at: AwareDatetime = Field(description="When the operator found it.")
    detail: Text = Field(min_length=1, max_length=DETAIL_MAX_LENGTH, description="The finding in words.")


class ReceiptAnswer(BaseModel):
    notice_id: str = Field(description="The id of the notice received, echoed.")
    receipt_id: str = Field(pattern=ID_PATTERN, description="The Bank's id of this receipt.")
    received_at: AwareDatetime = Field(description="When the Bank received the notice.")


class RefusalAnswer(BaseModel):
    reason: str = Field(min_length=1, max_length=REFUSAL_REASON_MAX_LENGTH, description="Why, in the Bank's words.")


class HttpNationalBank:
    """The Bank's API: `POST {base_url}/v1/operator-notices` with the notice as JSON, the notice id in an
    `Idempotency-Key` header, bearer `token` when given. It answers 200 with a `ReceiptAnswer` or 422
    with a `RefusalAnswer`.

    Anything else — another status, a 422 without a refusal, a receipt for another notice — is
    ExternalPartyUnavailable.
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

    async def send_notice(self, *, notice_id: str, body: dict[str, Any]) -> Receipt:
        """See `NationalBank.send_notice`. Raises NoticeRefused, ExternalPartyUnavailable."""
        _check_notice_id(notice_id)
        status, answer, elapsed_ms = await self._api.request(
            "POST", "/v1/operator-notices", json=body, headers={"Idempotency-Key": notice_id}
        )
        if status == 200:
            receipt = self._api.parse(answer, ReceiptAnswer)
            if receipt.notice_id != notice_id:
                raise self._api.malformed("the receipt is for another notice than the one sent")
            log.info(
                "notice received by the National Bank",
                extra={"notice_id": notice_id, "receipt_id": receipt.receipt_id, "elapsed_ms": elapsed_ms},
            )
            return Receipt(receipt.receipt_id, receipt.received_at)
        refusal = _refusal(answer) if status == 422 else None
        if refusal is None:
            raise self._api.failed(f"answered HTTP {status}", "status", status=status, elapsed_ms=elapsed_ms)
        log.warning("notice refused by the National Bank", extra={"notice_id": notice_id, "elapsed_ms": elapsed_ms})
        raise _refused(refusal.reason)

    async def aclose(self) -> None:
        await self._api.aclose()


def _refusal(answer: bytes) -> RefusalAnswer | None:
    try:
        return RefusalAnswer.model_validate_json(answer)
    except ValidationError:
        return None


# The simulator ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedNotice:
    """A notice the simulated Bank accepted, as it arrived, with the receipt it gave."""

    notice_id: str
    body: dict[str, Any]
    receipt: Receipt


def _require_mandatory_fields(body: dict[str, Any]) -> None:
    try:
        NoticeIn.model_validate(body)
    except ValidationError as exc:
        # Name the fields only: the validation error quotes the notice.
        where = sorted({".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()})
        raise _refused(f"the notice lacks or has malformed fields: {', '.join(where)}") from None


class NationalBankSimulator(SimulatedParty):
    """A National Bank that accepts notices carrying the fields it requires, keeps each notice once under
    its id and answers a repeat with the first receipt; it refuses a notice whose id differs from its
    idempotency key, and a known id sent with other content.

    `down` and `latency_s` (against `timeout_s`, the caller's timeout) make `send_notice` raise
    ExternalPartyUnavailable as the HTTP client would. `notices` holds every notice accepted, by id, in
    the order received (notices are few: one per breach); `requests` the ids of the newest
    `requests_kept` notices that reached the Bank, repeats and refusals included, oldest first.
    """

    party = PARTY
    logger = log

    def __init__(self, *, timeout_s: float | None = None, requests_kept: int = 1_000) -> None:
        super().__init__(timeout_s=timeout_s, requests_kept=requests_kept)
        self.notices: dict[str, ReceivedNotice] = {}
        self.requests: list[str] = []

    async def send_notice(self, *, notice_id: str, body: dict[str, Any]) -> Receipt:
        """See `NationalBank.send_notice`. Raises NoticeRefused, ExternalPartyUnavailable."""
        _check_notice_id(notice_id)
        await self._reach()
        # What arrives is what survives the wire: JSON, and a copy the sender cannot change afterwards.
        return self.receive(notice_id=notice_id, body=json.loads(json.dumps(body)))

    def receive(self, *, notice_id: str, body: dict[str, Any]) -> Receipt:
        """The Bank's answer itself, with no network in between. Raises NoticeRefused."""
        self._keep(self.requests, notice_id)
        _require_mandatory_fields(body)
        if body["notice_id"] != notice_id:
            raise _refused("the notice's id differs from its Idempotency-Key")
        received = self.notices.get(notice_id)
        if received is None:
            received = ReceivedNotice(notice_id, body, Receipt(f"NB-{uuid.uuid4().hex}", datetime.now(UTC)))
            self.notices[notice_id] = received
        elif received.body != body:
            raise _refused(f"notice {notice_id} was received earlier with other content")
        return received.receipt

    async def aclose(self) -> None:
        return None


def simulator_app(simulator: NationalBankSimulator, *, token: str | None = None) -> FastAPI:
    """The Bank's HTTP API answered by `simulator`: 503 while it is down, 401 without the bearer `token`
    when one is set, 422 with a `RefusalAnswer` for a refused notice."""
    app = simulator_api(simulator, title="National Bank: operator notices (simulator)", token=token)

    @app.post("/v1/operator-notices", response_model=ReceiptAnswer, responses={422: {"model": RefusalAnswer}})
    async def receive_notice(
        body: Annotated[dict[str, Any], Body(description="The notice.")],
        notice_id: Annotated[
            str, Header(alias="Idempotency-Key", pattern=ID_PATTERN, description="The notice's id.")
        ],
    ) -> JSONResponse:
        try:
            receipt = simulator.receive(notice_id=notice_id, body=body)
        except NoticeRefused as refused:
            return JSONResponse(RefusalAnswer(reason=refused.context["reason"]).model_dump(), status_code=422)
        answer = ReceiptAnswer(notice_id=notice_id, receipt_id=receipt.receipt_id, received_at=receipt.received_at)
        return JSONResponse(answer.model_dump(mode="json"))

    return app


def national_bank_from_settings(settings: Settings) -> NationalBank:
    """The Bank's API at `national_bank_url`, or — outside production only — the simulator.

    Raises ValueError in production without `national_bank_url`: notices the regulator must have at once
    (REQ-31) would reach nobody.
    """
    if settings.national_bank_url:
        token = (settings.national_bank_token.get_secret_value() if settings.national_bank_token else "") or None
        return HttpNationalBank(settings.national_bank_url, timeout_s=settings.external_timeout_s, token=token)
    if settings.environment == "production":
        raise ValueError("national_bank_url is required in production; the National Bank simulator is for development")
    return NationalBankSimulator(timeout_s=settings.external_timeout_s)
