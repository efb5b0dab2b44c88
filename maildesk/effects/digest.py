"""The morning digest of a line mailbox, queued in the caller's transaction.

Four sections, each over the tickets of that line only:

- **overdue**: running and past a deadline not met (db/conditions.py's `overdue`, the same
  test as `tickets list --overdue` and the KPI report);
- **due today**: running, not overdue, with a deadline before the end of today's business day
  of the line's calendar;
- **unassigned**: new or open, nobody assigned;
- **waiting**: pending (waiting on the client) since more than `digests.waiting_days` days, by
  the open pause of the ticket's SLA clock.

Each ticket with its tag, subject, priority, status, the deadline in the digest's time zone
(the line's calendar) and the agents' reply address of the ticket, so an agent can answer a
command (`#assign me`, `#escalate`) straight from the digest. A digest that would list
nothing is not queued. Digests belong to no ticket: the outbox row has no ticket id and no
ticket event is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from maildesk.config.model import Line, Settings
from maildesk.db.conditions import RUNNING, overdue
from maildesk.db.models import Ticket, TicketStatus
from maildesk.effects.notify import agent_reply_address
from maildesk.effects.outgoing import queue_outgoing
from maildesk.outbound.compose import Composer, build_message, new_message_id
from maildesk.outbound.plural import plural
from maildesk.pipeline.agent import COMMAND_HELP
from maildesk.pipeline.subject import format_tag
from maildesk.sla.calendar import WorkCalendar

KIND = "digest"                    # the outbox row's kind
SECTIONS = ("overdue", "due_today", "unassigned", "waiting")
SECTION_LIMIT = 50                 # tickets listed per section; the count says how many more


def end_of_business_day(calendar: WorkCalendar, now: datetime) -> datetime:
    """The end of the last working span of `now`'s local day (midnight for a 24/7 calendar);
    `now` itself on a day without working time."""
    spans = calendar.instants_on(now.astimezone(calendar.zone).date())
    return spans[-1][1] if spans else now


def open_deadlines(ticket: Ticket) -> list[tuple[str, datetime]]:
    """The deadlines the ticket has not met yet, earliest first."""
    out = []
    if ticket.first_responded_at is None and ticket.first_response_due_at is not None:
        out.append(("first_response", ticket.first_response_due_at))
    if ticket.next_response_due_at is not None:
        out.append(("next_response", ticket.next_response_due_at))
    if ticket.resolution_due_at is not None:
        out.append(("resolution", ticket.resolution_due_at))
    return sorted(out, key=lambda kd: kd[1])


def pending_since(ticket: Ticket) -> datetime | None:
    """When a pending ticket's SLA clock stopped (the open pause), UTC."""
    if ticket.status is not TicketStatus.PENDING or not ticket.pauses:
        return None
    start, end = ticket.pauses[-1]
    if not start or end is not None:
        return None
    at = datetime.fromisoformat(start)
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


Row = tuple[Ticket, str | None, datetime | None]   # a ticket, its deadline's kind and time


def digest_tickets(session: Session, line_id: str, calendar: WorkCalendar, now: datetime,
                   waiting_days: int) -> dict[str, list[Row]]:
    """Each section's tickets of the line as (ticket, deadline kind, deadline or pending
    since), in the order the digest lists them."""
    of_line = Ticket.line == line_id
    late = list(session.scalars(select(Ticket).where(of_line, overdue(now))))
    late_ids = {t.id for t in late}
    end = end_of_business_day(calendar, now)
    today = [t for t in session.scalars(select(Ticket).where(
        of_line, Ticket.status.in_(RUNNING), or_(
            and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at >= now,
                 Ticket.first_response_due_at < end),
            and_(Ticket.next_response_due_at >= now, Ticket.next_response_due_at < end),
            and_(Ticket.resolution_due_at >= now, Ticket.resolution_due_at < end))))
        if t.id not in late_ids]
    unassigned = session.scalars(select(Ticket).where(
        of_line, Ticket.status.in_(RUNNING),
        or_(Ticket.assignee.is_(None), Ticket.assignee == "")).order_by(Ticket.created_at,
                                                                       Ticket.number))
    cutoff = now - timedelta(days=waiting_days)
    waiting = [(t, since) for t in session.scalars(select(Ticket).where(
        of_line, Ticket.status == TicketStatus.PENDING))
        if (since := pending_since(t)) is not None and since < cutoff]

    def first(ticket: Ticket, test: Any) -> Row:
        found = next(((k, d) for k, d in open_deadlines(ticket) if test(d)), (None, None))
        return ticket, found[0], found[1]

    by_due = lambda row: (row[2] or now, row[0].number)   # noqa: E731
    return {
        "overdue": sorted((first(t, lambda d: d < now) for t in late), key=by_due),
        "due_today": sorted((first(t, lambda d: now <= d < end) for t in today), key=by_due),
        "unassigned": [first(t, lambda d: True) for t in unassigned],
        "waiting": [(t, None, since) for t, since in sorted(waiting, key=lambda ts: ts[1])],
    }


def day_text(day: datetime, lang: str) -> str:
    """The digest's day as a heading writes it: "Monday 7 December", "понедельник, 7 декабря"
    (CLDR names; the month in Russian in the genitive)."""
    from babel.dates import format_date

    base = (lang or "en").split("-")[0].split("_")[0].lower()
    pattern = {"en": "EEEE d MMMM", "ru": "EEEE, d MMMM"}.get(base)
    try:
        return format_date(day, pattern or "full", locale=lang.replace("-", "_") or "en")
    except (ValueError, LookupError):
        return format_date(day, "EEEE d MMMM", locale="en")


def digest_context(settings: Settings, line: Line, calendar: WorkCalendar, now: datetime,
                   sections: dict[str, list[Row]],
                   lang: str = "en") -> dict[str, Any]:
    """What the digest templates see (README of templates/: `digest`)."""
    zone = calendar.zone
    local_now = now.astimezone(zone)
    listed = []
    for key in SECTIONS:
        rows = sections.get(key, [])
        listed.append({"key": key, "count": len(rows), "more": max(0, len(rows) - SECTION_LIMIT),
                       "tickets": [_ticket(settings, t, kind, when, zone, now)
                                   for t, kind, when in rows[:SECTION_LIMIT]]})
    total = len({t.id for rows in sections.values() for t, _, _ in rows})
    return {
        "instance": settings.instance_name,
        "now": local_now,
        "commands_help": COMMAND_HELP,
        "plural": plural,
        "digest": {"line": {"id": line.id, "name": line.name, "mailbox": line.mailbox},
                   "date": local_now, "day": day_text(local_now, lang),
                   "zone": getattr(zone, "key", str(zone)),
                   "waiting_days": settings.digests.waiting_days, "total": total,
                   "sections": listed},
    }


def _ticket(settings: Settings, ticket: Ticket, kind: str | None, when: datetime | None,
            zone: Any, now: datetime) -> dict[str, Any]:
    tag = format_tag(settings.ticket_tag, ticket.number)
    reply = agent_reply_address(ticket)
    pending = when if ticket.status is TicketStatus.PENDING else None
    return {
        "number": ticket.number, "tag": tag, "subject": ticket.subject,
        "priority": ticket.priority, "status": ticket.status.value,
        "assignee": ticket.assignee, "requester": ticket.requester,
        "created_at": ticket.created_at.astimezone(zone),
        "deadline": when.astimezone(zone) if when is not None and pending is None else None,
        "deadline_kind": kind,
        "late": when is not None and pending is None and when < now,   # the deadline passed
        "pending_since": pending.astimezone(zone) if pending else None,
        "pending_days": (now - pending).days if pending else None,
        "reply_address": reply,
        "mailto": f"mailto:{reply}?subject={quote(f'Re: {tag} {ticket.subject}', safe='')}",
    }


def language(composer: Composer, settings: Settings) -> str:
    """The desk's language when its templates have it, else English, else any."""
    for lang in (settings.language, "en"):
        if lang in composer.languages:
            return lang
    return sorted(composer.languages)[0] if composer.languages else "en"


def queue_digest(session: Session, settings: Settings, composer: Composer, line: Line,
                 calendar: WorkCalendar, now: datetime) -> int:
    """Queue the line's digest (from the support address, to the line mailbox) unless it would
    list nothing; how many mails were queued (0 or 1)."""
    sections = digest_tickets(session, line.id, calendar, now, settings.digests.waiting_days)
    if not any(sections.values()):
        return 0
    lang = language(composer, settings)
    context = digest_context(settings, line, calendar, now, sections, lang)
    rendered = composer.render("digest", lang, context)
    sender = settings.support_addresses[0]
    message_id = new_message_id(settings.domain)
    data = build_message(from_name=settings.instance_name, from_address=sender,
                         to_name=line.name, to_address=line.mailbox, subject=rendered.subject,
                         rendered=rendered, message_id=message_id, in_reply_to=None,
                         references=(), reply_to=line.mailbox, date=now,
                         auto="auto-generated")
    queue_outgoing(session, settings, ticket_id=None, kind=KIND, message_id=message_id,
                   mailbox=sender, to_address=line.mailbox, data=data, now=now)
    return 1


def digest_lines(settings: Settings) -> Iterable[Line]:
    """The lines that get a digest: those named in `digests.lines`, else every internal one."""
    named = settings.digests.lines
    if named is None:
        return [line for line in settings.lines if not line.external]
    return [line for line in (settings.line(x) for x in named) if line is not None]
