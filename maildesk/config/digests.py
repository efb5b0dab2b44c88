"""The `digests:` and `reports:` sections of maildesk.yaml: the morning digest of each line
mailbox and the KPI reports sent by mail on a schedule.

Like the other section loaders, each adds what is wrong to the caller's `problems` (with the
file, line and key) and still returns a value. What the schema cannot say is checked here: the
lines and calendars named must exist in lines.yaml and sla.yaml, `on` belongs to weekly
reports only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any

from maildesk.config.errors import ConfigProblem
from maildesk.config.load import KeyPath, LoadedYaml
from maildesk.config.settings import Digests, Line, ReportMailing

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY = ("day", "week", "month")


def parse_time_of_day(value: Any) -> time:
    """"09:00" (or 9:00) as a time. YAML 1.1 reads an unquoted 8:00 as the number 480
    (base 60), so a whole number of minutes is read back as the time it was written as."""
    if isinstance(value, int) and not isinstance(value, bool):
        hours, minutes = divmod(value, 60)
    else:
        hours, _, minutes_text = str(value).strip().partition(":")
        hours, minutes = int(hours), int(minutes_text)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"{value!r} is not a time of day (HH:MM, 00:00-23:59)")
    return time(hours, minutes)


def _time(main: LoadedYaml, at: KeyPath, value: Any, default: time,
          problems: list[ConfigProblem]) -> time:
    if value is None:
        return default
    try:
        return parse_time_of_day(value)
    except ValueError:
        problems.append(main.problem(at, f"{value!r} is not a time of day: write it quoted, "
                                     "\"HH:MM\" (00:00-23:59)"))
        return default


def digests_section(main: LoadedYaml, lines: tuple[Line, ...],
                    problems: list[ConfigProblem]) -> Digests:
    """`digests:`; without the section no digest is sent (an upgrade sends no new mail), with
    it `enabled` defaults to true. `lines` must name lines of lines.yaml."""
    d = main.data.get("digests")
    if d is None:
        return Digests()
    named = d.get("lines")
    known = {line.id for line in lines}
    if named is not None and known:   # no lines: lines.yaml has its own problems
        for i, line_id in enumerate(named):
            if line_id not in known:
                problems.append(main.problem(("digests", "lines", i), f"unknown line "
                                             f"{line_id!r} (lines.yaml has: "
                                             f"{', '.join(sorted(known))})"))
    return Digests(enabled=d.get("enabled", True),
                   at=_time(main, ("digests", "at"), d.get("at"), Digests.at, problems),
                   waiting_days=d.get("waiting_days", 3),
                   lines=tuple(dict.fromkeys(named)) if named is not None else None)


def reports_section(main: LoadedYaml, calendars: Mapping[str, Any],
                    policy_calendars: Mapping[str, str],
                    problems: list[ConfigProblem]) -> tuple[ReportMailing, ...]:
    """`reports:`, one entry per mailing. `calendar` names a calendar of sla.yaml (a policy's
    name is read as its calendar); `policy_calendars` maps each policy to its calendar."""
    out = []
    for i, r in enumerate(main.data.get("reports") or []):
        at: KeyPath = ("reports", i)
        every = r.get("every", "week")
        if "on" in r and every != "week":
            problems.append(main.problem((*at, "on"), f"`on` is the weekday of a weekly "
                                         f"report; a report every {every} has none"))
        out.append(ReportMailing(
            to=tuple(dict.fromkeys(a.lower() for a in r["to"])), every=every,
            on=_weekday(r.get("on", "monday")),
            at=_time(main, (*at, "at"), r.get("at"), ReportMailing.at, problems),
            by=r.get("by"),
            calendar=_calendar(main, (*at, "calendar"), r.get("calendar"), calendars,
                               policy_calendars, problems)))
    return tuple(out)


def _weekday(name: str) -> int:
    """Monday 0 ... Sunday 6; the schema allows the English names and their first three
    letters, in lower case."""
    name = name.lower()
    return next(i for i, day in enumerate(WEEKDAYS) if day == name or day[:3] == name)


def _calendar(main: LoadedYaml, at: KeyPath, name: str | None, calendars: Mapping[str, Any],
              policy_calendars: Mapping[str, str], problems: list[ConfigProblem]) -> str | None:
    if name is None or not calendars:   # no calendars: sla.yaml has its own problems
        return name
    if name in calendars:
        return name
    if name in policy_calendars:
        return policy_calendars[name]
    problems.append(main.problem(at, f"unknown calendar {name!r} (sla.yaml has calendars: "
                                 f"{', '.join(sorted(calendars))})"))
    return None
