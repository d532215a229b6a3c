"""Issuers (REQ-20, REQ-27, REQ-57): onboarding with the consents the operator needs, the people who act
for an issuer, the documents it files, and the blocks on its new emissions (REQ-31).

Everything about an issuer is confidential to the issuer and staff (REQ-20): a service given
`visible_to` answers "not found" for another party's issuer, documents and representatives, and every
download of a document is recorded in the security-event log.
"""

import hashlib
import io
import uuid
import zipfile
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors
from dfa.issuance.models import BLOCK_SOURCES, DOCUMENT_KINDS, Document, Issuer, IssuerBlock, Representative
from dfa.issuance.repository import issuers as repository
from dfa.issuance.repository import underlying as underlying_repository
from dfa.platform.adapters.external import mask_identifier
from dfa.platform.audit import service as audit
from dfa.platform.errors import invariant
from dfa.platform.identifiers import is_valid_identification_number, looks_like_bin
from dfa.platform.identity.errors import InvalidIdentificationNumber
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings

LEGAL_ADDRESS_MAX_LENGTH = 500
CONTACT_EMAIL_MAX_LENGTH = 320
CONSENT_SCOPE_MAX_LENGTH = 1_000
PERSON_NAME_MAX_LENGTH = 200
POSITION_MAX_LENGTH = 200
AUTHORITY_MAX_LENGTH = 500
DOCUMENT_TITLE_MAX_LENGTH = 200
FILENAME_MAX_LENGTH = 255
BLOCK_REFERENCE_MAX_LENGTH = 200
REASON_MAX_LENGTH = 2_000

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SIGNATURES = ((b"%PDF-", PDF), (b"\x89PNG\r\n\x1a\n", PNG), (b"\xff\xd8\xff", JPEG))
_ZIP_SIGNATURE = b"PK\x03\x04"
# An OOXML package is a ZIP archive; what it holds says whether it is a word-processing document or a workbook.
_OOXML_MAIN_PART = {DOCX: "word/document.xml", XLSX: "xl/workbook.xml"}
_UNDECLARED_TYPES = ("", "application/octet-stream")
ACCEPTED_TYPES = "PDF, PNG, JPEG, DOCX and XLSX"


# --- issuers ------------------------------------------------------------------------------------------


async def onboard_issuer(
    session: AsyncSession,
    *,
    party_id: uuid.UUID,
    legal_address: str,
    contact_email: str,
    custodian_consent: bool,
    custodian_consent_scope: str,
    personal_data_consent: bool,
    actor: str,
    settings: Settings,
) -> Issuer:
    """Make an identified legal entity an issuer, recording when it consented to the operator obtaining
    information about its underlying assets from their custodians (REQ-27) and to the processing of
    personal data (REQ-57).

    Raises ConsentRequired, PartyNotFound, IssuerMustBeLegalEntity, PartyNotIdentified, IssuerAlreadyOnboarded.
    """
    if not custodian_consent or not custodian_consent_scope.strip():
        raise errors.ConsentRequired(
            "the issuer must consent, with its scope, to the operator obtaining information about its underlying "
            "assets from their custodians (REQ-27)", consent="custodian"
        )
    if not personal_data_consent:
        raise errors.ConsentRequired(
            "the issuer must consent to the processing of personal data (REQ-57)", consent="personal_data"
        )
    party = await parties.get_party(session, party_id)
    if party.kind != "legal_entity":
        raise errors.IssuerMustBeLegalEntity(f"party {party_id} is a person; an issuer is a legal entity with a BIN")
    parties.require_may_operate(party, settings=settings)
    consented_at = datetime.now(UTC)
    issuer = await repository.insert_issuer(
        session,
        values={
            "party_id": party_id, "legal_address": legal_address, "contact_email": contact_email,
            "custodian_consent_at": consented_at, "custodian_consent_scope": custodian_consent_scope,
            "personal_data_consent_at": consented_at, "onboarded_by": actor,
        },
    )
    if issuer is None:
        raise errors.IssuerAlreadyOnboarded(f"party {party_id} is an issuer already", party_id=str(party_id))
    await audit.record(
        session, kind="issuer.onboarded", actor=actor, subject=str(party_id),
        details={"custodian_consent_scope": custodian_consent_scope, "personal_data_consent": True},
    )
    return issuer


async def get_issuer(
    session: AsyncSession, party_id: uuid.UUID, *, visible_to: uuid.UUID | None = None, for_update: bool = False
) -> Issuer:
    """The issuer; with `visible_to`, only when it is that party (others are "not found").

    Raises IssuerNotFound.
    """
    issuer = await repository.get_issuer(session, party_id, for_update=for_update)
    if issuer is None or (visible_to is not None and issuer.party_id != visible_to):
        raise errors.IssuerNotFound(f"no issuer {party_id}", party_id=str(party_id))
    return issuer


async def list_issuers(
    session: AsyncSession, *, visible_to: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[Issuer]:
    """Issuers in party id order; with `visible_to`, only that party's own."""
    return await repository.list_issuers(session, only=visible_to, after=after, limit=limit)


# --- representatives ------------------------------------------------------------------------------------


def _require_iin(iin: str) -> None:
    if not is_valid_identification_number(iin) or looks_like_bin(iin):
        raise InvalidIdentificationNumber("a representative's IIN must be a valid 12-digit IIN of a person")


async def add_representative(
    session: AsyncSession,
    *,
    issuer_party_id: uuid.UUID,
    full_name: str,
    iin: str,
    position: str,
    authority: str,
    actor: str,
    visible_to: uuid.UUID | None = None,
) -> Representative:
    """Record a person acting for the issuer and on what authority (a charter, a power of attorney).

    Raises IssuerNotFound, InvalidIdentificationNumber, RepresentativeAlreadyActive.
    """
    _require_iin(iin)
    # Locking the issuer serialises additions, so one person is never added twice at once.
    await get_issuer(session, issuer_party_id, visible_to=visible_to, for_update=True)
    if await repository.find_active_representative(session, issuer_party_id=issuer_party_id, iin=iin) is not None:
        raise errors.RepresentativeAlreadyActive(
            f"the person with IIN {mask_identifier(iin)} represents the issuer already; revoke that entry first"
        )
    representative = await repository.insert_representative(
        session,
        values={
            "id": uuid.uuid4(), "issuer_party_id": issuer_party_id, "full_name": full_name, "iin": iin,
            "position": position, "authority": authority, "added_by": actor,
        },
    )
    await audit.record(
        session, kind="issuer.representative_added", actor=actor, subject=str(issuer_party_id),
        details={"representative_id": str(representative.id), "iin": mask_identifier(iin), "position": position},
    )
    return representative


async def list_representatives(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, visible_to: uuid.UUID | None = None
) -> list[Representative]:
    """Everyone who acts or acted for the issuer, oldest first. Raises IssuerNotFound."""
    await get_issuer(session, issuer_party_id, visible_to=visible_to)
    return await repository.list_representatives(session, issuer_party_id=issuer_party_id)


async def revoke_representative(
    session: AsyncSession,
    *,
    issuer_party_id: uuid.UUID,
    representative_id: uuid.UUID,
    reason: str,
    actor: str,
    visible_to: uuid.UUID | None = None,
) -> Representative:
    """The person no longer acts for the issuer. Revoking again changes nothing.

    Raises IssuerNotFound, RepresentativeNotFound.
    """
    await get_issuer(session, issuer_party_id, visible_to=visible_to)
    representative = await repository.get_representative(session, representative_id, for_update=True)
    if representative is None or representative.issuer_party_id != issuer_party_id:
        raise errors.RepresentativeNotFound(f"no representative {representative_id} of issuer {issuer_party_id}")
    if representative.revoked_at is not None:
        return representative
    representative = await repository.update_representative(session, representative_id, revoked_at=datetime.now(UTC))
    await audit.record(
        session, kind="issuer.representative_revoked", actor=actor, subject=str(issuer_party_id),
        details={"representative_id": str(representative_id), "reason": reason},
    )
    return representative


# --- documents ------------------------------------------------------------------------------------------


def recognised_type(content: bytes, declared_type: str | None) -> str:
    """The document's media type as its content shows it; a declared type must agree with it, and a
    ZIP-based file must be declared as the DOCX or XLSX package it is.

    Raises DocumentTypeUnsupported.
    """
    declared = (declared_type or "").partition(";")[0].strip().lower()
    recognised = next((media_type for signature, media_type in _SIGNATURES if content.startswith(signature)), None)
    if recognised is None and content.startswith(_ZIP_SIGNATURE):
        recognised = _ooxml_type(content, declared)
    if recognised is None:
        raise errors.DocumentTypeUnsupported(
            f"only {ACCEPTED_TYPES} documents are accepted, and this file's content is none of them"
        )
    if declared not in _UNDECLARED_TYPES and declared != recognised:
        raise errors.DocumentTypeUnsupported(
            f"the file is declared as {declared} but its content is {recognised}", declared=declared,
            recognised=recognised,
        )
    return recognised


def _ooxml_type(content: bytes, declared: str) -> str | None:
    """The declared OOXML type when the archive holds that kind of package, else None."""
    main_part = _OOXML_MAIN_PART.get(declared)
    if main_part is None:
        raise errors.DocumentTypeUnsupported(
            f"a ZIP-based file is accepted only as a DOCX ({DOCX}) or XLSX ({XLSX}) document declared as such"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        return None
    return declared if {"[Content_Types].xml", main_part} <= names else None


def _safe_filename(filename: str | None) -> str:
    """The file's own name without any path, control characters or excess length."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:FILENAME_MAX_LENGTH] or "document"


async def upload_document(
    session: AsyncSession,
    *,
    issuer_party_id: uuid.UUID,
    kind: str,
    title: str,
    filename: str | None,
    declared_type: str | None,
    content: bytes,
    underlying_asset_id: uuid.UUID | None,
    application_id: uuid.UUID | None,
    actor: str,
    settings: Settings,
    visible_to: uuid.UUID | None = None,
) -> Document:
    """Keep an issuer's document with the SHA-256 digest of its bytes, optionally linked to one of the
    issuer's underlying assets or applications.

    Raises IssuerNotFound, DocumentEmpty, DocumentTooLarge, DocumentTypeUnsupported,
    UnderlyingAssetNotFound, ApplicationNotFound.
    """
    invariant(kind in DOCUMENT_KINDS, f"unknown document kind {kind!r}")
    await get_issuer(session, issuer_party_id, visible_to=visible_to)
    if not content:
        raise errors.DocumentEmpty("the file is empty")
    if len(content) > settings.issuance_document_max_bytes:
        raise errors.DocumentTooLarge(
            f"a document may have at most {settings.issuance_document_max_bytes} bytes; this one has {len(content)}",
            max_bytes=settings.issuance_document_max_bytes,
        )
    content_type = recognised_type(content, declared_type)
    await _require_own_links(
        session, issuer_party_id=issuer_party_id, underlying_asset_id=underlying_asset_id,
        application_id=application_id,
    )
    digest = hashlib.sha256(content).digest()
    document = await repository.insert_document(
        session,
        values={
            "id": uuid.uuid4(), "issuer_party_id": issuer_party_id, "kind": kind, "title": title,
            "filename": _safe_filename(filename), "content_type": content_type, "size_bytes": len(content),
            "sha256": digest, "content": content, "underlying_asset_id": underlying_asset_id,
            "application_id": application_id, "uploaded_by": actor,
        },
    )
    await audit.record(
        session, kind="document.uploaded", actor=actor, subject=str(document.id),
        details={"issuer_party_id": str(issuer_party_id), "kind": kind, "size_bytes": len(content),
                 "sha256": digest.hex()},
    )
    return document


async def _require_own_links(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, underlying_asset_id: uuid.UUID | None,
    application_id: uuid.UUID | None,
) -> None:
    """Raises UnderlyingAssetNotFound or ApplicationNotFound unless what is named is the issuer's own."""
    if underlying_asset_id is not None:
        asset = await underlying_repository.get_underlying_asset(session, underlying_asset_id)
        if asset is None or asset.issuer_party_id != issuer_party_id:
            raise errors.UnderlyingAssetNotFound(f"the issuer has no underlying asset {underlying_asset_id}")
    if application_id is not None:
        application = await underlying_repository.get_application(session, application_id)
        if application is None or application.issuer_party_id != issuer_party_id:
            raise errors.ApplicationNotFound(f"the issuer has no emission application {application_id}")


async def get_document(
    session: AsyncSession, document_id: uuid.UUID, *, visible_to: uuid.UUID | None = None
) -> Document:
    """The document's metadata; with `visible_to`, only when that party filed it. Raises DocumentNotFound."""
    document = await repository.get_document(session, document_id)
    if document is None or (visible_to is not None and document.issuer_party_id != visible_to):
        raise errors.DocumentNotFound(f"no document {document_id}")
    return document


async def list_documents(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, limit: int, visible_to: uuid.UUID | None = None
) -> list[Document]:
    """The issuer's documents (metadata only), newest first. Raises IssuerNotFound."""
    await get_issuer(session, issuer_party_id, visible_to=visible_to)
    return await repository.list_documents(session, issuer_party_id=issuer_party_id, limit=limit)


async def download_document(
    session: AsyncSession, *, document_id: uuid.UUID, actor: str, visible_to: uuid.UUID | None = None
) -> Document:
    """The document with its bytes; the download is recorded in the security-event log (REQ-20), and so
    is an attempt to fetch another issuer's document.

    Raises DocumentNotFound.
    """
    document = await repository.get_document(session, document_id, with_content=True)
    if document is None:
        raise errors.DocumentNotFound(f"no document {document_id}")
    if visible_to is not None and document.issuer_party_id != visible_to:
        raise errors.DocumentNotFound(f"no document {document_id}").with_security_event(
            "document.download", actor=actor, subject=str(document_id)
        )
    await audit.record(
        session, kind="document.download", actor=actor, subject=str(document_id),
        details={"issuer_party_id": str(document.issuer_party_id), "sha256": document.sha256.hex()},
    )
    return document


# --- blocks on new emissions (REQ-31) ----------------------------------------------------------------------


async def open_block(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, source: str, reference: str, reason: str, actor: str
) -> IssuerBlock:
    """Block the issuer's new emission registrations until the block is lifted. Opening a block that is
    open already (same issuer, source and reference) returns it unchanged.

    Raises IssuerNotFound.
    """
    invariant(source in BLOCK_SOURCES, f"unknown block source {source!r}")
    await get_issuer(session, issuer_party_id)
    block = await repository.insert_open_block(
        session,
        values={
            "id": uuid.uuid4(), "issuer_party_id": issuer_party_id, "source": source, "reference": reference,
            "reason": reason, "opened_by": actor,
        },
    )
    if block is None:
        existing = await repository.find_open_block(
            session, issuer_party_id=issuer_party_id, source=source, reference=reference
        )
        invariant(existing is not None, "an open block that refused a twin must be found")
        return existing
    await audit.record(
        session, kind="issuer.blocked", actor=actor, subject=str(issuer_party_id),
        details={"block_id": str(block.id), "source": source, "reference": reference, "reason": reason},
    )
    return block


async def lift_block(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, source: str, reference: str, reason: str, actor: str
) -> IssuerBlock | None:
    """Lift the open block (issuer, source, reference); None when none is open, so lifting again
    changes nothing."""
    block = await repository.find_open_block(
        session, issuer_party_id=issuer_party_id, source=source, reference=reference, for_update=True
    )
    if block is None:
        return None
    return await _lift(session, block, reason=reason, actor=actor)


async def lift_operator_block(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, block_id: uuid.UUID, reason: str, actor: str
) -> IssuerBlock:
    """Lift a block the operator opened. Lifting a lifted block changes nothing.

    Raises IssuerBlockNotFound, IssuerBlockNotLiftable (a reconciliation block is lifted only by a clean
    reconciliation check, REQ-31).
    """
    block = await repository.get_block(session, block_id, for_update=True)
    if block is None or block.issuer_party_id != issuer_party_id:
        raise errors.IssuerBlockNotFound(f"no block {block_id} on issuer {issuer_party_id}")
    if block.lifted_at is not None:
        return block
    if block.source != "operator_decision":
        raise errors.IssuerBlockNotLiftable(
            f"a {block.source} block is lifted when a later check finds the issuer's underlying value restored",
            source=block.source,
        )
    return await _lift(session, block, reason=reason, actor=actor)


async def _lift(session: AsyncSession, block: IssuerBlock, *, reason: str, actor: str) -> IssuerBlock:
    lifted = await repository.update_block(
        session, block.id, lifted_at=datetime.now(UTC), lifted_by=actor, lift_reason=reason
    )
    await audit.record(
        session, kind="issuer.block_lifted", actor=actor, subject=str(block.issuer_party_id),
        details={"block_id": str(block.id), "source": block.source, "reference": block.reference, "reason": reason},
    )
    return lifted


async def open_blocks(
    session: AsyncSession, issuer_party_id: uuid.UUID | None, *, source: str | None = None
) -> list[IssuerBlock]:
    """The issuer's blocks not yet lifted (every issuer's when `issuer_party_id` is None), from `source` when
    given, newest first: while any is open, no new emission of the issuer is registered."""
    return await repository.list_blocks(session, issuer_party_id=issuer_party_id, open_only=True, source=source)


async def list_blocks(
    session: AsyncSession, *, issuer_party_id: uuid.UUID, open_only: bool, visible_to: uuid.UUID | None = None
) -> list[IssuerBlock]:
    """The issuer's blocks, newest first. Raises IssuerNotFound."""
    await get_issuer(session, issuer_party_id, visible_to=visible_to)
    return await repository.list_blocks(session, issuer_party_id=issuer_party_id, open_only=open_only)
