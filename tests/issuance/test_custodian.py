"""Underlying-asset custodians (REQ-27): the simulator answers from the assets registered with it, the HTTP
client gets the same answers from the simulator served over real HTTP, and every way of not answering
ends in ExternalPartyUnavailable."""

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date

import httpx
import pytest

from dfa.issuance.custodian import (
    CustodianSimulator,
    HttpCustodian,
    custodian_from_settings,
    simulator_app,
)
from dfa.platform.errors import ExternalPartyUnavailable, InvariantViolation
from dfa.platform.settings import Settings
from tests.issuance.custodians import CUSTODIAN, kept, new_reference
from tests.servers import client_of, free_port, served

TOKEN = "custodian-test-token"
TIMEOUT_S = 2.0
SHORT_TIMEOUT_S = 0.1


# The simulator --------------------------------------------------------------------------------------


@pytest.fixture
def simulator() -> CustodianSimulator:
    return CustodianSimulator(timeout_s=SHORT_TIMEOUT_S)


async def test_a_kept_asset_is_stated_clear_unencumbered_and_valued(simulator):
    simulator.keep(CUSTODIAN, "WR-1", quantity=5_000, unit="t", market_value=60_000_000_000, valued_on=date(2026, 3, 2))

    statement = await simulator.statement(custodian=CUSTODIAN, reference="WR-1")

    assert (statement.exists, statement.legal_status, statement.encumbered) == (True, "clear", False)
    assert (statement.quantity, statement.unit, statement.market_value) == (5_000, "t", 60_000_000_000)
    assert statement.valued_on == date(2026, 3, 2)
    assert statement.statement_id.startswith("ST-")


async def test_an_unknown_asset_is_honestly_stated_not_to_exist(simulator):
    simulator.keep(CUSTODIAN, "WR-1", quantity=5, unit="t", market_value=1)

    elsewhere = await simulator.statement(custodian="kazgold", reference="WR-1")
    unknown = await simulator.statement(custodian=CUSTODIAN, reference="WR-2")

    for statement in (elsewhere, unknown):
        assert (statement.exists, statement.legal_status, statement.market_value, statement.quantity) == (
            False, "unclear", 0, 0
        )


async def test_revaluation_encumbrance_dispute_and_removal_change_what_is_stated(simulator):
    simulator.keep(CUSTODIAN, "WR-1", quantity=5, unit="t", market_value=1_000)
    simulator.revalue(CUSTODIAN, "WR-1", market_value=700, valued_on=date(2026, 4, 1))
    simulator.encumber(CUSTODIAN, "WR-1", "pledged to a bank under agreement 12/2026")
    simulator.encumber(CUSTODIAN, "WR-1", "arrested by court order 3-45/2026")
    simulator.dispute(CUSTODIAN, "WR-1")

    statement = await simulator.statement(custodian=CUSTODIAN, reference="WR-1")
    assert (statement.market_value, statement.valued_on, statement.legal_status) == (700, date(2026, 4, 1), "disputed")
    assert statement.encumbrances == ("pledged to a bank under agreement 12/2026", "arrested by court order 3-45/2026")

    simulator.remove(CUSTODIAN, "WR-1")
    assert not (await simulator.statement(custodian=CUSTODIAN, reference="WR-1")).exists


def test_changing_an_asset_the_custodian_does_not_keep_is_a_bug(simulator):
    with pytest.raises(InvariantViolation):
        simulator.revalue(CUSTODIAN, "nothing", market_value=1)


async def test_every_statement_has_a_fresh_id_and_is_kept_for_tests(simulator):
    first = await simulator.statement(custodian=CUSTODIAN, reference="WR-1")
    second = await simulator.statement(custodian=CUSTODIAN, reference="WR-1")

    assert first.statement_id != second.statement_id
    assert [r.statement for r in simulator.requests] == [first, second]


async def test_a_down_custodian_is_unavailable_and_states_nothing(simulator):
    simulator.down = True

    with pytest.raises(ExternalPartyUnavailable):
        await simulator.statement(custodian=CUSTODIAN, reference="WR-1")
    assert simulator.requests == []


async def test_a_custodian_slower_than_the_timeout_is_unavailable(simulator):
    simulator.latency_s = SHORT_TIMEOUT_S * 2

    with pytest.raises(ExternalPartyUnavailable):
        await simulator.statement(custodian=CUSTODIAN, reference="WR-1")


def test_without_a_url_the_demo_custodians_answer_and_production_refuses_the_simulator():
    development = custodian_from_settings(Settings(_env_file=None))
    assert isinstance(development, CustodianSimulator)
    assert development.assets[("kazgrain", "WR-2026-0001")].market_value > 0
    assert development.assets[("kazgrain", "WR-2026-0002")].encumbrances

    http = custodian_from_settings(Settings(_env_file=None, environment="production", custodian_url="https://cust.example"))
    assert isinstance(http, HttpCustodian)
    with pytest.raises(ValueError, match="custodian_url"):
        custodian_from_settings(Settings(_env_file=None, environment="production"))


# The HTTP client against the served simulator ---------------------------------------------------------


@pytest.fixture(scope="module")
def served_custodian() -> Iterator[tuple[CustodianSimulator, str]]:
    simulator = CustodianSimulator()
    with served(simulator_app(simulator, token=TOKEN)) as url:
        yield simulator, url


@pytest.fixture
async def http_custodian(served_custodian) -> AsyncIterator[tuple[HttpCustodian, CustodianSimulator]]:
    simulator, url = served_custodian
    async with client_of(simulator, HttpCustodian(url, timeout_s=TIMEOUT_S, token=TOKEN)) as pair:
        yield pair


async def test_the_http_client_gets_the_custodians_statement(http_custodian):
    client, simulator = http_custodian
    reference = kept(simulator, market_value=12_345_678_90, quantity=250)
    simulator.encumber(CUSTODIAN, reference, "pledged to a bank")

    statement = await client.statement(custodian=CUSTODIAN, reference=reference)

    [record] = simulator.requests
    assert (record.custodian, record.reference) == (CUSTODIAN, reference)
    assert statement == record.statement
    assert (statement.exists, statement.quantity, statement.market_value) == (True, 250, 12_345_678_90)
    assert statement.encumbrances == ("pledged to a bank",)


async def test_the_http_client_hears_a_custodian_that_states_no_valuation(http_custodian):
    client, simulator = http_custodian
    reference = kept(simulator, market_value=1_000, quantity=5)
    simulator.withdraw_valuation(CUSTODIAN, reference)

    statement = await client.statement(custodian=CUSTODIAN, reference=reference)

    assert (statement.exists, statement.market_value, statement.valued_on) == (True, None, None)


async def test_the_http_client_hears_an_unknown_asset_does_not_exist(http_custodian):
    client, _ = http_custodian

    statement = await client.statement(custodian="kazgold", reference=new_reference())

    assert not statement.exists


async def test_the_http_client_refuses_when_the_custodian_is_down(http_custodian):
    client, simulator = http_custodian
    simulator.down = True

    with pytest.raises(ExternalPartyUnavailable) as refused:
        await client.statement(custodian=CUSTODIAN, reference=new_reference())
    assert "503" in refused.value.detail
    assert simulator.requests == []


async def test_the_http_client_gives_up_on_a_custodian_slower_than_its_timeout(served_custodian, http_custodian):
    _, simulator = http_custodian
    simulator.latency_s = SHORT_TIMEOUT_S * 5
    client = HttpCustodian(served_custodian[1], timeout_s=SHORT_TIMEOUT_S, token=TOKEN)
    try:
        with pytest.raises(ExternalPartyUnavailable):
            await client.statement(custodian=CUSTODIAN, reference=new_reference())
    finally:
        await client.aclose()


async def test_the_http_client_with_a_wrong_token_gets_no_statement(served_custodian, http_custodian):
    _, simulator = http_custodian
    client = HttpCustodian(served_custodian[1], timeout_s=TIMEOUT_S, token="not-the-token")
    try:
        with pytest.raises(ExternalPartyUnavailable) as refused:
            await client.statement(custodian=CUSTODIAN, reference=new_reference())
    finally:
        await client.aclose()
    assert "401" in refused.value.detail
    assert simulator.requests == []


async def test_the_http_client_refuses_when_nobody_listens():
    client = HttpCustodian(f"http://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(ExternalPartyUnavailable, match="could not be reached"):
            await client.statement(custodian=CUSTODIAN, reference=new_reference())
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("reference", "valued_on"), [("WR-OTHER", "2026-03-02"), ("WR-ASKED", None)],
    ids=["about-another-asset", "a-value-without-its-date"],
)
async def test_the_http_client_refuses_a_malformed_statement(reference, valued_on):
    answer = {
        "reference": reference, "exists": True, "legal_status": "clear", "encumbrances": [], "quantity": 1,
        "unit": "t", "market_value_tiyn": 100, "valued_on": valued_on, "statement_id": "ST-1",
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    client = HttpCustodian("http://custodians.test", timeout_s=TIMEOUT_S, transport=transport)
    try:
        with pytest.raises(ExternalPartyUnavailable, match="malformed"):
            await client.statement(custodian=CUSTODIAN, reference="WR-ASKED")
    finally:
        await client.aclose()


# Notices of breaches (REQ-31) -----------------------------------------------------------------------------

NOTICE_BODY = {
    "kind": "coverage_shortfall", "emission": "KZDFA0001-000123", "business_date": "2026-03-02",
    "underlying_asset": {"custodian": CUSTODIAN, "reference": "WR-2026-0001"}, "shortfall_tiyn": 12_000_000_000,
}


def new_notice() -> tuple[str, dict]:
    notice_id = str(uuid.uuid4())
    return notice_id, {**NOTICE_BODY, "notice_id": notice_id}


async def test_req_31_a_custodian_keeps_a_notice_once_and_answers_a_repeat_with_the_first_receipt(simulator):
    notice_id, body = new_notice()

    first = await simulator.notify(custodian=CUSTODIAN, notice_id=notice_id, body=body)
    again = await simulator.notify(custodian=CUSTODIAN, notice_id=notice_id, body=body)

    assert again == first
    assert first.receipt_id.startswith("CN-") and first.received_at.tzinfo is not None
    assert list(simulator.notices) == [CUSTODIAN]
    assert simulator.notices[CUSTODIAN][notice_id].body == body


async def test_a_down_custodian_receives_no_notice(simulator):
    simulator.down = True
    notice_id, body = new_notice()

    with pytest.raises(ExternalPartyUnavailable):
        await simulator.notify(custodian=CUSTODIAN, notice_id=notice_id, body=body)
    assert simulator.notices == {}


async def test_the_http_client_delivers_a_notice_to_the_custodian_named(http_custodian):
    client, simulator = http_custodian
    notice_id, body = new_notice()

    receipt = await client.notify(custodian="kazgold", notice_id=notice_id, body=body)

    assert list(simulator.notices) == ["kazgold"]
    assert simulator.notices["kazgold"][notice_id].body == body
    assert simulator.notices["kazgold"][notice_id].receipt == receipt


async def test_the_http_client_gets_the_first_receipt_for_a_notice_sent_again(http_custodian):
    client, simulator = http_custodian
    notice_id, body = new_notice()

    first = await client.notify(custodian=CUSTODIAN, notice_id=notice_id, body=body)
    again = await client.notify(custodian=CUSTODIAN, notice_id=notice_id, body=body)

    assert again == first
    assert list(simulator.notices[CUSTODIAN]) == [notice_id]


async def test_the_http_client_delivers_no_notice_while_the_custodian_is_down(http_custodian):
    client, simulator = http_custodian
    simulator.down = True
    notice_id, body = new_notice()

    with pytest.raises(ExternalPartyUnavailable, match="503"):
        await client.notify(custodian=CUSTODIAN, notice_id=notice_id, body=body)
    assert simulator.notices == {}


async def test_the_http_client_sends_the_notice_id_as_idempotency_key_and_refuses_a_receipt_for_another():
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        receipt = {"notice_id": "another", "receipt_id": "CN-1", "received_at": "2026-03-02T18:30:05+00:00"}
        return httpx.Response(200, json=receipt)

    client = HttpCustodian("http://custodians.test", timeout_s=TIMEOUT_S, transport=httpx.MockTransport(answer))
    notice_id, body = new_notice()
    try:
        with pytest.raises(ExternalPartyUnavailable, match="malformed"):
            await client.notify(custodian=CUSTODIAN, notice_id=notice_id, body=body)
    finally:
        await client.aclose()
    [request] = sent
    assert request.url.path == f"/v1/custodians/{CUSTODIAN}/notices"
    assert request.headers["Idempotency-Key"] == notice_id
    assert json.loads(request.content) == body
