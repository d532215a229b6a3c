"""Refusals of settlement's money in and out (bank account numbers, bank statements, payment orders)."""

from enum import StrEnum

from dfa.platform.errors import Category, DomainError


class IbanDefect(StrEnum):
    """Why an account number is not a Kazakhstan IBAN, so a caller can tell the user what to fix."""

    WRONG_COUNTRY = "wrong-country"
    WRONG_LENGTH = "wrong-length"
    BAD_CHARACTERS = "bad-characters"
    CHECK_DIGITS = "check-digits"


class InvalidIban(DomainError):
    type = "iban-invalid"
    title = "The account number is not a valid Kazakhstan IBAN"
    category = Category.INVALID

    def __init__(self, detail: str, *, reason: IbanDefect) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


class StatementInvalid(DomainError):
    """A bank statement (camt.053) that is malformed, unsafe, oversized or inconsistent: nothing in it is used."""

    type = "bank-statement-invalid"
    title = "The bank statement is not a usable camt.053 document"
    category = Category.INVALID


class PaymentOrderInvalid(DomainError):
    """A payment order (pain.001) with a missing or malformed field: no part of it goes to the bank."""

    type = "payment-order-invalid"
    title = "The payment order is not valid"
    category = Category.INVALID


class PaymentOrdersRefused(DomainError):
    """The bank refused a pain.001 message as a whole: none of its orders was executed.

    `code` is the bank's short reason code (the simulator's are in `dfa.settlement.bank.RefusalCode`),
    `reason` the bank's own words.
    """

    type = "payment-orders-refused"
    title = "The bank refused the payment orders"
    category = Category.REFUSED

    def __init__(self, reason: str, *, code: str) -> None:
        super().__init__(f"The bank refused the payment orders ({code}): {reason}", code=code)
        self.code = code
        self.reason = reason


class BankAccountUnknown(DomainError):
    """The bank keeps no account with that IBAN, so it has no statement of it."""

    type = "bank-account-unknown"
    title = "The bank keeps no such account"
    category = Category.NOT_FOUND


# --- trading and settlement instructions ---------------------------------------------------------------


class TradingSuspended(DomainError):
    """Trading in the emission is suspended: no order is placed and no instruction accepted or settled."""

    type = "trading-suspended"
    title = "Trading in this emission is suspended"
    category = Category.REFUSED


class InstructionTermsInvalid(DomainError):
    type = "instruction-terms-invalid"
    title = "The settlement instruction's terms are not valid"
    category = Category.INVALID


class InstructionNotFound(DomainError):
    type = "instruction-not-found"
    title = "No such settlement instruction"
    category = Category.NOT_FOUND


class InstructionAlreadySubmitted(DomainError):
    """This party has already submitted its side of an instruction with these terms."""

    type = "instruction-already-submitted"
    title = "This side of the instruction was already submitted"
    category = Category.CONFLICT


class InstructionNotChangeable(DomainError):
    """The instruction is not in a state that allows this (cancel a settled one, resubmit a pending one...)."""

    type = "instruction-not-changeable"
    title = "The settlement instruction cannot be changed that way now"
    category = Category.CONFLICT


class OrderInvalid(DomainError):
    type = "order-invalid"
    title = "The order is not valid"
    category = Category.INVALID


class OrderNotFound(DomainError):
    type = "order-not-found"
    title = "No such order"
    category = Category.NOT_FOUND


class OrderNotOpen(DomainError):
    type = "order-not-open"
    title = "The order is no longer open"
    category = Category.CONFLICT


# --- money in and out: payment references, clients' bank accounts, statements, withdrawals -------------


class StatementOfAnotherAccount(DomainError):
    """A statement of an account other than the client-money account: nothing in the document is imported."""

    type = "bank-statement-of-another-account"
    title = "The bank statement is not of the client-money account"
    category = Category.REFUSED


class StatementCurrencyNotAccepted(DomainError):
    """The client-money account is kept in tenge; a statement or entry in another currency is not imported."""

    type = "bank-statement-currency-not-accepted"
    title = "The bank statement is not in tenge"
    category = Category.REFUSED


class StatementMediaTypeUnsupported(DomainError):
    type = "bank-statement-media-type-unsupported"
    title = "A bank statement is uploaded as camt.053 XML (application/xml)"
    category = Category.INVALID


class BankAccountNotFound(DomainError):
    """No such bank account, or it is another party's (whose ids must tell nothing)."""

    type = "bank-account-not-found"
    title = "No such bank account"
    category = Category.NOT_FOUND


class BankAccountAlreadyRegistered(DomainError):
    type = "bank-account-already-registered"
    title = "The party has registered this bank account already"
    category = Category.CONFLICT


class BankAccountNotAllowed(DomainError):
    """An account no withdrawal may go to (the operator's own client-money account), or one too many."""

    type = "bank-account-not-allowed"
    title = "This bank account cannot be registered"
    category = Category.REFUSED


class BankAccountHolderNameInvalid(DomainError):
    type = "bank-account-holder-name-invalid"
    title = "The account holder's name cannot be carried by a payment order"
    category = Category.INVALID


class BankAccountNotVerified(DomainError):
    """Withdrawals are paid only to the client's own account once its ownership is proven."""

    type = "bank-account-not-verified"
    title = "The bank account is not verified"
    category = Category.REFUSED


class BankAccountRevoked(DomainError):
    type = "bank-account-revoked"
    title = "The bank account is revoked"
    category = Category.CONFLICT


class StatementLineNotFound(DomainError):
    type = "bank-statement-line-not-found"
    title = "No such bank statement line"
    category = Category.NOT_FOUND


class StatementLineAlreadyResolved(DomainError):
    """The line is no longer in the unmatched queue: it was credited, assigned, returned or is a payout."""

    type = "bank-statement-line-resolved"
    title = "The bank statement line is not unmatched"
    category = Category.CONFLICT


class StatementLineNotAssignable(DomainError):
    """Only money that came in (a credit line) can be credited to a client."""

    type = "bank-statement-line-not-assignable"
    title = "A debit line cannot be credited to a client"
    category = Category.REFUSED


class ResolutionNoteRequired(DomainError):
    type = "resolution-note-required"
    title = "Say why: a resolution of a bank statement line needs a note"
    category = Category.INVALID


class WithdrawalNotFound(DomainError):
    """No such withdrawal, or it is another party's (whose ids must tell nothing)."""

    type = "withdrawal-not-found"
    title = "No such withdrawal"
    category = Category.NOT_FOUND


class WithdrawalIdReused(DomainError):
    type = "withdrawal-id-reused"
    title = "This withdrawal id was used for a different withdrawal"
    category = Category.CONFLICT


class WithdrawalAmountInvalid(DomainError):
    type = "withdrawal-amount-invalid"
    title = "The withdrawal amount is not a positive whole number of tiyn within the limit"
    category = Category.INVALID


class WithdrawalNotCancellable(DomainError):
    """Only a withdrawal not yet handed to the bank can be cancelled."""

    type = "withdrawal-not-cancellable"
    title = "The withdrawal has gone to the bank and can no longer be cancelled"
    category = Category.CONFLICT


class WithdrawalSubmissionInProgress(DomainError):
    """Another pass is sending payment orders to the bank right now; a retry shortly after will run."""

    type = "withdrawal-submission-in-progress"
    title = "A submission of withdrawals is running"
    category = Category.CONFLICT
