"""Plain async factories with keyword defaults."""

import itertools
import random
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import service as ledger
from dfa.ledger.models import Account, Asset
from dfa.platform.identifiers import check_digit
from dfa.platform.identity.models import Party
from dfa.platform.identity.service import parties
from dfa.platform.settings import Settings

# The cybersecurity test protocol went to the National Bank long before any test registers an emission.
SECURITY_PROTOCOL_SUBMITTED_ON = date(2026, 1, 5)
# Apart from that, only the calendar settings (time zone) matter to the services the factories call.
SETTINGS = Settings(_env_file=None, security_protocol_submitted_on=SECURITY_PROTOCOL_SUBMITTED_ON)



def today_in_almaty() -> date:
    """The operator's business date now: dates a service checks against "today" are Almaty's, not UTC's."""
    return datetime.now(ZoneInfo(SETTINGS.timezone)).date()


_serial = itertools.count(random.randrange(10**6))


def new_identifier(*, kind: str = "person") -> str:
    """A fresh IIN (persons) or BIN (legal entities) with a valid check digit."""
    while True:
        body = f"{'9001013' if kind == 'person' else '1908400'}{next(_serial) % 10**4:04d}"
        digit = check_digit(body)
        if digit is not None:
            return body + str(digit)


def new_asset_code(prefix: str = "T") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"


async def make_party(
    session: AsyncSession, *, kind: str = "person", name: str = "Test Holder", identified: bool = True,
    identifier: str | None = None, resident: bool = True,
) -> Party:
    """A party (by default an identified adult, born 1990-01-01)."""
    party = await parties.create_party(
        session, kind=kind, name=name, identifier=identifier or new_identifier(kind=kind), resident=resident,
        settings=SETTINGS,
    )
    if identified:
        party = await parties.decide_kyc(
            session, party_id=party.id, status="identified", level="full", method="in_person",
            reason="identified for a test", actor="test", settings=SETTINGS,
        )
    return party


async def make_asset(session: AsyncSession, *, kind: str = "money", code: str | None = None) -> Asset:
    return await ledger.create_asset(
        session, code=code or new_asset_code(), kind=kind, scale=2 if kind == "money" else 0, name="test asset"
    )


async def make_account(
    session: AsyncSession, *, asset: Asset, owner: Party | None = None, kind: str = "available"
) -> Account:
    owner = owner or await make_party(session)
    return await ledger.open_account(session, owner_party_id=owner.id, asset_code=asset.code, kind=kind, settings=SETTINGS)


async def funded_accounts(
    session: AsyncSession, *, count: int, amount: int, asset: Asset | None = None
) -> tuple[Asset, Account, list[Account]]:
    """An asset, its contra (source) account, and `count` holder accounts funded with `amount` each."""
    asset = asset or await make_asset(session)
    operator = await make_party(session, kind="legal_entity", name="Operator")
    source = await make_account(
        session, asset=asset, owner=operator, kind="client_money" if asset.kind == "money" else "issued"
    )
    holders = [await make_account(session, asset=asset) for _ in range(count)]
    if amount:
        await ledger.post_transfers(
            session,
            transfers=[ledger.TransferSpec(uuid.uuid4(), source.id, h.id, amount) for h in holders],
        )
    return asset, source, holders
