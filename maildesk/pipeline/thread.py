"""Which ticket a message belongs to. Pure: the facts are fetched beforehand (db/queries.py).

Order (PRODUCT.md §4): reply token, then In-Reply-To/References, then a recorded mail whose
In-Reply-To/References name this message (its reply arrived first), then the subject tag *and* a
sender who already takes part, then a reply-prefixed subject from a participant of a recent
ticket that is not closed. A closed ticket is never reopened: the message opens a new ticket that
links to it. A forward without token or known header opens a new, linked ticket. A stranger
quoting someone else's tag opens a new ticket and learns nothing of the other one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from maildesk.domain import TicketFacts
from maildesk.pipeline.subject import SubjectInfo


@dataclass(frozen=True)
class ThreadFacts:
    """What the database knows that bears on this message."""

    token_ticket: TicketFacts | None          # named by a valid reply token in the recipients
    referenced: tuple[TicketFacts, ...]       # owners of In-Reply-To then References ids
    tagged: tuple[TicketFacts, ...]           # tickets whose tag is in the subject
    same_subject: tuple[TicketFacts, ...]     # tickets with the same subject key, newest first
    # Tickets with a recorded mail whose In-Reply-To/References name this message's own
    # Message-ID: the reply came first (parallel SMTP clients, SMTP and IMAP at their speeds).
    referenced_by: tuple[TicketFacts, ...] = ()
    # Tickets with a recorded mail that names a mail this one names too: two replies to a mail
    # that has not arrived (yet, or at all: it went to a colleague, not to us).
    sharing_references: tuple[TicketFacts, ...] = ()


@dataclass(frozen=True)
class ThreadDecision:
    ticket_id: int | None        # None: open a new ticket
    reason: str                  # token | references | referenced-by | shared-references |
                                 # tag | subject | new | forward | after-closed
    linked_ticket_id: int | None = None
    reopen: bool = False         # the message reopens a resolved ticket


def _join(ticket: TicketFacts, reason: str) -> ThreadDecision:
    if ticket.status == "closed":
        return ThreadDecision(None, "after-closed", linked_ticket_id=ticket.id)
    return ThreadDecision(ticket.id, reason, reopen=ticket.status == "resolved")


def _by_headers(facts: ThreadFacts) -> ThreadDecision | None:
    """A reply token, then In-Reply-To/References, then a recorded mail that names this one,
    then one that names a mail this one names."""
    if facts.token_ticket is not None:
        return _join(facts.token_ticket, "token")
    if facts.referenced:
        return _join(facts.referenced[0], "references")
    if facts.referenced_by:
        return _join(facts.referenced_by[0], "referenced-by")
    if facts.sharing_references:
        return _join(facts.sharing_references[0], "shared-references")
    return None


def _forward(sender: str, subject: SubjectInfo, facts: ThreadFacts) -> ThreadDecision | None:
    """A forward starts a new matter even when it quotes a ticket's tag; link what it quotes."""
    if not subject.is_forward:
        return None
    known = [t for t in (*facts.tagged, *facts.same_subject) if sender in t.participants]
    return ThreadDecision(None, "forward", linked_ticket_id=known[0].id if known else None)


def _by_tag(sender: str, facts: ThreadFacts) -> ThreadDecision | None:
    """The subject's tag, from a sender who takes part (a stranger may quote any tag)."""
    for ticket in facts.tagged:
        if sender and sender in ticket.participants:
            return _join(ticket, "tag")
    return None


def _by_subject(sender: str, subject: SubjectInfo, facts: ThreadFacts, now: datetime,
                reply_window: timedelta) -> ThreadDecision | None:
    """A reply-prefixed subject from a participant of a recent ticket that is not closed."""
    if not (subject.is_reply and subject.key and sender):
        return None
    for ticket in facts.same_subject:
        if (ticket.status != "closed" and sender in ticket.participants
                and now - ticket.last_activity_at <= reply_window):
            return _join(ticket, "subject")
    return None


def decide_thread(sender: str, subject: SubjectInfo, facts: ThreadFacts, *, now: datetime,
                  reply_window: timedelta) -> ThreadDecision:
    """Decide the ticket of a message from `sender` given what the database knows."""
    # In the order of the module docstring; the first that decides wins (a decision is
    # never false, so `or` moves on only when a step had nothing to say).
    return (_by_headers(facts)
            or _forward(sender, subject, facts)
            or _by_tag(sender, facts)
            or _by_subject(sender, subject, facts, now, reply_window)
            or ThreadDecision(None, "new"))
