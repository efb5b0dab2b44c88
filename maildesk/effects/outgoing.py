"""Put one outgoing mail in the outbox, with its signed return path (VERP + HMAC).

The only place outbox rows are made: the return path `support+bounce-<id>-<day>-<key id><mac>@`
is signed over the row's (id, key id, day), so a bounce names exactly this mail and nobody
without the key can forge one (addresses.py). The id is drawn before the INSERT (db/ids.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from maildesk.addresses import bounce_address, reply_address, sign_bounce, split
from maildesk.config.model import Settings
from maildesk.db.ids import new_id
from maildesk.db.models import Direction, Message, Outbox, OutboxStatus, Role, Ticket
from maildesk.effects.events import Gathered


def client_reply_address(ticket: Ticket) -> str:
    """`support+NUMBER-TOKEN@`: where the client's replies go (Reply-To of our mail to them)."""
    return reply_address(ticket.mailbox, ticket.number, ticket.reply_token)


def queue_outgoing(session: Session, settings: Settings, *, ticket_id: int | None, kind: str,
                   message_id: str, mailbox: str, to_address: str, data: bytes,
                   now: datetime, rows: Gathered | None = None) -> int:
    """Queue the mail in the caller's transaction: into `rows` (written at the cause's end),
    else at once. Returns the row's id, drawn in advance so that the return path is signed
    before the row is written (no UPDATE after the INSERT)."""
    outbox_id = new_id(session, Outbox)
    tag = sign_bounce(settings.signing_keys, outbox_id, now.astimezone(timezone.utc).date())
    row = {"id": outbox_id, "ticket_id": ticket_id, "kind": kind, "message_id": message_id,
           "bounce_tag": tag.text, "envelope_from": bounce_address(mailbox, tag),
           "recipients": [to_address], "data": data, "status": OutboxStatus.QUEUED,
           "attempts": 0, "next_attempt_at": now,
           "give_up_at": now + settings.outbound.give_up_after, "last_error": None,
           "created_at": now, "sent_at": None, "bounced_at": None,
           "recipient_domain": split(to_address)[1] or None}
    if rows is not None:
        rows.outbox.append(row)
    else:
        Gathered(outbox=[row]).write(session)
    return outbox_id


def outgoing_message(session: Session, ticket: Ticket, *, message_id: str, role: Role,
                     from_name: str, to_address: str, subject: str, text: str, has_html: bool,
                     reason: str, now: datetime) -> dict[str, Any]:
    """The `message` row that records a mail we send on the ticket (for Gathered.messages)."""
    return {"id": new_id(session, Message), "ticket_id": ticket.id, "inbound_id": None,
            "direction": Direction.OUT, "role": role, "message_id": message_id,
            "dedupe_key": None, "from_address": ticket.mailbox, "from_name": from_name,
            "to": [to_address], "cc": [], "subject": subject, "sent_at": now,
            "received_at": now, "body_text": text, "has_html": has_html,
            "thread_reason": reason, "internal": False, "defects": []}
