"""Who is calling. The identity module fills this in; routes already declare what they need."""

from dataclasses import dataclass

from fastapi import Request

from dfa.platform.web import ANONYMOUS_PRINCIPAL


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str]


async def operator_staff(request: Request) -> Principal:
    """The operator staff member making the request.

    Until users, sessions and API credentials exist, the platform serves staff routes on the
    loopback interface only (the default listen address) and every caller is the same principal.
    """
    principal = Principal(ANONYMOUS_PRINCIPAL, frozenset({"operator_admin"}))
    request.state.principal = principal
    return principal
