"""The timer sweep: fire what fell due, each exactly once, in the transaction that carries
it out (`serve --only timers`, or `maildesk timers run` from cron).

Due timers are read oldest first. On PostgreSQL their tickets are locked by that same read
(`FOR UPDATE OF ticket SKIP LOCKED`), so several daemons sweep different tickets at once and a
ticket that another sweeper (or the processor) holds is skipped, not waited for. Each timer is
claimed by an UPDATE that only
succeeds while it is still pending: whoever claims it carries it out, in the same
transaction, so a crash before the commit leaves it pending (it fires after the restart) and
a commit leaves it fired (it never fires again). What fell due while no timer process ran is
fired at the next sweep, oldest first.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from maildesk.config.model import Settings
from maildesk.db.models import Ticket, TicketEvent, TicketStatus, TicketTimer, TimerState
from maildesk.actions import (Effect, Event, MarkBreached, MoveToLine, NotifyLine, Rearm,
                              SetStatus, deadline_info)
from maildesk.domain import EventKind
from maildesk.effects.apply import Applying, apply_effects
from maildesk.effects.events import Gathered
from maildesk.effects.lifecycle import rearm, sla_state
from maildesk.outbound.compose import Composer
from maildesk.sla.schedule import RUNNING
from maildesk.sla.timers import TimerAction, decide

log = logging.getLogger(__name__)

# Ids only: the index answers it, and each timer is loaded after its claim anyway (whole
# rows cost ten times the bare SELECT on SQLite, most of it building objects to throw away).
_DUE = (select(TicketTimer.id)
        .where(TicketTimer.state == TimerState.PENDING, TicketTimer.due_at <= bindparam("now"))
        .order_by(TicketTimer.due_at).limit(bindparam("limit")))   # the index's own order
# On PostgreSQL the due timers come with their tickets, locked in the same statement (`FOR
# UPDATE OF ticket SKIP LOCKED`): that is the claim. A second sweeper, in another daemon, finds
# the next due timers of other tickets instead of the same ones; the processor, busy with a
# ticket, holds it and its timers wait for the next sweep. Anyone who changes a ticket's timers
# holds its row lock first (lifecycle.rearm), so holding it makes its timers ours, and a
# ticket's timers fire in the order they fell due even with several sweepers (its later ones
# are skipped while an earlier one is claimed). A sweeper that dies releases its claims with
# its transaction: the row lock is the lease. (SQLite needs no lock, one writer at a time, and
# its index alone answers the ids: a ticket id per row would cost a table lookup each.)
# Run on the session's connection: ids, no ORM entities (the ORM's execution path cost as much
# as the statement).
_DUE_TICKETS = (_DUE.join(Ticket, Ticket.id == TicketTimer.ticket_id)
                .with_for_update(skip_locked=True, of=Ticket))
# The claim hands back the timer it won, as the row is now: one statement, not an UPDATE and
# a SELECT (and a second one to refresh what the session held).
_CLAIM = (update(TicketTimer)
          .where(TicketTimer.id == bindparam("timer_id"), TicketTimer.state == TimerState.PENDING)
          .values(state=TimerState.FIRED, fired_at=bindparam("now"))
          .returning(TicketTimer)
          .execution_options(synchronize_session=False, populate_existing=True))
# Open tickets with no timer at all: made before timers existed (see migration 0005).
_UNARMED = (select(Ticket).where(Ticket.status.in_(RUNNING),
                                 ~select(TicketTimer.id).where(TicketTimer.ticket_id == Ticket.id)
                                 .exists())
            .order_by(Ticket.id).limit(500))


def fire_due(session: Session, settings: Settings, composer: Composer, now: datetime, *,
             limit: int = 200, fired_log: list[tuple[str, str, float]] | None = None) -> int:
    """Fire up to `limit` due timers in the caller's transaction; how many fired. Each fired
    timer's (kind, stage, seconds late) is added to `fired_log` (for the metrics, counted
    once the caller has committed)."""
    fired = 0
    for timer_id in due_timers(session, now, limit):
        timer = session.scalars(_CLAIM, {"timer_id": timer_id, "now": now}).one_or_none()
        if timer is None:
            continue  # another process took it
        fired += 1
        if fired_log is not None:
            fired_log.append((timer.kind, timer.stage, (now - timer.due_at).total_seconds()))
        try:
            with session.begin_nested():
                _carry_out(session, timer, settings, composer, now)
        except Exception as exc:   # one bad timer must not hold up the others
            # What it wrote by Core is undone with the savepoint; the ticket it wrote by Core
            # and marked unchanged (effects/events.py) is read again, as all the rest.
            session.expire_all()
            log.exception("timer %s (%s %s) failed", timer.id, timer.kind, timer.stage)
            session.add(TicketEvent(ticket_id=timer.ticket_id, at=now, kind=EventKind.TIMER_FAILED,
                                    actor=None, data={"timer": timer.id,
                                                      "error": f"{type(exc).__name__}: {exc}"}))
    return fired


def due_timers(session: Session, now: datetime, limit: int) -> list[int]:
    """Up to `limit` due timers, oldest first, claimed on PostgreSQL (their tickets locked)."""
    params = {"now": now, "limit": limit}
    if session.get_bind().dialect.name == "postgresql":
        return list(session.connection().scalars(_DUE_TICKETS, params))
    return list(session.scalars(_DUE, params))


def arm_unarmed(session: Session, settings: Settings, now: datetime) -> int:
    """Give open tickets that have no timers theirs (after an upgrade); how many."""
    tickets = list(session.scalars(_UNARMED))
    for ticket in tickets:
        rearm(session, ticket, settings, now)
    return len(tickets)


def timer_effects(action: TimerAction, timer_kind: str, due: str | None,
                  line: str | None) -> list[Effect]:
    """What a fired timer does (sla/timers.py decided it), in the effect vocabulary."""
    effects: list[Effect] = []
    if action.warn:
        effects += [Event(EventKind.SLA_WARNING, {"deadline": timer_kind, "due": due}),
                    NotifyLine("warning")]
    if action.breach:
        effects += [MarkBreached(), Event(EventKind.SLA_BREACH, {"deadline": action.breach,
                                                                 "due": due, "line": line})]
    if action.escalate_to:
        effects.append(MoveToLine(action.escalate_to, action.reason))
    elif action.tell_lead or action.breach or timer_kind == "ola":
        # Nowhere to move it: the lead is told, else the line itself (decide's `_move`).
        effects.append(NotifyLine("breached", key="lead", to=action.tell_lead,
                                  reason=action.reason))
    if action.close:
        effects.append(SetStatus(TicketStatus.CLOSED, reason=action.reason))
    return [*effects, Rearm(always=True)]


def _carry_out(session: Session, timer: TicketTimer, settings: Settings, composer: Composer,
               now: datetime) -> None:
    ticket = session.get_one(Ticket, timer.ticket_id)
    lines = {line.id: line for line in settings.lines}
    action = decide(timer.kind, timer.stage, timer.data, sla_state(ticket), lines, now)
    ctx = Applying(session, settings, composer, now, ticket, key=f"timer.{timer.id}",
                   cause={"timer": timer.id}, at=now, contain_notifications=False,
                   deadline=deadline_info(timer.data), rows=Gathered(tickets=[ticket]))
    if action.stale:
        ctx.event(EventKind.TIMER_STALE, {"kind": timer.kind, "stage": timer.stage})
    else:
        ticket.updated_at = now
        apply_effects(ctx, timer_effects(action, timer.kind, timer.data.get("due"), ticket.line))
    ctx.write_rows()
