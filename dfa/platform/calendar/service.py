"""The business-day calendar of Kazakhstan: which days are business days, and when deadlines fall.

A day's status is decided by the first of these that speaks:

1. the operator's override of the day (table `calendar_day_overrides`): "working" makes it a business
   day, "day_off" makes it not one, whatever the layers below say;
2. the `holidays` package's calendar of Kazakhstan: the public holidays, each moved to the next
   working day when it falls on a weekend as the law on holidays requires (except Orthodox Christmas and
   Kurban Ait, which are never moved), Kurban Ait (Eid al-Adha) on the date it estimates for years
   not yet confirmed, and the government's day transfers it knows of: the weekday made a day off is
   among its holidays ("Day off (substituted from ...)"), and the weekend day worked in exchange is
   in its `weekend_workdays`, which makes that day a business day here too;
3. the weekend: Saturday and Sunday are not business days.

So the transfers the package knows (through 2025 in holidays 0.108) need no override, and each later
government decree on day transfers is entered as two overrides: "working" on the weekend day to be
worked and "day_off" on the weekday it frees. An override also corrects the package where the
state decides otherwise (Kurban Ait announced on another day than estimated: "working" on the
estimated day, "day_off" on the announced one; the package knows no Kurban Ait after 2077). An
override that agrees with the package changes nothing today, and keeps the day as it is should a
later release of the package change its mind.

Business dates and deadlines use the operator's time zone (`settings.timezone`, Asia/Almaty) and
the close of the business day (`settings.business_day_closes_at`, 18:00). An instant belongs to the
first business day whose close is after it (the National Bank's rule: registered on the day of
receipt, or on the next business day when received after hours, on a weekend or on a holiday), so
a deadline `close_of(d)` is met by anything that happens before that instant, and the instant of
the close itself already belongs to the next business day.

The calendar covers the years 2000 to 2100; a date outside them is refused with
`DateOutsideCalendar`, as is an answer that would fall outside them.
"""

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy.ext.asyncio import AsyncSession

from dfa.platform.audit import service as audit
from dfa.platform.calendar import errors, repository
from dfa.platform.calendar.models import OVERRIDE_KINDS, Override
from dfa.platform.errors import invariant
from dfa.platform.settings import Settings

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
MAX_DAYS_PER_LISTING = 366
MAX_REASON_LENGTH = 500
SATURDAY = 5


def _days(first: date, last: date) -> Iterable[date]:
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


@dataclass(frozen=True)
class _Statute:
    """What the `holidays` package says about the whole covered range, without the operator's word."""

    holiday_names: Mapping[date, str]
    business_days: tuple[date, ...]  # ascending


@lru_cache(maxsize=1)
def _statute() -> _Statute:
    # Computed once per process: the package needs about a tenth of a second for the century, and its
    # answer depends on nothing but its own version.
    kazakhstan = holidays.country_holidays(
        "KZ", years=range(FIRST_DAY.year, LAST_DAY.year + 1), language="en_US"
    )
    names = {day: name for day, name in kazakhstan.items() if FIRST_DAY <= day <= LAST_DAY}
    worked_weekend_days = frozenset(kazakhstan.weekend_workdays)
    business_days = tuple(
        day
        for day in _days(FIRST_DAY, LAST_DAY)
        if (day in worked_weekend_days if day.weekday() >= SATURDAY else day not in names)
    )
    return _Statute(holiday_names=MappingProxyType(names), business_days=business_days)


def _check_covered(day: date) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise errors.DateOutsideCalendar(
            f"{day.isoformat()} is outside {FIRST_DAY.isoformat()}..{LAST_DAY.isoformat()}, "
            "the days the business-day calendar covers",
            day=day.isoformat(),
        )


class BusinessCalendar:
    """An immutable snapshot of the business-day calendar: the statute, the weekend and the overrides
    as they were when it was built. Every method is pure and synchronous.

    Raises DateOutsideCalendar from every method given, or asked to answer with, a day outside
    2000-01-01..2100-12-31.
    """

    __slots__ = ("_business_days", "_overrides", "_zone", "closes_at", "timezone")

    def __init__(self, *, timezone: str, closes_at: time, overrides: Mapping[date, str] | None = None) -> None:
        """`overrides` maps days to "working" or "day_off"; days outside the covered range can
        affect nothing inside it and are ignored."""
        invariant(closes_at.tzinfo is None, "the close of the business day is a local wall-clock time")
        invariant(closes_at > time(0), "the business day cannot close at its very start")
        self.timezone = timezone
        self.closes_at = closes_at
        self._zone = ZoneInfo(timezone)
        covered = {day: kind for day, kind in (overrides or {}).items() if FIRST_DAY <= day <= LAST_DAY}
        for day, kind in covered.items():
            invariant(kind in OVERRIDE_KINDS, f"override of {day} has unknown kind {kind!r}")
        self._overrides: Mapping[date, str] = MappingProxyType(covered)

        business_days = list(_statute().business_days)
        for day, kind in sorted(covered.items()):
            index = bisect.bisect_left(business_days, day)
            listed = index < len(business_days) and business_days[index] == day
            if kind == "working" and not listed:
                business_days.insert(index, day)
            elif kind == "day_off" and listed:
                del business_days[index]
        self._business_days = tuple(business_days)

    # --- days --------------------------------------------------------------------------------------

    def is_business_day(self, d: date) -> bool:
        """Whether `d` is a business day: the override if there is one, else not a public holiday nor
        a day off, and not a weekend day unless the government made it a working day."""
        _check_covered(d)
        index = bisect.bisect_left(self._business_days, d)
        return index < len(self._business_days) and self._business_days[index] == d

    def public_holiday(self, d: date) -> str | None:
        """The name of the public holiday or day off the statute puts on `d` (in English), or None.
        An override may still make the day a business day."""
        _check_covered(d)
        return _statute().holiday_names.get(d)

    def override(self, d: date) -> str | None:
        """The operator's override of `d` ("working" or "day_off"), or None."""
        _check_covered(d)
        return self._overrides.get(d)

    def _business_day_at(self, index: int, *, after: date) -> date:
        if index >= len(self._business_days):
            raise errors.DateOutsideCalendar(
                f"the answer would fall after {LAST_DAY.isoformat()}, the last day the business-day "
                f"calendar covers (counting from {after.isoformat()})",
                day=after.isoformat(),
            )
        return self._business_days[index]

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after `d`."""
        _check_covered(d)
        return self._business_day_at(bisect.bisect_right(self._business_days, d), after=d)

    def business_day_on_or_after(self, d: date) -> date:
        """`d` itself when it is a business day, else the first business day after it."""
        _check_covered(d)
        return self._business_day_at(bisect.bisect_left(self._business_days, d), after=d)

    def add_business_days(self, d: date, n: int) -> date:
        """The business day `n` business days after `d`, counted from `business_day_on_or_after(d)`.

        A day that is not a business day is first rolled forward to the next business day, as a
        document received on it is registered on that day; then `n` business days are stepped. So
        with a plain week: Monday + 0 = Monday, Monday + 1 = Tuesday, Friday + 1 = the next Monday,
        Saturday + 0 = Monday, Saturday + 1 = Tuesday. The answer is always a business day, grows
        strictly with `n`, and `business_days_between(business_day_on_or_after(d), answer) == n`.

        Raises NegativeBusinessDays (counting backwards is not a deadline), DateOutsideCalendar.
        """
        if n < 0:
            raise errors.NegativeBusinessDays(f"cannot count {n} business days: n must be 0 or more", n=n)
        _check_covered(d)
        return self._business_day_at(bisect.bisect_left(self._business_days, d) + n, after=d)

    def business_days_between(self, a: date, b: date) -> int:
        """The number of business days after `a` up to and including `b`; negative (the same count,
        negated) when `b` is before `a`, zero when they are the same day.

        So for a business day `a`, `business_days_between(a, add_business_days(a, n)) == n`, and the
        counts add up: between(a, b) + between(b, c) == between(a, c).
        """
        _check_covered(a)
        _check_covered(b)
        return bisect.bisect_right(self._business_days, b) - bisect.bisect_right(self._business_days, a)

    # --- instants ----------------------------------------------------------------------------------

    def _close(self, d: date) -> datetime:
        return datetime.combine(d, self.closes_at, tzinfo=self._zone).astimezone(UTC)

    def close_of(self, d: date) -> datetime:
        """The instant business day `d` closes (its deadlines fall): the configured closing time in
        the operator's time zone, as an aware UTC datetime.

        Raises NotABusinessDay: a deadline never falls on a weekend or a holiday.
        """
        if not self.is_business_day(d):
            raise errors.NotABusinessDay(
                f"{d.isoformat()} is not a business day, so nothing closes on it", day=d.isoformat()
            )
        return self._close(d)

    def business_date_of(self, instant: datetime) -> date:
        """The business day `instant` belongs to: its local date in the operator's time zone when
        that is a business day and the instant is before its close, else the next business day.

        This is the National Bank's rule for what is received after hours, on a weekend or on a
        holiday: it counts as received on the next business day.

        Raises InstantWithoutTimeZone: a naive datetime names no instant.
        """
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise errors.InstantWithoutTimeZone(
                f"{instant.isoformat()} carries no time zone offset, so it names no instant"
            )
        local_date = instant.astimezone(self._zone).date()
        if self.is_business_day(local_date) and instant < self._close(local_date):
            return local_date
        return self.next_business_day(local_date)

    def deadline(self, start: datetime, business_days: int) -> datetime:
        """The close of the business day `business_days` business days after the business date of
        `start` (aware, UTC). With 0 it is the close of the day `start` counts as received on; a
        3-business-day confirmation of something received on Monday at 10:00 is due on Thursday at
        the close, of something received on Friday at 19:00 on the next Thursday.

        Raises NegativeBusinessDays, InstantWithoutTimeZone, DateOutsideCalendar.
        """
        if business_days < 0:
            raise errors.NegativeBusinessDays(
                f"a deadline cannot be {business_days} business days away: 0 or more", n=business_days
            )
        return self._close(self.add_business_days(self.business_date_of(start), business_days))


# --- the calendar in the database --------------------------------------------------------------------


@dataclass(frozen=True)
class DayInfo:
    """One day of the calendar as the operator and the clients see it."""

    day: date
    is_business_day: bool
    is_weekend: bool
    holiday_name: str | None  # the statute's public holiday or day off on this day, if any
    override: Override | None
    closes_at: datetime | None  # the day's deadline instant when it is a business day

    @property
    def is_public_holiday(self) -> bool:
        return self.holiday_name is not None


@lru_cache(maxsize=16)
def _calendar(timezone: str, closes_at: time, overrides: tuple[tuple[date, str], ...]) -> BusinessCalendar:
    # Snapshots are immutable, so the same overrides can share one instead of rebuilding the century's
    # list of business days on every load.
    return BusinessCalendar(timezone=timezone, closes_at=closes_at, overrides=dict(overrides))


def _snapshot(settings: Settings, overrides: Iterable[Override]) -> BusinessCalendar:
    return _calendar(
        settings.timezone,
        settings.business_day_closes_at,
        tuple(sorted((override.day, override.kind) for override in overrides)),
    )


async def load_calendar(session: AsyncSession, *, settings: Settings) -> BusinessCalendar:
    """The calendar as of the caller's transaction: statute, weekend and every override."""
    return _snapshot(settings, await repository.list_overrides(session))


def _today(settings: Settings) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(settings.timezone)).date()


def _check_changeable(settings: Settings, day: date) -> None:
    _check_covered(day)
    # Business dates and deadlines already worked out from a past day have been acted on; changing the
    # day would move them after the fact. Today stays changeable: a day off can be declared at short
    # notice (a day of national mourning) and must be enterable on the day itself.
    today = _today(settings)
    if day < today:
        raise errors.PastDayCannotChange(
            f"{day.isoformat()} has passed (today is {today.isoformat()} in {settings.timezone}); "
            "past days of the calendar cannot be changed",
            day=day.isoformat(),
        )


def _state(override: Override) -> dict[str, str]:
    return {
        "kind": override.kind,
        "reason": override.reason,
        "changed_by": override.changed_by,
        "changed_at": override.changed_at.isoformat(),
    }


async def set_day(
    session: AsyncSession, *, settings: Settings, day: date, kind: str, reason: str, actor: str
) -> Override:
    """Make `day` a business day ("working") or not ("day_off") whatever the statute says, replacing
    any earlier override of it, and record the change in the security-event log.

    Raises UnknownOverrideKind, InvalidOverrideReason, DateOutsideCalendar, PastDayCannotChange.
    """
    if kind not in OVERRIDE_KINDS:
        raise errors.UnknownOverrideKind(f"kind is one of {', '.join(OVERRIDE_KINDS)}, not {kind!r}", kind=kind)
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_LENGTH:
        raise errors.InvalidOverrideReason(
            f"give the reason for the change (the decree or order), at most {MAX_REASON_LENGTH} characters"
        )
    _check_changeable(settings, day)
    previous = await repository.get_override_for_update(session, day)
    # Taken before the upsert, which refreshes the same object in place.
    previous_state = _state(previous) if previous is not None else None
    override = await repository.upsert_override(session, day=day, kind=kind, reason=reason, changed_by=actor)
    await audit.record(
        session,
        kind="calendar.day_set",
        actor=actor,
        subject=day.isoformat(),
        details={"kind": kind, "reason": reason, "previous": previous_state},
    )
    return override


async def clear_day(session: AsyncSession, *, settings: Settings, day: date, actor: str) -> None:
    """Remove the override of `day`, so the statute and the weekend decide it again, and record the
    change in the security-event log.

    Raises DateOutsideCalendar, PastDayCannotChange, OverrideNotFound.
    """
    _check_changeable(settings, day)
    removed = await repository.delete_override(session, day)
    if removed is None:
        raise errors.OverrideNotFound(f"{day.isoformat()} has no override to remove", day=day.isoformat())
    await audit.record(
        session,
        kind="calendar.day_cleared",
        actor=actor,
        subject=day.isoformat(),
        details={"previous": _state(removed)},
    )


async def list_days(session: AsyncSession, *, settings: Settings, start: date, end: date) -> list[DayInfo]:
    """Every day from `start` to `end` inclusive, in order, with its status, statutory holiday and
    override.

    Raises InvalidDateRange (`end` before `start`, or more than 366 days), DateOutsideCalendar.
    """
    if end < start:
        raise errors.InvalidDateRange(
            f"the range ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    if (end - start).days + 1 > MAX_DAYS_PER_LISTING:
        raise errors.InvalidDateRange(
            f"at most {MAX_DAYS_PER_LISTING} days can be listed at once; "
            f"{start.isoformat()}..{end.isoformat()} is {(end - start).days + 1}"
        )
    _check_covered(start)
    _check_covered(end)
    overrides = await repository.list_overrides(session)
    calendar = _snapshot(settings, overrides)
    by_day = {override.day: override for override in overrides}
    days = []
    for day in _days(start, end):
        is_business_day = calendar.is_business_day(day)
        days.append(
            DayInfo(
                day=day,
                is_business_day=is_business_day,
                is_weekend=day.weekday() >= SATURDAY,
                holiday_name=calendar.public_holiday(day),
                override=by_day.get(day),
                closes_at=calendar.close_of(day) if is_business_day else None,
            )
        )
    return days
