"""The effect vocabulary: each change a decision asks for, as a small typed value.

The pure stages say *what* happens to a ticket as a sequence of these (pipeline/plan.py for a
client's mail, pipeline/agent.py for an agent's, effects/timers.py for a timer that fell due);
one applier (effects/apply.py, `apply_effects`) carries them out, in order, in the caller's
transaction. A new kind of change is a new class here and one handler there, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Union

from maildesk.domain import EventKind, TicketStatus


@dataclass(frozen=True)
class Event:
    """A line in the ticket's history (actor and cause added by the applier)."""

    kind: EventKind
    data: Mapping[str, Any] = field(default_factory=dict)
    at_arrival: bool = False     # dated when the mail arrived, not when it is processed


@dataclass(frozen=True)
class SetStatus:
    """Move the ticket to `status` (the SLA clock stops or resumes with it).

    `announce`: record a `status` event (with `reason`); a client's follow-up says it with
    its own event instead. `reopen` counts a reopening. `at_arrival`: the change dates from
    when the mail arrived, not from when it is processed."""

    status: TicketStatus
    reason: str | None = None
    announce: bool = True
    reopen: bool = False
    at_arrival: bool = False


@dataclass(frozen=True)
class Assign:
    address: str


@dataclass(frozen=True)
class SetPriority:
    priority: str          # the deadlines follow at the next Rearm


@dataclass(frozen=True)
class SetCategory:
    category: str


@dataclass(frozen=True)
class AddTags:
    tags: tuple[str, ...]


@dataclass(frozen=True)
class MoveToLine:
    """Escalate: the ticket goes to `line` (its OLA starts again) and that line is told."""

    line: str
    reason: str | None = None


@dataclass(frozen=True)
class MarkBreached:
    """A deadline passed: the ticket keeps the first moment it was late."""


@dataclass(frozen=True)
class Rate:
    score: int


@dataclass(frozen=True)
class ClientFollowUp:
    """The client wrote again and waits: the next-response clock starts (after a first answer)."""


@dataclass(frozen=True)
class RecordResponse:
    """The client heard from us: the first-response and next-response clocks stop."""


@dataclass(frozen=True)
class Acknowledge:
    """The autoreply of a new ticket: to whom, in which language, with which template."""

    language: str
    to_address: str
    to_name: str
    template: str = "autoreply"
    # Public articles that may already answer the mail: {slug, language, title, score}.
    suggestions: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class MailClient:
    """An agent's words (or the resolution notice, or the client's own "solved" confirmed)
    to the client. `key`: the cause's suffix
    in the Message-ID, so a replay never sends a second copy."""

    template: str          # agent_reply | resolved | solved
    key: str
    text: str
    attachments: bool
    as_agent: bool = True          # signed by the agent who wrote; else by the instance
    language: str | None = None    # when the ticket has none of its own (a rule's)


@dataclass(frozen=True)
class TellAgent:
    """Why an agent's mail was not carried out: to the agent only."""

    errors: tuple[str, ...]


@dataclass(frozen=True)
class AnswerSearch:
    """An agent's `#search` questions with what was found, to that agent alone. Each search:
    {"query", "tickets": [{tag, status, subject, snippet}], "articles": [{slug, language,
    title, snippet}]}."""

    searches: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class NotifyLine:
    """A mail to the ticket's line mailbox (or `to`, its lead): new, update, note, escalated,
    warning, breached. `with_message`: the mail that caused it goes along (its attachments
    too); `text` replaces its body (an agent's note without the commands)."""

    event: str
    key: str | None = None     # the Message-ID's suffix; the event's name when None
    with_message: bool = False
    text: str | None = None
    from_line: str | None = None
    to: str | None = None
    reason: str = ""
    deadline: Mapping[str, Any] | None = None   # the timer's deadline, when one caused it
    by_actor: bool = False     # name who caused it (a note's author, an escalating agent)
    # Knowledge-base answers that may fit: {slug, title, macro, internal, score}.
    articles: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Rearm:
    """Write the deadlines and replace the pending timers: when something moved them, or
    `always` (an agent's mail, a timer)."""

    always: bool = False


Effect = Union[Event, SetStatus, Assign, SetPriority, SetCategory, AddTags, MoveToLine,
               MarkBreached, Rate, ClientFollowUp, RecordResponse, Acknowledge, MailClient,
               TellAgent, AnswerSearch, NotifyLine, Rearm]


def deadline_info(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """What a timer's data says of its deadline, for the notification (None: no deadline)."""
    due = data.get("due")
    if not (data.get("deadline") and due):
        return None
    return {"deadline": data["deadline"], "due": datetime.fromisoformat(due),
            "share": data.get("share")}
