"""Working calendars from sla.yaml and business-time arithmetic over them. Pure.

A calendar is a time zone, weekly working spans per weekday (several a day for a lunch break),
public holidays (from the `holidays` package by country and subdivision, plus extra dates) and
extra working days (the Saturdays a country moves a working day to: the package's own
`weekend_workdays`, plus dates from sla.yaml; they take the hours of a normal Monday).

Business time is measured in real elapsed seconds inside working spans: a span of local wall
time 09:00-18:00 on a day the clocks go back is still nine hours, and one that covers the night
of a change is an hour longer or shorter. Each local day's working seconds are summed once per
year into a table with prefix sums, so adding a year of business time costs two binary searches
and a walk through two days, not a walk through every day between.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_package

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Span = tuple[time, time]  # [start, end) in local wall time; end 24:00 is time.max
_US = timedelta(microseconds=1)
# A calendar without a single working minute in this many years is a configuration error.
_MAX_EMPTY_YEARS = 5


class NoWorkingTimeError(ValueError):
    """The calendar has no working time to put a deadline in."""


def _parse_span(text: str) -> Span:
    start, _, end = text.partition("-")
    h1, m1 = map(int, start.split(":"))
    h2, m2 = map(int, end.split(":"))
    return time(h1, m1) if h1 < 24 else time.max, time(h2, m2) if h2 < 24 else time.max


@dataclass(frozen=True)
class _Year:
    """Working microseconds of every local day of one year, and their prefix sums."""

    first: date
    totals: tuple[int, ...]
    prefix: tuple[int, ...]        # prefix[i] = sum(totals[:i]); len(totals) + 1 entries

    @property
    def total(self) -> int:
        return self.prefix[-1]


@dataclass(frozen=True)
class WorkCalendar:
    name: str
    zone: ZoneInfo
    always: bool = False
    week: tuple[tuple[Span, ...], ...] = ((),) * 7       # Monday first
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    _cache: dict[int, tuple[frozenset[date], frozenset[date]]] = field(
        default_factory=dict, compare=False, repr=False)
    _years: dict[int, _Year] = field(default_factory=dict, compare=False, repr=False)

    # -- which local times are working ----------------------------------------------------
    def holidays_of(self, year: int) -> frozenset[date]:
        return self._days_of(year)[0]

    def workdays_of(self, year: int) -> frozenset[date]:
        """Weekend days that are working days this year (moved working days)."""
        return self._days_of(year)[1]

    def _days_of(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        """(days off, weekend working days) of a year: the country's and our own."""
        days = self._cache.get(year)
        if days is None:
            off, work = _public_holidays(self.country, self.subdivision, year)
            days = (off | {d for d in self.extra_holidays if d.year == year},
                    work | {d for d in self.working_days if d.year == year})
            self._cache[year] = days
        return days

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The working spans of a local calendar day."""
        if self.always:
            return ((time(0), time.max),)
        if day in self.workdays_of(day.year):
            return self.week[0] or ((time(9), time(18)),)
        if day in self.holidays_of(day.year):
            return ()
        return self.week[day.weekday()]

    def instants_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working spans of a local day as UTC instants [start, end)."""
        out = []
        for start, end in self.spans_on(day):
            a = _instant(day, start, self.zone)
            b = _instant(day + timedelta(days=1), time(0), self.zone) if end == time.max \
                else _instant(day, end, self.zone)
            if b > a:
                out.append((a, b))
        return tuple(out)

    def is_working(self, instant: datetime) -> bool:
        if self.always:
            return True
        local = instant.astimezone(self.zone)
        now = local.time().replace(tzinfo=None)
        # end time.max stands for 24:00: the day's last microsecond is still working
        return any(start <= now and (now < end or end == time.max)
                   for start, end in self.spans_on(local.date()))

    # -- business-time arithmetic ---------------------------------------------------------
    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant `duration` of working time after `start` (UTC). Zero from outside
        working hours is the next start of work. A result may be the closing instant of a
        span (a deadline "by 18:00"), never inside non-working time."""
        if duration < timedelta(0):
            raise ValueError("a business duration is not negative")
        start = start.astimezone(timezone.utc)
        if self.always:
            return start + duration
        remaining = duration // _US
        day = start.astimezone(self.zone).date()
        for a, b in self.instants_on(day):
            if b <= start:
                continue
            a = max(a, start)
            length = (b - a) // _US
            if remaining <= length:
                return a + remaining * _US
            remaining -= length
        day += timedelta(days=1)
        empty_years = 0
        while True:
            table = self._year(day.year)
            i = (day - table.first).days
            base = table.prefix[i]
            # The first day on which the working time since `day` reaches `remaining` (for
            # zero: the first day with any working time at all).
            k = (bisect_left(table.prefix, base + remaining, lo=i + 1) if remaining
                 else bisect_right(table.prefix, base, lo=i + 1))
            if k >= len(table.prefix):
                remaining -= table.total - base
                empty_years = empty_years + 1 if table.total == 0 else 0
                if empty_years >= _MAX_EMPTY_YEARS:
                    raise NoWorkingTimeError(f"calendar {self.name!r} has no working hours")
                day = date(day.year + 1, 1, 1)
                continue
            remaining -= table.prefix[k - 1] - base
            for a, b in self.instants_on(table.first + timedelta(days=k - 1)):
                length = (b - a) // _US
                if remaining <= length:
                    return a + remaining * _US
                remaining -= length
            raise AssertionError("year table and spans disagree")  # pragma: no cover

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time in [start, end); zero when end is not after start."""
        if end <= start:
            return timedelta(0)
        if self.always:
            return end - start
        first = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        if first == last:
            return self._overlap(first, start, end)
        inner = self._days_total(first + timedelta(days=1), last)
        return (self._overlap(first, start, end) + inner * _US
                + self._overlap(last, start, end))

    def next_working(self, instant: datetime) -> datetime:
        """`instant` itself when it is working time, else the next start of work."""
        return self.add(instant, timedelta(0))

    def typical_day(self) -> timedelta:
        """Working time of a usual working day (what `1d` of business time means)."""
        if self.always:
            return timedelta(days=1)
        lengths = sorted(sum((_wall_length(s, e) for s, e in spans), timedelta(0))
                         for spans in self.week if spans)
        return lengths[len(lengths) // 2] if lengths else timedelta(0)

    def typical_week(self) -> timedelta:
        """Working time of a usual week (what `1w` of business time means)."""
        if self.always:
            return timedelta(weeks=1)
        return sum((_wall_length(s, e) for spans in self.week for s, e in spans), timedelta(0))

    def _overlap(self, day: date, start: datetime, end: datetime) -> timedelta:
        total = timedelta(0)
        for a, b in self.instants_on(day):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += hi - lo
        return total

    def _days_total(self, first: date, stop: date) -> int:
        """Working microseconds of the local days [first, stop)."""
        total = 0
        day = first
        while day < stop:
            table = self._year(day.year)
            i = (day - table.first).days
            j = (stop - table.first).days if stop.year == day.year else len(table.totals)
            total += table.prefix[j] - table.prefix[i]
            day = date(day.year + 1, 1, 1)
        return total

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            first = date(year, 1, 1)
            days = (date(year + 1, 1, 1) - first).days
            totals = tuple(sum((b - a) // _US for a, b in self.instants_on(first + timedelta(n)))
                           for n in range(days))
            prefix = [0]
            for t in totals:
                prefix.append(prefix[-1] + t)
            table = _Year(first, totals, tuple(prefix))
            self._years[year] = table
        return table


def _wall_length(start: time, end: time) -> timedelta:
    def since_midnight(t: time) -> timedelta:
        return timedelta(days=1) if t == time.max else timedelta(hours=t.hour, minutes=t.minute)
    return since_midnight(end) - since_midnight(start)


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """Local wall time on a day as a UTC instant. A time the clocks skip (spring forward) is
    read with the offset before the change, as zoneinfo does (fold=0)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(timezone.utc)


@lru_cache(maxsize=256)
def _public_holidays(country: str | None, subdivision: str | None,
                     year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days off, weekend days that are working days) of a country in a year."""
    if not country:
        return frozenset(), frozenset()
    found = holidays_package.country_holidays(country, subdiv=subdivision, years=year)
    workdays = frozenset(d for d in getattr(found, "weekend_workdays", ()) if d.year == year)
    return frozenset(found), workdays


def calendar_from_config(name: str, spec: dict[str, Any]) -> WorkCalendar:
    """One entry of sla.yaml's `calendars` (already validated by its schema)."""
    zone = ZoneInfo(spec.get("timezone", "UTC"))
    hours = spec.get("hours", "always")
    if hours == "always":
        return WorkCalendar(name, zone, always=True)
    week = tuple(tuple(_parse_span(s) for s in hours.get(day, ())) for day in _DAYS)
    h = spec.get("holidays", {}) or {}
    return WorkCalendar(
        name, zone, week=week, country=h.get("country"), subdivision=h.get("subdivision"),
        extra_holidays=frozenset(date.fromisoformat(str(d)) for d in h.get("extra", [])),
        working_days=frozenset(date.fromisoformat(str(d)) for d in h.get("working_days", [])))


def calendars_from_sla(sla: dict[str, Any]) -> dict[str, WorkCalendar]:
    return {name: calendar_from_config(name, spec)
            for name, spec in (sla.get("calendars") or {}).items()}


def default_calendar_name(sla: dict[str, Any]) -> str | None:
    """The calendar of the default policy (what `business_hours` means without a name)."""
    policies = sla.get("policies") or {}
    name = sla.get("default_policy") or next(iter(policies), None)
    policy = policies.get(name) if name else None
    return policy.get("calendar") if policy else None
