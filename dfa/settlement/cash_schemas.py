"""Requests and responses of the money API: payment references, clients' bank accounts, bank
statements and their unmatched lines, withdrawals. Amounts are integers in tiyn (1/100 KZT)."""

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from dfa.platform.types import BIGINT_MAX, IsoDate, Text
from dfa.settlement.service.cash import (
    HOLDER_NAME_MAX_LENGTH,
    NOTE_MAX_LENGTH,
    REASON_MAX_LENGTH,
    WITHDRAWAL_AMOUNT_MAX_TIYN,
)

# Room for an IBAN printed in groups of four with spaces (20 characters and their separators, generously).
IBAN_INPUT_MAX_LENGTH = 64

Note = Annotated[Text, Field(min_length=1, max_length=NOTE_MAX_LENGTH)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- payment references ---------------------------------------------------------------------------------


class PaymentInstructionsOut(Response):
    party_id: uuid.UUID = Field(description="The client the reference belongs to.")
    reference: str = Field(
        description="Write this in the payment details of every transfer to the client-money account; the "
        "deposit is credited to the client by it. Its last two digits are check digits, so a typo is caught."
    )
    beneficiary_name: str = Field(description="The operator, holder of the client-money account.")
    beneficiary_iban: str = Field(description="IBAN of the client-money account to pay into.")
    beneficiary_bic: str = Field(description="BIC of the bank that keeps the client-money account.")
    currency: str = Field(description="The only currency accepted: KZT.")
    created_at: datetime = Field(description="When the reference was given to the client (UTC).")


# --- clients' bank accounts -----------------------------------------------------------------------------


class BankAccountCreate(Request):
    iban: str = Field(
        min_length=1, max_length=IBAN_INPUT_MAX_LENGTH,
        description="The client's own Kazakhstan IBAN; spaces and lower case are accepted.",
    )
    holder_name: Text = Field(
        min_length=1, max_length=HOLDER_NAME_MAX_LENGTH,
        description="The account holder's name as the bank knows it; the payee name of withdrawals.",
    )
    party_id: uuid.UUID | None = Field(
        default=None, description="Whose account it is; an investor or issuer leaves it out (its own)."
    )


class BankAccountOut(Response):
    id: int = Field(description="Bank account id.")
    party_id: uuid.UUID = Field(description="The client whose own account it is.")
    iban: str = Field(description="IBAN in electronic form.")
    holder_name: str = Field(description="Account holder's name.")
    status: str = Field(
        description="unverified (registered, no withdrawal yet), verified (ownership proven by staff or by a "
        "deposit from it: withdrawals may go there) or revoked (never paid to again)."
    )
    verified_at: datetime | None = Field(description="When ownership was proven (UTC).")
    created_at: datetime = Field(description="When the account was registered (UTC).")


class BankAccountVerification(Request):
    evidence: Note = Field(description="How ownership was proven, e.g. the bank's confirmation letter number.")


class BankAccountRevocation(Request):
    reason: Annotated[Text, Field(min_length=1, max_length=REASON_MAX_LENGTH)] = Field(
        description="Why no withdrawal may go to the account any more."
    )


# --- bank statements ------------------------------------------------------------------------------------


class StatementFetch(Request):
    day: IsoDate = Field(description="The booking day whose statement of the client-money account to fetch.")


class StatementOutcomeOut(Response):
    statement_id: str = Field(description="The bank's id of the statement.")
    import_id: int | None = Field(description="The import recorded now; null when this very statement was imported before.")
    already_imported: bool = Field(description="True when the same statement had been imported before.")
    lines_total: int = Field(description="Entries in the statement.")
    lines_new: int = Field(description="Entries seen for the first time now.")
    credited: int = Field(description="New deposits credited to clients by their payment reference.")
    credited_tiyn: int = Field(description="Their total, in tiyn.")
    unmatched: int = Field(description="New entries left for staff in the unmatched queue.")
    withdrawals: int = Field(description="New debits recognised as our withdrawals' payments.")


class ImportSummaryOut(Response):
    statements: list[StatementOutcomeOut] = Field(description="Each statement of the document, in order.")
    lines_new: int = Field(description="New entries in all statements.")
    credited: int = Field(description="Deposits credited to clients.")
    credited_tiyn: int = Field(description="Their total, in tiyn.")
    unmatched: int = Field(description="Entries left in the unmatched queue.")
    withdrawals: int = Field(description="Debits recognised as withdrawals.")


class StatementImportOut(Response):
    id: int = Field(description="Import id.")
    account_iban: str = Field(description="The client-money account the statement is of.")
    statement_id: str = Field(description="The bank's id of the statement.")
    lines_total: int = Field(description="Entries in the statement.")
    lines_new: int = Field(description="Entries seen for the first time by this import.")
    credited: int = Field(description="Deposits this import credited to clients.")
    unmatched: int = Field(description="Entries this import left in the unmatched queue.")
    imported_by: str = Field(description="Who imported it: a staff login, or the statement poll.")
    created_at: datetime = Field(description="When it was imported (UTC).")


class StatementLineOut(Response):
    id: int = Field(description="Line id.")
    import_id: int = Field(description="The import that first stored the line.")
    account_iban: str = Field(description="The client-money account.")
    entry_reference: str = Field(description="The bank's unique reference of the entry.")
    amount_tiyn: int = Field(description="Amount in tiyn, always positive; `credit` gives the direction.")
    credit: bool = Field(description="True for money in, false for money out.")
    booking_date: date = Field(description="Day the bank booked the entry.")
    value_date: date | None = Field(description="Value date, when the bank gave one.")
    payment_reference: str | None = Field(description="The payment details as the payer wrote them.")
    counterparty_name: str | None = Field(description="The payer of a credit, the payee of a debit.")
    counterparty_iban: str | None = Field(description="Their account, when the bank gave it.")
    end_to_end_id: str | None = Field(description="The payment's end-to-end id; ours for a withdrawal.")
    status: str = Field(
        description="credited (by payment reference), unmatched (waits for staff), assigned (credited by staff), "
        "returned (sent back to the payer, or such a return) or withdrawal (the payment of one of ours)."
    )
    party_id: uuid.UUID | None = Field(description="The client credited or paid.")
    transfer_id: uuid.UUID | None = Field(description="The ledger transfer that credited the client.")
    resolved_by: str | None = Field(description="Staff member who assigned or returned the line.")
    resolved_at: datetime | None = Field(description="When (UTC).")
    note: str | None = Field(description="Why the line waits, or the staff member's note on resolving it.")
    created_at: datetime = Field(description="When the line was first imported (UTC).")


class LineAssignment(Request):
    party_id: uuid.UUID = Field(description="The client the deposit is for.")
    note: Note = Field(description="How the client was established, e.g. the payer's letter.")


class LineReturn(Request):
    note: Note = Field(
        description="How the money goes back: the bank payment order returning a deposit, or the deposit a "
        "debit returned."
    )


# --- withdrawals ----------------------------------------------------------------------------------------


class WithdrawalCreate(Request):
    id: uuid.UUID = Field(description="Caller-chosen unique id; makes the request exactly-once.")
    bank_account_id: int = Field(
        strict=True, gt=0, le=BIGINT_MAX, description="The client's own verified bank account to be paid to."
    )
    amount_tiyn: int = Field(
        strict=True, gt=0, le=WITHDRAWAL_AMOUNT_MAX_TIYN, description="Amount to pay out, in tiyn."
    )


class WithdrawalOut(Response):
    id: uuid.UUID = Field(description="Withdrawal id.")
    party_id: uuid.UUID = Field(description="The client paid out.")
    bank_account_id: int = Field(description="The client's bank account paid to.")
    amount_tiyn: int = Field(description="Amount, in tiyn; held on the client's money from the request on.")
    status: str = Field(
        description="requested (money held, cancellable), submitted (in a payment order to the bank), sent (the "
        "bank accepted it: the money left), refused (the bank refused; the money was released) or cancelled."
    )
    end_to_end_id: str = Field(description="The payment's id at the bank; shown in the statement.")
    message_id: str | None = Field(description="The payment order message that carries it.")
    failure_reason: str | None = Field(description="Why it was refused or cancelled, when it was.")
    created_at: datetime = Field(description="When it was requested (UTC).")
    closed_at: datetime | None = Field(description="When it was sent, refused or cancelled (UTC).")


class SubmissionOut(Response):
    runs_built: int = Field(description="Payment order messages built from requested withdrawals.")
    runs_sent: int = Field(description="Messages sent to the bank (new ones and those still unanswered).")
    runs_accepted: int = Field(description="Messages the bank accepted.")
    runs_refused: int = Field(description="Messages the bank refused.")
    runs_unanswered: int = Field(description="Messages the bank did not answer; they are sent again next time.")
    withdrawals_sent: int = Field(description="Withdrawals paid out.")
    withdrawals_refused: int = Field(description="Withdrawals refused by the bank, their money released.")
