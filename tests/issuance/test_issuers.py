"""Issuers through the services: onboarding with consents (REQ-20, REQ-27, REQ-57), representatives,
documents recognised by their content, and blocks on new emissions (REQ-31)."""

import hashlib
import io
import uuid
import zipfile

import pytest
from sqlalchemy import func, select

from dfa.issuance import errors
from dfa.issuance.models import Document, Issuer, IssuerBlock
from dfa.issuance.service import issuers
from dfa.platform.audit import service as audit
from dfa.platform.identity.errors import InvalidIdentificationNumber, PartyNotIdentified
from tests.factories import SETTINGS, make_party, new_identifier
from tests.issuance.factories import make_application, make_issuer

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
DOCX_TYPE = issuers.DOCX
XLSX_TYPE = issuers.XLSX


def ooxml(main_part: str) -> bytes:
    """A minimal OOXML package holding `main_part`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(main_part, "<document/>")
    return buffer.getvalue()


async def onboard(session, party, **overrides):
    values = {
        "party_id": party.id, "legal_address": "Astana, Mangilik El 55", "contact_email": "ir@steppe.kz",
        "custodian_consent": True, "custodian_consent_scope": "state, quantity and value of the grain receipts",
        "personal_data_consent": True, "actor": "issuer-login", "settings": SETTINGS,
    }
    return await issuers.onboard_issuer(session, **{**values, **overrides})


async def issuer_count(session, party_id) -> int:
    return (await session.execute(select(func.count()).select_from(Issuer).where(Issuer.party_id == party_id))).scalar_one()


# --- onboarding -----------------------------------------------------------------------------------------


async def test_an_identified_legal_entity_is_onboarded_with_its_consents_recorded_req_27_req_57(session):
    party = await make_party(session, kind="legal_entity", name="Steppe Grain LLP")

    issuer = await onboard(session, party)

    assert issuer.custodian_consent_scope == "state, quantity and value of the grain receipts"
    assert issuer.custodian_consent_at is not None and issuer.personal_data_consent_at is not None
    assert (await issuers.get_issuer(session, party.id)).legal_address == "Astana, Mangilik El 55"
    [event] = await audit.search(session, kind="issuer.onboarded", subject=str(party.id), limit=5)
    assert event.actor == "issuer-login"


@pytest.mark.parametrize(
    ("consents", "which"),
    [
        ({"custodian_consent": False}, "custodian"),
        ({"custodian_consent_scope": "  "}, "custodian"),
        ({"personal_data_consent": False}, "personal_data"),
    ],
    ids=["custodian-consent-refused", "custodian-consent-without-scope", "personal-data-consent-refused"],
)
async def test_an_issuer_without_both_consents_is_refused_and_nothing_is_written_req_27_req_57(session, consents, which):
    party = await make_party(session, kind="legal_entity")

    with pytest.raises(errors.ConsentRequired) as refused:
        await onboard(session, party, **consents)

    assert refused.value.context["consent"] == which
    assert await issuer_count(session, party.id) == 0


async def test_a_person_cannot_be_an_issuer(session):
    person = await make_party(session, kind="person")

    with pytest.raises(errors.IssuerMustBeLegalEntity):
        await onboard(session, person)
    assert await issuer_count(session, person.id) == 0


async def test_an_unidentified_legal_entity_cannot_be_an_issuer(session):
    party = await make_party(session, kind="legal_entity", identified=False)

    with pytest.raises(PartyNotIdentified):
        await onboard(session, party)
    assert await issuer_count(session, party.id) == 0


async def test_onboarding_twice_is_a_conflict_and_keeps_the_first_record(session):
    party = await make_party(session, kind="legal_entity")
    await onboard(session, party)

    with pytest.raises(errors.IssuerAlreadyOnboarded):
        await onboard(session, party, legal_address="elsewhere")

    assert (await issuers.get_issuer(session, party.id)).legal_address == "Astana, Mangilik El 55"
    assert await issuer_count(session, party.id) == 1


async def test_another_party_does_not_see_an_issuer_req_20(session):
    issuer = await make_issuer(session)

    with pytest.raises(errors.IssuerNotFound):
        await issuers.get_issuer(session, issuer.id, visible_to=uuid.uuid4())
    assert (await issuers.list_issuers(session, visible_to=issuer.id, after=None, limit=10))[0].party_id == issuer.id


# --- representatives ------------------------------------------------------------------------------------


async def test_a_representative_is_recorded_and_revoked_once(session):
    issuer = await make_issuer(session)
    iin = new_identifier(kind="person")

    representative = await issuers.add_representative(
        session, issuer_party_id=issuer.id, full_name="Aigerim Sadykova", iin=iin, position="chief executive",
        authority="the charter", actor="test",
    )
    with pytest.raises(errors.RepresentativeAlreadyActive):
        await issuers.add_representative(
            session, issuer_party_id=issuer.id, full_name="Aigerim Sadykova", iin=iin, position="director",
            authority="the charter", actor="test",
        )
    revoked = await issuers.revoke_representative(
        session, issuer_party_id=issuer.id, representative_id=representative.id, reason="resigned", actor="test"
    )
    again = await issuers.revoke_representative(
        session, issuer_party_id=issuer.id, representative_id=representative.id, reason="twice", actor="test"
    )

    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    assert [r.id for r in await issuers.list_representatives(session, issuer_party_id=issuer.id)] == [representative.id]
    assert len(await audit.search(session, kind="issuer.representative_revoked", subject=str(issuer.id), limit=5)) == 1


@pytest.mark.parametrize("iin", ["900101400012", "190840000005", "12345"], ids=["check-digit", "a-bin", "short"])
async def test_a_representative_with_an_invalid_iin_is_refused(session, iin):
    issuer = await make_issuer(session)

    with pytest.raises(InvalidIdentificationNumber):
        await issuers.add_representative(
            session, issuer_party_id=issuer.id, full_name="A. Person", iin=iin, position="director",
            authority="the charter", actor="test",
        )
    assert await issuers.list_representatives(session, issuer_party_id=issuer.id) == []


# --- documents ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "declared", "recognised"),
    [
        (PDF, "application/pdf", "application/pdf"),
        (PDF, None, "application/pdf"),
        (PNG, "image/png", "image/png"),
        (JPEG, "application/octet-stream", "image/jpeg"),
        (ooxml("word/document.xml"), DOCX_TYPE, DOCX_TYPE),
        (ooxml("xl/workbook.xml"), XLSX_TYPE, XLSX_TYPE),
    ],
    ids=["pdf", "pdf-undeclared", "png", "jpeg-as-octet-stream", "docx", "xlsx"],
)
def test_documents_are_recognised_by_their_content(content, declared, recognised):
    assert issuers.recognised_type(content, declared) == recognised


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (b"MZ\x90\x00 an executable", "application/pdf"),
        (b"<html><script>alert(1)</script></html>", "text/html"),
        (PNG, "application/pdf"),
        (ooxml("word/document.xml"), XLSX_TYPE),
        (ooxml("word/document.xml"), "application/zip"),
        (b"PK\x03\x04 not really an archive", DOCX_TYPE),
    ],
    ids=["executable-declared-pdf", "html", "png-declared-pdf", "docx-declared-xlsx", "plain-zip", "broken-zip"],
)
def test_files_that_are_not_what_we_accept_or_not_what_they_claim_are_refused(content, declared):
    with pytest.raises(errors.DocumentTypeUnsupported):
        issuers.recognised_type(content, declared)


async def upload(session, issuer, content: bytes, *, settings=SETTINGS, **links):
    return await issuers.upload_document(
        session, issuer_party_id=issuer.id, kind="charter", title="Charter", filename="../../charter.pdf",
        declared_type="application/pdf", content=content, underlying_asset_id=links.get("underlying_asset_id"),
        application_id=links.get("application_id"), actor="test", settings=settings,
    )


async def document_count(session, issuer) -> int:
    statement = select(func.count()).select_from(Document).where(Document.issuer_party_id == issuer.id)
    return (await session.execute(statement)).scalar_one()


async def test_a_document_is_kept_with_the_digest_of_its_bytes_req_20(session):
    issuer = await make_issuer(session)

    document = await upload(session, issuer, PDF)

    assert document.sha256 == hashlib.sha256(PDF).digest()
    assert (document.size_bytes, document.content_type, document.filename) == (len(PDF), "application/pdf", "charter.pdf")
    downloaded = await issuers.download_document(session, document_id=document.id, actor="auditor-login")
    assert downloaded.content == PDF
    [event] = await audit.search(session, kind="document.download", subject=str(document.id), limit=5)
    assert event.actor == "auditor-login"


@pytest.mark.parametrize(
    ("content", "refusal"),
    [(b"", errors.DocumentEmpty), (PDF + b"\x00" * 1_000, errors.DocumentTooLarge)],
    ids=["empty", "oversized"],
)
async def test_an_empty_or_oversized_document_is_refused_and_nothing_is_kept(session, content, refusal):
    issuer = await make_issuer(session)
    small = SETTINGS.model_copy(update={"issuance_document_max_bytes": 1_000})

    with pytest.raises(refusal):
        await upload(session, issuer, content, settings=small)
    assert await document_count(session, issuer) == 0


async def test_a_document_may_be_linked_only_to_the_issuers_own_asset_or_application(session):
    issuer, other = await make_issuer(session), await make_issuer(session)
    others_application = await make_application(session, issuer=other)

    with pytest.raises(errors.ApplicationNotFound):
        await upload(session, issuer, PDF, application_id=others_application.id)
    with pytest.raises(errors.UnderlyingAssetNotFound):
        await upload(session, issuer, PDF, underlying_asset_id=uuid.uuid4())
    assert await document_count(session, issuer) == 0

    own = await upload(session, other, PDF, application_id=others_application.id)
    assert own.application_id == others_application.id


async def test_another_issuers_document_is_not_found_and_the_attempt_is_a_security_event_req_20(session):
    issuer, other = await make_issuer(session), await make_issuer(session)
    document = await upload(session, issuer, PDF)

    with pytest.raises(errors.DocumentNotFound) as refused:
        await issuers.download_document(session, document_id=document.id, actor="other", visible_to=other.id)
    with pytest.raises(errors.DocumentNotFound):
        await issuers.get_document(session, document.id, visible_to=other.id)

    assert refused.value.security_event["kind"] == "document.download"
    assert refused.value.security_event["outcome"] == "denied"
    assert await audit.search(session, kind="document.download", subject=str(document.id), limit=5) == []


# --- blocks on new emissions (REQ-31) ----------------------------------------------------------------------


async def test_a_block_opens_once_per_reference_and_lifts_once_req_31(session):
    issuer = await make_issuer(session)
    block = {"issuer_party_id": issuer.id, "source": "reconciliation", "reference": "run-2026-03-02"}

    opened = await issuers.open_block(session, **block, reason="coverage 0.93 below 1.0", actor="system")
    again = await issuers.open_block(session, **block, reason="still short", actor="system")
    other = await issuers.open_block(
        session, issuer_party_id=issuer.id, source="operator_decision", reference="minutes 7", reason="review",
        actor="admin",
    )

    assert again.id == opened.id and again.reason == "coverage 0.93 below 1.0"
    assert {b.id for b in await issuers.open_blocks(session, issuer.id)} == {opened.id, other.id}

    lifted = await issuers.lift_block(session, **block, reason="coverage restored", actor="system")
    assert lifted.id == opened.id and lifted.lifted_at is not None and lifted.lift_reason == "coverage restored"
    assert await issuers.lift_block(session, **block, reason="again", actor="system") is None
    assert [b.id for b in await issuers.open_blocks(session, issuer.id)] == [other.id]
    assert len(await audit.search(session, kind="issuer.blocked", subject=str(issuer.id), limit=5)) == 2
    assert len(await audit.search(session, kind="issuer.block_lifted", subject=str(issuer.id), limit=5)) == 1

    reopened = await issuers.open_block(session, **block, reason="short again", actor="system")
    assert reopened.id != opened.id


async def test_the_operator_lifts_only_its_own_blocks_by_hand_req_31(session):
    issuer = await make_issuer(session)
    breach = await issuers.open_block(
        session, issuer_party_id=issuer.id, source="reconciliation", reference="run-1", reason="short", actor="system"
    )
    decision = await issuers.open_block(
        session, issuer_party_id=issuer.id, source="operator_decision", reference="minutes 8", reason="review",
        actor="admin",
    )

    with pytest.raises(errors.IssuerBlockNotLiftable):
        await issuers.lift_operator_block(
            session, issuer_party_id=issuer.id, block_id=breach.id, reason="please", actor="admin"
        )
    with pytest.raises(errors.IssuerBlockNotFound):
        await issuers.lift_operator_block(
            session, issuer_party_id=uuid.uuid4(), block_id=decision.id, reason="wrong issuer", actor="admin"
        )
    lifted = await issuers.lift_operator_block(
        session, issuer_party_id=issuer.id, block_id=decision.id, reason="reviewed", actor="admin"
    )
    again = await issuers.lift_operator_block(
        session, issuer_party_id=issuer.id, block_id=decision.id, reason="twice", actor="admin"
    )

    assert lifted.lifted_at is not None and again.lift_reason == "reviewed"
    assert [b.id for b in await issuers.open_blocks(session, issuer.id)] == [breach.id]


async def test_only_an_issuer_can_be_blocked(session):
    party = await make_party(session, kind="legal_entity")

    with pytest.raises(errors.IssuerNotFound):
        await issuers.open_block(
            session, issuer_party_id=party.id, source="operator_decision", reference="x", reason="y", actor="admin"
        )
    count = select(func.count()).select_from(IssuerBlock).where(IssuerBlock.issuer_party_id == party.id)
    assert (await session.execute(count)).scalar_one() == 0
