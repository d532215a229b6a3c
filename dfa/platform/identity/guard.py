"""Authentication of requests and the route guard behind `access.allow`."""

import logging
from collections.abc import Awaitable, Callable, Sequence

import fastapi.routing
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from dfa.platform.access import Principal, Role
from dfa.platform.database import Database
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.errors import CsrfTokenInvalid, Forbidden, NotAuthenticated
from dfa.platform.identity.service import credentials, users
from dfa.platform.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "dfa_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
API_KEY_HEADER = "X-API-Key"
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_YET = object()


async def authenticate(request: Request) -> Principal | None:
    """The caller named by the request's credentials, or None when it carries none.

    Credentials are tried in one order: an `Authorization: Bearer` access token, an API key, the
    session cookie. A presented token or key that is not valid is refused (401), never ignored in
    favour of another credential. An expired session cookie is as good as none.
    """
    cached = getattr(request.state, "authenticated", _NOT_YET)
    if cached is not _NOT_YET:
        return cached
    session = request.state.session
    keys: Keys = request.app.state.keys
    principal: Principal | None = None
    authorization = request.headers.get("authorization")
    api_key = request.headers.get(API_KEY_HEADER)
    cookie = request.cookies.get(SESSION_COOKIE)
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("use `Authorization: Bearer <access token>`")
        principal = await credentials.resolve_access_token(session, token=token.strip(), keys=keys)
        if principal is None:
            raise NotAuthenticated("the access token is invalid, expired or its credential revoked")
    elif api_key is not None:
        principal = await credentials.resolve_api_key(session, key=api_key.strip())
        if principal is None:
            raise NotAuthenticated("the API key is invalid, expired or revoked")
    elif cookie is not None:
        resolved = await users.resolve_session(session, token=cookie, settings=request.app.state.settings)
        if resolved is not None:
            principal, stale = resolved
            request.state.session_token = cookie
            if stale:
                database: Database = request.app.state.database
                async with database.unit_of_work() as touch:
                    await users.touch_session(touch, session_id=principal.session_id)
    request.state.authenticated = principal
    return principal


async def _offered_csrf_token(request: Request) -> str | None:
    offered = request.headers.get(CSRF_HEADER)
    if offered is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FORM_FIELD)
        offered = value if isinstance(value, str) else None
    return offered


def guard(roles: frozenset[Role]) -> Callable[[Request], Awaitable[Principal]]:
    async def allowed_principal(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal is None:
            raise NotAuthenticated("sign in, or present an access token or an API key")
        if principal.credential == "session" and request.method in _MUTATING:
            keys: Keys = request.app.state.keys
            if not keys.csrf_matches(request.state.session_token, await _offered_csrf_token(request)):
                raise CsrfTokenInvalid(
                    f"a request made with the session cookie must carry the session's CSRF token in {CSRF_HEADER}"
                ).with_security_event("csrf.rejected", actor=principal.login, subject=request.url.path)
        if not principal.roles & roles:
            raise Forbidden(
                f"this needs one of the roles {', '.join(sorted(roles))}"
            ).with_security_event(
                "access.denied", actor=principal.login, subject=f"{request.method} {request.url.path}",
                roles=sorted(principal.roles),
            )
        request.state.principal = principal
        return principal

    allowed_principal.admitted_roles = roles  # read by `document_security`
    return allowed_principal


SECURITY_SCHEMES = {
    "accessToken": {
        "type": "oauth2",
        "description": "Issuers' systems: a client-credentials access token, sent as `Authorization: Bearer`.",
        "flows": {"clientCredentials": {"tokenUrl": "/v1/oauth/token", "scopes": {}}},
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER, "description": "Issuers' systems: an API key."},
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": f"People: the cookie set by sign-in; changes also carry the {CSRF_HEADER} header.",
    },
}


def document_security(openapi: dict, routes: Sequence[BaseRoute] = ()) -> dict:
    """Name the credentials in the OpenAPI description, so clients and `/docs` know how to sign in; the
    operations of `routes` that no guard protects are described as needing none."""
    openapi.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    openapi["security"] = [{name: []} for name in SECURITY_SCHEMES]
    # Included routers are mounted as branches; walk them to their routes where FastAPI does so.
    flattened = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in flattened(routes) if flattened else routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and not _is_guarded(original.dependant):
            for method in original.methods:
                operation = openapi.get("paths", {}).get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    operation["security"] = []
    return openapi


def _is_guarded(dependant: Dependant) -> bool:
    return hasattr(dependant.call, "admitted_roles") or any(map(_is_guarded, dependant.dependencies))


def set_session_cookie(response: Response, signed_in: users.SignedIn, settings: Settings) -> None:
    """Hand the browser its new session: HTTP only, same site only, for the session's absolute lifetime."""
    response.set_cookie(
        SESSION_COOKIE,
        signed_in.token,
        max_age=settings.session_absolute_timeout_s,
        httponly=True,
        secure=settings.session_cookie_secure,
        samesite="strict",
        path="/",
    )
