"""Three daemons on one PostgreSQL share the work, and one killed in the middle costs nothing
(issue 22): every mail one ticket entry, every thread one ticket, every autoreply delivered
once (or again only with its own Message-ID, after the killed daemon's outbox lease), every
timer fired once, the killed daemon's IMAP folder taken over within its lease, and no lock
wait between them: no deadlock or dedupe-key error in any log."""

from __future__ import annotations

import email
import itertools
import signal
import smtplib
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select, update

from conftest import free_port
from dovecot import dovecot_or_skip
from helpers import wait_for
from mails import mail
from maildesk.db.models import (Direction, ImapLease, Inbound, InboundStatus, Message, Outbox,
                                OutboxStatus, Ticket, TicketTimer, TimerState)
from maildesk.ingress.lease import LEASE, STANDBY_CHECK
from test_sla_lifecycle import assert_each_fired_timer_acted_once

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

EXE = str(Path(sys.executable).parent / "maildesk")
MAILS = 1000
KILL_AFTER = 300          # accepted mails before the IMAP folder's holder is killed
CLIENTS = 6


@pytest.fixture
def dovecot(tmp_path: Path):
    server = dovecot_or_skip(tmp_path / "dovecot")
    yield server
    server.close()


class Daemon:
    def __init__(self, name: str, config: Path, port: int, log: Path):
        self.name, self.config, self.port, self.log = name, config, port, log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([EXE, "--config", str(config), "serve"],
                                         stdout=subprocess.PIPE, stderr=err)
        assert b"maildesk serving" in self.proc.stdout.readline(), log.read_text()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


def thread_of(i: int) -> int:
    """Mails come in threads of three: a question, the client's follow-up, another one."""
    return i // 3


def message(i: int) -> bytes:
    t = thread_of(i)
    first = f"<t{t}.0@customer{t % 50}.example>"
    previous = f"<t{t}.{i % 3 - 1}@customer{t % 50}.example>"
    return mail(sender=f"Client {t} <client{t}@customer{t % 50}.example>",
                subject=("Re: " if i % 3 else "") + f"Till {t} does not print",
                body=f"Mail {i}: the till in shop {t} prints nothing.",
                message_id=f"<t{t}.{i % 3}@customer{t % 50}.example>",
                in_reply_to=previous if i % 3 else None,
                references=[first, previous][: i % 3] if i % 3 else None)


class Clients:
    """CLIENTS threads sending MAILS over SMTP, each mail to the daemons in turn until one
    says 250, as an MTA does with several MX hosts."""

    def __init__(self, daemons: list[Daemon]):
        self.daemons = daemons
        self.accepted = 0
        self.lock = threading.Lock()
        self.errors: list[str] = []
        todo = iter(range(MAILS))
        self.threads = [threading.Thread(target=self._run, args=(todo, k)) for k in
                        range(CLIENTS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(600)

    def _run(self, todo, k: int) -> None:
        turn = itertools.cycle(self.daemons[k % 3:] + self.daemons[:k % 3])
        while True:
            with self.lock:
                i = next(todo, None)
            if i is None:
                return
            for _ in range(30):
                d = next(turn)
                try:
                    with smtplib.SMTP("127.0.0.1", d.port, timeout=60) as smtp:
                        smtp.sendmail(f"client{thread_of(i)}@customer.example",
                                      ["support@example.com"], message(i))
                    with self.lock:
                        self.accepted += 1
                    break
                except (OSError, smtplib.SMTPException):  # killed, or 4xx: the next one
                    continue
            else:
                self.errors.append(f"mail {i} never accepted")


def count(ctx, query) -> int:
    with ctx.make_session() as s:
        return s.scalar(query)


def test_three_daemons_share_the_work_and_one_killed_costs_nothing(config_set, dovecot,
                                                                    tmp_path, ctx, monkeypatch):
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", dovecot.password)
    config_set.write(
        imap={"accounts": [{"name": "support", "host": "127.0.0.1", "port": dovecot.port,
                            "security": "none", "username": dovecot.user,
                            "password": {"env": "MAILDESK_TEST_IMAP_PASSWORD"},
                            "folders": ["INBOX"], "poll_interval": "1h",
                            "import_existing": "all"}]},
        timers={"interval": "1s"}, outbound={"lease": "5s"},
        autoreply={"max_per_hour": 100_000, "max_per_domain_per_hour": 100_000})
    daemons = []
    for name in "abc":
        data = {**config_set.data, "smtp": {**config_set.data["smtp"], "port": free_port()}}
        path = config_set.dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        daemons.append(Daemon(name, path, data["smtp"]["port"], tmp_path / f"{name}.log"))
    try:
        holder = wait_for(lambda: count(ctx, select(ImapLease.owner)), "a daemon on the folder")
        (victim,) = [d for d in daemons if f":{d.proc.pid}:" in holder]

        clients = Clients(daemons)
        clients.start()
        wait_for(lambda: clients.accepted >= KILL_AFTER, f"{KILL_AFTER} mails accepted", 300)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(30)
        for i in range(5):
            dovecot.append("INBOX", mail(subject=f"By IMAP {i}", message_id=f"<imap{i}@x.example>"))
        clients.join()
        assert clients.errors == [] and clients.accepted == MAILS

        # The folder, taken over within the lease (plus a loaded machine's slack).
        wait_for(lambda: f":{victim.proc.pid}:" not in count(ctx, select(ImapLease.owner)),
                 "the folder's take-over", LEASE.total_seconds() + STANDBY_CHECK + 30)
        pending = select(func.count()).select_from(Inbound).where(
            Inbound.status == InboundStatus.PENDING)
        wait_for(lambda: count(ctx, select(func.count()).select_from(Inbound)) >= MAILS + 5
                 and count(ctx, pending) == 0, "every mail processed", 600)
        queued = select(func.count()).select_from(Outbox).where(
            Outbox.status == OutboxStatus.QUEUED)
        wait_for(lambda: count(ctx, queued) == 0, "the outbox delivered", 300)

        # Every mail one ticket entry; every thread one ticket.
        with ctx.make_session() as s:
            entries = Counter(s.scalars(select(Message.message_id)
                                        .where(Message.direction == Direction.IN)))
            ticket_of = dict(s.execute(select(Message.message_id, Message.ticket_id)
                                       .where(Message.direction == Direction.IN)).all())
            autoreplies = s.execute(select(Outbox.ticket_id, Outbox.message_id, Outbox.status)
                                    .where(Outbox.kind == "autoreply")).all()
        want = {f"t{thread_of(i)}.{i % 3}@customer{thread_of(i) % 50}.example"
                for i in range(MAILS)} | {f"imap{i}@x.example" for i in range(5)}
        assert set(entries) == want and set(entries.values()) == {1}
        threads: dict[int, set[int]] = {}
        for i in range(MAILS):
            mid = f"t{thread_of(i)}.{i % 3}@customer{thread_of(i) % 50}.example"
            threads.setdefault(thread_of(i), set()).add(ticket_of[mid])
        assert [t for t, tickets in threads.items() if len(tickets) != 1] == []

        # Every autoreply delivered; a second copy only with its own Message-ID.
        assert len({t for t, _, _ in autoreplies}) == len(autoreplies)   # one per ticket
        assert {st for _, _, st in autoreplies} == {OutboxStatus.SENT}
        maildir = Path(config_set.data["outbound"]["maildir"]) / "new"
        delivered = Counter(email.message_from_bytes(p.read_bytes())["Message-ID"].strip("<>")
                            for p in maildir.iterdir())
        assert {mid for _, mid, _ in autoreplies} <= set(delivered)

        # Timers: the warnings of 100 tickets fall due at once; the two left fire each once.
        with ctx.make_session.begin() as s:
            tickets = s.scalars(select(Ticket.id).order_by(Ticket.id).limit(100)).all()
            made_due = s.scalars(update(TicketTimer).where(
                TicketTimer.ticket_id.in_(tickets), TicketTimer.stage == "warning",
                TicketTimer.state == TimerState.PENDING).values(due_at=func.now())
                .returning(TicketTimer.id)).all()
        assert len(made_due) >= 100
        due = select(func.count()).select_from(TicketTimer).where(
            TicketTimer.id.in_(made_due), TicketTimer.state == TimerState.PENDING)
        wait_for(lambda: count(ctx, due) == 0, "the warnings fired", 300)
        assert_each_fired_timer_acted_once(ctx)
    finally:
        for d in daemons:
            if d.alive:
                d.proc.send_signal(signal.SIGTERM)
        for d in daemons:
            try:
                d.proc.wait(90)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
    # Not in the killed daemon's log either (its parse child, orphaned, ends quietly).
    for d in daemons:
        lines = d.log.read_text().splitlines()
        for bad in ("deadlock", "uq_message_dedupe_key", "Traceback"):
            at = [i for i, line in enumerate(lines) if bad in line]
            assert not at, f"{d.name}.log:\n" + "\n".join(lines[at[0] - 3:at[0] + 30])
