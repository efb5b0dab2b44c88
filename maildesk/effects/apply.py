"""Apply a Plan inside the caller's transaction: ticket, participants, message, events, inbound."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from email.utils import parsedate_to_datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from maildesk.addresses import new_token
from maildesk.config.model import Settings
from maildesk.db.models import (Attachment, Direction, Inbound, InboundStatus, Message,
                                MessageReference, Outbox, OutboxStatus, Participant, Role, Ticket,
                                TicketEvent, TicketStatus)
from maildesk.db.queries import next_ticket_number
from maildesk.effects.lifecycle import change_status, rearm
from maildesk.effects.outgoing import client_reply_address, queue_outgoing
from maildesk.outbound.compose import (Composer, build_message, clean_header, message_id_for)
from maildesk.pipeline.bounces import DeliveryReport
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.plan import Plan, dedupe_key
from maildesk.pipeline.subject import format_tag
from maildesk.sla.policy import Deadlines

log = logging.getLogger(__name__)

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


def apply_plan(session: Session, plan: Plan, inbound: Inbound, *, now: datetime,
               first_number: int, settings: Settings | None = None,
               composer: Composer | None = None) -> tuple[Ticket, Message]:
    """Write what the plan says; the caller commits. Returns the ticket the message joined
    and the message as recorded on it."""
    at = inbound.received_at
    if plan.new_ticket is not None:
        nt, deadlines = plan.new_ticket, plan.deadlines
        ticket = Ticket(number=next_ticket_number(session, first_number),
                        reply_token=new_token(), subject=nt.subject,
                        subject_key=nt.subject_key, status=TicketStatus.NEW, priority=nt.priority,
                        line=nt.line, category=nt.category, language=nt.language,
                        requester=nt.requester, requester_name=nt.requester_name,
                        mailbox=nt.mailbox, linked_ticket_id=nt.linked_ticket_id, created_at=at,
                        tags=list(nt.tags), assignee=nt.assignee, sla_policy=nt.sla_policy,
                        updated_at=at, last_activity_at=at, line_entered_at=at, pauses=[],
                        first_line=nt.line, escalation_count=0, reopen_count=0,
                        first_response_due_at=deadlines.first_response if deadlines else None,
                        resolution_due_at=deadlines.resolution if deadlines else None)
        session.add(ticket)
        session.flush()
        sla_changed = True
    else:
        ticket = session.get_one(Ticket, plan.thread.ticket_id)
        ticket.last_activity_at = max(ticket.last_activity_at, at)
        ticket.updated_at = now
        sla_changed = False
        if plan.set_status is not None:
            sla_changed = change_status(ticket, plan.set_status, at)
            if any(kind == "reopened" for kind, _ in plan.events):
                ticket.reopen_count = (ticket.reopen_count or 0) + 1
        if plan.rating is not None:
            ticket.rating, ticket.rated_at = plan.rating.score, at
        if plan.client_follow_up:
            # The client wrote and waits for an answer: the next-response clock starts
            # (the first answer has its own deadline).
            if ticket.first_responded_at is not None and ticket.next_response_since is None \
                    and ticket.status in (TicketStatus.NEW, TicketStatus.OPEN):
                ticket.next_response_since = at
                sla_changed = True

    known = plan.new_ticket is None and session.scalar(
        _KNOWN, {"ticket_id": ticket.id, "address": plan.sender})
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
        internal=plan.internal, defects=list(m.defects))
    session.add(message)
    session.flush()
    references = stored_references(m)
    if references:
        session.execute(insert(MessageReference), [
            {"message_id": message.id, "ticket_id": ticket.id, "referenced_id": r}
            for r in references])
    session.add_all(Attachment(message_id=message.id, filename=a.filename[:512],
                               content_type=a.content_type[:255], size=a.size, sha256=a.sha256,
                               part=a.part[:64]) for a in m.attachments)
    session.add_all(TicketEvent(ticket_id=ticket.id, at=at, kind=kind, actor=plan.sender,
                                data={**data, "message_id": message.id})
                    for kind, data in plan.events)
    if plan.autoreply is not None and settings is not None and composer is not None:
        # A template or address that cannot be rendered must not cost the client a ticket:
        # the acknowledgement is dropped, and the ticket says why. Composing touches no
        # database, so nothing needs undoing.
        try:
            autoreply = compose_autoreply(plan, ticket, inbound, m, settings, composer, now=now)
        except Exception as exc:
            log.exception("autoreply for ticket %s could not be composed", ticket.number)
            session.add(TicketEvent(ticket_id=ticket.id, at=now, kind="autoreply_failed",
                                    actor=None, data={"error": f"{type(exc).__name__}: {exc}"}))
        else:
            queue_autoreply(session, autoreply, ticket, settings, now=now)
    if sla_changed and settings is not None:
        rearm(session, ticket, settings, now)
    inbound.status = InboundStatus.DONE
    inbound.processed_at = now
    inbound.reason = None
    return ticket, message


@dataclass(frozen=True)
class ComposedAutoreply:
    message_id: str
    subject: str
    to_address: str
    language: str
    text: str
    has_html: bool
    data: bytes


def autoreply_context(*, ticket: dict[str, object], tag: str, client_name: str,
                      client_address: str, instance: str, reply_address: str,
                      deadlines: Deadlines | None, client: ParsedMessage) -> dict[str, object]:
    """What an autoreply template sees (also for `rules test`)."""
    zone = deadlines.timezone if deadlines else None

    def shown(value: datetime | None) -> datetime | None:
        return value.astimezone(zone) if value is not None else None

    return {
        "ticket": ticket, "tag": tag, "client_name": client_name,
        "client_address": client_address, "instance": instance, "reply_address": reply_address,
        "deadlines": {"first_response": shown(deadlines.first_response if deadlines else None),
                      "resolution": shown(deadlines.resolution if deadlines else None)},
        # Mail that came outside working hours: when work on it starts.
        "resumes_at": shown(deadlines.resumes_at if deadlines else None),
        "client_deadlines": _in_client_zone(client, deadlines),
    }


def _in_client_zone(client: ParsedMessage, deadlines: Deadlines | None) -> dict | None:
    """The deadlines at the UTC offset of the client's own Date header, when it differs from
    the calendar's (a client in Novosibirsk reads 21:00 for Moscow's 17:00); None otherwise."""
    if deadlines is None or deadlines.first_response is None:
        return None
    try:
        sent = parsedate_to_datetime(client.header("date") or "")
    except (TypeError, ValueError, IndexError):
        return None
    offset = sent.utcoffset() if sent is not None and sent.tzinfo else None
    due = deadlines.first_response
    if offset is None or offset == due.astimezone(deadlines.timezone).utcoffset() \
            or abs(offset) > timedelta(hours=14):
        return None
    zone = dt_timezone(offset)
    return {"first_response": due.astimezone(zone),
            "resolution": deadlines.resolution.astimezone(zone) if deadlines.resolution else None,
            "zone": format_offset(offset)}


def format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def compose_autoreply(plan: Plan, ticket: Ticket, inbound: Inbound, client: ParsedMessage,
                      settings: Settings, composer: Composer, *,
                      now: datetime) -> ComposedAutoreply:
    """Render the acknowledgement of a new ticket into the bytes to send (no database)."""
    assert plan.autoreply is not None
    tag = format_tag(settings.ticket_tag, ticket.number)
    context = autoreply_context(
        ticket={"number": ticket.number, "subject": ticket.subject, "priority": ticket.priority,
                "line": ticket.line},
        tag=tag, client_name=clean_header(plan.autoreply.to_name, 200),
        client_address=plan.autoreply.to_address, instance=settings.instance_name,
        reply_address=client_reply_address(ticket), deadlines=plan.deadlines, client=client)
    rendered = composer.render(plan.autoreply.template, plan.autoreply.language, context)
    subject = rendered.subject if tag in rendered.subject else f"{tag} {rendered.subject}"
    message_id = message_id_for(f"{inbound.id}.autoreply", settings.domain)
    data = build_message(
        from_name=settings.instance_name, from_address=ticket.mailbox,
        to_name=plan.autoreply.to_name, to_address=plan.autoreply.to_address, subject=subject,
        rendered=rendered, message_id=message_id, in_reply_to=client.message_id,
        references=(*client.references, *([client.message_id] if client.message_id else [])),
        reply_to=client_reply_address(ticket), date=now, auto=True)
    return ComposedAutoreply(message_id=message_id, subject=subject,
                             to_address=plan.autoreply.to_address,
                             language=plan.autoreply.language, text=rendered.text,
                             has_html=rendered.html is not None, data=data)


def queue_autoreply(session: Session, autoreply: ComposedAutoreply, ticket: Ticket,
                    settings: Settings, *, now: datetime) -> None:
    """Put the acknowledgement in the outbox and on the ticket, in the caller's transaction."""
    message_id = autoreply.message_id
    queue_outgoing(session, settings, ticket_id=ticket.id, kind="autoreply",
                   message_id=message_id, mailbox=ticket.mailbox, to_address=autoreply.to_address,
                   data=autoreply.data, now=now)
    session.add(Message(
        ticket_id=ticket.id, inbound_id=None, direction=Direction.OUT, role=Role.SYSTEM,
        message_id=message_id, dedupe_key=None, from_address=ticket.mailbox,
        from_name=settings.instance_name, to=[autoreply.to_address], cc=[],
        subject=autoreply.subject, sent_at=now, received_at=now, body_text=autoreply.text,
        has_html=autoreply.has_html, thread_reason="autoreply", internal=False, defects=[]))
    session.add(TicketEvent(ticket_id=ticket.id, at=now, kind="autoreply", actor=None,
                            data={"language": autoreply.language, "message_id": message_id}))


def mark_inbound(inbound: Inbound, status: InboundStatus, reason: str, *, now: datetime) -> None:
    inbound.status = status
    inbound.reason = reason
    inbound.processed_at = now


__all__ = ["apply_plan", "mark_inbound", "Role"]


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
            ticket_id=ticket.id, inbound_id=inbound.id, direction=Direction.IN, role=Role.SYSTEM,
            message_id=bounce.message_id, dedupe_key=dedupe_key(bounce),
            from_address=bounce.from_.address if bounce.from_ else inbound.mail_from,
            from_name=bounce.from_.name if bounce.from_ else "", to=[a.address for a in bounce.to],
            cc=[], subject=bounce.subject, sent_at=bounce.date, received_at=inbound.received_at,
            body_text=bounce.text, has_html=bounce.has_html, thread_reason="bounce",
            internal=True, defects=list(bounce.defects))
        session.add(message)
        session.flush()
        session.add(TicketEvent(ticket_id=ticket.id, at=inbound.received_at,
                                kind="bounce" if report.failed else "delivery_notice",
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
