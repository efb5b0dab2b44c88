"""An in-process desk on a controlled clock, for tests that live through a ticket's days:
the processor, the timers and the deliverer of one config set sharing one FixedClock, with
clients and agents writing mail to it as they would."""

from __future__ import annotations

import email
import sys
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select

from helpers import delivery_order
from maildesk.app import Context, run_timers
from maildesk.clock import FixedClock
from maildesk.db.models import Channel, Ticket, TicketEvent, TicketTimer, TimerState
from maildesk.outbound.compose import Composer
from maildesk.outbound.outbox import OutboxDeliverer
from maildesk.outbound.registry import make_transport
from maildesk.process.run import Processor
from maildesk.store.raw import Arrival, store_one

MSK = ZoneInfo("Europe/Moscow")
EXE = str(Path(sys.executable).parent / "maildesk")
CLIENT = "ivan@shop.example.ru"
SUPPORT = "support@example.com"
LINE1, LINE2, LINE3 = "line1@example.com", "line2@example.com", "line3@example.com"
VENDOR = "support@vendor.example"
# A working Monday (no Russian holiday that week); P3 in the standard policy: first response
# 8 business hours (Mon 18:00), resolution 5 working days = 45 h (Mon 30 Nov 10:00).
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)


# -- an in-process desk on a fixed clock --------------------------------------------------------
class Desk:
    """The processor, the timers and the deliverer of one config set, sharing one FixedClock."""

    def __init__(self, config_path: Path, start: datetime):
        self.clock = FixedClock(start.astimezone(timezone.utc))
        self.ctx = Context.load(config_path, clock=self.clock)
        self.processor = Processor(self.ctx.settings, self.ctx.make_session, self.clock)
        self.composer = Composer(self.ctx.settings.templates_dir)
        self._seen: set[str] = set()

    def close(self) -> None:
        self.processor.close()
        self.ctx.close()

    # time
    def at(self, when: datetime) -> None:
        when = when.astimezone(timezone.utc)
        assert when >= self.clock.current, "the clock only moves forward"
        self.clock.current = when

    def fire(self) -> int:
        """One sweep of the timers at the clock's time: how many fired."""
        return run_timers(self.ctx, self.ctx.settings, self.composer)

    # mail in
    def receive(self, raw: bytes, *, rcpt: str = SUPPORT, mail_from: str = CLIENT) -> None:
        store_one(self.ctx.make_session, Arrival(data=raw, channel=Channel.PIPE,
                                                 received_at=self.clock.now(),
                                                 mail_from=mail_from, rcpt_to=(rcpt,)))
        outcomes = self.processor.drain()
        assert outcomes and all(o.status == "done" for o in outcomes), outcomes

    def client_writes(self, subject: str, text: str, *, sender: str = CLIENT) -> Ticket:
        """A new mail from a client; the ticket it opened."""
        self.receive(mail(sender, SUPPORT, subject, text, self.clock.now()), mail_from=sender)
        with self.ctx.make_session() as s:
            return s.scalars(select(Ticket).order_by(Ticket.id.desc())).first()

    def client_replies(self, number: int, text: str) -> None:
        """The client answers to the ticket's reply address (as the acknowledgement asks)."""
        t = self.ticket(number)
        to = f"support+{t.number}-{t.reply_token}@example.com"
        self.receive(mail(t.requester, to, f"Re: [MD-{t.number}] {t.subject}", text,
                          self.clock.now()), rcpt=to, mail_from=t.requester)

    def agent_replies(self, number: int, text: str, agent: str = "alice@example.com") -> None:
        """An agent answers the line notification (to the agents' reply address)."""
        t = self.ticket(number)
        assert t.agent_token, "the line was notified"
        to = f"support+{t.number}-{t.agent_token}@example.com"
        self.receive(mail(agent, to, f"RE: [MD-{t.number}] {t.subject}", text, self.clock.now()),
                     rcpt=to, mail_from=agent)

    # reading
    def ticket(self, number: int = 1000) -> Ticket:
        with self.ctx.make_session() as s:
            return s.scalar(select(Ticket).where(Ticket.number == number))

    def events(self, kind: str, number: int | None = None) -> list[TicketEvent]:
        return events(self.ctx, kind, number)

    def timers(self, number: int = 1000, state: TimerState | None = TimerState.PENDING) \
            -> list[tuple[str, str, datetime]]:
        """(kind, stage, due in Moscow time) of a ticket's timers, by due time."""
        with self.ctx.make_session() as s:
            q = (select(TicketTimer).join(Ticket, Ticket.id == TicketTimer.ticket_id)
                 .where(Ticket.number == number).order_by(TicketTimer.due_at, TicketTimer.id))
            if state is not None:
                q = q.where(TicketTimer.state == state)
            return [(t.kind, t.stage, t.due_at.astimezone(MSK)) for t in s.scalars(q)]

    def mailbox(self, to: str) -> list[EmailMessage]:
        """Mails delivered to `to` since the last look at any mailbox (the outbox is delivered
        to the Maildir first, at the clock's time)."""
        deliverer = OutboxDeliverer(self.ctx.make_session,
                                    make_transport(self.ctx.settings.outbound), self.clock)
        try:
            deliverer.drain()
        finally:
            deliverer.transport.close()
            deliverer.close()
        out = []
        folder = Path(self.ctx.settings.outbound.maildir) / "new"
        for path in sorted(folder.iterdir(), key=delivery_order):
            if path.name in self._seen:
                continue
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if to.lower() in msg["X-Maildesk-Envelope-To"].lower():
                self._seen.add(path.name)
                out.append(msg)
        return out

    def read_all_mailboxes(self) -> None:
        self.mailbox("-nobody-")
        folder = Path(self.ctx.settings.outbound.maildir) / "new"
        self._seen.update(p.name for p in folder.iterdir())


def mail(sender: str, to: str, subject: str, text: str, date: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg.set_content(text)
    return msg.as_bytes()


def body(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()


def events(ctx, kind: str, number: int | None = None) -> list[TicketEvent]:
    with ctx.make_session() as s:
        q = select(TicketEvent).where(TicketEvent.kind == kind).order_by(TicketEvent.id)
        if number is not None:
            q = q.join(Ticket, Ticket.id == TicketEvent.ticket_id).where(Ticket.number == number)
        return list(s.scalars(q))


def edit_lines(config_set, **changes: dict) -> None:
    """Change lines of lines.yaml by id: `line1={"ola": None, "lead": "boss@example.com"}`
    (None drops a key)."""
    path = config_set.dir / "lines.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for line in data["lines"]:
        for key, value in changes.get(line["id"], {}).items():
            if value is None:
                line.pop(key, None)
            else:
                line[key] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
