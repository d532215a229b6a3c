"""The daily reconciliation on APScheduler, catching up on missed days, and sending notices afterwards.

Every instance runs the schedule; the reconciliation lock and the "one report per day unless forced" rule
make a day's run happen once however many instances fire (REQ-30). A day the platform was down for is
reconciled late at the next start (or the next scheduled run), within `reconciliation_catch_up_days`;
its report says it is late and compliance officers are told.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from dfa.platform.adapters.national_bank import NationalBank
from dfa.platform.database import Database
from dfa.platform.identity.crypto import Keys
from dfa.platform.identity.service.parties import local_today
from dfa.platform.settings import Settings
from dfa.reconciliation.delivery import deliver_notices_once
from dfa.reconciliation.repository import runs as runs_repository
from dfa.reconciliation.service.runs import Counterparties, RunResult, reconcile_day

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"
JOB_ID = "daily-reconciliation"


@dataclass(frozen=True)
class Reconciliation:
    """Everything a run and its notices need, bound once at start."""

    database: Database
    counterparties: Counterparties
    national_bank: NationalBank
    keys: Keys
    settings: Settings

    async def run(self, day: date, *, trigger: str, requested_by: str, force: bool = False) -> RunResult:
        """Reconcile `day`, then send the notices it wrote at once (REQ-31); an unreachable recipient is
        tried again by the delivery job, and does not fail the run."""
        result = await reconcile_day(
            self.database, day=day, trigger=trigger, requested_by=requested_by, force=force,
            counterparties=self.counterparties, keys=self.keys, settings=self.settings,
        )
        await self.deliver()
        return result

    async def deliver(self) -> int:
        try:
            return await deliver_notices_once(
                self.database, national_bank=self.national_bank, custodian=self.counterparties.custodian
            )
        except Exception:  # the notices wait in the outbox; the retry job sends them
            log.exception("notice delivery failed; retried later")
            return 0

    async def catch_up(self, *, now: datetime | None = None) -> list[RunResult]:
        """Reconcile, oldest first, each scheduled day up to today whose run is due and has no report."""
        results = []
        for day in await self.missed_days(now=now):
            results.append(await self.run(day, trigger="catch_up", requested_by=SCHEDULER))
        return results

    async def catch_up_quietly(self) -> None:
        """`catch_up` for the start of the process: a failure is logged (and recorded with its run), never
        fatal to the start."""
        try:
            await self.catch_up()
        except Exception:
            log.exception("catching up on missed reconciliation days failed")

    async def missed_days(self, *, now: datetime | None = None) -> list[date]:
        """Days within the catch-up window that were due to be reconciled (the schedule fired on them
        before `now`) and have no report. The window starts no earlier than the first run ever recorded:
        before it the platform was not running, so nothing was missed."""
        settings = self.settings
        zone = ZoneInfo(settings.timezone)
        now = now or datetime.now(zone)
        today = now.astimezone(zone).date()
        async with self.database.read() as session:
            first = await runs_repository.first_run_day(session)
            since = max(today - timedelta(days=settings.reconciliation_catch_up_days), first or today)
            reported = await runs_repository.reported_days(session, since=since, until=today)
        trigger = daily_trigger(settings)
        if trigger is None:
            return []
        return [
            day for day in _days(since, today)
            if day not in reported and _fires_on(trigger, day, zone=zone, before=now)
        ]

    async def scheduled(self) -> None:
        """The scheduler's job: the days missed, then today."""
        try:
            await self.catch_up()
            await self.run(local_today(self.settings), trigger="schedule", requested_by=SCHEDULER)
        except Exception:  # the scheduler must keep its schedule; the failed run is recorded
            log.exception("the scheduled reconciliation failed")


def daily_trigger(settings: Settings) -> CronTrigger | None:
    """The schedule as a cron trigger in the operator's time zone; None when the schedule is off."""
    if not settings.reconciliation_schedule.strip():
        return None
    return CronTrigger.from_crontab(settings.reconciliation_schedule, timezone=ZoneInfo(settings.timezone))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _fires_on(trigger: CronTrigger, day: date, *, zone: ZoneInfo, before: datetime) -> bool:
    start = datetime.combine(day, time.min, tzinfo=zone)
    fire = trigger.get_next_fire_time(None, start)
    return fire is not None and fire.date() == day and fire <= before


def start_scheduler(reconciliation: Reconciliation, *, trigger: CronTrigger | None = None) -> AsyncIOScheduler | None:
    """Start the daily job on the running event loop (`trigger` overrides the configured schedule); None
    when the schedule is off."""
    trigger = trigger or daily_trigger(reconciliation.settings)
    if trigger is None:
        return None
    scheduler = AsyncIOScheduler(timezone=ZoneInfo(reconciliation.settings.timezone))
    # One run at a time per instance; a fire missed while the process was busy runs once, late.
    scheduler.add_job(
        reconciliation.scheduled, trigger, id=JOB_ID, max_instances=1, coalesce=True, misfire_grace_time=3_600
    )
    scheduler.start()
    return scheduler
