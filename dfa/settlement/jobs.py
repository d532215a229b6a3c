"""Scheduled work of settlement: reading the bank's statements, sending withdrawals, the day's settlement."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from dfa.platform.adapters.antifraud import AntiFraudCentre
from dfa.platform.database import Database
from dfa.platform.errors import ExternalPartyUnavailable
from dfa.platform.identity.service.parties import local_today
from dfa.platform.settings import Settings
from dfa.settlement.bank import Bank
from dfa.settlement.errors import PaymentOrdersRefused
from dfa.settlement.service import cash, day

log = logging.getLogger(__name__)

STATEMENT_POLLER = "bank-statement-poll"


async def poll_statement_once(database: Database, bank: Bank, settings: Settings) -> int:
    """Fetch and import yesterday's and today's statements of the client-money account; returns how many
    lines were new. Yesterday's is read again because the bank may have booked more after the last
    poll of that day; an unchanged statement is recognised and imports nothing."""
    today = local_today(settings)
    new = 0
    for statement_day in (today - timedelta(days=1), today):
        # The bank is asked outside any transaction; the import is one transaction of its own.
        try:
            document = await bank.statement(account_iban=settings.operator_client_money_iban, day=statement_day)
        except ExternalPartyUnavailable:
            log.warning(
                "bank unavailable; its statement is read at the next poll", extra={"day": statement_day.isoformat()}
            )
            return new
        async with database.unit_of_work() as session:
            summary = await cash.import_statement(
                session, document=document, actor=STATEMENT_POLLER, settings=settings
            )
        new += summary.lines_new
    return new


@dataclass
class SubmissionSummary:
    """What one submission pass did."""

    runs_built: int = 0
    runs_sent: int = 0
    runs_accepted: int = 0
    runs_refused: int = 0
    runs_unanswered: int = 0
    withdrawals_sent: int = 0
    withdrawals_refused: int = 0


async def submit_withdrawals(database: Database, bank: Bank, settings: Settings) -> SubmissionSummary | None:
    """One pass: store the requested withdrawals as a payment message (one transaction), send every
    stored message the bank has not answered (no transaction open), record each answer (one
    transaction each). A crash anywhere leaves messages stored and unanswered, and the next pass sends
    the very same ones again, which the bank executes once. None when another pass is running."""
    async with cash.submission_turn(database) as turn:
        if not turn:
            return None
        summary = SubmissionSummary()
        async with database.unit_of_work() as session:
            if await cash.build_payment_run(session, settings=settings) is not None:
                summary.runs_built += 1
        async with database.read() as session:
            runs = [(run.message_id, run.document) for run in await cash.payment_runs_to_send(session)]
        for message_id, document in runs:
            summary.runs_sent += 1
            try:
                acceptance_id = await bank.submit_payment_orders(document)
            except PaymentOrdersRefused as refusal:
                async with database.unit_of_work() as session:
                    refused = await cash.record_refusal(
                        session, message_id=message_id, code=refusal.code, reason=refusal.reason, settings=settings
                    )
                summary.runs_refused += 1
                summary.withdrawals_refused += len(refused)
                log.warning("payment orders refused", extra={"message_id": message_id, "code": refusal.code})
                continue
            except ExternalPartyUnavailable:
                async with database.unit_of_work() as session:
                    await cash.record_unanswered(session, message_id=message_id)
                summary.runs_unanswered += 1
                log.warning("bank unavailable; payment orders wait for the next pass", extra={"message_id": message_id})
                break  # the rest would meet the same silence
            async with database.unit_of_work() as session:
                sent = await cash.record_acceptance(
                    session, message_id=message_id, acceptance_id=acceptance_id, settings=settings
                )
            summary.runs_accepted += 1
            summary.withdrawals_sent += len(sent)
        return summary


async def submit_withdrawals_once(database: Database, bank: Bank, settings: Settings) -> int:
    """The periodic job: one submission pass; returns how many withdrawals the bank decided."""
    summary = await submit_withdrawals(database, bank, settings)
    return 0 if summary is None else summary.withdrawals_sent + summary.withdrawals_refused


async def end_of_day_once(database: Database, centre: AntiFraudCentre, settings: Settings) -> int:
    """The periodic settlement pass: settle what is due, fail what the close left unsettled, expire day
    orders (see `day.end_of_day`); returns how many instructions and orders it decided."""
    async with database.unit_of_work() as session:
        report = await day.end_of_day(session, centre=centre, settings=settings, actor="end-of-day")
    return report.settled + report.failed + report.expired
