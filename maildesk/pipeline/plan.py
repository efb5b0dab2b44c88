"""The Plan for one stored message: what the effects stage must write. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from maildesk.domain import Role, TicketStatus
from maildesk.sla.policy import Deadlines
from maildesk.pipeline.headers import one_line
from maildesk.pipeline.loops import LoopVerdict
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.rating import Rating
from maildesk.pipeline.subject import SubjectInfo
from maildesk.pipeline.thread import ThreadDecision
from maildesk.rules.engine import Routing


@dataclass(frozen=True)
class NewTicket:
    subject: str
    subject_key: str
    requester: str
    requester_name: str
    mailbox: str
    linked_ticket_id: int | None
    line: str | None
    priority: str | None
    category: str | None
    language: str | None
    tags: tuple[str, ...] = ()
    assignee: str | None = None
    sla_policy: str | None = None


@dataclass(frozen=True)
class AutoreplyPlan:
    """Acknowledge a new ticket: to whom, in which language."""

    language: str
    to_address: str
    to_name: str
    template: str = "autoreply"


@dataclass(frozen=True)
class Plan:
    """Everything that one message changes, decided before anything is written."""

    inbound_id: int
    message: ParsedMessage
    sender: str
    role: Role
    thread: ThreadDecision
    new_ticket: NewTicket | None = None
    set_status: TicketStatus | None = None
    events: tuple[tuple[str, dict[str, object]], ...] = field(default=())
    deadlines: Deadlines | None = None
    autoreply: AutoreplyPlan | None = None
    internal: bool = False       # an agent's note or command-only mail: never shown to a client
    client_follow_up: bool = False   # the client wrote again (not a robot): awaits an answer
    rating: Rating | None = None     # the client rated a resolved ticket (stays resolved)


def dedupe_key(message: ParsedMessage) -> str:
    """Same Message-ID and same content: one entry, whichever way the copies arrived."""
    return hashlib.sha256(f"{message.message_id or ''}\0{message.content_hash}".encode()).hexdigest()


def sender_of(message: ParsedMessage, mail_from: str | None) -> tuple[str, str]:
    """The address a reply goes to and its display name: From, else Reply-To, else envelope.

    A mail without any sender header (`from_` None) is a ticket from its envelope sender
    (MAIL FROM); one that has no envelope sender either is quarantined (`missing_sender`).
    """
    if message.from_ and message.from_.address:
        return message.from_.address, message.from_.name
    for addr in message.reply_to:
        if addr.address:
            return addr.address, addr.name
    # Control bytes (a NUL the listener let through) become spaces, as in every header value.
    return one_line((mail_from or "").strip().strip("<>")).lower(), ""


NO_SENDER = ("The message has no sender: no From, Sender, Reply-To or Return-Path header names "
             "one, and the envelope sender is empty (MAIL FROM:<>) or unknown.")


def missing_sender(message: ParsedMessage, mail_from: str | None) -> str | None:
    """The quarantine reason for a mail that names no sender at all, else None.

    Neither a sender header nor the envelope: nobody to answer (README, Parsing). A bounce's
    `From: <>` or `From: MAILER-DAEMON` is a sender (`from_` is set), so it is not held here.
    """
    if message.from_ is None and not sender_of(message, mail_from)[0]:
        return NO_SENDER
    return None


def plan_message(*, inbound_id: int, message: ParsedMessage, sender: str, sender_name: str,
                 role: Role, subject: SubjectInfo, decision: ThreadDecision, mailbox: str,
                 routing: Routing, current_status: TicketStatus | None,
                 loop: LoopVerdict, deadlines: Deadlines | None = None,
                 autoreply_language: str | None = None, autoreply_limited: bool = False,
                 rating: Rating | None = None) -> Plan:
    """Decide what a message does to its ticket (new ticket, reopen, resume, acknowledge)."""
    if decision.ticket_id is None:
        new = NewTicket(
            subject=subject.clean or "(no subject)",
            subject_key=subject.key,
            requester=sender,
            requester_name=sender_name,
            mailbox=mailbox,
            linked_ticket_id=decision.linked_ticket_id,
            line=routing.line,
            priority=routing.priority,
            category=routing.category,
            language=routing.language,
            tags=routing.tags,
            assignee=routing.assignee,
            sla_policy=routing.sla_policy,
        )
        events: list[tuple[str, dict[str, object]]] = [("created", {"reason": decision.reason})]
        if routing.matched:
            events.append(("routed", {"rules": list(routing.matched), "line": routing.line,
                                      "priority": routing.priority}))
        if decision.linked_ticket_id is not None:
            events.append(("linked", {"ticket_id": decision.linked_ticket_id,
                                      "reason": decision.reason}))
        autoreply = None
        if role is not Role.CLIENT:
            pass  # agents opening tickets are not acknowledged
        elif not loop.autoreply_allowed:
            events.append(("autoreply_suppressed", {"reason": loop.reason}))
        elif autoreply_limited:
            events.append(("autoreply_suppressed", {"reason": "too many autoreplies to this "
                                                              "sender in the last hour"}))
        elif autoreply_language is not None:
            autoreply = AutoreplyPlan(autoreply_language, sender, sender_name,
                                      routing.template or "autoreply")
        return Plan(inbound_id, message, sender, role, decision, new_ticket=new,
                    events=tuple(events), deadlines=deadlines, autoreply=autoreply)
    status = None
    events = [("message", {"role": role.value, "reason": decision.reason})]
    if not loop.autoreply_allowed:
        # A bounce, out-of-office or list copy is recorded but never moves the ticket.
        events.append(("robot_mail", {"reason": loop.reason}))
    elif role is Role.CLIENT:
        if rating is not None and current_status is TicketStatus.RESOLVED:
            events.append(("rated", {"rating": rating.score, "comment": rating.comment}))
            return Plan(inbound_id, message, sender, role, decision, events=tuple(events),
                        rating=rating)
        if decision.reopen or current_status is TicketStatus.RESOLVED:
            status = TicketStatus.OPEN
            events.append(("reopened", {}))
        elif current_status is TicketStatus.PENDING:
            # The client answered: the SLA clock resumes.
            status = TicketStatus.OPEN
            events.append(("status", {"from": "pending", "to": "open"}))
    return Plan(inbound_id, message, sender, role, decision, set_status=status,
                events=tuple(events),
                client_follow_up=role is Role.CLIENT and loop.autoreply_allowed)
