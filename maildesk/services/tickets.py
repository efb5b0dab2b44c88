"""Reading tickets: the list and one ticket with its messages, in the stable JSON shapes of
views.py (README: "JSON output"), which the text output is printed from too
(services/ticket_text.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from maildesk.db.conditions import RUNNING, overdue
from maildesk.db.models import Message, Ticket, TicketEvent, TicketStatus
from maildesk.domain import EventKind
from maildesk.services.context import Context
from maildesk.services.errors import BadRequest, NotFound
from maildesk.services.reports import parse_time
from maildesk.services.ticket_text import describe_event
from maildesk.views import event_view, iso, ticket_detail, ticket_summary

# How many other tickets of the same requester `show` names.
EARLIER_TICKETS = 10
DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


def list_tickets(ctx: Context, *, status: TicketStatus | None = None, line: str | None = None,
                 limit: int = 100, requester: str | None = None, assignee: str | None = None,
                 unassigned: bool = False, overdue_only: bool = False,
                 since: str | datetime | None = None) -> list[dict[str, Any]]:
    """Tickets newest first, each with its message count; `limit` 0 means all. The filters
    combine (all must hold): `requester`, `assignee` (addresses, any letter case),
    `unassigned`, `overdue_only` (running and past a deadline it has not met, at the clock's
    now: db/conditions.py), `since` (created at or after: a datetime, or a date or ISO time
    as `report --since` reads it, in the report's zone). BadRequest for a `since` that does
    not parse, or `assignee` with `unassigned`."""
    if assignee and unassigned:
        raise BadRequest("--assignee and --unassigned exclude each other")
    if limit < 0:
        raise BadRequest(f"--limit must be 0 (all) or more, not {limit}")
    start = _since(ctx, since) if isinstance(since, str) else since
    query = list_query(status=status, line=line, requester=requester, assignee=assignee,
                       unassigned=unassigned, overdue_at=ctx.clock.now() if overdue_only else None,
                       since=start)
    if limit:
        query = query.limit(limit)
    tag = ctx.settings.ticket_tag
    with ctx.read_session() as session:
        return [ticket_summary(t, tag, n) for t, n in session.execute(query).all()]


def list_query(*, status: TicketStatus | None = None, line: str | None = None,
               requester: str | None = None, assignee: str | None = None,
               unassigned: bool = False, overdue_at: datetime | None = None,
               since: datetime | None = None) -> Select[tuple[Ticket, int]]:
    """The tickets and their message counts, newest first, filtered. Each filter can be read
    from an index: requester (ix_ticket_requester), status and overdue (its status test,
    ix_ticket_status_number), since (ix_ticket_created_at). Assignee has no index of its own
    yet: the newest tickets are read (by number) until `limit` of them match."""
    # A count per listed ticket on ix_message_ticket_id (not an aggregate over every message).
    count = (select(func.count()).select_from(Message).where(Message.ticket_id == Ticket.id)
             .correlate(Ticket).scalar_subquery())
    query = select(Ticket, count).order_by(Ticket.number.desc())
    if status:
        query = query.where(Ticket.status == status)
    if line:
        query = query.where(Ticket.line == line)
    if requester:
        query = query.where(Ticket.requester == _address(requester))
    if assignee:
        query = query.where(Ticket.assignee == _address(assignee))
    if unassigned:
        query = query.where(Ticket.assignee.is_(None))
    if overdue_at is not None:
        query = query.where(overdue(overdue_at))
    if since is not None:
        query = query.where(Ticket.created_at >= since)
        if not requester:
            # SQLite (without statistics) would rather walk the number index for the order
            # and test every ticket's created_at: read the period from its index instead.
            query = query.with_hint(Ticket, "INDEXED BY ix_ticket_created_at", "sqlite")
    return query


def list_zone(ctx: Context) -> ZoneInfo:
    """The zone `tickets list` reads --since in and shows its times in: the report's."""
    from maildesk.report.kpi import report_zone

    return report_zone(ctx.settings)


def _since(ctx: Context, text: str) -> datetime:
    try:
        return parse_time(text, list_zone(ctx), end=False)
    except ValueError as exc:
        raise BadRequest(f"--since: {exc}") from None


def _address(text: str) -> str:
    """Addresses are stored lower-cased; "<a@b>" as pasted from a mail works too."""
    return text.strip().strip("<>").strip().lower()


def parse_ticket_number(text: str) -> int:
    """1042 from "1042", "MD-1042" or "[MD-1042]"."""
    digits = text.rsplit("-", 1)[-1].strip("[]# ")
    if not digits.isdigit():
        raise BadRequest(f"not a ticket number: {text}")
    return int(digits)


def show_ticket(ctx: Context, number: str) -> dict[str, Any]:
    """One ticket with its participants, messages, history, deadlines as they stand at the
    clock's now, linked ticket and the requester's other tickets ("requester_tickets", newest
    first, at most EARLIER_TICKETS; "requester_ticket_count" counts them all). `number` as the
    user wrote it."""
    wanted = parse_ticket_number(number)
    settings = ctx.settings
    now = ctx.clock.now()
    with ctx.read_session() as session:
        ticket = session.scalar(
            select(Ticket).where(Ticket.number == wanted)
            .options(selectinload(Ticket.participants),
                     selectinload(Ticket.messages).selectinload(Message.attachments)))
        if ticket is None:
            raise NotFound(f"no ticket {number}")
        linked = (session.execute(select(Ticket.number, Ticket.subject, Ticket.status)
                                  .where(Ticket.id == ticket.linked_ticket_id)).first()
                  if ticket.linked_ticket_id else None)
        others = Ticket.requester == ticket.requester, Ticket.id != ticket.id
        earlier = session.execute(
            select(Ticket.number, Ticket.subject, Ticket.status, Ticket.created_at)
            .where(*others).order_by(Ticket.number.desc()).limit(EARLIER_TICKETS)).all()
        other_count = (session.scalar(select(func.count()).select_from(Ticket).where(*others))
                       if len(earlier) == EARLIER_TICKETS else len(earlier))
        events = list(session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                                      .order_by(TicketEvent.at, TicketEvent.id)))
        linked_ids = {(e.data or {}).get("ticket_id") for e in events
                      if e.kind == EventKind.LINKED and (e.data or {}).get("ticket_id")}
        numbers = dict(session.execute(select(Ticket.id, Ticket.number)
                                       .where(Ticket.id.in_(linked_ids))).all()) \
            if linked_ids else {}
        data = ticket_detail(ticket, settings.ticket_tag, linked[0] if linked else None)
        zone = settings.sla_policies.zone(ticket.sla_policy)
        line = settings.line(ticket.line)
        agent = settings.agent(ticket.assignee) if ticket.assignee else None
        data.update({
            "line_name": line.name if line else None,
            "assignee_name": (agent[1].name or None) if agent else None,
            "time_zone": zone.key,
            "as_of": iso(now),
            "deadlines": deadlines(ticket, now),
            "clock_paused_since": _paused_since(ticket),
            "linked": ({"number": linked[0], "tag": _tag(settings.ticket_tag, linked[0]),
                        "subject": linked[1], "status": linked[2].value} if linked else None),
            "events": [event_view(e, describe_event(e.kind, e.data, zone, settings.ticket_tag,
                                                    numbers)) for e in events],
        })
    data["overdue"] = any(d["state"] == "overdue" for d in data["deadlines"].values())
    data["requester_tickets"] = [{"number": n, "tag": _tag(settings.ticket_tag, n),
                                  "subject": s, "status": st.value, "created_at": iso(at)}
                                 for n, s, st, at in earlier]
    data["requester_ticket_count"] = other_count
    return data


def _tag(tag: str, number: int) -> str:
    return f"{tag}-{number}"


def _paused_since(ticket: Ticket) -> str | None:
    """When a pending ticket's SLA clock stopped (the open pause), as ISO UTC."""
    if ticket.status is not TicketStatus.PENDING or not ticket.pauses:
        return None
    start, end = ticket.pauses[-1]
    return iso(datetime.fromisoformat(start)) if start and end is None else None


def deadlines(ticket: Ticket, now: datetime) -> dict[str, dict[str, Any]]:
    """Each deadline as it stands at `now`: `due_at`, `done_at` (when it was met: the first
    answer, the resolution) and `state`:

    - `running`: the clock runs and the deadline is ahead; `overdue`: it runs and the deadline
      has passed (the same test as `tickets list --overdue`, db/conditions.py);
    - `paused`: the ticket is pending, its clock stands still (the deadline moves on resume);
    - `met` / `late`: done at or before / after the deadline;
    - `stopped`: the ticket was resolved or closed without it (a first answer never given);
    - `none`: no deadline (no SLA target, or no follow-up waiting for an answer); `done_at`
      may still say when it was done.
    """
    running = ticket.status in RUNNING
    done_at = (ticket.resolved_at or ticket.closed_at) if ticket.status in DONE else None
    out = {"first_response": _deadline(ticket.first_response_due_at, ticket.first_responded_at,
                                       ticket.status, running, now),
           "resolution": _deadline(ticket.resolution_due_at, done_at, ticket.status, running,
                                   now),
           "next_response": _deadline(ticket.next_response_due_at, None, ticket.status, running,
                                      now)}
    if ticket.next_response_due_at is None or (ticket.status in DONE):
        out["next_response"] = {"due_at": None, "done_at": None, "state": "none"}
    return out


def _deadline(due: datetime | None, done: datetime | None, status: TicketStatus, running: bool,
              now: datetime) -> dict[str, Any]:
    if due is None:
        state = "none"
    elif done is not None:
        state = "met" if done <= due else "late"
    elif running:
        state = "overdue" if due < now else "running"
    elif status is TicketStatus.PENDING:
        state = "paused"
    else:
        state = "stopped"
    return {"due_at": iso(due), "done_at": iso(done), "state": state}
