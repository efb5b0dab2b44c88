"""What an agent's reply does to its ticket. Pure: the caller applies the AgentPlan.

Recognising the agent (reply token kind, trusted Authentication-Results) is decided here too,
from facts the caller gathered. The reply's new text is cut from the quote and signature
(pipeline/reply.py), its leading command lines are parsed (pipeline/commands.py) and checked
against the configuration (lines, agents). Any error: nothing changes, nothing reaches the
client, the agent is told what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maildesk.actions import (AddTags, Assign, Effect, Event, MailClient, MoveToLine, NotifyLine,
                              Rearm, RecordResponse, SetCategory, SetPriority, SetStatus,
                              TellAgent)

from maildesk.config.model import Settings
from maildesk.domain import EventKind, TicketStatus
from maildesk.pipeline.authenticity import authenticated_by
from maildesk.pipeline.canned import Inserted, expand
from maildesk.pipeline.commands import parse_commands
from maildesk.pipeline.reply import new_text
from maildesk.pipeline.subject import format_tag

STATUS_COMMANDS = {"resolve": TicketStatus.RESOLVED, "close": TicketStatus.CLOSED,
                   "pending": TicketStatus.PENDING, "open": TicketStatus.OPEN}

COMMAND_HELP = ("#resolve  #close  #pending  #open  #escalate [LINE]  #assign ADDRESS|me  "
                "#priority P1..P4  #category NAME  #tag NAME  #note")


@dataclass(frozen=True)
class TicketState:
    number: int
    status: TicketStatus
    line: str | None
    priority: str | None
    assignee: str | None
    category: str | None
    tags: tuple[str, ...]
    # What a canned answer may name (pipeline/canned.py): the ticket as the client knows it.
    subject: str = ""
    requester: str = ""
    requester_name: str = ""
    language: str | None = None
    sla_policy: str | None = None
    first_response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None


@dataclass(frozen=True)
class AgentPlan:
    errors: tuple[str, ...] = ()
    text: str = ""                       # the new text: relayed, or kept as a note
    internal: bool = False               # #note, or only commands: nothing to the client
    status: TicketStatus | None = None
    escalate_to: str | None = None
    assignee: str | None = None
    priority: str | None = None
    category: str | None = None
    add_tags: tuple[str, ...] = ()
    commands: tuple[str, ...] = field(default=())   # as written, for the ticket's history
    inserted: tuple[Inserted, ...] = ()  # canned answers put in the text (#macro, #kb)
    searches: tuple[str, ...] = ()       # #search questions, answered to the agent alone

    @property
    def relay(self) -> bool:
        return not self.errors and not self.internal and bool(self.text.strip())


_CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def client_language(state: TicketState) -> str | None:
    """The language a canned answer is chosen in: the ticket's (a rule set it), else Russian
    when the client writes the subject or signs the name in Cyrillic; None: the default."""
    if state.language:
        return state.language
    return "ru" if _CYRILLIC.search(f"{state.subject} {state.requester_name}") else None


def canned_context(state: TicketState, settings: Settings, *, sender: str,
                   sender_name: str) -> dict[str, Any]:
    """What a macro may use: the ticket, its deadlines in its calendar's zone, who answers."""
    zone = settings.sla_policies.zone(state.sla_policy)
    found = settings.agent(sender)
    return {
        "ticket": {"number": state.number, "subject": state.subject, "status": state.status.value,
                   "priority": state.priority, "line": state.line},
        "tag": format_tag(settings.ticket_tag, state.number),
        "client_name": state.requester_name or None, "client_address": state.requester,
        "agent_name": (found[1].name if found and found[1].name else "") or sender_name or sender,
        "instance": settings.instance_name,
        "deadlines": {"first_response": state.first_response_due_at.astimezone(zone)
                      if state.first_response_due_at else None,
                      "resolution": state.resolution_due_at.astimezone(zone)
                      if state.resolution_due_at else None},
    }


class _Reading:
    """The commands of one mail as they are read, one after another."""

    def __init__(self, state: TicketState, sender: str, settings: Settings) -> None:
        self.state, self.sender, self.settings = state, sender, settings
        self.errors: list[str] = []
        self.values: dict[str, Any] = {}
        self.tags: list[str] = []

    def status(self, name: str, arg: str | None) -> None:
        self.values["status"] = STATUS_COMMANDS[name]

    def escalate(self, name: str, arg: str | None) -> None:
        target = arg
        if target is None:
            line = self.settings.line(self.state.line)
            if line is None or not line.next:
                self.errors.append(f"#escalate: line {self.state.line or '(none)'} has no next "
                                   "line in lines.yaml; name one: #escalate LINE")
                return
            target = line.next
        if self.settings.line(target) is None:
            known = ", ".join(x.id for x in self.settings.lines)
            self.errors.append(f"#escalate {target}: no such line (lines.yaml has: {known})")
        elif target == self.state.line:
            self.errors.append(f"#escalate {target}: the ticket is already on {target}")
        else:
            self.values["escalate_to"] = target

    def assign(self, name: str, arg: str | None) -> None:
        address = self.sender if (arg or "").lower() == "me" else (arg or "").lower()
        if self.settings.agent(address) is None:
            self.errors.append(f"#assign {arg}: {address} is not an agent in lines.yaml")
        else:
            self.values["assignee"] = address

    def priority(self, name: str, arg: str | None) -> None:
        self.values["priority"] = (arg or "").upper()

    def category(self, name: str, arg: str | None) -> None:
        self.values["category"] = arg

    def tag(self, name: str, arg: str | None) -> None:
        self.tags.extend(t for t in re.split(r"[\s,]+", arg or "") if t and t not in self.tags)

    def ignore(self, name: str, arg: str | None) -> None:
        """#note: handled by parse_commands (the mail is internal)."""


_COMMANDS: dict[str, Callable[[_Reading, str, str | None], None]] = {
    **{name: _Reading.status for name in STATUS_COMMANDS},
    "escalate": _Reading.escalate, "assign": _Reading.assign, "priority": _Reading.priority,
    "category": _Reading.category, "tag": _Reading.tag,
}


def plan_agent_reply(body: str, state: TicketState, *, sender: str, settings: Settings,
                     sender_name: str = "") -> AgentPlan:
    """Decide what an agent's mail (its readable body) does to the ticket."""
    canned = expand(new_text(body).text, settings.kb,
                    language=client_language(state) or settings.language,
                    context=canned_context(state, settings, sender=sender,
                                           sender_name=sender_name))
    # A macro's commands go first, as if the agent had written them at the top.
    block = parse_commands("\n".join((*canned.commands, canned.text)))
    reading = _Reading(state, sender, settings)
    reading.errors.extend((*canned.errors, *block.errors))
    written: list[str] = []
    for cmd in block.commands:
        written.append(f"#{cmd.name}{' ' + cmd.arg if cmd.arg else ''}")
        _COMMANDS.get(cmd.name, _Reading.ignore)(reading, cmd.name, cmd.arg)
    if not block.commands and not reading.errors and not block.text.strip() \
            and not canned.searches:
        # Nothing above the quote: a reply sent by mistake, or written where we cannot tell
        # it from the quote. Say so rather than drop it in silence.
        reading.errors.append("no new text found above the quoted notification, and no "
                              "command: write your answer above the quote (or below the "
                              "marker line's quote)")
    if reading.errors:
        return AgentPlan(errors=tuple(reading.errors), text=block.text, internal=True,
                         commands=tuple(written))
    return AgentPlan(text=block.text, internal=block.internal or not block.text.strip(),
                     add_tags=tuple(t for t in reading.tags if t not in state.tags),
                     commands=tuple(written), inserted=canned.inserted,
                     searches=canned.searches, **reading.values)


def agent_effects(agent: AgentPlan, state: TicketState) -> tuple[Effect, ...]:
    """The AgentPlan in the effect vocabulary, in the order the applier carries it out."""
    if agent.errors:
        return (Event(EventKind.COMMAND_REJECTED, {"errors": list(agent.errors),
                                                   "commands": list(agent.commands)}),
                TellAgent(agent.errors))
    effects: list[Effect] = [Event(EventKind.KB_INSERTED, {"kind": i.kind, "slug": i.slug,
                                                           "language": i.language})
                             for i in agent.inserted]
    if agent.commands:
        effects.append(Event(EventKind.COMMANDS, {"commands": list(agent.commands)}))
    if agent.assignee:
        effects.append(Assign(agent.assignee))
    if agent.priority:
        effects.append(SetPriority(agent.priority))
    if agent.category:
        effects.append(SetCategory(agent.category))
    if agent.add_tags:
        effects.append(AddTags(agent.add_tags))
    answered = agent.relay
    status = agent.status
    if status is None and answered and state.status is TicketStatus.NEW:
        status = TicketStatus.OPEN
    if status is not None:
        effects.append(SetStatus(status))
    effects += _to_client(agent, answered)
    if agent.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED) \
            and state.status is not agent.status:
        # The line's thread of the ticket ends with who resolved it and what the client got.
        effects.append(NotifyLine(agent.status.value, with_message=True, text=agent.text,
                                  by_actor=True))
    if agent.internal and agent.text.strip():
        effects.append(NotifyLine("note", with_message=True, text=agent.text, by_actor=True))
    if agent.escalate_to:
        effects.append(MoveToLine(agent.escalate_to))
    return (*effects, Rearm(always=True))


def _to_client(agent: AgentPlan, answered: bool) -> list[Effect]:
    """The client is told (with the agent's words when there are any); then the clocks that
    wait for our answer stop."""
    if agent.status is TicketStatus.RESOLVED:
        return [MailClient("resolved", "resolved", agent.text if answered else "",
                           attachments=answered), RecordResponse()]
    if answered:
        return [MailClient("agent_reply", "reply", agent.text, attachments=True),
                RecordResponse()]
    return []


# -- who is an agent ---------------------------------------------------------------------------

def authenticated_sender(headers: tuple[tuple[str, str], ...], authserv_id: str | None,
                         sender: str) -> bool:
    """Did our own MTA (`authserv_id`) record a DKIM or SPF pass for the sender's domain?

    Only the topmost Authentication-Results with that id counts (RFC 8601 §5: the receiving
    MTA must remove such headers that arrive from outside; the one it adds comes first)."""
    return authenticated_by(headers, authserv_id, sender)
