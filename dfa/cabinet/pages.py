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
from dfa.cabinet.i18n import gettext as _
from dfa.platform.access import Principal, Role
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import Category, DomainError
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
    label: str  # English; translated when the page renders
    href: str
    roles: frozenset[Role]


# The cabinet's sections, each shown to the roles that may open it.
NAV = (
    NavItem("Portfolio", "/portfolio", INVESTORS),
    NavItem("Catalogue", "/catalogue", EVERYONE),
    NavItem("Orders", "/orders", INVESTORS),
    NavItem("Trades", "/trades", INVESTORS),
    NavItem("Money", "/money", INVESTORS),
    NavItem("Statements", "/statements", INVESTORS),
    NavItem("Applications", "/issuer/applications", ISSUERS),
    NavItem("Emissions", "/issuer/emissions", ISSUERS),
    NavItem("Reports", "/compliance/reports", STAFF_READERS),
    NavItem("Open breaches", "/compliance/breaches", STAFF_READERS),
    NavItem("Security events", "/compliance/security-events", frozenset({Role.COMPLIANCE_OFFICER, Role.AUDITOR})),
    NavItem("Bank statement lines", "/admin/bank-lines", frozenset({Role.OPERATOR_ADMIN})),
    NavItem("Users", "/admin/users", frozenset({Role.OPERATOR_ADMIN})),
    NavItem("Calendar", "/admin/calendar", frozenset({Role.OPERATOR_ADMIN})),
    NavItem("Account", "/account", EVERYONE),
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
    label=lambda status: _(status.replace("_", " ")),
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


def page_of(found: list[T], limit: int, id_of: Callable[[T], int]) -> tuple[list[T], int | None]:
    """The first `limit` items of `found` (fetched one beyond), and the `before` of the next page if there is one."""
    shown = found[:limit]
    return shown, (id_of(shown[-1]) if len(found) > limit else None)


async def attempt(session: AsyncSession, change: Callable[[], Awaitable[object]]) -> DomainError | None:
    """Make `change` in a savepoint. A refusal undoes it and is returned, for the page to show next to the field;
    something that does not exist is no field's fault, and its refusal goes on to the caller."""
    try:
        async with session.begin_nested():
            await change()
    except DomainError as refusal:
        if refusal.category is Category.NOT_FOUND:
            raise
        return refusal
    return None
