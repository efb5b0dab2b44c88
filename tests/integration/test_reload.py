"""SIGHUP while mail flows: a real `maildesk serve` is moved from smarthost A to smarthost B and
given a second IMAP account (and a changed first one, so its watcher restarts) while a client
keeps sending over SMTP and appending to the IMAP mailboxes. After the reload, mail goes to B
and the new account is polled; across the reload no mail is lost or taken twice, and every
outbox row went out exactly once (counted by Message-ID over both smarthosts)."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from helpers import deliver, outbox_rows, send_smtp, wait_for
from mails import mail
from maildesk.clock import FixedClock
from maildesk.config.model import SmarthostSettings
from maildesk.db.models import Channel, Inbound, InboundStatus, Message, Outbox, OutboxStatus
from maildesk.outbound.outbox import OutboxDeliverer
from maildesk.outbound.smtp import SmtpTransport
from test_imap import account, client_mail, dovecot  # noqa: F401  (dovecot: a fixture)
from test_transports import Sink, Smarthost, free_port, start_smarthost  # noqa: F401

EXE = str(Path(sys.executable).parent / "maildesk")
PACE = 0.05  # seconds between two mails of the client (a producer's rate, not an assertion)


def smarthost_config(port: int) -> dict:
    return {"transport": "smtp", "give_up_after": "2d",
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none"}}


class Client(threading.Thread):
    """Sends mail over SMTP until stopped, and appends some to the IMAP folders it is told;
    remembers every Message-ID and whether it went after the reload was acknowledged."""

    def __init__(self, port: int, dovecot) -> None:  # noqa: F811
        super().__init__(daemon=True, name="mail client")
        self.port = port
        self.dovecot = dovecot
        self.folders = ["INBOX"]
        self.reloaded = threading.Event()
        self.halt = threading.Event()
        self.smtp: list[tuple[str, str, bool]] = []    # (message id, sender, after the reload)
        self.imap: list[tuple[str, str]] = []          # (message id, folder)
        self.error: BaseException | None = None

    def run(self) -> None:
        i = 0
        try:
            while not self.halt.wait(PACE):
                after = self.reloaded.is_set()
                tag = f"{i}-{os.getpid()}"
                sender = f"c{i}@customer{i}.example"   # a domain each: no per-domain cap
                mid = f"flow-{tag}@customer.example"
                send_smtp("127.0.0.1", self.port,
                          client_mail(i, subject=f"Flow {i}", sender=sender, message_id=f"<{mid}>"),
                          sender=sender)
                self.smtp.append((mid, sender, after))
                if i % 4 == 0:
                    for folder in list(self.folders):
                        imid = f"imap-{folder}-{tag}@customer.example"
                        self.dovecot.append(folder, client_mail(
                            i, subject=f"{folder} {i}", sender=f"m{i}@imap{i}.example",
                            message_id=f"<{imid}>"))
                        self.imap.append((imid, folder))
                i += 1
        except BaseException as exc:  # reported by the test
            self.error = exc

    def sent_after_reload(self) -> int:
        return sum(1 for _, _, after in self.smtp if after)


def db_rows(url: str, query):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).all()
    finally:
        engine.dispose()


def message_ids(received) -> list[str]:
    return [email.message_from_bytes(r.data)["Message-ID"].strip().strip("<>") for r in received]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sighup_moves_mail_to_the_new_smarthost_and_polls_the_new_account_losing_nothing(
        config_set, dovecot, start_smarthost, monkeypatch, tmp_path):  # noqa: F811
    a, b = start_smarthost(), start_smarthost()
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", dovecot.password)
    dovecot.create_folder("Sales")
    # Mail already waiting in the account the reload adds (import_existing: all takes it).
    for n in range(2):
        dovecot.append("Sales", client_mail(1000 + n, subject=f"Waiting {n}",
                                            message_id=f"<waiting-{n}-{os.getpid()}@c.example>"))
    config_set.write(
        outbound=smarthost_config(a.port),
        autoreply={"max_per_hour": 10000, "max_per_domain_per_hour": 10000},
        imap={"accounts": [account(dovecot, import_existing="all")]})
    url = config_set.data["database"]["url"]
    port = config_set.data["smtp"]["port"]
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve"],
                                stdout=subprocess.PIPE, stderr=err)
    client = Client(port, dovecot)
    try:
        assert b"maildesk serving" in proc.stdout.readline(), log.read_text()
        wait_for(lambda: "support/INBOX: connected" in log.read_text(), "the IMAP watcher")
        client.start()
        wait_for(lambda: len(a.sink.received) >= 20, "mail through smarthost A")

        config_set.write(
            outbound=smarthost_config(b.port),
            imap={"accounts": [
                account(dovecot, import_existing="all", batch_size=7),   # changed: restarted
                account(dovecot, name="sales", folders=["Sales"], import_existing="all")]})
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in log.read_text(), "the reload")
        # From here on A must get nothing: the reload returned once it was out of use.
        at_reload = len(a.sink.received)
        client.reloaded.set()
        client.folders.append("Sales")
        wait_for(lambda: client.sent_after_reload() >= 12 or client.error, "mail after reload")
        client.halt.set()
        client.join(60)
        assert client.error is None, client.error

        expected = {mid for mid, _, _ in client.smtp} | {mid for mid, _ in client.imap} | {
            f"waiting-{n}-{os.getpid()}@c.example" for n in range(2)}

        def settled() -> bool:
            stored = {m.strip("<>") for (m,) in db_rows(url, select(Message.message_id))
                      if m}
            pending = db_rows(url, select(func.count()).select_from(Inbound).where(
                Inbound.status == InboundStatus.PENDING))[0][0]
            queued = db_rows(url, select(func.count()).select_from(Outbox).where(
                Outbox.status != OutboxStatus.SENT))[0][0]
            total = db_rows(url, select(func.count()).select_from(Outbox))[0][0]
            return (expected <= stored and not pending and not queued
                    and len(a.sink.received) + len(b.sink.received) >= total)
        wait_for(settled, "every mail ticketed and every outbox row delivered")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        client.halt.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()

    # Every mail the client sent became exactly one ticket entry; every arrival was taken once
    # (the restarted INBOX watcher went on from its stored UID: nothing lost, nothing twice).
    entries = Counter(m.strip("<>") for (m,) in db_rows(url, select(Message.message_id)) if m)
    assert {mid: entries[mid] for mid in expected} == {mid: 1 for mid in expected}
    inbound = db_rows(url, select(Inbound.channel, Inbound.source))
    assert sum(1 for ch, _ in inbound if ch == Channel.SMTP) == len(client.smtp)
    imap_sources = Counter(src for ch, src in inbound if ch == Channel.IMAP)
    assert len(imap_sources) == len(client.imap) + 2 and set(imap_sources.values()) == {1}
    assert sum(1 for s in imap_sources if s.startswith("imap://sales/Sales")) == \
        2 + sum(1 for _, folder in client.imap if folder == "Sales")

    # Every outbox row went out once, through A or B, never both.
    rows = db_rows(url, select(Outbox.message_id, Outbox.status, Outbox.ticket_id))
    delivered = Counter(message_ids(a.sink.received) + message_ids(b.sink.received))
    assert delivered == Counter(mid for mid, _, _ in rows)
    assert {status for _, status, _ in rows} == {OutboxStatus.SENT}

    # Nothing reached A once the reload was acknowledged; what mail sent after it caused went
    # to B: the acknowledgement to its sender and the line's notification of its ticket.
    assert len(a.sink.received) == at_reload
    assert at_reload >= 20 and b.sink.received
    via_b = set(message_ids(b.sink.received))
    tickets = dict(db_rows(url, select(Message.message_id, Message.ticket_id)
                           .where(Message.inbound_id.is_not(None))))
    for mid, sender, after in client.smtp:
        if not after:
            continue
        ticket = tickets.get(mid) or tickets[f"<{mid}>"]
        theirs = [m for m, _, t in rows if t == ticket]
        assert len(theirs) >= 2, (mid, theirs)              # acknowledgement + notification
        assert set(theirs) <= via_b, (mid, theirs)
        assert any(r.rcpt_tos == (sender,) for r in b.sink.received), sender
    assert "reload: IMAP account(s) added: sales" in text
    assert "reload: IMAP account(s) restarted: support" in text
    assert "sales/Sales: connected" in text
    assert f"outbound mail now goes to smarthost 127.0.0.1:{b.port}" in text


# -- the swap itself, in the deliverer -------------------------------------------------------
class SwapAt(Sink):
    """A smarthost that, on its `at`-th mail, has the deliverer handed a new transport (as a
    reload does, from another thread, in the middle of a delivery pass)."""

    def __init__(self, at: int, swap) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.at, self.swap = at, swap

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.received) == self.at:
            self.swap()
        return reply


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_transport_handed_over_mid_pass_takes_the_next_mail_and_none_goes_twice(
        ctx, processor, start_smarthost):  # noqa: F811
    for i in range(12):
        deliver(ctx, processor, mail(sender=f"c{i}@customer{i}.example", subject=f"swap {i}"))
    queued = outbox_rows(ctx)
    assert len(queued) == 24                       # an acknowledgement and a notification each
    b = start_smarthost()
    swapped = []
    a = Smarthost(port=free_port(), kwargs={}, sink=SwapAt(
        5, lambda: swapped.append(deliverer.replace_transport(new))))
    a.start()
    old = SmtpTransport(SmarthostSettings("127.0.0.1", a.port, security="none"), timeout=30)
    new = SmtpTransport(SmarthostSettings("127.0.0.1", b.port, security="none"), timeout=30)
    deliverer = OutboxDeliverer(ctx.make_session, old,
                                FixedClock(ctx.clock.now() + timedelta(seconds=1)))
    try:
        outcomes = deliverer.drain()
    finally:
        a.stop()
        deliverer.transport.close()
        deliverer.close()
    assert [o.status for o in outcomes] == ["sent"] * 24
    (event,) = swapped
    assert event.is_set() and deliverer.transport is new    # and the old one closed
    assert len(a.sink.received) == 5               # the swap took the very next mail
    assert Counter(message_ids(a.sink.received) + message_ids(b.sink.received)) == \
        Counter(o.message_id for o in queued)
