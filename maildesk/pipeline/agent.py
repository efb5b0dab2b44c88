"""What an agent's reply does to its ticket. Pure: the caller applies the AgentPlan.

Recognising the agent (reply token kind, trusted Authentication-Results) is decided here too,
from facts the caller gathered. The reply's new text is cut from the quote and signature
(pipeline/reply.py), its leading command lines are parsed (pipeline/commands.py) and checked
against the configuration (lines, agents). Any error: nothing changes, nothing reaches the
client, the agent is told what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from maildesk.config.model import Settings
from maildesk.domain import TicketStatus
from maildesk.pipeline.authenticity import authenticated_by
from maildesk.pipeline.commands import parse_commands
from maildesk.pipeline.reply import new_text

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

    @property
    def relay(self) -> bool:
        return not self.errors and not self.internal and bool(self.text.strip())


def plan_agent_reply(body: str, state: TicketState, *, sender: str,
                     settings: Settings) -> AgentPlan:
    """Decide what an agent's mail (its readable body) does to the ticket."""
    reply = new_text(body)
    block = parse_commands(reply.text)
    errors = list(block.errors)
    status = escalate_to = assignee = priority = category = None
    tags: list[str] = []
    written: list[str] = []
    for cmd in block.commands:
        written.append(f"#{cmd.name}{' ' + cmd.arg if cmd.arg else ''}")
        if cmd.name in STATUS_COMMANDS:
            status = STATUS_COMMANDS[cmd.name]
        elif cmd.name == "escalate":
            target = cmd.arg
            line = settings.line(state.line)
            if target is None:
                if line is None or not line.next:
                    errors.append(f"#escalate: line {state.line or '(none)'} has no next line in "
                                  "lines.yaml; name one: #escalate LINE")
                    continue
                target = line.next
            if settings.line(target) is None:
                known = ", ".join(x.id for x in settings.lines)
                errors.append(f"#escalate {target}: no such line (lines.yaml has: {known})")
            elif target == state.line:
                errors.append(f"#escalate {target}: the ticket is already on {target}")
            else:
                escalate_to = target
        elif cmd.name == "assign":
            address = sender if (cmd.arg or "").lower() == "me" else (cmd.arg or "").lower()
            if settings.agent(address) is None:
                errors.append(f"#assign {cmd.arg}: {address} is not an agent in lines.yaml")
            else:
                assignee = address
        elif cmd.name == "priority":
            priority = (cmd.arg or "").upper()
        elif cmd.name == "category":
            category = cmd.arg
        elif cmd.name == "tag":
            tags.extend(t for t in re.split(r"[\s,]+", cmd.arg or "") if t and t not in tags)
    internal = block.internal or not block.text.strip()
    if not block.commands and not block.errors and not block.text.strip():
        # Nothing above the quote: a reply sent by mistake, or written where we cannot tell
        # it from the quote. Say so rather than drop it in silence.
        errors.append("no new text found above the quoted notification, and no command: "
                      "write your answer above the quote (or below the marker line's quote)")
    if errors:
        return AgentPlan(errors=tuple(errors), text=block.text, internal=True,
                         commands=tuple(written))
    return AgentPlan(text=block.text, internal=internal, status=status, escalate_to=escalate_to,
                     assignee=assignee, priority=priority, category=category,
                     add_tags=tuple(t for t in tags if t not in state.tags),
                     commands=tuple(written))


# -- who is an agent ---------------------------------------------------------------------------

def authenticated_sender(headers: tuple[tuple[str, str], ...], authserv_id: str | None,
                         sender: str) -> bool:
    """Did our own MTA (`authserv_id`) record a DKIM or SPF pass for the sender's domain?

    Only the topmost Authentication-Results with that id counts (RFC 8601 §5: the receiving
    MTA must remove such headers that arrive from outside; the one it adds comes first)."""
    return authenticated_by(headers, authserv_id, sender)
