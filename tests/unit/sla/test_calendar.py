"""Business-time arithmetic over working calendars: hand-checked examples and properties."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from maildesk.sla.calendar import WorkCalendar, calendar_from_config

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")

MOSCOW = calendar_from_config("moscow", {
    "timezone": "Europe/Moscow",
    "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "RU"}})
# Lunch break, a short Friday, Saturday mornings, a company day off and an extra working day.
BERLIN_SHOP = calendar_from_config("berlin", {
    "timezone": "Europe/Berlin",
    "hours": {"mon": ["08:00-12:00", "13:00-17:00"], "tue": ["08:00-12:00", "13:00-17:00"],
              "wed": ["08:00-12:00", "13:00-17:00"], "thu": ["08:00-12:00", "13:00-17:00"],
              "fri": ["08:00-14:00"], "sat": ["10:00-13:00"]},
    "holidays": {"country": "DE", "subdivision": "BE", "extra": ["2026-10-26"],
                 "working_days": ["2026-11-01"]}})
# A night shift across midnight and the DST change (Berlin: 2026-03-29 02:00 -> 03:00,
# 2026-10-25 03:00 -> 02:00).
NIGHTS = calendar_from_config("nights", {
    "timezone": "Europe/Berlin",
    "hours": {d: ["00:00-06:00", "22:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri",
                                                          "sat", "sun")}})
ALWAYS = calendar_from_config("always", {"timezone": "Europe/Moscow", "hours": "always"})
CALENDARS = [MOSCOW, BERLIN_SHOP, NIGHTS]


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)


def local(cal: WorkCalendar, instant: datetime) -> str:
    return instant.astimezone(cal.zone).strftime("%Y-%m-%d %a %H:%M")


# -- hand-checked -------------------------------------------------------------------------------
@pytest.mark.parametrize("start, hours, due", [
    # Friday 17:55 + 8 business hours: 5 minutes on Friday, 7:55 on Monday.
    (msk(2026, 11, 27, 17, 55), 8, "2026-11-30 Mon 16:55"),
    # Saturday: work starts on Monday at 9.
    (msk(2026, 11, 28, 12, 0), 1, "2026-11-30 Mon 10:00"),
    # New Year's Eve 2026 is a day off, then 1-8 January, then a weekend: Monday 11 January.
    (msk(2026, 12, 30, 17, 55), 1, "2027-01-11 Mon 09:55"),
    (msk(2026, 12, 31, 10, 0), 8, "2027-01-11 Mon 17:00"),
    # 9 hours from the opening is the close of the same day, not the next morning.
    (msk(2026, 12, 1, 9, 0), 9, "2026-12-01 Tue 18:00"),
    # Russia moved 20 February 2027 (a Saturday) to a working day, for 22 February.
    (msk(2027, 2, 19, 17, 0), 2, "2027-02-20 Sat 10:00"),
    (msk(2027, 2, 20, 17, 0), 2, "2027-02-24 Wed 10:00"),   # 22 off, 23 a holiday
])
def test_moscow_examples(start, hours, due):
    assert local(MOSCOW, MOSCOW.add(start, timedelta(hours=hours))) == due


def test_zero_outside_hours_is_the_next_start_of_work():
    assert local(MOSCOW, MOSCOW.next_working(msk(2026, 12, 31, 12, 0))) == "2027-01-11 Mon 09:00"
    inside = msk(2026, 12, 1, 12, 0)
    assert MOSCOW.next_working(inside) == inside


def test_breaks_short_days_saturdays_and_extra_dates():
    mon = datetime(2026, 10, 19, 11, 30, tzinfo=BERLIN)
    assert local(BERLIN_SHOP, BERLIN_SHOP.add(mon, timedelta(hours=1))) == "2026-10-19 Mon 13:30"
    fri = datetime(2026, 10, 23, 13, 0, tzinfo=BERLIN)
    # 1 h Friday, 3 h Saturday, Sunday off, Monday 26 October is a company day off.
    assert local(BERLIN_SHOP, BERLIN_SHOP.add(fri, timedelta(hours=5))) == "2026-10-27 Tue 09:00"
    # Sunday 1 November is listed as a working day: it works Monday's hours.
    sat = datetime(2026, 10, 31, 12, 0, tzinfo=BERLIN)
    assert local(BERLIN_SHOP, BERLIN_SHOP.add(sat, timedelta(hours=2))) == "2026-11-01 Sun 09:00"


def test_a_night_shift_over_the_dst_changes_counts_real_hours():
    # 28-29 March: 22:00-24:00 then 00:00-06:00 local, but 02:00-03:00 does not exist.
    start = datetime(2026, 3, 28, 22, 0, tzinfo=BERLIN)
    end = datetime(2026, 3, 29, 6, 0, tzinfo=BERLIN)
    assert NIGHTS.between(start, end) == timedelta(hours=7)
    assert local(NIGHTS, NIGHTS.add(start, timedelta(hours=7))) == "2026-03-29 Sun 06:00"
    # 24-25 October: 02:00-03:00 happens twice.
    start = datetime(2026, 10, 24, 22, 0, tzinfo=BERLIN)
    end = datetime(2026, 10, 25, 6, 0, tzinfo=BERLIN)
    assert NIGHTS.between(start, end) == timedelta(hours=9)


def test_always_is_elapsed_time():
    start = msk(2026, 12, 31, 17, 55)
    assert ALWAYS.add(start, timedelta(hours=8)) == start + timedelta(hours=8)
    assert ALWAYS.between(start, start + timedelta(days=3)) == timedelta(days=3)


def test_a_year_of_business_time():
    start = msk(2026, 1, 12, 9, 0)
    end = MOSCOW.add(start, timedelta(hours=9 * 200))
    assert MOSCOW.between(start, end) == timedelta(hours=9 * 200)
    assert end.astimezone(MSK).time() == time(18, 0)


# -- properties ---------------------------------------------------------------------------------
instants = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2028, 2, 1),
                        timezones=st.just(timezone.utc))
durations = st.one_of(
    st.integers(0, 600).map(lambda m: timedelta(minutes=m)),
    st.integers(0, 4000).map(lambda h: timedelta(hours=h)),
    st.integers(0, 10**9).map(lambda us: timedelta(microseconds=us)))
BY_NAME = {c.name: c for c in CALENDARS}
# Names, not the calendars: hypothesis would print their year tables in a failure report.
calendars = st.sampled_from(sorted(BY_NAME))


def _in_working_time(cal: WorkCalendar, instant: datetime) -> bool:
    """Working, or the closing instant of a span (a deadline "by 18:00")."""
    if cal.is_working(instant):
        return True
    day = instant.astimezone(cal.zone).date()
    return any(b == instant for d in (day, day - timedelta(days=1)) for _, b in cal.instants_on(d))


@settings(max_examples=400, deadline=None)
@given(calendars, instants, durations)
def test_adding_then_measuring_gives_the_duration_back(name, start, duration):
    cal = BY_NAME[name]
    end = cal.add(start, duration)
    assert cal.between(start, end) == duration


@settings(max_examples=400, deadline=None)
@given(calendars, instants, durations)
def test_a_result_never_falls_in_non_working_time(name, start, duration):
    cal = BY_NAME[name]
    end = cal.add(start, duration)
    assert end >= start
    assert _in_working_time(cal, end), local(cal, end)
    if duration > timedelta(0):
        # ...and there was working time right before it.
        assert cal.is_working(end - timedelta(microseconds=1))


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations, durations)
def test_monotone_and_additive(name, start, a, b):
    cal = BY_NAME[name]
    first, second = sorted((a, b))
    assert cal.add(start, first) <= cal.add(start, second)
    assert cal.add(cal.add(start, a), b) == cal.add(start, a + b) or b == timedelta(0) \
        or a == timedelta(0)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, instants)
def test_measuring_is_monotone_and_bounded_by_elapsed_time(name, a, b):
    cal = BY_NAME[name]
    lo, hi = sorted((a, b))
    assert timedelta(0) <= cal.between(lo, hi) <= hi - lo
    assert cal.between(hi, lo) == timedelta(0)
    middle = lo + (hi - lo) / 2
    assert cal.between(lo, middle) + cal.between(middle, hi) == cal.between(lo, hi)


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
       st.integers(1, 40))
def test_russian_days_off_are_never_working(day, hours):
    """Whatever the start, no deadline lands on a Russian public holiday or weekend that is
    not a moved working day."""
    start = datetime.combine(day, time(12), tzinfo=MSK)
    end = MOSCOW.add(start, timedelta(hours=hours)).astimezone(MSK)
    closing = end - timedelta(microseconds=1)
    d = closing.date()
    assert d not in MOSCOW.holidays_of(d.year) or d in MOSCOW.workdays_of(d.year)
    assert d.weekday() < 5 or d in MOSCOW.workdays_of(d.year)
