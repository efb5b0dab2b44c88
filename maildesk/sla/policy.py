"""SLA policies from sla.yaml and the deadlines they give a ticket. Pure.

A policy names a calendar and, per priority, targets for the first response, the next
response and the resolution. A target is counted in business time (the calendar's working
hours, skipping holidays) or in calendar time (every hour counts):

    P1: {first_response: 1h, resolution: {calendar: 1d}}

A bare duration is business time when the policy's calendar has working hours, unless the
policy says `business_time: false`; `{business: 8h}` and `{calendar: 2d}` say it per target.
In business time `d` is one usual working day of the calendar (9h for 09:00-18:00) and `w` one
working week; in calendar time `d` is 24 hours and `w` 7 days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.durations import parse_duration, split_duration
from maildesk.sla.calendar import WorkCalendar

DEFAULT_PRIORITY = "P3"
KINDS = ("first_response", "next_response", "resolution")


@dataclass(frozen=True)
class Target:
    duration: timedelta
    business: bool

    def due(self, calendar: WorkCalendar, start: datetime) -> datetime:
        return calendar.add(start, self.duration) if self.business else start + self.duration


@dataclass(frozen=True)
class Policy:
    name: str
    calendar: WorkCalendar
    targets: Mapping[str, Mapping[str, Target]]     # priority -> kind -> target
    warn_at: float | None = 0.8     # the line is warned when this share of a target is gone


@dataclass(frozen=True)
class Deadlines:
    first_response: datetime | None
    resolution: datetime | None
    timezone: ZoneInfo            # the calendar's zone: deadlines are shown to the client in it
    policy: str | None
    # When the mail came outside working hours: when work resumes (business-time policies).
    resumes_at: datetime | None = None


_UTC_ALWAYS = WorkCalendar("always", ZoneInfo("UTC"), always=True)


@dataclass(frozen=True)
class SlaPolicies:
    policies: Mapping[str, Policy] = field(default_factory=dict)
    default: str | None = None

    def get(self, name: str | None) -> Policy | None:
        """The named policy, else the default one, else the first; None without policies."""
        found = self.policies.get(name or "") or self.policies.get(self.default or "")
        return found or next(iter(self.policies.values()), None)

    def zone(self, name: str | None) -> ZoneInfo:
        policy = self.get(name)
        return policy.calendar.zone if policy else ZoneInfo("UTC")

    def deadlines(self, *, policy: str | None, priority: str | None,
                  start: datetime) -> Deadlines:
        """First-response and resolution deadlines of a ticket that arrived at `start`."""
        found = self.get(policy)
        if found is None:
            return Deadlines(None, None, ZoneInfo("UTC"), None)
        targets = found.targets.get(priority or DEFAULT_PRIORITY, {})
        calendar = found.calendar

        def due(kind: str) -> datetime | None:
            target = targets.get(kind)
            return target.due(calendar, start) if target else None

        business = any(t.business for t in targets.values())
        resumes = (calendar.next_working(start)
                   if business and not calendar.is_working(start) else None)
        return Deadlines(due("first_response"), due("resolution"), calendar.zone, found.name,
                         resumes_at=resumes)


def business_duration(text: str, calendar: WorkCalendar) -> timedelta:
    """A duration of business time: `d` and `w` are the calendar's working day and week."""
    value, unit = split_duration(text)
    if unit == "d":
        return calendar.typical_day() * value
    if unit == "w":
        return calendar.typical_week() * value
    return parse_duration(text)


def _target(spec: Any, calendar: WorkCalendar, business_default: bool) -> Target:
    if isinstance(spec, dict):
        ((kind, text),) = spec.items()
        business = kind == "business"
    else:
        text, business = str(spec), business_default
    if business and not calendar.always:
        return Target(business_duration(text, calendar), True)
    return Target(parse_duration(text), False)


def policies_from_sla(sla: dict[str, Any], calendars: Mapping[str, WorkCalendar]) -> SlaPolicies:
    """sla.yaml's policies (already validated: every calendar named exists)."""
    out = {}
    for name, spec in (sla.get("policies") or {}).items():
        calendar = calendars.get(spec.get("calendar", ""), _UTC_ALWAYS)
        business_default = spec.get("business_time", not calendar.always)
        targets = {priority: {kind: _target(value, calendar, business_default)
                              for kind, value in (per or {}).items()}
                   for priority, per in (spec.get("targets") or {}).items()}
        out[name] = Policy(name, calendar, targets,
                           warn_at=_share(spec.get("warn_at", sla.get("warn_at", 0.8))))
    return SlaPolicies(out, sla.get("default_policy"))


def _share(value: Any) -> float | None:
    """`warn_at: 80%` or `0.8`; `none` (or 0) for no warnings."""
    if value in (None, "none", 0, False):
        return None
    if isinstance(value, str) and value.strip().endswith("%"):
        return float(value.strip()[:-1]) / 100
    return float(value)
