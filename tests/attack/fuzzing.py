"""Schemathesis, set up the way the API fuzzing suite runs it: credentials of one caller on every request, a fresh
Idempotency-Key on every mutating request, and a tally of what was sent and what the checks found."""

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import schemathesis
from schemathesis.core.failures import Failure, FailureGroup, MalformedJson, ServerError
from schemathesis.generation.case import Case
from schemathesis.openapi.checks import (
    JsonSchemaError,
    MalformedMediaType,
    MissingContentType,
    MissingHeaders,
    UndefinedContentType,
    UndefinedStatusCode,
)

from dfa.platform.identity.guard import CSRF_HEADER, SESSION_COOKIE
from dfa.platform.service import IDEMPOTENCY_KEY_MAX_LENGTH

IDEMPOTENCY_KEY = "Idempotency-Key"
REQUEST_TIMEOUT_S = 60
# A response that breaks the description: its status, media type, headers or body are not the documented ones.
SCHEMA_VIOLATIONS = (
    UndefinedStatusCode, UndefinedContentType, MissingContentType, MalformedMediaType, MissingHeaders, JsonSchemaError,
    MalformedJson,
)
VALIDATION_ERROR = "/problems/validation-error"
# Pydantic's codes for a field validator's own rule, as opposed to a constraint of the field's schema.
SEMANTIC_ERROR_CODES = frozenset({"value_error", "assertion_error"})
FLOAT_EXACT_INTEGERS = 2**53


@dataclass(frozen=True)
class Credential:
    """What a signed-in person's browser sends: the session cookie, and the session's CSRF token on changes."""

    cookie: str
    csrf_token: str


def session_auth(credential: Credential) -> type:
    """An auth provider putting `credential` on every generated request."""

    class SessionAuth:
        def get(self, case: Case, context: schemathesis.AuthContext) -> Credential:
            return credential

        def set(self, case: Case, data: Credential, context: schemathesis.AuthContext) -> None:
            case.cookies = {**(case.cookies or {}), SESSION_COOKIE: data.cookie}
            case.headers = {**(case.headers or {}), CSRF_HEADER: data.csrf_token}

    return SessionAuth


def freshen_idempotency_key(case: Case) -> None:
    """Give a request a key of its own when the generated one is well formed (a fuzzer draws the same short keys
    again and again, which would make every later request a replay); a malformed key is left to be refused."""
    key = (case.headers or {}).get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and 0 < len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH and all(33 <= ord(c) <= 126 for c in key):
        case.headers[IDEMPOTENCY_KEY] = str(uuid.uuid4())


@schemathesis.check
def well_formed_data_is_not_called_malformed(ctx, response, case: Case) -> bool | None:
    """`positive_data_acceptance` for an API whose business refusals are 422s: data the description calls valid
    is never refused for breaking a constraint the description could have stated (a type, a bound, a length, a
    required field). Rules no JSON Schema can state (check digits, an adult's date of birth) are value errors."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        problem = response.json()
    except ValueError:
        return None
    if problem.get("type") != VALIDATION_ERROR:
        return None
    undocumented = [
        error for error in problem.get("errors", [])
        if error.get("code") not in SEMANTIC_ERROR_CODES and not _inexpressible(case, error.get("field", ""))
    ]
    if undocumented:
        raise AssertionError(f"valid data was refused for a constraint the description does not state: {undocumented}")
    return None


def _inexpressible(case: Case, field: str) -> bool:
    """Whether the value the fuzzer drew for `field` cannot reach the platform as it was drawn: a binary float
    (the platform takes amounts as exact integers and ratios as decimals, and a drawn 5.0 or 0.38756967003236 is
    neither), an integer past 2^53 (the fuzzer keeps bounds as floats, so it draws 2^63 for "at most 2^63-1"), or
    a null in a form or a path (which carry only text, so the null arrives as "null" or "None"; a stateful step
    takes it from a response field that is null, such as a staff user's party)."""
    location, _, path = field.partition(".")
    value = {"body": case.body, "query": case.query, "path": case.path_parameters}.get(location)
    for part in filter(None, path.split(".")):
        if isinstance(value, dict):
            value = value.get(part, value)  # a part it lacks is the tag pydantic names a union's member by
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False
    as_text = location == "path" or (location == "body" and "form" in (case.media_type or ""))
    beyond_float = isinstance(value, int) and not isinstance(value, bool) and abs(value) > FLOAT_EXACT_INTEGERS
    return isinstance(value, float) or beyond_float or (value is None and as_text)


@dataclass
class Tally:
    """What the fuzzer sent and what its checks found, across callers and operations."""

    operations: set[str] = field(default_factory=set)
    callers: set[str] = field(default_factory=set)
    requests: int = 0
    server_errors: int = 0
    stateful_steps: int = 0
    stateful_runs_cut_short: int = 0  # ended early by Hypothesis when a replayed scenario took another turn
    planted_server_errors: int = 0
    statuses: Counter = field(default_factory=Counter)  # answers by class: 2xx, 4xx, 5xx
    inferred_links: int = 0
    schema_violations: dict[str, str] = field(default_factory=dict)
    other_failures: dict[str, str] = field(default_factory=dict)
    server_error_cases: dict[str, str] = field(default_factory=dict)

    def sent(self, caller: str, case: Case, status_code: int) -> None:
        self.callers.add(caller)
        self.operations.add(case.operation.label)
        self.requests += 1
        self.statuses[f"{status_code // 100}xx"] += 1
        if status_code >= 500:
            self.server_errors += 1

    def found(self, caller: str, failures: Iterable[Failure]) -> None:
        for failure in failures:
            key = f"{caller}: {failure.operation}: {failure.title}"
            text = f"{key}: {failure.message}".strip()
            if isinstance(failure, ServerError):
                self.server_error_cases.setdefault(key, text)
            elif isinstance(failure, SCHEMA_VIOLATIONS):
                self.schema_violations.setdefault(key, text)
            else:
                self.other_failures.setdefault(key, text)

    def violations(self) -> list[str]:
        return [*self.server_error_cases.values(), *self.schema_violations.values(), *self.other_failures.values()]


def call_and_check(case: Case, *, caller: str, tally: Tally, **kwargs) -> None:
    """Send `case` with a fresh idempotency key, count it, run every check on the answer; raises the failures."""
    freshen_idempotency_key(case)
    response = case.call(timeout=REQUEST_TIMEOUT_S, **kwargs)
    tally.sent(caller, case, response.status_code)
    try:
        case.validate_response(response)
    except FailureGroup as failures:
        tally.found(caller, failures.exceptions)
        raise

