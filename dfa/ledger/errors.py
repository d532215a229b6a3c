"""Every refusal of the ledger, by name."""

from dfa.platform.errors import Category, DomainError


class AssetNotFound(DomainError):
    type = "asset-not-found"
    title = "No such asset"
    category = Category.NOT_FOUND


class AssetAlreadyExists(DomainError):
    type = "asset-already-exists"
    title = "An asset with this code exists"
    category = Category.CONFLICT


class AccountNotFound(DomainError):
    type = "account-not-found"
    title = "No such account"
    category = Category.NOT_FOUND


class AccountAlreadyExists(DomainError):
    type = "account-already-exists"
    title = "This holder already has an account of this kind in this asset"
    category = Category.CONFLICT


class AccountKindNotAllowed(DomainError):
    type = "account-kind-not-allowed"
    title = "This kind of account cannot be opened in this asset"
    category = Category.REFUSED


class AccountsMustHaveSameAsset(DomainError):
    type = "accounts-must-have-same-asset"
    title = "Debit and credit accounts hold different assets"
    category = Category.REFUSED


class AccountsMustBeDifferent(DomainError):
    type = "accounts-must-be-different"
    title = "Debit and credit accounts are the same"
    category = Category.INVALID


class InsufficientFunds(DomainError):
    type = "insufficient-funds"
    title = "The debit account's balance is too low"
    category = Category.REFUSED


class BalanceLimitExceeded(DomainError):
    type = "balance-limit-exceeded"
    title = "The resulting balance exceeds what the ledger can hold"
    category = Category.REFUSED


class TransferExists(DomainError):
    type = "transfer-exists"
    title = "A transfer with this id exists"
    category = Category.CONFLICT


class TransferIdReusedWithDifferentRequest(DomainError):
    type = "transfer-id-reused"
    title = "This transfer id was used for a different transfer"
    category = Category.CONFLICT


class DuplicateIdInBatch(DomainError):
    type = "duplicate-id-in-batch"
    title = "An id appears twice in one batch"
    category = Category.INVALID


class BatchIdReusedWithDifferentRequest(DomainError):
    type = "batch-id-reused"
    title = "This batch id was used for a different batch"
    category = Category.CONFLICT


class HoldNotFound(DomainError):
    type = "hold-not-found"
    title = "No such hold"
    category = Category.NOT_FOUND


class HoldRequiresAvailableAccount(DomainError):
    type = "hold-requires-available-account"
    title = "Holds are placed on a holder's available account"
    category = Category.REFUSED


class HoldIdReusedWithDifferentRequest(DomainError):
    type = "hold-id-reused"
    title = "This hold id was used for a different hold"
    category = Category.CONFLICT


class HoldNotPending(DomainError):
    type = "hold-not-pending"
    title = "The hold is already posted, voided or expired"
    category = Category.CONFLICT


class HoldExpired(DomainError):
    type = "hold-expired"
    title = "The hold has expired"
    category = Category.CONFLICT


class HoldAmountExceeded(DomainError):
    type = "hold-amount-exceeded"
    title = "More than the hold's remaining amount was asked for"
    category = Category.REFUSED


class HoldExpiryInPast(DomainError):
    type = "hold-expiry-in-past"
    title = "A hold cannot expire in the past"
    category = Category.INVALID


class InvalidCursor(DomainError):
    type = "invalid-cursor"
    title = "The page cursor is not valid"
    category = Category.INVALID


class TransferNotFound(DomainError):
    type = "transfer-not-found"
    title = "No such transfer"
    category = Category.NOT_FOUND


class InvalidInstant(DomainError):
    type = "invalid-instant"
    title = "The instant is not valid"
    category = Category.INVALID
