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
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from maildesk.config.model import Settings
from maildesk.db.models import Message, Ticket, TicketEvent, TicketStatus, TicketTimer, TimerState
from maildesk.actions import (Effect, Event, MarkBreached, MoveToLine, NotifyLine, Rearm,
                              SetStatus, deadline_info)
from maildesk.domain import EventKind
from maildesk.db.ids import draw_ids, release_ids
from maildesk.db.precompiled import Precompiled
from maildesk.db.queries import LATEST_TICKETS, hold_tickets
from maildesk.effects.apply import Applying, apply_effects
from maildesk.effects.events import Gathered
from maildesk.effects.lifecycle import rearm, sla_state
from maildesk.effects.notify import HISTORY_COLUMNS, HISTORY_ITEMS
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
# ... compiled once (db/precompiled.py): SQLAlchemy's work per execution was two thirds of the
# server's for it.
_DUE_TICKETS_SQL = Precompiled(_DUE_TICKETS)
# The claim hands back the timers it won, as the rows are now: one statement for the sweep (a
# timer another sweeper fired meanwhile is not among them).
_CLAIM = (update(TicketTimer)
          .where(TicketTimer.id.in_(bindparam("timer_ids", expanding=True)),
                 TicketTimer.state == TimerState.PENDING)
          .values(state=TimerState.FIRED, fired_at=bindparam("now"))
          .returning(TicketTimer)
          .execution_options(synchronize_session=False, populate_existing=True))
# What the sweep's timers read, for all their tickets at once: the tickets; their pending and
# fired timers (rearm), read after the claim; their latest mails and their requesters' latest
# tickets (the line notifications).
_TICKETS = select(Ticket).where(Ticket.id.in_(bindparam("ids", expanding=True)))
_THEIR_TIMERS = (select(TicketTimer)
                 .where(TicketTimer.ticket_id.in_(bindparam("ids", expanding=True)),
                        TicketTimer.state.in_([TimerState.PENDING, TimerState.FIRED])))
_RANKED = (select(*HISTORY_COLUMNS, Message.ticket_id,
                  func.row_number().over(partition_by=Message.ticket_id,
                                         order_by=Message.id.desc()).label("rank"))
           .where(Message.ticket_id.in_(bindparam("ids", expanding=True))).subquery())
_HISTORIES = (select(*(c for c in _RANKED.c if c.key != "rank"))
              .where(_RANKED.c.rank <= HISTORY_ITEMS + 1)
              .order_by(_RANKED.c.ticket_id, _RANKED.c.id.desc()))
_LATEST_RANKED = (select(Ticket.requester, Ticket.id, Ticket.number, Ticket.subject,
                         Ticket.status, Ticket.created_at,
                         func.row_number().over(partition_by=Ticket.requester,
                                                order_by=Ticket.id.desc()).label("rank"))
                  .where(Ticket.requester.in_(bindparam("requesters", expanding=True)))
                  .subquery())
_REQUESTERS_LATEST = (select(*(c for c in _LATEST_RANKED.c if c.key != "rank"))
                      .where(_LATEST_RANKED.c.rank <= LATEST_TICKETS)
                      .order_by(_LATEST_RANKED.c.requester, _LATEST_RANKED.c.id.desc()))


class SweepAgainCarefully(Exception):
    """A timer failed in a sweep without savepoints: roll it back, sweep again carefully."""


# Open tickets with no timer at all: made before timers existed (see migration 0005).
_UNARMED = (select(Ticket).where(Ticket.status.in_(RUNNING),
                                 ~select(TicketTimer.id).where(TicketTimer.ticket_id == Ticket.id)
                                 .exists())
            .order_by(Ticket.id).limit(500))


def fire_due(session: Session, settings: Settings, composer: Composer, now: datetime, *,
             limit: int = 200, fired_log: list[tuple[str, str, float]] | None = None,
             careful: bool = False) -> int:
    """Fire up to `limit` due timers in the caller's transaction; how many fired. Each fired
    timer's (kind, stage, seconds late) is added to `fired_log` (for the metrics, counted
    once the caller has committed).

    Set-based: the due timers are claimed by one statement, and what carrying them out reads
    (their tickets, the tickets' timers, latest mails and requesters' other tickets) is read
    for all of them at once; a timer then costs the statement that writes what it did. Without
    savepoints (`careful` False) a timer that fails raises `SweepAgainCarefully`: the caller rolls the
    sweep back and runs it again with `careful`, each timer in a savepoint, so that only the
    failing one is set aside (it stays fired, with a timer_failed event)."""
    ids = due_timers(session, now, limit)
    if not ids:
        return 0
    order = {timer_id: n for n, timer_id in enumerate(ids)}
    timers = sorted(session.scalars(_CLAIM, {"timer_ids": ids, "now": now}).all(),
                    key=lambda t: order[t.id])   # another sweeper may have taken some
    if not timers:
        return 0
    sweep = _Sweep.read(session, timers)
    postgres = session.get_bind().dialect.name == "postgresql"
    draw_ids(session, outbox=len(timers))   # PostgreSQL: one notification each, at most
    unfired = {t.id for t in timers}
    fired = 0
    # Without savepoints, what the timers write is gathered for the whole sweep and written
    # at its end: one statement (PostgreSQL; one per table on SQLite) rather than one a timer.
    # Nothing a later timer reads is among it (their tickets, timers and histories were read
    # above; a second timer of one ticket reads its timers after writing what is gathered).
    rows = None if careful else Gathered()
    try:
        for timer in timers:
            unfired.discard(timer.id)
            if timer.state is TimerState.CANCELLED:
                continue   # an earlier timer of its ticket changed it so that it is not wanted
            fired += 1
            if fired_log is not None:
                fired_log.append((timer.kind, timer.stage, (now - timer.due_at).total_seconds()))
            if not careful:
                try:
                    _carry_out(session, timer, settings, composer, now, sweep, postgres, unfired,
                               rows)
                except Exception as exc:
                    log.info("timer %s failed in a sweep; the sweep runs again, each timer on "
                             "its own", timer.id)
                    raise SweepAgainCarefully() from exc
                continue
            try:
                with session.begin_nested():
                    _carry_out(session, timer, settings, composer, now, sweep, postgres, unfired)
            except Exception as exc:   # one bad timer must not hold up the others
                # What it wrote by Core is undone with the savepoint; the ticket it wrote by
                # Core and marked unchanged (effects/events.py) is read again, as all the rest,
                # and so are its timers.
                session.expire_all()
                sweep.timers.pop(timer.ticket_id, None)
                log.exception("timer %s (%s %s) failed", timer.id, timer.kind, timer.stage)
                session.add(TicketEvent(ticket_id=timer.ticket_id, at=now,
                                        kind=EventKind.TIMER_FAILED, actor=None,
                                        data={"timer": timer.id,
                                              "error": f"{type(exc).__name__}: {exc}"}))
        if rows is not None:
            try:
                rows.write(session)
            except Exception as exc:
                log.info("writing a sweep's rows failed; the sweep runs again, each timer on its "
                         "own")
                raise SweepAgainCarefully() from exc
    finally:
        release_ids(session)
    return fired


@dataclass
class _Sweep:
    """What a sweep read for its timers' tickets."""

    tickets: dict[int, Ticket]
    timers: dict[int, list[TicketTimer]]   # by ticket: each used once, by its first rearm

    @classmethod
    def read(cls, session: Session, timers: list[TicketTimer]) -> _Sweep:
        ids = list(dict.fromkeys(t.ticket_id for t in timers))
        tickets = {t.id: t for t in session.scalars(_TICKETS, {"ids": ids})}
        theirs: dict[int, list[TicketTimer]] = {i: [] for i in ids}
        for row in session.scalars(_THEIR_TIMERS, {"ids": ids}):
            theirs[row.ticket_id].append(row)
        held = hold_tickets(session)   # for the line notifications (effects/notify.py)
        held.tickets.extend(tickets.values())
        for row in session.execute(_HISTORIES, {"ids": ids}):
            held.histories.setdefault(row.ticket_id, []).append(row)
        for i in ids:
            held.histories.setdefault(i, [])
        requesters = sorted({t.requester for t in tickets.values() if t.requester})
        if requesters:
            for requester, *row in session.execute(_REQUESTERS_LATEST,
                                                   {"requesters": requesters}):
                held.requester_tickets.setdefault(requester, []).append(tuple(row))
            for requester in requesters:
                held.requester_tickets.setdefault(requester, [])
        return cls(tickets, theirs)


def due_timers(session: Session, now: datetime, limit: int) -> list[int]:
    """Up to `limit` due timers, oldest first, claimed on PostgreSQL (their tickets locked)."""
    params = {"now": now, "limit": limit}
    if session.get_bind().dialect.name == "postgresql":
        return [row[0] for row in _DUE_TICKETS_SQL.execute(session.connection(), params)]
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
               now: datetime, sweep: _Sweep, postgres: bool, claimed: set[int],
               rows: Gathered | None = None) -> None:
    """Carry out one timer; what it writes goes into `rows` (the sweep's, written at its
    end) when given, else in at once."""
    ticket = sweep.tickets.get(timer.ticket_id) or session.get_one(Ticket, timer.ticket_id)
    if rows is not None and all(t is not ticket for t in rows.tickets):
        rows.tickets.append(ticket)
    lines = {line.id: line for line in settings.lines}
    action = decide(timer.kind, timer.stage, timer.data, sla_state(ticket), lines, now)
    ctx = Applying(session, settings, composer, now, ticket, key=f"timer.{timer.id}",
                   cause={"timer": timer.id}, at=now, contain_notifications=False,
                   deadline=deadline_info(timer.data),
                   rows=rows if rows is not None else Gathered(tickets=[ticket]),
                   # The due query locked the ticket on PostgreSQL (SQLite: one writer).
                   timers=sweep.timers.pop(ticket.id, None), locked=postgres,
                   claimed=claimed)
    if action.stale:
        ctx.event(EventKind.TIMER_STALE, {"kind": timer.kind, "stage": timer.stage})
    else:
        ticket.updated_at = now
        apply_effects(ctx, timer_effects(action, timer.kind, timer.data.get("due"), ticket.line))
    if rows is None:
        ctx.write_rows()
