"""A ticket's status and its SLA timers, changed in the caller's transaction.

`change_status` is the one place a status changes: it keeps resolved_at/closed_at and the
pauses of the SLA clock. `rearm` runs after every change that moves a deadline (a new ticket,
a priority, a status, a line, a client's follow-up, a first answer): it writes the deadlines on
the ticket and replaces its pending timers with those sla/schedule.py says it needs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from maildesk.config.model import Settings
from maildesk.db.models import Ticket, TicketStatus, TicketTimer, TimerState
from maildesk.effects.events import Gathered
from maildesk.sla.schedule import RUNNING, Schedule, SlaState, TimerSpec, schedule

_TIMERS = select(TicketTimer).where(TicketTimer.ticket_id == bindparam("ticket_id"),
                                    TicketTimer.state.in_([TimerState.PENDING, TimerState.FIRED]))
_LOCK_TICKET = select(Ticket.id).where(Ticket.id == bindparam("ticket_id")).with_for_update()


def change_status(ticket: Ticket, status: TicketStatus, now: datetime) -> bool:
    """Move the ticket to `status`; False when it is there already. The SLA clock stops on the
    way out of new/open and starts again on the way back."""
    old = ticket.status
    if status is old:
        return False
    ticket.status = status
    pauses = [list(p) for p in (ticket.pauses or [])]
    if old in RUNNING and status not in RUNNING:
        pauses.append([now.isoformat(), None])
    elif old not in RUNNING and status in RUNNING and pauses and pauses[-1][1] is None:
        pauses[-1][1] = now.isoformat()
    ticket.pauses = pauses
    if status is TicketStatus.RESOLVED:
        ticket.resolved_at = now
    elif status is TicketStatus.CLOSED:
        ticket.closed_at = now
    else:
        ticket.resolved_at = None
    return True


def sla_state(ticket: Ticket) -> SlaState:
    """In UTC throughout: timer keys are made of these times and must compare equal before
    and after a trip through the database."""
    def utc(value: datetime | None) -> datetime | None:
        return value.astimezone(timezone.utc) if value else None

    return SlaState(
        status=ticket.status, priority=ticket.priority, policy=ticket.sla_policy,
        line=ticket.line, created_at=utc(ticket.created_at),  # type: ignore[arg-type]
        line_entered_at=utc(ticket.line_entered_at or ticket.created_at),
        first_responded_at=utc(ticket.first_responded_at),
        next_response_since=utc(ticket.next_response_since), resolved_at=utc(ticket.resolved_at),
        pauses=tuple((utc(datetime.fromisoformat(a)), utc(datetime.fromisoformat(b)) if b else None)
                     for a, b in (ticket.pauses or [])))  # type: ignore[misc]


def rearm(session: Session, ticket: Ticket, settings: Settings, now: datetime, *,
          fresh: bool = False, gathered: Gathered | None = None,
          timers: list[TicketTimer] | None = None, locked: bool = False,
          claimed: Collection[int] = ()) -> None:
    """Deadlines on the ticket, and exactly the pending timers it needs now. `fresh`: the
    ticket was made by this transaction and has no timers yet (nothing to read or lock:
    nobody else sees it). New timers go into `gathered` (written at the cause's end) when
    given, else in at once. `timers`: its pending and fired timers as they are now, read by
    the caller (a timer sweep, for all its tickets at once); `locked`: the caller holds the
    ticket's row lock already; `claimed`: timers a sweep has claimed (fired) but not carried
    out yet, which count as pending: the plan may cancel them as before they were claimed."""
    if fresh:
        rows: list[TicketTimer] = []
    else:
        if gathered is not None and timers is None and gathered.timers:
            gathered.write(session)   # timers an earlier rearm of this cause gathered
        # A cause's ticket (and what else it changed) goes in with its rows at its end, in
        # one statement with them: not flushed by the ORM before these reads, which ask for
        # nothing it changed (the lock, the timers: new ones are gathered rows, cancelled ones
        # updated at once).
        with session.no_autoflush if gathered is not None else nullcontext():
            if ticket.id is not None and not locked \
                    and session.get_bind().dialect.name == "postgresql":
                # The ticket's row lock before any of its timers' (as the timer sweep takes
                # them): one order for everyone, so a sweeper and the processor never deadlock.
                session.execute(_LOCK_TICKET, {"ticket_id": ticket.id})
            rows = timers if timers is not None else \
                list(session.scalars(_TIMERS, {"ticket_id": ticket.id}))
    fired = frozenset((t.kind, t.stage, t.data.get("key", "")) for t in rows
                      if _state(t, claimed) is TimerState.FIRED)
    state = sla_state(ticket)
    lines = {line.id: line for line in settings.lines}

    def plan_for(s: SlaState) -> Schedule:
        return schedule(s, policies=settings.sla_policies, lines=lines,
                        close_after=settings.close_after, fired=fired)

    plan = plan_for(state)
    if not plan.paused:
        _show_deadlines(ticket, plan)
        ticket.next_response_due_at = plan.next_response
    else:
        # While the clock stands still the deadlines shown are those of the moment it stopped
        # (they move on resume), counted with the ticket's priority and policy as they are now:
        # a `#priority P2` in the mail that says `#resolve` or `#pending` (or while the ticket
        # waits) moves them as it would on a running clock.
        _show_deadlines(ticket, plan_for(replace(state, pauses=state.pauses[:-1])))
    _replace_timers(session, ticket, rows, plan.timers, now, gathered, claimed)


def _state(timer: TicketTimer, claimed: Collection[int]) -> TimerState:
    return TimerState.PENDING if timer.id in claimed else timer.state


def _show_deadlines(ticket: Ticket, plan: Schedule) -> None:
    ticket.first_response_due_at = plan.first_response or ticket.first_response_due_at
    ticket.resolution_due_at = plan.resolution or ticket.resolution_due_at


def _replace_timers(session: Session, ticket: Ticket, rows: list[TicketTimer],
                    timers: Sequence[TimerSpec], now: datetime,
                    gathered: Gathered | None, claimed: Collection[int]) -> None:
    """Cancel the pending timers the plan no longer has; add those it has that are missing."""
    pending = {_identity(t.kind, t.stage, t.due_at, t.data.get("key", "")): t for t in rows
               if _state(t, claimed) is TimerState.PENDING}
    wanted = {_identity(s.kind, s.stage, s.due_at, s.key): s for s in timers}
    stale = [t.id for key, t in pending.items() if key not in wanted]
    if stale:   # (the ORM's copies too: a sweep skips a claimed timer cancelled here)
        # Not preceded by a flush: the ticket's changes go in with the cause's rows (a timer
        # sweep writes them at its end), not by the ORM's unit of work at every rearm.
        with session.no_autoflush:
            session.execute(update(TicketTimer).where(TicketTimer.id.in_(stale))
                            .values(state=TimerState.CANCELLED, fired_at=None))
    added = [_row(ticket, spec, now) for key, spec in wanted.items() if key not in pending]
    if gathered is not None:
        gathered.timers.extend(added)
    elif added:   # one executemany (effects/events.py), after their ticket
        Gathered(timers=added).write(session)


def _identity(kind: str, stage: str, due: datetime, key: str) -> tuple[str, str, str, str]:
    return kind, stage, key, due.isoformat(timespec="seconds")


def _row(ticket: Ticket, spec: TimerSpec, now: datetime) -> dict[str, Any]:
    return {"ticket_id": ticket.id, "kind": spec.kind, "stage": spec.stage,
            "due_at": spec.due_at, "state": TimerState.PENDING,
            "data": {**spec.data, "key": spec.key}, "created_at": now}


def move_to_line(ticket: Ticket, line: str, now: datetime) -> str | None:
    """Put the ticket on another line (its OLA starts again); returns the line it left."""
    left = ticket.line
    ticket.line = line
    ticket.line_entered_at = now
    ticket.escalation_count = (ticket.escalation_count or 0) + 1
    return left
