"""The reconciliation API: runs on demand, signed reports and their exports, breaches, sign-off, coverage
history, and holders' inclusion proofs. Staff read; compliance officers (and admins, for runs) act; every
holder may fetch the proof of its own position and the published roots."""

import base64
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.service.handover import key_fingerprint
from dfa.ledger import service as ledger
from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.audit import service as audit
from dfa.platform.identity.service.parties import local_today
from dfa.platform.types import ASSET_CODE_PATTERN, BIGINT_MAX, Limit
from dfa.platform.web import IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute, app_state
from dfa.reconciliation import exports, schemas
from dfa.reconciliation.jobs import Reconciliation
from dfa.reconciliation.models import Breach, Report, SignOff
from dfa.reconciliation.service import breaches, proofs, reports, runs

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"], route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
Staff = Annotated[Principal, Depends(allow(*STAFF_ROLES))]
Compliance = Annotated[Principal, Depends(allow(Role.COMPLIANCE_OFFICER))]
Supervisor = Annotated[Principal, Depends(allow(Role.COMPLIANCE_OFFICER, Role.OPERATOR_ADMIN))]
ReconciliationDep = Annotated[Reconciliation, Depends(app_state("reconciliation"))]
ReportIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The report's id.")]
BreachIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The breach's id.")]
EmissionPath = Annotated[str, Path(pattern=ASSET_CODE_PATTERN, description="The emission's registration number.")]
Before = Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="Page: items with a smaller id.")]


def _summary(report: Report, sign_off: SignOff | None) -> dict:
    return {
        "id": report.id, "business_date": report.business_date, "version": report.version, "as_of": report.as_of,
        "late": report.late, "emissions": report.emissions, "breaches": report.breaches,
        "content_sha256": report.content_sha256.hex(),
        "signed_off_by": sign_off.signed_by if sign_off else None,
        "signed_off_at": sign_off.signed_at if sign_off else None,
    }


async def _breaches_out(session: AsyncSession, found: list[Breach]) -> list[schemas.BreachOut]:
    codes = await ledger.asset_codes(session, {b.asset_id for b in found if b.asset_id})
    return [
        schemas.BreachOut.model_validate({
            **{name: getattr(b, name) for name in schemas.BreachOut.model_fields if name != "emission"},
            "emission": codes.get(b.asset_id),
        })
        for b in found
    ]


# --- runs -----------------------------------------------------------------------------------------------------


@router.post("/runs", status_code=status.HTTP_201_CREATED, response_model=schemas.RunOut)
async def run_now(
    body: schemas.RunRequest, principal: Supervisor, session: SessionDep, settings: SettingsDep,
    reconciliation: ReconciliationDep, _key: IdempotencyKeyHeader,
):
    """Reconcile a day now (today by default). Without `force`, a day that has a report is not reconciled
    again (the run is recorded as skipped); with it, the new report is the day's next version. The run
    waits for another instance's run to end."""
    day = body.business_date or local_today(settings)
    # The run is recorded, and its report written, in transactions of its own: nothing is written in
    # this request's, which would hold the security-event log's head while the run needs it.
    result = await reconciliation.run(day, trigger="api", requested_by=principal.login, force=body.force)
    return await _run_out(session, result.run.id)


async def _run_out(session: AsyncSession, run_id: int) -> schemas.RunOut:
    run = await runs.get_run(session, run_id)
    return schemas.RunOut.model_validate(run, from_attributes=True)


@router.get("/runs", response_model=list[schemas.RunOut])
async def list_runs(principal: Staff, session: SessionDep, settings: SettingsDep, before: Before = None,
                    limit: Limit = None):
    """Every run, newest first: when it started and ended and how."""
    found = await runs.list_runs(session, before=before, limit=settings.page_size(limit))
    return [schemas.RunOut.model_validate(run, from_attributes=True) for run in found]


# --- reports --------------------------------------------------------------------------------------------------


@router.get("/reports", response_model=list[schemas.ReportSummary])
async def list_reports(principal: Staff, session: SessionDep, settings: SettingsDep, before: Before = None,
                       limit: Limit = None):
    """Reports newest first."""
    listed = await reports.list_reports(session, before=before, limit=settings.page_size(limit))
    return [schemas.ReportSummary.model_validate(_summary(item.report, item.sign_off)) for item in listed]


@router.get("/reports/{report_id}", response_model=schemas.ReportOut)
async def get_report(report_id: ReportIdPath, principal: Staff, session: SessionDep):
    """The report with its signed document, signature and sign-off."""
    report = await reports.get_report(session, report_id)
    sign_off = await reports.sign_off_of(session, report.id)
    return schemas.ReportOut.model_validate({
        **_summary(report, sign_off), "signature": base64.b64encode(report.signature).decode(),
        "signing_key_sha256": report.signing_key_sha256, "sign_off_comment": sign_off.comment if sign_off else None,
        "document": reports.document_of(report),
    })


def _signed_headers(report: Report) -> dict[str, str]:
    return {
        "Repr-Digest": f"sha-256=:{base64.b64encode(report.content_sha256).decode()}:",
        "Signature-Ed25519": base64.b64encode(report.signature).decode(),
        "Signing-Key-SHA256": report.signing_key_sha256,
    }


@router.get(
    "/reports/{report_id}/document",
    responses={200: {"content": {"application/json": {}}, "description": "The exact signed bytes, with the digest "
                     "in Repr-Digest and the Ed25519 signature (base64) in Signature-Ed25519."}},
)
async def report_document(report_id: ReportIdPath, principal: Staff, session: SessionDep):
    """The signed document's exact bytes, to verify offline against the operator's public key."""
    report = await reports.get_report(session, report_id)
    return Response(report.content, media_type="application/json", headers=_signed_headers(report))


@router.get(
    "/reports/{report_id}/export",
    responses={200: {"content": {"text/csv": {}, "application/pdf": {}}, "description": "The report as CSV or PDF."}},
)
async def export_report(
    report_id: ReportIdPath, principal: Staff, session: SessionDep,
    format: Annotated[Literal["csv", "pdf"], Query(description="csv (one row per emission) or pdf.")] = "csv",
):
    """The report as a spreadsheet-safe CSV (one row per emission) or a PDF with its signature."""
    report = await reports.get_report(session, report_id)
    document = reports.document_of(report)
    name = f"reconciliation-{report.business_date.isoformat()}-v{report.version}"
    await audit.record(session, kind="reconciliation.report_exported", actor=principal.login,
                       subject=f"report:{report.id}", details={"format": format})
    if format == "csv":
        body, media_type = exports.report_csv(document), "text/csv; charset=utf-8"
    else:
        sign_off = await reports.sign_off_of(session, report.id)
        body = exports.report_pdf(
            document, content_sha256=report.content_sha256.hex(),
            signature_b64=base64.b64encode(report.signature).decode(), signing_key_sha256=report.signing_key_sha256,
            sign_off={"signed_by": sign_off.signed_by, "signed_at": sign_off.signed_at.isoformat(),
                      "comment": sign_off.comment} if sign_off else None,
        )
        media_type = "application/pdf"
    headers = {"Content-Disposition": f'attachment; filename="{name}.{format}"'}
    return Response(body, media_type=media_type, headers=headers)


@router.post("/reports/{report_id}/sign-off", status_code=status.HTTP_201_CREATED, response_model=schemas.SignOffOut)
async def sign_off(report_id: ReportIdPath, body: schemas.CommentIn, principal: Compliance, session: SessionDep,
                   _key: IdempotencyKeyHeader):
    """Sign the report off as reviewed, with a comment (once per report)."""
    signed = await reports.sign_off(session, report_id=report_id, comment=body.comment, actor=principal.login)
    return schemas.SignOffOut.model_validate(signed, from_attributes=True)


@router.get("/signing-key", response_model=schemas.SigningKeyOut)
async def signing_key(principal: Anyone, request: Request):
    """The public key every report's signature verifies with."""
    key = request.app.state.keys.signing_key
    return schemas.SigningKeyOut(public_key_pem=reports.public_key_pem(key), sha256=key_fingerprint(key.public_key()))


# --- breaches and coverage ------------------------------------------------------------------------------------


@router.get("/breaches", response_model=list[schemas.BreachOut])
async def list_breaches(
    principal: Staff, session: SessionDep, settings: SettingsDep,
    status_: Annotated[Literal["open", "cleared"] | None, Query(alias="status", description="Only these.")] = None,
    report_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="Only those this report found.")] = None,
    before: Before = None, limit: Limit = None,
):
    """Breaches newest first."""
    found = await breaches.list_breaches(
        session, status=status_, report_id=report_id, before=before, limit=settings.page_size(limit)
    )
    return await _breaches_out(session, found)


@router.post("/breaches/{breach_id}/acknowledgement", status_code=status.HTTP_201_CREATED,
             response_model=schemas.BreachOut)
async def acknowledge(breach_id: BreachIdPath, body: schemas.CommentIn, principal: Compliance, session: SessionDep,
                      _key: IdempotencyKeyHeader):
    """Acknowledge a breach with a comment. It stays open until a run finds its subject right again."""
    breach = await breaches.acknowledge(session, breach_id=breach_id, comment=body.comment, actor=principal.login)
    return (await _breaches_out(session, [breach]))[0]


@router.get("/emissions/{registration_number}/coverage", response_model=list[schemas.CoveragePointOut])
async def coverage_history(
    registration_number: EmissionPath, principal: Staff, session: SessionDep, settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=3_660, description="Most recent days to return.")] = 90,
):
    """The emission's coverage day by day, oldest first."""
    points = await breaches.coverage_history(session, asset_code=registration_number, limit=limit)
    return [schemas.CoveragePointOut.model_validate(point, from_attributes=True) for point in points]


# --- holder proofs --------------------------------------------------------------------------------------------


@router.get("/emissions/{registration_number}/holder-roots", response_model=list[schemas.HolderRootOut])
async def holder_roots(
    registration_number: EmissionPath, principal: Anyone, session: SessionDep, settings: SettingsDep,
    limit: Limit = None,
):
    """The emission's published holder-tree roots, newest report first: what a holder checks a proof against."""
    found = await proofs.trees_of(session, asset_code=registration_number, limit=settings.page_size(limit))
    return [
        schemas.HolderRootOut(
            report_id=report.id, business_date=report.business_date, version=report.version,
            content_sha256=report.content_sha256.hex(), root_hash=tree.root_hash.hex(),
            total_units=tree.total_units, leaf_count=tree.leaf_count,
        )
        for tree, report in found
    ]


@router.get("/reports/{report_id}/proofs/{registration_number}")
async def holder_proof(
    report_id: ReportIdPath, registration_number: EmissionPath, principal: Anyone, session: SessionDep,
    request: Request,
    party_id: Annotated[uuid.UUID | None, Query(description="Staff: the holder whose proof to build.")] = None,
) -> dict:
    """The caller's inclusion proof in the emission's holder tree of the report (format dfa-holder-proof/1);
    verify it with `dfa verify-proof` against the root the signed report publishes. Staff may ask for any
    holder's; a holder gets only its own."""
    holder = party_id if principal.is_staff and party_id is not None else principal.party_id
    report = await reports.get_report(session, report_id)
    proof = await proofs.holder_proof(
        session, report=report, asset_code=registration_number, party_id=holder,
        secret_key=request.app.state.keys.secret_key,
    )
    return proof.to_json()

