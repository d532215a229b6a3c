"""Domain refusals and invariant checks shared by every module.

A `DomainError` is a refusal the caller can act on: it has a stable `type` slug, a title, a category
and a human detail, and carries no HTTP status (the web layer maps categories to statuses). A broken
invariant is a bug, never a refusal: `invariant()` raises `InvariantViolation`, which is never mapped
to a client error.
"""

from enum import StrEnum
from typing import Any, ClassVar


class Category(StrEnum):
    INVALID = "invalid"  # the request can never succeed as written
    NOT_FOUND = "not_found"  # it names something that does not exist
    CONFLICT = "conflict"  # it clashes with the current state (a retry may succeed later)
    REFUSED = "refused"  # a business rule says no
    PRECONDITION = "precondition"  # something the request must carry is missing
    UNAUTHENTICATED = "unauthenticated"  # no valid credentials came with the request
    FORBIDDEN = "forbidden"  # the caller's role may not do this
    TOO_MANY = "too_many"  # the caller must slow down
    UNAVAILABLE = "unavailable"  # an external party needed for the answer did not answer


class DomainError(Exception):
    """Base of every named refusal."""

    type: ClassVar[str] = "domain-error"
    title: ClassVar[str] = "The request was refused"
    category: ClassVar[Category] = Category.REFUSED
    registry: ClassVar["dict[str, type[DomainError]]"] = {}

    # A refusal that is itself a security event (a denial, an anti-fraud match) carries the event;
    # the entrypoint records it in a transaction of its own, since the refused work rolls back.
    security_event: dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context

    def with_security_event(self, kind: str, *, actor: str | None, subject: str | None = None,
                            outcome: str = "denied", **details: Any) -> "DomainError":
        self.security_event = {"kind": kind, "actor": actor, "subject": subject, "outcome": outcome, "details": details}
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" in cls.__dict__:
            if cls.type in DomainError.registry:
                raise TypeError(f"problem type {cls.type!r} is named twice")
            DomainError.registry[cls.type] = cls


class InvariantViolation(Exception):
    """Something that must never happen did: a bug, not a refusal."""


def invariant(condition: bool, message: str) -> None:
    """Raise `InvariantViolation` unless `condition` holds (unlike `assert`, never optimised away)."""
    if not condition:
        raise InvariantViolation(message)


class IdempotencyKeyMissing(DomainError):
    type = "idempotency-key-missing"
    title = "An Idempotency-Key header is required"
    category = Category.PRECONDITION


class IdempotencyKeyInvalid(DomainError):
    type = "idempotency-key-invalid"
    title = "The Idempotency-Key header is malformed"
    category = Category.INVALID


class IdempotencyKeyReusedWithDifferentRequest(DomainError):
    type = "idempotency-key-reused"
    title = "This Idempotency-Key was used for a different request"
    category = Category.INVALID


class ExternalPartyUnavailable(DomainError):
    """An external party (anti-fraud centre, identification centre, bank, ...) did not answer in time
    or answered nonsense. Operations that need its answer are refused, never waved through."""

    type = "external-party-unavailable"
    title = "An external party the operation depends on is unavailable"
    category = Category.UNAVAILABLE
