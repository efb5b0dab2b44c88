"""Working calendars from sla.yaml: is an instant within business hours? Pure.

A calendar is a time zone, weekly working spans per weekday, public holidays (from the
`holidays` package by country and subdivision, plus extra dates) and extra working days (the
Saturdays a country moves a working day to; they take the hours of a normal Monday).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_package

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Span = tuple[time, time]  # [start, end) in local wall time; end 24:00 is time.max


def _parse_span(text: str) -> Span:
    start, _, end = text.partition("-")
    h1, m1 = map(int, start.split(":"))
    h2, m2 = map(int, end.split(":"))
    return time(h1, m1) if h1 < 24 else time.max, time(h2, m2) if h2 < 24 else time.max


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
    _cache: dict[int, frozenset[date]] = field(default_factory=dict, compare=False, repr=False)

    def holidays_of(self, year: int) -> frozenset[date]:
        days = self._cache.get(year)
        if days is None:
            days = _public_holidays(self.country, self.subdivision, year) | frozenset(
                d for d in self.extra_holidays if d.year == year)
            self._cache[year] = days
        return days

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The working spans of a local calendar day."""
        if day in self.working_days:
            return self.week[0] or ((time(9), time(18)),)
        if day in self.holidays_of(day.year):
            return ()
        return self.week[day.weekday()]

    def is_working(self, instant: datetime) -> bool:
        if self.always:
            return True
        local = instant.astimezone(self.zone)
        now = local.time().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.spans_on(local.date()))


@lru_cache(maxsize=64)
def _public_holidays(country: str | None, subdivision: str | None, year: int) -> frozenset[date]:
    if not country:
        return frozenset()
    return frozenset(holidays_package.country_holidays(country, subdiv=subdivision, years=year))


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
