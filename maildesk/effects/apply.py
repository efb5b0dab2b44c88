"""The one applier: carries out effects (maildesk/actions.py) in the caller's transaction.

`apply_plan` writes a message's Plan: the ticket it opens or joins and the message on it
(effects/record.py), then the plan's effects in order. The timer sweep (effects/timers.py)
hands its effects to the same `apply_effects`. Each effect has one handler below; whatever
a handler queues goes through the outbox (effects/outgoing.py, the only maker of its rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.actions import (Acknowledge, AddTags, AnswerSearch, Assign, ClientFollowUp, Effect, Event,
                              MailClient, MarkBreached, MoveToLine, NotifyLine, Rate, Rearm,
                              RecordResponse, SetCategory, SetPriority, SetStatus, TellAgent)
from maildesk.config.model import Settings
from maildesk.db.ids import draw_ids, release_ids
from maildesk.db.models import Inbound, InboundStatus, Role, Ticket, TicketStatus
from maildesk.domain import EventKind
from maildesk.effects.autoreply import compose_autoreply, queue_autoreply
from maildesk.effects.events import EventRows, Gathered, event_row
from maildesk.effects.lifecycle import change_status, move_to_line, rearm
from maildesk.effects.metrics import record_resolution, record_response
from maildesk.effects.notify import (Built, forwardable, line_notification,
                                     queue_built, queue_command_error,
                                     queue_search_results, queue_to_client)
from maildesk.effects.record import (MAX_STORED_REFERENCES, MailRow, apply_bounce,
                                     join_ticket, mark_inbound, open_ticket, record_message,
                                     stored_references)
from maildesk.outbound.compose import Composer
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.plan import Plan

log = logging.getLogger(__name__)


@dataclass
class Applying:
    """What the handlers share while one cause's effects are carried out."""

    session: Session
    settings: Settings
    composer: Composer
    now: datetime
    ticket: Ticket
    key: str                        # the cause, in Message-IDs: "<inbound id>" or "timer.<id>"
    cause: dict[str, Any]           # added to every event: the message or timer behind it
    at: datetime                    # when the cause happened (the mail's arrival)
    actor: str | None = None        # who: the mail's sender; None for a timer
    actor_name: str = ""
    message: ParsedMessage | None = None
    row: MailRow | None = None
    plan: Plan | None = None
    contain_notifications: bool = True   # a failed notification costs the cause nothing else
    deadline: Mapping[str, Any] | None = None   # a timer's: shown in its notifications
    sla_changed: bool = False
    queued_mail: bool = False
    fresh_ticket: bool = False      # opened by this cause: it has no timers yet
    opened: bool = False            # this cause opened the ticket
    rows: Gathered = field(default_factory=Gathered)   # written by write_rows (events.py)
    # A timer sweep: the ticket's timers as read for the sweep, and its lock held (rearm).
    timers: list[Any] | None = None
    locked: bool = False
    claimed: Collection[int] = ()   # its other timers claimed, not yet carried out (rearm)

    def event(self, kind: EventKind, data: dict[str, Any], actor: str | None = None) -> None:
        self.events.append(event_row(self.ticket.id, self.now, kind, actor,
                                     {**data, **self.cause}))

    @property
    def events(self) -> EventRows:
        return self.rows.events

    def write_rows(self) -> None:
        """The cause's pending objects and gathered rows into the database: call before its
        transaction ends."""
        self.rows.write(self.session)

    @property
    def agent_name(self) -> str:
        found = self.settings.agent(self.actor or "")
        return (found[1].name if found and found[1].name else "") or self.actor_name \
            or self.actor or ""


def _event(ctx: Applying, e: Event) -> None:
    # What a mail says of itself dates from its arrival; what it makes happen, from now.
    ctx.events.append(event_row(ctx.ticket.id, ctx.at if e.at_arrival else ctx.now, e.kind,
                                ctx.actor, {**e.data, **ctx.cause}))


def _set_status(ctx: Applying, e: SetStatus) -> None:
    ticket, old = ctx.ticket, ctx.ticket.status
    if e.status is old:
        return
    if e.announce:
        ctx.event(EventKind.STATUS, {"from": old.value, "to": e.status.value,
                                     **({"reason": e.reason} if e.reason is not None else {})}, ctx.actor)
    change_status(ticket, e.status, ctx.at if e.at_arrival else ctx.now)
    ctx.sla_changed = True
    if e.reopen:
        ticket.reopen_count = (ticket.reopen_count or 0) + 1
    if e.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED) \
            and old is not TicketStatus.RESOLVED:
        # Resolved by whom: an agent (or the client's own "solved": nobody), never a client.
        by_agent = ctx.plan is None or ctx.plan.role is Role.AGENT
        record_resolution(ticket, ctx.settings, ctx.now, ctx.actor if by_agent else None)


def _changed(ctx: Applying, kind: EventKind, attribute: str, value: str) -> None:
    """Assignee, priority, category: set, with the event, when it differs."""
    before = getattr(ctx.ticket, attribute)
    if value != before:
        ctx.event(kind, {"from": before, "to": value}, ctx.actor)
        setattr(ctx.ticket, attribute, value)
        ctx.sla_changed = True   # a priority moves the deadlines


def _assign(ctx: Applying, e: Assign) -> None:
    _changed(ctx, EventKind.ASSIGNED, "assignee", e.address)


def _priority(ctx: Applying, e: SetPriority) -> None:
    _changed(ctx, EventKind.PRIORITY, "priority", e.priority)


def _category(ctx: Applying, e: SetCategory) -> None:
    _changed(ctx, EventKind.CATEGORY, "category", e.category)


def _tags(ctx: Applying, e: AddTags) -> None:
    ctx.ticket.tags = [*(ctx.ticket.tags or []), *e.tags]
    ctx.event(EventKind.TAGGED, {"tags": list(e.tags)}, ctx.actor)


def _move(ctx: Applying, e: MoveToLine) -> None:
    left = move_to_line(ctx.ticket, e.line, ctx.now)
    ctx.event(EventKind.ESCALATED, {"from": left, "to": e.line,
                                    **({"reason": e.reason} if e.reason is not None else {})},
              ctx.actor)
    ctx.sla_changed = True
    _notify(ctx, NotifyLine("escalated", from_line=left or "-", reason=e.reason or "",
                            by_actor=True))


def _breached(ctx: Applying, e: MarkBreached) -> None:
    ctx.ticket.breached_at = ctx.ticket.breached_at or ctx.now


def _rate(ctx: Applying, e: Rate) -> None:
    ctx.ticket.rating, ctx.ticket.rated_at = e.score, ctx.at


def _follow_up(ctx: Applying, e: ClientFollowUp) -> None:
    # The next-response clock starts (the first answer has its own deadline).
    ticket = ctx.ticket
    if ticket.first_responded_at is not None and ticket.next_response_since is None \
            and ticket.status in (TicketStatus.NEW, TicketStatus.OPEN):
        ticket.next_response_since = ctx.at
        ctx.sla_changed = True


def _responded(ctx: Applying, e: RecordResponse) -> None:
    ticket = ctx.ticket
    record_response(ticket, ctx.settings, ctx.now, ctx.actor)
    if ticket.first_responded_at is None:
        ticket.first_responded_at = ctx.now
        ctx.event(EventKind.FIRST_RESPONSE, {}, ctx.actor)
    ticket.next_response_since = None
    ctx.sla_changed = True


def _acknowledge(ctx: Applying, e: Acknowledge) -> None:
    # A template or address that cannot be rendered must not cost the client a ticket: the
    # acknowledgement is dropped, and the ticket says why. Composing touches no database,
    # so nothing needs undoing.
    assert ctx.message is not None and ctx.plan is not None
    try:
        autoreply = compose_autoreply(e, ctx.plan.deadlines, ctx.ticket, ctx.message,
                                      ctx.settings, ctx.composer, now=ctx.now)
    except Exception as exc:
        log.exception("autoreply for ticket %s could not be composed", ctx.ticket.number)
        ctx.event(EventKind.AUTOREPLY_FAILED, {"error": f"{type(exc).__name__}: {exc}"})
        return
    queue_autoreply(ctx.session, autoreply, ctx.ticket, ctx.settings, now=ctx.now,
                    rows=ctx.rows)
    ctx.queued_mail = True


def _mail_client(ctx: Applying, e: MailClient) -> None:
    files = forwardable(ctx.message, include_inline=False) \
        if e.attachments and ctx.message is not None else ()
    queue_to_client(ctx.session, ctx.ticket, ctx.settings, ctx.composer, now=ctx.now,
                    template=e.template, key=f"{ctx.key}.{e.key}", context={"text": e.text},
                    agent_name=ctx.agent_name if e.as_agent else "", attachments=files,
                    language=e.language, role=Role.AGENT if e.as_agent else Role.SYSTEM,
                    rows=ctx.rows)
    ctx.queued_mail = True


def _tell_agent(ctx: Applying, e: TellAgent) -> None:
    queue_command_error(ctx.session, ctx.ticket, ctx.settings, ctx.composer, now=ctx.now,
                        key=f"{ctx.key}.command_error", to_address=ctx.actor or "",
                        errors=e.errors,
                        in_reply_to=ctx.message.message_id if ctx.message else None,
                        rows=ctx.rows)
    ctx.queued_mail = True


def _answer_search(ctx: Applying, e: AnswerSearch) -> None:
    queue_search_results(ctx.session, ctx.ticket, ctx.settings, ctx.composer, now=ctx.now,
                         key=f"{ctx.key}.search", to_address=ctx.actor or "",
                         searches=e.searches,
                         in_reply_to=ctx.message.message_id if ctx.message else None,
                         rows=ctx.rows)
    ctx.queued_mail = True


def _notify(ctx: Applying, e: NotifyLine) -> None:
    def make() -> Built | None:
        return line_notification(
            ctx.session, ctx.ticket, ctx.settings, ctx.composer, now=ctx.now, event=e.event,
            key=f"{ctx.key}.{e.key or e.event}",
            message=ctx.message if e.with_message else None,
            message_row=ctx.row if e.with_message else None, text=e.text,
            actor=ctx.actor if e.by_actor else None, from_line=e.from_line, to=e.to,
            reason=e.reason, deadline=dict(deadline) if deadline else None,
            articles=[dict(a) for a in e.articles],
            pending=ctx.rows.messages_of(ctx.ticket.id),
            # A ticket this cause opened has none of its mails in the database before the
            # cause's rows are first written.
            stored=not (ctx.opened and not ctx.rows.written))

    deadline = e.deadline or ctx.deadline
    if not ctx.contain_notifications:
        built = make()
    else:
        # A template or address that cannot be made into a mail must not cost the cause its
        # ticket entry: the notification is dropped and the ticket says why. Building only
        # reads, so nothing needs undoing (no savepoint: it cost two flushes per mail).
        try:
            built = make()
        except Exception as exc:
            log.exception("line notification for ticket %s failed", ctx.ticket.number)
            ctx.event(EventKind.NOTIFICATION_FAILED, {"error": f"{type(exc).__name__}: {exc}"})
            return
    if built is not None:
        queue_built(ctx.session, ctx.ticket, built, ctx.settings, now=ctx.now,
                    rows=ctx.rows)
        ctx.queued_mail = True


def _rearm(ctx: Applying, e: Rearm) -> None:
    if e.always or ctx.sla_changed:
        rearm(ctx.session, ctx.ticket, ctx.settings, ctx.now, fresh=ctx.fresh_ticket,
              gathered=ctx.rows, timers=ctx.timers, locked=ctx.locked, claimed=ctx.claimed)
        ctx.sla_changed = ctx.fresh_ticket = False
        ctx.timers = None   # as they were before this rearm: read again for another


_HANDLERS: dict[type, Callable[[Applying, Any], None]] = {
    Event: _event, SetStatus: _set_status, Assign: _assign, SetPriority: _priority,
    SetCategory: _category, AddTags: _tags, MoveToLine: _move, MarkBreached: _breached,
    Rate: _rate, ClientFollowUp: _follow_up, RecordResponse: _responded,
    Acknowledge: _acknowledge, MailClient: _mail_client, TellAgent: _tell_agent,
    AnswerSearch: _answer_search, NotifyLine: _notify, Rearm: _rearm,
}


def apply_effects(ctx: Applying, effects: Iterable[Effect]) -> None:
    """Carry out `effects` in order."""
    for effect in effects:
        _HANDLERS[type(effect)](ctx, effect)


@dataclass(frozen=True)
class Applied:
    ticket: Ticket
    message: MailRow
    queued_mail: bool = False
    notes: tuple[str, ...] = field(default=())


def apply_plan(session: Session, plan: Plan, inbound: Inbound, *, now: datetime,
               first_number: int, settings: Settings, composer: Composer,
               sender_name: str = "") -> Applied:
    """Write what the plan says; the caller commits."""
    # PostgreSQL: the ids it will likely need, in one statement (db/ids.py).
    draw_ids(session, ticket=int(plan.new_ticket is not None), message=2, outbox=2,
             inbound_id=inbound.id)
    try:
        return _apply_plan(session, plan, inbound, now=now, first_number=first_number,
                           settings=settings, composer=composer, sender_name=sender_name)
    finally:
        release_ids(session)


def _apply_plan(session: Session, plan: Plan, inbound: Inbound, *, now: datetime,
                first_number: int, settings: Settings, composer: Composer,
                sender_name: str) -> Applied:
    at = inbound.received_at
    opened = plan.new_ticket is not None
    ticket = open_ticket(session, plan, at, first_number) if opened \
        else join_ticket(session, plan, at, now)
    gathered = Gathered(tickets=[ticket])
    row = record_message(session, plan, ticket, inbound, gathered)
    ctx = Applying(session, settings, composer, now, ticket, key=str(inbound.id),
                   cause={"message_id": row.id}, at=at, actor=plan.sender,
                   actor_name=sender_name, message=plan.message, row=row, plan=plan,
                   sla_changed=opened, fresh_ticket=opened, opened=opened, rows=gathered)
    apply_effects(ctx, plan.effects)
    gathered.inbound.append({"b_id": inbound.id, "status": InboundStatus.DONE, "reason": None,
                             "processed_at": now})
    ctx.write_rows()   # the ticket, then the gathered rows, a table at a time
    return Applied(ticket, row, ctx.queued_mail)


__all__ = ["Applied", "Applying", "MAX_STORED_REFERENCES", "apply_bounce", "apply_effects",
           "apply_plan", "mark_inbound", "stored_references"]
