"""The timer sweep: fire what fell due, each exactly once, in the transaction that carries
it out (`serve --only timers`, or `maildesk timers run` from cron).

Due timers are read oldest first. On PostgreSQL each timer's ticket is locked with `FOR UPDATE
SKIP LOCKED` before the timer is fired, so a ticket a second timer process (or the processor)
holds is skipped, not waited for. Each is claimed by an UPDATE that only
succeeds while it is still pending: whoever claims it carries it out, in the same
transaction, so a crash before the commit leaves it pending (it fires after the restart) and
a commit leaves it fired (it never fires again). What fell due while no timer process ran is
fired at the next sweep, oldest first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from maildesk.config.model import Settings
from maildesk.db.models import Ticket, TicketEvent, TicketStatus, TicketTimer, TimerState
from maildesk.effects.lifecycle import change_status, move_to_line, rearm, sla_state
from maildesk.effects.notify import queue_line_notification
from maildesk.outbound.compose import Composer
from maildesk.sla.schedule import RUNNING
from maildesk.sla.timers import decide

log = logging.getLogger(__name__)

# Ids only: the index answers it, and each timer is loaded after its claim anyway (whole
# rows cost ten times the bare SELECT on SQLite, most of it building objects to throw away).
_DUE = (select(TicketTimer.id)
        .where(TicketTimer.state == TimerState.PENDING, TicketTimer.due_at <= bindparam("now"))
        .order_by(TicketTimer.due_at).limit(bindparam("limit")))   # the index's own order
# On PostgreSQL with the tickets, to lock them (SQLite needs no lock, and its index alone
# answers the ids: a ticket id per row would cost a table lookup each).
_DUE_TICKETS = _DUE.add_columns(TicketTimer.ticket_id)
_CLAIM = (update(TicketTimer)
          .where(TicketTimer.id == bindparam("timer_id"), TicketTimer.state == TimerState.PENDING)
          .values(state=TimerState.FIRED, fired_at=bindparam("now"))
          .execution_options(synchronize_session=False))
# Lock the timer's ticket unless another transaction holds it (a second timer process, the
# processor busy with it): the timer then waits for the next sweep. Anyone who changes a
# ticket's timers holds its row lock first (lifecycle.rearm), so holding it makes its timers
# ours: the claim never waits, and two sweepers never act on one ticket. Taken per timer, as
# it is fired, not in the due SELECT: a join locking every due ticket there costs twice the
# SELECT itself (ticket rows lie scattered over the table).
_LOCK_TICKET = (select(Ticket.id).where(Ticket.id == bindparam("ticket_id"))
                .with_for_update(skip_locked=True))
# Open tickets with no timer at all: made before timers existed (see migration 0005).
_UNARMED = (select(Ticket).where(Ticket.status.in_(RUNNING),
                                 ~select(TicketTimer.id).where(TicketTimer.ticket_id == Ticket.id)
                                 .exists())
            .order_by(Ticket.id).limit(500))


def fire_due(session: Session, settings: Settings, composer: Composer, now: datetime, *,
             limit: int = 200) -> int:
    """Fire up to `limit` due timers in the caller's transaction; how many fired."""
    due = due_timers(session, now, limit)
    lock = session.get_bind().dialect.name == "postgresql"   # SQLite: one writer at a time
    fired = 0
    for timer_id, ticket_id in due:
        if lock and session.scalar(_LOCK_TICKET, {"ticket_id": ticket_id}) is None:
            continue  # held elsewhere: next sweep
        if session.execute(_CLAIM, {"timer_id": timer_id, "now": now}).rowcount != 1:
            continue  # another process took it
        timer = session.get_one(TicketTimer, timer_id)
        session.refresh(timer)   # the claim changed it behind the ORM's back
        fired += 1
        try:
            with session.begin_nested():
                _carry_out(session, timer, settings, composer, now)
        except Exception as exc:   # one bad timer must not hold up the others
            log.exception("timer %s (%s %s) failed", timer.id, timer.kind, timer.stage)
            session.add(TicketEvent(ticket_id=timer.ticket_id, at=now, kind="timer_failed",
                                    actor=None, data={"timer": timer.id,
                                                      "error": f"{type(exc).__name__}: {exc}"}))
    return fired


def due_timers(session: Session, now: datetime, limit: int) -> list[tuple[int, int | None]]:
    """Up to `limit` due timers, oldest first, as (timer id, ticket id on PostgreSQL)."""
    params = {"now": now, "limit": limit}
    if session.get_bind().dialect.name == "postgresql":
        return [(timer_id, ticket_id) for timer_id, ticket_id
                in session.execute(_DUE_TICKETS, params)]
    return [(timer_id, None) for timer_id in session.scalars(_DUE, params)]


def arm_unarmed(session: Session, settings: Settings, now: datetime) -> int:
    """Give open tickets that have no timers theirs (after an upgrade); how many."""
    tickets = list(session.scalars(_UNARMED))
    for ticket in tickets:
        rearm(session, ticket, settings, now)
    return len(tickets)


def _carry_out(session: Session, timer: TicketTimer, settings: Settings, composer: Composer,
               now: datetime) -> None:
    ticket = session.get_one(Ticket, timer.ticket_id)
    lines = {line.id: line for line in settings.lines}
    action = decide(timer.kind, timer.stage, timer.data, sla_state(ticket), lines, now)
    key = f"timer.{timer.id}"

    def event(name: str, **data: object) -> None:   # `kind` is a key of the data
        session.add(TicketEvent(ticket_id=ticket.id, at=now, kind=name, actor=None,
                                data={**data, "timer": timer.id}))

    if action.stale:
        event("timer_stale", kind=timer.kind, stage=timer.stage)
        return
    due = timer.data.get("due")
    deadline = ({"deadline": timer.data["deadline"], "due": datetime.fromisoformat(due),
                 "share": timer.data.get("share")} if timer.data.get("deadline") and due else None)
    notify: Callable[..., object] = lambda **kw: queue_line_notification(  # noqa: E731
        session, ticket, settings, composer, now=now, deadline=deadline, **kw)
    if action.warn:
        event("sla_warning", deadline=timer.kind, due=due)
        notify(event="warning", key=f"{key}.warning")
    if action.breach:
        ticket.breached_at = ticket.breached_at or now
        event("sla_breach", deadline=action.breach, due=due, line=ticket.line)
    if action.escalate_to:
        left = move_to_line(ticket, action.escalate_to, now)
        event("escalated", **{"from": left, "to": action.escalate_to, "reason": action.reason})
        notify(event="escalated", key=f"{key}.escalated", from_line=left or "-",
               reason=action.reason)
    elif action.tell_lead or action.breach or timer.kind == "ola":
        # Nowhere to move it: the lead is told, else the line itself (decide's `_move`).
        notify(event="breached", key=f"{key}.lead", to=action.tell_lead, reason=action.reason)
    if action.close and change_status(ticket, TicketStatus.CLOSED, now):
        event("status", **{"from": "resolved", "to": "closed", "reason": action.reason})
    ticket.updated_at = now
    rearm(session, ticket, settings, now)
