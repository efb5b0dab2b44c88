"""Put one outgoing mail in the outbox, with its signed return path (VERP + HMAC).

The only place outbox rows are made: the row is flushed for its id, then the return path
`support+bounce-<id>-<day>-<key id><mac>@` is signed over (id, key id, day), so a bounce names
exactly this mail and nobody without the key can forge one (addresses.py).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import Session

from maildesk.addresses import bounce_address, reply_address, sign_bounce, split
from maildesk.config.model import Settings
from maildesk.db.models import Outbox, OutboxStatus, Ticket


def client_reply_address(ticket: Ticket) -> str:
    """`support+NUMBER-TOKEN@`: where the client's replies go (Reply-To of our mail to them)."""
    return reply_address(ticket.mailbox, ticket.number, ticket.reply_token)


def queue_outgoing(session: Session, settings: Settings, *, ticket_id: int | None, kind: str,
                   message_id: str, mailbox: str, to_address: str, data: bytes,
                   now: datetime) -> Outbox:
    """Add the row to the caller's transaction and return it (flushed: it has its id)."""
    outbox = Outbox(ticket_id=ticket_id, kind=kind, message_id=message_id, bounce_tag="",
                    envelope_from="", recipients=[to_address], data=data,
                    recipient_domain=split(to_address)[1] or None,
                    status=OutboxStatus.QUEUED, attempts=0, next_attempt_at=now,
                    give_up_at=now + settings.outbound.give_up_after, created_at=now)
    session.add(outbox)
    session.flush()
    tag = sign_bounce(settings.signing_keys, outbox.id, now.astimezone(timezone.utc).date())
    outbox.bounce_tag = tag.text
    outbox.envelope_from = bounce_address(mailbox, tag)
    return outbox
