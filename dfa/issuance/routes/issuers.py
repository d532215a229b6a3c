"""Issuers, their representatives and documents, underlying assets and their certification, and blocks
on new emissions.

Issuer information is confidential (REQ-20): an issuer acts on and sees its own only, staff see every
issuer's, and anyone else asking about an issuer, its documents or assets gets "not found". An issuer
onboards itself and files its own papers; an operator administrator may do so on its behalf.
Certifying an underlying asset and blocking an issuer are staff decisions.
"""

import base64
import uuid
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Path, Query, Response, UploadFile, status

from dfa.issuance.custodian import Custodian
from dfa.issuance.models import DOCUMENT_KINDS
from dfa.issuance.schemas import issuers as schemas
from dfa.issuance.service import issuers as service
from dfa.issuance.service import underlying
from dfa.platform.access import ALL_ROLES, STAFF_ROLES, Principal, Role, allow
from dfa.platform.identity.errors import PartyNotFound
from dfa.platform.types import Limit, Text
from dfa.platform.web import DatabaseDep, IdempotencyKeyHeader, SessionDep, SettingsDep, UnitOfWorkRoute, app_state

router = APIRouter(prefix="/v1", tags=["issuers"], route_class=UnitOfWorkRoute)

Anyone = Annotated[Principal, Depends(allow(*ALL_ROLES))]
IssuerOrStaff = Annotated[Principal, Depends(allow(Role.ISSUER, *STAFF_ROLES))]
IssuerOrAdmin = Annotated[Principal, Depends(allow(Role.ISSUER, Role.OPERATOR_ADMIN))]
Certifier = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN, Role.COMPLIANCE_OFFICER))]
Admin = Annotated[Principal, Depends(allow(Role.OPERATOR_ADMIN))]
CustodianDep = Annotated[Custodian, Depends(app_state("custodian"))]

PartyPath = Annotated[uuid.UUID, Path(description="The issuer's party id.")]
RepresentativePath = Annotated[uuid.UUID, Path(description="Representative id.")]
DocumentPath = Annotated[uuid.UUID, Path(description="Document id.")]
UnderlyingAssetPath = Annotated[uuid.UUID, Path(description="Underlying asset id.")]
BlockPath = Annotated[uuid.UUID, Path(description="Block id.")]
# One file and a handful of short fields: the file's size is checked against the configured maximum.
# Where documents are uploaded: the one path whose request bodies may be as large as a document.
DOCUMENT_UPLOAD_PATH = r"/v1/issuers/[^/]+/documents"
DOCUMENT_FORM_LIMITS = {"max_files": 1, "max_fields": 8, "max_part_size": 4_096}


# --- issuers --------------------------------------------------------------------------------------------


@router.post("/issuers", status_code=status.HTTP_201_CREATED, response_model=schemas.IssuerOut)
async def onboard_issuer(
    body: schemas.IssuerCreate, principal: IssuerOrAdmin, session: SessionDep, settings: SettingsDep,
    _key: IdempotencyKeyHeader,
):
    """Onboard an identified legal entity as an issuer, with its consents to custodians being asked about its
    underlying assets (REQ-27) and to personal-data processing (REQ-57). An issuer onboards its own party."""
    party_id = principal.party_scope(body.party_id)
    if party_id is None:
        raise PartyNotFound("name the legal entity to onboard (party_id)")
    return await service.onboard_issuer(
        session, party_id=party_id, legal_address=body.legal_address, contact_email=body.contact_email,
        custodian_consent=body.custodian_consent, custodian_consent_scope=body.custodian_consent_scope,
        personal_data_consent=body.personal_data_consent, actor=principal.login, settings=settings,
    )


@router.get("/issuers", response_model=list[schemas.IssuerOut])
async def list_issuers(
    principal: IssuerOrStaff,
    session: SessionDep,
    settings: SettingsDep,
    after: Annotated[uuid.UUID | None, Query(description="Issuers with a larger party id.")] = None,
    limit: Limit = None,
):
    """Issuers in party id order (an issuer: itself only)."""
    return await service.list_issuers(
        session, visible_to=principal.owner_filter(), after=after, limit=settings.page_size(limit)
    )


@router.get("/issuers/{party_id}", response_model=schemas.IssuerOut)
async def get_issuer(party_id: PartyPath, principal: Anyone, session: SessionDep):
    return await service.get_issuer(session, party_id, visible_to=principal.owner_filter())


# --- representatives ------------------------------------------------------------------------------------


@router.post(
    "/issuers/{party_id}/representatives", status_code=status.HTTP_201_CREATED, response_model=schemas.RepresentativeOut
)
async def add_representative(
    party_id: PartyPath, body: schemas.RepresentativeCreate, principal: IssuerOrAdmin, session: SessionDep,
    _key: IdempotencyKeyHeader,
):
    """Record a person who acts for the issuer and on what authority."""
    return await service.add_representative(
        session, issuer_party_id=party_id, full_name=body.full_name, iin=body.iin, position=body.position,
        authority=body.authority, actor=principal.login, visible_to=principal.owner_filter(),
    )


@router.get("/issuers/{party_id}/representatives", response_model=list[schemas.RepresentativeOut])
async def list_representatives(party_id: PartyPath, principal: Anyone, session: SessionDep):
    """Everyone who acts or acted for the issuer, oldest first."""
    return await service.list_representatives(session, issuer_party_id=party_id, visible_to=principal.owner_filter())


@router.post(
    "/issuers/{party_id}/representatives/{representative_id}/revocation", response_model=schemas.RepresentativeOut
)
async def revoke_representative(
    party_id: PartyPath, representative_id: RepresentativePath, body: schemas.RepresentativeRevocation,
    principal: IssuerOrAdmin, session: SessionDep, _key: IdempotencyKeyHeader,
):
    """The person no longer acts for the issuer."""
    return await service.revoke_representative(
        session, issuer_party_id=party_id, representative_id=representative_id, reason=body.reason,
        actor=principal.login, visible_to=principal.owner_filter(),
    )


# --- documents ------------------------------------------------------------------------------------------


@router.post(
    "/issuers/{party_id}/documents", status_code=status.HTTP_201_CREATED, response_model=schemas.DocumentOut,
    form_limits=DOCUMENT_FORM_LIMITS,
)
async def upload_document(
    party_id: PartyPath,
    principal: IssuerOrAdmin,
    session: SessionDep,
    settings: SettingsDep,
    _key: IdempotencyKeyHeader,
    kind: Annotated[Literal[DOCUMENT_KINDS], Form(description="What the document is.")],
    title: Annotated[Text, Form(min_length=1, max_length=service.DOCUMENT_TITLE_MAX_LENGTH, description="Its title.")],
    file: Annotated[UploadFile, File(description=f"The document: {service.ACCEPTED_TYPES}, recognised by content.")],
    underlying_asset_id: Annotated[
        uuid.UUID | None, Form(description="The issuer's underlying asset the document evidences.")
    ] = None,
    application_id: Annotated[
        uuid.UUID | None, Form(description="The issuer's emission application the document belongs to.")
    ] = None,
):
    """File a document (multipart/form-data); it is kept with the SHA-256 digest of its bytes and shown
    only to the issuer and staff (REQ-20)."""
    # One byte past the maximum is enough to know the file is too large.
    content = await file.read(settings.issuance_document_max_bytes + 1)
    return await service.upload_document(
        session, issuer_party_id=party_id, kind=kind, title=title, filename=file.filename,
        declared_type=file.content_type, content=content, underlying_asset_id=underlying_asset_id,
        application_id=application_id, actor=principal.login, settings=settings, visible_to=principal.owner_filter(),
    )


@router.get("/issuers/{party_id}/documents", response_model=list[schemas.DocumentOut])
async def list_documents(
    party_id: PartyPath, principal: Anyone, session: SessionDep, settings: SettingsDep, limit: Limit = None
):
    """The issuer's documents, newest first (metadata only)."""
    return await service.list_documents(
        session, issuer_party_id=party_id, limit=settings.page_size(limit), visible_to=principal.owner_filter()
    )


@router.get("/documents/{document_id}", response_model=schemas.DocumentOut)
async def get_document(document_id: DocumentPath, principal: Anyone, session: SessionDep):
    return await service.get_document(session, document_id, visible_to=principal.owner_filter())


def _attachment(filename: str) -> str:
    """A Content-Disposition naming the file, in ASCII for old clients and in UTF-8 for the rest (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/documents/{document_id}/content",
    response_class=Response,
    responses={200: {"description": "The document's bytes, with the SHA-256 digest in Repr-Digest.",
                     "content": {"application/octet-stream": {}}}},
)
async def download_document(document_id: DocumentPath, principal: Anyone, database: DatabaseDep):
    """The document's bytes as filed. Every download is recorded in the security-event log (REQ-20)."""
    # The download is recorded, so it is a write of its own even though it changes no document.
    async with database.unit_of_work() as session:
        document = await service.download_document(
            session, document_id=document_id, actor=principal.login, visible_to=principal.owner_filter()
        )
    return Response(
        content=document.content,
        media_type=document.content_type,
        headers={
            "Content-Disposition": _attachment(document.filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Repr-Digest": f"sha-256=:{base64.b64encode(document.sha256).decode()}:",
        },
    )


# --- underlying assets and their certification -------------------------------------------------------------


@router.post(
    "/issuers/{party_id}/underlying-assets", status_code=status.HTTP_201_CREATED,
    response_model=schemas.UnderlyingAssetOut,
)
async def register_underlying_asset(
    party_id: PartyPath, body: schemas.UnderlyingAssetCreate, principal: IssuerOrAdmin, session: SessionDep,
    _key: IdempotencyKeyHeader,
):
    """Record an asset backing the issuer's emissions, as its custodian keeps it (REQ-26, REQ-27)."""
    return await underlying.register_underlying_asset(
        session, issuer_party_id=party_id, kind=body.kind, description=body.description, custodian=body.custodian,
        custodian_reference=body.custodian_reference, quantity=body.quantity, unit=body.unit, actor=principal.login,
        visible_to=principal.owner_filter(),
    )


@router.get("/issuers/{party_id}/underlying-assets", response_model=list[schemas.UnderlyingAssetOut])
async def list_underlying_assets(
    party_id: PartyPath, principal: Anyone, session: SessionDep, settings: SettingsDep, limit: Limit = None
):
    """The issuer's underlying assets, oldest first."""
    return await underlying.list_underlying_assets(
        session, issuer_party_id=party_id, limit=settings.page_size(limit), visible_to=principal.owner_filter()
    )


@router.get("/underlying-assets/{underlying_asset_id}", response_model=schemas.UnderlyingAssetFileOut)
async def get_underlying_asset(
    underlying_asset_id: UnderlyingAssetPath, principal: Anyone, session: SessionDep, settings: SettingsDep,
    limit: Limit = None,
):
    """The asset with its documents and its certifications (each newest first, up to `limit`)."""
    found = await underlying.underlying_asset_file(
        session, underlying_asset_id, limit=settings.page_size(limit), visible_to=principal.owner_filter()
    )
    return schemas.UnderlyingAssetFileOut(
        **schemas.UnderlyingAssetOut.model_validate(found.asset).model_dump(),
        documents=found.documents,
        certifications=found.certifications,
    )


@router.post(
    "/underlying-assets/{underlying_asset_id}/certifications", status_code=status.HTTP_201_CREATED,
    response_model=schemas.CertificationOut,
)
async def certify_underlying_asset(
    underlying_asset_id: UnderlyingAssetPath, officer: Certifier, session: SessionDep, settings: SettingsDep,
    custodian: CustodianDep, _key: IdempotencyKeyHeader, body: schemas.CertificationRequest | None = None,
):
    """Certify the asset from its custodian's statement: existence, legal status, encumbrances and market
    value, and — for an application — value against the issue volume at its coverage ratio (REQ-28, REQ-29).
    A failed certification is recorded too (`passed` false, with its findings); 503 when the custodian
    does not answer, and then nothing is recorded."""
    return await underlying.request_certification(
        session, underlying_asset_id=underlying_asset_id, application_id=body.application_id if body else None,
        custodian=custodian, actor=officer.login, settings=settings,
    )


@router.get("/underlying-assets/{underlying_asset_id}/certifications", response_model=list[schemas.CertificationOut])
async def list_certifications(
    underlying_asset_id: UnderlyingAssetPath, principal: Anyone, session: SessionDep, settings: SettingsDep,
    limit: Limit = None,
):
    """The asset's certifications, newest first."""
    return await underlying.list_certifications(
        session, underlying_asset_id=underlying_asset_id, limit=settings.page_size(limit),
        visible_to=principal.owner_filter(),
    )


# --- blocks on new emissions (REQ-31) ----------------------------------------------------------------------


@router.get("/issuers/{party_id}/blocks", response_model=list[schemas.BlockOut])
async def list_blocks(
    party_id: PartyPath,
    principal: Anyone,
    session: SessionDep,
    open_only: Annotated[bool, Query(description="Only blocks not yet lifted.")] = False,
):
    """Blocks on the issuer's new emission registrations, newest first."""
    return await service.list_blocks(
        session, issuer_party_id=party_id, open_only=open_only, visible_to=principal.owner_filter()
    )


@router.post("/issuers/{party_id}/blocks", status_code=status.HTTP_201_CREATED, response_model=schemas.BlockOut)
async def open_block(
    party_id: PartyPath, body: schemas.BlockCreate, admin: Admin, session: SessionDep, _key: IdempotencyKeyHeader
):
    """Block the issuer's new emission registrations on the operator's decision; the block with the same
    reference, while open, is returned as it is."""
    return await service.open_block(
        session, issuer_party_id=party_id, source="operator_decision", reference=body.reference, reason=body.reason,
        actor=admin.login,
    )


@router.post("/issuers/{party_id}/blocks/{block_id}/lifting", response_model=schemas.BlockOut)
async def lift_block(
    party_id: PartyPath, block_id: BlockPath, body: schemas.BlockLifting, admin: Admin, session: SessionDep,
    _key: IdempotencyKeyHeader,
):
    """Lift a block the operator opened; a reconciliation block is lifted only by a clean reconciliation check."""
    return await service.lift_operator_block(
        session, issuer_party_id=party_id, block_id=block_id, reason=body.reason, actor=admin.login
    )
