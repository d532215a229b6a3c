"""Requests and responses of the identity and access API."""

import base64
import binascii
import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dfa.platform.errors import invariant
from dfa.platform.identity.models import KYC_LEVELS, KYC_STATUSES, ROLES
from dfa.platform.types import AwareDatetime, IsoDate, Text

RoleName = Literal["investor", "issuer", "compliance_officer", "operator_admin", "auditor"]
invariant(set(RoleName.__args__) == set(ROLES), "the API's role names are the model's")
MAX_SAMPLE_BYTES = 512 * 1024


def _sample(value: str) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if not decoded:
        raise ValueError("the biometric sample is empty")
    return decoded


BiometricSample = Annotated[
    str,
    Field(max_length=MAX_SAMPLE_BYTES * 4 // 3 + 4, description="The biometric sample (a face image), base64."),
    AfterValidator(_sample),
]
Identifier = Annotated[str, Field(min_length=12, max_length=12, pattern=r"^[0-9]{12}$", description="12-digit IIN or BIN.")]
# No control characters (a NUL would reach the database in the login's lookup); no password may hold one either.
Password = Annotated[Text, Field(min_length=1, max_length=256, description="A password.")]
Login = Annotated[Text, Field(min_length=1, max_length=100, description="The login.")]
OneTimeCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="The 6-digit code from the authenticator app.")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartyCreate(_Request):
    kind: Literal["person", "legal_entity"] = Field(description="person (has an IIN) or legal_entity (has a BIN).")
    name: Text = Field(min_length=1, max_length=300, description="Full name or registered legal name.")
    identifier: Identifier
    resident: bool = Field(strict=True, description="Resident of the Republic of Kazakhstan.")
    birth_date: IsoDate | None = Field(
        default=None, description="A person's date of birth; taken from the IIN when it encodes it (and checked against it)."
    )
    sex: Literal["male", "female"] | None = Field(default=None, description="A person's sex; checked against the IIN.")


class PartyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Party id.")
    kind: str = Field(description="person or legal_entity.")
    name: str = Field(description="Name.")
    identifier: str = Field(description="IIN or BIN.")
    resident: bool = Field(description="Resident of Kazakhstan.")
    birth_date: date | None = Field(description="A person's date of birth.")
    sex: str | None = Field(description="A person's sex.")
    kyc_status: str = Field(description=f"Identification status: {', '.join(KYC_STATUSES)}.")
    kyc_level: str = Field(description=f"Identification level: {', '.join(KYC_LEVELS)}.")
    identified_at: datetime | None = Field(description="When the party was last identified (UTC).")
    created_at: datetime = Field(description="When the party was registered (UTC).")


class KycDecision(_Request):
    status: Literal["pending", "identified", "rejected", "suspended"] = Field(description="The new status.")
    level: Literal["none", "simplified", "full"] = Field(description="The level; none unless identified.")
    method: Literal["in_person", "staff_decision"] = Field(description="How the decision was reached.")
    reason: Text = Field(min_length=1, max_length=1000, description="Why: the documents seen, the grounds for refusal.")


class KycEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Position in the history.")
    status: str = Field(description="Status after this step.")
    level: str = Field(description="Level after this step.")
    method: str = Field(description="in_person, remote_biometric, staff_decision or system.")
    reason: str = Field(description="Why.")
    actor: str = Field(description="Who decided.")
    biometric_check_id: uuid.UUID | None = Field(description="The biometric check it rests on, if any.")
    occurred_at: datetime = Field(description="When (UTC).")


class BiometricIdentification(_Request):
    biometric_sample: BiometricSample


class Onboarding(_Request):
    name: Text = Field(min_length=1, max_length=300, description="Full name as in the identity document.")
    identifier: Identifier
    birth_date: IsoDate | None = Field(default=None, description="Date of birth (checked against the IIN).")
    sex: Literal["male", "female"] | None = Field(default=None, description="Sex (checked against the IIN).")
    login: Login
    password: Password
    biometric_sample: BiometricSample


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="User id.")
    login: str = Field(description="Login (lower case).")
    roles: list[str] = Field(description="Roles.")
    party_id: uuid.UUID | None = Field(description="The party the user acts for; none for staff.")
    status: str = Field(description="active or disabled.")
    locked_until: datetime | None = Field(description="Locked out after failed sign-ins until then (UTC).")
    created_at: datetime = Field(description="When the user was created (UTC).")


class OnboardingOut(BaseModel):
    party: PartyOut = Field(description="The identified person.")
    user: UserOut = Field(description="The new investor user; sign in with its login.")


class UserCreate(_Request):
    login: Login
    password: Password
    roles: list[RoleName] = Field(min_length=1, max_length=5, description="Roles; staff roles are not combined with others.")
    party_id: uuid.UUID | None = Field(default=None, description="The party an investor or issuer user acts for.")


class RolesUpdate(_Request):
    roles: list[RoleName] = Field(min_length=1, max_length=5, description="The complete new set of roles.")


class SignIn(_Request):
    login: Login
    password: Password
    one_time_code: OneTimeCode | None = Field(default=None, description="Staff: the authenticator's code.")


class SignedInOut(BaseModel):
    status: Literal["signed_in"] = Field(default="signed_in", description="The session is open; its cookie is set.")
    user: UserOut = Field(description="Who signed in.")
    csrf_token: str = Field(description="Send it in the X-CSRF-Token header (or a csrf_token form field) of every change.")
    expires_at: datetime = Field(description="The session ends by this instant at the latest (UTC).")


class EnrolmentRequiredOut(BaseModel):
    status: Literal["second_factor_enrolment_required"] = Field(
        default="second_factor_enrolment_required", description="Staff must enrol an authenticator first."
    )
    enrolment_token: str = Field(description="Single-use, short-lived; send it back with the first code.")
    provisioning_uri: str = Field(description="otpauth:// URI for the authenticator app (shown as a QR code).")


class SecondFactorEnrolment(_Request):
    enrolment_token: str = Field(min_length=1, max_length=100, description="From the sign-in answer.")
    one_time_code: OneTimeCode


class PasswordChange(_Request):
    current_password: Password
    new_password: Password


class RecoveryStart(_Request):
    login: Login
    identifier: Identifier
    biometric_sample: BiometricSample


class RecoveryGrantOut(BaseModel):
    recovery_token: str = Field(description="Single-use; set the new password with it before it expires.")
    expires_at: datetime = Field(description="When the token expires (UTC).")


class RecoveryCompletion(_Request):
    recovery_token: str = Field(min_length=1, max_length=100, description="From the identity check.")
    new_password: Password


class MeOut(BaseModel):
    user: UserOut = Field(description="The signed-in user.")
    party: PartyOut | None = Field(description="The party the user acts for.")
    credential: str = Field(description="How the request authenticated: session, access_token or api_key.")


class CredentialCreate(_Request):
    kind: Literal["oauth_client", "api_key"] = Field(description="oauth_client (client credentials grant) or api_key.")
    label: Text = Field(min_length=1, max_length=200, description="What system uses it.")
    expires_at: AwareDatetime | None = Field(default=None, description="When it stops working (with offset); never by default.")


class CredentialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Credential id.")
    client_id: str = Field(description="Public client id (OAuth2) or the key's public prefix.")
    kind: str = Field(description="oauth_client or api_key.")
    label: str = Field(description="What system uses it.")
    created_at: datetime = Field(description="Issued (UTC).")
    rotated_at: datetime | None = Field(description="Last rotated (UTC).")
    expires_at: datetime | None = Field(description="Expires (UTC).")
    revoked_at: datetime | None = Field(description="Revoked (UTC).")
    last_used_at: datetime | None = Field(description="Last exchanged for a token (UTC).")


class IssuedCredentialOut(BaseModel):
    credential: CredentialOut = Field(description="The credential.")
    secret: str = Field(
        description="Shown once, never again: the client secret (oauth_client) or the whole key to send in X-API-Key."
    )


class AccessTokenOut(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    token_type: Literal["Bearer"] = Field(default="Bearer", description="Always Bearer.")
    expires_in: int = Field(description="Seconds until it expires.")
