"""The compliance pages: daily reconciliation reports, open breaches and each emission's coverage history,
rendered on the server, with the forms compliance officers acknowledge breaches and sign reports off with.

Compliance officers, operator admins and auditors read; only compliance officers act. Pages call the
reconciliation services exactly as its API does. Forms post with the session's CSRF token and answer with a
redirect back to the page (post/redirect/get); a refusal re-renders the page with the reason next to the
field and changes nothing.
"""

import base64
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.cabinet.pages import FormState, PageRoute, attempt, page, page_of
from dfa.ledger import service as ledger
from dfa.platform.access import Principal, Role, allow
from dfa.platform.identity.service import parties
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX
from dfa.platform.web import STATUS_OF_CATEGORY, SessionDep, SettingsDep
from dfa.reconciliation.exports import coverage_chart_svg
from dfa.reconciliation.models import Breach
from dfa.reconciliation.service import breaches, reports

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Reader = Annotated[Principal, Depends(allow(Role.COMPLIANCE_OFFICER, Role.OPERATOR_ADMIN, Role.AUDITOR))]
Officer = Annotated[Principal, Depends(allow(Role.COMPLIANCE_OFFICER))]
ReportIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
BreachIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
EmissionPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN)]
Before = Annotated[int | None, Query(ge=1, le=BIGINT_MAX)]
Comment = Annotated[str, Form()]


@dataclass(frozen=True)
class BreachRow:
    """A breach as the pages show it: with its emission's code and its issuer's name."""

    breach: Breach
    emission: str | None
    issuer: str | None


async def _breach_rows(session: AsyncSession, found: list[Breach]) -> list[BreachRow]:
    codes = await ledger.asset_codes(session, {b.asset_id for b in found if b.asset_id})
    issuers: dict[uuid.UUID, str] = {}
    for party_id in {b.issuer_party_id for b in found if b.issuer_party_id is not None}:
        issuers[party_id] = (await parties.get_party(session, party_id)).name
    return [BreachRow(b, codes.get(b.asset_id), issuers.get(b.issuer_party_id)) for b in found]


# Pages


@router.get("/compliance/reports")
async def report_list(
    request: Request, principal: Reader, session: SessionDep, settings: SettingsDep, before: Before = None
) -> HTMLResponse:
    """Reconciliation reports, newest first, a page at a time."""
    limit = settings.page_size(None)
    found = await reports.list_reports(session, before=before, limit=limit + 1)
    listings, older = page_of(found, limit, lambda listing: listing.report.id)
    return page(request, "compliance/reports.html", principal=principal, listings=listings, before=before, older=older)


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
    return page(
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
    found, older = page_of(found, limit, lambda breach: breach.id)
    return page(
        request, "compliance/breaches.html", principal=principal, status_code=status_code,
        breaches=await _breach_rows(session, found), before=before, older=older, refused=refused,
    )


@router.get("/compliance/emissions/{asset_code}/coverage")
async def coverage_page(
    request: Request, asset_code: EmissionPath, principal: Reader, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The emission's coverage day by day, as a chart and a table (REQ-30: results are kept as history)."""
    history = await breaches.coverage_history(session, asset_code=asset_code, limit=settings.page_size_max)
    return page(
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
    refusal = await attempt(
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
    refusal = await attempt(
        session, lambda: reports.sign_off(session, report_id=report_id, comment=comment, actor=principal.login)
    )
    if refusal is None:
        return RedirectResponse(f"/compliance/reports/{report_id}#sign-off", status_code=status.HTTP_303_SEE_OTHER)
    return await _report_page(
        request, session, report_id=report_id, principal=principal,
        refused=FormState("sign-off", comment, refusal.detail), status_code=STATUS_OF_CATEGORY[refusal.category],
    )
