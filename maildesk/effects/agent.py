"""Apply an AgentPlan (pipeline/agent.py) in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.config.model import Settings
from maildesk.db.models import Inbound, Message, Ticket, TicketEvent, TicketStatus
from maildesk.effects.lifecycle import change_status, move_to_line, rearm
from maildesk.effects.metrics import record_resolution, record_response
from maildesk.effects.notify import forwardable, queue_command_error, queue_to_client
from maildesk.outbound.compose import Composer
from maildesk.pipeline.agent import AgentPlan
from maildesk.pipeline.parse import ParsedMessage

Notify = Callable[..., None]


def apply_agent_plan(session: Session, ticket: Ticket, agent: AgentPlan, *, inbound: Inbound,
                     row: Message, message: ParsedMessage, sender: str, sender_name: str,
                     settings: Settings, composer: Composer, now: datetime,
                     notify: Notify) -> None:
    def event(kind: str, **data: Any) -> None:
        session.add(TicketEvent(ticket_id=ticket.id, at=now, kind=kind, actor=sender,
                                data={**data, "message_id": row.id}))

    if agent.errors:
        event("command_rejected", errors=list(agent.errors), commands=list(agent.commands))
        queue_command_error(session, ticket, settings, composer, now=now,
                            key=f"{inbound.id}.command_error", to_address=sender,
                            errors=agent.errors, in_reply_to=message.message_id)
        return
    found = settings.agent(sender)
    agent_name = (found[1].name if found and found[1].name else "") or sender_name or sender
    ticket.updated_at = now
    if agent.commands:
        event("commands", commands=list(agent.commands))
    if agent.assignee and agent.assignee != ticket.assignee:
        event("assigned", **{"from": ticket.assignee, "to": agent.assignee})
        ticket.assignee = agent.assignee
    if agent.priority and agent.priority != ticket.priority:
        event("priority", **{"from": ticket.priority, "to": agent.priority})
        ticket.priority = agent.priority   # the deadlines follow in rearm() below
    if agent.category and agent.category != ticket.category:
        event("category", **{"from": ticket.category, "to": agent.category})
        ticket.category = agent.category
    if agent.add_tags:
        ticket.tags = [*(ticket.tags or []), *agent.add_tags]
        event("tagged", tags=list(agent.add_tags))

    answered = agent.relay
    status = agent.status
    if status is None and answered and ticket.status is TicketStatus.NEW:
        status = TicketStatus.OPEN
    if status is not None and status is not ticket.status:
        event("status", **{"from": ticket.status.value, "to": status.value})
        was_resolved = ticket.status is TicketStatus.RESOLVED
        change_status(ticket, status, now)
        if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED) and not was_resolved:
            record_resolution(ticket, settings, now, sender)
    files = forwardable(message, include_inline=False)
    if agent.status is TicketStatus.RESOLVED:
        # The client is told, with the agent's words when there are any.
        text = agent.text if answered else ""
        queue_to_client(session, ticket, settings, composer, now=now, template="resolved",
                        key=f"{inbound.id}.resolved", context={"text": text},
                        agent_name=agent_name, attachments=files if answered else ())
    elif answered:
        queue_to_client(session, ticket, settings, composer, now=now, template="agent_reply",
                        key=f"{inbound.id}.reply", context={"text": agent.text},
                        agent_name=agent_name, attachments=files)
    # The client heard from us (an answer, or the resolution notice): the first-response
    # clock stops, and so does a next-response clock started by the client's follow-up.
    if answered or agent.status is TicketStatus.RESOLVED:
        record_response(ticket, settings, now, sender)
        if ticket.first_responded_at is None:
            ticket.first_responded_at = now
            event("first_response")
        ticket.next_response_since = None
    if agent.internal and agent.text.strip():
        notify(session, ticket, inbound, now, "note", message=message, message_row=row,
               text=agent.text, actor=sender)
    if agent.escalate_to:
        from_line = move_to_line(ticket, agent.escalate_to, now)
        event("escalated", **{"from": from_line, "to": agent.escalate_to})
        notify(session, ticket, inbound, now, "escalated", actor=sender,
               from_line=from_line or "-")
    rearm(session, ticket, settings, now)
