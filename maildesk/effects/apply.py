"""Apply a Plan inside the caller's transaction: ticket, participants, message, events, inbound."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.db.models import (Attachment, Direction, Inbound, InboundStatus, Message,
                                Participant, Role, Ticket, TicketEvent, TicketStatus)
from maildesk.db.queries import next_ticket_number
from maildesk.pipeline.plan import Plan, dedupe_key

_TOKEN_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def new_reply_token() -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(6))


def apply_plan(session: Session, plan: Plan, inbound: Inbound, *, now: datetime,
               first_number: int) -> Ticket:
    """Write what the plan says; the caller commits. Returns the ticket the message joined."""
    at = inbound.received_at
    if plan.new_ticket is not None:
        nt = plan.new_ticket
        ticket = Ticket(number=next_ticket_number(session, first_number),
                        reply_token=new_reply_token(), subject=nt.subject,
                        subject_key=nt.subject_key, status=TicketStatus.NEW, priority=nt.priority,
                        line=nt.line, category=nt.category, language=nt.language,
                        requester=nt.requester, requester_name=nt.requester_name,
                        mailbox=nt.mailbox, linked_ticket_id=nt.linked_ticket_id, created_at=at,
                        updated_at=at, last_activity_at=at)
        session.add(ticket)
        session.flush()
    else:
        ticket = session.get_one(Ticket, plan.thread.ticket_id)
        ticket.last_activity_at = max(ticket.last_activity_at, at)
        ticket.updated_at = now
        if plan.set_status is not None:
            ticket.status = plan.set_status
            if plan.set_status is TicketStatus.OPEN:
                ticket.resolved_at = None

    known = plan.new_ticket is None and session.scalar(select(Participant.id).where(
        Participant.ticket_id == ticket.id, Participant.address == plan.sender))
    if plan.sender and not known:
        session.add(Participant(ticket_id=ticket.id, address=plan.sender,
                                name=plan.message.from_.name if plan.message.from_ else "",
                                role=plan.role))

    m = plan.message
    message = Message(
        ticket_id=ticket.id, inbound_id=inbound.id, direction=Direction.IN, role=plan.role,
        message_id=m.message_id, dedupe_key=dedupe_key(m), from_address=plan.sender,
        from_name=m.from_.name if m.from_ else "", to=[a.address for a in m.to],
        cc=[a.address for a in m.cc], subject=m.subject, sent_at=m.date, received_at=at,
        body_text=m.text, has_html=m.has_html, thread_reason=plan.thread.reason,
        internal=False, defects=list(m.defects))
    session.add(message)
    session.flush()
    session.add_all(Attachment(message_id=message.id, filename=a.filename[:512],
                               content_type=a.content_type[:255], size=a.size, sha256=a.sha256,
                               part=a.part[:64]) for a in m.attachments)
    session.add_all(TicketEvent(ticket_id=ticket.id, at=at, kind=kind, actor=plan.sender,
                                data={**data, "message_id": message.id})
                    for kind, data in plan.events)
    inbound.status = InboundStatus.DONE
    inbound.processed_at = now
    inbound.reason = None
    return ticket


def mark_inbound(inbound: Inbound, status: InboundStatus, reason: str, *, now: datetime) -> None:
    inbound.status = status
    inbound.reason = reason
    inbound.processed_at = now


__all__ = ["apply_plan", "mark_inbound", "new_reply_token", "Role"]
