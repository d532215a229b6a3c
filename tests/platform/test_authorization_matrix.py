"""The authorization matrix (REQ-54: users are identified, authenticated and authorised; an issuer's
information is confidential).

`POLICY` is written by hand from the route guards: every route of the app and the roles it admits,
or `PUBLIC` for the few anyone may call without signing in. The suite checks that the table names
exactly the app's routes, then calls every route as every kind of caller: an anonymous caller gets
401, a role the policy leaves out gets 403 (recorded in the security-event log), an admitted role
is never turned away. Object-level checks follow: investors and issuers see only their own parties,
accounts and credentials, and another owner's objects are "not found", never "forbidden".
"""

import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi.routing import APIRoute

from dfa.ledger import service as ledger
from dfa.main import create_app
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from tests.factories import make_party, new_asset_code, new_identifier
from tests.identity import PASSWORD, Users, create_user, sign_in, signed_in_client

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


@pytest.mark.parametrize(("route", "caller"), MATRIX, ids=[_case_id(*case) for case in MATRIX])
def test_every_route_admits_exactly_the_callers_its_policy_names(route, caller, users, world, anonymous):
    allowed = POLICY[route]

    response = send(client_of(caller, route, users, world, anonymous), route, caller, world)

    assert response.status_code < 500, response.text
    if allowed == PUBLIC:
        assert response.status_code != 403, response.text
        assert problem_type(response) not in GUARD_REFUSALS, response.text
    elif caller == ANONYMOUS:
        assert (response.status_code, problem_type(response)) == (401, "/problems/not-authenticated"), response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif caller in allowed:
        assert response.status_code not in (401, 403), response.text
    else:
        assert (response.status_code, response.headers["content-type"]) == (403, PROBLEM), response.text
        assert problem_type(response) == "/problems/forbidden"


@pytest.mark.parametrize(("route", "role"), DENIALS, ids=[_case_id(*case) for case in DENIALS])
def test_every_denial_is_recorded_in_the_security_event_log(route, role, users, world, anonymous):
    response = send(client_of(role, route, users, world, anonymous), route, role, world)
    assert response.status_code == 403, response.text

    login = users[role].login
    event = event_of(users, response, kind="access.denied", actor=login)

    assert event["outcome"] == "denied"
    assert event["subject"] == f"{route[0]} {response.request.url.path}"
    assert event["details"]["roles"] == [role]


# One mutating route of each router that has any; the session cookie alone must not be enough.
CSRF_CASES = [
    (INVESTOR, SIGN_OUT),
    (ADMIN, ("POST", "/v1/parties")),
    (ADMIN, ("PUT", "/v1/calendar/days/{day}")),
    (ADMIN, ("POST", "/v1/ledger/assets")),
]


@pytest.mark.parametrize(("role", "route"), CSRF_CASES, ids=[_case_id(route, role) for role, route in CSRF_CASES])
def test_a_change_with_the_session_cookie_but_no_csrf_token_is_refused_and_recorded(
    role, route, users, world, server_url
):
    signed_in = users.client(role)
    future = world.past_day + timedelta(days=90)
    changed_world = dataclasses.replace(world, past_day=future)
    with httpx.Client(base_url=server_url, timeout=30, headers={"Cookie": signed_in.headers["Cookie"]}) as cookie_only:
        response = send(cookie_only, route, role, changed_world)

    assert (response.status_code, response.headers["content-type"]) == (403, PROBLEM), response.text
    assert problem_type(response) == "/problems/csrf-token-invalid"
    assert event_of(users, response, kind="csrf.rejected", actor=users[role].login)["outcome"] == "denied"
    assert signed_in.get("/v1/me").status_code == 200  # the session lives on, nothing was done with it
    if route == ("PUT", "/v1/calendar/days/{day}"):
        days = signed_in.get("/v1/calendar/days", params={"from": future.isoformat(), "to": future.isoformat()})
        assert days.json()[0]["override"] is None


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


def test_an_investor_cannot_identify_another_investors_party(users, world):
    investor = users.client(INVESTOR)
    other_party = world.parties["other_investor"]
    history_before = users.client(COMPLIANCE).get(f"/v1/parties/{other_party}/kyc-history").json()

    response = investor.post(f"/v1/parties/{other_party}/biometric-identification", json={"biometric_sample": SAMPLE})

    assert (response.status_code, problem_type(response)) == (404, "/problems/party-not-found"), response.text
    assert users.client(COMPLIANCE).get(f"/v1/parties/{other_party}/kyc-history").json() == history_before


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


@pytest.mark.parametrize("action", ["rotation", "revocation"])
def test_an_issuer_cannot_rotate_or_revoke_another_issuers_credential(action, users, world):
    theirs = world.credentials["other_issuer"]

    response = users.client(ISSUER).post(
        f"/v1/credentials/{theirs}/{action}", headers={"Idempotency-Key": str(uuid.uuid4())}
    )

    assert (response.status_code, problem_type(response)) == (404, "/problems/credential-not-found"), response.text
    listed = {c["id"]: c for c in users.client("other_issuer").get("/v1/credentials", params={"limit": 500}).json()}
    assert listed[str(theirs)]["revoked_at"] is None and listed[str(theirs)]["rotated_at"] is None


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
