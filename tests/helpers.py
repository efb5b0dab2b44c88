"""Small helpers the integration tests share: deliver mail, read tickets."""

from __future__ import annotations

import email
import json
import smtplib
import time
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from maildesk.db.models import (Channel, Inbound, InboundStatus, Message, Outbox, RawMessage,
                                Ticket)
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


# -- what went out -------------------------------------------------------------------------------
# Besides the client's acknowledgement (kind "autoreply"), a new ticket queues a notification to
# its line's mailbox (kind "notification"), so a test about one kind of mail filters on it.
def outbox_rows(ctx, kind: str | None = None) -> list[Outbox]:
    """Outbox rows in the order they were queued; only those of `kind` when given."""
    query = select(Outbox).order_by(Outbox.id)
    if kind is not None:
        query = query.where(Outbox.kind == kind)
    with ctx.make_session() as s:
        return list(s.scalars(query))


def outbox_count(ctx, kind: str | None = None) -> int:
    return len(outbox_rows(ctx, kind))


def envelope_to(msg: EmailMessage) -> list[str]:
    """The envelope recipients the Maildir transport keeps in `X-Maildesk-Envelope-To`."""
    return [a.strip().lower() for a in (msg["X-Maildesk-Envelope-To"] or "").split(",")
            if a.strip()]


def delivery_order(path: Path) -> tuple[int, int, int]:
    """Maildir files in the order they were written: the name starts with the writer's clock in
    ns and its count of files (outbound/maildir.py); a file's mtime is coarser than the time
    between two deliveries."""
    stamp, _, rest = path.name.partition(".")
    count = rest.split(".", 1)[0].rpartition("Q")[2]
    if stamp.isdigit() and count.isdigit():
        return (int(stamp), int(count), 0)
    return (path.stat().st_mtime_ns, 0, 0)


def maildir_mails(maildir: str | Path, to: str | None = None) -> list[EmailMessage]:
    """The mails in the outbound Maildir's new/, oldest first; only those whose envelope goes to
    `to` when given."""
    new = Path(maildir) / "new"
    if not new.is_dir():
        return []
    mails = [email.message_from_bytes(p.read_bytes(), policy=policy.default)
             for p in sorted(new.iterdir(), key=delivery_order)]
    return [m for m in mails if to is None or to.lower() in envelope_to(m)]


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


def cli_outbox(cli, *args: str, kind: str | None = None) -> list[dict]:
    """`maildesk outbox list ARGS --json`, only the rows of `kind` when given."""
    return [r for r in cli_json(cli, "outbox", "list", *args) if kind is None or r["kind"] == kind]


__all__ = ["store", "deliver", "send_smtp", "count", "ticket_count", "inbound_statuses",
           "outbox_rows", "outbox_count", "envelope_to", "maildir_mails", "cli_json", "cli_outbox",
           "wait_for",
           "RawMessage", "SUPPORT"]
