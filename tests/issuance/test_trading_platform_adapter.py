"""The trading platforms' gateway client against the simulator served over real HTTP (REQ-45, REQ-47)."""

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from dfa.issuance import trading_platforms
from dfa.issuance.trading_platforms import (
    Decision,
    HttpTradingPlatforms,
    TradingPlatformSimulator,
    trading_platforms_from_settings,
)
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.settings import Settings
from tests.servers import free_port, served

TOKEN = "platform-token"
TIMEOUT_S = 2.0
PLATFORM = "astana-digital"
ISSUER_BIN = "190840000005"


@pytest.fixture(scope="module")
def served_gateway() -> Iterator[tuple[TradingPlatformSimulator, str]]:
    simulator = TradingPlatformSimulator([PLATFORM])
    with served(trading_platforms.simulator_app(simulator, token=TOKEN)) as url:
        yield simulator, url


@pytest.fixture
async def gateway(served_gateway) -> AsyncIterator[tuple[HttpTradingPlatforms, TradingPlatformSimulator]]:
    simulator, url = served_gateway
    simulator.down = False
    client = HttpTradingPlatforms(url, timeout_s=TIMEOUT_S, token=TOKEN)
    yield client, simulator
    await client.aclose()


async def _notify(client, *, units=100, direction="out", platform=PLATFORM, emission="KZDFA0001-2026-000001"):
    return await client.notify_transfer(
        platform, transfer_id=uuid.uuid4(), emission=emission, units=units, issuer_bin=ISSUER_BIN, direction=direction
    )


async def test_req45_a_notice_gets_the_platforms_reference_and_its_confirmation_names_the_issue_record(gateway):
    client, simulator = gateway
    simulator.confirm_next()

    receipt = await _notify(client, units=250)
    answer = await client.answer(PLATFORM, reference=receipt.reference)

    assert receipt.sent["units"] == 250 and receipt.received == {"reference": receipt.reference}
    assert simulator.requests[-1]["transfer_id"] == receipt.sent["transfer_id"]
    assert answer.status == "confirmed" and answer.record_reference.startswith("ASTANA-DIGITAL-REC-")
    assert answer.received["record_reference"] == answer.record_reference
    assert answer.sent == {"reference": receipt.reference}


async def test_req45_a_refusal_carries_its_reasons_and_silence_is_pending_until_decided(gateway):
    client, simulator = gateway
    simulator.refuse_next(["not admitted to listing"])
    simulator.stay_silent()

    refused = await client.answer(PLATFORM, reference=(await _notify(client)).reference)
    silent = await _notify(client)
    pending = await client.answer(PLATFORM, reference=silent.reference)
    simulator.decide(silent.reference, Decision("confirmed"))
    decided = await client.answer(PLATFORM, reference=silent.reference)

    assert (refused.status, refused.reasons, refused.record_reference) == ("refused", ("not admitted to listing",), None)
    assert (pending.status, pending.reasons) == ("pending", ())
    assert decided.status == "confirmed"


async def test_a_platform_never_confirms_a_return_of_more_than_it_issued(gateway):
    client, simulator = gateway
    emission = f"KZDFA0001-2026-{uuid.uuid4().int % 10**6:06d}"
    simulator.confirm_next()
    await _notify(client, units=50, emission=emission)
    simulator.confirm_next()

    answer = await client.answer(
        PLATFORM, reference=(await _notify(client, units=51, direction="in", emission=emission)).reference
    )

    assert answer.status == "refused"
    assert simulator.issued(PLATFORM, emission) == 50


async def test_a_down_gateway_an_unknown_platform_and_a_wrong_token_give_no_answer(served_gateway, gateway):
    client, simulator = gateway
    with pytest.raises(ExternalPartyUnavailable):
        await _notify(client, platform="nowhere")
    count = len(simulator.requests)
    simulator.down = True
    with pytest.raises(ExternalPartyUnavailable):
        await _notify(client)
    simulator.down = False
    intruder = HttpTradingPlatforms(served_gateway[1], timeout_s=TIMEOUT_S, token="wrong")
    with pytest.raises(ExternalPartyUnavailable):
        await _notify(intruder)
    await intruder.aclose()
    assert len(simulator.requests) == count


async def test_nobody_listening_is_unavailable():
    client = HttpTradingPlatforms(f"http://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S)
    with pytest.raises(ExternalPartyUnavailable):
        await client.answer(PLATFORM, reference="X-1")
    await client.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        {"reference": "OTHER-1", "status": "pending"},
        {"reference": "REF-1", "status": "confirmed"},
        {"reference": "REF-1", "status": "refused", "reasons": []},
        {"reference": "REF-1", "status": "pending", "record_reference": "R-1"},
        {"reference": "REF-1", "status": "maybe"},
    ],
)
async def test_an_answer_that_contradicts_itself_or_the_question_is_no_answer(answer):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=json.dumps(answer)))
    client = HttpTradingPlatforms("http://gateway.test", timeout_s=TIMEOUT_S, transport=transport)
    with pytest.raises(ExternalPartyUnavailable):
        await client.answer(PLATFORM, reference="REF-1")


def test_the_simulator_is_refused_in_production():
    with pytest.raises(ValueError):
        trading_platforms_from_settings(Settings(_env_file=None, environment="production"))
    assert isinstance(trading_platforms_from_settings(Settings(_env_file=None)), TradingPlatformSimulator)
    configured = Settings(_env_file=None, trading_platform_url="http://gateway.test")
    assert isinstance(trading_platforms_from_settings(configured), HttpTradingPlatforms)
