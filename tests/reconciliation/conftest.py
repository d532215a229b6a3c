"""Reconciliation's run tests each get a database of their own (copied from a migrated template): breaches
and reports are platform-wide, so a clean run must mean this test's world is clean, not the session's."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from dfa.issuance.custodian import CustodianSimulator
from dfa.issuance.models import Emission
from dfa.issuance.service import emissions, underlying
from dfa.ledger import service as ledger
from dfa.platform.adapters.national_bank import NationalBankSimulator
from dfa.platform.database import Database, run_migrations
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.models import Party
from dfa.platform.settings import Settings
from dfa.reconciliation.jobs import Reconciliation
from dfa.reconciliation.service.runs import Counterparties
from dfa.settlement.bank import BankSimulator
from dfa.settlement.service import accounts
from tests.conftest import outside_transaction, url_of
from tests.factories import make_party
from tests.issuance.custodians import CUSTODIAN, new_reference
from tests.issuance.factories import make_application, make_issuer

NOMINAL = 100_000  # 1,000.00 KZT a unit


@pytest.fixture(scope="session")
async def reconciliation_template(database: Database, database_url: str) -> str:
    """A migrated database the per-test databases are copied from."""
    name = f"dfa_reconciliation_template_{uuid.uuid4().hex[:8]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}"')
    await asyncio.to_thread(run_migrations, url_of(database_url, name))
    return name


@pytest.fixture
async def own_database(
    database: Database, database_url: str, reconciliation_template: str, settings: Settings
) -> AsyncIterator[Database]:
    name = f"dfa_reconciliation_{uuid.uuid4().hex[:12]}"
    await outside_transaction(database, f'CREATE DATABASE "{name}" TEMPLATE "{reconciliation_template}"')
    db = Database.from_url(url_of(database_url, name), settings)
    async with db.unit_of_work() as session:
        await accounts.ensure_money(session, settings=settings)
    try:
        yield db
    finally:
        await db.dispose()
        await outside_transaction(database, f'DROP DATABASE "{name}" WITH (FORCE)')


@dataclass
class World:
    """A platform of its own: its database, the custodians, the bank and the National Bank, and the run."""

    database: Database
    custodian: CustodianSimulator
    bank: BankSimulator
    national_bank: NationalBankSimulator
    reconciliation: Reconciliation
    settings: Settings

    async def backed_emission(
        self, *, units: int = 1_000, value: int, ratio: str = "1.0", holders: tuple[int, ...] = (),
        valued_on: date | None = None,
    ) -> tuple[Emission, Party, str]:
        """A registered emission of a new issuer backed by an asset the custodian keeps at `value` tiyn,
        with `holders` units moved from the issuer to a new investor each; (emission, issuer, reference)."""
        reference = new_reference()
        self.custodian.keep(CUSTODIAN, reference, quantity=1_000, unit="t", market_value=value, valued_on=valued_on)
        async with self.database.unit_of_work() as session:
            issuer = await make_issuer(session)
            asset = await underlying.register_underlying_asset(
                session, issuer_party_id=issuer.id, kind="goods", description="class 3 wheat",
                custodian=CUSTODIAN, custodian_reference=reference, quantity=1_000, unit="t", actor="test",
            )
            application = await make_application(
                session, issuer=issuer, units=units, nominal=NOMINAL, underlying_asset_id=asset.id,
                coverage_ratio=Decimal(ratio),
            )
            emission = await emissions.issue(session, application=application, actor="test", settings=self.settings)
            application.status = "registered"
            source = await ledger.find_account(
                session, owner_party_id=issuer.id, asset_id=emission.asset_id, kind="available"
            )
            for quantity in holders:
                investor = await make_party(session)
                target = await accounts.holder_account(
                    session, party_id=investor.id, asset_code=emission.registration_number, settings=self.settings
                )
                await ledger.post_transfer(session, transfer=ledger.TransferSpec(
                    uuid.uuid4(), source.id, target.id, quantity, reference="test placement"
                ))
        return emission, issuer, reference

    async def run(self, day: date, *, force: bool = False, trigger: str = "command"):
        return await self.reconciliation.run(day, trigger=trigger, requested_by="test", force=force)


@pytest.fixture
def world(own_database: Database, settings: Settings) -> World:
    custodian = CustodianSimulator()
    bank = BankSimulator()
    bank.open_account(settings.operator_client_money_iban, owner_name=settings.operator_name)
    national_bank = NationalBankSimulator()
    reconciliation = Reconciliation(
        database=own_database, counterparties=Counterparties(custodian=custodian, bank=bank, mirror=None),
        national_bank=national_bank, keys=Keys.load(settings), settings=settings,
    )
    return World(own_database, custodian, bank, national_bank, reconciliation, settings)
