"""The operator's bank, where the client-money account is kept: camt.053 statements of what was booked
on it, pain.001 payment orders that take money out of it.

One interface, `Bank`, and three things behind it: `HttpBank` talks to the bank; `BankSimulator` is an
honest in-memory bank that books exact tiyn, refuses what a bank would and can be down or slow like the
real one; `simulator_app` serves that simulator over the bank's HTTP API, so the HTTP client is tested
against it over real HTTP.

The bank's answer about money has two outcomes only, as with every external party: an answer, or
`ExternalPartyUnavailable`. A refusal of payment orders is an answer (`PaymentOrdersRefused`), and so
is an unknown account (`BankAccountUnknown`).
"""

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol
from xml.etree import ElementTree as ET

import httpx
from defusedxml import ElementTree as SafeET
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from dfa.platform.adapters.external import (
    JsonApiClient,
    SimulatedParty,
    mask_identifier,
    simulator_api,
)
from dfa.platform.errors import InvariantViolation, invariant
from dfa.platform.settings import Settings
from dfa.settlement.errors import BankAccountUnknown, InvalidIban, PaymentOrderInvalid, PaymentOrdersRefused
from dfa.settlement.iban import validate_kazakh_iban
from dfa.settlement.iso20022 import (
    AMOUNT_MAX_TIYN,
    MAX140,
    PAYMENT_CURRENCY,
    PAYMENT_ORDER_DOCUMENT_MAX_BYTES,
    STATEMENT_MAX_BYTES,
    PaymentOrder,
    StatementLine,
    format_amount,
    parse_pain001,
)

PARTY = "bank"
CAMT053_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
ACCEPTANCE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"
REFUSAL_REASON_MAX_LENGTH = 1_000
ACCOUNT_OWNER_NAME_MAX_LENGTH = MAX140

log = logging.getLogger("dfa.bank")


class RefusalCode(StrEnum):
    """Why the simulator refuses a pain.001 message; the real bank's codes pass through `HttpBank` as given."""

    MALFORMED_DOCUMENT = "malformed-document"
    UNKNOWN_ACCOUNT = "unknown-account"
    INSUFFICIENT_FUNDS = "insufficient-funds"
    INVALID_CREDITOR_ACCOUNT = "invalid-creditor-account"
    MESSAGE_ID_REUSED = "message-id-reused"
    EXECUTION_DATE_PASSED = "execution-date-passed"


class Bank(Protocol):
    async def statement(self, *, account_iban: str, day: date) -> bytes:
        """The camt.053 document of everything booked on `account_iban` on `day`, as the bank sent it.

        The bytes are not parsed here: `parse_camt053` decides whether they can be used. Raises
        `InvalidIban` for a malformed `account_iban`, `BankAccountUnknown` when the bank keeps no such
        account, ExternalPartyUnavailable on a timeout, a connection failure or any other answer.
        """
        ...

    async def submit_payment_orders(self, document: bytes) -> str:
        """The bank's acceptance id of a pain.001 document: every order in it will be executed.

        Submitting the same document (same MsgId) again answers the same acceptance id and executes
        nothing twice, so after ExternalPartyUnavailable — when the bank may or may not have accepted —
        the caller resubmits the very same document. Raises `PaymentOrdersRefused` (nothing executed)
        with the bank's code and reason, ExternalPartyUnavailable when there is no usable answer.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; call once at shutdown."""
        ...


# camt.053: what the simulator books, as a statement ------------------------------------------------


@dataclass(frozen=True)
class BookedEntry:
    """One entry booked on an account: its statement line and, for a payment order, its end-to-end id."""

    line: StatementLine
    end_to_end_id: str | None = None


def build_camt053(
    *,
    message_id: str,
    created_at: datetime,
    statement_id: str,
    account_iban: str,
    owner_name: str,
    servicer_bic: str,
    day: date,
    opening_balance_tiyn: int,
    entries: Sequence[BookedEntry],
) -> bytes:
    """A camt.053.001.08 statement of one account for one day that `parse_camt053` reads back exactly.

    Every entry is booked, in KZT, on `day`; the closing balance is the opening balance moved by the
    entries, so the two always add up. Entry references must be unique (the parser refuses otherwise).
    """
    invariant(created_at.utcoffset() is not None, "a statement's creation time carries its offset")
    invariant(all(e.line.currency == PAYMENT_CURRENCY for e in entries), "the simulator books KZT only")
    invariant(all(e.line.booking_date == day for e in entries), "a day's statement holds that day's entries")
    invariant(len({e.line.entry_reference for e in entries}) == len(entries), "entry references are unique")
    movement = sum(e.line.amount_tiyn if e.line.credit else -e.line.amount_tiyn for e in entries)
    root = ET.Element("Document", xmlns=CAMT053_NAMESPACE)
    message = _add(root, "BkToCstmrStmt")
    header = _add(message, "GrpHdr")
    _add(header, "MsgId", message_id)
    _add(header, "CreDtTm", created_at.isoformat(timespec="seconds"))
    statement = _add(message, "Stmt")
    _add(statement, "Id", statement_id)
    _add(statement, "CreDtTm", created_at.isoformat(timespec="seconds"))
    account = _add(statement, "Acct")
    _add(account, "Id/IBAN", account_iban)
    _add(account, "Ccy", PAYMENT_CURRENCY)
    _add(account, "Ownr/Nm", owner_name)
    _add(account, "Svcr/FinInstnId/BICFI", servicer_bic)
    _balance(statement, "OPBD", opening_balance_tiyn, day)
    _balance(statement, "CLBD", opening_balance_tiyn + movement, day)
    for entry in entries:
        _entry(statement, entry)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _add(parent: ET.Element, path: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = parent
    for name in path.split("/"):
        element = ET.SubElement(element, name)
    element.attrib.update(attributes)
    element.text = text
    return element


def _balance(statement: ET.Element, code: str, amount_tiyn: int, day: date) -> None:
    balance = _add(statement, "Bal")
    _add(balance, "Tp/CdOrPrtry/Cd", code)
    _add(balance, "Amt", format_amount(abs(amount_tiyn)), Ccy=PAYMENT_CURRENCY)
    _add(balance, "CdtDbtInd", "CRDT" if amount_tiyn >= 0 else "DBIT")
    _add(balance, "Dt/Dt", day.isoformat())


def _entry(statement: ET.Element, booked: BookedEntry) -> None:
    line = booked.line
    entry = _add(statement, "Ntry")
    _add(entry, "NtryRef", line.entry_reference)
    _add(entry, "Amt", format_amount(line.amount_tiyn), Ccy=line.currency)
    _add(entry, "CdtDbtInd", "CRDT" if line.credit else "DBIT")
    _add(entry, "Sts/Cd", "BOOK")
    _add(entry, "BookgDt/Dt", line.booking_date.isoformat())
    if line.value_date is not None:
        _add(entry, "ValDt/Dt", line.value_date.isoformat())
    transaction = _add(entry, "NtryDtls/TxDtls")
    references = _add(transaction, "Refs")
    _add(references, "AcctSvcrRef", line.entry_reference)
    if booked.end_to_end_id is not None:
        _add(references, "EndToEndId", booked.end_to_end_id)
    if line.counterparty_name is not None or line.counterparty_iban is not None:
        role = "Dbtr" if line.credit else "Cdtr"
        parties = _add(transaction, "RltdPties")
        if line.counterparty_name is not None:
            _add(parties, f"{role}/Pty/Nm", line.counterparty_name)
        if line.counterparty_iban is not None:
            _add(parties, f"{role}Acct/Id/IBAN", line.counterparty_iban)
    if line.payment_reference is not None:
        _add(transaction, "RmtInf/Ustrd", line.payment_reference)


# The bank's HTTP API ----------------------------------------------------------------------------


class AcceptanceAnswer(BaseModel):
    acceptance_id: str = Field(pattern=ACCEPTANCE_ID_PATTERN, description="The bank's id of the accepted message.")


class RefusalAnswer(BaseModel):
    code: str = Field(min_length=1, max_length=100, description="The bank's short reason code.")
    reason: str = Field(min_length=1, max_length=REFUSAL_REASON_MAX_LENGTH, description="Why, in the bank's words.")


class HttpBank:
    """The bank's API, bearer `token` when given:

    - `GET {base_url}/accounts/{iban}/statements/{day}` answers 200 with the camt.053 XML, or 404 with a
      `RefusalAnswer` (code unknown-account);
    - `POST {base_url}/payment-orders` with the pain.001 XML answers 200 with an `AcceptanceAnswer`, or a
      4xx with a `RefusalAnswer`.

    Anything else — another status, a 4xx without a refusal, a malformed answer — is
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
        self.timeout_s = timeout_s
        self._api = JsonApiClient(
            party=PARTY,
            base_url=base_url,
            timeout_s=timeout_s,
            token=token,
            transport=transport,
            log=log,
            accept="application/xml, application/json",
            answer_max_bytes=STATEMENT_MAX_BYTES,
        )

    async def statement(self, *, account_iban: str, day: date) -> bytes:
        """See `Bank.statement`. Raises InvalidIban, BankAccountUnknown, ExternalPartyUnavailable."""
        iban = validate_kazakh_iban(account_iban)
        status, body, elapsed_ms = await self._api.request("GET", f"/accounts/{iban}/statements/{day.isoformat()}")
        if status == 200:
            log.info("bank statement received", extra={"account": mask_identifier(iban), "day": day.isoformat(),
                                                       "bytes": len(body), "elapsed_ms": elapsed_ms})
            return body
        refusal = _refusal(body) if status == 404 else None
        if refusal is not None and refusal.code == RefusalCode.UNKNOWN_ACCOUNT:
            masked = mask_identifier(iban)
            raise BankAccountUnknown(f"The bank keeps no account {masked}", account=masked)
        raise self._api.failed(f"answered HTTP {status}", "status", status=status, elapsed_ms=elapsed_ms)

    async def submit_payment_orders(self, document: bytes) -> str:
        """See `Bank.submit_payment_orders`. Raises PaymentOrdersRefused, ExternalPartyUnavailable."""
        invariant(len(document) <= PAYMENT_ORDER_DOCUMENT_MAX_BYTES, "a payment order document fits the bank's limit")
        status, body, elapsed_ms = await self._api.request(
            "POST", "/payment-orders", content=document, content_type="application/xml"
        )
        if status == 200:
            acceptance_id = self._api.parse(body, AcceptanceAnswer).acceptance_id
            log.info("payment orders accepted", extra={"acceptance_id": acceptance_id, "elapsed_ms": elapsed_ms})
            return acceptance_id
        refusal = _refusal(body) if 400 <= status < 500 else None
        if refusal is None:
            raise self._api.failed(f"answered HTTP {status}", "status", status=status, elapsed_ms=elapsed_ms)
        log.warning("payment orders refused", extra={"code": refusal.code, "status": status})
        raise PaymentOrdersRefused(refusal.reason, code=refusal.code)

    async def aclose(self) -> None:
        await self._api.aclose()


def _refusal(body: bytes) -> RefusalAnswer | None:
    try:
        return RefusalAnswer.model_validate_json(body)
    except ValidationError:
        return None


# The simulator --------------------------------------------------------------------------------


@dataclass
class _Account:
    iban: str
    owner_name: str
    entries: list[BookedEntry] = field(default_factory=list)

    def balance_tiyn(self, *, before: date | None = None) -> int:
        return sum(
            (e.line.amount_tiyn if e.line.credit else -e.line.amount_tiyn)
            for e in self.entries
            if before is None or e.line.booking_date < before
        )

    def last_booking_date(self) -> date | None:
        return self.entries[-1].line.booking_date if self.entries else None


@dataclass(frozen=True)
class _Acceptance:
    acceptance_id: str
    content: tuple[str, date, tuple[PaymentOrder, ...]]  # debtor IBAN, execution date, orders


@dataclass(frozen=True)
class BankRequest:
    """One request the simulator answered or refused, kept so tests can see what the bank was asked."""

    operation: Literal["statement", "payment_orders"]
    account_iban: str | None
    outcome: str  # "answered", "accepted", "replayed", or the refusal code
    day: date | None = None
    message_id: str | None = None
    acceptance_id: str | None = None


class BankSimulator(SimulatedParty):
    """A bank keeping KZT accounts by IBAN, booking integer tiyn, day by day.

    Honest: it executes a pain.001 message whole or not at all, never lets an account go below zero,
    never books a day earlier than one already booked on the account, and executes a message id once.
    `down` and `latency_s` (against `timeout_s`, the caller's timeout) make its methods raise
    ExternalPartyUnavailable as the HTTP client would. `requests` keeps the newest `requests_kept`
    requests, oldest first. Safe to use from the test's thread while `simulator_app` serves it.

    With a `books` file it keeps its accounts there, written whole after every booking, so a development
    platform restarted finds the money its clients paid in still at the bank; without one it forgets.
    """

    party = PARTY
    logger = log

    def __init__(
        self,
        *,
        bic: str = "HSBKKZKX",
        timeout_s: float | None = None,
        requests_kept: int = 1_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        books: Path | None = None,
    ) -> None:
        super().__init__(timeout_s=timeout_s, requests_kept=requests_kept)
        self.bic = bic
        self.requests: list[BankRequest] = []
        self._clock = clock
        self._accounts: dict[str, _Account] = {}
        self._acceptances: dict[tuple[str, str], _Acceptance] = {}
        self._entries_booked = 0
        # Entry references are unique across simulators too, as a real bank's are across its history: a platform
        # importing statements of a fresh simulator never takes its entries for ones it has imported before.
        self._series = uuid.uuid4().hex[:8].upper()
        self._lock = threading.Lock()
        self._books = books
        if books is not None and books.exists():
            self._restore(json.loads(books.read_text(encoding="utf-8")))

    def open_account(self, iban: str, *, owner_name: str) -> str:
        """Open an empty account (idempotent); returns its IBAN in electronic form. Raises InvalidIban."""
        account_iban = validate_kazakh_iban(iban)
        invariant(0 < len(owner_name) <= ACCOUNT_OWNER_NAME_MAX_LENGTH, "an account owner's name has 1 to 140 chars")
        with self._lock:
            if account_iban not in self._accounts:
                self._accounts[account_iban] = _Account(account_iban, owner_name)
                self._keep_books()
        return account_iban

    def balance_tiyn(self, account_iban: str) -> int:
        """Everything booked on the account so far."""
        with self._lock:
            return self._account(validate_kazakh_iban(account_iban)).balance_tiyn()

    def credit_incoming(
        self,
        account_iban: str,
        amount_tiyn: int,
        payment_reference: str,
        counterparty_name: str,
        counterparty_iban: str,
        day: date,
    ) -> str:
        """Book a payment into the account from another bank's client; returns the entry reference.

        This is how tests and the demo make a client pay in. Booking to an unknown account, an amount
        out of 1..AMOUNT_MAX_TIYN, or on a day before the account's last booking is a bug of the caller.
        """
        invariant(type(amount_tiyn) is int and 1 <= amount_tiyn <= AMOUNT_MAX_TIYN, "an amount is 1 tiyn or more")
        invariant(0 < len(payment_reference) <= MAX140, "a payment reference has 1 to 140 characters")
        with self._lock:
            account = self._account(validate_kazakh_iban(account_iban))
            self._check_day(account, day)
            line = StatementLine(
                entry_reference=self._next_entry_reference(),
                amount_tiyn=amount_tiyn,
                currency=PAYMENT_CURRENCY,
                credit=True,
                booking_date=day,
                value_date=day,
                payment_reference=payment_reference,
                counterparty_name=counterparty_name,
                counterparty_iban="".join(counterparty_iban.split()).upper(),
            )
            account.entries.append(BookedEntry(line))
            self._keep_books()
        log.info("incoming payment booked", extra={"account": mask_identifier(account.iban), "amount": amount_tiyn})
        return line.entry_reference

    async def statement(self, *, account_iban: str, day: date) -> bytes:
        """See `Bank.statement`. Raises InvalidIban, BankAccountUnknown, ExternalPartyUnavailable."""
        iban = validate_kazakh_iban(account_iban)
        await self._reach()
        return self.answer_statement(account_iban=iban, day=day)

    async def submit_payment_orders(self, document: bytes) -> str:
        """See `Bank.submit_payment_orders`. Raises PaymentOrdersRefused, ExternalPartyUnavailable."""
        await self._reach()
        return self.accept_payment_orders(document)

    async def aclose(self) -> None:
        return None

    def answer_statement(self, *, account_iban: str, day: date) -> bytes:
        """The statement itself, with no network in between: what is booked on `day` so far.

        Raises BankAccountUnknown.
        """
        with self._lock:
            account = self._accounts.get(account_iban)
            if account is None:
                self._keep(self.requests, BankRequest("statement", account_iban, RefusalCode.UNKNOWN_ACCOUNT, day=day))
                raise BankAccountUnknown(
                    f"The bank keeps no account {mask_identifier(account_iban)}", account=mask_identifier(account_iban)
                )
            document = build_camt053(
                message_id=f"STMT-{uuid.uuid4().hex[:24]}",
                created_at=self._clock(),
                statement_id=f"{account.iban}-{day:%Y%m%d}",
                account_iban=account.iban,
                owner_name=account.owner_name,
                servicer_bic=self.bic,
                day=day,
                opening_balance_tiyn=account.balance_tiyn(before=day),
                entries=[e for e in account.entries if e.line.booking_date == day],
            )
            self._keep(self.requests, BankRequest("statement", account.iban, "answered", day=day))
        return document

    def accept_payment_orders(self, document: bytes) -> str:
        """The bank's decision itself, with no network in between: the acceptance id, having booked a
        debit per order on the requested execution date; or PaymentOrdersRefused, having booked nothing."""
        with self._lock:
            try:
                message_id, orders, debtor_iban, execution_date = _read_payment_orders(document)
            except PaymentOrdersRefused as refused:
                self._keep(self.requests, BankRequest("payment_orders", None, refused.code))
                raise
            try:
                acceptance_id, replayed = self._book_orders(message_id, orders, debtor_iban, execution_date)
            except PaymentOrdersRefused as refused:
                refusal = BankRequest("payment_orders", debtor_iban, refused.code, message_id=message_id)
                self._keep(self.requests, refusal)
                raise
            outcome = "replayed" if replayed else "accepted"
            self._keep(self.requests, BankRequest("payment_orders", debtor_iban, outcome, message_id=message_id,
                                                  acceptance_id=acceptance_id))
        log.info("payment orders %s", outcome, extra={"acceptance_id": acceptance_id, "orders": len(orders)})
        return acceptance_id

    def _book_orders(
        self, message_id: str, orders: list[PaymentOrder], debtor_iban: str, execution_date: date
    ) -> tuple[str, bool]:
        content = (debtor_iban, execution_date, tuple(orders))
        earlier = self._acceptances.get((debtor_iban, message_id))
        if earlier is not None:
            if earlier.content != content:
                raise PaymentOrdersRefused(
                    f"message {message_id} was accepted earlier with other content", code=RefusalCode.MESSAGE_ID_REUSED
                )
            return earlier.acceptance_id, True
        account = self._accounts.get(debtor_iban)
        if account is None:
            raise PaymentOrdersRefused(
                f"no account {mask_identifier(debtor_iban)} is kept here", code=RefusalCode.UNKNOWN_ACCOUNT
            )
        last = account.last_booking_date()
        if last is not None and execution_date < last:
            raise PaymentOrdersRefused(
                f"the execution date {execution_date} precedes bookings already made on {last}",
                code=RefusalCode.EXECUTION_DATE_PASSED,
            )
        total_tiyn = sum(order.amount_tiyn for order in orders)
        available_tiyn = account.balance_tiyn()
        if total_tiyn > available_tiyn:
            raise PaymentOrdersRefused(
                f"the orders total {format_amount(total_tiyn)} KZT, the account holds {format_amount(available_tiyn)}",
                code=RefusalCode.INSUFFICIENT_FUNDS,
            )
        for order in orders:
            account.entries.append(BookedEntry(
                StatementLine(
                    entry_reference=self._next_entry_reference(),
                    amount_tiyn=order.amount_tiyn,
                    currency=PAYMENT_CURRENCY,
                    credit=False,
                    booking_date=execution_date,
                    value_date=execution_date,
                    payment_reference=order.remittance,
                    counterparty_name=order.creditor_name,
                    counterparty_iban=order.creditor_iban,
                ),
                end_to_end_id=order.end_to_end_id,
            ))
        acceptance_id = f"ACC-{uuid.uuid4().hex}"
        self._acceptances[(debtor_iban, message_id)] = _Acceptance(acceptance_id, content)
        self._keep_books()
        return acceptance_id, False

    def _keep_books(self) -> None:
        """Write the accounts, entries and acceptances whole to the books file (under the lock), replacing the
        old file at once: a crash leaves the old books or the new, never half of either."""
        if self._books is None:
            return
        state = {
            "entries_booked": self._entries_booked,
            "series": self._series,
            "accounts": [
                {"iban": a.iban, "owner_name": a.owner_name, "entries": [asdict(e) for e in a.entries]}
                for a in self._accounts.values()
            ],
            "acceptances": [
                {"message_id": message_id, "acceptance_id": a.acceptance_id, "debtor_iban": a.content[0],
                 "execution_date": a.content[1], "orders": [asdict(order) for order in a.content[2]]}
                for (_, message_id), a in self._acceptances.items()
            ],
        }
        written = self._books.with_name(self._books.name + ".new")
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text(json.dumps(state, default=date.isoformat), encoding="utf-8")
        os.replace(written, self._books)

    def _restore(self, state: dict) -> None:
        def line_of(fields: dict) -> StatementLine:
            return StatementLine(**{
                **fields, "booking_date": date.fromisoformat(fields["booking_date"]),
                "value_date": fields["value_date"] and date.fromisoformat(fields["value_date"]),
            })

        self._entries_booked, self._series = state["entries_booked"], state["series"]
        for kept in state["accounts"]:
            entries = [BookedEntry(line_of(e["line"]), e["end_to_end_id"]) for e in kept["entries"]]
            self._accounts[kept["iban"]] = _Account(kept["iban"], kept["owner_name"], entries)
        for kept in state["acceptances"]:
            content = (kept["debtor_iban"], date.fromisoformat(kept["execution_date"]),
                       tuple(PaymentOrder(**order) for order in kept["orders"]))
            self._acceptances[(kept["debtor_iban"], kept["message_id"])] = _Acceptance(kept["acceptance_id"], content)

    def _account(self, iban: str) -> _Account:
        account = self._accounts.get(iban)
        if account is None:
            raise InvariantViolation(f"the simulator keeps no account {mask_identifier(iban)}")
        return account

    @staticmethod
    def _check_day(account: _Account, day: date) -> None:
        last = account.last_booking_date()
        invariant(last is None or day >= last, "a bank books days in order: no entry before the last booked day")

    def _next_entry_reference(self) -> str:
        self._entries_booked += 1
        return f"SIMB-{self._series}-{self._entries_booked:012d}"


def _read_payment_orders(document: bytes) -> tuple[str, list[PaymentOrder], str, date]:
    """Message id, orders, debtor IBAN and execution date of a pain.001; PaymentOrdersRefused otherwise."""
    try:
        message_id, orders = parse_pain001(document)
    except PaymentOrderInvalid as exc:
        field_name = str(exc.context.get("field", ""))
        creditor = field_name.endswith("creditor_iban")
        code = RefusalCode.INVALID_CREDITOR_ACCOUNT if creditor else RefusalCode.MALFORMED_DOCUMENT
        raise PaymentOrdersRefused(exc.detail, code=code) from None
    # parse_pain001 has read the document safely already; only the debtor's side remains to be read.
    root = SafeET.fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    payments = [element for element in root.iter() if _local_name(element.tag) == "PmtInf"]
    debtors = {_text_at(payment, "DbtrAcct", "Id", "IBAN") for payment in payments}
    dates = {_text_at(payment, "ReqdExctnDt", "Dt") for payment in payments}
    if len(debtors) != 1 or len(dates) != 1 or None in debtors or None in dates:
        raise PaymentOrdersRefused(
            "every PmtInf of a message must debit one IBAN on one execution date (ReqdExctnDt/Dt)",
            code=RefusalCode.MALFORMED_DOCUMENT,
        )
    [debtor], [day] = debtors, dates
    try:
        debtor_iban = validate_kazakh_iban(debtor or "")
        execution_date = date.fromisoformat(day or "")
    except InvalidIban as exc:
        raise PaymentOrdersRefused(f"DbtrAcct: {exc.detail}", code=RefusalCode.UNKNOWN_ACCOUNT) from None
    except ValueError:
        raise PaymentOrdersRefused(
            f"ReqdExctnDt/Dt: {day!r} is not a date", code=RefusalCode.MALFORMED_DOCUMENT
        ) from None
    return message_id, orders, debtor_iban, execution_date


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _text_at(element: ET.Element, *names: str) -> str | None:
    for name in names:
        found = [child for child in element if _local_name(child.tag) == name]
        if len(found) != 1:
            return None
        element = found[0]
    return (element.text or "").strip() or None


def simulator_app(simulator: BankSimulator, *, token: str | None = None) -> FastAPI:
    """The bank's HTTP API answered by `simulator`: 503 while it is down, 401 without the bearer `token`
    when one is set, 404 for an unknown account, 422 with a `RefusalAnswer` for refused payment orders."""
    app = simulator_api(simulator, title="Operator's bank (simulator)", token=token)

    @app.get("/accounts/{iban}/statements/{day}")
    async def get_statement(iban: str, day: date) -> Response:
        try:
            account_iban = validate_kazakh_iban(iban)
            document = simulator.answer_statement(account_iban=account_iban, day=day)
        except (InvalidIban, BankAccountUnknown) as exc:
            return _refusal_response(404, RefusalCode.UNKNOWN_ACCOUNT, exc.detail)
        return Response(content=document, media_type="application/xml")

    @app.post("/payment-orders", response_model=AcceptanceAnswer)
    async def post_payment_orders(request: Request) -> Response:
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > PAYMENT_ORDER_DOCUMENT_MAX_BYTES:
                    return _refusal_response(413, RefusalCode.MALFORMED_DOCUMENT, "the document is too large")
        except ClientDisconnect:
            # The caller gave up before the document arrived whole: nothing was received, nothing is booked.
            return Response(status_code=400)
        try:
            acceptance_id = simulator.accept_payment_orders(bytes(body))
        except PaymentOrdersRefused as refused:
            return _refusal_response(422, refused.code, refused.reason)
        return JSONResponse(AcceptanceAnswer(acceptance_id=acceptance_id).model_dump())

    return app


def _refusal_response(status: int, code: str, reason: str) -> JSONResponse:
    refusal = RefusalAnswer(code=code, reason=reason[:REFUSAL_REASON_MAX_LENGTH])
    return JSONResponse(refusal.model_dump(), status_code=status)


def bank_from_settings(settings: Settings) -> Bank:
    """The bank at `bank_url`, or — outside production only — a simulator keeping the operator's
    client-money account (empty until `credit_incoming` books into it) in `data_dir`'s bank-simulator.json.

    Raises ValueError in production without `bank_url` (a simulated bank would report money that does
    not exist), or when `operator_client_money_iban` is not a valid Kazakhstan IBAN.
    """
    try:
        client_money_iban = validate_kazakh_iban(settings.operator_client_money_iban)
    except InvalidIban as exc:
        raise ValueError(f"operator_client_money_iban: {exc.detail}") from None
    if settings.bank_url:
        token = (settings.bank_token.get_secret_value() if settings.bank_token else "") or None
        return HttpBank(settings.bank_url, timeout_s=settings.external_timeout_s, token=token)
    if settings.environment == "production":
        raise ValueError("bank_url is required in production; the bank simulator is for development")
    simulator = BankSimulator(
        bic=settings.operator_bank_bic, timeout_s=settings.external_timeout_s,
        books=settings.data_dir / "bank-simulator.json",
    )
    simulator.open_account(client_money_iban, owner_name=settings.operator_name[:ACCOUNT_OWNER_NAME_MAX_LENGTH])
    return simulator
