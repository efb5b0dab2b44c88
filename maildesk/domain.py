"""The words every layer shares, at the bottom of the house: imports nothing of maildesk.

The statuses, roles, directions and channels that the models store and every stage decides
on, and what threading knows of a ticket (`TicketFacts`, read by db/queries.py, decided on by
pipeline/thread.py); and the kinds of event a ticket's history records (`EventKind`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TicketFacts:
    """A ticket as threading sees it: whether the sender takes part, how recent it is."""

    id: int
    number: int
    status: str
    reply_token: str
    participants: frozenset[str]
    last_activity_at: datetime


class Channel(enum.Enum):
    SMTP = "smtp"
    IMAP = "imap"
    PIPE = "pipe"


class InboundStatus(enum.Enum):
    PENDING = "pending"        # stored, not yet processed
    DONE = "done"              # made into a ticket entry
    DUPLICATE = "duplicate"    # same Message-ID and content as an earlier message
    QUARANTINED = "quarantined"  # could not be made into a ticket; `reason` says why
    IGNORED = "ignored"        # kept, deliberately not made into a ticket; `reason` says why


class TicketStatus(enum.Enum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class OutboxStatus(enum.Enum):
    QUEUED = "queued"    # waiting for delivery (next_attempt_at says when)
    SENT = "sent"
    FAILED = "failed"    # given up: permanent refusal, or retries past give_up_at


class Direction(enum.Enum):
    IN = "in"
    OUT = "out"


class Role(enum.Enum):
    CLIENT = "client"
    AGENT = "agent"
    SYSTEM = "system"


class EventKind(enum.StrEnum):
    """What a ticket's history records (ticket_event.kind). A str: stored and compared as text,
    so reports and `tickets show` read old rows and new ones alike."""

    # a mail arrives
    CREATED = "created"
    ROUTED = "routed"
    LINKED = "linked"
    MESSAGE = "message"
    ROBOT_MAIL = "robot_mail"
    REOPENED = "reopened"
    RATED = "rated"
    STATUS = "status"
    AUTOREPLY = "autoreply"
    AUTOREPLY_SUPPRESSED = "autoreply_suppressed"
    AUTOREPLY_FAILED = "autoreply_failed"
    BOUNCE = "bounce"
    DELIVERY_NOTICE = "delivery_notice"
    # an agent acts
    COMMANDS = "commands"
    COMMAND_REJECTED = "command_rejected"
    ASSIGNED = "assigned"
    PRIORITY = "priority"
    CATEGORY = "category"
    TAGGED = "tagged"
    FIRST_RESPONSE = "first_response"
    ESCALATED = "escalated"
    # mail we send (the outbox row's kind too)
    NOTIFICATION = "notification"
    NOTIFICATION_FAILED = "notification_failed"
    AGENT_REPLY = "agent_reply"
    RESOLVED = "resolved"
    SOLVED = "solved"                # the client's "this solved it", confirmed to the client
    COMMAND_ERROR = "command_error"
    SEARCH_RESULTS = "search_results"
    # the knowledge base
    KB_INSERTED = "kb_inserted"      # an agent put a canned answer or article in a reply
    KB_SUGGESTED = "kb_suggested"    # the acknowledgement named articles to the client
    KB_SOLVED = "kb_solved"          # the client answered "this solved it" for an article
    # the SLA clock
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    TIMER_STALE = "timer_stale"
    TIMER_FAILED = "timer_failed"
