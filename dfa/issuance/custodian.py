"""Underlying-asset custodians (REQ-27): with the issuer's consent the operator asks the organisation
keeping an underlying asset for a statement of its existence, legal status, encumbrances, quantity and
market value.

One interface, `Custodian`, and three things behind it: `HttpCustodian` talks to the custodians' gateway
(one URL, the custodian's code in the path); `CustodianSimulator` answers from the assets registered with
it, and can be down or slow like a real custodian; `simulator_app` serves that simulator over the
gateway's HTTP API, so the HTTP client is tested against it over real HTTP.

An unknown asset is an answer (`exists` is false), not an error: judging it is the caller's business.
Only the absence of a usable answer raises `ExternalPartyUnavailable`.

The operator also notifies a custodian of a breach about an asset it keeps (REQ-31). The operator's id of
the notice is its idempotency key: a notice sent twice is kept once and the repeat gets the first receipt.
"""

import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, Protocol

import httpx
from fastapi import Body, FastAPI, Header, Path
from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.adapters.external import JsonApiClient, Receipt, SimulatedParty, simulator_api
from dfa.platform.errors import invariant
from dfa.platform.settings import Settings
from dfa.platform.types import BIGINT_MAX, AwareDatetime, Text

PARTY = "underlying-asset custodian"
CUSTODIAN_CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{1,49}$"
REFERENCE_MAX_LENGTH = 100
UNIT_MAX_LENGTH = 20
ENCUMBRANCES_MAX = 100
ENCUMBRANCE_MAX_LENGTH = 500
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"  # notice ids and receipt ids

log = logging.getLogger("dfa.custodian")

LegalStatus = Literal["clear", "disputed", "unclear"]


@dataclass(frozen=True)
class CustodianStatement:
    """What a custodian states about one asset it is asked about, under its own statement id.

    For an asset it does not keep, `exists` is false, the status `unclear` and the amounts zero.
    `market_value` is in tiyn, as of `valued_on`; both are None when the custodian states no valuation
    (none was ever made, or the last one was withdrawn) — which certifies nothing and covers nothing.
    """

    exists: bool
    legal_status: LegalStatus
    encumbrances: tuple[str, ...]
    quantity: int
    unit: str
    market_value: int | None
    valued_on: date | None
    statement_id: str

    @property
    def encumbered(self) -> bool:
        return bool(self.encumbrances)


class Custodian(Protocol):
    async def statement(self, *, custodian: str, reference: str) -> CustodianStatement:
        """The statement of custodian `custodian` (its code) on the asset it keeps under `reference`.

        Raises ExternalPartyUnavailable on a timeout, a connection failure, an error status or a
        malformed answer — never a statement the custodian did not give.
        """
        ...

    async def notify(self, *, custodian: str, notice_id: str, body: dict[str, Any]) -> Receipt:
        """Deliver the notice `body` to custodian `custodian` (its code) under the operator's `notice_id`,
        and the custodian's receipt for it; the same `notice_id` sent again gets the first receipt.

        Raises ExternalPartyUnavailable on a timeout, a connection failure, an error status or a
        malformed answer — never a receipt the custodian did not give.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; call once at shutdown."""
        ...


def _check_custodian(custodian: str) -> None:
    invariant(re.fullmatch(CUSTODIAN_CODE_PATTERN, custodian) is not None, f"custodian code {custodian!r} is malformed")


def _check_request(custodian: str, reference: str) -> None:
    _check_custodian(custodian)
    invariant(0 < len(reference) <= REFERENCE_MAX_LENGTH, "a custodian's reference has 1 to 100 characters")


def _check_notice(custodian: str, notice_id: str) -> None:
    _check_custodian(custodian)
    invariant(re.fullmatch(ID_PATTERN, notice_id) is not None, "a notice id is 1 to 100 URL-safe characters")


# The gateway's HTTP API ---------------------------------------------------------------------------


class StatementRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Text = Field(
        min_length=1, max_length=REFERENCE_MAX_LENGTH, description="The custodian's own reference of the asset."
    )


class StatementAnswer(BaseModel):
    reference: str = Field(description="The reference asked about, echoed.")
    exists: bool = Field(description="Whether the custodian keeps an asset under this reference.")
    legal_status: LegalStatus = Field(description="clear, disputed (a claim against it is pending) or unclear.")
    encumbrances: list[Annotated[str, Field(min_length=1, max_length=ENCUMBRANCE_MAX_LENGTH)]] = Field(
        max_length=ENCUMBRANCES_MAX, description="Every pledge, arrest or other encumbrance; empty when none."
    )
    quantity: int = Field(ge=0, le=BIGINT_MAX, description="Quantity kept, in `unit`.")
    unit: str = Field(max_length=UNIT_MAX_LENGTH, description="Unit of the quantity (t, kg, m2, pcs).")
    market_value_tiyn: int | None = Field(
        ge=0, le=BIGINT_MAX, description="Market value in tiyn as of `valued_on`; null when the custodian states none."
    )
    valued_on: date | None = Field(description="Date of the valuation; null exactly when `market_value_tiyn` is.")
    statement_id: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$", description="The custodian's id of this statement."
    )


class NoticeReceiptAnswer(BaseModel):
    notice_id: str = Field(description="The id of the notice received, echoed.")
    receipt_id: str = Field(pattern=ID_PATTERN, description="The custodian's id of this receipt.")
    received_at: AwareDatetime = Field(description="When the custodian received the notice.")


class HttpCustodian:
    """The custodians' gateway, bearer `token` when given: `POST {base_url}/v1/custodians/{code}/statements`
    for statements, `POST {base_url}/v1/custodians/{code}/notices` for notices (the notice id in an
    `Idempotency-Key` header).

    Any status but 200 is a failure, as is an answer about another asset or notice than the one sent.
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

    async def statement(self, *, custodian: str, reference: str) -> CustodianStatement:
        """See `Custodian.statement`. Raises ExternalPartyUnavailable."""
        _check_request(custodian, reference)
        answer, elapsed_ms = await self._api.post(
            f"/v1/custodians/{custodian}/statements", {"reference": reference}, StatementAnswer
        )
        if answer.reference != reference:
            raise self._api.malformed("the statement is about another asset than the one asked about")
        if (answer.market_value_tiyn is None) != (answer.valued_on is None):
            raise self._api.malformed("a market value comes with its date, and a date with its value")
        log.info(
            "custodian statement obtained",
            extra={"custodian": custodian, "statement_id": answer.statement_id, "elapsed_ms": elapsed_ms},
        )
        return CustodianStatement(
            exists=answer.exists, legal_status=answer.legal_status, encumbrances=tuple(answer.encumbrances),
            quantity=answer.quantity, unit=answer.unit, market_value=answer.market_value_tiyn,
            valued_on=answer.valued_on, statement_id=answer.statement_id,
        )

    async def notify(self, *, custodian: str, notice_id: str, body: dict[str, Any]) -> Receipt:
        """See `Custodian.notify`. Raises ExternalPartyUnavailable."""
        _check_notice(custodian, notice_id)
        answer, elapsed_ms = await self._api.post(
            f"/v1/custodians/{custodian}/notices", body, NoticeReceiptAnswer, headers={"Idempotency-Key": notice_id}
        )
        if answer.notice_id != notice_id:
            raise self._api.malformed("the receipt is for another notice than the one sent")
        log.info(
            "notice received by a custodian",
            extra={"custodian": custodian, "notice_id": notice_id, "receipt_id": answer.receipt_id,
                   "elapsed_ms": elapsed_ms},
        )
        return Receipt(answer.receipt_id, answer.received_at)

    async def aclose(self) -> None:
        await self._api.aclose()


# The simulator ------------------------------------------------------------------------------------


@dataclass
class KeptAsset:
    """An asset as its custodian knows it."""

    quantity: int
    unit: str
    market_value: int | None  # tiyn; None while the custodian has no valuation
    valued_on: date | None
    legal_status: LegalStatus = "clear"
    encumbrances: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StatementRecord:
    """One statement the simulator gave, kept so tests can see what was asked and answered."""

    custodian: str
    reference: str
    statement: CustodianStatement


@dataclass(frozen=True)
class ReceivedNotice:
    """A notice a custodian received, as it arrived, with the receipt it gave."""

    notice_id: str
    body: dict[str, Any]
    receipt: Receipt


def _today() -> date:
    return datetime.now(UTC).date()


class CustodianSimulator(SimulatedParty):
    """Custodians answering from the assets registered with `keep`, changed with `revalue`,
    `encumber`, `dispute` and `remove`. An asset nobody registered does not exist.

    `down` and `latency_s` (against `timeout_s`, the caller's timeout) make `statement` and `notify`
    raise ExternalPartyUnavailable as the HTTP client would. `requests` keeps the newest `requests_kept`
    statements given, oldest first; `notices` every notice received, per custodian code and then by
    notice id, in the order received (notices are few: one per breach).
    """

    party = PARTY
    logger = log

    def __init__(self, *, timeout_s: float | None = None, requests_kept: int = 1_000) -> None:
        super().__init__(timeout_s=timeout_s, requests_kept=requests_kept)
        self.assets: dict[tuple[str, str], KeptAsset] = {}
        self.requests: list[StatementRecord] = []
        self.notices: dict[str, dict[str, ReceivedNotice]] = {}

    def keep(
        self, custodian: str, reference: str, *, quantity: int, unit: str, market_value: int | None,
        valued_on: date | None = None,
    ) -> None:
        """Register (or replace) a clear, unencumbered asset valued at `market_value` tiyn, or not valued at
        all when `market_value` is None."""
        invariant(quantity >= 0 and (market_value or 0) >= 0, "a kept asset's quantity and value are not negative")
        valued_on = None if market_value is None else valued_on or _today()
        self.assets[(custodian, reference)] = KeptAsset(quantity, unit, market_value, valued_on)

    def revalue(self, custodian: str, reference: str, *, market_value: int, valued_on: date | None = None) -> None:
        invariant(market_value >= 0, "a market value is not negative")
        asset = self._kept(custodian, reference)
        asset.market_value, asset.valued_on = market_value, valued_on or _today()

    def withdraw_valuation(self, custodian: str, reference: str) -> None:
        """The custodian no longer vouches for the asset's last valuation and has no new one yet."""
        asset = self._kept(custodian, reference)
        asset.market_value, asset.valued_on = None, None

    def encumber(self, custodian: str, reference: str, encumbrance: str) -> None:
        """Record a pledge, arrest or other encumbrance, described as the custodian would."""
        self._kept(custodian, reference).encumbrances.append(encumbrance)

    def dispute(self, custodian: str, reference: str, *, status: LegalStatus = "disputed") -> None:
        self._kept(custodian, reference).legal_status = status

    def remove(self, custodian: str, reference: str) -> None:
        """The custodian no longer keeps the asset (released, sold, lost)."""
        self._kept(custodian, reference)
        del self.assets[(custodian, reference)]

    def _kept(self, custodian: str, reference: str) -> KeptAsset:
        asset = self.assets.get((custodian, reference))
        invariant(asset is not None, f"custodian {custodian} keeps no asset {reference!r}")
        return asset

    async def statement(self, *, custodian: str, reference: str) -> CustodianStatement:
        """See `Custodian.statement`. Raises ExternalPartyUnavailable."""
        _check_request(custodian, reference)
        await self._reach()
        return self.answer(custodian=custodian, reference=reference)

    def answer(self, *, custodian: str, reference: str) -> CustodianStatement:
        """The custodian's statement itself, with no network in between."""
        asset = self.assets.get((custodian, reference))
        statement_id = f"ST-{uuid.uuid4().hex}"
        if asset is None:
            statement = CustodianStatement(False, "unclear", (), 0, "", 0, _today(), statement_id)
        else:
            statement = CustodianStatement(
                True, asset.legal_status, tuple(asset.encumbrances), asset.quantity, asset.unit,
                asset.market_value, asset.valued_on, statement_id,
            )
        self._keep(self.requests, StatementRecord(custodian, reference, statement))
        return statement

    async def notify(self, *, custodian: str, notice_id: str, body: dict[str, Any]) -> Receipt:
        """See `Custodian.notify`. Raises ExternalPartyUnavailable."""
        _check_notice(custodian, notice_id)
        await self._reach()
        # What arrives is what survives the wire: JSON, and a copy the sender cannot change afterwards.
        return self.receive_notice(custodian=custodian, notice_id=notice_id, body=json.loads(json.dumps(body)))

    def receive_notice(self, *, custodian: str, notice_id: str, body: dict[str, Any]) -> Receipt:
        """The custodian's receipt itself, with no network in between: the first receipt for a known id."""
        received = self.notices.setdefault(custodian, {})
        if notice_id not in received:
            received[notice_id] = ReceivedNotice(notice_id, body, Receipt(f"CN-{uuid.uuid4().hex}", datetime.now(UTC)))
        return received[notice_id].receipt

    async def aclose(self) -> None:
        return None


def simulator_app(simulator: CustodianSimulator, *, token: str | None = None) -> FastAPI:
    """The gateway's HTTP API answered by `simulator`, statements and notices: 503 while it is down, 401
    without the bearer `token` when one is set, 422 for a request the gateway would not accept."""
    app = simulator_api(simulator, title="Underlying-asset custodians (simulator)", token=token)

    @app.post("/v1/custodians/{custodian}/statements", response_model=StatementAnswer)
    async def give_statement(
        custodian: Annotated[str, Path(pattern=CUSTODIAN_CODE_PATTERN, description="The custodian's code.")],
        request: StatementRequest,
    ) -> StatementAnswer:
        statement = simulator.answer(custodian=custodian, reference=request.reference)
        return StatementAnswer(
            reference=request.reference, exists=statement.exists, legal_status=statement.legal_status,
            encumbrances=list(statement.encumbrances), quantity=statement.quantity, unit=statement.unit,
            market_value_tiyn=statement.market_value, valued_on=statement.valued_on,
            statement_id=statement.statement_id,
        )

    @app.post("/v1/custodians/{custodian}/notices", response_model=NoticeReceiptAnswer)
    async def receive_notice(
        custodian: Annotated[str, Path(pattern=CUSTODIAN_CODE_PATTERN, description="The custodian's code.")],
        body: Annotated[dict[str, Any], Body(description="The notice.")],
        notice_id: Annotated[
            str, Header(alias="Idempotency-Key", pattern=ID_PATTERN, description="The notice's id.")
        ],
    ) -> NoticeReceiptAnswer:
        receipt = simulator.receive_notice(custodian=custodian, notice_id=notice_id, body=body)
        return NoticeReceiptAnswer(notice_id=notice_id, receipt_id=receipt.receipt_id, received_at=receipt.received_at)

    return app


# What the development platform's custodians keep: a grain warehouse receipt that can back a sizeable
# emission, gold in a vault, and a receipt pledged to a bank (so a certification can be seen failing).
DEMO_ASSETS = (
    ("kazgrain", "WR-2026-0001", 5_000, "t", 60_000_000_000),  # 5,000 t of wheat, 600 million KZT
    ("kazgold", "VAULT-AU-0042", 100, "kg", 350_000_000_000),  # 100 kg of gold bullion, 3.5 billion KZT
    ("kazgrain", "WR-2026-0002", 1_000, "t", 12_000_000_000),
)
DEMO_PLEDGE = ("kazgrain", "WR-2026-0002", "pledged to a bank under pledge agreement 77/2026")
DEMO_GRAIN = DEMO_ASSETS[0][:2]  # (custodian, reference) of the receipt backing the demo emission


def demo_simulator(*, timeout_s: float | None = None) -> CustodianSimulator:
    """A simulator keeping the demo assets."""
    simulator = CustodianSimulator(timeout_s=timeout_s)
    for custodian, reference, quantity, unit, market_value in DEMO_ASSETS:
        simulator.keep(custodian, reference, quantity=quantity, unit=unit, market_value=market_value)
    simulator.encumber(*DEMO_PLEDGE)
    return simulator


def custodian_from_settings(settings: Settings) -> Custodian:
    """The custodians' gateway at `custodian_url`, or — outside production only — the simulator keeping
    the demo assets.

    Raises ValueError in production without `custodian_url`: a simulated custodian would vouch for
    assets no custodian was ever asked about (REQ-27, REQ-28).
    """
    if settings.custodian_url:
        token = (settings.custodian_token.get_secret_value() if settings.custodian_token else "") or None
        return HttpCustodian(settings.custodian_url, timeout_s=settings.external_timeout_s, token=token)
    if settings.environment == "production":
        raise ValueError("custodian_url is required in production; the custodian simulator is for development")
    return demo_simulator(timeout_s=settings.external_timeout_s)
