"""Refusals of reconciliation."""

from dfa.platform.errors import Category, DomainError


class ReportNotFound(DomainError):
    type = "reconciliation-report-not-found"
    title = "No such reconciliation report"
    category = Category.NOT_FOUND


class BreachNotFound(DomainError):
    type = "reconciliation-breach-not-found"
    title = "No such breach"
    category = Category.NOT_FOUND


class ProofNotFound(DomainError):
    """The holder had no units of the emission when the report fixed its holder tree, or the report has
    no tree for the emission."""

    type = "holder-proof-not-found"
    title = "The report holds no position of this holder in this emission"
    category = Category.NOT_FOUND


class ReportSignedOffAlready(DomainError):
    type = "reconciliation-report-signed-off-already"
    title = "The report has been signed off already"
    category = Category.CONFLICT


class BreachAcknowledgedAlready(DomainError):
    type = "reconciliation-breach-acknowledged-already"
    title = "The breach has been acknowledged already"
    category = Category.CONFLICT


class CommentInvalid(DomainError):
    type = "reconciliation-comment-invalid"
    title = "A comment of 1 to 2,000 characters is required"
    category = Category.INVALID


class DayNotReconcilable(DomainError):
    """A day still to come cannot be reconciled, nor one before the platform kept books."""

    type = "reconciliation-day-not-reconcilable"
    title = "This day cannot be reconciled"
    category = Category.INVALID


class ReconciliationBusy(DomainError):
    """Another instance's run held the reconciliation lock for longer than the wait allowed."""

    type = "reconciliation-busy"
    title = "Another reconciliation run is in progress"
    category = Category.CONFLICT
