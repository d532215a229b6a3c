"""ISO 20022 messages exchanged with the bank: camt.053 statements in, pain.001 payment orders out.

Every document is read through defusedxml with DTDs refused, so none can declare entities (billion
laughs), reach for an external resource (XXE) or smuggle text in by entity expansion; its size is
checked before a byte is parsed. Amounts travel as decimal text and become integer tiyn exactly,
without ever passing through a float. Elements are matched by local name, so one reader serves every
accepted schema version.
"""

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import NoReturn
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from dfa.platform.errors import DomainError
from dfa.settlement.errors import InvalidIban, PaymentOrderInvalid, StatementInvalid
from dfa.settlement.iban import validate_kazakh_iban

CAMT053_NAMESPACES = frozenset(f"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version:02d}" for version in range(2, 9))
PAIN001_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
STATEMENT_MAX_BYTES = 10_000_000
PAYMENT_ORDER_DOCUMENT_MAX_BYTES = 10_000_000
PAYMENT_ORDERS_PER_MESSAGE_MAX = 10_000
# ISO 20022 amounts have at most 18 digits; with the two of the tiyn, 16 remain for whole tenge.
AMOUNT_MAX_TIYN = 10**18 - 1
AMOUNT_WHOLE_DIGITS_MAX = 16
MAX35 = 35
MAX140 = 140
PAYMENT_CURRENCY = "KZT"
TIYN_PER_TENGE = 100

_PLAIN_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_NOT_PROVIDED = "NOTPROVIDED"


@dataclass(frozen=True)
class StatementLine:
    """One booked entry of a bank statement, as the bank reported it."""

    entry_reference: str  # the bank's unique id of the entry: what makes re-importing a statement harmless
    amount_tiyn: int  # never negative; `credit` gives the direction
    currency: str
    credit: bool  # money came into the account (CdtDbtInd CRDT)
    booking_date: date
    value_date: date | None
    payment_reference: str | None  # what the payer wrote: unstructured remittance, else the creditor reference
    counterparty_name: str | None  # the payer of a credit, the payee of a debit
    counterparty_iban: str | None  # electronic form, not validated: the counterparty may be abroad
    # The id the ordering party gave the payment (TxDtls/Refs/EndToEndId); our payment orders' come back here.
    end_to_end_id: str | None = None


@dataclass(frozen=True)
class Statement:
    """One account statement (camt.053 Stmt) whose entries take the opening balance to the closing one."""

    statement_id: str
    account_iban: str  # a valid Kazakhstan IBAN, electronic form
    currency: str
    created_at: datetime  # with its offset when the bank gave one, naive otherwise
    opening_balance_tiyn: int | None  # signed: negative when the account was overdrawn
    closing_balance_tiyn: int | None
    lines: tuple[StatementLine, ...]


@dataclass(frozen=True)
class PaymentOrder:
    """One credit transfer the platform asks its bank to make, in KZT."""

    end_to_end_id: str  # ≤35 characters, unique in its message; comes back in the statement
    amount_tiyn: int  # > 0
    creditor_name: str  # ≤140 characters
    creditor_iban: str  # a Kazakhstan IBAN
    creditor_bic: str | None
    remittance: str  # ≤140 characters, shown to the payee


# --- Reading XML safely ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """An element with the path that led to it, so that every refusal names the offending element."""

    element: ET.Element
    path: str
    error: type[DomainError]

    def fail(self, message: str) -> NoReturn:
        raise self.error(f"{self.path}: {message}", element=self.path)

    def children(self, name: str) -> list["_Node"]:
        matches = [child for child in self.element if _local_name(child.tag) == name]
        if len(matches) == 1:
            return [_Node(matches[0], f"{self.path}/{name}", self.error)]
        return [_Node(match, f"{self.path}/{name}[{i}]", self.error) for i, match in enumerate(matches, start=1)]

    def child(self, *names: str) -> "_Node | None":
        node: _Node | None = self
        for name in names:
            found = node.children(name)
            if not found:
                return None
            if len(found) > 1:
                found[1].fail("this element may appear only once")
            node = found[0]
        return node

    def require(self, *names: str) -> "_Node":
        node = self.child(*names)
        if node is None:
            missing = f"{self.path}/{'/'.join(names)}"
            raise self.error(f"{missing}: required element is missing", element=missing)
        return node

    def text(self) -> str:
        value = (self.element.text or "").strip()
        if not value:
            self.fail("must not be empty")
        return value

    def required_text(self, *names: str) -> str:
        return self.require(*names).text()

    def optional_text(self, *names: str) -> str | None:
        node = self.child(*names)
        return None if node is None else node.text()

    def amount_tiyn(self) -> int:
        try:
            return parse_amount_tiyn(self.element.text or "")
        except ValueError as exc:
            self.fail(str(exc))

    def currency(self) -> str:
        code = self.element.get("Ccy")
        if code is None or not _CURRENCY.fullmatch(code):
            self.fail(f"the Ccy attribute must be a three-letter currency code, not {code!r}")
        return code

    def as_date(self) -> date:
        value = self.text()
        try:
            if _ISO_DATE.fullmatch(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        self.fail(f"{value!r} is not a date (YYYY-MM-DD)")

    def as_datetime(self) -> datetime:
        value = self.text()
        try:
            if _ISO_DATETIME.fullmatch(value):
                return datetime.fromisoformat(value)
        except ValueError:
            pass
        self.fail(f"{value!r} is not a date and time (YYYY-MM-DDThh:mm:ss with an optional offset)")


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _read_document(document: bytes, *, max_bytes: int, error: type[DomainError]) -> ET.Element:
    """Parse `document` refusing oversize input, DTDs, entities and external references with `error`."""
    if len(document) > max_bytes:
        raise error(f"The document has {len(document)} bytes, more than the {max_bytes} accepted")
    try:
        return SafeET.fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        # No message we accept needs a DTD or entities: their only use here would be an attack.
        raise error("The document declares a DTD or entities, which are refused") from None
    except ET.ParseError as exc:
        raise error(f"The document is not well-formed XML: {exc}") from None
    except LookupError as exc:  # the XML declaration names an encoding Python does not know
        raise error(f"The document is not well-formed XML: {exc}") from None


def _document_root(root: ET.Element, *, namespaces: Iterable[str], error: type[DomainError]) -> _Node:
    namespace = _namespace(root.tag)
    if _local_name(root.tag) != "Document" or namespace not in namespaces:
        raise error(f"The document is not one of the accepted messages (root {root.tag!r})", namespace=namespace)
    return _Node(root, "Document", error)


def parse_amount_tiyn(text: str) -> int:
    """Return the decimal text `text` ("1500", "1500.5", "1500.50") as exact integer tiyn.

    Only a plain non-negative decimal with at most 2 decimal places and 16 whole digits is accepted
    (surrounding whitespace aside); anything else raises `ValueError` saying why.
    """
    value = text.strip(" \t\r\n")
    match = _PLAIN_AMOUNT.fullmatch(value)
    if match is None:
        raise ValueError(_why_not_an_amount(value))
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > 2:
        raise ValueError(f"{value!r} has more than 2 decimal places")
    if len(whole) > AMOUNT_WHOLE_DIGITS_MAX:
        raise ValueError(f"{value!r} has more than {AMOUNT_WHOLE_DIGITS_MAX} digits before the decimal point")
    return int(whole) * TIYN_PER_TENGE + int(fraction.ljust(2, "0"))


def format_amount(amount_tiyn: int) -> str:
    """Return non-negative `amount_tiyn` as the decimal text ISO 20022 expects, always with 2 decimals."""
    whole, tiyn = divmod(amount_tiyn, TIYN_PER_TENGE)
    return f"{whole}.{tiyn:02d}"


def _why_not_an_amount(value: str) -> str:
    if value.startswith("-"):
        return f"{value!r} is negative"
    if "e" in value.lower():
        return f"{value!r} has an exponent"
    return f"{value!r} is not a plain decimal amount"


# --- camt.053: bank statements ----------------------------------------------------------------------


def parse_camt053(document: bytes, *, max_bytes: int = STATEMENT_MAX_BYTES) -> list[Statement]:
    """Return every statement of a camt.053 document (versions 001.02 to 001.08), exactly as booked.

    Guarantees: amounts are exact integer tiyn; each statement's account is a valid Kazakhstan IBAN;
    every line is a booked entry with a reference unique in its statement; when both balances are
    given, the lines take the opening balance to the closing one. Anything else — oversize, a DTD or
    entity, malformed XML, another message, a missing or malformed element, entries that do not add
    up — raises `StatementInvalid` naming the element, and nothing of the document is returned.
    """
    root = _read_document(document, max_bytes=max_bytes, error=StatementInvalid)
    message = _document_root(root, namespaces=CAMT053_NAMESPACES, error=StatementInvalid).require("BkToCstmrStmt")
    statements = message.children("Stmt")
    if not statements:
        message.fail("the message contains no statement (Stmt)")
    return [_statement(node, message) for node in statements]


def _statement(node: _Node, message: _Node) -> Statement:
    statement = Statement(
        statement_id=node.required_text("Id"),
        account_iban=_account_iban(node.require("Acct", "Id", "IBAN")),
        currency=_statement_currency(node),
        created_at=(node.child("CreDtTm") or message.require("GrpHdr", "CreDtTm")).as_datetime(),
        opening_balance_tiyn=_balance_tiyn(node, "OPBD"),
        closing_balance_tiyn=_balance_tiyn(node, "CLBD"),
        lines=tuple(_line(entry) for entry in node.children("Ntry")),
    )
    _check_references_unique(node, statement.lines)
    _check_balances_add_up(node, statement)
    return statement


def _account_iban(node: _Node) -> str:
    try:
        return validate_kazakh_iban(node.text())
    except InvalidIban as exc:
        node.fail(exc.detail)


def _statement_currency(node: _Node) -> str:
    account_currency = node.child("Acct", "Ccy")
    if account_currency is not None:
        if not _CURRENCY.fullmatch(code := account_currency.text()):
            account_currency.fail(f"{code!r} is not a three-letter currency code")
        return code
    # Acct/Ccy is optional in the schema; the balances are then in the account's currency.
    balances = node.children("Bal")
    if balances:
        return balances[0].require("Amt").currency()
    node.fail("neither Acct/Ccy nor a balance gives the account's currency")


def _balance_tiyn(node: _Node, code: str) -> int | None:
    """The signed amount of the statement's balance of type `code` (OPBD, CLBD), if it has one."""
    matches = [b for b in node.children("Bal") if b.optional_text("Tp", "CdOrPrtry", "Cd") == code]
    if not matches:
        return None
    if len(matches) > 1:
        matches[1].fail(f"the statement has more than one {code} balance")
    balance = matches[0]
    amount_tiyn = balance.require("Amt").amount_tiyn()
    return amount_tiyn if _is_credit(balance) else -amount_tiyn


def _is_credit(node: _Node) -> bool:
    indicator = node.require("CdtDbtInd")
    match indicator.text():
        case "CRDT":
            return True
        case "DBIT":
            return False
        case other:
            indicator.fail(f"{other!r} is neither CRDT nor DBIT")


def _line(entry: _Node) -> StatementLine:
    _check_booked(entry)
    amount = entry.require("Amt")
    credit = _is_credit(entry)
    transaction = _single_transaction(entry)
    counterparty = _counterparty(transaction, credit)
    value_date = entry.child("ValDt")
    return StatementLine(
        entry_reference=_entry_reference(entry, transaction),
        amount_tiyn=amount.amount_tiyn(),
        currency=amount.currency(),
        credit=credit,
        booking_date=_date_or_datetime(entry.require("BookgDt")),
        value_date=None if value_date is None else _date_or_datetime(value_date),
        payment_reference=_payment_reference(transaction),
        counterparty_name=counterparty[0],
        counterparty_iban=counterparty[1],
        end_to_end_id=_end_to_end_id(transaction),
    )


def _check_booked(entry: _Node) -> None:
    # A pending or informational entry is not money on the account: crediting an investor from one
    # would pay out money the bank may never book.
    status = entry.require("Sts")
    code_node = status.child("Cd")  # 001.08 wraps the code; 001.02 writes it as the element's text
    code = (code_node or status).text()
    if code != "BOOK":
        status.fail(f"only booked entries (BOOK) belong in a statement, not {code!r}")


def _single_transaction(entry: _Node) -> _Node | None:
    """The entry's transaction details when it has exactly one; a batch entry's are not one payment's."""
    transactions = [tx for details in entry.children("NtryDtls") for tx in details.children("TxDtls")]
    return transactions[0] if len(transactions) == 1 else None


def _entry_reference(entry: _Node, transaction: _Node | None) -> str:
    candidates = [entry.optional_text("NtryRef"), entry.optional_text("AcctSvcrRef")]
    if transaction is not None:
        candidates += [
            transaction.optional_text("Refs", "AcctSvcrRef"),
            transaction.optional_text("Refs", "EndToEndId"),
        ]
    for candidate in candidates:
        if candidate is not None and candidate != _NOT_PROVIDED:
            return candidate
    entry.fail(
        "no reference identifies the entry (NtryRef, AcctSvcrRef, or the transaction's AcctSvcrRef or EndToEndId)"
    )


def _end_to_end_id(transaction: _Node | None) -> str | None:
    if transaction is None:
        return None
    end_to_end_id = transaction.optional_text("Refs", "EndToEndId")
    return None if end_to_end_id == _NOT_PROVIDED else end_to_end_id


def _date_or_datetime(node: _Node) -> date:
    day = node.child("Dt")
    if day is not None:
        return day.as_date()
    return node.require("DtTm").as_datetime().date()


def _payment_reference(transaction: _Node | None) -> str | None:
    if transaction is None:
        return None
    remittance = transaction.child("RmtInf")
    if remittance is None:
        return None
    unstructured = [node.text() for node in remittance.children("Ustrd")]
    if unstructured:
        return " ".join(unstructured)
    for structured in remittance.children("Strd"):
        if (reference := structured.optional_text("CdtrRefInf", "Ref")) is not None:
            return reference
    return None


def _counterparty(transaction: _Node | None, credit: bool) -> tuple[str | None, str | None]:
    """(name, IBAN) of the other side: who paid a credit, who was paid by a debit."""
    if transaction is None:
        return None, None
    parties = transaction.child("RltdPties")
    if parties is None:
        return None, None
    role = "Dbtr" if credit else "Cdtr"
    party = parties.child(role)
    # 001.02 names the party directly; from 001.08 on it sits under Pty.
    name = None if party is None else party.optional_text("Nm") or party.optional_text("Pty", "Nm")
    iban = parties.optional_text(f"{role}Acct", "Id", "IBAN")
    return name, None if iban is None else "".join(iban.split()).upper()


def _check_references_unique(node: _Node, lines: Sequence[StatementLine]) -> None:
    # Re-imports are deduplicated by entry reference, so two entries sharing one would lose money from view.
    seen: set[str] = set()
    for line in lines:
        if line.entry_reference in seen:
            node.fail(f"two entries have the reference {line.entry_reference!r}")
        seen.add(line.entry_reference)


def _check_balances_add_up(node: _Node, statement: Statement) -> None:
    opening, closing = statement.opening_balance_tiyn, statement.closing_balance_tiyn
    if opening is None or closing is None or any(line.currency != statement.currency for line in statement.lines):
        return
    movement = sum(line.amount_tiyn if line.credit else -line.amount_tiyn for line in statement.lines)
    if opening + movement != closing:
        # A truncated or altered statement: its entries cannot be trusted to be all there are.
        node.fail(f"the entries move the balance by {movement} tiyn, but it goes from {opening} to {closing}")


# --- pain.001: payment orders -----------------------------------------------------------------------


def build_pain001(
    *,
    message_id: str,
    created_at: datetime,
    debtor_name: str,
    debtor_iban: str,
    debtor_bic: str | None,
    execution_date: date,
    orders: Sequence[PaymentOrder],
) -> bytes:
    """Return a pain.001.001.09 credit transfer initiation paying `orders` from the debtor's account.

    The document is UTF-8, well-formed, has one PmtInf with one CdtTrfTxInf per order (in order),
    carries every IBAN in electronic form, amounts formatted exactly from tiyn, and CtrlSum equal to
    their sum. Raises `PaymentOrderInvalid` (naming the field) for no or too many orders, a text
    empty, too long, with surrounding whitespace or control characters, an invalid IBAN or BIC, an
    amount not in 1..AMOUNT_MAX_TIYN, duplicate end-to-end ids, or a creation time without offset.
    """
    _check_text(message_id, field="message_id", max_length=MAX35)
    _check_text(debtor_name, field="debtor_name", max_length=MAX140)
    if created_at.utcoffset() is None:
        raise PaymentOrderInvalid("created_at must carry a UTC offset", field="created_at")
    checked = _checked_orders(orders)
    # The namespace is declared once as the default and every element left unqualified, so the output
    # needs no prefix and registers nothing in ElementTree's global namespace map.
    root = ET.Element("Document", xmlns=PAIN001_NAMESPACE)
    initiation = ET.SubElement(root, "CstmrCdtTrfInitn")
    _group_header(initiation, message_id=message_id, created_at=created_at, debtor_name=debtor_name, orders=checked)
    payment = _payment_information(
        initiation,
        payment_id=message_id,
        debtor_name=debtor_name,
        debtor_iban=_checked_iban(debtor_iban, field="debtor_iban"),
        debtor_bic=_checked_bic(debtor_bic, field="debtor_bic"),
        execution_date=execution_date,
        orders=checked,
    )
    for order in checked:
        _credit_transfer(payment, order)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _add(parent: ET.Element, path: str, text: str | None = None, **attributes: str) -> ET.Element:
    """Append the elements of `path` ("A/B/C") under `parent`; the last gets `text` and `attributes`."""
    element = parent
    for name in path.split("/"):
        element = ET.SubElement(element, name)
    element.attrib.update(attributes)
    element.text = text
    return element


def _group_header(initiation: ET.Element, *, message_id: str, created_at: datetime, debtor_name: str,
                  orders: Sequence[PaymentOrder]) -> None:
    header = _add(initiation, "GrpHdr")
    _add(header, "MsgId", message_id)
    _add(header, "CreDtTm", created_at.isoformat(timespec="seconds"))
    _add(header, "NbOfTxs", str(len(orders)))
    _add(header, "CtrlSum", format_amount(_control_sum(orders)))
    _add(header, "InitgPty/Nm", debtor_name)


def _payment_information(initiation: ET.Element, *, payment_id: str, debtor_name: str, debtor_iban: str,
                         debtor_bic: str | None, execution_date: date, orders: Sequence[PaymentOrder]) -> ET.Element:
    payment = _add(initiation, "PmtInf")
    _add(payment, "PmtInfId", payment_id)
    _add(payment, "PmtMtd", "TRF")
    # One statement entry per transfer, not one for the batch: each payout is then reconciled on its own.
    _add(payment, "BtchBookg", "false")
    _add(payment, "NbOfTxs", str(len(orders)))
    _add(payment, "CtrlSum", format_amount(_control_sum(orders)))
    _add(payment, "ReqdExctnDt/Dt", execution_date.isoformat())
    _add(payment, "Dbtr/Nm", debtor_name)
    _add(payment, "DbtrAcct/Id/IBAN", debtor_iban)
    if debtor_bic is None:
        _add(payment, "DbtrAgt/FinInstnId/Othr/Id", _NOT_PROVIDED)
    else:
        _add(payment, "DbtrAgt/FinInstnId/BICFI", debtor_bic)
    return payment


def _credit_transfer(payment: ET.Element, order: PaymentOrder) -> None:
    transfer = _add(payment, "CdtTrfTxInf")
    _add(transfer, "PmtId/EndToEndId", order.end_to_end_id)
    _add(transfer, "Amt/InstdAmt", format_amount(order.amount_tiyn), Ccy=PAYMENT_CURRENCY)
    if order.creditor_bic is not None:
        _add(transfer, "CdtrAgt/FinInstnId/BICFI", order.creditor_bic)
    _add(transfer, "Cdtr/Nm", order.creditor_name)
    _add(transfer, "CdtrAcct/Id/IBAN", order.creditor_iban)
    _add(transfer, "RmtInf/Ustrd", order.remittance)


def _control_sum(orders: Sequence[PaymentOrder]) -> int:
    return sum(order.amount_tiyn for order in orders)


def _checked_orders(orders: Sequence[PaymentOrder]) -> list[PaymentOrder]:
    """The orders with IBANs in electronic form, or `PaymentOrderInvalid` for the first bad field."""
    if not orders:
        raise PaymentOrderInvalid("orders: a payment message needs at least one order", field="orders")
    if len(orders) > PAYMENT_ORDERS_PER_MESSAGE_MAX:
        raise PaymentOrderInvalid(
            f"orders: a payment message carries at most {PAYMENT_ORDERS_PER_MESSAGE_MAX} orders, not {len(orders)}",
            field="orders",
        )
    checked = [_checked_order(order, field=f"orders[{i}]") for i, order in enumerate(orders)]
    seen: set[str] = set()
    for i, order in enumerate(checked):
        if order.end_to_end_id in seen:
            raise PaymentOrderInvalid(f"orders[{i}].end_to_end_id: {order.end_to_end_id!r} is used twice",
                                      field=f"orders[{i}].end_to_end_id")
        seen.add(order.end_to_end_id)
    if _control_sum(checked) > AMOUNT_MAX_TIYN:
        raise PaymentOrderInvalid("orders: the total exceeds what an ISO 20022 amount can carry", field="orders")
    return checked


def _checked_order(order: PaymentOrder, *, field: str) -> PaymentOrder:
    _check_text(order.end_to_end_id, field=f"{field}.end_to_end_id", max_length=MAX35)
    _check_text(order.creditor_name, field=f"{field}.creditor_name", max_length=MAX140)
    _check_text(order.remittance, field=f"{field}.remittance", max_length=MAX140)
    amount = order.amount_tiyn
    if type(amount) is not int or not 1 <= amount <= AMOUNT_MAX_TIYN:
        raise PaymentOrderInvalid(f"{field}.amount_tiyn must be an integer from 1 to {AMOUNT_MAX_TIYN}, not {amount!r}",
                                  field=f"{field}.amount_tiyn")
    return replace(
        order,
        creditor_iban=_checked_iban(order.creditor_iban, field=f"{field}.creditor_iban"),
        creditor_bic=_checked_bic(order.creditor_bic, field=f"{field}.creditor_bic"),
    )


def _check_text(value: str, *, field: str, max_length: int) -> None:
    def refuse(why: str) -> NoReturn:
        raise PaymentOrderInvalid(f"{field} {why}", field=field)

    if not isinstance(value, str) or not value.strip():
        refuse("must be a non-empty text")
    if len(value) > max_length:
        refuse(f"has {len(value)} characters, more than the {max_length} allowed")
    if value != value.strip():
        refuse("must not begin or end with whitespace")
    if any(_unfit_for_xml(c) for c in value):
        # Control characters are not XML (or are rewritten by every parser): the bank would read something else.
        refuse("contains a control character or a code point XML cannot carry")


def _unfit_for_xml(character: str) -> bool:
    return unicodedata.category(character) in ("Cc", "Cs") or character in "\ufffe\uffff"


def _checked_iban(value: str, *, field: str) -> str:
    try:
        return validate_kazakh_iban(value)
    except InvalidIban as exc:
        raise PaymentOrderInvalid(f"{field}: {exc.detail}", field=field, reason=exc.reason) from exc


def _checked_bic(value: str | None, *, field: str) -> str | None:
    if value is not None and not (isinstance(value, str) and _BIC.fullmatch(value)):
        raise PaymentOrderInvalid(f"{field}: {value!r} is not a BIC (ISO 9362, 8 or 11 characters)", field=field)
    return value


def parse_pain001(
    document: bytes, *, max_bytes: int = PAYMENT_ORDER_DOCUMENT_MAX_BYTES
) -> tuple[str, list[PaymentOrder]]:
    """Return the message id and the orders of a pain.001.001.09 document, in document order.

    Read as safely as a statement. Guarantees the orders pass the same checks as `build_pain001`,
    are all in KZT, and agree with every NbOfTxs and CtrlSum given; otherwise `PaymentOrderInvalid`.
    """
    root = _read_document(document, max_bytes=max_bytes, error=PaymentOrderInvalid)
    initiation = _document_root(root, namespaces={PAIN001_NAMESPACE}, error=PaymentOrderInvalid).require(
        "CstmrCdtTrfInitn"
    )
    header = initiation.require("GrpHdr")
    message_id = header.required_text("MsgId")
    orders: list[PaymentOrder] = []
    for payment in initiation.children("PmtInf"):
        payment_orders = [_order(transfer) for transfer in payment.children("CdtTrfTxInf")]
        _check_totals(payment, payment_orders, required=False)
        orders += payment_orders
    _check_totals(header, orders, required=True)
    return message_id, _checked_orders(orders)


def _order(transfer: _Node) -> PaymentOrder:
    amount = transfer.require("Amt", "InstdAmt")
    if amount.currency() != PAYMENT_CURRENCY:
        amount.fail(f"only {PAYMENT_CURRENCY} transfers are ordered, not {amount.currency()}")
    remittances = transfer.require("RmtInf").children("Ustrd")
    if len(remittances) != 1:
        transfer.fail("a transfer carries exactly one RmtInf/Ustrd")
    return PaymentOrder(
        end_to_end_id=transfer.required_text("PmtId", "EndToEndId"),
        amount_tiyn=amount.amount_tiyn(),
        creditor_name=transfer.required_text("Cdtr", "Nm"),
        creditor_iban=transfer.required_text("CdtrAcct", "Id", "IBAN"),
        creditor_bic=transfer.optional_text("CdtrAgt", "FinInstnId", "BICFI"),
        remittance=remittances[0].text(),
    )


def _check_totals(node: _Node, orders: Sequence[PaymentOrder], *, required: bool) -> None:
    count = node.required_text("NbOfTxs") if required else node.optional_text("NbOfTxs")
    if count is not None and count != str(len(orders)):
        node.fail(f"NbOfTxs says {count}, but there are {len(orders)} transfers")
    control_sum = node.child("CtrlSum")
    if control_sum is not None and control_sum.amount_tiyn() != _control_sum(orders):
        control_sum.fail(f"the transfers add up to {format_amount(_control_sum(orders))}")
