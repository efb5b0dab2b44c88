"""maildesk against an always-on out-of-office responder: the exchange stays bounded."""

from __future__ import annotations

import smtplib
import threading
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from conftest import free_port
from helpers import count, outbox_count, ticket_count
from mails import mail
from maildesk.clock import FixedClock
from maildesk.config.model import SmarthostSettings
from maildesk.db.models import Inbound, Outbox
from maildesk.outbound.outbox import OutboxDeliverer
from maildesk.outbound.smtp import SmtpTransport


AWAY = "away@customer.example"


class Responder:
    """The smarthost: answers every mail for the client, at once, back to maildesk's listener;
    keeps what goes elsewhere (the line's notifications) without answering."""

    def __init__(self, listener_port: int, *, marks_itself: bool):
        self.port = listener_port
        self.marks_itself = marks_itself
        self.received = 0                 # mails to the client, each answered
        self.elsewhere: list[str] = []    # recipients of every other mail
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if AWAY not in [r.lower() for r in envelope.rcpt_tos]:
            with self.lock:
                self.elsewhere.extend(r.lower() for r in envelope.rcpt_tos)
            return "250 OK"
        with self.lock:
            self.received += 1
            n = self.received
        got = message_from_bytes(envelope.original_content, policy=policy.default)
        # A naive responder: a fresh subject, no threading headers, nothing that says "robot".
        extra = {"Auto-Submitted": "auto-replied"} if self.marks_itself else {}
        reply = mail(sender="away@customer.example", subject=f"I am away ({n})",
                     body="I am on holiday until Monday.", extra=extra)
        to = got["Reply-To"].addresses[0].addr_spec if self.marks_itself else "support@example.com"
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            smtp.sendmail("away@customer.example", [to], reply)
        return "250 OK"


@pytest.mark.parametrize("marks_itself", [True, False], ids=["rfc3834-responder", "naive-responder"])
def test_exchange_with_an_out_of_office_responder_is_bounded(smtp_listener, ctx, processor,
                                                             marks_itself):
    responder = Responder(smtp_listener.port, marks_itself=marks_itself)
    controller = Controller(responder, hostname="127.0.0.1", port=free_port())
    controller.start()
    transport = SmtpTransport(SmarthostSettings(host="127.0.0.1", port=controller.port,
                                                security="none"))
    clock = FixedClock(ctx.clock.now() + timedelta(seconds=1))
    deliverer = OutboxDeliverer(ctx.make_session, transport, clock)
    try:
        smtplib.SMTP("127.0.0.1", smtp_listener.port).sendmail(
            "away@customer.example", ["support@example.com"],
            mail(sender="away@customer.example", subject="My printer"))
        rounds = 0
        while True:
            processed = processor.drain()
            sent = deliverer.drain()
            clock.advance(seconds=1)
            rounds += 1
            if not processed and not sent:
                break
            assert rounds < 50, "the exchange did not stop"
    finally:
        transport.close()
        controller.stop()
    limit = ctx.settings.autoreply.max_per_sender_per_hour
    if marks_itself:
        assert responder.received == 1  # its auto-reply is never answered
    else:
        assert responder.received == limit  # the hourly cap ends it
    assert count(ctx, Outbox) == outbox_count(ctx, "autoreply") + outbox_count(ctx, "notification")
    assert outbox_count(ctx, "autoreply") == responder.received
    assert count(ctx, Inbound) == responder.received + 1
    # The line hears of each new ticket once and of no robot mail on a ticket: bounded too.
    tickets = ticket_count(ctx)
    assert tickets == (1 if marks_itself else limit + 1)
    assert outbox_count(ctx, "notification") == tickets
    assert sorted(responder.elsewhere) == ["line1@example.com"] * tickets
