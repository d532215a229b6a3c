"""Requests and responses of the issuer API: issuers and their representatives, documents, underlying
assets and their certifications, and blocks on new emissions. Amounts are integers in tiyn (1/100 KZT)."""

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dfa.issuance.custodian import CUSTODIAN_CODE_PATTERN, REFERENCE_MAX_LENGTH, UNIT_MAX_LENGTH
from dfa.issuance.models import UNDERLYING_KINDS
from dfa.issuance.service import issuers as service
from dfa.issuance.service import underlying
from dfa.platform.types import BIGINT_MAX, Text

# Deliverable addresses only: something@domain.tld, no spaces. `\s` alone means other characters to Python than to
# the JSON Schema (ECMA) readers of the API description; with these four additions it means the same to both.
EMAIL_PATTERN = r"^[^@\s\x1c-\x1f\x85\ufeff]+@[^@\s\x1c-\x1f\x85\ufeff]+\.[^@\s\x1c-\x1f\x85\ufeff]+$"

Reason = Annotated[Text, Field(min_length=1, max_length=service.REASON_MAX_LENGTH)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- issuers --------------------------------------------------------------------------------------------


class IssuerCreate(Request):
    party_id: uuid.UUID | None = Field(
        default=None, description="The legal entity to onboard; an issuer leaves it out (its own), an operator "
        "administrator names it."
    )
    legal_address: Text = Field(
        min_length=1, max_length=service.LEGAL_ADDRESS_MAX_LENGTH, description="Registered legal address."
    )
    contact_email: str = Field(
        max_length=service.CONTACT_EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN,
        description="Where the operator writes to the issuer about its applications and emissions.",
    )
    custodian_consent: bool = Field(
        strict=True, description="Consent to the operator obtaining information on the state, quantity and value of "
        "the issuer's underlying assets from their custodians (REQ-27); must be true."
    )
    custodian_consent_scope: Text = Field(
        min_length=1, max_length=service.CONSENT_SCOPE_MAX_LENGTH,
        description="What the consent covers, as the issuer gave it (which assets, custodians and information).",
    )
    personal_data_consent: bool = Field(
        strict=True, description="Consent to the processing of personal data (REQ-57); must be true."
    )


class IssuerOut(Response):
    party_id: uuid.UUID = Field(description="The issuer's party (a legal entity with a BIN).")
    legal_address: str = Field(description="Registered legal address.")
    contact_email: str = Field(description="Contact e-mail address.")
    custodian_consent_at: datetime = Field(description="When the issuer consented to custodians being asked (UTC).")
    custodian_consent_scope: str = Field(description="What that consent covers.")
    personal_data_consent_at: datetime = Field(description="When the issuer consented to personal-data processing (UTC).")
    onboarded_by: str = Field(description="Login of who onboarded the issuer.")
    created_at: datetime = Field(description="When the issuer was onboarded (UTC).")


# --- representatives ------------------------------------------------------------------------------------


class RepresentativeCreate(Request):
    full_name: Text = Field(min_length=1, max_length=service.PERSON_NAME_MAX_LENGTH, description="The person's full name.")
    iin: str = Field(pattern=r"^[0-9]{12}$", description="The person's 12-digit IIN (check digit verified).")
    position: Text = Field(
        min_length=1, max_length=service.POSITION_MAX_LENGTH, description="Position held, e.g. chief executive."
    )
    authority: Text = Field(
        min_length=1, max_length=service.AUTHORITY_MAX_LENGTH,
        description="On what authority the person acts, e.g. the charter or power of attorney no. 12 of 2026-01-10.",
    )


class RepresentativeOut(Response):
    id: uuid.UUID = Field(description="Representative id.")
    issuer_party_id: uuid.UUID = Field(description="The issuer represented.")
    full_name: str = Field(description="The person's full name.")
    iin: str = Field(description="The person's IIN.")
    position: str = Field(description="Position held.")
    authority: str = Field(description="On what authority the person acts.")
    added_by: str = Field(description="Login of who recorded the representative.")
    created_at: datetime = Field(description="When the representative was recorded (UTC).")
    revoked_at: datetime | None = Field(description="When the person stopped acting for the issuer (UTC), if so.")


class RepresentativeRevocation(Request):
    reason: Reason = Field(description="Why the person no longer acts for the issuer.")


# --- documents ------------------------------------------------------------------------------------------


class DocumentOut(Response):
    id: uuid.UUID = Field(description="Document id.")
    issuer_party_id: uuid.UUID = Field(description="The issuer that filed the document.")
    kind: str = Field(description="What the document is (charter, prospectus, warehouse_receipt, ...).")
    title: str = Field(description="The document's title.")
    filename: str = Field(description="The file's name as uploaded.")
    content_type: str = Field(description="Media type recognised from the content.")
    size_bytes: int = Field(description="Size in bytes.")
    sha256: str = Field(description="SHA-256 digest of the bytes, hexadecimal: compare it with a downloaded copy.")
    underlying_asset_id: uuid.UUID | None = Field(description="The underlying asset the document evidences, if any.")
    application_id: uuid.UUID | None = Field(description="The emission application it belongs to, if any.")
    uploaded_by: str = Field(description="Login of who uploaded it.")
    uploaded_at: datetime = Field(description="When it was uploaded (UTC).")

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex(cls, value: bytes | str) -> str:
        return value.hex() if isinstance(value, bytes) else value


# --- underlying assets and certifications ----------------------------------------------------------------


class UnderlyingAssetCreate(Request):
    kind: Literal[UNDERLYING_KINDS] = Field(description="What kind of asset it is.")
    description: Text = Field(
        min_length=1, max_length=underlying.DESCRIPTION_MAX_LENGTH,
        description="What the asset is, e.g. 5,000 t of class 3 wheat, harvest 2025.",
    )
    custodian: str = Field(
        pattern=CUSTODIAN_CODE_PATTERN, description="Code of the custodian organisation keeping the asset."
    )
    custodian_reference: Text = Field(
        min_length=1, max_length=REFERENCE_MAX_LENGTH,
        description="The custodian's own reference of the asset (receipt, certificate or account number).",
    )
    quantity: int = Field(strict=True, gt=0, le=BIGINT_MAX, description="Quantity of the asset, in `unit`.")
    unit: Text = Field(min_length=1, max_length=UNIT_MAX_LENGTH, description="Unit of the quantity (t, kg, m2).")


class UnderlyingAssetOut(Response):
    id: uuid.UUID = Field(description="Underlying asset id.")
    issuer_party_id: uuid.UUID = Field(description="The issuer whose asset it is.")
    kind: str = Field(description="What kind of asset it is.")
    description: str = Field(description="What the asset is.")
    custodian: str = Field(description="Code of the custodian organisation keeping it.")
    custodian_reference: str = Field(description="The custodian's reference of the asset.")
    quantity: int = Field(description="Quantity declared by the issuer, in `unit`.")
    unit: str = Field(description="Unit of the quantity.")
    created_by: str = Field(description="Login of who registered it.")
    created_at: datetime = Field(description="When it was registered (UTC).")


class CertificationRequest(Request):
    application_id: uuid.UUID | None = Field(
        default=None, description="The emission application backed by the asset: its value is then checked "
        "against the issue volume at the application's coverage ratio (REQ-29)."
    )


class CertificationOut(Response):
    id: uuid.UUID = Field(description="Certification id.")
    underlying_asset_id: uuid.UUID = Field(description="The asset certified.")
    application_id: uuid.UUID | None = Field(description="The application it was certified for, if any.")
    exists: bool = Field(description="Finding: the custodian keeps the asset.")
    legal_status: str = Field(description="Finding: clear, disputed or unclear.")
    encumbered: bool = Field(description="Finding: the asset is pledged, arrested or otherwise encumbered.")
    encumbrances: str | None = Field(description="The encumbrances the custodian stated, one per line.")
    quantity: int = Field(description="Quantity the custodian keeps.")
    market_value: int | None = Field(
        description="Finding: market value in tiyn, as of `valued_on`; null when the custodian stated none."
    )
    valued_on: date | None = Field(description="Date of the valuation; null when there is none.")
    required_value: int | None = Field(
        description="For an application: the value in tiyn the asset must have (volume times coverage ratio, rounded up)."
    )
    source: str = Field(description="The custodian and its statement id: `<custodian>:<statement id>`.")
    obtained_at: datetime = Field(description="When the statement was obtained (UTC).")
    officer: str = Field(description="Login of the officer who certified.")
    passed: bool = Field(description="Whether every check passed.")
    findings: list[str] = Field(description="Why it did not pass, one reason per failed check; empty when it passed.")


class UnderlyingAssetFileOut(UnderlyingAssetOut):
    documents: list[DocumentOut] = Field(description="Documents evidencing the asset, newest first.")
    certifications: list[CertificationOut] = Field(description="Its certifications, newest first.")


# --- blocks ---------------------------------------------------------------------------------------------


class BlockCreate(Request):
    reference: Text = Field(
        min_length=1, max_length=service.BLOCK_REFERENCE_MAX_LENGTH,
        description="The operator's reference of the decision, e.g. its minutes number.",
    )
    reason: Reason = Field(description="Why the issuer's new emissions are blocked.")


class BlockLifting(Request):
    reason: Reason = Field(description="Why the block is lifted.")


class BlockOut(Response):
    id: uuid.UUID = Field(description="Block id.")
    issuer_party_id: uuid.UUID = Field(description="The issuer whose new emissions are blocked.")
    source: str = Field(description="reconciliation (a breach of coverage, REQ-31) or operator_decision.")
    reference: str = Field(description="The breach's or decision's reference.")
    reason: str = Field(description="Why the block was opened.")
    opened_by: str = Field(description="Who opened it.")
    opened_at: datetime = Field(description="When it was opened (UTC).")
    lifted_by: str | None = Field(description="Who lifted it, once lifted.")
    lifted_at: datetime | None = Field(description="When it was lifted (UTC); open while empty.")
    lift_reason: str | None = Field(description="Why it was lifted.")
