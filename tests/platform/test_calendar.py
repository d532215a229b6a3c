"""The business-day calendar of Kazakhstan: statute, weekends, the operator's overrides, deadlines."""

import contextlib
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from dfa.platform.audit import service as audit
from dfa.platform.calendar import errors
from dfa.platform.calendar import service as calendar
from dfa.platform.calendar.service import BusinessCalendar
from tests.factories import today_in_almaty

ALMATY = ZoneInfo("Asia/Almaty")
MONDAY_2026_04_13 = date(2026, 4, 13)  # an ordinary week: no holiday from 13 to 19 April 2026


@contextlib.asynccontextmanager
async def refused(session, error_type: type[Exception]):
    """Expect `error_type` from the block; the block's writes are rolled back to a savepoint."""
    with pytest.raises(error_type):
        async with session.begin_nested():
            yield


def snapshot(overrides: dict[date, str] | None = None, *, closes_at: time = time(18)) -> BusinessCalendar:
    return BusinessCalendar(timezone="Asia/Almaty", closes_at=closes_at, overrides=overrides)


def almaty(*args: int) -> datetime:
    return datetime(*args, tzinfo=ALMATY)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def future_day(*, business: bool, weekday: int | None = None) -> date:
    """A day well ahead of today with the given status under the statute alone."""
    plain = snapshot()
    day = today_in_almaty() + timedelta(days=30)
    while plain.is_business_day(day) != business or (weekday is not None and day.weekday() != weekday):
        day += timedelta(days=1)
    return day


# --- the statute and the weekend -------------------------------------------------------------------


async def test_saturdays_and_sundays_are_not_business_days_and_ordinary_weekdays_are(session, settings):
    business = await calendar.load_calendar(session, settings=settings)

    week = [MONDAY_2026_04_13 + timedelta(days=i) for i in range(7)]

    assert [business.is_business_day(day) for day in week] == [True] * 5 + [False] * 2


@pytest.mark.parametrize(
    ("day", "holiday"),
    [
        (date(2026, 1, 1), "New Year's Day"),
        (date(2026, 1, 2), "New Year's Day"),
        (date(2026, 1, 7), "Orthodox Christmas"),
        (date(2026, 3, 8), "International Women's Day"),
        (date(2026, 3, 9), "International Women's Day (observed)"),
        (date(2026, 3, 21), "Nowruz Holiday"),
        (date(2026, 3, 22), "Nowruz Holiday"),
        (date(2026, 3, 23), "Nowruz Holiday"),
        (date(2026, 3, 24), "Nowruz Holiday (observed)"),
        (date(2026, 3, 25), "Nowruz Holiday (observed)"),
        (date(2026, 5, 1), "Kazakhstan's People Solidarity Holiday"),
        (date(2026, 12, 16), "Independence Day"),
    ],
)
async def test_public_holidays_of_2026_are_not_business_days(session, settings, day, holiday):
    business = await calendar.load_calendar(session, settings=settings)

    assert not business.is_business_day(day)
    assert business.public_holiday(day) == holiday


def test_a_holiday_falling_on_a_weekend_frees_the_next_working_day_but_christmas_does_not_move():
    business = snapshot()

    # Women's Day 2026 is a Sunday: Monday is the day off. Nauryz 21-23 March 2026 covers a weekend:
    # Tuesday and Wednesday are days off too, and Thursday is the first business day after it.
    assert [business.is_business_day(date(2026, 3, d)) for d in (9, 10)] == [False, True]
    assert [business.is_business_day(date(2026, 3, d)) for d in range(23, 27)] == [False, False, False, True]
    # Orthodox Christmas on Saturday 7 January 2023 gives no day off on Monday the 9th.
    assert business.is_business_day(date(2023, 1, 9))


def test_the_government_day_transfers_the_holidays_package_knows_need_no_override():
    business = snapshot()

    # 2025: the day off moved from Sunday 5 January to Friday 3 January.
    assert not business.is_business_day(date(2025, 1, 3))
    assert business.is_business_day(date(2025, 1, 5))
    # 2023: Saturday 1 July was worked for Friday 7 July off.
    assert business.is_business_day(date(2023, 7, 1))
    assert not business.is_business_day(date(2023, 7, 7))


def test_overrides_beat_the_statute_in_both_directions():
    """Kurban Ait announced a day earlier than the package estimates: the operator swaps the days."""
    estimated, announced = date(2026, 5, 27), date(2026, 5, 26)
    assert snapshot().public_holiday(estimated) is not None

    business = snapshot({estimated: "working", announced: "day_off"})

    assert business.is_business_day(estimated)
    assert not business.is_business_day(announced)
    assert business.add_business_days(date(2026, 5, 25), 1) == estimated


# --- the operator's overrides in the database -------------------------------------------------------


async def test_a_saturday_made_a_working_day_is_a_business_day(session, settings):
    saturday = future_day(business=False, weekday=5)

    override = await calendar.set_day(
        session, settings=settings, day=saturday, kind="working", reason="Decree No. 1: day transfer", actor="admin"
    )
    business = await calendar.load_calendar(session, settings=settings)

    assert (override.day, override.kind, override.changed_by) == (saturday, "working", "admin")
    assert override.changed_at is not None
    assert business.is_business_day(saturday)
    assert business.next_business_day(saturday - timedelta(days=1)) == saturday
    assert business.override(saturday) == "working"


async def test_a_weekday_made_a_day_off_is_not_a_business_day(session, settings):
    weekday = future_day(business=True)

    await calendar.set_day(
        session, settings=settings, day=weekday, kind="day_off", reason="Decree No. 2: extra day off", actor="admin"
    )
    business = await calendar.load_calendar(session, settings=settings)

    assert not business.is_business_day(weekday)
    assert business.next_business_day(weekday - timedelta(days=1)) > weekday


async def test_setting_a_day_again_replaces_its_override_and_clearing_it_restores_the_statute(session, settings):
    weekday = future_day(business=True)
    await calendar.set_day(session, settings=settings, day=weekday, kind="day_off", reason="first", actor="alice")

    replaced = await calendar.set_day(
        session, settings=settings, day=weekday, kind="working", reason="  second  ", actor="bob"
    )
    assert (replaced.kind, replaced.reason, replaced.changed_by) == ("working", "second", "bob")
    assert (await calendar.load_calendar(session, settings=settings)).override(weekday) == "working"

    await calendar.clear_day(session, settings=settings, day=weekday, actor="bob")
    business = await calendar.load_calendar(session, settings=settings)

    assert business.override(weekday) is None
    assert business.is_business_day(weekday)


async def test_setting_and_clearing_a_day_are_recorded_as_configuration_changes(session, settings):
    saturday = future_day(business=False, weekday=5)

    await calendar.set_day(session, settings=settings, day=saturday, kind="working", reason="transfer", actor="admin")
    await calendar.set_day(session, settings=settings, day=saturday, kind="day_off", reason="revoked", actor="root")
    await calendar.clear_day(session, settings=settings, day=saturday, actor="admin")

    events = await audit.search(session, kind="calendar.", subject=saturday.isoformat(), limit=10)
    cleared, second, first = events
    assert [e.kind for e in events] == ["calendar.day_cleared", "calendar.day_set", "calendar.day_set"]
    assert (first.actor, first.details["kind"], first.details["reason"], first.details["previous"]) == (
        "admin", "working", "transfer", None
    )
    assert (second.actor, second.details["previous"]["kind"], second.details["previous"]["changed_by"]) == (
        "root", "working", "admin"
    )
    assert (cleared.actor, cleared.details["previous"]["kind"], cleared.details["previous"]["reason"]) == (
        "admin", "day_off", "revoked"
    )


async def test_past_days_cannot_be_changed_and_a_refusal_records_nothing(session, settings):
    yesterday = today_in_almaty() - timedelta(days=1)

    async with refused(session, errors.PastDayCannotChange):
        await calendar.set_day(session, settings=settings, day=yesterday, kind="day_off", reason="late", actor="admin")
    async with refused(session, errors.PastDayCannotChange):
        await calendar.clear_day(session, settings=settings, day=yesterday, actor="admin")

    assert (await calendar.load_calendar(session, settings=settings)).override(yesterday) is None
    assert await audit.search(session, kind="calendar.", subject=yesterday.isoformat(), limit=10) == []


async def test_today_can_still_be_declared_a_day_off(session, settings):
    today = today_in_almaty()

    await calendar.set_day(session, settings=settings, day=today, kind="day_off", reason="mourning", actor="admin")

    assert not (await calendar.load_calendar(session, settings=settings)).is_business_day(today)


async def test_clearing_a_day_without_an_override_is_refused(session, settings):
    async with refused(session, errors.OverrideNotFound):
        await calendar.clear_day(session, settings=settings, day=future_day(business=True), actor="admin")


@pytest.mark.parametrize(
    ("kind", "reason", "error"),
    [
        ("holiday", "a reason", errors.UnknownOverrideKind),
        ("working", "   ", errors.InvalidOverrideReason),
        ("working", "x" * 501, errors.InvalidOverrideReason),
    ],
)
async def test_an_override_needs_a_known_kind_and_a_reason(session, settings, kind, reason, error):
    day = future_day(business=False, weekday=6)

    async with refused(session, error):
        await calendar.set_day(session, settings=settings, day=day, kind=kind, reason=reason, actor="admin")

    assert (await calendar.load_calendar(session, settings=settings)).override(day) is None


async def test_listing_days_shows_status_holidays_overrides_and_closes(session, settings):
    await calendar.set_day(
        session, settings=settings, day=date(2099, 3, 28), kind="working", reason="transfer", actor="admin"
    )

    days = await calendar.list_days(session, settings=settings, start=date(2099, 3, 20), end=date(2099, 3, 29))

    assert [d.day for d in days] == [date(2099, 3, 20) + timedelta(days=i) for i in range(10)]
    by_day = {d.day: d for d in days}
    friday, nauryz, saturday = by_day[date(2099, 3, 20)], by_day[date(2099, 3, 23)], by_day[date(2099, 3, 28)]
    assert (friday.is_business_day, friday.is_public_holiday, friday.closes_at) == (True, False, utc(2099, 3, 20, 13))
    assert (nauryz.is_business_day, nauryz.holiday_name, nauryz.closes_at) == (False, "Nowruz Holiday", None)
    assert (saturday.is_business_day, saturday.is_weekend, saturday.override.kind) == (True, True, "working")
    assert by_day[date(2099, 3, 29)].override is None


async def test_a_whole_leap_year_can_be_listed_but_no_more(session, settings):
    leap_year = await calendar.list_days(session, settings=settings, start=date(2028, 1, 1), end=date(2028, 12, 31))
    assert len(leap_year) == 366

    with pytest.raises(errors.InvalidDateRange):
        await calendar.list_days(session, settings=settings, start=date(2027, 1, 1), end=date(2028, 1, 2))
    with pytest.raises(errors.InvalidDateRange):
        await calendar.list_days(session, settings=settings, start=date(2027, 1, 2), end=date(2027, 1, 1))


# --- counting business days --------------------------------------------------------------------------


def test_adding_business_days_skips_the_nauryz_holidays():
    business = snapshot()

    # Friday 20 March 2026, then the weekend and Nauryz until Wednesday the 25th.
    assert business.add_business_days(date(2026, 3, 20), 1) == date(2026, 3, 26)
    assert business.add_business_days(date(2026, 3, 19), 3) == date(2026, 3, 27)
    assert business.business_days_between(date(2026, 3, 20), date(2026, 3, 26)) == 1
    assert business.business_days_between(date(2026, 3, 26), date(2026, 3, 20)) == -1


def test_adding_business_days_rolls_a_day_off_forward_to_the_next_business_day_first():
    business = snapshot()
    monday, friday, saturday = MONDAY_2026_04_13, date(2026, 4, 17), date(2026, 4, 18)

    assert business.add_business_days(monday, 0) == monday
    assert business.add_business_days(monday, 1) == date(2026, 4, 14)
    assert business.add_business_days(friday, 1) == date(2026, 4, 20)
    assert business.add_business_days(saturday, 0) == date(2026, 4, 20)
    assert business.add_business_days(saturday, 1) == date(2026, 4, 21)
    assert business.next_business_day(friday) == date(2026, 4, 20)
    assert business.business_day_on_or_after(friday) == friday


def test_a_negative_number_of_business_days_is_refused():
    business = snapshot()

    with pytest.raises(errors.NegativeBusinessDays):
        business.add_business_days(MONDAY_2026_04_13, -1)
    with pytest.raises(errors.NegativeBusinessDays):
        business.deadline(almaty(2026, 4, 13, 10), -1)


@pytest.mark.parametrize(
    "ask",
    [
        lambda b: b.is_business_day(date(1999, 12, 31)),
        lambda b: b.is_business_day(date(2101, 1, 1)),
        lambda b: b.add_business_days(date(2100, 12, 20), 30),
        lambda b: b.next_business_day(date(2100, 12, 31)),
        lambda b: b.business_days_between(date(2026, 1, 1), date(2200, 1, 1)),
        lambda b: b.business_date_of(almaty(1999, 12, 31, 19)),
    ],
)
def test_days_outside_2000_to_2100_are_refused(ask):
    with pytest.raises(errors.DateOutsideCalendar):
        ask(snapshot())


async def test_overriding_a_day_outside_the_calendar_is_refused(session, settings):
    async with refused(session, errors.DateOutsideCalendar):
        await calendar.set_day(session, settings=settings, day=date(2101, 1, 1), kind="day_off", reason="r", actor="a")
    with pytest.raises(errors.DateOutsideCalendar):
        await calendar.list_days(session, settings=settings, start=date(1999, 12, 30), end=date(2000, 1, 2))


# --- instants, closes and deadlines ------------------------------------------------------------------


def test_the_business_day_closes_at_18_00_in_almaty_which_is_13_00_utc():
    close = snapshot().close_of(date(2026, 4, 15))

    assert close == utc(2026, 4, 15, 13)
    assert close.utcoffset() == timedelta(0)


def test_the_close_follows_the_configured_closing_time():
    assert snapshot(closes_at=time(16, 30)).close_of(date(2026, 4, 15)) == utc(2026, 4, 15, 11, 30)


def test_a_day_off_has_no_close():
    with pytest.raises(errors.NotABusinessDay):
        snapshot().close_of(date(2026, 4, 18))


@pytest.mark.parametrize(
    ("instant", "business_date"),
    [
        # Wednesday 15 April 2026, 17:30 in Almaty: before the close, registered that day.
        (utc(2026, 4, 15, 12, 30), date(2026, 4, 15)),
        (utc(2026, 4, 15, 12, 59, 59, 999_999), date(2026, 4, 15)),
        # At or after 18:00 in Almaty (13:00 UTC): the next business day.
        (utc(2026, 4, 15, 13), date(2026, 4, 16)),
        (utc(2026, 4, 15, 13, 30), date(2026, 4, 16)),
        # Friday after hours and a Sunday: Monday.
        (almaty(2026, 4, 17, 19), date(2026, 4, 20)),
        (almaty(2026, 4, 19, 10), date(2026, 4, 20)),
        # Monday 00:30 in Almaty is still Sunday in UTC, but it is Monday's business day.
        (utc(2026, 4, 19, 19, 30), date(2026, 4, 20)),
        # Before the close on Friday 20 March 2026, and on the first day of Nauryz.
        (almaty(2026, 3, 20, 9), date(2026, 3, 20)),
        (almaty(2026, 3, 21, 9), date(2026, 3, 26)),
    ],
)
def test_an_instant_belongs_to_the_business_day_of_its_receipt_or_the_next_one(instant, business_date):
    assert snapshot().business_date_of(instant) == business_date


def test_an_instant_without_a_time_zone_is_refused():
    with pytest.raises(errors.InstantWithoutTimeZone):
        snapshot().business_date_of(datetime(2026, 4, 15, 10))


def test_a_deadline_is_the_close_of_the_business_day_so_many_business_days_after_receipt():
    business = snapshot()

    # Three business days to confirm a transfer received on Monday morning: Thursday at the close.
    assert business.deadline(almaty(2026, 4, 13, 10), 3) == utc(2026, 4, 16, 13)
    # Received on Friday 20 March 2026 after hours: registered on Thursday the 26th (after Nauryz),
    # three business days later is Tuesday the 31st.
    assert business.deadline(almaty(2026, 3, 20, 18, 5), 3) == utc(2026, 3, 31, 13)
    # Zero business days: the close of the day it is registered on.
    assert business.deadline(almaty(2026, 4, 18, 12), 0) == utc(2026, 4, 20, 13)


async def test_a_deadline_moves_with_an_extra_day_off(session, settings):
    monday = future_day(business=True, weekday=0)
    received = datetime.combine(monday, time(10), tzinfo=ALMATY)
    before = (await calendar.load_calendar(session, settings=settings)).deadline(received, 1)

    await calendar.set_day(
        session, settings=settings, day=monday + timedelta(days=1), kind="day_off", reason="decree", actor="admin"
    )
    after = (await calendar.load_calendar(session, settings=settings)).deadline(received, 1)

    assert after > before
    assert after.astimezone(ALMATY).date() > monday + timedelta(days=1)


# --- properties against an independent model ---------------------------------------------------------

_PACKAGE = holidays.country_holidays("KZ", years=range(2000, 2101))


def _model_is_business_day(day: date, overrides: dict[date, str]) -> bool:
    """The holidays package's own working-day rule, with the operator's word on top."""
    if day in overrides:
        return overrides[day] == "working"
    return _PACKAGE.is_working_day(day)


def _model_add(day: date, n: int, overrides: dict[date, str]) -> date:
    while not _model_is_business_day(day, overrides):
        day += timedelta(days=1)
    for _ in range(n):
        day += timedelta(days=1)
        while not _model_is_business_day(day, overrides):
            day += timedelta(days=1)
    return day


days = st.dates(min_value=date(2000, 2, 1), max_value=date(2098, 12, 31))
counts = st.integers(min_value=0, max_value=300)
nearby_overrides = st.dictionaries(
    st.integers(min_value=-10, max_value=450), st.sampled_from(["working", "day_off"]), max_size=12
)


@hypothesis_settings(deadline=None, max_examples=200)
@given(day=days, n=counts, offsets=nearby_overrides)
def test_adding_business_days_lands_on_the_business_day_a_day_by_day_count_finds(day, n, offsets):
    overrides = {day + timedelta(days=k): kind for k, kind in offsets.items()}
    business = snapshot(overrides)

    result = business.add_business_days(day, n)

    assert business.is_business_day(result)
    assert result == _model_add(day, n, overrides)
    assert business.business_days_between(business.business_day_on_or_after(day), result) == n
    assert business.add_business_days(day, n + 1) == business.next_business_day(result) > result


@hypothesis_settings(deadline=None, max_examples=200)
@given(day=days, offsets=nearby_overrides)
def test_the_status_of_every_day_agrees_with_the_package_and_the_overrides(day, offsets):
    overrides = {day + timedelta(days=k): kind for k, kind in offsets.items()}
    business = snapshot(overrides)

    for k in range(-10, 40):
        assert business.is_business_day(day + timedelta(days=k)) == _model_is_business_day(
            day + timedelta(days=k), overrides
        )


@hypothesis_settings(deadline=None)
@given(a=days, b=days, c=days)
def test_business_days_between_counts_add_up_and_reverse(a, b, c):
    business = snapshot()

    assert business.business_days_between(a, b) == -business.business_days_between(b, a)
    assert business.business_days_between(a, b) + business.business_days_between(b, c) == (
        business.business_days_between(a, c)
    )


@hypothesis_settings(deadline=None)
@given(
    instant=st.datetimes(min_value=datetime(2000, 2, 1), max_value=datetime(2098, 12, 31), timezones=st.just(UTC)),
    offsets=nearby_overrides,
)
def test_an_instant_belongs_to_the_first_business_day_whose_close_is_after_it(instant, offsets):
    local_date = instant.astimezone(ALMATY).date()
    business = snapshot({local_date + timedelta(days=k): kind for k, kind in offsets.items()})

    belongs_to = business.business_date_of(instant)

    assert instant < business.close_of(belongs_to)
    previous = belongs_to - timedelta(days=1)
    while not business.is_business_day(previous):
        previous -= timedelta(days=1)
    assert business.close_of(previous) <= instant


def test_an_administrator_transfers_a_day_over_http_and_everyone_sees_it(users):
    """A government day transfer entered by an operator administrator changes the business days
    every role sees, and the change is a security event."""
    admin, investor, auditor = users.client("operator_admin"), users.client("investor"), users.client("auditor")
    saturday = date(2099, 6, 6)
    headers = {"Idempotency-Key": str(uuid.uuid4())}

    set_response = admin.put(f"/v1/calendar/days/{saturday}", json={"kind": "working", "reason": "decree 123"}, headers=headers)
    assert set_response.status_code == 200, set_response.text
    [day] = investor.get("/v1/calendar/days", params={"from": str(saturday), "to": str(saturday)}).json()
    assert day["is_business_day"] and day["override"]["changed_by"] == users["operator_admin"].login
    assert investor.put(f"/v1/calendar/days/{saturday}", json={"kind": "day_off", "reason": "x"}, headers={"Idempotency-Key": str(uuid.uuid4())}).status_code == 403

    assert admin.delete(f"/v1/calendar/days/{saturday}", headers={"Idempotency-Key": str(uuid.uuid4())}).status_code == 204
    [day] = investor.get("/v1/calendar/days", params={"from": str(saturday), "to": str(saturday)}).json()
    assert not day["is_business_day"] and day["override"] is None
    kinds = [e["kind"] for e in auditor.get("/v1/security-events", params={"kind": "calendar.", "subject": str(saturday)}).json()]
    assert kinds == ["calendar.day_cleared", "calendar.day_set"]
