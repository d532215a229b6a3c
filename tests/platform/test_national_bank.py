"""The National Bank as the receiver of the operator's notices (REQ-31): the simulator keeps each notice once
and refuses one without the fields the Bank requires; the HTTP client gets the same answers from the
simulator served over real HTTP, and every way of not answering ends in ExternalPartyUnavailable."""

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from dfa.platform.adapters.national_bank import (
    HttpNationalBank,
    NationalBankSimulator,
    NoticeRefused,
    national_bank_from_settings,
    simulator_app,
)
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.settings import Settings
from tests.servers import client_of, served

TOKEN = "national-bank-test-token"
TIMEOUT_S = 2.0
SHORT_TIMEOUT_S = 0.1
DETAIL = "Emission KZDFA0001-000123: the grain receipt covers 480,000,000.00 KZT of 600,000,000.00 KZT required"


def notice(**changes: Any) -> tuple[str, dict[str, Any]]:
    """A fresh notice id and a body carrying every field the Bank requires (and a few it does not)."""
    notice_id = str(uuid.uuid4())
    body = {
        "notice_id": notice_id,
        "kind": "coverage_shortfall",
        "operator": {
            "name": "DFA Platform Operator JSC", "bin": "240340000019", "nbk_registration_number": "KZDFA0001",
        },
        "emission": "KZDFA0001-000123",
        "business_date": "2026-03-02",
        "found_at": "2026-03-02T18:30:04.120000+00:00",
        "required_value_tiyn": 60_000_000_000,
        "market_value_tiyn": 48_000_000_000,
        "shortfall_tiyn": 12_000_000_000,
        "detail": DETAIL,
        **changes,
    }
    return notice_id, body


# The simulator --------------------------------------------------------------------------------------


@pytest.fixture
def simulator() -> NationalBankSimulator:
    return NationalBankSimulator(timeout_s=SHORT_TIMEOUT_S)


async def test_the_bank_keeps_a_notice_and_gives_a_receipt_with_its_time(simulator):
    notice_id, body = notice()

    receipt = await simulator.send_notice(notice_id=notice_id, body=body)

    assert receipt.receipt_id.startswith("NB-")
    assert receipt.received_at.tzinfo is not None
    assert simulator.notices[notice_id].body == body
    assert simulator.notices[notice_id].receipt == receipt


async def test_a_notice_sent_again_gets_the_first_receipt_and_is_kept_once(simulator):
    notice_id, body = notice()

    first = await simulator.send_notice(notice_id=notice_id, body=body)
    again = await simulator.send_notice(notice_id=notice_id, body=body)

    assert again == first
    assert list(simulator.notices) == [notice_id]
    assert simulator.requests == [notice_id, notice_id]


@pytest.mark.parametrize("missing", ["notice_id", "kind", "operator", "business_date", "found_at", "detail"])
async def test_req_31_the_bank_refuses_a_notice_lacking_a_mandatory_field(simulator, missing):
    notice_id, body = notice()
    del body[missing]

    with pytest.raises(NoticeRefused) as refused:
        await simulator.send_notice(notice_id=notice_id, body=body)

    assert missing in refused.value.detail
    assert simulator.notices == {}


async def test_the_bank_refuses_malformed_mandatory_fields_naming_them_but_never_quoting_the_notice(simulator):
    notice_id, body = notice(business_date="yesterday", found_at="2026-03-02T18:30:00", detail="")
    body["operator"] = {"name": "DFA Platform Operator JSC", "bin": "not-a-bin", "nbk_registration_number": "KZDFA0001"}

    with pytest.raises(NoticeRefused) as refused:
        await simulator.send_notice(notice_id=notice_id, body=body)

    for field in ("business_date", "found_at", "detail", "operator.bin"):
        assert field in refused.value.detail
    assert "yesterday" not in refused.value.detail and "not-a-bin" not in refused.value.detail


async def test_the_bank_refuses_a_notice_whose_id_is_not_its_idempotency_key(simulator):
    _, body = notice()

    with pytest.raises(NoticeRefused, match="Idempotency-Key"):
        await simulator.send_notice(notice_id=str(uuid.uuid4()), body=body)
    assert simulator.notices == {}


async def test_the_bank_refuses_a_known_notice_id_with_other_content(simulator):
    notice_id, body = notice()
    first = await simulator.send_notice(notice_id=notice_id, body=body)

    with pytest.raises(NoticeRefused, match="other content"):
        await simulator.send_notice(notice_id=notice_id, body={**body, "detail": "something else"})
    assert simulator.notices[notice_id].body == body
    assert simulator.notices[notice_id].receipt == first


async def test_a_notice_changed_by_its_sender_afterwards_stays_as_the_bank_received_it(simulator):
    notice_id, body = notice()
    await simulator.send_notice(notice_id=notice_id, body=body)

    body["operator"]["name"] = "changed"

    assert simulator.notices[notice_id].body["operator"]["name"] == "DFA Platform Operator JSC"


async def test_a_down_bank_is_unavailable_and_receives_nothing(simulator):
    simulator.down = True
    notice_id, body = notice()

    with pytest.raises(ExternalPartyUnavailable):
        await simulator.send_notice(notice_id=notice_id, body=body)
    assert (simulator.notices, simulator.requests) == ({}, [])


async def test_a_bank_slower_than_the_timeout_is_unavailable(simulator):
    simulator.latency_s = SHORT_TIMEOUT_S * 2
    notice_id, body = notice()

    with pytest.raises(ExternalPartyUnavailable):
        await simulator.send_notice(notice_id=notice_id, body=body)
    assert simulator.notices == {}


def test_without_a_url_the_simulator_answers_and_production_refuses_it():
    assert isinstance(national_bank_from_settings(Settings(_env_file=None)), NationalBankSimulator)

    production = Settings(_env_file=None, environment="production", national_bank_url="https://nbk.example")
    assert isinstance(national_bank_from_settings(production), HttpNationalBank)
    with pytest.raises(ValueError, match="national_bank_url"):
        national_bank_from_settings(Settings(_env_file=None, environment="production"))


# The HTTP client against the served simulator ---------------------------------------------------------


@pytest.fixture(scope="module")
def served_bank() -> Iterator[tuple[NationalBankSimulator, str]]:
    simulator = NationalBankSimulator()
    with served(simulator_app(simulator, token=TOKEN)) as url:
        yield simulator, url


@pytest.fixture
async def http_bank(served_bank) -> AsyncIterator[tuple[HttpNationalBank, NationalBankSimulator]]:
    simulator, url = served_bank
    async with client_of(simulator, HttpNationalBank(url, timeout_s=TIMEOUT_S, token=TOKEN)) as pair:
        yield pair


async def test_the_http_client_delivers_a_notice_and_gets_the_banks_receipt(http_bank):
    client, simulator = http_bank
    notice_id, body = notice()

    receipt = await client.send_notice(notice_id=notice_id, body=body)

    assert simulator.notices[notice_id].body == body
    assert simulator.notices[notice_id].receipt == receipt


async def test_the_http_client_gets_the_first_receipt_for_a_notice_sent_again(http_bank):
    client, simulator = http_bank
    notice_id, body = notice()

    first = await client.send_notice(notice_id=notice_id, body=body)
    again = await client.send_notice(notice_id=notice_id, body=body)

    assert again == first
    assert list(simulator.notices) == [notice_id]
    assert simulator.requests == [notice_id, notice_id]


async def test_the_http_client_hears_the_banks_refusal_of_a_notice_lacking_mandatory_fields(http_bank):
    client, simulator = http_bank
    notice_id, body = notice()
    del body["found_at"]

    with pytest.raises(NoticeRefused, match="found_at"):
        await client.send_notice(notice_id=notice_id, body=body)
    assert simulator.notices == {}


async def test_the_http_client_refuses_when_the_bank_is_down(http_bank):
    client, simulator = http_bank
    simulator.down = True
    notice_id, body = notice()

    with pytest.raises(ExternalPartyUnavailable) as refused:
        await client.send_notice(notice_id=notice_id, body=body)
    assert "503" in refused.value.detail
    assert simulator.requests == []


async def test_the_http_client_with_a_wrong_token_delivers_nothing(served_bank, http_bank):
    _, simulator = http_bank
    client = HttpNationalBank(served_bank[1], timeout_s=TIMEOUT_S, token="not-the-token")
    notice_id, body = notice()
    try:
        with pytest.raises(ExternalPartyUnavailable) as refused:
            await client.send_notice(notice_id=notice_id, body=body)
    finally:
        await client.aclose()
    assert "401" in refused.value.detail
    assert simulator.requests == []


async def test_the_http_client_gives_up_on_a_bank_slower_than_its_timeout(served_bank, http_bank):
    _, simulator = http_bank
    simulator.latency_s = SHORT_TIMEOUT_S * 5
    client = HttpNationalBank(served_bank[1], timeout_s=SHORT_TIMEOUT_S, token=TOKEN)
    notice_id, body = notice()
    try:
        with pytest.raises(ExternalPartyUnavailable, match="did not answer"):
            await client.send_notice(notice_id=notice_id, body=body)
    finally:
        await client.aclose()


async def test_the_http_client_refuses_a_receipt_for_another_notice():
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        receipt = {"notice_id": "another", "receipt_id": "NB-1", "received_at": "2026-03-02T18:30:05+00:00"}
        return httpx.Response(200, json=receipt)

    client = HttpNationalBank("http://nbk.test", timeout_s=TIMEOUT_S, transport=httpx.MockTransport(answer))
    notice_id, body = notice()
    try:
        with pytest.raises(ExternalPartyUnavailable, match="malformed"):
            await client.send_notice(notice_id=notice_id, body=body)
    finally:
        await client.aclose()
    [request] = sent
    assert request.headers["Idempotency-Key"] == notice_id
    assert json.loads(request.content) == body


async def test_the_http_client_logs_the_notice_id_never_its_content(http_bank, caplog):
    client, _ = http_bank
    notice_id, body = notice()
    refused_id, refused_body = notice()
    del refused_body["kind"]

    with caplog.at_level(logging.INFO, logger="dfa"):
        await client.send_notice(notice_id=notice_id, body=body)
        with pytest.raises(NoticeRefused):
            await client.send_notice(notice_id=refused_id, body=refused_body)

    logged = [json.dumps(record.__dict__, default=str) for record in caplog.records if record.name.startswith("dfa")]
    assert any(notice_id in line for line in logged) and any(refused_id in line for line in logged)
    assert not any("KZDFA0001-000123" in line or TOKEN in line for line in logged)
