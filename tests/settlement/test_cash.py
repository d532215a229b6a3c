"""Money in and out, at the service level: deposits recognised from the bank's statements and credited
to the tiyn exactly once, an unmatched queue for staff, withdrawals prefunded by a hold and paid by
payment orders that reach the bank exactly once, whatever the bank answers or fails to answer.

Most tests run in a rolled-back transaction; those about concurrency and about the submission job
(which opens transactions of its own) commit, each against a client-money account of its own at a
bank simulator of its own, and leave no withdrawal waiting.
"""

import asyncio
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.ledger import errors as ledger_errors
from dfa.ledger import service as ledger
from dfa.platform.adapters.antifraud import DEMO_WATCH_LIST, AntiFraudSimulator, WatchList
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.identity.errors import AntiFraudMatch, PartyNotIdentified
from dfa.platform.identity.models import Party
from dfa.platform.identity.service.parties import local_today
from dfa.platform.settings import Settings
from dfa.settlement import cash_repository, jobs
from dfa.settlement.bank import BankSimulator, RefusalCode
from dfa.settlement.errors import (
    BankAccountAlreadyRegistered,
    BankAccountNotAllowed,
    BankAccountNotFound,
    BankAccountNotVerified,
    InvalidIban,
    ResolutionNoteRequired,
    StatementCurrencyNotAccepted,
    StatementLineAlreadyResolved,
    StatementLineNotAssignable,
    StatementOfAnotherAccount,
    WithdrawalIdReused,
    WithdrawalNotCancellable,
    WithdrawalNotFound,
)
from dfa.settlement.iban import compute_check_digits
from dfa.settlement.iso20022 import PaymentOrder, build_pain001
from dfa.settlement.service import accounts, cash
from tests.factories import make_party
from tests.ledger.helpers import assert_ledger_verifies, count, refused

OPERATOR_NAME = "DFA Platform Operator JSC"
_account_numbers = itertools.count(random.randrange(10**9))


def new_iban() -> str:
    """A fresh, valid Kazakhstan IBAN (bank code 601), never used by another test."""
    bban = f"601KZT{next(_account_numbers) % 10**10:010d}"
    return f"KZ{compute_check_digits('KZ', bban)}{bban}"


def spaced(reference: str) -> str:
    """The reference as a client might type it: lower case, in groups, with dashes."""
    return f"{reference[:3].lower()} {reference[3:7]}-{reference[7:11]} {reference[11:]}"


@dataclass
class Bank:
    """A bank simulator keeping a client-money account of the test's own, and the settings naming it."""

    simulator: BankSimulator
    settings: Settings

    @property
    def iban(self) -> str:
        return self.settings.operator_client_money_iban

    def pay_in(self, amount_tiyn: int, details: str, *, payer_iban: str | None = None, payer: str = "Erlan Asanov") -> str:
        day = local_today(self.settings)
        return self.simulator.credit_incoming(self.iban, amount_tiyn, details, payer, payer_iban or new_iban(), day)

    def statement(self) -> bytes:
        return self.simulator.answer_statement(account_iban=self.iban, day=local_today(self.settings))


def make_bank(settings: Settings) -> Bank:
    own = settings.model_copy(update={"operator_client_money_iban": new_iban()})
    simulator = BankSimulator(bic=own.operator_bank_bic)
    simulator.open_account(own.operator_client_money_iban, owner_name=OPERATOR_NAME)
    return Bank(simulator, own)


def antifraud() -> AntiFraudSimulator:
    return AntiFraudSimulator(WatchList.load(DEMO_WATCH_LIST))


@pytest.fixture
def bank(settings: Settings) -> Bank:
    return make_bank(settings)


@pytest.fixture
async def money(session: AsyncSession, settings: Settings) -> None:
    await accounts.ensure_money(session, settings=settings)


@pytest.fixture
async def committed_money(database: Database, settings: Settings) -> None:
    async with database.unit_of_work() as session:
        await accounts.ensure_money(session, settings=settings)


async def available(session: AsyncSession, party: Party, settings: Settings) -> int:
    account = await accounts.holder_account(session, party_id=party.id, asset_code="KZT", settings=settings)
    return (await ledger.get_account(session, account.id)).balance


async def balances(session: AsyncSession, party_id: uuid.UUID) -> dict[str, int]:
    """The party's KZT balances by account kind, read afresh."""
    rows = await session.execute(
        text(
            "SELECT a.kind, a.balance FROM ledger_accounts a JOIN ledger_assets s ON s.id = a.asset_id "
            "WHERE s.code = 'KZT' AND a.owner_party_id = :party"
        ),
        {"party": party_id},
    )
    return {kind: balance for kind, balance in rows.all()}


async def client_money(session: AsyncSession, settings: Settings) -> int:
    account = await accounts.operator_account(session, kind="client_money", settings=settings)
    return (await session.execute(
        text("SELECT balance FROM ledger_accounts WHERE id = :id"), {"id": account.id}
    )).scalar_one()


async def import_(session: AsyncSession, bank: Bank, *, actor: str = "admin-test") -> cash.ImportSummary:
    return await cash.import_statement(session, document=bank.statement(), actor=actor, settings=bank.settings)


async def verified_account(session: AsyncSession, party: Party, settings: Settings, *, iban: str | None = None):
    account = await cash.register_bank_account(
        session, party_id=party.id, iban=iban or new_iban(), holder_name="Aigerim Sadykova", actor="investor",
        settings=settings,
    )
    return await cash.verify_bank_account(
        session, bank_account_id=account.id, evidence="bank's confirmation letter", actor="admin-test"
    )


async def deposit(session: AsyncSession, bank: Bank, party: Party, amount_tiyn: int, **payment) -> None:
    """The party pays in `amount_tiyn` quoting its reference, and the statement is imported."""
    reference = await cash.payment_reference(session, party_id=party.id, settings=bank.settings)
    bank.pay_in(amount_tiyn, f"Top-up {reference.reference}", **payment)
    await import_(session, bank)


async def withdraw(session: AsyncSession, bank: Bank, party: Party, bank_account_id: int, amount_tiyn: int, **kw):
    withdrawal, _ = await cash.request_withdrawal(
        session, party_id=party.id, bank_account_id=bank_account_id, amount_tiyn=amount_tiyn,
        withdrawal_id=kw.pop("withdrawal_id", uuid.uuid4()), actor="investor", centre=kw.pop("centre", antifraud()),
        settings=bank.settings,
    )
    return withdrawal


async def events(session: AsyncSession, kind: str, subject: str) -> list:
    return await audit.search(session, kind=kind, subject=subject, limit=10)


# --- payment references -------------------------------------------------------------------------------


async def test_a_client_gets_one_payment_reference_whose_check_digits_catch_a_typo(session, settings):
    party = await make_party(session)

    first = await cash.payment_reference(session, party_id=party.id, settings=settings)
    again = await cash.payment_reference(session, party_id=party.id, settings=settings)

    assert again.reference == first.reference
    reference = first.reference
    assert reference.startswith("DFA") and len(reference) == 14 and cash.is_valid_reference(reference)
    for i in range(3, len(reference)):
        mistyped = reference[:i] + str((int(reference[i]) + 1) % 10) + reference[i + 1:]
        assert not cash.is_valid_reference(mistyped), mistyped
    for i in range(3, len(reference) - 1):
        if reference[i] != reference[i + 1]:
            swapped = reference[:i] + reference[i + 1] + reference[i] + reference[i + 2:]
            assert not cash.is_valid_reference(swapped), swapped
    assert cash.references_in(f"Пополнение счёта, {spaced(reference)}; спасибо") == {reference}


async def test_a_party_not_identified_gets_no_payment_reference(session, settings):
    """REQ-14: only identified clients are served."""
    party = await make_party(session, identified=False)

    async with refused(session, PartyNotIdentified):
        await cash.payment_reference(session, party_id=party.id, settings=settings)
    assert await count(session, "settlement_payment_references WHERE party_id = :p", p=party.id) == 0


# --- deposits -----------------------------------------------------------------------------------------


async def test_a_deposit_quoting_the_payment_reference_is_credited_to_the_client_to_the_exact_tiyn(
    session, money, bank
):
    """REQ-50: the client's money is booked against the client-money account that mirrors the bank's."""
    party = await make_party(session)
    reference = (await cash.payment_reference(session, party_id=party.id, settings=bank.settings)).reference
    mirror_before = await client_money(session, bank.settings)
    entry = bank.pay_in(150_000_51, f"Пополнение {spaced(reference)}")

    summary = await import_(session, bank)

    assert (summary.lines_new, summary.credited, summary.credited_tiyn, summary.unmatched) == (1, 1, 150_000_51, 0)
    assert await available(session, party, bank.settings) == 150_000_51
    assert await client_money(session, bank.settings) == mirror_before - 150_000_51
    [line] = await cash.list_statement_lines(session, status="credited", party_id=party.id, after=None, limit=10)
    assert (line.entry_reference, line.amount_tiyn, line.status) == (entry, 150_000_51, "credited")
    transfer = await ledger.get_transfer(session, line.transfer_id)
    assert (transfer.amount, transfer.reference) == (150_000_51, f"deposit {entry}")
    await assert_ledger_verifies(session)


async def test_importing_the_same_statement_again_credits_nothing_twice(session, money, bank):
    party = await make_party(session)
    reference = (await cash.payment_reference(session, party_id=party.id, settings=bank.settings)).reference
    bank.pay_in(10_000_00, reference)
    document = bank.statement()

    first = await cash.import_statement(session, document=document, actor="admin-test", settings=bank.settings)
    again = await cash.import_statement(session, document=document, actor="admin-test", settings=bank.settings)
    refetched = await import_(session, bank)  # the same statement, produced anew by the bank
    bank.pay_in(5_00, reference)
    grown = await import_(session, bank)  # the day's statement with one more entry

    assert first.credited_tiyn == 10_000_00
    assert [(s.import_id, s.lines_new) for s in again.statements + refetched.statements] == [(None, 0), (None, 0)]
    assert (grown.lines_new, grown.credited_tiyn, grown.statements[0].lines_total) == (1, 5_00, 2)
    assert await available(session, party, bank.settings) == 10_005_00
    assert await count(session, "settlement_statement_lines WHERE account_iban = :a", a=bank.iban) == 2
    assert await count(session, "settlement_statement_imports WHERE account_iban = :a", a=bank.iban) == 2


async def test_two_concurrent_imports_of_one_statement_credit_it_once(database, settings, committed_money):
    bank = make_bank(settings)
    async with database.unit_of_work() as session:
        party = await make_party(session)
        reference = (await cash.payment_reference(session, party_id=party.id, settings=bank.settings)).reference
    bank.pay_in(777_77, reference)
    document = bank.statement()

    async def import_alone() -> cash.ImportSummary:
        async with database.unit_of_work() as session:
            return await cash.import_statement(session, document=document, actor="poll", settings=bank.settings)

    async with database.unit_of_work() as session:
        first = await cash.import_statement(session, document=document, actor="admin", settings=bank.settings)
        second = asyncio.create_task(import_alone())
        await asyncio.sleep(0.5)
        # The second import has not seen the first commit; it waits on the very lines the first stored.
        assert not second.done()
    second = await second

    assert (first.credited_tiyn, second.credited_tiyn, second.lines_new) == (777_77, 0, 0)
    async with database.read() as session:
        assert (await balances(session, party.id))["available"] == 777_77
        assert await count(session, "settlement_statement_lines WHERE account_iban = :a", a=bank.iban) == 1


async def test_a_deposit_without_a_known_reference_waits_for_staff_who_assign_it(session, money, bank):
    party = await make_party(session)
    reference = (await cash.payment_reference(session, party_id=party.id, settings=bank.settings)).reference
    mistyped = reference[:-1] + str((int(reference[-1]) + 1) % 10)
    bank.pay_in(300_00, "for my DFA account")
    bank.pay_in(400_00, f"top-up {mistyped}")
    mirror_before = await client_money(session, bank.settings)

    summary = await import_(session, bank)

    assert (summary.credited, summary.unmatched) == (0, 2)
    assert await client_money(session, bank.settings) == mirror_before  # nothing booked until it is known
    queue = [line for line in await cash.list_statement_lines(session, status="unmatched", after=None, limit=500)
             if line.account_iban == bank.iban]
    assert sorted(line.amount_tiyn for line in queue) == [300_00, 400_00]
    assert {line.note for line in queue} == {"no client's payment reference in the payment details"}
    line = next(line for line in queue if line.amount_tiyn == 300_00)

    assigned = await cash.assign_line(
        session, line_id=line.id, party_id=party.id, note="payer's letter of 3 March", actor="admin-test",
        settings=bank.settings,
    )

    assert (assigned.status, assigned.party_id, assigned.resolved_by) == ("assigned", party.id, "admin-test")
    assert await available(session, party, bank.settings) == 300_00
    assert await client_money(session, bank.settings) == mirror_before - 300_00
    assert [e.details["amount_tiyn"] for e in await events(session, "bank_statement_line.assigned", str(line.id))] == [
        300_00
    ]
    async with refused(session, StatementLineAlreadyResolved):
        await cash.assign_line(
            session, line_id=line.id, party_id=party.id, note="again", actor="admin-test", settings=bank.settings
        )
    assert await available(session, party, bank.settings) == 300_00
    await assert_ledger_verifies(session)


async def test_staff_return_an_unmatched_deposit_with_a_note_and_it_leaves_the_queue(session, money, bank):
    bank.pay_in(250_00, "unknown payment")
    await import_(session, bank)
    [line] = [line for line in await cash.list_statement_lines(session, status="unmatched", after=None, limit=500)
              if line.account_iban == bank.iban]

    async with refused(session, ResolutionNoteRequired):
        await cash.return_line(session, line_id=line.id, note="   ", actor="admin-test")
    returned = await cash.return_line(session, line_id=line.id, note="returned by order 118 of 4 March", actor="admin-test")

    assert (returned.status, returned.note) == ("returned", "returned by order 118 of 4 March")
    assert await events(session, "bank_statement_line.returned", str(line.id))
    async with refused(session, StatementLineAlreadyResolved):
        await cash.assign_line(
            session, line_id=line.id, party_id=(await make_party(session)).id, note="x", actor="a", settings=bank.settings
        )


async def test_an_unexplained_debit_waits_for_staff_and_cannot_be_credited_to_a_client(session, money, bank):
    bank.pay_in(100_00, "unknown payment")
    bank.simulator.accept_payment_orders(_foreign_order(bank, 40_00))  # paid out, but not by the platform

    summary = await import_(session, bank)

    assert (summary.unmatched, summary.withdrawals) == (2, 0)
    [debit] = [line for line in await cash.list_statement_lines(session, status="unmatched", after=None, limit=500)
               if line.account_iban == bank.iban and not line.credit]
    assert debit.note == "no payment order of ours explains this debit"
    async with refused(session, StatementLineNotAssignable):
        await cash.assign_line(
            session, line_id=debit.id, party_id=(await make_party(session)).id, note="x", actor="a",
            settings=bank.settings,
        )


def _foreign_order(bank: Bank, amount_tiyn: int) -> bytes:
    """A payment order the bank executes from the client-money account that the platform never made."""
    return build_pain001(
        message_id=f"X{uuid.uuid4().hex}", created_at=datetime.now(UTC), debtor_name=OPERATOR_NAME,
        debtor_iban=bank.iban, debtor_bic=None, execution_date=local_today(bank.settings),
        orders=[PaymentOrder("FOREIGN-1", amount_tiyn, "Somebody", new_iban(), None, "not ours")],
    )


async def test_a_statement_of_another_account_is_refused_and_changes_nothing(session, money, bank, settings):
    party = await make_party(session)
    reference = (await cash.payment_reference(session, party_id=party.id, settings=bank.settings)).reference
    elsewhere = make_bank(settings)  # the operator's own-money account, say
    elsewhere.pay_in(1_000_00, reference)
    lines_before = await count(session, "settlement_statement_lines")
    imports_before = await count(session, "settlement_statement_imports")

    async with refused(session, StatementOfAnotherAccount):
        await cash.import_statement(session, document=elsewhere.statement(), actor="admin-test", settings=bank.settings)

    assert await count(session, "settlement_statement_lines") == lines_before
    assert await count(session, "settlement_statement_imports") == imports_before
    assert await balances(session, party.id) in ({}, {"available": 0, "held": 0})


async def test_a_statement_in_another_currency_is_refused(session, money, bank):
    document = bank.statement().replace(b'Ccy="KZT"', b'Ccy="USD"').replace(b"<Ccy>KZT</Ccy>", b"<Ccy>USD</Ccy>")

    async with refused(session, StatementCurrencyNotAccepted):
        await cash.import_statement(session, document=document, actor="admin-test", settings=bank.settings)


# --- clients' bank accounts ---------------------------------------------------------------------------


async def test_a_bank_account_is_registered_once_with_a_valid_iban_and_not_the_operators(session, settings):
    party = await make_party(session)
    iban = new_iban()

    account = await cash.register_bank_account(
        session, party_id=party.id, iban=" ".join(iban[i:i + 4] for i in range(0, 20, 4)).lower(),
        holder_name="  Aigerim Sadykova ", actor="investor", settings=settings,
    )

    assert (account.iban, account.holder_name, account.status) == (iban, "Aigerim Sadykova", "unverified")
    assert await events(session, "bank_account.registered", str(account.id))
    async with refused(session, BankAccountAlreadyRegistered):
        await cash.register_bank_account(
            session, party_id=party.id, iban=iban, holder_name="A", actor="investor", settings=settings
        )
    async with refused(session, InvalidIban):
        await cash.register_bank_account(
            session, party_id=party.id, iban=iban[:-1] + str((int(iban[-1]) + 1) % 10), holder_name="A",
            actor="investor", settings=settings,
        )
    async with refused(session, BankAccountNotAllowed):
        await cash.register_bank_account(
            session, party_id=party.id, iban=settings.operator_client_money_iban, holder_name="A", actor="investor",
            settings=settings,
        )


async def test_a_deposit_from_a_registered_account_proves_it_is_the_clients_own(session, money, bank):
    party = await make_party(session)
    iban = new_iban()
    account = await cash.register_bank_account(
        session, party_id=party.id, iban=iban, holder_name="Erlan Asanov", actor="investor", settings=bank.settings
    )
    other = await cash.register_bank_account(
        session, party_id=party.id, iban=new_iban(), holder_name="Erlan Asanov", actor="investor", settings=bank.settings
    )

    await deposit(session, bank, party, 50_00, payer_iban=iban)

    assert (await cash.get_bank_account(session, account.id)).status == "verified"
    assert (await cash.get_bank_account(session, other.id)).status == "unverified"
    [event] = await events(session, "bank_account.verified", str(account.id))
    assert event.details["method"] == "deposit"
    withdrawal = await withdraw(session, bank, party, account.id, 50_00)
    assert withdrawal.status == "requested"


# --- withdrawals --------------------------------------------------------------------------------------


async def test_a_withdrawal_holds_the_money_at_once_and_a_replay_returns_it(session, money, bank):
    """REQ-38: what is paid out is prefunded: the amount is held when the withdrawal is requested."""
    party = await make_party(session)
    account = await verified_account(session, party, bank.settings)
    await deposit(session, bank, party, 1_000_00)
    withdrawal_id = uuid.uuid4()

    withdrawal = await withdraw(session, bank, party, account.id, 600_01, withdrawal_id=withdrawal_id)
    replay, created = await cash.request_withdrawal(
        session, party_id=party.id, bank_account_id=account.id, amount_tiyn=600_01, withdrawal_id=withdrawal_id,
        actor="investor", centre=antifraud(), settings=bank.settings,
    )

    assert (withdrawal.status, withdrawal.amount_tiyn, withdrawal.end_to_end_id) == (
        "requested", 600_01, f"WD{withdrawal_id.hex}"
    )
    assert (replay.id, created) == (withdrawal_id, False)
    assert await balances(session, party.id) == {"available": 399_99, "held": 600_01}
    async with refused(session, WithdrawalIdReused):
        await withdraw(session, bank, party, account.id, 1_00, withdrawal_id=withdrawal_id)


async def test_a_withdrawal_to_an_unverified_or_another_clients_account_is_refused(session, money, bank):
    party, stranger = await make_party(session), await make_party(session)
    unverified = await cash.register_bank_account(
        session, party_id=party.id, iban=new_iban(), holder_name="A", actor="investor", settings=bank.settings
    )
    strangers = await verified_account(session, stranger, bank.settings)
    await deposit(session, bank, party, 1_000_00)

    async with refused(session, BankAccountNotVerified):
        await withdraw(session, bank, party, unverified.id, 100_00)
    async with refused(session, BankAccountNotFound):
        await withdraw(session, bank, party, strangers.id, 100_00)

    assert await count(session, "settlement_withdrawals WHERE party_id = :p", p=party.id) == 0
    assert await balances(session, party.id) == {"available": 1_000_00, "held": 0}


async def test_a_withdrawal_short_of_money_is_refused_and_nothing_is_written(session, money, bank):
    """REQ-38: no payout without prefunded money; the refusal leaves no trace in the books."""
    party = await make_party(session)
    account = await verified_account(session, party, bank.settings)
    await deposit(session, bank, party, 100_00)
    holds_before = await count(session, "ledger_holds")

    async with refused(session, ledger_errors.InsufficientFunds):
        await withdraw(session, bank, party, account.id, 100_01)

    assert await count(session, "settlement_withdrawals WHERE party_id = :p", p=party.id) == 0
    assert await count(session, "ledger_holds") == holds_before
    assert await balances(session, party.id) == {"available": 100_00, "held": 0}


async def test_a_withdrawal_of_a_client_the_anti_fraud_centre_flags_is_refused(session, money, bank):
    """REQ-18: the anti-fraud centre is asked before money leaves."""
    party = await make_party(session)
    account = await verified_account(session, party, bank.settings)
    await deposit(session, bank, party, 100_00)
    centre = AntiFraudSimulator(WatchList.from_json(json.dumps(
        {"entries": [{"identifier": party.identifier, "list": "fraud", "reason": "reported by a bank"}]}
    )))

    async with refused(session, AntiFraudMatch):
        await withdraw(session, bank, party, account.id, 50_00, centre=centre)
    assert [r.operation for r in centre.requests] == ["withdrawal"]
    assert await balances(session, party.id) == {"available": 100_00, "held": 0}


async def test_the_client_cancels_a_requested_withdrawal_and_gets_its_money_back(session, money, bank):
    party, stranger = await make_party(session), await make_party(session)
    account = await verified_account(session, party, bank.settings)
    await deposit(session, bank, party, 500_00)
    withdrawal = await withdraw(session, bank, party, account.id, 200_00)

    async with refused(session, WithdrawalNotFound):
        await cash.cancel_withdrawal(session, withdrawal_id=withdrawal.id, actor="stranger", visible_to=stranger.id)
    cancelled = await cash.cancel_withdrawal(session, withdrawal_id=withdrawal.id, actor="investor", visible_to=party.id)
    again = await cash.cancel_withdrawal(session, withdrawal_id=withdrawal.id, actor="investor", visible_to=party.id)

    assert cancelled.status == again.status == "cancelled" and cancelled.closed_at is not None
    assert await balances(session, party.id) == {"available": 500_00, "held": 0}
    assert (await ledger.get_hold(session, withdrawal.hold_id)).status == "voided"
    await assert_ledger_verifies(session)


async def test_revoking_a_bank_account_cancels_the_withdrawals_waiting_to_go_there(session, money, bank):
    party = await make_party(session)
    account = await verified_account(session, party, bank.settings)
    await deposit(session, bank, party, 500_00)
    withdrawal = await withdraw(session, bank, party, account.id, 200_00)

    revoked = await cash.revoke_bank_account(
        session, bank_account_id=account.id, reason="card stolen", actor="investor", visible_to=party.id
    )

    assert revoked.status == "revoked"
    assert (await cash.get_withdrawal(session, withdrawal.id)).status == "cancelled"
    assert await balances(session, party.id) == {"available": 500_00, "held": 0}
    async with refused(session, BankAccountNotVerified):
        await withdraw(session, bank, party, account.id, 100_00)
    again = await cash.register_bank_account(
        session, party_id=party.id, iban=account.iban, holder_name="Aigerim Sadykova", actor="investor",
        settings=bank.settings,
    )
    assert (again.id, again.status, again.verified_at) == (account.id, "unverified", None)  # proven anew


# --- submission: payment orders to the bank, exactly once ---------------------------------------------


@dataclass
class Client:
    party: Party
    bank_account_id: int


@pytest.fixture
async def funded_client(database: Database, settings: Settings, committed_money) -> AsyncIterator[tuple[Bank, Client]]:
    """A client with 1 000.00 KZT paid in at a bank of the test's own and a verified account of its own."""
    bank = make_bank(settings)
    async with database.unit_of_work() as session:
        party = await make_party(session)
        account = await verified_account(session, party, bank.settings)
        await deposit(session, bank, party, 1_000_00)
    yield bank, Client(party, account.id)
    async with database.read() as session:
        waiting = await count(
            session, "settlement_withdrawals WHERE party_id = :p AND status IN ('requested', 'submitted')",
            p=party.id,
        )
    assert waiting == 0, "a test left a withdrawal for the next test's submission to find"


async def _request(database: Database, bank: Bank, client: Client, amount_tiyn: int):
    async with database.unit_of_work() as session:
        return await withdraw(session, bank, client.party, client.bank_account_id, amount_tiyn)


async def _state(database: Database, withdrawal_id: uuid.UUID):
    """The withdrawal, the payment run carrying it (if any) and its owner's KZT balances, as committed."""
    async with database.read() as session:
        withdrawal = await cash.get_withdrawal(session, withdrawal_id)
        run = await cash_repository.get_payment_run(session, withdrawal.message_id) if withdrawal.message_id else None
        return withdrawal, run, await balances(session, withdrawal.party_id)


async def test_a_withdrawal_is_paid_once_and_its_debit_in_the_next_statement_is_recognised(database, funded_client):
    """REQ-38, REQ-50: the held money leaves the client's books when the bank accepts the payment order,
    and the bank's statement then shows the payout against the client-money account."""
    bank, client = funded_client
    withdrawal = await _request(database, bank, client, 400_25)
    async with database.read() as session:
        mirror_before = await client_money(session, bank.settings)

    summary = await jobs.submit_withdrawals(database, bank.simulator, bank.settings)
    again = await jobs.submit_withdrawals(database, bank.simulator, bank.settings)

    assert (summary.runs_built, summary.runs_accepted, summary.withdrawals_sent) == (1, 1, 1)
    assert (again.runs_built, again.runs_sent) == (0, 0)
    sent, run, money = await _state(database, withdrawal.id)
    assert (sent.status, run.status, run.attempts, run.order_count, run.total_tiyn) == ("sent", "accepted", 1, 1, 400_25)
    assert money == {"available": 599_75, "held": 0}
    assert bank.simulator.balance_tiyn(bank.iban) == 599_75  # the bank paid exactly once
    async with database.read() as session:
        assert await client_money(session, bank.settings) == mirror_before + 400_25  # the mirror follows the bank
        assert (await ledger.get_hold(session, withdrawal.hold_id)).status == "posted"

    new_lines = await jobs.poll_statement_once(database, bank.simulator, bank.settings)

    assert new_lines == 1
    async with database.read() as session:
        [line] = [line for line in await cash.list_statement_lines(session, status="withdrawal", party_id=client.party.id,
                                                                     after=None, limit=500)]
        assert (line.amount_tiyn, line.credit, line.end_to_end_id) == (400_25, False, withdrawal.end_to_end_id)
        assert await count(session, "settlement_statement_lines WHERE account_iban = :a AND status = 'unmatched'",
                           a=bank.iban) == 0
    async with database.unit_of_work() as session:
        with pytest.raises(WithdrawalNotCancellable):
            await cash.cancel_withdrawal(session, withdrawal_id=withdrawal.id, actor="investor")


async def test_a_refusal_by_the_bank_releases_the_held_money(database, funded_client):
    bank, client = funded_client
    withdrawal = await _request(database, bank, client, 300_00)
    bank.simulator.accept_payment_orders(_foreign_order(bank, 900_00))  # the bank account now holds too little

    summary = await jobs.submit_withdrawals(database, bank.simulator, bank.settings)

    assert (summary.runs_refused, summary.withdrawals_refused) == (1, 1)
    refused_, run, money = await _state(database, withdrawal.id)
    assert (run.status, run.refusal_code) == ("refused", RefusalCode.INSUFFICIENT_FUNDS)
    assert refused_.status == "refused" and RefusalCode.INSUFFICIENT_FUNDS in refused_.failure_reason
    assert money == {"available": 1_000_00, "held": 0}
    async with database.read() as session:
        assert (await ledger.get_hold(session, withdrawal.hold_id)).status == "voided"
        await assert_ledger_verifies(session)


async def test_a_bank_that_does_not_answer_gets_the_same_orders_again_and_pays_once(database, funded_client):
    bank, client = funded_client
    withdrawal = await _request(database, bank, client, 250_00)
    bank.simulator.down = True

    unanswered = await jobs.submit_withdrawals(database, bank.simulator, bank.settings)

    assert (unanswered.runs_built, unanswered.runs_unanswered, unanswered.withdrawals_sent) == (1, 1, 0)
    waiting, run, money = await _state(database, withdrawal.id)
    assert (waiting.status, run.status, run.attempts) == ("submitted", "built", 1)
    assert money == {"available": 750_00, "held": 250_00}  # still held: the bank may yet pay it
    async with database.unit_of_work() as session:
        with pytest.raises(WithdrawalNotCancellable):
            await cash.cancel_withdrawal(session, withdrawal_id=withdrawal.id, actor="investor")

    # The bank comes back and takes the stored message, but the pass dies before recording the answer.
    bank.simulator.down = False
    await bank.simulator.submit_payment_orders(run.document)
    resent = await jobs.submit_withdrawals(database, bank.simulator, bank.settings)

    assert (resent.runs_built, resent.runs_accepted, resent.withdrawals_sent) == (0, 1, 1)
    sent, run, money = await _state(database, withdrawal.id)
    assert (sent.status, run.status, run.attempts) == ("sent", "accepted", 2)
    assert money == {"available": 750_00, "held": 0}
    assert bank.simulator.balance_tiyn(bank.iban) == 750_00  # paid once, though sent twice
    assert [r.outcome for r in bank.simulator.requests if r.operation == "payment_orders"] == ["accepted", "replayed"]


async def test_only_one_submission_pass_sends_at_a_time(database, funded_client):
    bank, client = funded_client
    withdrawal = await _request(database, bank, client, 10_00)

    async with cash.submission_turn(database) as mine:
        assert mine
        assert await jobs.submit_withdrawals(database, bank.simulator, bank.settings) is None
        assert (await _state(database, withdrawal.id))[0].status == "requested"

    assert (await jobs.submit_withdrawals(database, bank.simulator, bank.settings)).withdrawals_sent == 1
