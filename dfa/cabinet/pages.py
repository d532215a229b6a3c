"""What every cabinet page shares: the route class that runs a page in one transaction and in the visitor's
language, the templates, the shell's context (operator, navigation by role, language switch, CSRF token),
the security headers, and the helpers forms use to show a refusal next to its field.

Pages call the same services as the API. A browser (one that accepts text/html) that is not signed in is
sent to the sign-in page and comes back afterwards; API clients get the RFC 9457 problem as from the API.
"""

import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet import i18n
from dfa.cabinet.i18n import N_
from dfa.platform.access import Principal, Role
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import Category, DomainError
from dfa.platform.identity.errors import CsrfTokenInvalid
from dfa.platform.identity.guard import CSRF_FORM_FIELD
from dfa.platform.web import MUTATING_METHODS, STATUS_OF_CATEGORY, domain_error_handler, validation_error_handler

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = FilePath(__file__).parent / "static"
STYLESHEET = STATIC / "cabinet.css"
# The stylesheet is cached for a year; its address changes with its content, so a new release is fetched.
STYLESHEET_URL = f"/static/cabinet.css?v={hashlib.sha256(STYLESHEET.read_bytes()).hexdigest()[:12]}"
STYLESHEET_CACHE = "public, max-age=31536000, immutable"
SIGN_IN_PATH = "/sign-in"

STAFF_READERS = frozenset({Role.COMPLIANCE_OFFICER, Role.OPERATOR_ADMIN, Role.AUDITOR})
INVESTORS = frozenset({Role.INVESTOR})
ISSUERS = frozenset({Role.ISSUER})
EVERYONE = frozenset(Role)


@dataclass(frozen=True)
class NavItem:
    label: str  # English, marked with N_; translated when the page renders
    href: str
    roles: frozenset[Role]


# The cabinet's sections, each shown to the roles that may open it.
NAV = (
    NavItem(N_("Portfolio"), "/portfolio", INVESTORS),
    NavItem(N_("Catalogue"), "/catalogue", EVERYONE),
    NavItem(N_("Orders"), "/orders", INVESTORS),
    NavItem(N_("Trades"), "/trades", INVESTORS),
    NavItem(N_("Money"), "/money", INVESTORS),
    NavItem(N_("Statements"), "/statements", INVESTORS),
    NavItem(N_("Applications"), "/issuer/applications", ISSUERS),
    NavItem(N_("Emissions"), "/issuer/emissions", ISSUERS),
    NavItem(N_("Reports"), "/compliance/reports", STAFF_READERS),
    NavItem(N_("Open breaches"), "/compliance/breaches", STAFF_READERS),
    NavItem(N_("Security events"), "/compliance/security-events", frozenset({Role.COMPLIANCE_OFFICER, Role.AUDITOR})),
    NavItem(N_("Bank statement lines"), "/admin/bank-lines", STAFF_READERS),
    NavItem(N_("Users"), "/admin/users", frozenset({Role.OPERATOR_ADMIN, Role.AUDITOR})),
    NavItem(N_("Calendar"), "/admin/calendar", STAFF_READERS),
    NavItem(N_("Account"), "/account", EVERYONE),
)

templates = Environment(
    loader=PackageLoader("dfa.cabinet", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
templates.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
templates.filters.update(
    kzt=i18n.kzt, tenge=i18n.tenge, units=i18n.units, day=i18n.day, instant=i18n.instant,
    label=i18n.label,
)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _language_of(request: Request) -> tuple[i18n.Language, bool]:
    """The request's language, and whether it was chosen on this request (the switch) and so is to be remembered."""
    chosen = request.query_params.get("lang")
    language = i18n.negotiate(
        chosen=chosen or request.cookies.get(i18n.LANGUAGE_COOKIE),
        accept_language=request.headers.get("accept-language"),
        default=request.app.state.settings.cabinet_default_language,
    )
    return language, chosen == language.code


class PageRoute(APIRoute):
    """A page in one database transaction, like an API route, and in the visitor's language. A form carries no
    Idempotency-Key (a browser cannot send one): a resubmitted form is refused by name instead. Every answer,
    refusals included, carries the pages' security headers; a language chosen with the switch is remembered."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            database: Database = request.app.state.database
            language, switched = _language_of(request)
            with i18n.speaking(language):
                try:
                    if request.method in MUTATING_METHODS:
                        async with database.unit_of_work() as session:
                            request.state.session = session
                            response = await handler(request)
                    else:
                        async with database.read() as session:
                            request.state.session = session
                            response = await handler(request)
                except DomainError as refusal:
                    if refusal.security_event is not None:
                        await audit.record_in_own_transaction(database, **refusal.security_event)
                    response = await _refusal_page(request, refusal)
                except RequestValidationError as invalid:
                    response = await validation_error_handler(request, invalid)
            for name, value in PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
            if switched:
                response.set_cookie(
                    i18n.LANGUAGE_COOKIE, language.code, max_age=i18n.LANGUAGE_COOKIE_MAX_AGE_S, path="/",
                    secure=request.app.state.settings.session_cookie_secure, httponly=True, samesite="lax",
                )
            return response

        return handle


async def _refusal_page(request: Request, refusal: DomainError) -> Response:
    """A browser that must sign in goes to the sign-in page and comes back; anything else refused is answered as
    the API answers it (a browser gets it as a page)."""
    if refusal.category is Category.UNAUTHENTICATED and request.method == "GET" and wants_html(request):
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{SIGN_IN_PATH}?{urlencode({'next': back})}", status_code=status.HTTP_303_SEE_OTHER)
    if wants_html(request):
        return page(request, "problem.html", principal=None, status_code=STATUS_OF_CATEGORY[refusal.category],
                    refusal=refusal)
    return await domain_error_handler(request, refusal)


def page(
    request: Request, template: str, *, principal: Principal | None, status_code: int = status.HTTP_200_OK,
    **context: Any,
) -> HTMLResponse:
    """Render `template` inside the shell, in the request's language."""
    settings = request.app.state.settings
    language = i18n.current()
    roles = principal.roles if principal is not None else frozenset()
    html = templates.get_template(template).render(
        operator={"name": settings.operator_name, "bin": settings.operator_bin,
                  "nbk_registration_number": settings.operator_nbk_registration_number},
        nav=[item for item in NAV if item.roles & roles], path=request.url.path, stylesheet=STYLESHEET_URL,
        zone=settings.timezone, principal=principal, may_act=Role.COMPLIANCE_OFFICER in roles,
        csrf_field=CSRF_FORM_FIELD, csrf_token=csrf_token(request, principal), language=language,
        languages=[(other, _switch_link(request, other.code)) for other in i18n.LANGUAGES.values()],
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def _switch_link(request: Request, code: str) -> str:
    query = [(name, value) for name, value in request.query_params.multi_items() if name != "lang"]
    return quote(request.url.path) + "?" + urlencode([*query, ("lang", code)])


def refuse_foreign_origin(request: Request) -> None:
    """A browser posting a form names the page's origin. A public form (sign-in, password recovery) has no
    session to carry a CSRF token, so one posted from another site is refused by its Origin: nobody can sign
    a visitor in to an account of theirs, or drive a visitor's recovery from elsewhere."""
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        raise CsrfTokenInvalid("the form was posted from another site").with_security_event(
            "csrf.rejected", actor=None, subject=request.url.path, origin=origin[:200]
        )


def csrf_token(request: Request, principal: Principal | None) -> str | None:
    """The token the page's forms carry back: derived from the session cookie, so only cookie sessions have one
    (callers with an access token or API key need none)."""
    if principal is None or principal.credential != "session":
        return None
    return request.app.state.keys.csrf_token(request.state.session_token)


@dataclass(frozen=True)
class FormState:
    """What a refused form said and why: the entered text goes back into its field, the reason next to it.
    `field` names the form (and the field the reason belongs to)."""

    field: str
    entered: str
    error: str


T = TypeVar("T")
K = TypeVar("K")  # what a page is keyed by: an id, a time


def page_of(found: list[T], limit: int, id_of: Callable[[T], K]) -> tuple[list[T], K | None]:
    """The first `limit` items of `found` (fetched one beyond), and the `before` of the next page if there is one."""
    shown = found[:limit]
    return shown, (id_of(shown[-1]) if len(found) > limit else None)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def keep_security_event(session: AsyncSession, refusal: DomainError) -> None:
    """A refusal a page answers rather than raises commits with the page: the security event it is (an anti-fraud
    match, a failed sign-in) is recorded in that transaction, as the API records it."""
    if refusal.security_event is not None:
        await audit.record(session, **refusal.security_event)


async def attempt(session: AsyncSession, change: Callable[[], Awaitable[object]]) -> DomainError | None:
    """Make `change` in a savepoint. A refusal undoes it and is returned, for the page to show next to the field,
    its security event kept; something that does not exist is no field's fault, and its refusal goes on to the
    caller."""
    try:
        async with session.begin_nested():
            await change()
    except DomainError as refusal:
        if refusal.category is Category.NOT_FOUND:
            raise
        await keep_security_event(session, refusal)
        return refusal
    return None
