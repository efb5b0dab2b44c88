"""The words every layer shares, at the bottom of the house: imports nothing of maildesk.

The statuses, roles, directions and channels that the models store and every stage decides
on, and what threading knows of a ticket (`TicketFacts`, read by db/queries.py, decided on by
pipeline/thread.py). Event kinds are still free strings (issue 18).
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
