"""Schemathesis over the platform's OpenAPI description (REQ-54, REQ-58): every operation, as every kind of caller.

What runs: the platform served over real HTTP on a database of its own (the fuzzer's junk never reaches the
shared test database). Each test runs once per caller: anonymous (with whatever credentials schemathesis makes
up), then a freshly created and signed-in investor, issuer, compliance officer, operator administrator and
auditor, whose session cookie and CSRF token go on every request. Every mutating request gets an
Idempotency-Key of its own (a malformed one the fuzzer draws on purpose is left to be refused).

- Stateless: `parametrize()` draws valid and invalid requests for every operation and runs every check:
  no server error; status, media type, headers and body as documented; invalid data refused; a missing
  required header refused; credentials not ignored; `Allow` on a 405; and, in place of
  `positive_data_acceptance` (business rules refuse well-formed data with documented 422s), valid data never
  refused for a constraint the description does not state.
- Stateful: the state machine chains operations along the links schemathesis infers from the description
  (FastAPI writes no OpenAPI links; 1840 are inferred from response fields and path parameters), with the same
  checks plus those that need history (use after free, resource availability).

What passes: no check fails. A last test plants the emission listing's old defect on one more route of the same
app and asserts the same checks report its server error.

Short form (`make test`): one example per operation and caller and six short stateful runs per caller, fixed
seed, about a minute. Long form, for local runs (about half an hour on 2 cores): `.venv/bin/pytest
tests/attack/test_api_fuzzing.py --long-form` adds the coverage phase (boundary, missing and wrongly typed
values of every parameter, undeclared methods), 25 examples per operation and caller, and 50 stateful runs of up
to 30 steps per caller.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
from fastapi import APIRouter
from schemathesis.config._checks import (
    MISSING_REQUIRED_HEADER_EXPECTED_STATUSES,
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
)
from schemathesis.core.failures import FailureGroup

from dfa.issuance.service import applications
from dfa.main import create_app
from dfa.platform.database import Database, run_migrations
from dfa.platform.settings import Settings
from dfa.platform.types import AfterBigint
from dfa.platform.web import SessionDep, UnitOfWorkRoute
from tests.attack.fuzzing import (
    REQUEST_TIMEOUT_S,
    Credential,
    Tally,
    call_and_check,
    freshen_idempotency_key,
    session_auth,
)
from tests.conftest import outside_transaction, url_of
from tests.evidence import record
from tests.identity import Users, cookie_of, create_user, sign_in
from tests.servers import served

pytestmark = pytest.mark.attack

ANONYMOUS = "anonymous"
CALLERS = (ANONYMOUS, *Users.ROLES)
SEED = 20_260_504
SIGN_OUT = "/v1/auth/sign-out"
WITHDRAWAL_SUBMISSION = "/v1/withdrawals/submission"
# Examples per operation and caller (the long form adds the coverage phase's boundary cases), stateful
# scenarios per caller and steps per scenario: short and long form.
EXAMPLES_SHORT, EXAMPLES_LONG = 1, 25
SCENARIOS_SHORT, SCENARIOS_LONG = 6, 50
STEPS_SHORT, STEPS_LONG = 10, 30
# Defects this suite found (or led to, probing where random ids cannot reach), each fixed with a regression test.
BUGS_FIXED = (
    "GET /v1/emissions?after= above 2^31-1 answered 500 (a 64-bit parameter for a 32-bit column)",
    "a buy order worth at most 10^17 tiyn but more with the fee answered 500 (the ledger holds at most 10^17)",
    "a bilateral instruction paying 10^17 tiyn answered 500 on the payer's side (the fee on top)",
    "registering an emission of more than 10^17 units answered 500 (issued in one ledger transfer)",
    "instants, days and booleans written as numbers (0.5, 0, 1) were read as 1970 or true instead of refused",
    "the contact e-mail's pattern excluded other characters for the platform than for the API description",
    "ratios and shares took any string pydantic reads as a decimal; the description said any string",
    "a 405 named only the methods of one route of the resource in Allow",
    "no operation documented its problem answers (401, 403, 404, 409, 428, ...) nor the 422's problem+json",
    "every operation was documented as needing credentials, the public ones too",
    "the Idempotency-Key and the OAuth grant type were documented looser than the platform reads them",
)


@dataclass
class FuzzedPlatform:
    url: str
    database: Database
    settings: Settings
    started: float


@pytest.fixture(scope="module")
async def fuzzed_platform(database: Database, database_url: str, settings: Settings, tmp_path_factory) -> (
    AsyncIterator[FuzzedPlatform]
):
    """The platform on a database of its own (migrated, then filled only by the fuzzer), served over HTTP as it
    starts in production; its periodic jobs are off, as in the rest of the suite."""
    name = f"dfa_fuzz_{uuid.uuid4().hex[:12]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}"')
    url = url_of(database_url, name)
    try:
        await asyncio.to_thread(run_migrations, url)
        fuzz_settings = settings.model_copy(update={"database_url": url, "data_dir": tmp_path_factory.mktemp("fuzz")})
        fuzz_database = Database.from_url(url, fuzz_settings)
        try:
            # The app opens (and closes) its own engine on the server's event loop; this one creates the users.
            with served(create_app(fuzz_settings), lifespan="on") as base_url:
                yield FuzzedPlatform(base_url, fuzz_database, fuzz_settings, time.monotonic())
        finally:
            await fuzz_database.dispose()
    finally:
        await outside_transaction(database, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def tally(fuzzed_platform: FuzzedPlatform, long_form: bool) -> Iterator[Tally]:
    """Counts across the whole suite, kept as evidence once every caller has run (pass or fail)."""
    counts = Tally()
    yield counts
    violations = counts.violations()
    record(
        "api-fuzzing",
        title="API fuzzing over the OpenAPI description, stateless and stateful, as every role",
        requirements=["REQ-54", "REQ-58"],
        method=(
            "Schemathesis generated valid and invalid requests for every operation of the OpenAPI description and "
            "sent them over HTTP to the platform on a database of its own, anonymously and signed in as each role, "
            "then chained operations statefully; every answer was checked for server errors and for conformance "
            "to the documented statuses, media types, headers and bodies."
        ),
        form="long" if long_form else "short",
        figures={
            "operations": len(counts.operations),
            "roles": len(counts.callers),
            "test_cases": counts.requests,
            "answers_2xx": counts.statuses["2xx"],
            "answers_4xx": counts.statuses["4xx"],
            "server_errors": counts.server_errors,
            "schema_violations": len(counts.schema_violations),
            "other_check_failures": len(counts.other_failures),
            "stateful_steps": counts.stateful_steps,
            "stateful_runs_cut_short": counts.stateful_runs_cut_short,
            "inferred_links": counts.inferred_links,
            "planted_server_errors_found": counts.planted_server_errors,
            "bugs_fixed": len(BUGS_FIXED),
            "duration_s": round(time.monotonic() - fuzzed_platform.started, 1),
        },
        violations=violations,
    )


@dataclass(frozen=True)
class Caller:
    role: str
    credential: Credential | None  # None: anonymous


@pytest.fixture(scope="module", params=CALLERS)
async def caller(request: pytest.FixtureRequest, fuzzed_platform: FuzzedPlatform) -> Caller:
    """A caller of the suite: anonymous, or a user of one role created and signed in for this run."""
    role = request.param
    if role == ANONYMOUS:
        return Caller(role, None)
    login, _, _, secret = await create_user(fuzzed_platform.database, fuzzed_platform.settings, role=role)
    response = sign_in(fuzzed_platform.url, login, totp_secret=secret)
    assert response.status_code == 200, response.text
    return Caller(role, Credential(cookie_of(response), response.json()["csrf_token"]))


def fuzzing_config(*, long_form: bool, signed_in: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "operations": [
                # GET on this path is GET /v1/withdrawals/{withdrawal_id} for the id "submission" (refused with 422),
                # not a method the resource lacks.
                {"include-path": WITHDRAWAL_SUBMISSION, "checks": {"unsupported_method": {"enabled": False}}},
                # Signing out would end the session the rest of the run uses; anonymous callers fuzz it.
                *([{"include-path": SIGN_OUT, "enabled": False}] if signed_in else []),
            ],
            "seed": SEED,
            "suppress-health-check": ["all"],
            "request-timeout": REQUEST_TIMEOUT_S,
            "generation": {
                "max-examples": EXAMPLES_LONG if long_form else EXAMPLES_SHORT,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "phases": {
                "coverage": {"enabled": long_form},
                "stateful": {"max-steps": STEPS_LONG if long_form else STEPS_SHORT},
            },
            "checks": {
                # A body too large for the platform is refused before it is read, with a documented 413.
                "negative_data_rejection": {"expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]},
                # A change without its Idempotency-Key is answered 428 Precondition Required, as documented.
                "missing_required_header": {"expected-statuses": [*MISSING_REQUIRED_HEADER_EXPECTED_STATUSES, "428"]},
                # Replaced by `well_formed_data_is_not_called_malformed`: a business rule refuses well-formed data
                # with a documented 422 problem of its own type, which this check cannot tell from malformed data.
                "positive_data_acceptance": {"enabled": False},
            },
        }
    )


def schema_for(platform: FuzzedPlatform, caller: Caller, *, long_form: bool):
    """The platform's description as `caller` fuzzes it: its credentials on every request."""
    config = fuzzing_config(long_form=long_form, signed_in=caller.credential is not None)
    schema = schemathesis.openapi.from_url(f"{platform.url}/openapi.json", config=config)
    if caller.credential is not None:
        schema.auth(refresh_interval=None)(session_auth(caller.credential))
    return schema


@pytest.fixture
def api_schema(fuzzed_platform: FuzzedPlatform, caller: Caller, long_form: bool):
    return schema_for(fuzzed_platform, caller, long_form=long_form)


@pytest.fixture(autouse=True)
def node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32 names each operation's subtest through `Node._nodeid`, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


fuzzed_api = schemathesis.pytest.from_fixture("api_schema")


@fuzzed_api.parametrize()
def test_no_request_of_any_caller_gets_a_server_error_or_an_undocumented_answer(case, caller, tally):
    """REQ-54, REQ-58: every operation, as every caller, answers valid and invalid requests as documented."""
    call_and_check(case, caller=caller.role, tally=tally)


def test_chains_of_operations_along_their_links_get_no_server_error_or_undocumented_answer(
    fuzzed_platform: FuzzedPlatform, caller: Caller, tally: Tally, long_form: bool
):
    """REQ-54, REQ-58: operations chained statefully (a resource created, then read, changed, listed or deleted
    with the ids the platform answered) answer as documented, and no deleted resource comes back."""
    role = caller.role
    schema = schema_for(fuzzed_platform, caller, long_form=long_form)
    machine = schema.as_state_machine()
    # FastAPI writes no OpenAPI links: schemathesis infers them from the operations' parameters and responses.
    tally.inferred_links = max(tally.inferred_links, schema.statistic.transitions.total)

    class Chains(machine):
        def call(self, case, **kwargs):
            freshen_idempotency_key(case)
            response = case.call(timeout=REQUEST_TIMEOUT_S, **kwargs)
            tally.sent(role, case, response.status_code)
            tally.stateful_steps += 1
            return response

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            try:
                super().validate_response(response, case, additional_checks=additional_checks, **kwargs)
            except FailureGroup as failures:
                tally.found(role, failures.exceptions)
                raise

    found_before = len(tally.violations())
    try:
        Chains.run(
            settings=hypothesis.settings(
                max_examples=SCENARIOS_LONG if long_form else SCENARIOS_SHORT,
                stateful_step_count=STEPS_LONG if long_form else STEPS_SHORT,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.generate],
            )
        )
    except hypothesis.errors.Flaky:
        # The platform's state moves on between scenarios, so a scenario Hypothesis replays can take another turn
        # (a list that was empty now is not); schemathesis' own runner ends such a run the same way. What the
        # checks found up to then counts.
        tally.stateful_runs_cut_short += 1
        assert len(tally.violations()) == found_before, tally.violations()[found_before:]


PLANTED = "/v1/planted/emissions"
PLANTED_EXAMPLES = 100


def planted_defect(app) -> None:
    """Add to `app` the emission listing as it was before this suite found its defect: `after` is documented as a
    64-bit integer but compared with the 32-bit asset id column, so PostgreSQL refuses larger values."""
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.get(PLANTED, response_model=list[dict])
    async def list_emissions(session: SessionDep, after: AfterBigint = None) -> list[dict]:
        found = await applications.list_emission_terms(session, after=after, limit=10)
        return [{"registration_number": terms.emission.registration_number} for terms in found]

    app.include_router(router)


def test_the_fuzzer_reports_a_planted_server_error(fuzzed_platform: FuzzedPlatform, tally: Tally, long_form: bool):
    """The checker fails on a deliberately broken platform: the same app with the emission listing's old defect
    planted on one more route gets a server error reported by the same checks."""
    app = create_app(fuzzed_platform.settings)
    planted_defect(app)
    found = Tally()
    with served(app, lifespan="on") as url:
        config = fuzzing_config(long_form=long_form, signed_in=False)
        operation = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)[PLANTED]["GET"]

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=PLANTED_EXAMPLES, derandomize=True, database=None, deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck), phases=[hypothesis.Phase.generate],
        )
        def fuzz(case) -> None:
            call_and_check(case, caller=ANONYMOUS, tally=found)

        with pytest.raises(BaseExceptionGroup):
            fuzz()

    tally.planted_server_errors = found.server_errors
    assert found.server_errors > 0
    assert any(PLANTED in violation for violation in found.server_error_cases.values()), found.violations()
