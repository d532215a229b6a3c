"""External parties: the anti-fraud centre (REQ-17, REQ-18) and the identification centre (REQ-15, REQ-19).

The simulators are tested for their verdicts; the HTTP clients are tested against the simulators
served over real HTTP by uvicorn, except for malformed answers, which only a mock transport can give.
Every way of not answering must end in ExternalPartyUnavailable.
"""

import base64
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, timedelta

import httpx
import pytest

from dfa.platform.adapters import antifraud, identification
from dfa.platform.adapters.antifraud import (
    AntiFraudSimulator,
    HttpAntiFraudCentre,
    Subject,
    WatchList,
    antifraud_centre_from_settings,
)
from dfa.platform.adapters.external import mask_identifier
from dfa.platform.adapters.identification import (
    BiometricSampleInvalid,
    HttpIdentificationCentre,
    IdentificationCentreSimulator,
    Registry,
    demo_sample,
    identification_centre_from_settings,
)
from dfa.platform.errors import ExternalPartyUnavailable, InvariantViolation
from dfa.platform.identifiers import is_valid_identification_number
from dfa.platform.logs import JsonFormatter
from dfa.platform.settings import Settings
from tests.servers import client_of, free_port, served

TOKEN = "test-token"
TIMEOUT_S = 2.0
SHORT_TIMEOUT_S = 0.1

CLEAN_PERSON = Subject("900101400013", "Aigerim Nurlanovna Sadykova", "person")
CLEAN_ENTITY = Subject("190840000005", "Steppe Grain LLP", "legal_entity")
LISTED_PERSON = Subject("770515300019", "Marat Bolatovich Listed", "person")
LISTED_ENTITY = Subject("150540000126", "Hollow Shell LLP", "legal_entity")

WATCH_LIST_JSON = json.dumps(
    {
        "entries": [
            {"identifier": LISTED_PERSON.identifier, "list": "fraud-reports", "reason": "reported by two banks"},
            {"identifier": LISTED_PERSON.identifier, "list": "money-mules", "reason": "passes on stolen money"},
            {"identifier": LISTED_ENTITY.identifier, "list": "shell-entities", "reason": "mass registration address"},
        ]
    }
)
LISTS_OF = {
    LISTED_PERSON.identifier: {"fraud-reports", "money-mules"},
    LISTED_ENTITY.identifier: {"shell-entities"},
}

ENROLLED_IIN = "850202300014"
ENROLLED_SAMPLE = b"\xff\xd8face-of-daniyar\x00\x01"
UNENROLLED_IIN = "920712400019"
REGISTRY_JSON = json.dumps(
    {
        "persons": [
            {
                "iin": ENROLLED_IIN,
                "full_name": "Daniyar Serikovich Akhmetov",
                "birth_date": "1985-02-02",
                "sample_sha256": hashlib.sha256(ENROLLED_SAMPLE).hexdigest(),
            }
        ]
    }
)


# Anti-fraud centre: the simulator ---------------------------------------------------------------


@pytest.fixture
def centre() -> AntiFraudSimulator:
    return AntiFraudSimulator(WatchList.from_json(WATCH_LIST_JSON), timeout_s=SHORT_TIMEOUT_S)


async def test_req18_neither_party_listed_is_clear(centre):
    screening = await centre.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY, amount=100, asset="KZT")

    assert screening.clear
    assert screening.matches == ()
    [record] = centre.requests
    assert (record.sender, record.recipient) == (CLEAN_PERSON, CLEAN_ENTITY)
    assert (record.operation, record.amount, record.asset, record.screening) == ("transfer", 100, "KZT", screening)


async def test_req18_listed_sender_is_a_match_on_every_list_it_is_on(centre):
    screening = await centre.screen(operation="transfer", sender=LISTED_PERSON, recipient=CLEAN_ENTITY)

    assert not screening.clear
    assert {m.role for m in screening.matches} == {"sender"}
    assert {m.identifier for m in screening.matches} == {LISTED_PERSON.identifier}
    assert {m.list_name for m in screening.matches} == LISTS_OF[LISTED_PERSON.identifier]
    assert all(m.reason for m in screening.matches)


async def test_req18_listed_recipient_is_a_match(centre):
    screening = await centre.screen(operation="dvp", sender=CLEAN_PERSON, recipient=LISTED_ENTITY)

    assert [(m.identifier, m.role, m.list_name) for m in screening.matches] == [
        (LISTED_ENTITY.identifier, "recipient", "shell-entities")
    ]


async def test_req18_both_parties_listed_are_both_matched(centre):
    screening = await centre.screen(operation="transfer", sender=LISTED_ENTITY, recipient=LISTED_PERSON)

    assert {(m.role, m.identifier) for m in screening.matches} == {
        ("sender", LISTED_ENTITY.identifier),
        ("recipient", LISTED_PERSON.identifier),
    }
    assert len(screening.matches) == 3


async def test_every_screening_has_a_fresh_reference(centre):
    references = [
        (await centre.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY)).reference
        for _ in range(5)
    ]

    assert len(set(references)) == 5
    assert [r.screening.reference for r in centre.requests] == references


async def test_a_down_centre_is_unavailable_and_answers_nothing(centre):
    centre.down = True

    with pytest.raises(ExternalPartyUnavailable):
        await centre.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY)
    assert centre.requests == []


async def test_a_centre_slower_than_the_timeout_is_unavailable(centre):
    centre.latency_s = 10.0
    started = time.monotonic()

    with pytest.raises(ExternalPartyUnavailable):
        await centre.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY)
    assert time.monotonic() - started < 1.0
    assert centre.requests == []


async def test_a_slow_centre_within_the_timeout_answers(centre):
    centre.latency_s = SHORT_TIMEOUT_S / 4

    screening = await centre.screen(operation="transfer", sender=CLEAN_PERSON, recipient=LISTED_PERSON)

    assert not screening.clear


async def test_the_simulator_keeps_only_the_newest_screenings():
    centre = AntiFraudSimulator(WatchList.from_json(WATCH_LIST_JSON), requests_kept=3)
    for amount in range(5):
        await centre.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY, amount=amount)

    assert [r.amount for r in centre.requests] == [2, 3, 4]


def test_a_subject_with_a_malformed_identifier_is_a_bug():
    with pytest.raises(InvariantViolation) as refused:
        Subject("770515300018", "Wrong Check Digit", "person")
    assert "770515300018" not in str(refused.value)


def test_a_watch_list_with_a_malformed_identifier_is_refused():
    with pytest.raises(ValueError):
        WatchList.from_json('{"entries": [{"identifier": "770515300018", "list": "x", "reason": "y"}]}')


# Anti-fraud centre: the HTTP client against the served simulator -------------------------------


@pytest.fixture(scope="module")
def served_centre() -> Iterator[tuple[AntiFraudSimulator, str]]:
    simulator = AntiFraudSimulator(WatchList.from_json(WATCH_LIST_JSON))
    with served(antifraud.simulator_app(simulator, token=TOKEN)) as url:
        yield simulator, url


@pytest.fixture
async def http_centre(served_centre) -> AsyncIterator[tuple[HttpAntiFraudCentre, AntiFraudSimulator]]:
    simulator, url = served_centre
    async with client_of(simulator, HttpAntiFraudCentre(url, timeout_s=TIMEOUT_S, token=TOKEN)) as pair:
        yield pair


@pytest.mark.parametrize(
    ("sender", "recipient", "matched"),
    [
        (CLEAN_PERSON, CLEAN_ENTITY, set()),
        (LISTED_PERSON, CLEAN_ENTITY, {("sender", LISTED_PERSON.identifier)}),
        (CLEAN_PERSON, LISTED_ENTITY, {("recipient", LISTED_ENTITY.identifier)}),
        (LISTED_ENTITY, LISTED_PERSON, {("sender", LISTED_ENTITY.identifier), ("recipient", LISTED_PERSON.identifier)}),
    ],
    ids=["clear", "sender-listed", "recipient-listed", "both-listed"],
)
async def test_req18_http_client_reports_the_centres_verdict_on_both_parties(http_centre, sender, recipient, matched):
    client, simulator = http_centre

    screening = await client.screen(operation="transfer", sender=sender, recipient=recipient, amount=1_500_00, asset="KZT")

    assert {(m.role, m.identifier) for m in screening.matches} == matched
    assert screening.clear == (not matched)
    assert {m.list_name for m in screening.matches} == set().union(*(LISTS_OF[i] for _, i in matched))
    [record] = simulator.requests
    assert (record.sender, record.recipient, record.amount, record.asset) == (sender, recipient, 1_500_00, "KZT")
    assert record.screening == screening


async def test_http_client_refuses_when_the_centre_is_down(http_centre):
    client, simulator = http_centre
    simulator.down = True

    with pytest.raises(ExternalPartyUnavailable) as refused:
        await client.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY)
    assert "503" in refused.value.detail
    assert simulator.requests == []


async def test_http_client_gives_up_on_a_centre_slower_than_its_timeout(served_centre, http_centre):
    _, simulator = http_centre
    simulator.latency_s = SHORT_TIMEOUT_S * 5
    client = HttpAntiFraudCentre(served_centre[1], timeout_s=SHORT_TIMEOUT_S, token=TOKEN)
    started = time.monotonic()
    try:
        with pytest.raises(ExternalPartyUnavailable):
            await client.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY)
    finally:
        await client.aclose()
    assert time.monotonic() - started < SHORT_TIMEOUT_S * 4


async def test_http_client_refuses_when_nobody_listens():
    client = HttpAntiFraudCentre(f"http://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(ExternalPartyUnavailable) as refused:
            await client.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY)
    finally:
        await client.aclose()
    assert "could not be reached" in refused.value.detail


async def test_http_client_with_a_wrong_token_gets_no_verdict(served_centre, http_centre):
    _, simulator = http_centre
    client = HttpAntiFraudCentre(served_centre[1], timeout_s=TIMEOUT_S, token="not-the-token")
    try:
        with pytest.raises(ExternalPartyUnavailable) as refused:
            await client.screen(operation="transfer", sender=LISTED_PERSON, recipient=CLEAN_ENTITY)
    finally:
        await client.aclose()
    assert "401" in refused.value.detail
    assert simulator.requests == []


def _answering(status: int, body: bytes | str) -> httpx.MockTransport:
    content = body.encode() if isinstance(body, str) else body
    return httpx.MockTransport(lambda request: httpx.Response(status, content=content))


def _screening_json(*matches: dict) -> str:
    return json.dumps({"reference": "AF-1", "matches": list(matches)})


def _match(identifier: str, role: str = "sender") -> dict:
    return {"identifier": identifier, "role": role, "list_name": "fraud-reports", "reason": "reported"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html>maintenance</html>"),
        (200, ""),
        (200, "[]"),
        (200, json.dumps({"reference": "AF-1"})),
        (200, json.dumps({"reference": "", "matches": []})),
        (200, _screening_json({**_match(LISTED_PERSON.identifier), "role": "bystander"})),
        (200, _screening_json(_match(LISTED_ENTITY.identifier, role="sender"))),
        (200, _screening_json(_match(LISTED_PERSON.identifier, role="recipient"))),
        (200, _screening_json(*[_match(LISTED_PERSON.identifier)] * (antifraud.MATCHES_MAX + 1))),
        (200, b"{" + b" " * 1_100_000 + b"}"),
        (201, _screening_json()),
        (302, ""),
        (400, "{}"),
        (500, _screening_json()),
    ],
    ids=[
        "html",
        "empty",
        "array",
        "no-matches-field",
        "empty-reference",
        "unknown-role",
        "match-names-a-stranger",
        "match-names-the-wrong-role",
        "too-many-matches",
        "too-large",
        "201",
        "302",
        "400",
        "500",
    ],
)
async def test_http_client_refuses_a_malformed_answer(status, body):
    client = HttpAntiFraudCentre("http://centre.test", timeout_s=TIMEOUT_S, transport=_answering(status, body))

    with pytest.raises(ExternalPartyUnavailable):
        await client.screen(operation="transfer", sender=LISTED_PERSON, recipient=CLEAN_ENTITY)
    await client.aclose()


async def test_http_client_accepts_a_well_formed_answer_from_the_mock_transport():
    # The malformed cases above fail for the reason they name, not because the mock is unusable.
    transport = _answering(200, _screening_json(_match(LISTED_PERSON.identifier)))
    client = HttpAntiFraudCentre("http://centre.test", timeout_s=TIMEOUT_S, transport=transport)

    screening = await client.screen(operation="transfer", sender=LISTED_PERSON, recipient=CLEAN_ENTITY)

    assert screening.reference == "AF-1"
    assert [m.role for m in screening.matches] == ["sender"]


async def test_http_client_translates_transport_errors():
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    client = HttpAntiFraudCentre("http://centre.test", timeout_s=TIMEOUT_S, transport=httpx.MockTransport(broken))

    with pytest.raises(ExternalPartyUnavailable):
        await client.screen(operation="transfer", sender=CLEAN_PERSON, recipient=CLEAN_ENTITY)


def _formatted(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    formatter = JsonFormatter()
    return [formatter.format(r) for r in caplog.records if r.name == logger]


async def test_req17_screenings_are_logged_without_names_or_full_identifiers(http_centre, centre, caplog):
    client, _ = http_centre
    caplog.set_level(logging.INFO)

    await client.screen(operation="transfer", sender=LISTED_PERSON, recipient=LISTED_ENTITY, amount=5, asset="KZT")
    await centre.screen(operation="transfer", sender=LISTED_PERSON, recipient=LISTED_ENTITY)
    centre.down = True
    with pytest.raises(ExternalPartyUnavailable):
        await centre.screen(operation="transfer", sender=LISTED_PERSON, recipient=LISTED_ENTITY)
    broken = HttpAntiFraudCentre(
        "http://centre.test", timeout_s=TIMEOUT_S, transport=_answering(200, _screening_json({"identifier": LISTED_PERSON.identifier}))
    )
    with pytest.raises(ExternalPartyUnavailable):
        await broken.screen(operation="transfer", sender=LISTED_PERSON, recipient=LISTED_ENTITY)

    lines = _formatted(caplog, "dfa.antifraud")
    assert len(lines) == 8  # requested + answered twice, then requested + failure twice
    for line in lines:
        for subject in (LISTED_PERSON, LISTED_ENTITY):
            assert subject.identifier not in line
            assert subject.name not in line
    joined = "\n".join(lines)
    assert mask_identifier(LISTED_PERSON.identifier) in joined
    assert "shell-entities" in joined


# Identification centre: the simulator ----------------------------------------------------------


@pytest.fixture
def id_centre() -> IdentificationCentreSimulator:
    return IdentificationCentreSimulator(Registry.from_json(REGISTRY_JSON), timeout_s=SHORT_TIMEOUT_S)


async def test_req15_the_enrolled_sample_is_a_match_with_the_persons_data(id_centre):
    verdict = await id_centre.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)

    assert verdict.outcome == "match" and verdict.matched
    assert verdict.birth_date == date(1985, 2, 2)
    assert verdict.full_name == "Daniyar Serikovich Akhmetov"
    assert verdict.checked_at.utcoffset() == timedelta(0)
    assert verdict.reference


async def test_req15_another_face_is_no_match_and_reveals_nothing(id_centre):
    verdict = await id_centre.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE + b"!")

    assert verdict.outcome == "no_match" and not verdict.matched
    assert (verdict.birth_date, verdict.full_name) == (None, None)


async def test_req15_an_unknown_iin_is_not_found(id_centre):
    verdict = await id_centre.verify(iin=UNENROLLED_IIN, sample=ENROLLED_SAMPLE)

    assert verdict.outcome == "not_found"
    assert (verdict.birth_date, verdict.full_name) == (None, None)


async def test_the_identification_simulator_records_the_digest_never_the_sample(id_centre):
    first = await id_centre.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)
    second = await id_centre.verify(iin=UNENROLLED_IIN, sample=b"other face")

    assert [(r.iin, r.sample_sha256, r.verdict) for r in id_centre.requests] == [
        (ENROLLED_IIN, hashlib.sha256(ENROLLED_SAMPLE).hexdigest(), first),
        (UNENROLLED_IIN, hashlib.sha256(b"other face").hexdigest(), second),
    ]
    assert first.reference != second.reference
    assert not any(isinstance(value, bytes) for r in id_centre.requests for value in vars(r).values())


async def test_a_down_identification_centre_is_unavailable(id_centre):
    id_centre.down = True

    with pytest.raises(ExternalPartyUnavailable):
        await id_centre.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)
    assert id_centre.requests == []


async def test_an_identification_centre_slower_than_the_timeout_is_unavailable(id_centre):
    id_centre.latency_s = 10.0

    with pytest.raises(ExternalPartyUnavailable):
        await id_centre.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)


@pytest.mark.parametrize("sample", [b"", b"x" * (identification.SAMPLE_MAX_BYTES + 1)], ids=["empty", "too-large"])
async def test_an_empty_or_oversized_sample_is_refused_before_asking(id_centre, sample):
    with pytest.raises(BiometricSampleInvalid):
        await id_centre.verify(iin=ENROLLED_IIN, sample=sample)
    assert id_centre.requests == []


async def test_a_malformed_iin_is_a_bug_caught_before_asking(id_centre):
    with pytest.raises(InvariantViolation):
        await id_centre.verify(iin="850202300015", sample=ENROLLED_SAMPLE)
    assert id_centre.requests == []


def test_a_registry_enrolling_one_iin_twice_is_refused():
    person = json.loads(REGISTRY_JSON)["persons"][0]
    with pytest.raises(ValueError):
        Registry.from_json(json.dumps({"persons": [person, person]}))


# Identification centre: the HTTP client against the served simulator -------------------------


@pytest.fixture(scope="module")
def served_id_centre() -> Iterator[tuple[IdentificationCentreSimulator, str]]:
    simulator = IdentificationCentreSimulator(Registry.from_json(REGISTRY_JSON))
    with served(identification.simulator_app(simulator, token=TOKEN)) as url:
        yield simulator, url


@pytest.fixture
async def http_id_centre(served_id_centre) -> AsyncIterator[tuple[HttpIdentificationCentre, IdentificationCentreSimulator]]:
    simulator, url = served_id_centre
    async with client_of(simulator, HttpIdentificationCentre(url, timeout_s=TIMEOUT_S, token=TOKEN)) as pair:
        yield pair


@pytest.mark.parametrize(
    ("iin", "sample", "outcome", "birth_date", "full_name"),
    [
        (ENROLLED_IIN, ENROLLED_SAMPLE, "match", date(1985, 2, 2), "Daniyar Serikovich Akhmetov"),
        (ENROLLED_IIN, b"someone else", "no_match", None, None),
        (UNENROLLED_IIN, ENROLLED_SAMPLE, "not_found", None, None),
    ],
    ids=["match", "no-match", "not-found"],
)
async def test_req15_http_client_reports_the_centres_verdict(http_id_centre, iin, sample, outcome, birth_date, full_name):
    client, simulator = http_id_centre

    verdict = await client.verify(iin=iin, sample=sample)

    assert (verdict.outcome, verdict.birth_date, verdict.full_name) == (outcome, birth_date, full_name)
    assert verdict.checked_at.tzinfo is UTC
    [record] = simulator.requests
    assert (record.iin, record.sample_sha256) == (iin, hashlib.sha256(sample).hexdigest())
    assert record.verdict == verdict


async def test_http_identification_client_refuses_when_the_centre_is_down(http_id_centre):
    client, simulator = http_id_centre
    simulator.down = True

    with pytest.raises(ExternalPartyUnavailable) as refused:
        await client.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)
    assert "503" in refused.value.detail


async def test_http_identification_client_gives_up_on_a_slow_centre(served_id_centre, http_id_centre):
    _, simulator = http_id_centre
    simulator.latency_s = SHORT_TIMEOUT_S * 5
    client = HttpIdentificationCentre(served_id_centre[1], timeout_s=SHORT_TIMEOUT_S, token=TOKEN)
    try:
        with pytest.raises(ExternalPartyUnavailable):
            await client.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)
    finally:
        await client.aclose()


async def test_http_identification_client_refuses_when_nobody_listens():
    client = HttpIdentificationCentre(f"http://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(ExternalPartyUnavailable):
            await client.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)
    finally:
        await client.aclose()


def _verdict_json(**fields) -> str:
    answer = {"reference": "BV-1", "outcome": "no_match", "checked_at": "2026-03-01T09:00:00+05:00"}
    return json.dumps({**answer, **fields})


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "not json"),
        (200, _verdict_json(outcome="maybe")),
        (200, _verdict_json(checked_at="2026-03-01T09:00:00")),
        (200, _verdict_json(outcome="match")),
        (200, _verdict_json(outcome="match", birth_date="1985-02-02")),
        (200, _verdict_json(full_name="Daniyar Serikovich Akhmetov", birth_date="1985-02-02")),
        (200, _verdict_json(reference=None)),
        (503, _verdict_json()),
    ],
    ids=[
        "not-json",
        "unknown-outcome",
        "naive-time",
        "match-without-data",
        "match-without-name",
        "no-match-with-data",
        "no-reference",
        "503",
    ],
)
async def test_http_identification_client_refuses_a_malformed_answer(status, body):
    client = HttpIdentificationCentre("http://centre.test", timeout_s=TIMEOUT_S, transport=_answering(status, body))

    with pytest.raises(ExternalPartyUnavailable):
        await client.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)


async def test_http_identification_client_converts_the_check_time_to_utc():
    client = HttpIdentificationCentre("http://centre.test", timeout_s=TIMEOUT_S, transport=_answering(200, _verdict_json()))

    verdict = await client.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)

    assert (verdict.outcome, verdict.checked_at.isoformat()) == ("no_match", "2026-03-01T04:00:00+00:00")


async def test_req15_verifications_are_logged_without_the_sample_its_digest_or_the_person(http_id_centre, id_centre, caplog):
    client, _ = http_id_centre
    caplog.set_level(logging.INFO)

    await client.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)
    await id_centre.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)
    await id_centre.verify(iin=ENROLLED_IIN, sample=b"someone else")
    broken = HttpIdentificationCentre(
        "http://centre.test", timeout_s=TIMEOUT_S, transport=_answering(200, _verdict_json(outcome="match"))
    )
    with pytest.raises(ExternalPartyUnavailable):
        await broken.verify(iin=ENROLLED_IIN, sample=ENROLLED_SAMPLE)

    lines = _formatted(caplog, "dfa.identification")
    assert len(lines) == 8
    digest = hashlib.sha256(ENROLLED_SAMPLE).hexdigest()
    forbidden = [
        ENROLLED_IIN,
        "face-of-daniyar",
        base64.b64encode(ENROLLED_SAMPLE).decode(),
        digest[:16],
        digest[-16:],
        "Daniyar",
        "1985-02-02",
    ]
    for line in lines:
        for secret in forbidden:
            assert secret not in line
    assert mask_identifier(ENROLLED_IIN) in "\n".join(lines)


# The served simulators refuse what the real centres would --------------------------------------


async def test_served_simulators_refuse_malformed_requests_and_record_nothing(
    served_centre, served_id_centre, http_centre, http_id_centre
):
    (centre, centre_url), (id_centre, id_centre_url) = served_centre, served_id_centre
    subject = {"identifier": CLEAN_PERSON.identifier, "name": CLEAN_PERSON.name, "kind": "person"}
    screenings, verifications = f"{centre_url}/v1/screenings", f"{id_centre_url}/v1/biometric-verifications"
    cases = [
        (screenings, {"operation": "transfer", "sender": {**subject, "identifier": "770515300018"}, "recipient": subject}),
        (screenings, {"operation": "Transfer!", "sender": subject, "recipient": subject}),
        (screenings, {"operation": "transfer", "sender": subject, "recipient": subject, "amount": -1}),
        (verifications, {"iin": ENROLLED_IIN, "sample": "not base64!"}),
        (verifications, {"iin": ENROLLED_IIN, "sample": ""}),
        (verifications, {"iin": "850202300015", "sample": "eA=="}),
    ]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for url, body in cases:
            assert (await http.post(url, json=body)).status_code == 422, body
            assert (await http.post(url, json=body, headers={"Authorization": ""})).status_code == 401
    assert centre.requests == [] and id_centre.requests == []


# Wiring from settings and the bundled demo data ------------------------------------------------


async def test_without_urls_the_simulators_answer_from_the_bundled_demo_data():
    settings = Settings(_env_file=None, environment="development")
    centre = antifraud_centre_from_settings(settings)
    id_centre = identification_centre_from_settings(settings)
    assert isinstance(centre, AntiFraudSimulator)
    assert isinstance(id_centre, IdentificationCentreSimulator)

    screening = await centre.screen(
        operation="transfer",
        sender=Subject("770515300019", "Demo Listed", "person"),
        recipient=Subject("900101400013", "Aigerim Nurlanovna Sadykova", "person"),
    )
    assert {m.role for m in screening.matches} == {"sender"}

    for iin, born in [("900101400013", date(1990, 1, 1)), ("850202300014", date(1985, 2, 2)), ("920712400019", date(1992, 7, 12))]:
        verdict = await id_centre.verify(iin=iin, sample=demo_sample(iin))
        assert (verdict.outcome, verdict.birth_date) == ("match", born)
        assert (await id_centre.verify(iin=iin, sample=demo_sample("900101400013" if iin != "900101400013" else "850202300014"))).outcome == "no_match"


def test_demo_identifiers_are_valid_and_encode_the_birth_date():
    registry = Registry.load(identification.DEMO_REGISTRY)
    watch_list = WatchList.load(antifraud.DEMO_WATCH_LIST)
    assert len(registry) == 3 and len(watch_list) >= 2
    for iin in ("900101400013", "850202300014", "920712400019"):
        person = registry.find(iin)
        assert person is not None and is_valid_identification_number(iin)
        assert person.birth_date.strftime("%y%m%d") == iin[:6]
        # The seventh digit: 3 for a man, 4 for a woman born in the 1900s.
        assert iin[6] in "34"


def test_with_urls_the_http_clients_are_used():
    settings = Settings(
        _env_file=None,
        antifraud_url="https://antifraud.example",
        identification_centre_url="https://cid.example",
        environment="production",
    )

    assert isinstance(antifraud_centre_from_settings(settings), HttpAntiFraudCentre)
    assert isinstance(identification_centre_from_settings(settings), HttpIdentificationCentre)


def test_production_refuses_the_simulators():
    settings = Settings(_env_file=None, environment="production")

    with pytest.raises(ValueError):
        antifraud_centre_from_settings(settings)
    with pytest.raises(ValueError):
        identification_centre_from_settings(settings)
