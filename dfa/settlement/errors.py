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
