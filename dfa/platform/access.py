"""Who is calling and what they may do: principals, roles and the route guards.

Every route declares the roles it serves with `allow(...)`. The guard authenticates the request (a
cabinet session cookie, an OAuth2 access token or an API key), answers 401 when nothing valid came,
403 when the caller's role is not among those allowed (and records the denial), and hands the route
a `Principal`. Object-level checks (is this account the caller's?) are the services' job: they take
the principal's party and answer "not found" for another owner's objects, so ids never leak.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request


class Role(StrEnum):
    INVESTOR = "investor"
    ISSUER = "issuer"
    COMPLIANCE_OFFICER = "compliance_officer"
    OPERATOR_ADMIN = "operator_admin"
    AUDITOR = "auditor"


STAFF_ROLES = frozenset({Role.COMPLIANCE_OFFICER, Role.OPERATOR_ADMIN, Role.AUDITOR})
ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `party_id` is the person or legal entity the user acts for (an investor's own party, an issuer's
    legal entity); staff act for the operator and have none.
    """

    user_id: uuid.UUID
    login: str
    roles: frozenset[Role]
    party_id: uuid.UUID | None
    credential: str  # "session", "access_token" or "api_key"
    session_id: uuid.UUID | None = None

    @property
    def key(self) -> str:
        """Scope of the caller's idempotency keys and rate limits."""
        return str(self.user_id)

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    def party_scope(self, requested: uuid.UUID | None) -> uuid.UUID | None:
        """The party a listing or an action is about: staff name any party (or none: all of them); a
        client only itself, and another party it names is "not found" (raises PartyNotFound)."""
        if self.is_staff:
            return requested
        if requested is not None and requested != self.party_id:
            from dfa.platform.identity.errors import PartyNotFound

            raise PartyNotFound(f"no party {requested}")
        return self.party_id

    def owner_filter(self) -> uuid.UUID | None:
        """The party whose objects this caller may see, or None for all (staff)."""
        return None if self.is_staff else self.party_id


def allow(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A route dependency admitting authenticated callers holding one of `roles`."""
    from dfa.platform.identity.guard import guard

    return guard(frozenset(roles))


def current_principal(request: Request) -> Principal | None:
    """The principal `allow` admitted for this request, if any."""
    return getattr(request.state, "principal", None)
