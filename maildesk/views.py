"""Stable JSON shapes of tickets, messages and quarantined mail (documented in README.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maildesk import addresses
from maildesk.db.models import Inbound, Message, Outbox, Ticket, TicketEvent
from maildesk.pipeline.subject import format_tag


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def reply_address(ticket: Ticket) -> str:
    return addresses.reply_address(ticket.mailbox, ticket.number, ticket.reply_token)


def ticket_summary(ticket: Ticket, tag: str, message_count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": ticket.number,
        "tag": format_tag(tag, ticket.number).strip("[]"),
        "subject": ticket.subject,
        "status": ticket.status.value,
        "priority": ticket.priority,
        "line": ticket.line,
        "category": ticket.category,
        "language": ticket.language,
        "requester": {"address": ticket.requester, "name": ticket.requester_name},
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "last_activity_at": iso(ticket.last_activity_at),
        "resolved_at": iso(ticket.resolved_at),
        "closed_at": iso(ticket.closed_at),
        "tags": list(ticket.tags or []),
        "assignee": ticket.assignee,
        "sla_policy": ticket.sla_policy,
        "first_response_due_at": iso(ticket.first_response_due_at),
        "resolution_due_at": iso(ticket.resolution_due_at),
        "first_responded_at": iso(ticket.first_responded_at),
        "next_response_due_at": iso(ticket.next_response_due_at),
        "breached_at": iso(ticket.breached_at),
        "rating": ticket.rating,
    }
    if message_count is not None:
        out["message_count"] = message_count
    return out


def message_view(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": m.direction.value,
        "role": m.role.value,
        "from": {"address": m.from_address, "name": m.from_name},
        "to": m.to,
        "cc": m.cc,
        "subject": m.subject,
        "message_id": m.message_id,
        "date": iso(m.sent_at),
        "received_at": iso(m.received_at),
        "thread_reason": m.thread_reason,
        "internal": m.internal,
        "text": m.body_text,
        "has_html": m.has_html,
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "sha256": a.sha256} for a in m.attachments],
        "defects": m.defects,
    }


def ticket_detail(ticket: Ticket, tag: str, linked_number: int | None) -> dict[str, Any]:
    out = ticket_summary(ticket, tag, len(ticket.messages))
    out["reply_address"] = reply_address(ticket)
    out["linked_ticket"] = linked_number
    out["participants"] = [{"address": p.address, "name": p.name, "role": p.role.value}
                           for p in ticket.participants]
    out["messages"] = [message_view(m) for m in ticket.messages]
    return out


def event_view(e: TicketEvent, summary: str) -> dict[str, Any]:
    """A history entry: what happened (`kind`), when, by whom (`actor`, an address or null for
    maildesk itself), the recorded `data` as stored, and `summary`, the data in a few words."""
    return {"at": iso(e.at), "kind": str(e.kind), "actor": e.actor, "data": e.data,
            "summary": summary}


def quarantine_view(inbound: Inbound) -> dict[str, Any]:
    return {
        "id": inbound.id,
        "status": inbound.status.value,
        "channel": inbound.channel.value,
        "source": inbound.source,
        "mail_from": inbound.mail_from,
        "rcpt_to": inbound.rcpt_to,
        "received_at": iso(inbound.received_at),
        "attempts": inbound.attempts,
        "size": inbound.raw.size,
        "sha256": inbound.raw.sha256,
        "reason": inbound.reason,
    }


def outbox_view(row: Outbox, ticket_number: int | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status.value,
        "kind": row.kind,
        "ticket": ticket_number,
        "message_id": row.message_id,
        "envelope_from": row.envelope_from,
        "recipients": row.recipients,
        "attempts": row.attempts,
        "created_at": iso(row.created_at),
        "next_attempt_at": iso(row.next_attempt_at),
        "give_up_at": iso(row.give_up_at),
        "sent_at": iso(row.sent_at),
        "last_error": row.last_error,
        "size": len(row.data),
    }
