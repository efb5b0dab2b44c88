"""A ticket's deadlines and the timers they need, from the ticket's state. Pure.

The SLA clock of a ticket runs while it is `new` or `open` and stands still while it is
`pending` (waiting for the client) or `resolved`; every stop is kept on the ticket as a pause.
A deadline is where the clock reaches its target: the target counted from the start (the
creation, the client's follow-up, the arrival on a line), skipping the pauses, in business or
calendar time. So one function gives the deadline at creation, after a priority change and
after a pause alike, and a deadline that has already passed keeps its true time.

`schedule()` is called after every change to a ticket; the timers it returns replace the
pending ones. What has already fired is passed in and never scheduled again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from maildesk.domain import TicketStatus
from maildesk.sla.calendar import WorkCalendar
from maildesk.sla.policy import DEFAULT_PRIORITY, Policy, SlaPolicies, Target, business_duration

if TYPE_CHECKING:  # a type only: config builds on sla, not the other way round
    from maildesk.config.model import Line

RUNNING = (TicketStatus.NEW, TicketStatus.OPEN)
Pause = tuple[datetime, datetime | None]
FiredKey = tuple[str, str, str]          # (kind, stage, key)


@dataclass(frozen=True)
class SlaState:
    """What the schedule depends on, read off a ticket."""

    status: TicketStatus
    priority: str | None
    policy: str | None
    line: str | None
    created_at: datetime
    line_entered_at: datetime | None = None
    first_responded_at: datetime | None = None
    next_response_since: datetime | None = None
    resolved_at: datetime | None = None
    pauses: tuple[Pause, ...] = ()


@dataclass(frozen=True)
class TimerSpec:
    kind: str                 # first_response, next_response, resolution, ola, auto_close
    stage: str                # warning, breach, due
    due_at: datetime
    key: str = ""             # tells one deadline of a kind from another (a follow-up, a line)
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    first_response: datetime | None = None
    resolution: datetime | None = None
    next_response: datetime | None = None
    paused: bool = False
    timers: tuple[TimerSpec, ...] = ()


def due_after(duration: timedelta, business: bool, calendar: WorkCalendar, start: datetime,
              pauses: Sequence[Pause]) -> datetime | None:
    """Where a clock started at `start` reaches `duration`, standing still in the pauses;
    None while it stands still now (an open pause) short of the target."""
    def measure(a: datetime, b: datetime) -> timedelta:
        return calendar.between(a, b) if business else max(b - a, timedelta(0))

    def advance(a: datetime, d: timedelta) -> datetime:
        return calendar.add(a, d) if business else a + d

    cursor, remaining = start, duration
    for begin, end in sorted(pauses, key=lambda p: p[0]):
        if end is not None and end <= cursor:
            continue
        if begin > cursor:
            budget = measure(cursor, begin)
            if remaining <= budget:
                return advance(cursor, remaining)
            remaining -= budget
        if end is None:
            return None
        cursor = max(cursor, end)
    return advance(cursor, remaining)


def clock_elapsed(calendar: WorkCalendar | None, start: datetime, end: datetime,
                  pauses: Sequence[Pause]) -> timedelta:
    """How far the SLA clock ran from `start` to `end`: business time of `calendar` (calendar
    time without one), the pauses left out; what due_after counts, measured backwards."""
    def measure(a: datetime, b: datetime) -> timedelta:
        if b <= a:
            return timedelta(0)
        return calendar.between(a, b) if calendar is not None else b - a

    total, cursor = timedelta(0), start
    for begin, stop in sorted(pauses, key=lambda p: p[0]):
        if cursor >= end:
            break
        if stop is not None and stop <= cursor:
            continue
        total += measure(cursor, min(begin, end))
        cursor = max(cursor, stop if stop is not None else end)
    return total + measure(cursor, end)


def schedule(state: SlaState, *, policies: SlaPolicies, lines: Mapping[str, Line],
             close_after: timedelta | None, fired: frozenset[FiredKey] = frozenset()) -> Schedule:
    policy = policies.get(state.policy)
    running = state.status in RUNNING
    timers: list[TimerSpec] = []
    dues: dict[str, datetime | None] = {}
    if policy is not None:
        dues, timers = _deadlines(state, policy, running, fired)
        line = lines.get(state.line or "")
        if running and line is not None:
            timers += _ola_timer(state, line, policy.calendar, fired)
    timers += _auto_close_timer(state, close_after, fired)
    paused = bool(state.pauses) and state.pauses[-1][1] is None
    return Schedule(first_response=dues.get("first_response"), resolution=dues.get("resolution"),
                    next_response=dues.get("next_response"), paused=paused,
                    timers=tuple(timers))


def _starts(state: SlaState) -> dict[str, tuple[datetime | None, str]]:
    """Where each deadline's clock starts, and the key that tells one of its kind from another
    (each follow-up of the client has its own next_response deadline)."""
    since = state.next_response_since
    return {
        "first_response": (state.created_at, ""),
        "resolution": (state.created_at, ""),
        "next_response": (since, since.isoformat() if since else ""),
    }


def _deadlines(state: SlaState, policy: Policy, running: bool, fired: frozenset[FiredKey],
               ) -> tuple[dict[str, datetime | None], list[TimerSpec]]:
    """The policy's deadlines for the ticket's priority, and their warning and breach timers
    while the clock runs (none for a first response that has gone out)."""
    calendar = policy.calendar
    targets = policy.targets.get(state.priority or DEFAULT_PRIORITY, {})
    dues: dict[str, datetime | None] = {}
    timers: list[TimerSpec] = []
    for kind, (start, key) in _starts(state).items():
        target = targets.get(kind)
        if target is None or start is None:
            continue
        due = due_after(target.duration, target.business, calendar, start, state.pauses)
        dues[kind] = due
        if not running or due is None:
            continue
        if kind == "first_response" and state.first_responded_at is not None:
            continue
        timers.extend(_deadline_timers(kind, key, target, due, policy.warn_at, calendar,
                                       start, state.pauses, fired))
    return dues, timers


def _ola_timer(state: SlaState, line: Line, calendar: WorkCalendar,
               fired: frozenset[FiredKey]) -> list[TimerSpec]:
    """The line's OLA, counted from the ticket's arrival on it (each arrival its own key)."""
    if not line.ola or not state.line_entered_at:
        return []
    key = f"{line.id}@{state.line_entered_at.isoformat()}"
    business = not calendar.always
    ola = business_duration(line.ola_text or "0s", calendar) if business else line.ola
    due = due_after(ola, business, calendar, state.line_entered_at, state.pauses)
    if due is None or ("ola", "due", key) in fired:
        return []
    return [TimerSpec("ola", "due", due, key, {"line": line.id})]


def _auto_close_timer(state: SlaState, close_after: timedelta | None,
                      fired: frozenset[FiredKey]) -> list[TimerSpec]:
    """A resolved ticket closes `close_after` its resolution (each resolution its own key)."""
    if not (state.status is TicketStatus.RESOLVED and state.resolved_at and close_after):
        return []
    key = state.resolved_at.isoformat()
    if ("auto_close", "due", key) in fired:
        return []
    return [TimerSpec("auto_close", "due", state.resolved_at + close_after, key)]


def _deadline_timers(kind: str, key: str, target: Target, due: datetime, warn_at: float | None,
                     calendar: WorkCalendar, start: datetime, pauses: Sequence[Pause],
                     fired: frozenset[FiredKey]) -> list[TimerSpec]:
    out = []
    data = {"deadline": kind, "due": due.isoformat()}
    if warn_at and (kind, "warning", key) not in fired:
        warn = due_after(target.duration * warn_at, target.business, calendar, start, pauses)
        if warn is not None and warn < due:
            out.append(TimerSpec(kind, "warning", warn, key, {**data, "share": warn_at}))
    if (kind, "breach", key) not in fired:
        out.append(TimerSpec(kind, "breach", due, key, data))
    return out
