"""Reading tickets: the list and one ticket with its messages, in the stable JSON shapes of
views.py (README: "JSON output"), which the text output is printed from too."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from maildesk.db.models import Message, Ticket, TicketStatus
from maildesk.services.context import Context
from maildesk.services.errors import BadRequest, NotFound
from maildesk.views import ticket_detail, ticket_summary

# How many other tickets of the same requester `show` names.
EARLIER_TICKETS = 10


def list_tickets(ctx: Context, *, status: TicketStatus | None = None, line: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """Tickets newest first, each with its message count; `limit` 0 means all."""
    counts = (select(Message.ticket_id, func.count().label("n")).group_by(Message.ticket_id)
              .subquery())
    query = (select(Ticket, func.coalesce(counts.c.n, 0))
             .outerjoin(counts, counts.c.ticket_id == Ticket.id).order_by(Ticket.number.desc()))
    if status:
        query = query.where(Ticket.status == status)
    if line:
        query = query.where(Ticket.line == line)
    if limit:
        query = query.limit(limit)
    tag = ctx.settings.ticket_tag
    with ctx.read_session() as session:
        return [ticket_summary(t, tag, n) for t, n in session.execute(query).all()]


def parse_ticket_number(text: str) -> int:
    """1042 from "1042", "MD-1042" or "[MD-1042]"."""
    digits = text.rsplit("-", 1)[-1].strip("[]# ")
    if not digits.isdigit():
        raise BadRequest(f"not a ticket number: {text}")
    return int(digits)


def show_ticket(ctx: Context, number: str) -> dict[str, Any]:
    """One ticket with its participants, messages, linked ticket and the requester's other
    tickets ("requester_tickets", newest first). `number` as the user wrote it."""
    wanted = parse_ticket_number(number)
    with ctx.read_session() as session:
        ticket = session.scalar(
            select(Ticket).where(Ticket.number == wanted)
            .options(selectinload(Ticket.participants),
                     selectinload(Ticket.messages).selectinload(Message.attachments)))
        if ticket is None:
            raise NotFound(f"no ticket {number}")
        linked = (session.scalar(select(Ticket.number).where(Ticket.id == ticket.linked_ticket_id))
                  if ticket.linked_ticket_id else None)
        earlier = session.execute(
            select(Ticket.number, Ticket.subject, Ticket.status)
            .where(Ticket.requester == ticket.requester, Ticket.id != ticket.id)
            .order_by(Ticket.number.desc()).limit(EARLIER_TICKETS)).all()
        data = ticket_detail(ticket, ctx.settings.ticket_tag, linked)
    data["requester_tickets"] = [{"number": n, "subject": s, "status": st.value}
                                 for n, s, st in earlier]
    return data
