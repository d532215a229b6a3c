"""The compliance pages: daily reconciliation reports, open breaches and each emission's coverage history,
rendered on the server, with the forms compliance officers acknowledge breaches and sign reports off with.

Compliance officers, operator admins and auditors read; only compliance officers act. Pages call the
reconciliation services exactly as its API does. Forms post with the session's CSRF token and answer with a
redirect back to the page (post/redirect/get); a refusal re-renders the page with the reason next to the
field and changes nothing.
"""

import base64
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger
from dfa.platform.access import Principal, Role, allow
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import Category, DomainError
from dfa.platform.identity.guard import CSRF_FORM_FIELD
from dfa.platform.identity.service import parties
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX
from dfa.platform.web import (
    MUTATING_METHODS,
    STATUS_OF_CATEGORY,
    SessionDep,
    SettingsDep,
    domain_error_handler,
    validation_error_handler,
)
from dfa.reconciliation.exports import coverage_chart_svg, format_kzt, format_units
from dfa.reconciliation.models import Breach
from dfa.reconciliation.service import breaches, reports

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
NAV = (("Reports", "/compliance/reports"), ("Open breaches", "/compliance/breaches"))

templates = Environment(
    loader=PackageLoader("dfa.cabinet", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _instant(moment: datetime, zone: str) -> str:
    """A moment as the operator's people read it: in the operator's time zone, to the second, with the offset."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %z")


templates.filters.update(
    kzt=format_kzt, units=format_units, instant=_instant, label=lambda status: status.replace("_", " ")
)


class PageRoute(APIRoute):
    """A page in one database transaction, like an API route, but a form carries no Idempotency-Key: a browser
    cannot send one, and a resubmitted form is refused by name (acknowledged or signed off already). Every
    answer, refusals included, carries the pages' security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            database: Database = request.app.state.database
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
                response = await domain_error_handler(request, refusal)
            except RequestValidationError as invalid:
                response = await validation_error_handler(request, invalid)
            for name, value in PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handle


router = APIRouter(route_class=PageRoute, include_in_schema=False)

Reader = Annotated[Principal, Depends(allow(Role.COMPLIANCE_OFFICER, Role.OPERATOR_ADMIN, Role.AUDITOR))]
Officer = Annotated[Principal, Depends(allow(Role.COMPLIANCE_OFFICER))]
ReportIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
BreachIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
EmissionPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN)]
Before = Annotated[int | None, Query(ge=1, le=BIGINT_MAX)]
Comment = Annotated[str, Form()]
T = TypeVar("T")


@dataclass(frozen=True)
class BreachRow:
    """A breach as the pages show it: with its emission's code and its issuer's name."""

    breach: Breach
    emission: str | None
    issuer: str | None


@dataclass(frozen=True)
class FormState:
    """What a refused form said and why: the entered text goes back into its field, the reason next to it.
    `field` names the form: "sign-off", or "breach-<id>"."""

    field: str
    entered: str
    error: str


def _page(
    request: Request, template: str, *, principal: Principal, status_code: int = status.HTTP_200_OK, **context: Any
) -> HTMLResponse:
    settings = request.app.state.settings
    html = templates.get_template(template).render(
        operator={"name": settings.operator_name, "bin": settings.operator_bin,
                  "nbk_registration_number": settings.operator_nbk_registration_number},
        nav=NAV, path=request.url.path, stylesheet=STYLESHEET_URL, zone=settings.timezone, principal=principal,
        may_act=Role.COMPLIANCE_OFFICER in principal.roles, csrf_field=CSRF_FORM_FIELD,
        csrf_token=_csrf_token(request, principal), **context,
    )
    return HTMLResponse(html, status_code=status_code)


def _csrf_token(request: Request, principal: Principal) -> str | None:
    """The token the page's forms carry back: derived from the session cookie, so only cookie sessions have one
    (callers with an access token or API key need none)."""
    if principal.credential != "session":
        return None
    return request.app.state.keys.csrf_token(request.state.session_token)


def _page_of(found: list[T], limit: int, id_of: Callable[[T], int]) -> tuple[list[T], int | None]:
    """The first `limit` items of `found` (fetched one beyond), and the `before` of the next page if there is one."""
    shown = found[:limit]
    return shown, (id_of(shown[-1]) if len(found) > limit else None)


async def _breach_rows(session: AsyncSession, found: list[Breach]) -> list[BreachRow]:
    codes = await ledger.asset_codes(session, {b.asset_id for b in found if b.asset_id})
    issuers: dict[uuid.UUID, str] = {}
    for party_id in {b.issuer_party_id for b in found if b.issuer_party_id is not None}:
        issuers[party_id] = (await parties.get_party(session, party_id)).name
    return [BreachRow(b, codes.get(b.asset_id), issuers.get(b.issuer_party_id)) for b in found]


async def _attempt(session: AsyncSession, change: Callable[[], Awaitable[object]]) -> DomainError | None:
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


# Pages


@router.get("/static/cabinet.css")
async def stylesheet() -> FileResponse:
    """The pages' stylesheet; public, since the sign-in page wears it too."""
    return FileResponse(STYLESHEET, media_type="text/css", headers={"Cache-Control": STYLESHEET_CACHE})


@router.get("/compliance/reports")
async def report_list(
    request: Request, principal: Reader, session: SessionDep, settings: SettingsDep, before: Before = None
) -> HTMLResponse:
    """Reconciliation reports, newest first, a page at a time."""
    limit = settings.page_size(None)
    found = await reports.list_reports(session, before=before, limit=limit + 1)
    listings, older = _page_of(found, limit, lambda listing: listing.report.id)
    return _page(request, "compliance/reports.html", principal=principal, listings=listings, before=before, older=older)


@router.get("/compliance/reports/{report_id}")
async def report_page(request: Request, report_id: ReportIdPath, principal: Reader, session: SessionDep) -> HTMLResponse:
    """One report: what it checked and found, its signature and sign-off, its breaches as they stand now."""
    return await _report_page(request, session, report_id=report_id, principal=principal)


async def _report_page(
    request: Request, session: AsyncSession, *, report_id: int, principal: Principal, refused: FormState | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    settings = request.app.state.settings
    report = await reports.get_report(session, report_id)
    found = await breaches.list_breaches(session, status=None, report_id=report.id, limit=settings.page_size_max)
    return _page(
        request, "compliance/report.html", principal=principal, status_code=status_code, report=report,
        document=reports.document_of(report), sign_off=await reports.sign_off_of(session, report.id),
        content_sha256=report.content_sha256.hex(), signature_b64=base64.b64encode(report.signature).decode(),
        breaches=await _breach_rows(session, found), refused=refused,
    )


@router.get("/compliance/breaches")
async def breach_list(
    request: Request, principal: Reader, session: SessionDep, before: Before = None
) -> HTMLResponse:
    """Open breaches, newest first, a page at a time."""
    return await _breaches_page(request, session, principal=principal, before=before)


async def _breaches_page(
    request: Request, session: AsyncSession, *, principal: Principal, before: int | None,
    refused: FormState | None = None, status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    limit = request.app.state.settings.page_size(None)
    found = await breaches.list_breaches(session, status="open", before=before, limit=limit + 1)
    found, older = _page_of(found, limit, lambda breach: breach.id)
    return _page(
        request, "compliance/breaches.html", principal=principal, status_code=status_code,
        breaches=await _breach_rows(session, found), before=before, older=older, refused=refused,
    )


@router.get("/compliance/emissions/{asset_code}/coverage")
async def coverage_page(
    request: Request, asset_code: EmissionPath, principal: Reader, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The emission's coverage day by day, as a chart and a table (REQ-30: results are kept as history)."""
    history = await breaches.coverage_history(session, asset_code=asset_code, limit=settings.page_size_max)
    return _page(
        request, "compliance/coverage.html", principal=principal, asset_code=asset_code, history=history,
        chart=Markup(coverage_chart_svg(history)),  # built from escaped text only
    )


# Forms


@router.post("/compliance/breaches/{breach_id}/acknowledge")
async def acknowledge_breach(
    request: Request, breach_id: BreachIdPath, principal: Officer, session: SessionDep, comment: Comment = "",
    from_report: Annotated[int | None, Form(ge=1, le=BIGINT_MAX)] = None,
) -> Response:
    """Acknowledge a breach, then back to the page the form was on: the report it came from, or the open breaches."""
    refusal = await _attempt(
        session, lambda: breaches.acknowledge(session, breach_id=breach_id, comment=comment, actor=principal.login)
    )
    if refusal is None:
        back = f"/compliance/reports/{from_report}" if from_report else "/compliance/breaches"
        return RedirectResponse(f"{back}#breach-{breach_id}", status_code=status.HTTP_303_SEE_OTHER)
    refused = FormState(f"breach-{breach_id}", comment, refusal.detail)
    status_code = STATUS_OF_CATEGORY[refusal.category]
    if from_report:
        return await _report_page(
            request, session, report_id=from_report, principal=principal, refused=refused, status_code=status_code
        )
    return await _breaches_page(
        request, session, principal=principal, before=None, refused=refused, status_code=status_code
    )


@router.post("/compliance/reports/{report_id}/sign-off")
async def sign_off_report(
    request: Request, report_id: ReportIdPath, principal: Officer, session: SessionDep, comment: Comment = ""
) -> Response:
    """Sign the report off, then back to it."""
    refusal = await _attempt(
        session, lambda: reports.sign_off(session, report_id=report_id, comment=comment, actor=principal.login)
    )
    if refusal is None:
        return RedirectResponse(f"/compliance/reports/{report_id}#sign-off", status_code=status.HTTP_303_SEE_OTHER)
    return await _report_page(
        request, session, report_id=report_id, principal=principal,
        refused=FormState("sign-off", comment, refusal.detail), status_code=STATUS_OF_CATEGORY[refusal.category],
    )
