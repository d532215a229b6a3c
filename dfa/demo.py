"""Demo data for a fresh development platform: identified investors, an issuer, one staff user of
each role, KZT, one emission and some movements. Development only: refused in production.

Deterministic ids and logins make seeding idempotent: running it twice changes nothing the second time.
"""

import uuid

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import errors as ledger_errors
from dfa.ledger import service as ledger
from dfa.platform.identity import errors as identity_errors
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.models import Party
from dfa.platform.identity.service import parties, users
from dfa.platform.settings import Settings
from dfa.settlement.service import accounts as settlement_accounts

DEMO = uuid.UUID("0b7c5f7e-3c1e-4f0a-9d55-6f4f5d0c2a11")

# The persons are enrolled in the identification centre simulator's demo registry, so their
# biometric sample (see dfa/platform/adapters/identification.py, demo_sample) matches.
INVESTORS = [
    ("aigerim", "Aigerim Nurlanovna Sadykova", "900101400013"),
    ("daniyar", "Daniyar Serikovich Akhmetov", "850202300014"),
    ("madina", "Madina Yerlanovna Kassymova", "920712400019"),
]
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


async def seed(session: AsyncSession, *, settings: Settings, keys: Keys) -> bool:
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

    emission = f"{settings.operator_nbk_registration_number}-000001"
    try:
        await ledger.get_asset(session, emission)
        return wrote
    except ledger_errors.AssetNotFound:
        pass
    investor_a, investor_b = investors[0], investors[1]
    await settlement_accounts.ensure_money(session, settings=settings)
    await ledger.create_asset(session, code=emission, kind="dfa", scale=0, name="Steppe Grain warehouse receipt DFA")

    async def account(owner: Party, asset: str, kind: str):
        return await ledger.open_account(session, owner_party_id=owner.id, asset_code=asset, kind=kind, settings=settings)

    client_money = await settlement_accounts.operator_account(session, kind="client_money", settings=settings)
    cash = {p.id: await account(p, "KZT", "available") for p in (*investors, issuer)}
    issued = await account(issuer, emission, "issued")
    units = {p.id: await account(p, emission, "available") for p in (*investors, issuer)}
    deposits = [
        ledger.TransferSpec(demo_id(f"deposit-{p.id}"), client_money.id, cash[p.id].id, 5_000_000_00, reference="bank deposit")
        for p in (investor_a, investor_b)
    ]
    await ledger.post_transfers(session, transfers=deposits)
    await ledger.post_transfer(
        session,
        transfer=ledger.TransferSpec(demo_id("issue"), issued.id, units[issuer.id].id, 10_000, reference="issuance"),
    )
    await ledger.execute_batch(
        session,
        batch_id=demo_id("placement-a"),
        items=[
            ledger.TransferItem(ledger.TransferSpec(demo_id("placement-a-cash"), cash[investor_a.id].id, cash[issuer.id].id, 1_500_000_00)),
            ledger.TransferItem(ledger.TransferSpec(demo_id("placement-a-units"), units[issuer.id].id, units[investor_a.id].id, 1_500)),
        ],
    )
    await ledger.place_hold(session, hold_id=demo_id("order-b"), account_id=cash[investor_b.id].id, amount=250_000_00)
    return True


def print_logins(settings: Settings) -> None:
    """Print the demo logins (development only)."""
    _refuse_in_production(settings)
    lines = [f"Demo logins (password for all: {DEMO_PASSWORD}):"]
    lines += [f"  investor            {login:12} ({name})" for login, name, _ in INVESTORS]
    lines.append(f"  issuer              {ISSUER[0]:12} ({ISSUER[1]})")
    for login, role, secret in STAFF:
        lines.append(f"  {role:19} {login:12} one-time codes: {pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=users.TOTP_ISSUER)}")
    print("\n".join(lines), flush=True)
