"""Demo data for a fresh development platform: identified investors who paid their money in through the bank
(a bank statement credited them), an onboarded issuer whose emission was certified, registered and placed,
resting orders, and one staff user of each role. Development only: refused in production.

Deterministic ids and logins make seeding idempotent: running it twice changes nothing the second time.
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.issuance import errors as issuance_errors
from dfa.issuance.custodian import DEMO_GRAIN, Custodian
from dfa.issuance.service import applications, issuers, placement, underlying
from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.identity import errors as identity_errors
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.models import Party
from dfa.platform.identity.service import parties, users
from dfa.platform.settings import Settings
from dfa.reconciliation.jobs import Reconciliation
from dfa.settlement.bank import Bank, BankSimulator
from dfa.settlement.iban import compute_check_digits
from dfa.settlement.service import accounts as settlement_accounts
from dfa.settlement.service import cash, orders

log = logging.getLogger(__name__)

DEMO = uuid.UUID("0b7c5f7e-3c1e-4f0a-9d55-6f4f5d0c2a11")

# The persons are enrolled in the identification centre simulator's demo registry, so their
# biometric sample (see dfa/platform/adapters/identification.py, demo_sample) matches.
INVESTORS = [
    ("aigerim", "Aigerim Nurlanovna Sadykova", "900101400013"),
    ("daniyar", "Daniyar Serikovich Akhmetov", "850202300014"),
    ("madina", "Madina Yerlanovna Kassymova", "920712400019"),
]
# What each investor pays in from their own bank account (its BBAN at a Kazakhstan bank), in tiyn.
DEPOSITS = [("722S000012345001", 5_000_000_00), ("601A000098765002", 5_000_000_00), ("914K000055500003", 1_000_000_00)]
ISSUER = ("steppe-grain", "Steppe Grain LLP", "190840000005")
STAFF = [
    ("compliance", "compliance_officer", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXA"),
    ("admin", "operator_admin", "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLA"),
    ("auditor", "auditor", "MFRGGZDFMZTWQ2LKMFRGGZDFMZTWQ2LA"),
]
DEMO_PASSWORD = "steppe-demo-pass-2026"


def demo_id(name: str) -> uuid.UUID:
    return uuid.uuid5(DEMO, name)


def _refuse_in_production(settings: Settings) -> None:
    if settings.environment == "production":
        raise RuntimeError("demo data and demo logins are refused in production")


async def _identified_party(session: AsyncSession, *, kind: str, name: str, identifier: str, settings: Settings) -> Party:
    try:
        party = await parties.create_party(
            session, kind=kind, name=name, identifier=identifier, resident=True, settings=settings
        )
    except identity_errors.PartyAlreadyExists:
        party = await parties.party_by_identifier(session, identifier)
    if party.kyc_status != "identified":
        party = await parties.decide_kyc(
            session, party_id=party.id, status="identified", level="full", method="in_person",
            reason="demo data", actor="system", settings=settings,
        )
    return party


async def _user(session: AsyncSession, *, login: str, roles: list[str], party_id: uuid.UUID | None, settings: Settings):
    try:
        return await users.create_user(
            session, login=login, password=DEMO_PASSWORD, roles=roles, party_id=party_id, actor="system", settings=settings
        )
    except identity_errors.LoginTaken:
        return None


async def seed(
    session: AsyncSession, *, settings: Settings, keys: Keys, custodian: Custodian, centre: AntiFraudCentre, bank: Bank
) -> bool:
    """Seed the demo data unless it is there; returns whether anything was written."""
    _refuse_in_production(settings)
    investors = [
        await _identified_party(session, kind="person", name=name, identifier=iin, settings=settings)
        for _, name, iin in INVESTORS
    ]
    issuer = await _identified_party(session, kind="legal_entity", name=ISSUER[1], identifier=ISSUER[2], settings=settings)
    wrote = False
    for (login, _, _), party in zip(INVESTORS, investors, strict=True):
        wrote |= await _user(session, login=login, roles=["investor"], party_id=party.id, settings=settings) is not None
    wrote |= await _user(session, login=ISSUER[0], roles=["issuer"], party_id=issuer.id, settings=settings) is not None
    for login, role, secret in STAFF:
        user = await _user(session, login=login, roles=[role], party_id=None, settings=settings)
        if user is not None:
            await users.set_second_factor(session, user_id=user.id, secret=secret, keys=keys)
            wrote = True

    try:
        await issuers.get_issuer(session, issuer.id)
        return wrote
    except issuance_errors.IssuerNotFound:
        pass
    await settlement_accounts.ensure_money(session, settings=settings)
    await _paid_in(session, investors=investors, bank=bank, settings=settings)
    emission = await _registered_emission(session, issuer=issuer, custodian=custodian, settings=settings)
    if emission is not None:
        await _placed(session, emission=emission, investors=investors[:2], centre=centre, settings=settings)
    return True


async def _paid_in(session: AsyncSession, *, investors: list[Party], bank: Bank, settings: Settings) -> None:
    """Each investor registers their own bank account and pays in from it, quoting their payment reference; the
    day's bank statement is imported as the poller would, which credits them and proves their accounts theirs.
    Only a simulated bank can be paid into: with a real one the investors start without money."""
    if not isinstance(bank, BankSimulator):
        log.warning("the demo investors pay in only at the simulated bank; they start without money")
        return
    client_money = settings.operator_client_money_iban
    if bank.balance_tiyn(client_money) > 0:
        return  # paid in before, and the statement imported by the poller since
    today = parties.local_today(settings)
    for party, (bban, amount) in zip(investors, DEPOSITS, strict=True):
        iban = f"KZ{compute_check_digits('KZ', bban)}{bban}"
        await cash.register_bank_account(
            session, party_id=party.id, iban=iban, holder_name=party.name, actor="system", settings=settings
        )
        reference = await cash.payment_reference(session, party_id=party.id, settings=settings)
        bank.credit_incoming(client_money, amount, reference.reference, party.name, iban, today)
    await cash.fetch_statement(session, bank=bank, day=today, actor="system", settings=settings)


async def _registered_emission(session: AsyncSession, *, issuer: Party, custodian: Custodian, settings: Settings):
    """The issuer onboarded with its warehouse grain certified and its emission registered, as staff would
    through the API; None (with a warning) when the security test protocol's submission is not recorded."""
    await issuers.onboard_issuer(
        session, party_id=issuer.id, legal_address="Kostanay, Baitursynov st 10", contact_email="board@steppe-grain.kz",
        custodian_consent=True, custodian_consent_scope="state, quantity and value of our grain in warehouses",
        personal_data_consent=True, actor="system", settings=settings,
    )
    grain = await underlying.register_underlying_asset(
        session, issuer_party_id=issuer.id, kind="goods", description="5 000 t of class 3 wheat, Kostanay elevator",
        custodian=DEMO_GRAIN[0], custodian_reference=DEMO_GRAIN[1], quantity=5_000, unit="t", actor="system",
    )
    today = parties.local_today(settings)
    application = await applications.submit(
        session, issuer_party_id=issuer.id, actor="system", settings=settings,
        terms=applications.Terms(
            name="Steppe Grain warehouse receipt DFA", dfa_kind="commodity", nominal=100_000, units=10_000,
            placement_start=today, placement_end=today + timedelta(days=60), placement_price=100_000,
            min_placement_units=500, maturity_date=today + timedelta(days=365), early_redemption_allowed=True,
            transfer_restrictions="transfers only between identified clients of the operator",
            underlying_asset_id=grain.id, coverage_ratio=Decimal("1.10"),
        ),
    )
    await applications.accept(session, application_id=application.id, actor="system", settings=settings)
    await underlying.certify(
        session, underlying_asset_id=grain.id, application=application, custodian=custodian, actor="system",
        settings=settings,
    )
    try:
        async with session.begin_nested():
            return await applications.register(session, application_id=application.id, actor="system", settings=settings)
    except (issuance_errors.SecurityProtocolNotRecorded, issuance_errors.SecurityProtocolTooRecent) as refused:
        log.warning("the demo emission stays in review: %s", refused)
        return None


async def _placed(session: AsyncSession, *, emission, investors: list[Party], centre, settings: Settings) -> None:
    """A placement both investors subscribed to, allocated, and an order resting on each side of the book."""
    now = datetime.now(UTC)
    offer = await placement.open_placement(
        session, emission=emission, units=6_000, opens_at=now, closes_at=now + timedelta(minutes=1), actor="system",
        settings=settings,
    )
    for party, units in zip(investors, (2_500, 1_500), strict=True):
        await placement.subscribe(
            session, placement_id=offer.id, party_id=party.id, units=units, actor="system", centre=centre,
            settings=settings,
        )
    await placement.close_placement(
        session, placement_id=offer.id, actor="system", settings=settings, now=offer.closes_at
    )
    for party, side, price in ((investors[0], "sell", 104_500), (investors[1], "buy", 101_000)):
        await orders.place(
            session, order_id=demo_id(f"order-{side}"), party_id=party.id, base=emission.registration_number,
            side=side, price=price, quantity=100, actor="system", centre=centre, settings=settings,
        )


async def first_report(reconciliation: Reconciliation, settings: Settings) -> None:
    """Today's reconciliation report, for a freshly seeded platform to show its compliance pages with. A failure
    is logged and recorded with its run, never fatal to the start."""
    try:
        await reconciliation.run(parties.local_today(settings), trigger="command", requested_by="demo data")
    except Exception:
        log.exception("the demo's first reconciliation failed")


def print_logins(settings: Settings) -> None:
    """Print the demo logins (development only)."""
    _refuse_in_production(settings)
    lines = [f"Demo logins (password for all: {DEMO_PASSWORD}):"]
    lines += [f"  investor            {login:12} ({name})" for login, name, _ in INVESTORS]
    lines.append(f"  issuer              {ISSUER[0]:12} ({ISSUER[1]})")
    for login, role, secret in STAFF:
        lines.append(f"  {role:19} {login:12} one-time codes: {pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=users.TOTP_ISSUER)}")
    print("\n".join(lines), flush=True)
