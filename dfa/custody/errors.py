"""Refusals of custody."""

from dfa.platform.errors import Category, DomainError, ExternalPartyUnavailable


class TokenNotFound(DomainError):
    type = "token-not-found"
    title = "The emission has no token contract on this chain"
    category = Category.NOT_FOUND


class SigningRefused(DomainError):
    """Only the platform's own services sign, each for a purpose it is allowed (a bug otherwise)."""

    type = "signing-refused"
    title = "The signing service refused the request"
    category = Category.FORBIDDEN


class ChainUnavailable(ExternalPartyUnavailable):
    type = "chain-unavailable"
    title = "The chain node does not answer"


class HandoverInvalid(DomainError):
    type = "handover-invalid"
    title = "The handover package failed verification"
    category = Category.INVALID
