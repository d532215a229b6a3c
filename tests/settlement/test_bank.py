"""The operator's bank: the simulator books exact tiyn and refuses what a bank would; the HTTP client is
tested against it served over real HTTP by uvicorn, except for malformed answers, which only a mock
transport can give. Every way of not answering ends in ExternalPartyUnavailable.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest

from dfa.platform.errors import Category, ExternalPartyUnavailable, InvariantViolation
from dfa.platform.settings import Settings
from dfa.settlement import bank
from dfa.settlement.bank import (
    BankSimulator,
    BookedEntry,
    HttpBank,
    RefusalCode,
    bank_from_settings,
    build_camt053,
)
from dfa.settlement.errors import BankAccountUnknown, PaymentOrdersRefused
from dfa.settlement.iban import validate_kazakh_iban
from dfa.settlement.iso20022 import PaymentOrder, Statement, StatementLine, build_pain001, parse_camt053
from tests.servers import free_port, served

TOKEN = "bank-test-token"
TIMEOUT_S = 2.0
SHORT_TIMEOUT_S = 0.2

OPERATOR_IBAN = "KZ14601KZT0000100001"
OPERATOR_NAME = "DFA Platform Operator JSC"
INVESTOR_IBAN = "KZ05722KZT0000012345"
PAYEE_IBAN = "KZ47601KZT0000555501"
UNKNOWN_IBAN = "KZ05125KZT5004100200"  # valid, but no account at the simulator
MISTYPED_PAYEE_IBAN = "KZ47601KZT0000555502"  # one digit off: the check digits no longer match
ALMATY = timezone(timedelta(hours=5))
DAY_1 = date(2026, 3, 2)
DAY_2 = date(2026, 3, 3)


def _pain001(
    *orders: PaymentOrder, message_id: str = "PAY-0001", debtor_iban: str = OPERATOR_IBAN, day: date = DAY_1
) -> bytes:
    return build_pain001(
        message_id=message_id,
        created_at=datetime(2026, 3, 2, 10, 0, tzinfo=ALMATY),
        debtor_name=OPERATOR_NAME,
        debtor_iban=debtor_iban,
        debtor_bic="HSBKKZKX",
        execution_date=day,
        orders=orders,
    )


def _order(amount_tiyn: int, *, end_to_end_id: str = "PAYOUT-1", remittance: str = "DFA-PAYOUT-1") -> PaymentOrder:
    return PaymentOrder(
        end_to_end_id=end_to_end_id,
        amount_tiyn=amount_tiyn,
        creditor_name="Aigerim Sadykova",
        creditor_iban=PAYEE_IBAN,
        creditor_bic=None,
        remittance=remittance,
    )


def _statement(document: bytes) -> Statement:
    [statement] = parse_camt053(document)
    return statement


def _pay_in(simulator: BankSimulator, amount_tiyn: int, reference: str, day: date = DAY_1) -> str:
    return simulator.credit_incoming(OPERATOR_IBAN, amount_tiyn, reference, "Erlan Asanov", INVESTOR_IBAN, day)


@pytest.fixture
def served_bank() -> Iterator[tuple[BankSimulator, str]]:
    # A fresh bank per test: its accounts are the state under test.
    simulator = BankSimulator()
    simulator.open_account(OPERATOR_IBAN, owner_name=OPERATOR_NAME)
    with served(bank.simulator_app(simulator, token=TOKEN)) as url:
        yield simulator, url


@pytest.fixture
async def http_bank(served_bank) -> AsyncIterator[tuple[HttpBank, BankSimulator]]:
    simulator, url = served_bank
    client = HttpBank(url, timeout_s=TIMEOUT_S, token=TOKEN)
    try:
        yield client, simulator
    finally:
        await client.aclose()


# Statements -------------------------------------------------------------------------------------


async def test_incoming_credits_appear_in_the_days_statement_to_the_exact_tiyn(http_bank):
    client, simulator = http_bank
    first = _pay_in(simulator, 150_000_50, "DFA-TOPUP-8F3K2Q")
    second = _pay_in(simulator, 1, "DFA-TOPUP-Q7M1ZX")

    statement = _statement(await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1))

    assert (statement.account_iban, statement.currency) == (OPERATOR_IBAN, "KZT")
    assert (statement.opening_balance_tiyn, statement.closing_balance_tiyn) == (0, 150_000_51)
    assert [(ln.entry_reference, ln.amount_tiyn, ln.credit, ln.payment_reference) for ln in statement.lines] == [
        (first, 150_000_50, True, "DFA-TOPUP-8F3K2Q"),
        (second, 1, True, "DFA-TOPUP-Q7M1ZX"),
    ]
    assert {(line.counterparty_name, line.counterparty_iban, line.booking_date) for line in statement.lines} == {
        ("Erlan Asanov", INVESTOR_IBAN, DAY_1)
    }
    assert simulator.requests[-1].operation == "statement"


async def test_statements_of_two_days_are_separate_and_their_balances_chain(http_bank):
    client, simulator = http_bank
    _pay_in(simulator, 100_00, "DFA-TOPUP-A", DAY_1)
    _pay_in(simulator, 250_00, "DFA-TOPUP-B", DAY_2)

    day_1 = _statement(await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1))
    day_2 = _statement(await client.statement(account_iban=OPERATOR_IBAN, day=DAY_2))
    day_3 = _statement(await client.statement(account_iban=OPERATOR_IBAN, day=DAY_2 + timedelta(days=1)))

    assert [line.payment_reference for line in day_1.lines] == ["DFA-TOPUP-A"]
    assert [line.payment_reference for line in day_2.lines] == ["DFA-TOPUP-B"]
    assert day_3.lines == ()
    assert (day_1.opening_balance_tiyn, day_1.closing_balance_tiyn) == (0, 100_00)
    assert (day_2.opening_balance_tiyn, day_2.closing_balance_tiyn) == (100_00, 350_00)
    assert day_3.opening_balance_tiyn == day_3.closing_balance_tiyn == 350_00


async def test_a_statement_of_an_account_the_bank_does_not_keep_is_refused_by_name(http_bank):
    client, simulator = http_bank

    with pytest.raises(BankAccountUnknown) as refused:
        await client.statement(account_iban=UNKNOWN_IBAN, day=DAY_1)
    assert refused.value.category is Category.NOT_FOUND
    with pytest.raises(BankAccountUnknown):
        await simulator.statement(account_iban=UNKNOWN_IBAN, day=DAY_1)


# Payment orders ---------------------------------------------------------------------------------


async def test_payment_orders_debit_the_account_and_appear_in_the_statement(http_bank):
    client, simulator = http_bank
    _pay_in(simulator, 1_000_00, "DFA-TOPUP-A")
    document = _pain001(
        _order(300_00, end_to_end_id="PAYOUT-1", remittance="DFA-PAYOUT-1"),
        _order(699_99, end_to_end_id="PAYOUT-2", remittance="DFA-PAYOUT-2"),
    )

    acceptance_id = await client.submit_payment_orders(document)

    assert acceptance_id.startswith("ACC-")
    assert simulator.balance_tiyn(OPERATOR_IBAN) == 1
    statement = _statement(await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1))
    debits = [line for line in statement.lines if not line.credit]
    assert [(line.amount_tiyn, line.payment_reference, line.counterparty_iban) for line in debits] == [
        (300_00, "DFA-PAYOUT-1", PAYEE_IBAN),
        (699_99, "DFA-PAYOUT-2", PAYEE_IBAN),
    ]
    assert statement.closing_balance_tiyn == 1
    assert b"<EndToEndId>PAYOUT-2</EndToEndId>" in await simulator.statement(account_iban=OPERATOR_IBAN, day=DAY_1)


async def test_the_same_payment_orders_submitted_twice_are_booked_once(http_bank):
    client, simulator = http_bank
    _pay_in(simulator, 1_000_00, "DFA-TOPUP-A")
    document = _pain001(_order(400_00))

    first = await client.submit_payment_orders(document)
    second = await client.submit_payment_orders(document)

    assert first == second
    assert simulator.balance_tiyn(OPERATOR_IBAN) == 600_00
    statement = _statement(await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1))
    assert sum(not line.credit for line in statement.lines) == 1
    assert [r.outcome for r in simulator.requests if r.operation == "payment_orders"] == ["accepted", "replayed"]


async def test_a_message_id_reused_for_other_orders_is_refused(http_bank):
    client, simulator = http_bank
    _pay_in(simulator, 1_000_00, "DFA-TOPUP-A")
    await client.submit_payment_orders(_pain001(_order(400_00)))

    with pytest.raises(PaymentOrdersRefused) as refused:
        await client.submit_payment_orders(_pain001(_order(500_00)))
    assert refused.value.code == RefusalCode.MESSAGE_ID_REUSED
    assert simulator.balance_tiyn(OPERATOR_IBAN) == 600_00


@pytest.mark.parametrize(
    ("document", "code", "reason"),
    [
        (_pain001(_order(1_000_00), _order(1, end_to_end_id="P-2")), RefusalCode.INSUFFICIENT_FUNDS, "1000.01 KZT"),
        (_pain001(_order(1_00), debtor_iban=UNKNOWN_IBAN), RefusalCode.UNKNOWN_ACCOUNT, "no account"),
        (
            _pain001(_order(1_00)).replace(PAYEE_IBAN.encode(), MISTYPED_PAYEE_IBAN.encode()),
            RefusalCode.INVALID_CREDITOR_ACCOUNT,
            "check digits",
        ),
        (b"<Document/>", RefusalCode.MALFORMED_DOCUMENT, "not one of the accepted messages"),
        (_pain001(_order(1_00), day=DAY_1 - timedelta(days=1)), RefusalCode.EXECUTION_DATE_PASSED, "precedes"),
    ],
    ids=["short-money", "unknown-account", "invalid-creditor-iban", "not-a-pain001", "back-dated"],
)
async def test_refused_payment_orders_carry_the_banks_reason_and_book_nothing(http_bank, document, code, reason):
    client, simulator = http_bank
    _pay_in(simulator, 1_000_00, "DFA-TOPUP-A")

    with pytest.raises(PaymentOrdersRefused) as refused:
        await client.submit_payment_orders(document)

    assert (refused.value.code, refused.value.category) == (code, Category.REFUSED)
    assert reason in refused.value.reason
    assert simulator.balance_tiyn(OPERATOR_IBAN) == 1_000_00
    assert [r.outcome for r in simulator.requests] == [code]
    statement = _statement(await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1))
    assert all(line.credit for line in statement.lines)


# Not answering ----------------------------------------------------------------------------------


async def test_a_down_bank_is_unavailable_and_books_nothing(http_bank):
    client, simulator = http_bank
    _pay_in(simulator, 1_000_00, "DFA-TOPUP-A")
    simulator.down = True

    with pytest.raises(ExternalPartyUnavailable) as refused:
        await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1)
    assert "503" in refused.value.detail
    with pytest.raises(ExternalPartyUnavailable):
        await client.submit_payment_orders(_pain001(_order(1_00)))
    with pytest.raises(ExternalPartyUnavailable):
        await simulator.submit_payment_orders(_pain001(_order(1_00)))
    assert simulator.requests == []
    assert simulator.balance_tiyn(OPERATOR_IBAN) == 1_000_00


async def test_a_bank_slower_than_the_timeout_is_unavailable_and_the_resubmission_books_once(served_bank):
    simulator, url = served_bank
    _pay_in(simulator, 1_000_00, "DFA-TOPUP-A")
    document = _pain001(_order(100_00))
    simulator.latency_s = SHORT_TIMEOUT_S * 3
    client = HttpBank(url, timeout_s=SHORT_TIMEOUT_S, token=TOKEN)
    started = time.monotonic()
    try:
        with pytest.raises(ExternalPartyUnavailable) as refused:
            await client.submit_payment_orders(document)
        assert time.monotonic() - started < SHORT_TIMEOUT_S * 2.5
        assert "did not answer" in refused.value.detail
        with pytest.raises(ExternalPartyUnavailable):
            await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1)

        # Whether the bank went on with the order it was given up on, the client cannot know: only
        # resubmitting the very same document is safe.
        simulator.latency_s = 0.0
        acceptance_id = await client.submit_payment_orders(document)
        await asyncio.sleep(SHORT_TIMEOUT_S * 4)  # the abandoned request has run its course by now
    finally:
        await client.aclose()
    assert {r.acceptance_id for r in simulator.requests if r.operation == "payment_orders"} == {acceptance_id}
    assert simulator.balance_tiyn(OPERATOR_IBAN) == 900_00


async def test_the_in_process_simulator_is_unavailable_when_slower_than_the_timeout():
    simulator = BankSimulator(timeout_s=SHORT_TIMEOUT_S)
    simulator.open_account(OPERATOR_IBAN, owner_name=OPERATOR_NAME)
    simulator.latency_s = 10.0
    started = time.monotonic()

    with pytest.raises(ExternalPartyUnavailable):
        await simulator.statement(account_iban=OPERATOR_IBAN, day=DAY_1)
    assert time.monotonic() - started < 1.0
    assert simulator.requests == []


async def test_http_client_with_a_wrong_token_gets_nothing(served_bank):
    simulator, url = served_bank
    client = HttpBank(url, timeout_s=TIMEOUT_S, token="not-the-token")
    try:
        with pytest.raises(ExternalPartyUnavailable) as refused:
            await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1)
    finally:
        await client.aclose()
    assert "401" in refused.value.detail
    assert simulator.requests == []


async def test_http_client_refuses_when_nobody_listens():
    client = HttpBank(f"http://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(ExternalPartyUnavailable) as refused:
            await client.submit_payment_orders(_pain001(_order(1_00)))
    finally:
        await client.aclose()
    assert "could not be reached" in refused.value.detail


def _answering(status: int, body: bytes | str) -> httpx.MockTransport:
    content = body.encode() if isinstance(body, str) else body
    return httpx.MockTransport(lambda request: httpx.Response(status, content=content))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html>maintenance</html>"),
        (200, '{"acceptance_id": ""}'),
        (200, '{"acceptance_id": "has spaces in it"}'),
        (201, '{"acceptance_id": "ACC-1"}'),
        (401, '{"detail": "missing or wrong bearer token"}'),
        (422, '{"detail": [{"loc": ["body"]}]}'),
        (500, '{"code": "insufficient-funds", "reason": "a 5xx is never a refusal"}'),
        (200, b"{" + b" " * (bank.STATEMENT_MAX_BYTES + 1) + b"}"),
    ],
    ids=["html", "empty-id", "malformed-id", "201", "401", "422-without-refusal", "500-with-refusal", "too-large"],
)
async def test_http_client_treats_a_malformed_answer_to_payment_orders_as_unavailable(status, body):
    client = HttpBank("http://bank.test", timeout_s=TIMEOUT_S, transport=_answering(status, body))

    with pytest.raises(ExternalPartyUnavailable):
        await client.submit_payment_orders(_pain001(_order(1_00)))
    await client.aclose()


async def test_http_client_reads_a_refusal_from_the_mock_transport_too():
    # The malformed cases above fail for the reason they name, not because the mock is unusable.
    transport = _answering(409, '{"code": "limit-exceeded", "reason": "daily limit reached"}')
    client = HttpBank("http://bank.test", timeout_s=TIMEOUT_S, transport=transport)

    with pytest.raises(PaymentOrdersRefused) as refused:
        await client.submit_payment_orders(_pain001(_order(1_00)))
    assert (refused.value.code, refused.value.reason) == ("limit-exceeded", "daily limit reached")


@pytest.mark.parametrize(("status", "body"), [(404, '{"detail": "Not Found"}'), (500, ""), (302, "")])
async def test_http_client_treats_a_statement_answer_other_than_200_or_unknown_account_as_unavailable(status, body):
    client = HttpBank("http://bank.test", timeout_s=TIMEOUT_S, transport=_answering(status, body))

    with pytest.raises(ExternalPartyUnavailable):
        await client.statement(account_iban=OPERATOR_IBAN, day=DAY_1)


# The camt.053 builder and the simulator's books -----------------------------------------------------


def test_a_built_statement_reads_back_exactly_even_overdrawn():
    lines = [
        StatementLine("E-1", 5_00, "KZT", True, DAY_1, DAY_1, 'Top-up "A" & <B>', "ТОО «Степь»", INVESTOR_IBAN),
        StatementLine("E-2", 20_00, "KZT", False, DAY_1, None, None, None, None),
    ]
    document = build_camt053(
        message_id="M-1",
        created_at=datetime(2026, 3, 3, 6, 0, tzinfo=UTC),
        statement_id="S-1",
        account_iban=OPERATOR_IBAN,
        owner_name=OPERATOR_NAME,
        servicer_bic="HSBKKZKX",
        day=DAY_1,
        opening_balance_tiyn=10_00,
        entries=[BookedEntry(line) for line in lines],
    )

    statement = _statement(document)

    assert statement.lines == tuple(lines)
    assert (statement.opening_balance_tiyn, statement.closing_balance_tiyn) == (10_00, -5_00)
    assert statement.created_at == datetime(2026, 3, 3, 6, 0, tzinfo=UTC)


def test_the_simulator_never_books_a_day_before_one_already_booked():
    simulator = BankSimulator()
    simulator.open_account(OPERATOR_IBAN, owner_name=OPERATOR_NAME)
    _pay_in(simulator, 1_00, "DFA-TOPUP-A", DAY_2)

    with pytest.raises(InvariantViolation):
        _pay_in(simulator, 1_00, "DFA-TOPUP-B", DAY_1)
    with pytest.raises(InvariantViolation):
        simulator.credit_incoming(UNKNOWN_IBAN, 1_00, "DFA-TOPUP-C", "Erlan Asanov", INVESTOR_IBAN, DAY_2)


# Wiring from settings ---------------------------------------------------------------------------


async def test_without_a_url_the_simulator_keeps_the_operators_client_money_account(tmp_path):
    settings = Settings(_env_file=None, environment="development", data_dir=tmp_path)
    simulator = bank_from_settings(settings)
    assert isinstance(simulator, BankSimulator)
    iban = validate_kazakh_iban(settings.operator_client_money_iban)

    statement = _statement(await simulator.statement(account_iban=iban, day=DAY_1))

    assert (statement.account_iban, statement.opening_balance_tiyn, statement.lines) == (iban, 0, ())


async def test_a_simulator_with_books_finds_its_accounts_again_after_a_restart(tmp_path):
    books = tmp_path / "bank.json"
    before = BankSimulator(books=books)
    before.open_account(OPERATOR_IBAN, owner_name=OPERATOR_NAME)
    _pay_in(before, 500_00, "DFA-TOPUP-A", DAY_1)
    before.accept_payment_orders(_pain001(_order(120_01), day=DAY_2))
    statement = _statement(before.answer_statement(account_iban=OPERATOR_IBAN, day=DAY_2))

    after = BankSimulator(books=books)

    assert after.balance_tiyn(OPERATOR_IBAN) == 379_99
    again = _statement(after.answer_statement(account_iban=OPERATOR_IBAN, day=DAY_2))
    assert (again.opening_balance_tiyn, again.closing_balance_tiyn, again.lines) == (
        statement.opening_balance_tiyn, statement.closing_balance_tiyn, statement.lines
    )
    assert after.accept_payment_orders(_pain001(_order(120_01), day=DAY_2)) == before.requests[-2].acceptance_id
    assert after.balance_tiyn(OPERATOR_IBAN) == 379_99  # the same message is executed once, across the restart
    assert _pay_in(after, 1, "DFA-TOPUP-B", DAY_2) not in {line.entry_reference for line in statement.lines}
    with pytest.raises(InvariantViolation):
        _pay_in(after, 1, "DFA-TOPUP-C", DAY_1)  # nor does it forget which days it has booked


def test_with_a_url_the_http_client_is_used_and_production_refuses_the_simulator():
    assert isinstance(
        bank_from_settings(Settings(_env_file=None, environment="production", bank_url="https://bank.example")),
        HttpBank,
    )
    with pytest.raises(ValueError):
        bank_from_settings(Settings(_env_file=None, environment="production"))
    with pytest.raises(ValueError):
        bank_from_settings(Settings(_env_file=None, operator_client_money_iban="KZ15601KZT0000100001"))
