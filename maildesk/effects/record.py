"""A stored mail written down: the ticket it opens or joins, the message on it with its
attachments and references; a bounce of our own mail; the inbound row's end state."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from maildesk.addresses import new_token
from maildesk.db.models import (Direction, Inbound, InboundStatus, Message,
                                Outbox, OutboxStatus, Participant, Role, Ticket,
                                TicketEvent, TicketStatus)
from maildesk.db.ids import new_id
from maildesk.db.queries import held_tickets, next_ticket_number, takes_part
from maildesk.effects.events import Gathered
from maildesk.domain import EventKind
from maildesk.pipeline.bounces import DeliveryReport
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.plan import Plan, dedupe_key
from maildesk.search.index import index_message

_KNOWN = select(Participant.id).where(Participant.ticket_id == bindparam("ticket_id"),
                                     Participant.address == bindparam("address"))
# Of a mail's In-Reply-To and References, kept for `queries.tickets_referencing`: In-Reply-To,
# then the newest References. Plenty for real threads, and a hostile mail naming thousands of
# ids writes no more rows than this.
MAX_STORED_REFERENCES = 50


def stored_references(message: ParsedMessage) -> list[str]:
    """The ids of other mails that `message` names, as recorded beside it (capped)."""
    ids = dict.fromkeys(i for i in (*message.in_reply_to, *reversed(message.references))
                        if i and i != message.message_id)
    return list(ids)[:MAX_STORED_REFERENCES]


def open_ticket(session: Session, plan: Plan, at: datetime, first_number: int) -> Ticket:
    """The new ticket the plan asks for, numbered, with its id (drawn in advance: db/ids.py),
    written with the cause's other rows. It gets both its tokens now: the agents' one is
    needed by its first line notification, and set later it cost an UPDATE after the INSERT."""
    nt, deadlines = plan.new_ticket, plan.deadlines
    assert nt is not None
    ticket = Ticket(id=new_id(session, Ticket),
                    number=next_ticket_number(session, first_number),
                    reply_token=new_token(), agent_token=new_token(), subject=nt.subject,
                    subject_key=nt.subject_key, status=TicketStatus.NEW, priority=nt.priority,
                    line=nt.line, category=nt.category, language=nt.language,
                    requester=nt.requester, requester_name=nt.requester_name,
                    mailbox=nt.mailbox, linked_ticket_id=nt.linked_ticket_id, created_at=at,
                    tags=list(nt.tags), assignee=nt.assignee, sla_policy=nt.sla_policy,
                    updated_at=at, last_activity_at=at, line_entered_at=at, pauses=[],
                    first_line=nt.line, escalation_count=0, reopen_count=0,
                    first_response_due_at=deadlines.first_response if deadlines else None,
                    resolution_due_at=deadlines.resolution if deadlines else None)
    return ticket   # not in the session: Gathered.write inserts it (effects/events.py)


def join_ticket(session: Session, plan: Plan, at: datetime, now: datetime) -> Ticket:
    """The ticket the message joins, its activity brought up to date. On SQLite (one writer)
    the ticket decide() loaded is current (lookups.py keeps it loaded); on PostgreSQL the
    statement of process/contention.py that locked it read it again (else it is read here)."""
    held = held_tickets(session)
    reread = session.get_bind().dialect.name == "postgresql" and not (
        held is not None and held.locked == plan.thread.ticket_id)
    ticket = session.get_one(Ticket, plan.thread.ticket_id, populate_existing=reread)
    ticket.last_activity_at = max(ticket.last_activity_at, at)
    ticket.updated_at = now
    return ticket


def _known(session: Session, ticket_id: int, address: str) -> bool:
    # On the connection: only the ticket's activity is pending, written with the cause.
    return session.connection().scalar(
        _KNOWN, {"ticket_id": ticket_id, "address": address}) is not None


class MailRow(SimpleNamespace):
    """A recorded mail's columns as the effects read them (its notification, its search
    entry). Not an ORM object: the row goes in by Core with the cause's others, and building
    an instrumented Message cost more than inserting it."""

    id: int
    ticket_id: int
    subject: str
    body_text: str
    from_name: str
    from_address: str
    received_at: datetime
    internal: bool


def record_message(session: Session, plan: Plan, ticket: Ticket, inbound: Inbound,
                   gathered: Gathered) -> MailRow:
    """The mail on its ticket (its sender a participant), with attachments; its references
    and search entries (with the ticket's subject when it opens the ticket) into `gathered`."""
    m, at = plan.message, inbound.received_at
    known = plan.new_ticket is None and (
        takes_part(session, ticket.id, plan.sender)   # decide's lookups saw it
        or _known(session, ticket.id, plan.sender))
    if plan.sender and not known:
        gathered.participants.append({"ticket_id": ticket.id, "address": plan.sender,
                                      "name": m.from_.name if m.from_ else "",
                                      "role": plan.role})
    row = {"id": new_id(session, Message), "ticket_id": ticket.id, "inbound_id": inbound.id,
           "direction": Direction.IN, "role": plan.role, "message_id": m.message_id,
           "dedupe_key": dedupe_key(m), "from_address": plan.sender,
           "from_name": m.from_.name if m.from_ else "", "to": [a.address for a in m.to],
           "cc": [a.address for a in m.cc], "subject": m.subject, "sent_at": m.date,
           "received_at": at, "body_text": m.text, "has_html": m.has_html,
           "thread_reason": plan.thread.reason, "internal": plan.internal,
           "defects": list(m.defects)}
    gathered.messages.append(row)
    message = MailRow(**row)   # what the effects read of the mail
    gathered.references.extend(
        {"message_id": row["id"], "ticket_id": ticket.id, "referenced_id": r}
        for r in stored_references(m))
    gathered.attachments.extend(
        {"message_id": row["id"], "filename": a.filename[:512],
         "content_type": a.content_type[:255], "size": a.size, "sha256": a.sha256,
         "part": a.part[:64]} for a in m.attachments)
    index_message(gathered.search, message,
                  ticket=ticket if plan.new_ticket is not None else None, analysed=m.analysed)
    return message


def mark_inbound(inbound: Inbound, status: InboundStatus, reason: str, *, now: datetime) -> None:
    inbound.status = status
    inbound.reason = reason
    inbound.processed_at = now


def apply_bounce(session: Session, inbound: Inbound, bounce: ParsedMessage, outbox: Outbox,
                 report: DeliveryReport, *, now: datetime) -> int | None:
    """A mail to the verified return path of our mail. A failure report marks the outgoing
    mail failed (which mutes autoreplies to that address for a while); anything else there
    (a delay warning, an out-of-office) changes nothing. Either way the ticket shows it as an
    internal note, and nothing else happens (no reopening, no reply)."""
    summary = report.summary
    if report.failed:
        outbox.status = OutboxStatus.FAILED
        outbox.bounced_at = inbound.received_at
        outbox.last_error = f"bounced: {summary}"
    number = None
    if outbox.ticket_id is not None:
        ticket = session.get_one(Ticket, outbox.ticket_id)
        number = ticket.number
        message = Message(
            id=new_id(session, Message),
            ticket_id=ticket.id, inbound_id=inbound.id, direction=Direction.IN, role=Role.SYSTEM,
            message_id=bounce.message_id, dedupe_key=dedupe_key(bounce),
            from_address=bounce.from_.address if bounce.from_ else inbound.mail_from,
            from_name=bounce.from_.name if bounce.from_ else "", to=[a.address for a in bounce.to],
            cc=[], subject=bounce.subject, sent_at=bounce.date, received_at=inbound.received_at,
            body_text=bounce.text, has_html=bounce.has_html, thread_reason="bounce",
            internal=True, defects=list(bounce.defects))
        session.add(message)
        session.add(TicketEvent(ticket_id=ticket.id, at=inbound.received_at,
                                kind=EventKind.BOUNCE if report.failed else EventKind.DELIVERY_NOTICE,
                                actor=None, data={"outbox_id": outbox.id, "summary": summary,
                                                  "recipients": outbox.recipients,
                                                  "failed": report.failed, "why": report.why,
                                                  "message_id": message.id}))
    inbound.status = InboundStatus.DONE
    inbound.processed_at = now
    inbound.reason = (f"bounce of outgoing mail {outbox.id}: {summary}" if report.failed else
                      f"delivery notice about outgoing mail {outbox.id}, not a failure: "
                      f"{report.why}")
    return number
