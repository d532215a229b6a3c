"""The authorization matrix (REQ-54: users are identified, authenticated and authorised; an issuer's
information is confidential).

`POLICY` is written by hand from the route guards: every route of the app and the roles it admits,
or `PUBLIC` for the few anyone may call without signing in. The suite checks that the table names
exactly the app's routes, then calls every route as every kind of caller: an anonymous caller gets
401, a role the policy leaves out gets 403 (recorded in the security-event log), an admitted role
is never turned away. Object-level checks follow: investors and issuers see only their own parties,
accounts and credentials, and another owner's objects are "not found", never "forbidden". Every route
with a path id is then called by each investor and issuer role it admits with the ids of another
investor's and another issuer's real objects: each answers exactly as for an id that does not exist,
shows nothing of theirs and writes nothing. What the matrix did is kept for the protocol (suite
`authorization-matrix`).
"""

import base64
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi.routing import APIRoute

from dfa.issuance.service import emissions
from dfa.ledger import service as ledger
from dfa.main import create_app
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from tests.attack.hostile import Person, Tally, events_of, path_with, person, routes_of
from tests.attack.hostile import Route as AppRoute
from tests.evidence import record
from tests.factories import make_party, new_asset_code, new_identifier
from tests.identity import PASSWORD, Users, create_user, sign_in, signed_in_client
from tests.issuance.custodians import make_underlying_asset
from tests.issuance.factories import make_application
from tests.issuance.test_issuers import PDF
from tests.market import fund, onboarded_issuer
from tests.settlement.test_cash import new_iban

PROBLEM = "application/problem+json"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

INVESTOR, ISSUER, COMPLIANCE, ADMIN, AUDITOR = "investor", "issuer", "compliance_officer", "operator_admin", "auditor"
ROLES = (INVESTOR, ISSUER, COMPLIANCE, ADMIN, AUDITOR)
EVERYONE = frozenset(ROLES)
STAFF = frozenset({COMPLIANCE, ADMIN, AUDITOR})
PUBLIC = "PUBLIC"  # anyone may call the route without credentials
ANONYMOUS = "anonymous"
CALLERS = (ANONYMOUS, *ROLES)

Route = tuple[str, str]

POLICY: dict[Route, frozenset[str] | str] = {
    # Platform
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/problems/{slug}"): PUBLIC,
    # Onboarding, sign-in and recovery
    ("POST", "/v1/onboarding"): PUBLIC,
    ("POST", "/v1/auth/sign-in"): PUBLIC,
    ("POST", "/v1/auth/second-factor"): PUBLIC,
    ("POST", "/v1/auth/sign-out"): EVERYONE,
    ("POST", "/v1/auth/password"): EVERYONE,
    ("POST", "/v1/auth/recovery"): PUBLIC,
    ("POST", "/v1/auth/recovery/completion"): PUBLIC,
    ("POST", "/v1/oauth/token"): PUBLIC,
    ("GET", "/v1/me"): EVERYONE,
    # Users
    ("POST", "/v1/users"): frozenset({ADMIN}),
    ("GET", "/v1/users"): frozenset({ADMIN, AUDITOR}),
    ("GET", "/v1/users/{user_id}"): frozenset({ADMIN, AUDITOR}),
    ("PUT", "/v1/users/{user_id}/roles"): frozenset({ADMIN}),
    ("POST", "/v1/users/{user_id}/unlock"): frozenset({ADMIN}),
    ("POST", "/v1/users/{user_id}/disable"): frozenset({ADMIN}),
    ("POST", "/v1/users/{user_id}/enable"): frozenset({ADMIN}),
    # Parties and identification
    ("POST", "/v1/parties"): frozenset({ADMIN, COMPLIANCE}),
    ("GET", "/v1/parties"): EVERYONE,
    ("GET", "/v1/parties/{party_id}"): EVERYONE,
    ("GET", "/v1/parties/{party_id}/kyc-history"): EVERYONE,
    ("POST", "/v1/parties/{party_id}/kyc-decisions"): frozenset({COMPLIANCE}),
    ("POST", "/v1/parties/{party_id}/biometric-identification"): frozenset({INVESTOR, COMPLIANCE}),
    # API credentials
    ("POST", "/v1/credentials"): frozenset({ISSUER}),
    ("GET", "/v1/credentials"): frozenset({ISSUER, ADMIN}),
    ("POST", "/v1/credentials/{credential_id}/rotation"): frozenset({ISSUER}),
    ("POST", "/v1/credentials/{credential_id}/revocation"): frozenset({ISSUER, ADMIN}),
    # Security-event log
    ("GET", "/v1/security-events"): frozenset({AUDITOR, COMPLIANCE}),
    ("GET", "/v1/security-events/verification"): frozenset({AUDITOR, COMPLIANCE}),
    # Business-day calendar
    ("GET", "/v1/calendar/days"): EVERYONE,
    ("PUT", "/v1/calendar/days/{day}"): frozenset({ADMIN}),
    ("DELETE", "/v1/calendar/days/{day}"): frozenset({ADMIN}),
    # Ledger
    ("POST", "/v1/ledger/assets"): frozenset({ADMIN}),
    ("GET", "/v1/ledger/assets"): EVERYONE,
    ("GET", "/v1/ledger/assets/{code}"): EVERYONE,
    ("POST", "/v1/ledger/accounts"): frozenset({ADMIN}),
    ("GET", "/v1/ledger/accounts"): EVERYONE,
    ("GET", "/v1/ledger/accounts/{account_id}"): EVERYONE,
    ("GET", "/v1/ledger/accounts/{account_id}/entries"): EVERYONE,
    ("POST", "/v1/ledger/transfers"): frozenset({ADMIN}),
    ("GET", "/v1/ledger/transfers/{transfer_id}"): STAFF,
    ("POST", "/v1/ledger/batches"): frozenset({ADMIN}),
    ("POST", "/v1/ledger/holds"): frozenset({ADMIN}),
    ("GET", "/v1/ledger/holds/{hold_id}"): STAFF,
    ("POST", "/v1/ledger/holds/{hold_id}/post"): frozenset({ADMIN}),
    ("POST", "/v1/ledger/holds/{hold_id}/void"): frozenset({ADMIN}),
    ("GET", "/v1/ledger/assets/{code}/holders"): STAFF,
    ("GET", "/v1/ledger/assets/{code}/holders/export"): STAFF,
    ("GET", "/v1/ledger/verification"): STAFF,
    # Custody
    ("GET", "/v1/wallet-addresses"): EVERYONE,
    ("POST", "/v1/wallet-addresses"): frozenset({INVESTOR, ISSUER, ADMIN}),
    ("GET", "/v1/wallets"): STAFF,
    ("GET", "/v1/chain/tokens"): STAFF,
    ("GET", "/v1/chain/status"): STAFF,
    ("GET", "/v1/chain/comparison"): STAFF,
    ("GET", "/v1/chain/comparison/{code}"): STAFF,
    # Money in and out
    ("GET", "/v1/payment-reference"): EVERYONE,
    ("POST", "/v1/bank-accounts"): frozenset({INVESTOR, ISSUER, ADMIN}),
    ("GET", "/v1/bank-accounts"): EVERYONE,
    ("GET", "/v1/bank-accounts/{bank_account_id}"): EVERYONE,
    ("POST", "/v1/bank-accounts/{bank_account_id}/verification"): frozenset({ADMIN}),
    ("POST", "/v1/bank-accounts/{bank_account_id}/revocation"): frozenset({INVESTOR, ISSUER, ADMIN}),
    ("POST", "/v1/bank-statements"): frozenset({ADMIN}),
    ("GET", "/v1/bank-statements"): STAFF,
    ("POST", "/v1/bank-statements/fetch"): frozenset({ADMIN}),
    ("GET", "/v1/bank-statement-lines"): STAFF,
    ("POST", "/v1/bank-statement-lines/{line_id}/assignment"): frozenset({ADMIN}),
    ("POST", "/v1/bank-statement-lines/{line_id}/return"): frozenset({ADMIN}),
    ("POST", "/v1/withdrawals"): frozenset({INVESTOR, ISSUER}),
    ("GET", "/v1/withdrawals"): EVERYONE,
    ("GET", "/v1/withdrawals/{withdrawal_id}"): EVERYONE,
    ("POST", "/v1/withdrawals/{withdrawal_id}/cancellation"): frozenset({INVESTOR, ISSUER, ADMIN}),
    ("POST", "/v1/withdrawals/submission"): frozenset({ADMIN}),
    # Trading
    ("POST", "/v1/settlement-instructions"): frozenset({INVESTOR, ISSUER}),
    ("GET", "/v1/settlement-instructions"): EVERYONE,
    ("GET", "/v1/settlement-instructions/{instruction_id}"): EVERYONE,
    ("POST", "/v1/settlement-instructions/{instruction_id}/cancellation"): frozenset({INVESTOR, ISSUER, ADMIN}),
    ("POST", "/v1/settlement-instructions/{instruction_id}/resubmission"): frozenset({INVESTOR, ISSUER}),
    ("POST", "/v1/settlement/end-of-day"): frozenset({ADMIN}),
    ("POST", "/v1/orders"): frozenset({INVESTOR, ISSUER}),
    ("GET", "/v1/orders"): EVERYONE,
    ("GET", "/v1/orders/{order_id}"): EVERYONE,
    ("POST", "/v1/orders/{order_id}/cancellation"): frozenset({INVESTOR, ISSUER, ADMIN}),
    ("GET", "/v1/trades"): EVERYONE,
    ("GET", "/v1/market-data/{base}"): EVERYONE,
    ("PUT", "/v1/trading-status/{asset}"): frozenset({ADMIN, COMPLIANCE}),
    # Issuers, their documents and underlying assets (an issuer's information is confidential: REQ-20)
    ("POST", "/v1/issuers"): frozenset({ISSUER, ADMIN}),
    ("GET", "/v1/issuers"): frozenset({ISSUER, COMPLIANCE, ADMIN, AUDITOR}),
    ("GET", "/v1/issuers/{party_id}"): EVERYONE,
    ("POST", "/v1/issuers/{party_id}/representatives"): frozenset({ISSUER, ADMIN}),
    ("GET", "/v1/issuers/{party_id}/representatives"): EVERYONE,
    ("POST", "/v1/issuers/{party_id}/representatives/{representative_id}/revocation"): frozenset({ISSUER, ADMIN}),
    ("POST", "/v1/issuers/{party_id}/documents"): frozenset({ISSUER, ADMIN}),
    ("GET", "/v1/issuers/{party_id}/documents"): EVERYONE,
    ("GET", "/v1/documents/{document_id}"): EVERYONE,
    ("GET", "/v1/documents/{document_id}/content"): EVERYONE,
    ("POST", "/v1/issuers/{party_id}/underlying-assets"): frozenset({ISSUER, ADMIN}),
    ("GET", "/v1/issuers/{party_id}/underlying-assets"): EVERYONE,
    ("GET", "/v1/underlying-assets/{underlying_asset_id}"): EVERYONE,
    ("POST", "/v1/underlying-assets/{underlying_asset_id}/certifications"): frozenset({ADMIN, COMPLIANCE}),
    ("GET", "/v1/underlying-assets/{underlying_asset_id}/certifications"): EVERYONE,
    ("GET", "/v1/issuers/{party_id}/blocks"): EVERYONE,
    ("POST", "/v1/issuers/{party_id}/blocks"): frozenset({ADMIN}),
    ("POST", "/v1/issuers/{party_id}/blocks/{block_id}/lifting"): frozenset({ADMIN}),
    # Emission applications and emissions
    ("POST", "/v1/emission-applications"): frozenset({ISSUER}),
    ("GET", "/v1/emission-applications"): frozenset({ISSUER, COMPLIANCE, ADMIN, AUDITOR}),
    ("GET", "/v1/emission-applications/{application_id}"): frozenset({ISSUER, COMPLIANCE, ADMIN, AUDITOR}),
    ("POST", "/v1/emission-applications/{application_id}/acceptance"): frozenset({ADMIN}),
    ("POST", "/v1/emission-applications/{application_id}/return"): frozenset({ADMIN}),
    ("POST", "/v1/emission-applications/{application_id}/preliminary-refusal"): frozenset({ADMIN}),
    ("POST", "/v1/emission-applications/{application_id}/objections"): frozenset({ISSUER}),
    ("POST", "/v1/emission-applications/{application_id}/hearing"): frozenset({ADMIN}),
    ("POST", "/v1/emission-applications/{application_id}/withdrawal"): frozenset({ISSUER}),
    ("POST", "/v1/emission-applications/{application_id}/registration"): frozenset({ADMIN}),
    ("GET", "/v1/emissions"): EVERYONE,
    ("GET", "/v1/emissions/{registration_number}"): EVERYONE,
    # Snapshots, placement and redemption
    ("POST", "/v1/emissions/{registration_number}/snapshots"): frozenset({ISSUER, ADMIN, COMPLIANCE}),
    ("GET", "/v1/emissions/{registration_number}/snapshots/{snapshot_id}"): frozenset(
        {ISSUER, ADMIN, COMPLIANCE, AUDITOR}
    ),
    ("POST", "/v1/emissions/{registration_number}/placements"): frozenset({ISSUER}),
    ("GET", "/v1/placements/{placement_id}"): EVERYONE,
    ("POST", "/v1/placements/{placement_id}/subscriptions"): frozenset({INVESTOR, ISSUER}),
    ("GET", "/v1/placements/{placement_id}/subscriptions"): EVERYONE,
    ("POST", "/v1/subscriptions/{subscription_id}/cancellation"): frozenset({INVESTOR, ISSUER}),
    ("POST", "/v1/placements/{placement_id}/allocation"): frozenset({ISSUER, ADMIN}),
    ("GET", "/v1/placements/{placement_id}/report"): frozenset({ISSUER, ADMIN, COMPLIANCE, AUDITOR}),
    ("POST", "/v1/emissions/{registration_number}/redemptions"): frozenset({ISSUER, ADMIN}),
    ("GET", "/v1/emissions/{registration_number}/redemptions"): EVERYONE,
    # Holder protections, trading suspensions, trading platforms, the central depository's export
    ("POST", "/v1/freezes"): frozenset({ADMIN, COMPLIANCE}),
    ("POST", "/v1/freezes/{freeze_id}/lifting"): frozenset({ADMIN, COMPLIANCE}),
    ("GET", "/v1/freezes"): EVERYONE,
    ("GET", "/v1/freezes/{freeze_id}"): EVERYONE,
    ("POST", "/v1/forced-transfers"): frozenset({ADMIN}),
    ("GET", "/v1/forced-transfers"): STAFF,
    ("POST", "/v1/suspensions"): frozenset({ADMIN}),
    ("POST", "/v1/suspensions/{suspension_id}/lifting"): frozenset({ADMIN}),
    ("GET", "/v1/suspensions"): STAFF | {ISSUER},
    ("GET", "/v1/emissions/{registration_number}/holders-registry/export"): STAFF | {ISSUER},
    ("POST", "/v1/trading-platforms"): frozenset({ADMIN}),
    ("GET", "/v1/trading-platforms"): EVERYONE,
    ("POST", "/v1/emissions/{registration_number}/platform-transfers"): frozenset({ISSUER}),
    ("POST", "/v1/emissions/{registration_number}/platform-returns"): frozenset({ISSUER}),
    ("GET", "/v1/platform-transfers"): STAFF | {ISSUER},
    ("GET", "/v1/platform-transfers/{transfer_id}"): STAFF | {ISSUER},
    ("POST", "/v1/platform-transfers/{transfer_id}/refresh"): frozenset({ADMIN, COMPLIANCE, ISSUER}),
    # Reconciliation
    ("POST", "/v1/reconciliation/runs"): frozenset({COMPLIANCE, ADMIN}),
    ("GET", "/v1/reconciliation/runs"): STAFF,
    ("GET", "/v1/reconciliation/reports"): STAFF,
    ("GET", "/v1/reconciliation/reports/{report_id}"): STAFF,
    ("GET", "/v1/reconciliation/reports/{report_id}/document"): STAFF,
    ("GET", "/v1/reconciliation/reports/{report_id}/export"): STAFF,
    ("POST", "/v1/reconciliation/reports/{report_id}/sign-off"): frozenset({COMPLIANCE}),
    ("GET", "/v1/reconciliation/signing-key"): EVERYONE,
    ("GET", "/v1/reconciliation/breaches"): STAFF,
    ("POST", "/v1/reconciliation/breaches/{breach_id}/acknowledgement"): frozenset({COMPLIANCE}),
    ("GET", "/v1/reconciliation/emissions/{registration_number}/coverage"): STAFF,
    ("GET", "/v1/reconciliation/emissions/{registration_number}/holder-roots"): EVERYONE,
    ("GET", "/v1/reconciliation/reports/{report_id}/proofs/{registration_number}"): EVERYONE,
    # Cabinet: the shell and the compliance pages
    ("GET", "/static/cabinet.css"): PUBLIC,
    ("GET", "/"): EVERYONE,
    ("GET", "/sign-in"): PUBLIC,
    ("POST", "/sign-in"): PUBLIC,
    ("POST", "/sign-in/second-factor"): PUBLIC,
    ("POST", "/sign-out"): EVERYONE,
    ("GET", "/compliance/reports"): STAFF,
    ("GET", "/compliance/reports/{report_id}"): STAFF,
    ("GET", "/compliance/breaches"): STAFF,
    ("GET", "/compliance/emissions/{asset_code}/coverage"): STAFF,
    ("POST", "/compliance/breaches/{breach_id}/acknowledge"): frozenset({COMPLIANCE}),
    ("POST", "/compliance/reports/{report_id}/sign-off"): frozenset({COMPLIANCE}),
    ("GET", "/compliance/security-events"): frozenset({COMPLIANCE, AUDITOR}),
    # Account pages
    ("GET", "/account"): EVERYONE,
    ("POST", "/account/password"): EVERYONE,
    ("GET", "/recovery"): PUBLIC,
    ("POST", "/recovery"): PUBLIC,
    ("POST", "/recovery/completion"): PUBLIC,
    ("GET", "/recovery/done"): PUBLIC,
    # Portfolio, money, statements and proofs pages
    ("GET", "/portfolio"): frozenset({INVESTOR}),
    ("GET", "/money"): frozenset({INVESTOR}),
    ("POST", "/money/bank-accounts"): frozenset({INVESTOR}),
    ("POST", "/money/withdrawals"): frozenset({INVESTOR}),
    ("POST", "/money/withdrawals/{withdrawal_id}/cancel"): frozenset({INVESTOR}),
    ("GET", "/statements"): frozenset({INVESTOR}),
    ("GET", "/statements/download"): frozenset({INVESTOR}),
    ("GET", "/proofs/{registration_number}"): frozenset({INVESTOR}),
    # Catalogue and trading pages
    ("GET", "/catalogue"): EVERYONE,
    ("GET", "/catalogue/{registration_number}"): EVERYONE,
    ("GET", "/orders"): frozenset({INVESTOR}),
    ("POST", "/orders/preview"): frozenset({INVESTOR}),
    ("POST", "/orders"): frozenset({INVESTOR}),
    ("POST", "/orders/{order_id}/cancel"): frozenset({INVESTOR}),
    ("GET", "/trades"): frozenset({INVESTOR}),
    # Issuer pages
    ("GET", "/issuer/applications"): frozenset({ISSUER}),
    ("GET", "/issuer/applications/{application_id}"): frozenset({ISSUER}),
    ("GET", "/issuer/emissions"): frozenset({ISSUER}),
    ("GET", "/issuer/emissions/{registration_number}/holders"): frozenset({ISSUER}),
    # Admin pages
    ("GET", "/admin/bank-lines"): STAFF,
    ("POST", "/admin/bank-lines/{line_id}/assignment"): frozenset({ADMIN}),
    ("POST", "/admin/bank-lines/{line_id}/return"): frozenset({ADMIN}),
    ("GET", "/admin/users"): frozenset({ADMIN, AUDITOR}),
    ("GET", "/admin/users/{user_id}"): frozenset({ADMIN, AUDITOR}),
    ("POST", "/admin/users/{user_id}/roles"): frozenset({ADMIN}),
    ("POST", "/admin/users/{user_id}/unlock"): frozenset({ADMIN}),
    ("POST", "/admin/users/{user_id}/disable"): frozenset({ADMIN}),
    ("POST", "/admin/users/{user_id}/enable"): frozenset({ADMIN}),
    ("GET", "/admin/calendar"): STAFF,
    ("POST", "/admin/calendar/days"): frozenset({ADMIN}),
    ("POST", "/admin/calendar/days/{day}/removal"): frozenset({ADMIN}),
}

DOCUMENTATION_PATHS = frozenset({"/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"})
SIGN_OUT: Route = ("POST", "/v1/auth/sign-out")
SIGN_OUTS: tuple[Route, ...] = (SIGN_OUT, ("POST", "/sign-out"))
# What the guard answers when it turns a caller away; a public route never answers with these.
GUARD_REFUSALS = frozenset({"/problems/not-authenticated", "/problems/forbidden", "/problems/csrf-token-invalid"})
SAMPLE = base64.b64encode(b"matrix-face").decode()
TOO_MUCH = 10**12


@dataclasses.dataclass
class World:
    """Committed objects the matrix calls the routes with."""

    asset_code: str
    accounts: dict[str, int]  # available account of each investor and issuer actor
    parties: dict[str, uuid.UUID]
    undecided_party_id: uuid.UUID
    target_user_id: uuid.UUID
    transfer_id: uuid.UUID
    hold_id: uuid.UUID
    hold_to_void_id: uuid.UUID
    credentials: dict[str, uuid.UUID]
    past_day: date
    disposable: dict[tuple[Route, str], httpx.Client] = dataclasses.field(default_factory=dict)

    def owner(self, caller: str) -> str:
        """Whose objects a caller is pointed at: its own where it has any, an investor's otherwise."""
        return caller if caller in self.accounts else INVESTOR


def issue_credential(client: httpx.Client) -> uuid.UUID:
    response = client.post("/v1/credentials", json={"kind": "api_key", "label": "x"})
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["credential"]["id"])


@pytest.fixture(scope="module")
def matrix(long_form: bool) -> Iterator[Tally]:
    """The matrix's tally: every call it made and every wrong decision or leak, kept for the protocol."""
    kept = Tally()
    yield kept
    record(
        "authorization-matrix",
        title="Every route admits exactly the roles its policy names, and another owner's objects are not found",
        requirements=["REQ-54"],
        method="Every route of the platform was called over HTTP by an anonymous caller and by each of the five "
        "roles, and every route with a path id by each investor and issuer role it admits with the ids of objects "
        "belonging to another investor or issuer; the answers were compared with the access policy and with the "
        "answer for an id that does not exist, and the database was fingerprinted around each such call.",
        form="long" if long_form else "short",
        figures={
            "routes": len(POLICY),
            "roles": len(ROLES),
            "calls": kept.tried["route decisions"] + kept.tried["recorded denials"]
            + 2 * kept.tried["other owners' objects"] + kept.tried["other owners' lists"],
            "route_decisions": kept.tried["route decisions"],
            "recorded_denials": kept.tried["recorded denials"],
            "other_owner_calls": 2 * kept.tried["other owners' objects"] + kept.tried["other owners' lists"],
            "other_owner_routes": len(OWNED),
            "leaks": len(kept.violations),
            "database_fingerprints": kept.fingerprints,
            "duration_s": round(time.monotonic() - kept.started, 1),
        },
        violations=kept.violations,
    )


@pytest.fixture(scope="module")
async def world(users: Users, database: Database, settings: Settings, server_url: str) -> AsyncIterator[World]:
    async with database.unit_of_work() as session:
        money = await ledger.create_asset(
            session, code=new_asset_code("AZ"), kind="money", scale=2, name="matrix money"
        )
        operator = await make_party(session, kind="legal_entity", name="Matrix Operator")
        bank = await ledger.open_account(
            session, owner_party_id=operator.id, asset_code=money.code, kind="client_money", settings=settings
        )
        accounts = {}
        for name in (INVESTOR, "other_investor", ISSUER, "other_issuer"):
            account = await ledger.open_account(
                session, owner_party_id=users[name].party_id, asset_code=money.code, kind="available", settings=settings
            )
            accounts[name] = account.id
        funding = ledger.TransferSpec(uuid.uuid4(), bank.id, accounts[INVESTOR], 1_000)
        await ledger.post_transfer(session, transfer=funding)
        hold, _ = await ledger.place_hold(session, hold_id=uuid.uuid4(), account_id=accounts[INVESTOR], amount=100)
        hold_to_void, _ = await ledger.place_hold(
            session, hold_id=uuid.uuid4(), account_id=accounts[INVESTOR], amount=100
        )
        undecided = await make_party(session, name="Matrix Undecided", identified=False)
    _, target_user_id, _, _ = await create_user(database, settings, role=AUDITOR)
    disposable = {}
    for route in SIGN_OUTS:
        for role in ROLES:
            login, _, _, secret = await create_user(database, settings, role=role)
            disposable[route, role] = signed_in_client(server_url, sign_in(server_url, login, totp_secret=secret))
    built = World(
        asset_code=money.code,
        accounts=accounts,
        parties={name: users[name].party_id for name in accounts},
        undecided_party_id=undecided.id,
        target_user_id=target_user_id,
        transfer_id=funding.id,
        hold_id=hold.id,
        hold_to_void_id=hold_to_void.id,
        credentials={
            "rotation": issue_credential(users.client(ISSUER)),
            "revocation": issue_credential(users.client(ISSUER)),
            "other_issuer": issue_credential(users.client("other_issuer")),
        },
        past_day=date.today() - timedelta(days=30),
        disposable=disposable,
    )
    yield built
    for client in disposable.values():
        client.close()


# The requests the matrix sends


@dataclasses.dataclass(frozen=True)
class Call:
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _transfer(w: World) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "debit_account_id": w.accounts[INVESTOR],
        "credit_account_id": w.accounts["other_investor"], "amount": TOO_MUCH,
    }


# Minimal bodies and queries; a call that then fails validation or a business rule is fine, the point
# is the access decision. They avoid lasting harm: a too-short new password, a day in the past, an
# amount nobody has.
CALLS: dict[Route, Callable[[World], Call]] = {
    ("POST", "/v1/onboarding"): lambda w: Call(json={
        "name": "Matrix Person", "identifier": new_identifier(), "login": _unique("matrix"), "password": "short",
        "biometric_sample": SAMPLE,
    }),
    ("POST", "/v1/auth/sign-in"): lambda w: Call(json={"login": _unique("nobody"), "password": "wrong password"}),
    ("POST", "/v1/auth/second-factor"): lambda w: Call(json={"enrolment_token": "unknown", "one_time_code": "123456"}),
    ("POST", "/v1/auth/password"): lambda w: Call(json={"current_password": PASSWORD, "new_password": "short"}),
    ("POST", "/v1/auth/recovery"): lambda w: Call(json={
        "login": _unique("nobody"), "identifier": new_identifier(), "biometric_sample": SAMPLE,
    }),
    ("POST", "/v1/auth/recovery/completion"): lambda w: Call(json={
        "recovery_token": "unknown", "new_password": PASSWORD,
    }),
    ("POST", "/v1/oauth/token"): lambda w: Call(data={
        "grant_type": "client_credentials", "client_id": "dfa_client_unknown", "client_secret": "wrong",
    }),
    ("POST", "/v1/users"): lambda w: Call(json={"login": _unique("matrix"), "password": PASSWORD, "roles": [AUDITOR]}),
    ("PUT", "/v1/users/{user_id}/roles"): lambda w: Call(json={"roles": [AUDITOR]}),
    ("POST", "/v1/parties"): lambda w: Call(json={
        "kind": "person", "name": "Matrix Person", "identifier": new_identifier(), "resident": True,
    }),
    ("POST", "/v1/parties/{party_id}/kyc-decisions"): lambda w: Call(json={
        "status": "identified", "level": "full", "method": "in_person", "reason": "documents seen",
    }),
    ("POST", "/v1/parties/{party_id}/biometric-identification"): lambda w: Call(json={"biometric_sample": SAMPLE}),
    ("POST", "/v1/credentials"): lambda w: Call(json={"kind": "api_key", "label": "x"}),
    ("GET", "/v1/security-events"): lambda w: Call(params={"limit": 1}),
    ("GET", "/v1/calendar/days"): lambda w: Call(params={
        "from": date.today().isoformat(), "to": (date.today() + timedelta(days=6)).isoformat(),
    }),
    ("PUT", "/v1/calendar/days/{day}"): lambda w: Call(json={"kind": "day_off", "reason": "matrix"}),
    ("POST", "/v1/ledger/assets"): lambda w: Call(json={
        "code": new_asset_code("AZ"), "kind": "money", "scale": 2, "name": "matrix",
    }),
    ("POST", "/v1/ledger/accounts"): lambda w: Call(json={
        "owner_party_id": str(w.parties[INVESTOR]), "asset": w.asset_code, "kind": "available",
    }),
    ("POST", "/v1/ledger/transfers"): lambda w: Call(json=_transfer(w)),
    ("POST", "/v1/ledger/batches"): lambda w: Call(json={
        "id": str(uuid.uuid4()), "items": [{"type": "transfer", "transfer": _transfer(w)}],
    }),
    ("POST", "/v1/ledger/holds"): lambda w: Call(json={
        "id": str(uuid.uuid4()), "account_id": w.accounts[INVESTOR], "amount": TOO_MUCH,
    }),
    ("POST", "/v1/ledger/holds/{hold_id}/post"): lambda w: Call(json={
        "transfer_id": str(uuid.uuid4()), "credit_account_id": w.accounts["other_investor"], "amount": TOO_MUCH,
    }),
    ("POST", "/v1/ledger/holds/{hold_id}/void"): lambda w: Call(json={"transfer_id": str(uuid.uuid4())}),
    ("GET", "/v1/ledger/assets/{code}/holders/export"): lambda w: Call(params={"format": "csv"}),
    ("POST", "/v1/wallet-addresses"): lambda w: Call(json={}),
    # Money in and out: an IBAN that is none, a day long past, objects nobody has
    ("POST", "/v1/bank-accounts"): lambda w: Call(json={"iban": "KZ00 NOT AN IBAN", "holder_name": "Matrix"}),
    ("POST", "/v1/bank-accounts/{bank_account_id}/verification"): lambda w: Call(json={"evidence": "matrix"}),
    ("POST", "/v1/bank-accounts/{bank_account_id}/revocation"): lambda w: Call(json={"reason": "matrix"}),
    ("POST", "/v1/bank-statements/fetch"): lambda w: Call(json={"day": w.past_day.isoformat()}),
    ("POST", "/v1/bank-statement-lines/{line_id}/assignment"): lambda w: Call(json={
        "party_id": str(w.parties[INVESTOR]), "note": "matrix",
    }),
    ("POST", "/v1/bank-statement-lines/{line_id}/return"): lambda w: Call(json={"note": "matrix"}),
    ("POST", "/v1/withdrawals"): lambda w: Call(json={
        "id": str(uuid.uuid4()), "bank_account_id": 9_000_000_000, "amount_tiyn": TOO_MUCH,
    }),
    # Trading: money against money and an order on a book of money are refused; ids nobody has
    ("POST", "/v1/settlement-instructions"): lambda w: Call(json={
        "counterparty_id": str(w.parties["other_investor"]), "reference": "matrix",
        "deliver": {"asset": w.asset_code, "amount": TOO_MUCH}, "receive": {"asset": "KZT", "amount": 1},
    }),
    ("POST", "/v1/settlement-instructions/{instruction_id}/cancellation"): lambda w: Call(json={"reason": "matrix"}),
    ("POST", "/v1/settlement-instructions/{instruction_id}/resubmission"): lambda w: Call(json={}),
    ("POST", "/v1/orders"): lambda w: Call(json={
        "base": w.asset_code, "side": "buy", "price": 1, "quantity": TOO_MUCH,
    }),
    ("POST", "/v1/orders/{order_id}/cancellation"): lambda w: Call(json={}),
    ("PUT", "/v1/trading-status/{asset}"): lambda w: Call(json={"suspended": True, "reason": "matrix"}),
    ("POST", "/v1/issuers"): lambda w: Call(json={
        "legal_address": "Almaty", "contact_email": "matrix@example.kz", "custodian_consent": False,
        "custodian_consent_scope": "matrix", "personal_data_consent": False,
    }),
    ("POST", "/v1/issuers/{party_id}/representatives"): lambda w: Call(json={
        "full_name": "Matrix", "iin": "000000000000", "position": "CEO", "authority": "charter",
    }),
    ("POST", "/v1/issuers/{party_id}/representatives/{representative_id}/revocation"): lambda w: Call(
        json={"reason": "matrix"}
    ),
    ("POST", "/v1/issuers/{party_id}/underlying-assets"): lambda w: Call(json={
        "kind": "goods", "description": "matrix", "custodian": "kazgrain", "custodian_reference": _unique("M"),
        "quantity": 0, "unit": "t",
    }),
    ("POST", "/v1/issuers/{party_id}/blocks"): lambda w: Call(json={"reference": "matrix", "reason": "matrix"}),
    ("POST", "/v1/issuers/{party_id}/blocks/{block_id}/lifting"): lambda w: Call(json={"reason": "matrix"}),
    ("POST", "/v1/emission-applications"): lambda w: Call(json={
        "name": "Matrix", "dfa_kind": "commodity", "nominal": 1, "units": 0, "placement_start": "2026-12-01",
        "placement_end": "2026-12-31", "placement_price": 1, "no_underlying_reason": "matrix",
    }),
    ("POST", "/v1/emission-applications/{application_id}/return"): lambda w: Call(json={"reason": "matrix"}),
    ("POST", "/v1/emission-applications/{application_id}/preliminary-refusal"): lambda w: Call(json={
        "reasons": "matrix", "hearing_date": "2026-12-01",
    }),
    ("POST", "/v1/emission-applications/{application_id}/objections"): lambda w: Call(json={"text": "matrix"}),
    ("POST", "/v1/emission-applications/{application_id}/hearing"): lambda w: Call(json={
        "outcome": "resume_review", "reason": "matrix",
    }),
    ("POST", "/v1/emissions/{registration_number}/placements"): lambda w: Call(json={
        "units": 1, "opens_at": "2026-12-01T04:00:00Z", "closes_at": "2026-12-02T04:00:00Z",
    }),
    ("POST", "/v1/placements/{placement_id}/subscriptions"): lambda w: Call(json={"units": 1}),
    ("POST", "/v1/emissions/{registration_number}/redemptions"): lambda w: Call(json={"kind": "early"}),
    ("POST", "/v1/freezes"): lambda w: Call(json={
        "asset": w.asset_code, "party_id": str(w.parties[INVESTOR]), "units": TOO_MUCH, "basis": "court_order",
        "order_reference": "matrix", "reason": "matrix",
    }),
    ("POST", "/v1/freezes/{freeze_id}/lifting"): lambda w: Call(json={"reason": "matrix"}),
    ("POST", "/v1/forced-transfers"): lambda w: Call(json={
        "asset": w.asset_code, "from_party_id": str(w.parties[INVESTOR]),
        "to_party_id": str(w.parties["other_investor"]), "units": TOO_MUCH, "basis": "court_order",
        "order_reference": "matrix", "reason": "matrix",
    }),
    ("POST", "/v1/suspensions"): lambda w: Call(json={
        "ground": "asset_arrest", "issuer_party_id": str(w.parties[ISSUER]), "arrested_share": "0.4",
        "reference": "matrix", "details": "matrix",
    }),
    ("POST", "/v1/suspensions/{suspension_id}/lifting"): lambda w: Call(json={"reason": "matrix"}),
    ("POST", "/v1/trading-platforms"): lambda w: Call(json={
        "code": "X", "name": "matrix", "nbk_registration_number": "matrix",
    }),
    ("POST", "/v1/emissions/{registration_number}/platform-transfers"): lambda w: Call(json={
        "platform": "astana-digital", "units": 1,
    }),
    ("POST", "/v1/emissions/{registration_number}/platform-returns"): lambda w: Call(json={
        "platform": "astana-digital", "units": 1,
    }),
    # A day still to come is refused: the decision to admit is what is checked, not a run.
    ("POST", "/v1/reconciliation/runs"): lambda w: Call(json={"business_date": "2999-01-01"}),
    ("POST", "/v1/reconciliation/reports/{report_id}/sign-off"): lambda w: Call(json={"comment": "matrix"}),
    ("POST", "/v1/reconciliation/breaches/{breach_id}/acknowledgement"): lambda w: Call(json={"comment": "matrix"}),
    ("POST", "/compliance/breaches/{breach_id}/acknowledge"): lambda w: Call(data={"comment": "matrix"}),
    ("POST", "/compliance/reports/{report_id}/sign-off"): lambda w: Call(data={"comment": "matrix"}),
    ("POST", "/sign-in"): lambda w: Call(data={"login": "matrix-nobody", "password": "not the password"}),
    ("POST", "/sign-in/second-factor"): lambda w: Call(data={"enrolment_token": "matrix", "one_time_code": "000000"}),
    ("POST", "/account/password"): lambda w: Call(data={
        "current_password": PASSWORD, "new_password": "short", "new_password_again": "short",
    }),
    ("POST", "/recovery"): lambda w: Call(data={"login": _unique("nobody"), "identifier": new_identifier()}),
    ("POST", "/recovery/completion"): lambda w: Call(data={
        "recovery_token": "unknown", "new_password": PASSWORD, "new_password_again": PASSWORD,
    }),
    # The money asset is no emission: an order for it is refused, nothing is placed.
    ("POST", "/orders/preview"): lambda w: Call(data={
        "side": "buy", "base": w.asset_code, "price": "1", "quantity": str(TOO_MUCH),
    }),
    ("POST", "/orders"): lambda w: Call(data={
        "side": "buy", "base": w.asset_code, "quote": "KZT", "price": "1", "quantity": str(TOO_MUCH),
        "time_in_force": "gtc", "order_token": str(uuid.uuid4()),
    }),
    ("POST", "/money/bank-accounts"): lambda w: Call(data={"iban": "KZ00MATRIX", "holder_name": "matrix"}),
    ("POST", "/money/withdrawals"): lambda w: Call(data={"bank_account_id": "9000000000", "amount": "1"}),
    ("GET", "/statements/download"): lambda w: Call(params={"from": "2025-01-01", "to": "2025-01-31", "format": "csv"}),
    ("POST", "/admin/bank-lines/{line_id}/assignment"): lambda w: Call(data={
        "party_id": str(w.parties[INVESTOR]), "note": "matrix",
    }),
    ("POST", "/admin/bank-lines/{line_id}/return"): lambda w: Call(data={"note": "matrix"}),
    ("POST", "/admin/users/{user_id}/roles"): lambda w: Call(data={"roles": AUDITOR}),
    ("POST", "/admin/calendar/days"): lambda w: Call(data={
        "day": w.past_day.isoformat(), "kind": "day_off", "reason": "matrix",
    }),
}


def admitted_caller(route: Route) -> str:
    """The caller the policy admits to `route`: anyone for a public route, else the most capable role it admits."""
    allowed = POLICY[route]
    if allowed == PUBLIC:
        return ANONYMOUS
    return next(role for role in (ADMIN, ISSUER, INVESTOR, COMPLIANCE, AUDITOR) if role in allowed)


def path_of(route: Route, caller: str, w: World) -> str:
    """The route's path with ids that exist and, where ownership applies, belong to the caller."""
    _, template = route
    owner = w.owner(caller)
    if template.endswith("/kyc-decisions"):
        party_id = w.undecided_party_id
    else:
        party_id = w.parties[owner]
    return template.format_map(_WorldIds(
        slug="forbidden",
        user_id=w.target_user_id,
        party_id=party_id,
        credential_id=w.credentials["rotation" if template.endswith("/rotation") else "revocation"],
        day=w.past_day.isoformat(),
        code=w.asset_code,
        account_id=w.accounts[owner],
        transfer_id=w.transfer_id,
        hold_id=w.hold_to_void_id if template.endswith("/void") else w.hold_id,
    ))


class _WorldIds(dict):
    """Path ids the world keeps no object for: a number no object has, so an admitted caller is answered
    "not found" (or 422 where the id is no number), never turned away."""

    def __missing__(self, key: str) -> str:
        return "9000000000"


def send(client: httpx.Client, route: Route, caller: str, w: World) -> httpx.Response:
    method, _ = route
    call = CALLS.get(route, lambda _: Call())(w)
    headers = {"Idempotency-Key": str(uuid.uuid4())} if method in MUTATING else {}
    return client.request(
        method, path_of(route, caller, w), params=call.params, json=call.json, data=call.data, headers=headers
    )


def client_of(caller: str, route: Route, users: Users, w: World, anonymous: httpx.Client) -> httpx.Client:
    if caller == ANONYMOUS:
        return anonymous
    # Signing out ends the session, so each sign-out is done with a session of its own.
    return w.disposable[route, caller] if route in SIGN_OUTS else users.client(caller)


def problem_type(response: httpx.Response) -> str | None:
    if response.headers.get("content-type") != PROBLEM:
        return None
    return response.json().get("type")


def recorded_events(users: Users, *, kind: str, actor: str) -> list[dict]:
    response = users.client(AUDITOR).get("/v1/security-events", params={"kind": kind, "actor": actor, "limit": 500})
    assert response.status_code == 200, response.text
    return response.json()


def event_of(users: Users, response: httpx.Response, *, kind: str, actor: str) -> dict:
    """The security event the request behind `response` caused, found by its request id."""
    request_id = response.headers["x-request-id"]
    found = [e for e in recorded_events(users, kind=kind, actor=actor) if e["request_id"] == request_id]
    assert len(found) == 1, f"no {kind} event for {actor} and request {request_id}"
    return found[0]


def _case_id(route: Route, caller: str) -> str:
    return f"{route[0]} {route[1]} as {caller}"


MATRIX = [(route, caller) for route in POLICY for caller in CALLERS]
DENIALS = [
    (route, role) for route, allowed in POLICY.items() if allowed != PUBLIC for role in ROLES if role not in allowed
]


# The table against the app


def app_routes(settings: Settings) -> set[Route]:
    """(method, path template) of every API route, included routers' routes among them."""
    routes = create_app(settings).routes
    # Included routers are mounted as branches; walk them to their routes where FastAPI does so.
    flattened = getattr(fastapi.routing, "iter_route_contexts", None)
    return {
        (method, route.path)
        for route in (flattened(routes) if flattened else routes)
        if isinstance(getattr(route, "original_route", route), APIRoute) and route.path not in DOCUMENTATION_PATHS
        for method in route.methods
    }


def test_the_policy_names_every_route_of_the_app_and_nothing_else(settings):
    routes = app_routes(settings)
    assert len(routes) > len(DOCUMENTATION_PATHS)

    without_policy = sorted(routes - POLICY.keys())
    no_such_route = sorted(POLICY.keys() - routes)

    assert without_policy == [], f"routes without an entry in POLICY: {without_policy}"
    assert no_such_route == [], f"POLICY entries for routes the app does not have: {no_such_route}"
    assert all(allowed == PUBLIC or (allowed and allowed <= EVERYONE) for allowed in POLICY.values())


# Route-level decisions


def wrong_decision(allowed: frozenset[str] | str, caller: str, response: httpx.Response) -> str | None:
    """How the answer to `caller` departs from what the policy `allowed` says, or None."""
    if response.status_code >= 500:
        return f"a server error {response.status_code}"
    if allowed == PUBLIC:
        if response.status_code == 403 or problem_type(response) in GUARD_REFUSALS:
            return f"a public route turned the caller away: {response.status_code}"
    elif caller == ANONYMOUS:
        if (response.status_code, problem_type(response)) != (401, "/problems/not-authenticated") or not (
            response.headers.get("www-authenticate", "").startswith("Bearer")
        ):
            return f"an anonymous caller was answered {response.status_code}, not 401 with WWW-Authenticate"
    elif caller in allowed:
        if response.status_code in (401, 403):
            return f"an admitted role was turned away: {response.status_code}"
    elif (response.status_code, response.headers.get("content-type"), problem_type(response)) != (
        403, PROBLEM, "/problems/forbidden"
    ):
        return f"a role the policy leaves out was answered {response.status_code}"
    return None


@pytest.mark.parametrize(("route", "caller"), MATRIX, ids=[_case_id(*case) for case in MATRIX])
def test_every_route_admits_exactly_the_callers_its_policy_names(route, caller, users, world, anonymous, matrix):
    response = send(client_of(caller, route, users, world, anonymous), route, caller, world)

    wrong = wrong_decision(POLICY[route], caller, response)
    matrix.attack("route decisions", [f"{_case_id(route, caller)}: {wrong}"] if wrong else [])

    assert wrong is None, response.text


@pytest.mark.parametrize(("route", "role"), DENIALS, ids=[_case_id(*case) for case in DENIALS])
def test_every_denial_is_recorded_in_the_security_event_log(route, role, users, world, anonymous, matrix):
    response = send(client_of(role, route, users, world, anonymous), route, role, world)
    matrix.attack("recorded denials", [] if response.status_code == 403 else [
        f"{_case_id(route, role)}: answered {response.status_code}"])
    assert response.status_code == 403, response.text

    login = users[role].login
    event = event_of(users, response, kind="access.denied", actor=login)

    assert event["outcome"] == "denied"
    assert event["subject"] == f"{route[0]} {response.request.url.path}"
    assert event["details"]["roles"] == [role]


# A change made with the session cookie alone (no CSRF token) is refused for every route by
# tests/attack/test_sessions_and_forgery.py.


# Object-level decisions (BOLA)

OWN_OBJECT_READS = [
    "/v1/ledger/accounts/{account_id}",
    "/v1/ledger/accounts/{account_id}/entries",
    "/v1/parties/{party_id}",
    "/v1/parties/{party_id}/kyc-history",
]
STRANGERS = [(INVESTOR, "other_investor"), (ISSUER, "other_issuer"), (INVESTOR, ISSUER), (ISSUER, INVESTOR)]


@pytest.mark.parametrize("template", OWN_OBJECT_READS)
@pytest.mark.parametrize(("reader", "owner"), STRANGERS, ids=[f"{r} reads {o}" for r, o in STRANGERS])
def test_another_owners_account_or_party_is_not_found_for_an_investor_or_issuer(template, reader, owner, users, world):
    client = users.client(reader)
    path = lambda whose: template.format(account_id=world.accounts[whose], party_id=world.parties[whose])
    nonexistent = template.format(account_id=9_000_000_000, party_id=uuid.uuid4())

    own = client.get(path(reader))
    theirs = client.get(path(owner))
    missing = client.get(nonexistent)

    assert own.status_code == 200, own.text
    assert (theirs.status_code, theirs.headers["content-type"]) == (404, PROBLEM), theirs.text
    assert problem_type(theirs) == problem_type(missing)  # indistinguishable from an id that does not exist


@pytest.mark.parametrize(("reader", "owner"), STRANGERS, ids=[f"{r} lists {o}" for r, o in STRANGERS])
def test_filtering_accounts_by_another_owner_lists_nothing(reader, owner, users, world):
    client = users.client(reader)

    theirs = client.get("/v1/ledger/accounts", params={"owner_party_id": str(world.parties[owner])})
    unfiltered = client.get("/v1/ledger/accounts", params={"limit": 500})

    assert (theirs.status_code, theirs.json()) == (200, [])
    assert unfiltered.status_code == 200 and unfiltered.json()
    assert {a["owner_party_id"] for a in unfiltered.json()} == {str(world.parties[reader])}


@pytest.mark.parametrize("reader", [INVESTOR, ISSUER])
def test_an_investor_or_issuer_lists_only_its_own_party(reader, users, world):
    response = users.client(reader).get("/v1/parties", params={"limit": 500})

    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()] == [str(world.parties[reader])]


def test_an_issuer_lists_only_its_own_credentials(users, world):
    own = users.client(ISSUER).get("/v1/credentials", params={"limit": 500})
    theirs = users.client("other_issuer").get("/v1/credentials", params={"limit": 500})

    assert own.status_code == 200 and theirs.status_code == 200
    own_ids, their_ids = {c["id"] for c in own.json()}, {c["id"] for c in theirs.json()}
    assert {str(world.credentials["rotation"]), str(world.credentials["revocation"])} <= own_ids
    assert str(world.credentials["other_issuer"]) in their_ids
    assert own_ids.isdisjoint(their_ids)


@pytest.mark.parametrize("role", sorted(STAFF))
@pytest.mark.parametrize("owner", [INVESTOR, "other_investor", ISSUER])
def test_staff_read_any_party_and_account(role, owner, users, world):
    client = users.client(role)

    for template in OWN_OBJECT_READS:
        path = template.format(account_id=world.accounts[owner], party_id=world.parties[owner])
        response = client.get(path)
        assert response.status_code == 200, f"{path}: {response.text}"
    listed = client.get(
        "/v1/ledger/accounts", params={"owner_party_id": str(world.parties[owner]), "limit": 500}
    ).json()
    assert world.accounts[owner] in [a["id"] for a in listed]
    assert {a["owner_party_id"] for a in listed} == {str(world.parties[owner])}


# Other owners' objects: every route with a path id, called with the ids of somebody else's real objects

STRANGE_PRICE = 10_000


@dataclasses.dataclass
class Stranger:
    """An investor or issuer none of the matrix's callers is, owning one real object of every kind it can own."""

    person: Person
    ids: dict[str, str]  # path parameter name → the id of this stranger's object
    secrets: list[str]  # what of theirs must never reach another caller: ids, login, IBAN, names

    def path(self, route: AppRoute) -> str:
        return path_with(route, **{name: self.ids[name] for name in route.path_params})


def _made(client: httpx.Client, path: str, body: Any = None, **kwargs) -> dict:
    answer = client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}, **kwargs)
    assert answer.status_code in (200, 201), f"{path}: {answer.text}"
    return answer.json()


@pytest.fixture(scope="module")
async def strangers(app, users: Users, database: Database, settings: Settings, server_url: str):
    """Another investor with a bank account, a (cancelled) withdrawal, a (cancelled) settlement instruction, an
    open order, a subscription and a freeze; another issuer with a credential, a representative, a document, an
    underlying asset, a registered emission with its application, a snapshot, an open placement and a transfer
    to a trading platform. The withdrawal and the instruction are cancelled so no day's run finds them."""
    investor = await person(database, settings, server_url, role="investor")
    issuer = await person(database, settings, server_url, role="issuer")
    admin = users.client(ADMIN)
    async with database.unit_of_work() as session:
        party = await onboarded_issuer(session, issuer.party_id)
        application = await make_application(session, issuer=party, units=1_000, price=STRANGE_PRICE)
        emission = await emissions.issue(session, application=application, actor="test", settings=settings)
        application.status = "registered"
        underlying = await make_underlying_asset(session, issuer=party)
    number = emission.registration_number
    await fund(database, settings, investor.party_id, money=10**9, units={number: 20}, issuer_id=issuer.party_id)
    await fund(database, settings, issuer.party_id, money=10**6)
    accounts = {}
    for who in (investor, issuer):
        listed = who.client.get("/v1/ledger/accounts", params={"asset": "KZT"}).json()
        accounts[who.party_id] = next(a["id"] for a in listed if a["kind"] == "available")

    iban = new_iban()
    bank_account = _made(investor.client, "/v1/bank-accounts", {"iban": iban, "holder_name": "Stranger Holder"})
    _made(admin, f"/v1/bank-accounts/{bank_account['id']}/verification", {"evidence": "the bank's letter"})
    withdrawal = _made(investor.client, "/v1/withdrawals", {
        "id": str(uuid.uuid4()), "bank_account_id": bank_account["id"], "amount_tiyn": 100,
    })
    _made(investor.client, f"/v1/withdrawals/{withdrawal['id']}/cancellation")
    instruction = _made(investor.client, "/v1/settlement-instructions", {
        "counterparty_id": str(issuer.party_id), "reference": f"STRANGE-{uuid.uuid4().hex[:8]}",
        "deliver": {"asset": number, "amount": 1}, "receive": {"asset": "KZT", "amount": STRANGE_PRICE},
    })
    _made(investor.client, f"/v1/settlement-instructions/{instruction['id']}/cancellation", {"reason": "kept off"})
    order = _made(investor.client, "/v1/orders", {"base": number, "side": "buy", "price": 1, "quantity": 1})["order"]
    freeze = _made(admin, "/v1/freezes", {
        "asset": number, "party_id": str(investor.party_id), "units": 1, "basis": "court_order",
        "order_reference": "court 1-1/2026", "reason": "securing a claim",
    })

    credential = _made(issuer.client, "/v1/credentials", {"kind": "api_key", "label": "stranger"})["credential"]
    representative = _made(issuer.client, f"/v1/issuers/{issuer.party_id}/representatives", {
        "full_name": "Strange Representative", "iin": new_identifier(), "position": "chief executive",
        "authority": "the charter",
    })
    document = _made(issuer.client, f"/v1/issuers/{issuer.party_id}/documents", data={
        "kind": "charter", "title": "Strange charter"}, files={"file": ("charter.pdf", PDF, "application/pdf")})
    snapshot = _made(issuer.client, f"/v1/emissions/{number}/snapshots", {})
    now = datetime.now(UTC)
    placement = _made(issuer.client, f"/v1/emissions/{number}/placements", {
        "units": 10, "opens_at": now.isoformat(), "closes_at": (now + timedelta(days=1)).isoformat(),
    })
    subscription = _made(investor.client, f"/v1/placements/{placement['id']}/subscriptions", {"units": 1})
    platform = f"tp-{uuid.uuid4().hex[:10]}"
    app.state.trading_platforms.platforms.add(platform)
    _made(admin, "/v1/trading-platforms", {"code": platform, "name": "Strange Exchange",
                                           "nbk_registration_number": "NBK-TP-STRANGE"})
    app.state.trading_platforms.confirm_next()
    transfer = _made(issuer.client, f"/v1/emissions/{number}/platform-transfers", {"platform": platform, "units": 1})

    investor_ids = {
        "party_id": investor.party_id, "account_id": accounts[investor.party_id], "bank_account_id": bank_account["id"],
        "withdrawal_id": withdrawal["id"], "instruction_id": instruction["id"], "order_id": order["id"],
        "subscription_id": subscription["id"], "freeze_id": freeze["id"],
    }
    issuer_ids = {
        "party_id": issuer.party_id, "account_id": accounts[issuer.party_id], "credential_id": credential["id"],
        "representative_id": representative["id"], "document_id": document["id"],
        "underlying_asset_id": underlying.id, "application_id": application.id, "registration_number": number,
        "snapshot_id": snapshot["id"], "placement_id": placement["id"], "transfer_id": transfer["id"],
    }
    built = {
        INVESTOR: Stranger(investor, {k: str(v) for k, v in investor_ids.items()}, [
            str(investor.party_id), investor.login, iban, "Stranger Holder",
            *(str(investor_ids[k]) for k in ("withdrawal_id", "instruction_id", "order_id", "subscription_id",
                                             "freeze_id")),
        ]),
        ISSUER: Stranger(issuer, {k: str(v) for k, v in issuer_ids.items()}, [
            str(issuer.party_id), issuer.login, "Strange Representative", "Strange charter",
            *(str(issuer_ids[k]) for k in ("credential_id", "representative_id", "document_id", "underlying_asset_id",
                                           "application_id", "snapshot_id", "placement_id", "transfer_id")),
        ]),
    }
    yield built
    investor.client.close()
    issuer.client.close()


# Whose objects each route with a path id is called with (the investor stranger's, the issuer stranger's or both),
# by every investor and issuer role the policy admits to it.
BOTH = (INVESTOR, ISSUER)
OWNED: dict[Route, tuple[str, ...]] = {
    ("GET", "/v1/parties/{party_id}"): BOTH,
    ("GET", "/v1/parties/{party_id}/kyc-history"): BOTH,
    ("POST", "/v1/parties/{party_id}/biometric-identification"): BOTH,
    ("POST", "/v1/credentials/{credential_id}/rotation"): (ISSUER,),
    ("POST", "/v1/credentials/{credential_id}/revocation"): (ISSUER,),
    ("GET", "/v1/ledger/accounts/{account_id}"): BOTH,
    ("GET", "/v1/ledger/accounts/{account_id}/entries"): BOTH,
    ("GET", "/v1/bank-accounts/{bank_account_id}"): (INVESTOR,),
    ("POST", "/v1/bank-accounts/{bank_account_id}/revocation"): (INVESTOR,),
    ("GET", "/v1/withdrawals/{withdrawal_id}"): (INVESTOR,),
    ("POST", "/v1/withdrawals/{withdrawal_id}/cancellation"): (INVESTOR,),
    ("GET", "/v1/settlement-instructions/{instruction_id}"): (INVESTOR,),
    ("POST", "/v1/settlement-instructions/{instruction_id}/cancellation"): (INVESTOR,),
    ("POST", "/v1/settlement-instructions/{instruction_id}/resubmission"): (INVESTOR,),
    ("GET", "/v1/orders/{order_id}"): (INVESTOR,),
    ("POST", "/v1/orders/{order_id}/cancellation"): (INVESTOR,),
    ("GET", "/v1/issuers/{party_id}"): (ISSUER,),
    ("POST", "/v1/issuers/{party_id}/representatives"): (ISSUER,),
    ("GET", "/v1/issuers/{party_id}/representatives"): (ISSUER,),
    ("POST", "/v1/issuers/{party_id}/representatives/{representative_id}/revocation"): (ISSUER,),
    ("POST", "/v1/issuers/{party_id}/documents"): (ISSUER,),
    ("GET", "/v1/issuers/{party_id}/documents"): (ISSUER,),
    ("GET", "/v1/documents/{document_id}"): (ISSUER,),
    ("GET", "/v1/documents/{document_id}/content"): (ISSUER,),
    ("POST", "/v1/issuers/{party_id}/underlying-assets"): (ISSUER,),
    ("GET", "/v1/issuers/{party_id}/underlying-assets"): (ISSUER,),
    ("GET", "/v1/underlying-assets/{underlying_asset_id}"): (ISSUER,),
    ("GET", "/v1/underlying-assets/{underlying_asset_id}/certifications"): (ISSUER,),
    ("GET", "/v1/issuers/{party_id}/blocks"): (ISSUER,),
    ("GET", "/v1/emission-applications/{application_id}"): (ISSUER,),
    ("POST", "/v1/emission-applications/{application_id}/objections"): (ISSUER,),
    ("POST", "/v1/emission-applications/{application_id}/withdrawal"): (ISSUER,),
    ("POST", "/v1/emissions/{registration_number}/snapshots"): (ISSUER,),
    ("GET", "/v1/emissions/{registration_number}/snapshots/{snapshot_id}"): (ISSUER,),
    ("POST", "/v1/emissions/{registration_number}/placements"): (ISSUER,),
    ("POST", "/v1/subscriptions/{subscription_id}/cancellation"): (INVESTOR,),
    ("POST", "/v1/placements/{placement_id}/allocation"): (ISSUER,),
    ("GET", "/v1/placements/{placement_id}/report"): (ISSUER,),
    ("POST", "/v1/emissions/{registration_number}/redemptions"): (ISSUER,),
    ("GET", "/v1/freezes/{freeze_id}"): (INVESTOR,),
    ("GET", "/v1/emissions/{registration_number}/holders-registry/export"): (ISSUER,),
    ("POST", "/v1/emissions/{registration_number}/platform-transfers"): (ISSUER,),
    ("POST", "/v1/emissions/{registration_number}/platform-returns"): (ISSUER,),
    ("GET", "/v1/platform-transfers/{transfer_id}"): (ISSUER,),
    ("POST", "/v1/platform-transfers/{transfer_id}/refresh"): (ISSUER,),
    ("POST", "/money/withdrawals/{withdrawal_id}/cancel"): (INVESTOR,),
    ("POST", "/orders/{order_id}/cancel"): (INVESTOR,),
    ("GET", "/issuer/applications/{application_id}"): (ISSUER,),
    ("GET", "/issuer/emissions/{registration_number}/holders"): (ISSUER,),
}
# Routes with a path id whose object belongs to no investor or issuer, is public, or is always the caller's own;
# the lists among them show each caller only its own part (checked below).
NOT_OWNED: dict[Route, str] = {
    ("GET", "/v1/ledger/assets/{code}"): "an asset and its terms are public",
    ("GET", "/v1/market-data/{base}"): "an order book's prices are public",
    ("GET", "/v1/emissions/{registration_number}"): "an emission's terms are public",
    ("GET", "/catalogue/{registration_number}"): "an emission's terms are public",
    ("GET", "/v1/placements/{placement_id}"): "a placement's terms are public: anyone may subscribe",
    ("POST", "/v1/placements/{placement_id}/subscriptions"): "subscribing to another issuer's placement is its point",
    ("GET", "/v1/placements/{placement_id}/subscriptions"): "a list: a subscriber sees its own subscriptions only",
    ("GET", "/v1/emissions/{registration_number}/redemptions"): "a list: a holder sees its own payments only",
    ("GET", "/v1/reconciliation/emissions/{registration_number}/holder-roots"): "holder roots are public",
    ("GET", "/v1/reconciliation/reports/{report_id}/proofs/{registration_number}"): "always the caller's own proof",
    ("GET", "/proofs/{registration_number}"): "always the caller's own proof",
}
FILTERED_LISTS = [
    ("GET", "/v1/placements/{placement_id}/subscriptions"),
    ("GET", "/v1/emissions/{registration_number}/redemptions"),
]
# Bodies that pass validation, so the answer is the object-level decision and not a 422.
OTHER_OWNER_CALLS: dict[Route, Callable[[World], Call]] = {
    ("POST", "/v1/issuers/{party_id}/representatives"): lambda w: Call(json={
        "full_name": "Matrix", "iin": new_identifier(), "position": "CEO", "authority": "charter",
    }),
    ("POST", "/v1/issuers/{party_id}/underlying-assets"): lambda w: Call(json={
        "kind": "goods", "description": "matrix", "custodian": "kazgrain", "custodian_reference": _unique("M"),
        "quantity": 1, "unit": "t",
    }),
    ("POST", "/v1/emissions/{registration_number}/snapshots"): lambda w: Call(json={}),
    ("POST", "/v1/withdrawals/{withdrawal_id}/cancellation"): lambda w: Call(),
    ("GET", "/v1/emissions/{registration_number}/holders-registry/export"): lambda w: Call(params={
        "as_of": w.past_day.isoformat(),
    }),
}
UPLOAD = {"data": {"kind": "charter", "title": "matrix"}, "files": {"file": ("charter.pdf", PDF, "application/pdf")}}
CLIENT_ROLES = frozenset({INVESTOR, ISSUER})
OTHER_OWNER_CASES = [
    (route, role, owner)
    for route, owners in OWNED.items()
    for role in sorted(POLICY[route] & CLIENT_ROLES)
    for owner in owners
]


def test_every_route_with_a_path_id_an_investor_or_issuer_may_call_is_checked_against_other_owners():
    """REQ-54: no route with a path id that admits investors or issuers escapes the other-owner check: each is
    called with other owners' ids, or named with the reason its object belongs to no one in particular."""
    with_ids = {route for route, allowed in POLICY.items()
                if "{" in route[1] and allowed != PUBLIC and allowed & CLIENT_ROLES}

    assert sorted(with_ids - OWNED.keys() - NOT_OWNED.keys()) == []
    assert sorted((OWNED.keys() | NOT_OWNED.keys()) - with_ids) == []
    assert OWNED.keys().isdisjoint(NOT_OWNED.keys())


def not_as_missing(theirs: httpx.Response, missing: httpx.Response, stranger: Stranger) -> list[str]:
    """How the answer for another owner's object differs from the answer for an object that does not exist, and
    what of theirs it shows."""
    problems = []
    if theirs.status_code != 404:
        problems.append(f"answered {theirs.status_code}, not 404: {theirs.text[:200]}")
    elif (theirs.status_code, problem_type(theirs)) != (missing.status_code, problem_type(missing)):
        problems.append(f"answered {problem_type(theirs)}, an id that does not exist {problem_type(missing)}")
    asked = str(theirs.request.url)
    return problems + [f"showed their {secret!r}" for secret in stranger.secrets
                       if secret in theirs.text and secret not in asked]


def _sent(client: httpx.Client, route: Route, path: str, world: World) -> httpx.Response:
    method, _ = route
    if route == ("POST", "/v1/issuers/{party_id}/documents"):
        return client.post(path, headers={"Idempotency-Key": str(uuid.uuid4())}, **UPLOAD)
    call = OTHER_OWNER_CALLS.get(route, CALLS.get(route, lambda _: Call()))(world)
    headers = {"Idempotency-Key": str(uuid.uuid4())} if method in MUTATING else {}
    return client.request(method, path, params=call.params, json=call.json, data=call.data, headers=headers)


@pytest.mark.parametrize(
    ("route", "role", "owner"), OTHER_OWNER_CASES,
    ids=[f"{_case_id(route, role)} with the other {owner}'s ids" for route, role, owner in OTHER_OWNER_CASES],
)
async def test_another_owners_object_answers_as_one_that_does_not_exist_and_nothing_is_written(
    route, role, owner, app, users, world, strangers, database, matrix
):
    """REQ-54: an investor or issuer naming another owner's real object in a path (an account, an order, a
    withdrawal, an instruction, a bank account, a subscription, a freeze; an application, a document, an
    underlying asset, a credential, a representative, an emission, a snapshot, a placement, a platform transfer)
    gets 404 exactly as for an id that does not exist, sees nothing of theirs, and changes no row; a document's
    download refused so is recorded in the security-event log."""
    app_route = {r.key: r for r in routes_of(app)}[route]
    stranger, client = strangers[owner], users.client(role)
    theirs_path, missing_path = stranger.path(app_route), path_with(app_route)

    async with matrix.watching(database) as watch:
        theirs = _sent(client, route, theirs_path, world)
        missing = _sent(client, route, missing_path, world)
    problems = not_as_missing(theirs, missing, stranger) + watch.written
    if route == ("GET", "/v1/documents/{document_id}/content") and not any(
        e["kind"] == "document.download" and e["outcome"] == "denied"
        for e in await events_of(database, theirs.headers["x-request-id"])
    ):
        problems.append("the refused download of another issuer's document was not recorded")
    matrix.attack("other owners' objects", [f"{_case_id(route, role)} with the other {owner}'s ids: {p}"
                                            for p in problems])

    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("route", FILTERED_LISTS, ids=[" ".join(r) for r in FILTERED_LISTS])
@pytest.mark.parametrize("role", sorted(CLIENT_ROLES))
async def test_a_list_under_another_owners_object_shows_the_caller_nothing_of_anybody_elses(
    route, role, app, users, strangers, database, matrix
):
    """REQ-54: the lists under an object anyone may see (a placement's subscriptions, an emission's redemptions)
    show an investor or issuer who is neither its issuer nor the subscriber nothing of the others'."""
    app_route = {r.key: r for r in routes_of(app)}[route]
    issuer, investor = strangers[ISSUER], strangers[INVESTOR]

    async with matrix.watching(database) as watch:
        answer = users.client(role).get(issuer.path(app_route))
    problems = [] if answer.status_code == 200 else [f"answered {answer.status_code}"]
    problems += [f"showed the subscriber's {secret!r}" for secret in investor.secrets if secret in answer.text]
    problems += watch.written
    matrix.attack("other owners' lists", [f"{_case_id(route, role)}: {p}" for p in problems])

    assert problems == [], "\n".join(problems)


async def test_the_other_owner_check_flags_an_object_shown_to_someone_it_does_not_belong_to(app, strangers, world):
    """REQ-54: the same check reports a route that shows the object (as one without its owner filter would):
    here the bank account read by its own investor stands in for a bank account shown to a stranger."""
    app_route = {r.key: r for r in routes_of(app)}[("GET", "/v1/bank-accounts/{bank_account_id}")]
    owner = strangers[INVESTOR]
    leaked = owner.person.client.get(owner.path(app_route))
    missing = owner.person.client.get(path_with(app_route))

    found = not_as_missing(leaked, missing, owner)

    assert found[0].startswith("answered 200"), found
    assert {"showed their 'Stranger Holder'", f"showed their {str(owner.person.party_id)!r}"} <= set(found), found
