"""Small helpers the integration tests share: deliver mail, read tickets."""

from __future__ import annotations

import json
import smtplib
import time
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from maildesk.db.models import Channel, Inbound, InboundStatus, Message, RawMessage, Ticket
from maildesk.store.raw import Arrival, store_one

SUPPORT = "support@example.com"


def store(ctx, raw: bytes, *, rcpt: tuple[str, ...] = (SUPPORT,), mail_from: str | None = None,
          channel: Channel = Channel.PIPE, at: datetime | None = None) -> int:
    return store_one(ctx.make_session, Arrival(
        data=raw, channel=channel, received_at=at or datetime.now(timezone.utc),
        mail_from=mail_from, rcpt_to=rcpt))


def deliver(ctx, processor, raw: bytes, **kw) -> Ticket | None:
    """Store one message and process it; return the ticket it ended on (None if not ticketed)."""
    inbound_id = store(ctx, raw, **kw)
    processor.drain()
    with ctx.make_session() as s:
        inbound = s.get(Inbound, inbound_id)
        assert inbound.status is not InboundStatus.PENDING
        msg = s.scalar(select(Message).where(Message.inbound_id == inbound_id))
        if msg is None:
            return None
        return s.scalar(select(Ticket).where(Ticket.id == msg.ticket_id)
                        .options(selectinload(Ticket.messages), selectinload(Ticket.participants)))


def send_smtp(host: str, port: int, raw: bytes, *, sender: str = "client@customer.example",
              rcpt: list[str] | None = None) -> dict:
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        return smtp.sendmail(sender, rcpt or [SUPPORT], raw)


def count(ctx, model) -> int:
    with ctx.make_session() as s:
        return s.scalar(select(func.count()).select_from(model))


def ticket_count(ctx) -> int:
    return count(ctx, Ticket)


def inbound_statuses(ctx) -> list[str]:
    with ctx.make_session() as s:
        return [i.status.value for i in s.scalars(select(Inbound).order_by(Inbound.id))]


def wait_for(predicate, what: str, limit: float = 120.0):
    """Wait for a daemon in another process to get somewhere: a bound, not a speed assertion."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def cli_json(cli, *args: str):
    proc = cli(*args, "--json", check=True)
    return json.loads(proc.stdout)


__all__ = ["store", "deliver", "send_smtp", "count", "ticket_count", "inbound_statuses",
           "cli_json", "wait_for", "RawMessage", "SUPPORT"]
