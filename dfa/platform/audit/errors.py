"""Refusals of the security-event log."""

from dfa.platform.errors import Category, DomainError


class InvalidEventQuery(DomainError):
    type = "invalid-security-event-query"
    title = "The security-event query is not valid"
    category = Category.INVALID
