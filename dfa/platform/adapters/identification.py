"""The National Bank's identification data exchange centre (ЦОИД): remote biometric authentication of
resident clients (REQ-15), also used to confirm a client's identity before password recovery (REQ-19).

One interface, `IdentificationCentre`, and three things behind it: `HttpIdentificationCentre` talks to
the centre; `IdentificationCentreSimulator` answers from a registry of enrolled persons in-process, and
can be down or slow like the real centre; `simulator_app` serves that simulator over the centre's HTTP
API.

The simulator compares samples by SHA-256: a person is enrolled with the digest of their sample, and a
sample matches when its digest is the enrolled one. The bundled demo registry enrols each demo person
with `demo_sample(iin)` — the UTF-8 bytes of "demo-face:<iin>" — so the demo and tests can present a
matching face.

Samples are biometric data: they are never stored or logged, and neither is their digest in full.
"""

import base64
import binascii
import hashlib
import logging
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, Protocol

import httpx
from fastapi import FastAPI
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from dfa.platform.adapters.external import (
    JsonApiClient,
    SimulatedParty,
    mask_identifier,
    require_identification_number,
    simulator_api,
)
from dfa.platform.errors import Category, DomainError, invariant
from dfa.platform.identifiers import is_valid_identification_number
from dfa.platform.settings import Settings
from dfa.platform.types import Text

PARTY = "identification centre"
DEMO_REGISTRY = Path(__file__).parent / "data" / "identification_registry.json"

# A face image fit for matching is well under this; the limit keeps one request from exhausting memory.
SAMPLE_MAX_BYTES = 2_097_152
SAMPLE_MAX_BASE64_CHARS = 4 * -(-SAMPLE_MAX_BYTES // 3)
NAME_MAX_LENGTH = 300
REGISTRY_PERSONS_MAX = 1_000_000

log = logging.getLogger("dfa.identification")

Outcome = Literal["match", "no_match", "not_found"]


class BiometricSampleInvalid(DomainError):
    type = "biometric-sample-invalid"
    title = "The biometric sample is empty or too large"
    category = Category.INVALID


@dataclass(frozen=True)
class BiometricVerdict:
    """The centre's verdict on one sample: `match` (the person's data attached), `no_match` (the IIN is
    known, the face is not theirs) or `not_found` (no such person enrolled).

    The person's data comes only with a match, so a failed check reveals nothing about whoever owns the IIN.
    """

    reference: str
    outcome: Outcome
    checked_at: datetime
    birth_date: date | None = None
    full_name: str | None = None

    def __post_init__(self) -> None:
        invariant(self.checked_at.utcoffset() == timedelta(0), "checked_at is an aware UTC instant")
        invariant(
            (self.outcome == "match") == (self.birth_date is not None and self.full_name is not None),
            "a verdict carries the person's data exactly when it is a match",
        )

    @property
    def matched(self) -> bool:
        return self.outcome == "match"


class IdentificationCentre(Protocol):
    async def verify(self, *, iin: str, sample: bytes) -> BiometricVerdict:
        """The centre's verdict on whether `sample` (a face image) is the person with this IIN (REQ-15).

        `iin` must be a valid IIN. Raises BiometricSampleInvalid before asking the centre, and
        ExternalPartyUnavailable on a timeout, a connection failure, an error status or a malformed
        answer — never a verdict the centre did not give.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; call once at shutdown."""
        ...


def demo_sample(iin: str) -> bytes:
    """The biometric sample the demo registry enrols for `iin`; any other bytes are someone else's face."""
    return f"demo-face:{iin}".encode()


def _check_request(iin: str, sample: bytes) -> None:
    require_identification_number(iin, what="IIN")
    if not 0 < len(sample) <= SAMPLE_MAX_BYTES:
        raise BiometricSampleInvalid(
            f"a biometric sample has 1 to {SAMPLE_MAX_BYTES} bytes, this one has {len(sample)}",
            sample_bytes=len(sample),
            sample_max_bytes=SAMPLE_MAX_BYTES,
        )


def _log_requested(iin: str, sample: bytes) -> None:
    log.info(
        "biometric verification requested", extra={"iin": mask_identifier(iin), "sample_bytes": len(sample)}
    )


def _log_answered(verdict: BiometricVerdict, elapsed_ms: float | None) -> None:
    # The person's name and birth date stay out of the log: the reference finds them at the centre.
    log.info(
        "biometric verification answered",
        extra={"reference": verdict.reference, "outcome": verdict.outcome, "elapsed_ms": elapsed_ms},
    )


# The centre's HTTP API --------------------------------------------------------------------------


def _iin(value: str) -> str:
    if not is_valid_identification_number(value):
        raise ValueError("not a valid 12-digit IIN")
    return value


def _base64_sample(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None
    if not 0 < len(decoded) <= SAMPLE_MAX_BYTES:
        raise ValueError(f"a sample has 1 to {SAMPLE_MAX_BYTES} bytes")
    return value


Iin = Annotated[str, AfterValidator(_iin)]


class VerificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iin: Iin = Field(description="IIN of the person the sample is claimed to be.")
    sample: Annotated[str, AfterValidator(_base64_sample)] = Field(
        max_length=SAMPLE_MAX_BASE64_CHARS, description="The biometric sample (face image), base64-encoded."
    )


class VerificationAnswer(BaseModel):
    reference: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$", description="The centre's id of this check."
    )
    outcome: Outcome = Field(description="match, no_match (the person is known, the face is not theirs) or not_found.")
    checked_at: AwareDatetime = Field(description="When the centre performed the check.")
    birth_date: date | None = Field(default=None, description="The person's date of birth; only with a match.")
    full_name: Text | None = Field(
        default=None, min_length=1, max_length=NAME_MAX_LENGTH, description="The person's full name; only with a match."
    )

    @model_validator(mode="after")
    def _person_data_exactly_with_a_match(self) -> "VerificationAnswer":
        if (self.outcome == "match") != (self.birth_date is not None and self.full_name is not None):
            raise ValueError("birth_date and full_name come with a match and only with a match")
        return self


class HttpIdentificationCentre:
    """The identification centre's API: `POST {base_url}/v1/biometric-verifications`, bearer `token`
    when given. Any status but 200 is a failure."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api = JsonApiClient(
            party=PARTY, base_url=base_url, timeout_s=timeout_s, token=token, transport=transport, log=log
        )

    async def verify(self, *, iin: str, sample: bytes) -> BiometricVerdict:
        """See `IdentificationCentre.verify`. Raises BiometricSampleInvalid, ExternalPartyUnavailable."""
        _check_request(iin, sample)
        _log_requested(iin, sample)
        payload = {"iin": iin, "sample": base64.b64encode(sample).decode("ascii")}
        answer, elapsed_ms = await self._api.post("/v1/biometric-verifications", payload, VerificationAnswer)
        verdict = BiometricVerdict(
            reference=answer.reference,
            outcome=answer.outcome,
            checked_at=answer.checked_at.astimezone(UTC),
            birth_date=answer.birth_date,
            full_name=answer.full_name,
        )
        _log_answered(verdict, elapsed_ms)
        return verdict

    async def aclose(self) -> None:
        await self._api.aclose()


# The simulator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolledPerson:
    iin: str
    full_name: str
    birth_date: date
    sample_sha256: str


class EnrolledPersonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iin: Iin = Field(description="The person's IIN.")
    full_name: Text = Field(min_length=1, max_length=NAME_MAX_LENGTH, description="Full name as the centre holds it.")
    birth_date: date = Field(description="Date of birth.")
    sample_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 (lowercase hex) of the enrolled sample.")


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    persons: list[EnrolledPersonIn] = Field(max_length=REGISTRY_PERSONS_MAX, description="Every enrolled person.")


class Registry:
    """The persons the simulated centre knows, by IIN."""

    def __init__(self, persons: Iterable[EnrolledPerson]) -> None:
        self._by_iin: dict[str, EnrolledPerson] = {}
        for person in persons:
            self.enrol(person)

    def enrol(self, person: EnrolledPerson) -> None:
        """Know one more person. Raises ValueError when the IIN is enrolled already."""
        if person.iin in self._by_iin:
            raise ValueError(f"IIN {mask_identifier(person.iin)} is enrolled twice")
        self._by_iin[person.iin] = person

    @classmethod
    def from_json(cls, text: str | bytes) -> "Registry":
        """Raises ValueError (pydantic.ValidationError among them) when the document is not a valid registry."""
        document = RegistryFile.model_validate_json(text)
        return cls(EnrolledPerson(p.iin, p.full_name, p.birth_date, p.sample_sha256) for p in document.persons)

    @classmethod
    def load(cls, path: Path) -> "Registry":
        return cls.from_json(path.read_bytes())

    def find(self, iin: str) -> EnrolledPerson | None:
        return self._by_iin.get(iin)

    def __len__(self) -> int:
        return len(self._by_iin)


@dataclass(frozen=True)
class VerificationRecord:
    """One verification the simulator answered. The sample itself is never kept: only its digest."""

    iin: str
    sample_sha256: str
    verdict: BiometricVerdict


class IdentificationCentreSimulator(SimulatedParty):
    """An identification centre that knows the persons of a registry and matches samples by SHA-256.

    `down` and `latency_s` (against `timeout_s`, the caller's timeout) make `verify` raise
    ExternalPartyUnavailable as the HTTP client would. `requests` keeps the newest `requests_kept`
    verifications answered, oldest first.
    """

    party = PARTY
    logger = log

    def __init__(self, registry: Registry, *, timeout_s: float | None = None, requests_kept: int = 1_000) -> None:
        super().__init__(timeout_s=timeout_s, requests_kept=requests_kept)
        self.registry = registry
        self.requests: list[VerificationRecord] = []

    async def verify(self, *, iin: str, sample: bytes) -> BiometricVerdict:
        """See `IdentificationCentre.verify`. Raises BiometricSampleInvalid, ExternalPartyUnavailable."""
        _check_request(iin, sample)
        _log_requested(iin, sample)
        await self._reach()
        verdict = self.answer(iin=iin, sample=sample)
        _log_answered(verdict, None)
        return verdict

    def answer(self, *, iin: str, sample: bytes) -> BiometricVerdict:
        """The centre's verdict itself, with no network in between."""
        digest = hashlib.sha256(sample).hexdigest()
        person = self.registry.find(iin)
        reference = f"BV-{uuid.uuid4().hex}"
        checked_at = datetime.now(UTC)
        if person is None:
            verdict = BiometricVerdict(reference, "not_found", checked_at)
        elif secrets.compare_digest(digest, person.sample_sha256):
            verdict = BiometricVerdict(reference, "match", checked_at, person.birth_date, person.full_name)
        else:
            verdict = BiometricVerdict(reference, "no_match", checked_at)
        self._keep(self.requests, VerificationRecord(iin, digest, verdict))
        return verdict

    async def aclose(self) -> None:
        return None


def simulator_app(simulator: IdentificationCentreSimulator, *, token: str | None = None) -> FastAPI:
    """The centre's HTTP API answered by `simulator`: 503 while it is down, 401 without the bearer
    `token` when one is set, 422 for a request the centre would not accept."""
    app = simulator_api(simulator, title="Identification data exchange centre (simulator)", token=token)

    @app.post("/v1/biometric-verifications", response_model=VerificationAnswer)
    async def create_verification(request: VerificationRequest) -> VerificationAnswer:
        verdict = simulator.answer(iin=request.iin, sample=base64.b64decode(request.sample))
        return VerificationAnswer(
            reference=verdict.reference,
            outcome=verdict.outcome,
            checked_at=verdict.checked_at,
            birth_date=verdict.birth_date,
            full_name=verdict.full_name,
        )

    return app


def identification_centre_from_settings(settings: Settings) -> IdentificationCentre:
    """The centre at `identification_centre_url`, or — outside production only — the simulator with
    the configured or the bundled demo registry.

    Raises ValueError in production without `identification_centre_url`: a simulated centre would
    vouch for faces the real one never saw (REQ-15).
    """
    if settings.identification_centre_url:
        token = (settings.identification_centre_token.get_secret_value() if settings.identification_centre_token else "") or None
        return HttpIdentificationCentre(settings.identification_centre_url, timeout_s=settings.external_timeout_s, token=token)
    if settings.environment == "production":
        raise ValueError(
            "identification_centre_url is required in production; the identification simulator is for development"
        )
    registry = Registry.load(settings.identification_centre_registry or DEMO_REGISTRY)
    return IdentificationCentreSimulator(registry, timeout_s=settings.external_timeout_s)
