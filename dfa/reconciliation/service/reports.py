"""Signed daily reports: the canonical JSON document, its SHA-256 and the operator's Ed25519 signature,
versions, listing, and compliance sign-off.

A report's `content` is the exact bytes that were hashed and signed: canonical JSON (keys sorted, no
spaces, UTF-8). Anyone with the operator's public key checks a report by verifying the signature over
those bytes; a changed byte fails. The table refuses updates and deletes, so a report, once written,
stays as signed; a forced re-run of a day writes the next version beside it.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.custody.service.handover import key_fingerprint
from dfa.platform.audit import service as audit
from dfa.reconciliation import errors
from dfa.reconciliation.models import Report, SignOff
from dfa.reconciliation.repository import reports as repository

FORMAT = "dfa-reconciliation-report/1"
COMMENT_MAX_LENGTH = 2_000


def canonical(document: dict[str, Any]) -> bytes:
    """The document's one byte form: what is hashed and signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Sealed:
    content: bytes
    content_sha256: bytes
    signature: bytes
    signing_key_sha256: str


def seal(document: dict[str, Any], *, signing_key: Ed25519PrivateKey) -> Sealed:
    content = canonical(document)
    return Sealed(content, hashlib.sha256(content).digest(), signing_key.sign(content), key_fingerprint(signing_key.public_key()))


def signature_valid(*, content: bytes, signature: bytes, public_key: Ed25519PublicKey) -> bool:
    """Whether `signature` is the key's signature over exactly `content`."""
    try:
        public_key.verify(signature, content)
    except InvalidSignature:
        return False
    return True


def public_key_pem(signing_key: Ed25519PrivateKey) -> str:
    """The key reports are verified with, in PEM, fit to publish."""
    return signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def document_of(report: Report) -> dict[str, Any]:
    """The signed document of the report."""
    return json.loads(report.content)


@dataclass(frozen=True)
class ReportListing:
    report: Report
    sign_off: SignOff | None


async def list_reports(session: AsyncSession, *, before: int | None, limit: int) -> list[ReportListing]:
    """Reports newest first, each with its sign-off if any."""
    return [ReportListing(r, s) for r, s in await repository.list_reports(session, before=before, limit=limit)]


async def get_report(session: AsyncSession, report_id: int) -> Report:
    """Raises ReportNotFound."""
    report = await repository.get_report(session, report_id)
    if report is None:
        raise errors.ReportNotFound(f"there is no reconciliation report {report_id}")
    return report


async def sign_off_of(session: AsyncSession, report_id: int) -> SignOff | None:
    return await repository.get_sign_off(session, report_id)


def checked_comment(comment: str) -> str:
    """The comment without surrounding blanks. Raises CommentInvalid."""
    comment = comment.strip()
    if not (0 < len(comment) <= COMMENT_MAX_LENGTH):
        raise errors.CommentInvalid(f"a comment has 1 to {COMMENT_MAX_LENGTH:,} characters")
    return comment


async def sign_off(session: AsyncSession, *, report_id: int, comment: str, actor: str) -> SignOff:
    """Record that a compliance officer reviewed the report, with their comment; a security event.

    Raises ReportNotFound, ReportSignedOffAlready, CommentInvalid.
    """
    comment = checked_comment(comment)
    report = await get_report(session, report_id)
    signed = await repository.insert_sign_off(
        session, values={"report_id": report.id, "signed_by": actor[:200], "comment": comment}
    )
    if signed is None:
        existing = await repository.get_sign_off(session, report.id)
        raise errors.ReportSignedOffAlready(
            f"report {report.id} was signed off by {existing.signed_by} at {existing.signed_at.isoformat()}"
        )
    await audit.record(
        session, kind="reconciliation.report_signed_off", actor=actor, subject=f"report:{report.id}",
        details={"business_date": report.business_date.isoformat(), "version": report.version,
                 "content_sha256": report.content_sha256.hex(), "comment": comment},
    )
    return signed
