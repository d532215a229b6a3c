"""Money in and out of the platform through the operator's bank.

In: a client pays into the client-money account quoting its payment reference; the bank's statement
(camt.053) shows the payment, and the client's KZT `available` account is credited from the
operator's `client_money` account, the ledger's mirror of the bank account (REQ-50: client money is
kept apart from the operator's own). Payments the platform cannot attribute wait in a queue for staff.

Out: a client asks to be paid to its own verified bank account; the amount is held on its available
account at once (REQ-38: what is paid out is prefunded), a payment order (pain.001) carries it to the
bank, and the hold is posted to `client_money` when the bank accepts (money leaves) or voided when it
refuses.

Every function takes the caller's session and flushes, never commits. Ledger movements use ids derived
from the statement line or the withdrawal they belong to, so a retry never moves money twice.
"""

import hashlib
import json
import logging
import re
import secrets
import unicodedata
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.adapters.external import mask_identifier
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import InvariantViolation, invariant
from dfa.platform.identity.errors import PartyNotFound, PartyNotIdentified, UnderAge
from dfa.platform.identity.service import parties, screening
from dfa.platform.settings import Settings
from dfa.settlement import cash_repository as repository
from dfa.settlement import iso20022
from dfa.settlement.bank import Bank
from dfa.settlement.errors import (
    BankAccountAlreadyRegistered,
    BankAccountHolderNameInvalid,
    BankAccountNotAllowed,
    BankAccountNotFound,
    BankAccountNotVerified,
    BankAccountRevoked,
    InvalidIban,
    ResolutionNoteRequired,
    StatementCurrencyNotAccepted,
    StatementInvalid,
    StatementLineAlreadyResolved,
    StatementLineNotAssignable,
    StatementLineNotFound,
    StatementOfAnotherAccount,
    WithdrawalAmountInvalid,
    WithdrawalIdReused,
    WithdrawalNotCancellable,
    WithdrawalNotFound,
)
from dfa.settlement.iban import validate_kazakh_iban
from dfa.settlement.models import BankAccount, PaymentReference, PaymentRun, StatementLine, Withdrawal
from dfa.settlement.service.accounts import MONEY, holder_account, operator_account

log = logging.getLogger("dfa.cash")

# Every id this module derives for the ledger (transfers, holds, batches) lives under this namespace.
CASH_NAMESPACE = uuid.UUID("5d1f3c2e-8a47-4b9e-b6f0-2c7e9a1d4f35")

REFERENCE_PREFIX = "DFA"
REFERENCE_BODY_DIGITS = 9
REFERENCE_ATTEMPTS_MAX = 20
# The reference may be written with spaces, dashes or in lower case, inside any other text.
_REFERENCE_IN_TEXT = re.compile(rf"(?={REFERENCE_PREFIX}([0-9]{{{REFERENCE_BODY_DIGITS + 2}}}))")
_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Z]")

BANK_ACCOUNTS_PER_PARTY_MAX = 20
HOLDER_NAME_MAX_LENGTH = iso20022.MAX140
NOTE_MAX_LENGTH = 500
REASON_MAX_LENGTH = 500
# The most withdrawals one payment order message carries, and the most unsent messages one pass sends.
WITHDRAWALS_PER_RUN_MAX = 1_000
RUNS_PER_PASS_MAX = 20
WITHDRAWAL_AMOUNT_MAX_TIYN = min(ledger.MAX_AMOUNT, iso20022.AMOUNT_MAX_TIYN)
ENTRY_REFERENCE_MAX_LENGTH = 100
END_TO_END_ID_MAX_LENGTH = 35
IBAN_MAX_LENGTH = 34
# Session-level advisory lock that makes sending payment orders one pass at a time across instances.
SUBMISSION_LOCK_KEY = 0x5D1F_0001


def _now() -> datetime:
    return datetime.now(UTC)


def _derived_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(CASH_NAMESPACE, "|".join(str(part) for part in parts))


# --- payment references ---------------------------------------------------------------------------------


def reference_check_digits(body: str) -> str:
    """The two ISO 7064 MOD 97-10 check digits of a reference's digits (as an IBAN's): any one digit
    mistyped and any two neighbours swapped make the reference invalid."""
    return f"{98 - int(body) * 100 % 97:02d}"


def is_valid_reference(reference: str) -> bool:
    digits = reference.removeprefix(REFERENCE_PREFIX)
    return (
        reference.startswith(REFERENCE_PREFIX)
        and len(digits) == REFERENCE_BODY_DIGITS + 2
        and digits.isascii()
        and digits.isdigit()
        and int(digits) % 97 == 1
    )


def references_in(text: str | None) -> set[str]:
    """Every well-formed payment reference written in `text`, however spaced, dashed or cased."""
    if not text:
        return set()
    compact = _NOT_ALPHANUMERIC.sub("", text.upper())
    found = {REFERENCE_PREFIX + match.group(1) for match in _REFERENCE_IN_TEXT.finditer(compact)}
    return {reference for reference in found if is_valid_reference(reference)}


def _new_reference() -> str:
    body = f"{secrets.randbelow(10**REFERENCE_BODY_DIGITS):0{REFERENCE_BODY_DIGITS}d}"
    return REFERENCE_PREFIX + body + reference_check_digits(body)


async def payment_reference(session: AsyncSession, *, party_id: uuid.UUID, settings: Settings) -> PaymentReference:
    """The reference the party quotes when paying in; created on first request, never changed.

    Safe under concurrency: two first requests get the same reference. Raises PartyNotFound,
    PartyNotIdentified, UnderAge.
    """
    existing = await repository.get_payment_reference(session, party_id)
    if existing is not None:
        return existing
    await parties.ensure_may_operate(session, party_id, settings=settings)
    for _ in range(REFERENCE_ATTEMPTS_MAX):
        await repository.insert_payment_reference(session, party_id=party_id, reference=_new_reference())
        created = await repository.get_payment_reference(session, party_id)
        if created is not None:  # ours, or a concurrent request's for the same party
            return created
        # The random reference belonged to another party already: draw again.
    raise InvariantViolation(f"no free payment reference after {REFERENCE_ATTEMPTS_MAX} draws")


# --- clients' bank accounts -----------------------------------------------------------------------------


def _holder_name(value: str) -> str:
    name = value.strip()
    if not 0 < len(name) <= HOLDER_NAME_MAX_LENGTH:
        raise BankAccountHolderNameInvalid(f"the holder's name has 1 to {HOLDER_NAME_MAX_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in "\ufffe\uffff" for c in name):
        # A payment order is XML: a control character would reach the bank as something else or not at all.
        raise BankAccountHolderNameInvalid("the holder's name contains a control character")
    return name


async def register_bank_account(
    session: AsyncSession, *, party_id: uuid.UUID, iban: str, holder_name: str, actor: str, settings: Settings
) -> BankAccount:
    """Record a bank account of the party's own, unverified until proven (by staff, or by a deposit from it).

    Raises PartyNotFound, PartyNotIdentified, UnderAge, InvalidIban, BankAccountHolderNameInvalid,
    BankAccountNotAllowed, BankAccountAlreadyRegistered.
    """
    await parties.ensure_may_operate(session, party_id, settings=settings)
    account_iban = validate_kazakh_iban(iban)
    name = _holder_name(holder_name)
    if account_iban == validate_kazakh_iban(settings.operator_client_money_iban):
        raise BankAccountNotAllowed("the operator's client-money account is not a client's own account")
    if await repository.count_bank_accounts(session, party_id=party_id) >= BANK_ACCOUNTS_PER_PARTY_MAX:
        raise BankAccountNotAllowed(f"a party may register at most {BANK_ACCOUNTS_PER_PARTY_MAX} bank accounts")
    account = await repository.insert_bank_account(
        session, values={"party_id": party_id, "iban": account_iban, "holder_name": name, "status": "unverified"}
    )
    if account is None:
        existing = await repository.find_bank_account(session, party_id=party_id, iban=account_iban)
        if existing is None or existing.status != "revoked":
            raise BankAccountAlreadyRegistered(
                f"the party has registered the account {mask_identifier(account_iban)} already",
                bank_account_id=existing.id if existing else None,
            )
        # Registered again after a revocation: usable once its ownership is proven anew.
        account = await repository.update_bank_account(
            session, existing.id, status="unverified", holder_name=name, verified_by=None, verified_at=None
        )
    await audit.record(
        session, kind="bank_account.registered", actor=actor, subject=str(account.id),
        details={"party_id": str(party_id), "iban": mask_identifier(account_iban)},
    )
    return account


async def get_bank_account(
    session: AsyncSession, bank_account_id: int, *, visible_to: uuid.UUID | None = None, for_update: bool = False
) -> BankAccount:
    """The bank account; with `visible_to`, only when that party owns it. Raises BankAccountNotFound."""
    account = await repository.get_bank_account(session, bank_account_id, for_update=for_update)
    if account is None or (visible_to is not None and account.party_id != visible_to):
        raise BankAccountNotFound(f"bank account {bank_account_id} does not exist", bank_account_id=bank_account_id)
    return account


async def list_bank_accounts(
    session: AsyncSession, *, party_id: uuid.UUID | None, status: str | None, after: int | None, limit: int
) -> list[BankAccount]:
    return await repository.list_bank_accounts(session, party_id=party_id, status=status, after=after, limit=limit)


async def verify_bank_account(
    session: AsyncSession, *, bank_account_id: int, evidence: str, actor: str
) -> BankAccount:
    """Staff confirm the account is the client's own; verifying it again changes nothing.

    Raises BankAccountNotFound, BankAccountRevoked, ResolutionNoteRequired.
    """
    evidence = _note(evidence, what="the evidence of ownership")
    account = await get_bank_account(session, bank_account_id, for_update=True)
    if account.status == "revoked":
        raise BankAccountRevoked(f"bank account {bank_account_id} is revoked; register it again to use it")
    if account.status == "verified":
        return account
    account = await repository.update_bank_account(
        session, bank_account_id, status="verified", verified_by=actor[:200], verified_at=_now()
    )
    await audit.record(
        session, kind="bank_account.verified", actor=actor, subject=str(account.id),
        details={"party_id": str(account.party_id), "iban": mask_identifier(account.iban), "method": "staff",
                 "evidence": evidence},
    )
    return account


async def revoke_bank_account(
    session: AsyncSession, *, bank_account_id: int, reason: str, actor: str, visible_to: uuid.UUID | None = None
) -> BankAccount:
    """No withdrawal goes to the account any more: those requested and not yet sent are cancelled and
    their money released. Revoking it again changes nothing.

    Raises BankAccountNotFound, ResolutionNoteRequired.
    """
    reason = _note(reason, what="the reason")
    account = await get_bank_account(session, bank_account_id, visible_to=visible_to, for_update=True)
    if account.status == "revoked":
        return account
    account = await repository.update_bank_account(session, bank_account_id, status="revoked")
    cancelled = await repository.lock_requested_withdrawals_to(session, bank_account_id=bank_account_id)
    for withdrawal in cancelled:
        await _cancel(session, withdrawal, reason=f"the bank account was revoked: {reason}")
    await audit.record(
        session, kind="bank_account.revoked", actor=actor, subject=str(account.id),
        details={"party_id": str(account.party_id), "iban": mask_identifier(account.iban), "reason": reason,
                 "withdrawals_cancelled": [str(w.id) for w in cancelled]},
    )
    return account


async def _verify_by_deposit(
    session: AsyncSession, *, credited: Sequence[tuple[uuid.UUID, str | None, str]], actor: str
) -> None:
    """Money that came from an account the client registered proves the account is the client's."""
    owners: dict[tuple[uuid.UUID, str], str] = {}
    for party_id, payer_iban, entry_reference in credited:
        try:
            iban = validate_kazakh_iban(payer_iban or "")
        except InvalidIban:
            continue
        owners.setdefault((party_id, iban), entry_reference)
    verified = await repository.verify_unverified_accounts(
        session, owners=list(owners), verified_by=f"deposit by bank statement ({actor})"[:200], verified_at=_now()
    )
    for account in verified:
        await audit.record(
            session, kind="bank_account.verified", actor=actor, subject=str(account.id),
            details={"party_id": str(account.party_id), "iban": mask_identifier(account.iban), "method": "deposit",
                     "entry_reference": owners[(account.party_id, account.iban)]},
        )


def _note(value: str | None, *, what: str) -> str:
    note = (value or "").strip()
    if not note:
        raise ResolutionNoteRequired(f"{what} must not be empty")
    if len(note) > NOTE_MAX_LENGTH:
        raise ResolutionNoteRequired(f"{what} has at most {NOTE_MAX_LENGTH} characters")
    return note


# --- bank statements ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementOutcome:
    """What one statement of a document did: how many of its lines were new, and what became of them."""

    statement_id: str
    import_id: int | None  # None when the very same statement had been imported before
    lines_total: int
    lines_new: int = 0
    credited: int = 0
    credited_tiyn: int = 0
    unmatched: int = 0
    withdrawals: int = 0


@dataclass(frozen=True)
class ImportSummary:
    """The outcome of importing one camt.053 document, statement by statement."""

    statements: list[StatementOutcome] = field(default_factory=list)
    closing_balance_tiyn: int | None = None  # the last statement's closing balance, when the bank gave one

    @property
    def lines_new(self) -> int:
        return sum(s.lines_new for s in self.statements)

    @property
    def credited(self) -> int:
        return sum(s.credited for s in self.statements)

    @property
    def credited_tiyn(self) -> int:
        return sum(s.credited_tiyn for s in self.statements)

    @property
    def unmatched(self) -> int:
        return sum(s.unmatched for s in self.statements)

    @property
    def withdrawals(self) -> int:
        return sum(s.withdrawals for s in self.statements)


def _deposit_transfer_id(account_iban: str, entry_reference: str) -> uuid.UUID:
    # Derived from the line's identity at the bank: a line is credited once, on import or by staff.
    return _derived_id("deposit", account_iban, entry_reference)


def _statement_digest(statement: iso20022.Statement) -> bytes:
    """What the statement says, without when it was produced: the same statement fetched again has
    the same digest, one with a new entry another."""
    content = {
        "statement_id": statement.statement_id,
        "account_iban": statement.account_iban,
        "currency": statement.currency,
        "opening": statement.opening_balance_tiyn,
        "closing": statement.closing_balance_tiyn,
        "lines": [
            [line.entry_reference, line.amount_tiyn, line.currency, line.credit, line.booking_date.isoformat(),
             line.value_date.isoformat() if line.value_date else None, line.payment_reference,
             line.counterparty_name, line.counterparty_iban, line.end_to_end_id]
            for line in statement.lines
        ],
    }
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode()).digest()


def _check_statement(statement: iso20022.Statement, *, account_iban: str) -> None:
    if statement.account_iban != account_iban:
        raise StatementOfAnotherAccount(
            f"statement {statement.statement_id} is of the account {mask_identifier(statement.account_iban)}, not "
            f"of the client-money account {mask_identifier(account_iban)}; nothing was imported",
            statement_id=statement.statement_id,
        )
    currencies = {statement.currency} | {line.currency for line in statement.lines}
    if currencies != {MONEY}:
        raise StatementCurrencyNotAccepted(
            f"statement {statement.statement_id} is in {', '.join(sorted(currencies))}; the client-money account "
            f"is kept in {MONEY}; nothing was imported",
            statement_id=statement.statement_id,
        )
    for line in statement.lines:
        if len(line.entry_reference) > ENTRY_REFERENCE_MAX_LENGTH:
            raise StatementInvalid(
                f"statement {statement.statement_id}: an entry reference is longer than "
                f"{ENTRY_REFERENCE_MAX_LENGTH} characters; nothing was imported",
                statement_id=statement.statement_id,
            )


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


async def import_statement(
    session: AsyncSession, *, document: bytes, actor: str, settings: Settings
) -> ImportSummary:
    """Import every statement of a camt.053 document of the client-money account, each line once.

    New credit lines quoting exactly one client's payment reference are credited to that client to the
    tiyn; debit lines carrying one of our payment orders' end-to-end ids are recognised as that
    withdrawal; every other new line waits in the unmatched queue. Importing the same statement again,
    even concurrently, stores and credits nothing twice. Either the whole document is imported or
    nothing of it: Raises StatementInvalid, StatementOfAnotherAccount, StatementCurrencyNotAccepted.
    """
    statements = iso20022.parse_camt053(document)
    account_iban = validate_kazakh_iban(settings.operator_client_money_iban)
    for statement in statements:
        _check_statement(statement, account_iban=account_iban)
    outcomes = [
        await _import_one(session, statement, actor=actor, settings=settings) for statement in statements
    ]
    return ImportSummary(outcomes, statements[-1].closing_balance_tiyn if statements else None)


@dataclass
class _Credit:
    party_id: uuid.UUID
    account_id: int


async def _credit_target(
    session: AsyncSession, line: iso20022.StatementLine, owners: dict[str, uuid.UUID], settings: Settings
) -> tuple[_Credit | None, str | None]:
    """The client a credit line is for and its account, or None and why the line waits for staff."""
    clients = {owners[reference] for reference in references_in(line.payment_reference) if reference in owners}
    if not clients:
        return None, "no client's payment reference in the payment details"
    if len(clients) > 1:
        return None, "the payment details quote the references of several clients"
    [party_id] = clients
    try:
        await parties.ensure_may_operate(session, party_id, settings=settings)
        account = await holder_account(session, party_id=party_id, asset_code=MONEY, settings=settings)
    except (PartyNotFound, PartyNotIdentified, UnderAge) as refusal:  # REQ-14, REQ-16: identified adults only
        return None, f"the client may not receive money now: {refusal.detail}"[:NOTE_MAX_LENGTH]
    return _Credit(party_id, account.id), None


def _payout_problem(line: iso20022.StatementLine, withdrawal: Withdrawal | None) -> str | None:
    if withdrawal is None:
        return "no payment order of ours explains this debit"
    if withdrawal.amount_tiyn != line.amount_tiyn:
        return f"the debit differs from withdrawal {withdrawal.id} ({withdrawal.amount_tiyn} tiyn)"
    if withdrawal.status not in ("submitted", "sent"):
        return f"withdrawal {withdrawal.id} is {withdrawal.status}, yet the bank paid it"
    return None


async def _import_one(
    session: AsyncSession, statement: iso20022.Statement, *, actor: str, settings: Settings
) -> StatementOutcome:
    digest = _statement_digest(statement)
    if await repository.statement_imported_before(
        session, account_iban=statement.account_iban, statement_id=statement.statement_id, digest=digest
    ):
        return StatementOutcome(statement.statement_id, None, len(statement.lines))
    lines = sorted(statement.lines, key=lambda line: line.entry_reference)  # one lock order for every importer
    owners = await repository.parties_of_references(
        session, (r for line in lines if line.credit for r in references_in(line.payment_reference))
    )
    payouts = await repository.withdrawals_by_end_to_end_id(
        session, (line.end_to_end_id for line in lines if not line.credit and line.end_to_end_id)
    )
    import_id = await repository.insert_statement_import(
        session,
        values={
            "account_iban": statement.account_iban, "statement_id": statement.statement_id[:100], "digest": digest,
            "lines_total": len(lines), "lines_new": 0, "credited": 0, "unmatched": 0, "imported_by": actor[:200],
        },
    )
    rows: list[dict] = []
    credits: dict[str, _Credit] = {}
    for line in lines:
        end_to_end_id = line.end_to_end_id if len(line.end_to_end_id or "") <= END_TO_END_ID_MAX_LENGTH else None
        row = {
            "import_id": import_id,
            "account_iban": statement.account_iban,
            "entry_reference": line.entry_reference,
            "amount_tiyn": line.amount_tiyn,
            "credit": line.credit,
            "booking_date": line.booking_date,
            "value_date": line.value_date,
            "payment_reference": _clip(line.payment_reference, iso20022.MAX140),
            "counterparty_name": _clip(line.counterparty_name, iso20022.MAX140),
            "counterparty_iban": line.counterparty_iban if len(line.counterparty_iban or "") <= IBAN_MAX_LENGTH else None,
            "end_to_end_id": end_to_end_id,
            "status": "unmatched",
            "party_id": None,
            "transfer_id": None,
            "note": None,
        }
        if line.credit:
            target, why_not = await _credit_target(session, line, owners, settings)
            if target is not None:
                credits[line.entry_reference] = target
                row |= {
                    "status": "credited", "party_id": target.party_id,
                    "transfer_id": _deposit_transfer_id(statement.account_iban, line.entry_reference),
                }
            row["note"] = why_not
        else:
            withdrawal = payouts.get(end_to_end_id) if end_to_end_id else None
            problem = _payout_problem(line, withdrawal)
            if problem is None and withdrawal is not None:
                row |= {"status": "withdrawal", "party_id": withdrawal.party_id}
            row["note"] = problem
        rows.append(row)
    new = await repository.insert_statement_lines(session, rows=rows)
    stored = [row for row in rows if row["entry_reference"] in new]
    credited = [row for row in stored if row["status"] == "credited"]
    if credited:
        client_money = await operator_account(session, kind="client_money", settings=settings)
        await ledger.post_transfers(
            session,
            transfers=[
                ledger.TransferSpec(
                    row["transfer_id"], client_money.id, credits[row["entry_reference"]].account_id, row["amount_tiyn"],
                    reference=f"deposit {row['entry_reference']}"[:200],
                )
                for row in credited
            ],
        )
        await _verify_by_deposit(
            session,
            credited=[(row["party_id"], row["counterparty_iban"], row["entry_reference"]) for row in credited],
            actor=actor,
        )
    outcome = StatementOutcome(
        statement_id=statement.statement_id,
        import_id=import_id,
        lines_total=len(lines),
        lines_new=len(stored),
        credited=len(credited),
        credited_tiyn=sum(row["amount_tiyn"] for row in credited),
        unmatched=sum(row["status"] == "unmatched" for row in stored),
        withdrawals=sum(row["status"] == "withdrawal" for row in stored),
    )
    await repository.update_statement_import(
        session, import_id, lines_new=outcome.lines_new, credited=outcome.credited, unmatched=outcome.unmatched
    )
    await audit.record(
        session, kind="bank_statement.imported", actor=actor, subject=statement.statement_id[:200],
        details={"import_id": import_id, "account": mask_identifier(statement.account_iban),
                 "lines_total": outcome.lines_total, "lines_new": outcome.lines_new, "credited": outcome.credited,
                 "credited_tiyn": outcome.credited_tiyn, "unmatched": outcome.unmatched,
                 "withdrawals": outcome.withdrawals},
    )
    if outcome.lines_new:
        log.info("bank statement imported", extra={"import_id": import_id, "lines_new": outcome.lines_new,
                                                   "credited": outcome.credited, "unmatched": outcome.unmatched})
    return outcome


async def fetch_statement(
    session: AsyncSession, *, bank: Bank, day: date, actor: str, settings: Settings
) -> ImportSummary:
    """Ask the bank for the day's statement of the client-money account and import it (see
    `import_statement`). The bank is asked before anything is locked.

    Raises ExternalPartyUnavailable, BankAccountUnknown, and whatever `import_statement` raises.
    """
    document = await bank.statement(account_iban=validate_kazakh_iban(settings.operator_client_money_iban), day=day)
    return await import_statement(session, document=document, actor=actor, settings=settings)


@dataclass(frozen=True)
class ClientMoneyPosition:
    """Client money as the books show it: what the ledger holds for clients, and the credits the bank
    booked that wait in the unmatched queue (money at the bank that is nobody's on the ledger yet)."""

    ledger_tiyn: int
    unmatched_tiyn: int

    @property
    def expected_at_bank_tiyn(self) -> int:
        return self.ledger_tiyn + self.unmatched_tiyn


async def client_money_position(session: AsyncSession, *, settings: Settings) -> ClientMoneyPosition:
    """What the client-money account at the bank should hold according to the books."""
    account = await operator_account(session, kind="client_money", settings=settings)
    return ClientMoneyPosition(-account.balance, await repository.unmatched_credits_tiyn(session))


async def list_statement_imports(session: AsyncSession, *, before: int | None, limit: int):
    return await repository.list_statement_imports(session, before=before, limit=limit)


# --- the unmatched queue --------------------------------------------------------------------------------


async def list_statement_lines(
    session: AsyncSession, *, status: str | None, party_id: uuid.UUID | None = None, after: int | None, limit: int
) -> list[StatementLine]:
    return await repository.list_statement_lines(session, status=status, party_id=party_id, after=after, limit=limit)


async def _unmatched_line(session: AsyncSession, line_id: int) -> StatementLine:
    line = await repository.get_statement_line(session, line_id, for_update=True)
    if line is None:
        raise StatementLineNotFound(f"bank statement line {line_id} does not exist", line_id=line_id)
    if line.status != "unmatched":
        raise StatementLineAlreadyResolved(f"bank statement line {line_id} is {line.status}", status=line.status)
    return line


async def assign_line(
    session: AsyncSession, *, line_id: int, party_id: uuid.UUID, note: str, actor: str, settings: Settings
) -> StatementLine:
    """Staff credit an unmatched deposit to the client it is for, to the tiyn, once.

    Raises StatementLineNotFound, StatementLineAlreadyResolved, StatementLineNotAssignable,
    ResolutionNoteRequired, PartyNotFound, PartyNotIdentified, UnderAge.
    """
    note = _note(note, what="the note")
    line = await _unmatched_line(session, line_id)
    if not line.credit:
        raise StatementLineNotAssignable(f"bank statement line {line_id} is money that left the account")
    await parties.ensure_may_operate(session, party_id, settings=settings)
    account = await holder_account(session, party_id=party_id, asset_code=MONEY, settings=settings)
    client_money = await operator_account(session, kind="client_money", settings=settings)
    transfer_id = _deposit_transfer_id(line.account_iban, line.entry_reference)
    await ledger.post_transfer(
        session,
        transfer=ledger.TransferSpec(
            transfer_id, client_money.id, account.id, line.amount_tiyn, reference=f"deposit {line.entry_reference}"[:200]
        ),
    )
    line = await repository.update_statement_line(
        session, line_id, status="assigned", party_id=party_id, transfer_id=transfer_id, resolved_by=actor[:200],
        resolved_at=_now(), note=note,
    )
    await _verify_by_deposit(session, credited=[(party_id, line.counterparty_iban, line.entry_reference)], actor=actor)
    await audit.record(
        session, kind="bank_statement_line.assigned", actor=actor, subject=str(line_id),
        details={"party_id": str(party_id), "amount_tiyn": line.amount_tiyn, "note": note},
    )
    return line


async def return_line(session: AsyncSession, *, line_id: int, note: str, actor: str) -> StatementLine:
    """Staff close an unmatched line as returned: a deposit nobody can claim goes back to its payer
    (staff order that payment at the bank and say so in the note), or a debit is such a return.

    Raises StatementLineNotFound, StatementLineAlreadyResolved, ResolutionNoteRequired.
    """
    note = _note(note, what="the note")
    line = await _unmatched_line(session, line_id)
    line = await repository.update_statement_line(
        session, line_id, status="returned", resolved_by=actor[:200], resolved_at=_now(), note=note
    )
    await audit.record(
        session, kind="bank_statement_line.returned", actor=actor, subject=str(line_id),
        details={"amount_tiyn": line.amount_tiyn, "credit": line.credit, "note": note,
                 "counterparty": mask_identifier(line.counterparty_iban) if line.counterparty_iban else None},
    )
    return line


# --- withdrawals ----------------------------------------------------------------------------------------


def _hold_id(withdrawal_id: uuid.UUID) -> uuid.UUID:
    return _derived_id("withdrawal-hold", withdrawal_id)


def _release_id(withdrawal_id: uuid.UUID) -> uuid.UUID:
    """The one transfer that gives a withdrawal's money back, whether the client cancels or the bank refuses."""
    return _derived_id("withdrawal-void", withdrawal_id)


def _end_to_end_id(withdrawal_id: uuid.UUID) -> str:
    return f"WD{withdrawal_id.hex}"  # 34 characters: fits ISO 20022's 35


async def get_withdrawal(
    session: AsyncSession, withdrawal_id: uuid.UUID, *, visible_to: uuid.UUID | None = None, for_update: bool = False
) -> Withdrawal:
    """The withdrawal; with `visible_to`, only when it is that party's. Raises WithdrawalNotFound."""
    withdrawal = await repository.get_withdrawal(session, withdrawal_id, for_update=for_update)
    if withdrawal is None or (visible_to is not None and withdrawal.party_id != visible_to):
        raise WithdrawalNotFound(f"withdrawal {withdrawal_id} does not exist", withdrawal_id=str(withdrawal_id))
    return withdrawal


async def list_withdrawals(
    session: AsyncSession, *, party_id: uuid.UUID | None, status: str | None, before: uuid.UUID | None, limit: int
) -> list[Withdrawal]:
    return await repository.list_withdrawals(session, party_id=party_id, status=status, before=before, limit=limit)


async def request_withdrawal(
    session: AsyncSession,
    *,
    party_id: uuid.UUID,
    bank_account_id: int,
    amount_tiyn: int,
    withdrawal_id: uuid.UUID,
    actor: str,
    centre: AntiFraudCentre,
    settings: Settings,
) -> tuple[Withdrawal, bool]:
    """Hold the amount on the client's money and queue its payment to the client's own verified
    account; returns the withdrawal and whether it was created now (False for a replay of the same).

    Prefunded (REQ-38): the amount is held at once, so it cannot be spent twice; without the money
    nothing is written. The client is screened by the anti-fraud centre first (REQ-18). Raises
    WithdrawalAmountInvalid, WithdrawalIdReused, PartyNotFound, PartyNotIdentified, UnderAge,
    BankAccountNotFound, BankAccountNotVerified, InsufficientFunds, AntiFraudMatch,
    ExternalPartyUnavailable.
    """
    if type(amount_tiyn) is not int or not 0 < amount_tiyn <= WITHDRAWAL_AMOUNT_MAX_TIYN:
        raise WithdrawalAmountInvalid(f"the amount is 1 to {WITHDRAWAL_AMOUNT_MAX_TIYN} tiyn, not {amount_tiyn!r}")
    existing = await repository.get_withdrawal(session, withdrawal_id)
    if existing is not None:
        if (existing.party_id, existing.bank_account_id, existing.amount_tiyn) == (party_id, bank_account_id, amount_tiyn):
            return existing, False
        raise WithdrawalIdReused(f"withdrawal id {withdrawal_id} was used for a different withdrawal")
    await parties.ensure_may_operate(session, party_id, settings=settings)
    bank_account = await get_bank_account(session, bank_account_id, visible_to=party_id)
    if bank_account.status != "verified":
        raise BankAccountNotVerified(
            f"bank account {bank_account_id} is {bank_account.status}; withdrawals go only to a verified account "
            "of the client's own (verified by staff, or by a deposit from it)",
            bank_account_id=bank_account_id,
        )
    money = await holder_account(session, party_id=party_id, asset_code=MONEY, settings=settings)
    operator = await parties.ensure_operator_party(session, settings=settings)
    await screening.screen_operation(
        session,
        operation="withdrawal",
        movements=[screening.Movement(operator.id, party_id, MONEY, amount_tiyn)],
        centre=centre,
        actor=actor,
        settings=settings,
    )
    hold_id = _hold_id(withdrawal_id)
    await ledger.place_hold(
        session, hold_id=hold_id, account_id=money.id, amount=amount_tiyn, reference=f"withdrawal {withdrawal_id}"
    )
    withdrawal = await repository.insert_withdrawal(
        session,
        values={
            "id": withdrawal_id, "party_id": party_id, "bank_account_id": bank_account_id, "amount_tiyn": amount_tiyn,
            "hold_id": hold_id, "end_to_end_id": _end_to_end_id(withdrawal_id), "status": "requested",
            "requested_by": actor[:200],
        },
    )
    invariant(withdrawal is not None, f"withdrawal {withdrawal_id} was inserted twice past its hold")
    await audit.record(
        session, kind="withdrawal.requested", actor=actor, subject=str(withdrawal_id),
        details={"party_id": str(party_id), "bank_account_id": bank_account_id, "amount_tiyn": amount_tiyn,
                 "iban": mask_identifier(bank_account.iban)},
    )
    return withdrawal, True


async def _cancel(session: AsyncSession, withdrawal: Withdrawal, *, reason: str | None) -> None:
    await ledger.void_hold(session, hold_id=withdrawal.hold_id, transfer_id=_release_id(withdrawal.id))
    await repository.update_withdrawals(
        session, [withdrawal.id], status="cancelled", failure_reason=reason, closed_at=_now()
    )


async def cancel_withdrawal(
    session: AsyncSession, *, withdrawal_id: uuid.UUID, actor: str, visible_to: uuid.UUID | None = None
) -> Withdrawal:
    """Cancel a withdrawal not yet handed to the bank and release its money; cancelling it again
    changes nothing. Raises WithdrawalNotFound, WithdrawalNotCancellable."""
    withdrawal = await get_withdrawal(session, withdrawal_id, visible_to=visible_to, for_update=True)
    if withdrawal.status == "cancelled":
        return withdrawal
    if withdrawal.status != "requested":
        raise WithdrawalNotCancellable(
            f"withdrawal {withdrawal_id} is {withdrawal.status}; only a requested one can be cancelled",
            status=withdrawal.status,
        )
    await _cancel(session, withdrawal, reason=None)
    await audit.record(
        session, kind="withdrawal.cancelled", actor=actor, subject=str(withdrawal_id),
        details={"party_id": str(withdrawal.party_id), "amount_tiyn": withdrawal.amount_tiyn},
    )
    return await get_withdrawal(session, withdrawal_id)


# --- payment runs: withdrawals to the bank, exactly once ------------------------------------------------


def _message_id() -> str:
    return f"PAY{uuid.uuid4().hex}"  # 35 characters, ISO 20022's limit


async def build_payment_run(
    session: AsyncSession, *, settings: Settings, limit: int = WITHDRAWALS_PER_RUN_MAX
) -> PaymentRun | None:
    """Claim the oldest requested withdrawals and store the one pain.001 message that pays them; the
    withdrawals become submitted. None when nothing waits. The stored message is what every later
    send transmits, byte for byte, so the bank (idempotent on the message id) executes it once."""
    claimed = await repository.claim_requested_withdrawals(session, limit=min(limit, iso20022.PAYMENT_ORDERS_PER_MESSAGE_MAX))
    if not claimed:
        return None
    orders = [
        iso20022.PaymentOrder(
            end_to_end_id=withdrawal.end_to_end_id,
            amount_tiyn=withdrawal.amount_tiyn,
            creditor_name=account.holder_name,
            creditor_iban=account.iban,
            creditor_bic=None,
            remittance=f"DFA platform withdrawal {withdrawal.end_to_end_id}",
        )
        for withdrawal, account in claimed
    ]
    message_id = _message_id()
    document = iso20022.build_pain001(
        message_id=message_id,
        created_at=_now(),
        debtor_name=settings.operator_name[:iso20022.MAX140].strip(),
        debtor_iban=settings.operator_client_money_iban,
        debtor_bic=settings.operator_bank_bic,
        execution_date=parties.local_today(settings),
        orders=orders,
    )
    run = await repository.insert_payment_run(
        session,
        values={
            "message_id": message_id, "document": document, "order_count": len(orders),
            "total_tiyn": sum(order.amount_tiyn for order in orders), "status": "built",
        },
    )
    await repository.update_withdrawals(
        session, [withdrawal.id for withdrawal, _ in claimed], status="submitted", message_id=message_id
    )
    return run


async def payment_runs_to_send(session: AsyncSession, *, limit: int = RUNS_PER_PASS_MAX) -> list[PaymentRun]:
    """Messages stored but without the bank's answer yet, oldest first (built now, or left by a pass
    that crashed or found the bank down)."""
    return await repository.built_payment_runs(session, limit=limit)


async def _locked_built_run(session: AsyncSession, message_id: str) -> PaymentRun | None:
    run = await repository.get_payment_run(session, message_id, for_update=True)
    invariant(run is not None, f"payment run {message_id} vanished")
    return run if run.status == "built" else None  # another pass has recorded the answer


async def record_acceptance(
    session: AsyncSession, *, message_id: str, acceptance_id: str, settings: Settings
) -> list[Withdrawal]:
    """The bank accepted the message: each withdrawal's held money leaves through `client_money`, and the
    withdrawals are sent. Recording it again changes nothing. Returns the withdrawals sent now."""
    run = await _locked_built_run(session, message_id)
    if run is None:
        return []
    withdrawals = await repository.withdrawals_of_run(session, message_id=message_id)
    invariant(all(w.status == "submitted" for w in withdrawals), f"run {message_id} carries a settled withdrawal")
    client_money = await operator_account(session, kind="client_money", settings=settings)
    await ledger.settle_holds(
        session,
        batch_id=_derived_id("payment-run-accepted", message_id),
        post=[
            ledger.PostHoldItem(
                hold_id=w.hold_id, transfer_id=_derived_id("withdrawal-payout", w.id),
                credit_account_id=client_money.id, amount=w.amount_tiyn, reference=f"withdrawal {w.id}",
            )
            for w in withdrawals
        ],
    )
    now = _now()
    await repository.update_payment_run(
        session, message_id, status="accepted", acceptance_id=acceptance_id[:100], decided_at=now,
        attempts=run.attempts + 1,
    )
    await repository.update_withdrawals(session, [w.id for w in withdrawals], status="sent", closed_at=now)
    await audit.record(
        session, kind="payment_orders.accepted", actor="system", subject=message_id,
        details={"acceptance_id": acceptance_id[:100], "orders": run.order_count, "total_tiyn": run.total_tiyn},
    )
    return withdrawals


async def record_refusal(
    session: AsyncSession, *, message_id: str, code: str, reason: str, settings: Settings
) -> list[Withdrawal]:
    """The bank refused the message as a whole: the withdrawals are refused with the bank's reason and
    their money is released to the clients. Returns the withdrawals refused now."""
    run = await _locked_built_run(session, message_id)
    if run is None:
        return []
    withdrawals = await repository.withdrawals_of_run(session, message_id=message_id)
    invariant(all(w.status == "submitted" for w in withdrawals), f"run {message_id} carries a settled withdrawal")
    await ledger.settle_holds(
        session,
        batch_id=_derived_id("payment-run-refused", message_id),
        void=[ledger.VoidHoldItem(hold_id=w.hold_id, transfer_id=_release_id(w.id)) for w in withdrawals],
    )
    now = _now()
    await repository.update_payment_run(
        session, message_id, status="refused", refusal_code=code[:100], refusal_reason=reason, decided_at=now,
        attempts=run.attempts + 1,
    )
    await repository.update_withdrawals(
        session, [w.id for w in withdrawals], status="refused", failure_reason=f"the bank refused ({code}): {reason}",
        closed_at=now,
    )
    await audit.record(
        session, kind="payment_orders.refused", actor="system", subject=message_id, outcome="failure",
        details={"code": code[:100], "orders": run.order_count, "total_tiyn": run.total_tiyn},
    )
    return withdrawals


async def record_unanswered(session: AsyncSession, *, message_id: str) -> None:
    """The bank gave no answer: the message stays built, to be sent again (the very same) next pass."""
    await repository.count_built_attempt(session, message_id=message_id)


@asynccontextmanager
async def submission_turn(database: Database) -> AsyncIterator[bool]:
    """Yields whether this caller has the turn to send payment orders (no other pass, in any instance,
    is sending). A send and the recording of its answer must not interleave with another pass's: a
    refusal recorded by one pass must not meet an acceptance of the same message obtained by another."""
    async with database.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        acquired = await repository.try_advisory_lock(autocommit, key=SUBMISSION_LOCK_KEY)
        try:
            yield acquired
        finally:
            if acquired:
                await repository.advisory_unlock(autocommit, key=SUBMISSION_LOCK_KEY)
