"""The Plan for one stored message: what the effects stage must write. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from maildesk.actions import (Acknowledge, ClientFollowUp, Effect, Event, Rate, Rearm,
                              SetStatus)
from maildesk.domain import EventKind, Role, TicketStatus
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
class Plan:
    """Everything that one message changes, decided before anything is written: the ticket it
    opens or joins, the mail as recorded, and the effects (maildesk/actions.py) in order."""

    inbound_id: int
    message: ParsedMessage
    sender: str
    role: Role
    thread: ThreadDecision
    new_ticket: NewTicket | None = None
    deadlines: Deadlines | None = None
    internal: bool = False       # an agent's note or command-only mail: never shown to a client
    effects: tuple[Effect, ...] = field(default=())

    @property
    def autoreply(self) -> Acknowledge | None:
        return next((e for e in self.effects if isinstance(e, Acknowledge)), None)

    @property
    def set_status(self) -> TicketStatus | None:
        return next((e.status for e in self.effects if isinstance(e, SetStatus)), None)

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(e for e in self.effects if isinstance(e, Event))


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
                 rating: Rating | None = None,
                 suggestions: tuple[dict[str, object], ...] = ()) -> Plan:
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
        effects = (*_opening_events(decision, routing),
                   *_acknowledgement(role, loop, autoreply_limited, autoreply_language, sender,
                                     sender_name, routing, suggestions), Rearm())
        return Plan(inbound_id, message, sender, role, decision, new_ticket=new,
                    deadlines=deadlines, effects=effects)
    return Plan(inbound_id, message, sender, role, decision,
                effects=_follow_up(decision, role, loop, current_status, rating))


def _arrived(kind: EventKind, data: dict[str, object]) -> Event:
    """An event of the mail itself: dated when it arrived."""
    return Event(kind, data, at_arrival=True)


def _opening_events(decision: ThreadDecision, routing: Routing) -> list[Effect]:
    events: list[Effect] = [_arrived(EventKind.CREATED, {"reason": decision.reason})]
    if routing.matched:
        events.append(_arrived(EventKind.ROUTED, {"rules": list(routing.matched),
                                               "line": routing.line,
                                               "priority": routing.priority}))
    if decision.linked_ticket_id is not None:
        events.append(_arrived(EventKind.LINKED, {"ticket_id": decision.linked_ticket_id,
                                               "reason": decision.reason}))
    return events


def _acknowledgement(role: Role, loop: LoopVerdict, limited: bool, language: str | None,
                     sender: str, sender_name: str, routing: Routing,
                     suggestions: tuple[dict[str, object], ...] = ()) -> list[Effect]:
    """The autoreply of a new ticket, or the event that says why there is none."""
    if role is not Role.CLIENT:
        return []  # agents opening tickets are not acknowledged
    if not loop.autoreply_allowed:
        return [_arrived(EventKind.AUTOREPLY_SUPPRESSED, {"reason": loop.reason})]
    if limited:
        return [_arrived(EventKind.AUTOREPLY_SUPPRESSED,
                      {"reason": "too many autoreplies to this sender in the last hour"})]
    if language is None:
        return []
    return [Acknowledge(language, sender, sender_name, routing.template or "autoreply",
                        suggestions=suggestions)]


def _follow_up(decision: ThreadDecision, role: Role, loop: LoopVerdict,
               current_status: TicketStatus | None, rating: Rating | None) -> tuple[Effect, ...]:
    """A mail on a known ticket: recorded; a client's reopens, resumes or rates it."""
    effects: list[Effect] = [_arrived(EventKind.MESSAGE, {"role": role.value,
                                                       "reason": decision.reason})]
    if not loop.autoreply_allowed:
        # A bounce, out-of-office or list copy is recorded but never moves the ticket.
        return (*effects, _arrived(EventKind.ROBOT_MAIL, {"reason": loop.reason}))
    if role is not Role.CLIENT:
        return tuple(effects)
    if rating is not None and current_status is TicketStatus.RESOLVED:
        return (*effects, _arrived(EventKind.RATED, {"rating": rating.score,
                                                  "comment": rating.comment}),
                Rate(rating.score))
    if decision.reopen or current_status is TicketStatus.RESOLVED:
        effects += [_arrived(EventKind.REOPENED, {}),
                    SetStatus(TicketStatus.OPEN, announce=False, reopen=True, at_arrival=True)]
    elif current_status is TicketStatus.PENDING:
        # The client answered: the SLA clock resumes.
        effects += [_arrived(EventKind.STATUS, {"from": "pending", "to": "open"}),
                    SetStatus(TicketStatus.OPEN, announce=False, at_arrival=True)]
    return (*effects, ClientFollowUp(), Rearm())
