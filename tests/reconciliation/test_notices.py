"""Notices about breaches to the National Bank and the custodian (REQ-31): written once per breach and
recipient with one outbox message, delivered from the outbox exactly once end to end — over real HTTP to
the simulated Bank and custodians — with the recipient's receipt and its time as evidence."""

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from dfa.issuance.custodian import CustodianSimulator, HttpCustodian
from dfa.issuance.custodian import simulator_app as custodian_app
from dfa.platform import service as platform
from dfa.platform.adapters.external import Receipt
from dfa.platform.adapters.national_bank import HttpNationalBank, NationalBankSimulator
from dfa.platform.adapters.national_bank import simulator_app as national_bank_app
from dfa.platform.audit import service as audit
from dfa.platform.database import Database
from dfa.platform.errors import InvariantViolation
from dfa.reconciliation.delivery import deliver_notices_once
from dfa.reconciliation.models import Breach, Notice, Report, Run
from dfa.reconciliation.service import notices
from dfa.reconciliation.service.notices import NOTICES_TOPIC
from tests.servers import served

TOKEN = "notices-test-token"
TIMEOUT_S = 2.0
CUSTODIAN = "kazgrain"
ISSUER_NAME = "Steppe Grain LLP"
PENDING_MAX = 100_000


# Breaches and their notices, committed -----------------------------------------------------------------


def _old_business_date() -> date:
    # Far before any day the platform reconciles, so no report of these tests is anyone's latest.
    return date(1901, 1, 1) + timedelta(days=random.randrange(40 * 365))


async def open_breach(database: Database) -> Breach:
    """A committed open coverage shortfall about a fresh asset, found by a report of its own."""
    day, now = _old_business_date(), datetime.now(UTC)
    content = json.dumps({"business_date": day.isoformat()}).encode()
    async with database.unit_of_work() as session:
        run = Run(business_date=day, trigger="command", requested_by="tests", outcome="breaches", finished_at=now)
        session.add(run)
        await session.flush()
        report = Report(
            business_date=day, version=random.randrange(1, 2**31), run_id=run.id, as_of=now, late=False, emissions=1,
            breaches=1, content=content, content_sha256=hashlib.sha256(content).digest(), signature=bytes(64),
            signing_key_sha256="0" * 64,
        )
        session.add(report)
        await session.flush()
        breach = Breach(
            kind="shortfall", asset_id=random.randrange(10_000_000, 100_000_000), issuer_party_id=None,
            detail="the underlying asset covers 80% of the required value", opened_report_id=report.id,
            last_report_id=report.id,
        )
        session.add(breach)
        await session.flush()
    return breach


def notice_body(breach: Breach, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "coverage_shortfall",
        "operator": {
            "name": "DFA Platform Operator JSC", "bin": "240340000019", "nbk_registration_number": "KZDFA0001",
        },
        "emission": f"KZDFA0001-{breach.asset_id}",
        "issuer": {"name": ISSUER_NAME, "bin": "190840000005"},
        "underlying_asset": {"custodian": CUSTODIAN, "reference": "WR-2026-0001"},
        "business_date": "1990-03-02",
        "found_at": datetime.now(UTC).isoformat(),
        "required_value_tiyn": 60_000_000_000,
        "market_value_tiyn": 48_000_000_000,
        "shortfall_tiyn": 12_000_000_000,
        "detail": f"Emission KZDFA0001-{breach.asset_id} is covered 0.80 times, 1.00 required",
        "report": {"id": breach.opened_report_id, "version": 1, "content_sha256": "00" * 32},
        **changes,
    }


@dataclass(frozen=True)
class Notified:
    """A breach and its two notices, committed with their outbox messages."""

    breach: Breach
    national_bank: Notice
    custodian: Notice


async def notified_breach(database: Database, **body_changes: Any) -> Notified:
    breach = await open_breach(database)
    body = notice_body(breach, **body_changes)
    async with database.unit_of_work() as session:
        to_bank = await notices.write_notice(
            session, breach_id=breach.id, recipient="national_bank", custodian=None, body=body
        )
        to_custodian = await notices.write_notice(
            session, breach_id=breach.id, recipient="custodian", custodian=CUSTODIAN, body=body
        )
    return Notified(breach, to_bank, to_custodian)


async def reread(database: Database, notice: Notice) -> Notice:
    async with database.read() as session:
        [current] = [n for n in await notices.notices_of(session, breach_id=notice.breach_id) if n.id == notice.id]
        return current


async def pending_notice_ids(database: Database) -> set[str]:
    async with database.read() as session:
        pending = await platform.pending_messages(session, topic=NOTICES_TOPIC, limit=PENDING_MAX)
    return {message.payload["notice_id"] for message in pending}


async def delivery_events(database: Database, notice: Notice) -> list:
    async with database.read() as session:
        return await audit.search(
            session, kind="reconciliation.notice_delivered", subject=f"notice:{notice.id}", limit=10
        )


# The recipients, served over real HTTP ----------------------------------------------------------------


@dataclass(frozen=True)
class Recipients:
    national_bank: HttpNationalBank
    custodian: HttpCustodian
    bank_simulator: NationalBankSimulator
    custodian_simulator: CustodianSimulator

    async def deliver(self, database: Database, **options: Any) -> int:
        return await deliver_notices_once(
            database, national_bank=self.national_bank, custodian=self.custodian, **options
        )


@pytest.fixture(scope="module")
def served_recipients() -> Iterator[tuple[NationalBankSimulator, str, CustodianSimulator, str]]:
    bank, custodian = NationalBankSimulator(), CustodianSimulator()
    with served(national_bank_app(bank, token=TOKEN)) as bank_url, served(custodian_app(custodian, token=TOKEN)) as url:
        yield bank, bank_url, custodian, url


@pytest.fixture
async def recipients(served_recipients, database) -> AsyncIterator[Recipients]:
    """Both recipients up, over HTTP, having received nothing yet; notices other tests left waiting are
    delivered first, so each test sees only its own in the outbox."""
    bank, bank_url, custodian, custodian_url = served_recipients
    serving = Recipients(
        HttpNationalBank(bank_url, timeout_s=TIMEOUT_S, token=TOKEN),
        HttpCustodian(custodian_url, timeout_s=TIMEOUT_S, token=TOKEN),
        bank,
        custodian,
    )
    while await serving.deliver(database):
        pass
    bank.notices.clear()
    bank.requests.clear()
    custodian.notices.clear()
    try:
        yield serving
    finally:
        bank.down = custodian.down = False
        bank.latency_s = custodian.latency_s = 0.0
        await serving.national_bank.aclose()
        await serving.custodian.aclose()


# Writing notices ---------------------------------------------------------------------------------------


async def test_writing_a_breachs_notice_again_returns_the_first_and_queues_no_second_message(database, session):
    breach = await open_breach(database)
    body = notice_body(breach)

    first = await notices.write_notice(
        session, breach_id=breach.id, recipient="national_bank", custodian=None, body=body
    )
    again = await notices.write_notice(
        session, breach_id=breach.id, recipient="national_bank", custodian=None, body={**body, "detail": "again"}
    )

    assert again.id == first.id and again.body == body
    assert [n.id for n in await notices.notices_of(session, breach_id=breach.id)] == [first.id]
    pending = await platform.pending_messages(session, topic=NOTICES_TOPIC, limit=PENDING_MAX)
    assert [m.payload for m in pending if m.payload["notice_id"] == str(first.id)] == [{"notice_id": str(first.id)}]


async def test_a_breach_has_one_notice_to_the_bank_and_one_to_its_custodian_and_only_that_one_names_a_custodian(
    database, session
):
    breach = await open_breach(database)
    body = notice_body(breach)
    to_custodian = await notices.write_notice(
        session, breach_id=breach.id, recipient="custodian", custodian=CUSTODIAN, body=body
    )
    to_bank = await notices.write_notice(
        session, breach_id=breach.id, recipient="national_bank", custodian=None, body=body
    )

    assert [n.id for n in await notices.notices_of(session, breach_id=breach.id)] == [to_bank.id, to_custodian.id]
    assert (to_bank.custodian, to_custodian.custodian) == (None, CUSTODIAN)
    with pytest.raises(InvariantViolation):
        await notices.write_notice(session, breach_id=breach.id, recipient="custodian", custodian=None, body=body)
    with pytest.raises(InvariantViolation):
        await notices.write_notice(
            session, breach_id=breach.id, recipient="national_bank", custodian=CUSTODIAN, body=body
        )


# Delivering them ---------------------------------------------------------------------------------------


async def test_req_31_each_notice_reaches_its_recipient_once_with_the_receipt_and_its_time_recorded(
    database, recipients
):
    notified = await notified_breach(database)
    to_bank, to_custodian = notified.national_bank, notified.custodian

    assert await recipients.deliver(database) == 2
    assert await recipients.deliver(database) == 0

    at_bank = recipients.bank_simulator.notices[str(to_bank.id)]
    at_custodian = recipients.custodian_simulator.notices[CUSTODIAN][str(to_custodian.id)]
    assert at_bank.body == {**to_bank.body, "notice_id": str(to_bank.id)}
    assert at_custodian.body == {**to_custodian.body, "notice_id": str(to_custodian.id)}
    assert recipients.bank_simulator.requests.count(str(to_bank.id)) == 1
    assert str(to_custodian.id) not in recipients.bank_simulator.notices
    for sent, received in ((to_bank, at_bank), (to_custodian, at_custodian)):
        stored = await reread(database, sent)
        assert (stored.receipt_id, stored.delivered_at) == (received.receipt.receipt_id, received.receipt.received_at)
        assert (stored.attempts, stored.last_error) == (0, None)
        [event] = await delivery_events(database, sent)
        assert event.details["receipt_id"] == received.receipt.receipt_id
    assert not {str(to_bank.id), str(to_custodian.id)} & await pending_notice_ids(database)


async def test_req_31_while_the_bank_is_down_its_notices_wait_with_the_attempt_recorded_and_go_once_it_is_back(
    database, recipients
):
    first, second = await notified_breach(database), await notified_breach(database)
    recipients.bank_simulator.down = True

    assert await recipients.deliver(database) == 2  # the custodians' notices still go

    attempted, not_tried = await reread(database, first.national_bank), await reread(database, second.national_bank)
    assert (attempted.attempts, attempted.delivered_at, attempted.receipt_id) == (1, None, None)
    assert "503" in attempted.last_error
    assert (not_tried.attempts, not_tried.last_error) == (0, None)  # the pass stopped asking the Bank
    waiting = {str(first.national_bank.id), str(second.national_bank.id)}
    assert waiting <= await pending_notice_ids(database)
    async with database.read() as session:
        assert waiting <= {str(n.id) for n in await notices.undelivered(session, limit=PENDING_MAX)}
    for notified in (first, second):
        assert (await reread(database, notified.custodian)).receipt_id is not None

    recipients.bank_simulator.down = False
    assert await recipients.deliver(database) == 2

    assert sorted(recipients.bank_simulator.requests) == sorted(waiting)
    for notified in (first, second):
        delivered = await reread(database, notified.national_bank)
        assert delivered.receipt_id == recipients.bank_simulator.notices[str(delivered.id)].receipt.receipt_id
    assert not waiting & await pending_notice_ids(database)


async def test_a_notice_the_bank_refuses_waits_with_its_reason_while_the_next_ones_still_go(database, recipients):
    refused = await notified_breach(database, detail="")
    accepted = await notified_breach(database)
    try:
        assert await recipients.deliver(database) == 3

        stored = await reread(database, refused.national_bank)
        assert (stored.attempts, stored.delivered_at) == (1, None)
        assert "refused" in stored.last_error and "detail" in stored.last_error
        assert str(refused.national_bank.id) in await pending_notice_ids(database)
        assert (await reread(database, accepted.national_bank)).receipt_id is not None
    finally:
        # The operator corrects a refused notice by hand; this one is simply taken off the queue.
        async with database.unit_of_work() as session:
            pending = await platform.pending_messages(session, topic=NOTICES_TOPIC, limit=PENDING_MAX)
            await platform.mark_delivered(
                session, messages=[m for m in pending if m.payload["notice_id"] == str(refused.national_bank.id)]
            )


class ProcessDied(Exception):
    pass


class DiesAfterTheBankAnswers:
    """The National Bank client of a process that dies once, right after the Bank answered one notice and
    before the answer is recorded."""

    def __init__(self, bank: HttpNationalBank, notice_id: str) -> None:
        self.bank, self.notice_id, self.died = bank, notice_id, False

    async def send_notice(self, *, notice_id: str, body: dict[str, Any]) -> Receipt:
        receipt = await self.bank.send_notice(notice_id=notice_id, body=body)
        if notice_id == self.notice_id and not self.died:
            self.died = True
            raise ProcessDied
        return receipt

    async def aclose(self) -> None:
        await self.bank.aclose()


async def test_req_31_after_a_crash_the_notice_is_sent_again_under_its_id_kept_once_and_its_first_receipt_stored(
    database, recipients
):
    notified = await notified_breach(database)
    notice_id = str(notified.national_bank.id)
    dying = DiesAfterTheBankAnswers(recipients.national_bank, notice_id)

    with pytest.raises(ProcessDied):
        await deliver_notices_once(database, national_bank=dying, custodian=recipients.custodian)

    first_receipt = recipients.bank_simulator.notices[notice_id].receipt
    assert (await reread(database, notified.national_bank)).receipt_id is None
    assert notice_id in await pending_notice_ids(database)

    await deliver_notices_once(database, national_bank=dying, custodian=recipients.custodian)

    assert recipients.bank_simulator.requests.count(notice_id) == 2
    assert list(recipients.bank_simulator.notices).count(notice_id) == 1
    stored = await reread(database, notified.national_bank)
    assert (stored.receipt_id, stored.delivered_at) == (first_receipt.receipt_id, first_receipt.received_at)
    assert len(await delivery_events(database, notified.national_bank)) == 1
    assert notice_id not in await pending_notice_ids(database)


async def test_two_delivery_passes_at_once_send_every_notice_once(database, recipients):
    breaches = [await notified_breach(database) for _ in range(6)]
    recipients.bank_simulator.latency_s = 0.05  # both passes are surely sending at the same time
    mine = {str(b.national_bank.id) for b in breaches}

    delivered = await asyncio.gather(recipients.deliver(database), recipients.deliver(database))

    assert sum(delivered) == 12 and all(delivered)
    assert sorted(i for i in recipients.bank_simulator.requests if i in mine) == sorted(mine)
    kept_by_custodian = recipients.custodian_simulator.notices[CUSTODIAN]
    for notified in breaches:
        assert str(notified.custodian.id) in kept_by_custodian
        assert (await reread(database, notified.national_bank)).receipt_id is not None
        assert len(await delivery_events(database, notified.custodian)) == 1


async def test_notices_carry_no_secrets_and_the_delivery_logs_only_their_ids(database, recipients, caplog):
    notified = await notified_breach(database)

    with caplog.at_level(logging.INFO, logger="dfa"):
        assert await recipients.deliver(database) == 2

    for sent in (notified.national_bank, notified.custodian):
        stored = await reread(database, sent)
        assert TOKEN not in json.dumps(stored.body)
    received = recipients.bank_simulator.notices[str(notified.national_bank.id)].body
    assert set(received) == set(notified.national_bank.body) | {"notice_id"}
    logged = [json.dumps(record.__dict__, default=str) for record in caplog.records if record.name.startswith("dfa")]
    for notice_id in (str(notified.national_bank.id), str(notified.custodian.id)):
        assert any(notice_id in line and "notice delivered" in line for line in logged)
    body_text = (ISSUER_NAME, notified.national_bank.body["emission"], "covered 0.80 times")
    assert not any(text in line for line in logged for text in body_text)
    assert not any(TOKEN in line for line in logged)


async def test_a_pass_delivers_at_most_its_limit(database, recipients):
    notified = await notified_breach(database)

    assert await recipients.deliver(database, limit=1) == 1
    assert await recipients.deliver(database, limit=1) == 1
    assert await recipients.deliver(database, limit=1) == 0
    for sent in (notified.national_bank, notified.custodian):
        assert (await reread(database, sent)).receipt_id is not None
