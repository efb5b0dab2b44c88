"""Put one outgoing mail in the outbox, with its signed return path (VERP + HMAC).

The only place outbox rows are made: the return path `support+bounce-<id>-<day>-<key id><mac>@`
is signed over the row's (id, key id, day), so a bounce names exactly this mail and nobody
without the key can forge one (addresses.py). On SQLite the id is known before the INSERT (see
`_predicted_id`); on PostgreSQL the row is flushed for its id, then signed.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maildesk.addresses import bounce_address, reply_address, sign_bounce, split
from maildesk.config.model import Settings
from maildesk.db.models import Outbox, OutboxStatus, Ticket

_MAX_ID = select(func.max(Outbox.id))
_NEXT_ID = "maildesk.next_outbox_id"   # session.info: [transaction, the next row's id]


def client_reply_address(ticket: Ticket) -> str:
    """`support+NUMBER-TOKEN@`: where the client's replies go (Reply-To of our mail to them)."""
    return reply_address(ticket.mailbox, ticket.number, ticket.reply_token)


def queue_outgoing(session: Session, settings: Settings, *, ticket_id: int | None, kind: str,
                   message_id: str, mailbox: str, to_address: str, data: bytes,
                   now: datetime) -> Outbox:
    """Add the row to the caller's transaction and return it (it has its id)."""
    outbox = Outbox(ticket_id=ticket_id, kind=kind, message_id=message_id,
                    recipients=[to_address], data=data,
                    recipient_domain=split(to_address)[1] or None,
                    status=OutboxStatus.QUEUED, attempts=0, next_attempt_at=now,
                    give_up_at=now + settings.outbound.give_up_after, created_at=now)
    predicted = _predicted_id(session)
    if predicted is not None:
        outbox.id = predicted        # signed now: no UPDATE after the INSERT
    else:
        outbox.bounce_tag = outbox.envelope_from = ""
        session.add(outbox)
        session.flush()              # for its id: signed by an UPDATE at the next flush
    tag = sign_bounce(settings.signing_keys, outbox.id, now.astimezone(timezone.utc).date())
    outbox.bounce_tag = tag.text
    outbox.envelope_from = bounce_address(mailbox, tag)
    session.add(outbox)
    return outbox


def _predicted_id(session: Session) -> int | None:
    """SQLite: the id the row gets, so that it is signed before it is written (an UPDATE
    after each INSERT cost as much as the INSERT). A rowid table gives a new row max(id) + 1,
    and a write transaction is the only writer: max(id) is read once per transaction and
    counted on from (this function makes every outbox row). A savepoint rolled back leaves a
    gap, nothing worse. PostgreSQL: None (the sequence, shared with other processors, says)."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    held = session.info.get(_NEXT_ID)
    if held is None or held[0] is not session.get_transaction():
        with session.no_autoflush:   # every row made here is counted already
            top = session.scalar(_MAX_ID)
        held = [session.get_transaction(), (top or 0) + 1]   # (the read began it, if need be)
        session.info[_NEXT_ID] = held
    predicted = held[1]
    held[1] += 1
    return predicted
