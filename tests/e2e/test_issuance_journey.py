"""An issuer's whole journey through the HTTP API: onboarding, an application, certification of the
underlying asset, registration, primary placement, secondary trading, a transfer to a digital-asset
trading platform, and redemption — checked to the tiyn and the unit at every step."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from dfa.ledger import service as ledger
from dfa.settlement.service import accounts
from tests.factories import today_in_almaty
from tests.identity import create_user, sign_in, signed_in_client

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
UNITS = 1_000
NOMINAL = 100_000  # 1 000 KZT per unit, in tiyn
OFFERED = 600
WINDOW_S = 4
TRADE_PRICE = 105_000
TRADED = 43
TO_PLATFORM = 100


def _post(client: httpx.Client, path: str, body: dict | None = None, **kwargs) -> httpx.Response:
    response = client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response


async def _client(database, settings, server_url: str, role: str) -> tuple[httpx.Client, uuid.UUID | None]:
    login, _, party_id, secret = await create_user(database, settings, role=role)
    return signed_in_client(server_url, sign_in(server_url, login, totp_secret=secret)), party_id


async def _deposit(database, settings, party_id: uuid.UUID, amount: int) -> None:
    """Money that reached the client-money account for this client (the bank statement's part is tested
    by settlement)."""
    async with database.unit_of_work() as session:
        source = await accounts.operator_account(session, kind="client_money", settings=settings)
        target = await accounts.holder_account(session, party_id=party_id, asset_code="KZT", settings=settings)
        await ledger.post_transfer(session, transfer=ledger.TransferSpec(uuid.uuid4(), source.id, target.id, amount))


def _balance(client: httpx.Client, asset: str) -> int:
    listed = client.get("/v1/ledger/accounts", params={"asset": asset}).json()
    return sum(a["balance"] for a in listed if a["kind"] == "available")


async def test_an_issuer_goes_from_onboarding_to_redemption_through_the_api_req_21_to_req_46(
    app, database, settings, server_url, users
):
    issuer, issuer_id = await _client(database, settings, server_url, "issuer")
    alice, alice_id = await _client(database, settings, server_url, "investor")
    bob, bob_id = await _client(database, settings, server_url, "investor")
    admin = users.client("operator_admin")
    for investor_id in (alice_id, bob_id):
        await _deposit(database, settings, investor_id, 100_000_000)

    # Onboarding with both consents, a document, and the underlying asset its custodian keeps.
    _post(issuer, "/v1/issuers", {
        "legal_address": "Kostanay, Baitursynov st 10", "contact_email": "board@grain.example.kz",
        "custodian_consent": True, "custodian_consent_scope": "state, quantity and value of our warehouse grain",
        "personal_data_consent": True,
    })
    charter = issuer.post(
        f"/v1/issuers/{issuer_id}/documents", headers={"Idempotency-Key": str(uuid.uuid4())},
        data={"kind": "charter", "title": "Charter"}, files={"file": ("charter.pdf", PDF, "application/pdf")},
    )
    assert charter.status_code == 201, charter.text
    reference = f"WR-E2E-{uuid.uuid4().hex[:8].upper()}"
    app.state.custodian.keep("kazgrain", reference, quantity=2_000, unit="t", market_value=130_000_000)
    asset = _post(issuer, f"/v1/issuers/{issuer_id}/underlying-assets", {
        "kind": "goods", "description": "2 000 t of class 3 wheat", "custodian": "kazgrain",
        "custodian_reference": reference, "quantity": 2_000, "unit": "t",
    }).json()

    # The application, its completeness check, the certification and the registration.
    today = today_in_almaty()
    application = _post(issuer, "/v1/emission-applications", {
        "name": "Kostanay wheat receipts 2026", "dfa_kind": "commodity", "nominal": NOMINAL, "units": UNITS,
        "placement_start": today.isoformat(), "placement_end": (today + timedelta(days=30)).isoformat(),
        "placement_price": NOMINAL, "min_placement_units": 100, "early_redemption_allowed": True,
        "underlying_asset_id": asset["id"], "coverage_ratio": "1.20",
    }).json()
    assert (application["status"], application["deadline_kind"]) == ("submitted", "completeness_check")
    path = f"/v1/emission-applications/{application['id']}"
    accepted = _post(admin, f"{path}/acceptance").json()
    assert (accepted["status"], accepted["deadline_kind"]) == ("in_review", "review")
    certification = _post(admin, f"/v1/underlying-assets/{asset['id']}/certifications",
                          {"application_id": application["id"]}).json()
    assert certification["passed"] and certification["required_value"] == 120_000_000, certification
    registered = _post(admin, f"{path}/registration").json()
    number = registered["registration_number"]
    assert registered["status"] == "registered"
    assert number.startswith(f"{settings.operator_nbk_registration_number}-") and len(number) <= 50  # REQ-23
    assert [e["step"] for e in issuer.get(path).json()["history"]] == ["submitted", "accepted", "registered"]
    assert _balance(issuer, number) == UNITS

    # Primary placement: oversubscribed, allocated pro rata, settled by DvP.
    now = datetime.now(UTC)
    placement = _post(issuer, f"/v1/emissions/{number}/placements", {
        "units": OFFERED, "opens_at": now.isoformat(), "closes_at": (now + timedelta(seconds=WINDOW_S)).isoformat(),
    }).json()
    _post(alice, f"/v1/placements/{placement['id']}/subscriptions", {"units": 400})
    _post(bob, f"/v1/placements/{placement['id']}/subscriptions", {"units": 300})
    await asyncio.sleep(max(0.0, (now + timedelta(seconds=WINDOW_S + 0.3) - datetime.now(UTC)).total_seconds()))
    closed = _post(issuer, f"/v1/placements/{placement['id']}/allocation").json()
    assert (closed["status"], closed["units_allocated"]) == ("allocated", OFFERED)
    # 700 asked for 600: 342.86 and 257.14 round down to 342 and 257; the unit left goes to the earliest.
    assert (_balance(alice, number), _balance(bob, number)) == (343, 257)
    assert _balance(alice, "KZT") == 100_000_000 - 343 * NOMINAL
    assert _balance(issuer, "KZT") == OFFERED * NOMINAL

    # Secondary trading on the order book.
    _post(alice, "/v1/orders", {"base": number, "side": "sell", "price": TRADE_PRICE, "quantity": TRADED})
    bought = _post(bob, "/v1/orders", {"base": number, "side": "buy", "price": TRADE_PRICE, "quantity": TRADED})
    assert bought.json()["order"]["status"] == "filled", bought.text
    assert (_balance(alice, number), _balance(bob, number)) == (300, 300)

    # A transfer of units to a trading platform: blocked, confirmed, cancelled here; the total is unchanged.
    platforms = app.state.trading_platforms
    admin.post("/v1/trading-platforms", headers={"Idempotency-Key": str(uuid.uuid4())}, json={
        "code": "astana-digital", "name": "Astana Digital Exchange", "nbk_registration_number": "NBK-TP-7",
    })  # 201, or 409 when another test registered it first
    platforms.confirm_next()
    transfer = _post(issuer, f"/v1/emissions/{number}/platform-transfers",
                     {"platform": "astana-digital", "units": TO_PLATFORM}).json()
    assert transfer["status"] == "notified"
    assert _post(issuer, f"/v1/platform-transfers/{transfer['id']}/refresh").json()["status"] == "confirmed"
    emission = issuer.get(f"/v1/emissions/{number}").json()
    assert (emission["units_outstanding"], emission["units_on_trading_platforms"]) == (UNITS - TO_PLATFORM, TO_PLATFORM)
    assert emission["units_outstanding"] + emission["units_on_trading_platforms"] + emission["units_cancelled"] == UNITS

    # Early redemption: every holder paid at the nominal and every unit here cancelled, in one go.
    alice_money, bob_money = _balance(alice, "KZT"), _balance(bob, "KZT")
    redemption = _post(issuer, f"/v1/emissions/{number}/redemptions", {"kind": "early"}).json()
    assert (redemption["status"], redemption["amount_due"]) == ("paid", 600 * NOMINAL), redemption
    assert _balance(alice, "KZT") - alice_money == 300 * NOMINAL
    assert _balance(bob, "KZT") - bob_money == 300 * NOMINAL
    assert (_balance(alice, number), _balance(bob, number), _balance(issuer, number)) == (0, 0, 0)
    assert _balance(issuer, "KZT") == OFFERED * NOMINAL - 600 * NOMINAL
    emission = issuer.get(f"/v1/emissions/{number}").json()
    assert (emission["status"], emission["units_outstanding"]) == ("redeemed", 0)
    for client in (issuer, alice, bob):
        client.close()
