"""The IMAP poller against a real Dovecot on loopback (started per test by tests/dovecot.py).

Mail appended to a mailbox becomes tickets exactly once: across restarts and SIGKILL, a Dovecot
restart in the middle of a fetch, a UIDVALIDITY change; IDLE brings new mail without waiting for
the poll interval; flag, move and delete modes act only after the commit; unparseable mail gets
a copy with its reason in the quarantine folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dovecot import Dovecot, dovecot_or_skip
from helpers import count, outbox_count, send_smtp, wait_for
from mails import mail
from maildesk.db.models import (Channel, Direction, Inbound, InboundStatus, Message, Outbox,
                                Ticket)

SUPPORT = "support@example.com"


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def client_mail(i: int, **kw) -> bytes:
    kw.setdefault("subject", f"Request {i}")
    kw.setdefault("sender", f"Client {i} <client{i}@customer.example>")
    kw.setdefault("message_id", f"<req-{i}-{os.getpid()}@customer.example>")
    return crlf(mail(**kw))


@pytest.fixture
def dovecot(tmp_path: Path):
    server = dovecot_or_skip(tmp_path / "dovecot")
    yield server
    server.close()


def account(dovecot: Dovecot, **over) -> dict:
    a = {"name": "support", "host": "127.0.0.1", "port": dovecot.port, "security": "none",
         "username": dovecot.user, "password": {"env": "MAILDESK_TEST_IMAP_PASSWORD"},
         "folders": ["INBOX"], "poll_interval": "1h", "batch_size": 50}
    a.update(over)
    return a


@pytest.fixture
def imap_config(config_set, dovecot, monkeypatch):
    """Point the test config at the Dovecot; returns a function that sets the account."""
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", dovecot.password)

    def configure(**over) -> None:
        config_set.write(imap={"accounts": [account(dovecot, **over)]})
    configure()
    return configure


def load(config_set):
    from maildesk.app import Context
    return Context.load(config_set.path)


def poll(ctx) -> list:
    from maildesk.ingress.imap_service import poll_once
    passes = poll_once(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                       max_size=ctx.settings.smtp.max_message_size)
    assert all(p.error is None for p in passes), passes
    return passes


def process(ctx) -> list:
    from maildesk.process.run import Processor
    p = Processor(ctx.settings, ctx.make_session, ctx.clock)
    try:
        return p.drain()
    finally:
        p.close()


def imap_inbound(ctx) -> list[Inbound]:
    # A read transaction: a look taken while a poller stores must not queue for SQLite's write
    # lock behind its commits (a write session does), or the poller may finish meanwhile.
    with ctx.read_session() as s:
        return list(s.scalars(select(Inbound).where(Inbound.channel == Channel.IMAP)
                              .order_by(Inbound.id)))


# -- mail in ------------------------------------------------------------------------------------
def test_mail_in_inbox_becomes_tickets_and_is_flagged_seen(imap_config, config_set, dovecot, cli):
    russian = crlf(mail(subject="Не печатает касса", body="Здравствуйте, касса не печатает чеки.",
                        charset="cp1251", sender="Иван <ivan@customer.example>",
                        message_id="<ru-1@customer.example>"))
    imap_config(import_existing="all")
    uids = [dovecot.append("INBOX", m) for m in (client_mail(1), client_mail(2), russian)]
    proc = cli("poll", "--once", check=True)
    assert b"support/INBOX: 3 stored" in proc.stdout
    assert b"3 done" in proc.stdout
    ctx = load(config_set)
    try:
        assert count(ctx, Ticket) == 3
        with ctx.make_session() as s:
            subjects = set(s.scalars(select(Ticket.subject)))
            sources = set(s.scalars(select(Inbound.source)))
        assert "Не печатает касса" in subjects
        assert all(src.startswith("imap://support/INBOX;UIDVALIDITY=") for src in sources)
        flags = dovecot.flags("INBOX")
        assert all(b"\\Seen" in flags[u] for u in uids if u is not None)
        # A second pass finds nothing new.
        again = cli("poll", "--once", check=True)
        assert b"support/INBOX: 0 stored" in again.stdout
        assert count(ctx, Inbound) == 3
    finally:
        ctx.close()


def test_move_mode_moves_after_storing(imap_config, config_set, dovecot):
    imap_config(after_store="move", move_to="Processed")
    ctx = load(config_set)
    try:
        poll(ctx)                                   # first contact: an empty INBOX
        for i in range(3):
            dovecot.append("INBOX", client_mail(i))
        (result,) = poll(ctx)
        assert result.result.stored == 3
        assert dovecot.uids("INBOX") == []
        assert len(dovecot.uids("Processed")) == 3
        assert len(imap_inbound(ctx)) == 3
    finally:
        ctx.close()


def test_delete_mode_deletes_only_what_was_stored(imap_config, config_set, dovecot):
    imap_config(after_store="delete")
    ctx = load(config_set)
    try:
        poll(ctx)
        for i in range(2):
            dovecot.append("INBOX", client_mail(i))
        poll(ctx)
        assert dovecot.uids("INBOX") == []
        assert len(imap_inbound(ctx)) == 2
    finally:
        ctx.close()


def test_backlog_is_left_alone_by_default_and_new_mail_is_taken(imap_config, config_set, dovecot):
    old = dovecot.append("INBOX", client_mail(1))
    ctx = load(config_set)
    try:
        (first,) = poll(ctx)
        assert first.result.stored == 0              # import_existing: none
        dovecot.append("INBOX", client_mail(2))
        (second,) = poll(ctx)
        assert second.result.stored == 1
        process(ctx)
        assert outbox_count(ctx, "autoreply") == 1   # new mail is acknowledged
        assert outbox_count(ctx, "notification") == 1   # and its line is told
        assert b"\\Seen" not in dovecot.flags("INBOX")[old]
    finally:
        ctx.close()


def test_imported_backlog_gets_tickets_but_no_autoreply(imap_config, config_set, dovecot):
    imap_config(import_existing="all")
    for i in range(3):
        dovecot.append("INBOX", client_mail(i))
    ctx = load(config_set)
    try:
        (result,) = poll(ctx)
        assert result.result.stored == 3
        process(ctx)
        assert count(ctx, Ticket) == 3
        assert count(ctx, Outbox) == 0      # old news: no autoreply, no line notification each
        dovecot.append("INBOX", client_mail(9))
        poll(ctx)
        process(ctx)
        assert count(ctx, Ticket) == 4
        assert outbox_count(ctx, "autoreply") == 1
    finally:
        ctx.close()


def test_update_only_folder_joins_tickets_but_opens_none(imap_config, config_set, dovecot):
    dovecot.create_folder("Updates")
    imap_config(folders=["INBOX", {"name": "Updates", "update_only": True}])
    ctx = load(config_set)
    try:
        poll(ctx)
        dovecot.append("INBOX", client_mail(1))
        poll(ctx)
        process(ctx)
        with ctx.make_session() as s:
            number = s.scalar(select(Ticket.number))
        follow_up = client_mail(1, subject=f"Re: [MD-{number}] Request 1",
                                message_id="<follow-up@customer.example>",
                                in_reply_to=f"<req-1-{os.getpid()}@customer.example>")
        stranger = client_mail(5, subject="Unrelated newsletter")
        dovecot.append("Updates", follow_up)
        dovecot.append("Updates", stranger)
        poll(ctx)
        outcomes = process(ctx)
        assert sorted(o.status for o in outcomes) == ["done", "ignored"]
        assert count(ctx, Ticket) == 1
        with ctx.make_session() as s:
            assert s.scalar(select(func.count()).select_from(Message)
                            .where(Message.direction == Direction.IN)) == 2
            ignored = s.scalar(select(Inbound).where(Inbound.status == InboundStatus.IGNORED))
            assert "update-only" in ignored.reason
    finally:
        ctx.close()


def test_same_message_by_smtp_and_imap_is_one_entry(imap_config, config_set, dovecot,
                                                    smtp_listener):
    raw = client_mail(1)
    ctx = load(config_set)
    try:
        poll(ctx)
        send_smtp(smtp_listener.host, smtp_listener.port, raw)
        dovecot.append("INBOX", raw)
        poll(ctx)
        outcomes = process(ctx)
        assert sorted(o.status for o in outcomes) == ["done", "duplicate"]
        assert count(ctx, Ticket) == 1
        with ctx.make_session() as s:
            assert s.scalar(select(func.count()).select_from(Message)
                            .where(Message.direction == Direction.IN)) == 1
    finally:
        ctx.close()


# -- faults ---------------------------------------------------------------------------------------
def test_unparseable_mail_lands_in_the_quarantine_folder_with_its_reason(
        imap_config, config_set, dovecot, cli):
    imap_config(quarantine_folder="Quarantine", import_existing="all")
    junk = b"this is not a mail at all, there is no header here\r\njust text\r\n"
    dovecot.append("INBOX", junk)
    dovecot.append("INBOX", client_mail(1))
    proc = cli("poll", "--once", check=True)
    assert b"1 quarantined" in proc.stdout, proc.stdout
    copies = dovecot.fetch_all("Quarantine")
    assert len(copies) == 1
    (copy,) = copies.values()
    head, _, body = copy.partition(b"\r\n\r\n")
    assert b"X-Maildesk-Quarantine: " in head
    assert junk.strip() in copy
    quarantine = cli("quarantine", "list", "--json", check=True)
    assert b"quarantined" in quarantine.stdout or quarantine.stdout.strip() != b"[]"
    # The copy is made once, however often the poller runs.
    cli("poll", "--once", check=True)
    assert len(dovecot.fetch_all("Quarantine")) == 1


def test_uidvalidity_change_makes_no_duplicates(imap_config, config_set, dovecot):
    imap_config(import_existing="all")
    for i in range(5):
        dovecot.append("INBOX", client_mail(i))
    ctx = load(config_set)
    try:
        poll(ctx)
        before = dovecot.uidvalidity("INBOX")
        dovecot.reset_uidvalidity("INBOX")
        assert dovecot.uidvalidity("INBOX") != before
        dovecot.append("INBOX", client_mail(99))
        (result,) = poll(ctx)
        assert result.result.rescanned
        assert result.result.stored == 1
        assert result.result.skipped == 5
        process(ctx)
        assert count(ctx, Ticket) == 6
        assert len(imap_inbound(ctx)) == 6
    finally:
        ctx.close()


def _wait_stored(ctx, n: int, limit: float = 180.0) -> None:
    wait_for(lambda: len(imap_inbound(ctx)) >= n, f"{n} messages stored", limit)


def test_sigkill_in_the_middle_of_a_big_mailbox_loses_and_doubles_nothing(
        imap_config, config_set, dovecot, db_url):
    n = 1000
    imap_config(import_existing="all", batch_size=25)
    dovecot.append_many("INBOX", [client_mail(i) for i in range(n)])
    exe = Path(sys.executable).parent / "maildesk"
    cmd = [str(exe), "--config", str(config_set.path), "poll", "--once", "--no-process"]
    ctx = load(config_set)
    try:
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ})
        # Killed as soon as its first batch is stored: on a loaded machine (CI, 2 cores) the
        # poller can store hundreds of mails between two looks, so waiting for more risks
        # finding it done.
        wait_for(lambda: len(imap_inbound(ctx)) >= 1 or first.poll() is not None,
                 "the poller to get going")
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        stored_at_kill = len(imap_inbound(ctx))
        assert stored_at_kill < n, "the poller finished before it could be killed"
        second = subprocess.run(cmd, capture_output=True, timeout=600, env={**os.environ})
        assert second.returncode == 0, second.stdout + second.stderr
        inbound = imap_inbound(ctx)
        sources = [i.source for i in inbound]
        assert len(sources) == n and len(set(sources)) == n
        flags = dovecot.flags("INBOX")
        assert len(flags) == n and all(b"\\Seen" in f for f in flags.values())
        outcomes = process(ctx)
        assert {o.status for o in outcomes} == {"done"}
        assert count(ctx, Ticket) == n
    finally:
        ctx.close()


def test_poller_survives_a_dovecot_restart_in_the_middle_of_a_fetch(
        imap_config, config_set, dovecot):
    from maildesk.ingress.imap_service import ImapService
    import maildesk.ingress.imap_service as service

    n = 400
    imap_config(import_existing="all", batch_size=10)
    dovecot.append_many("INBOX", [client_mail(i) for i in range(n)])
    ctx = load(config_set)
    old_backoff = service.BACKOFF_FIRST
    service.BACKOFF_FIRST = 0.2
    imap = ImapService(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                       max_size=ctx.settings.smtp.max_message_size)
    try:
        imap.start()
        _wait_stored(ctx, 50)
        dovecot.restart()
        _wait_stored(ctx, n)
        wait_for(lambda: all(b"\\Seen" in f for f in dovecot.flags("INBOX").values()),
                 "every message flagged")
        sources = [i.source for i in imap_inbound(ctx)]
        assert len(sources) == n and len(set(sources)) == n
    finally:
        imap.stop()
        service.BACKOFF_FIRST = old_backoff
        ctx.close()


def test_idle_brings_new_mail_without_waiting_for_the_interval(imap_config, config_set, dovecot):
    from maildesk.ingress.imap_service import ImapService

    imap_config(poll_interval="1h")     # without IDLE, nothing would come for an hour
    ctx = load(config_set)
    imap = ImapService(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                       max_size=ctx.settings.smtp.max_message_size)
    try:
        imap.start()
        wait_for(lambda: imap.watchers[0].passes >= 1, "the first pass")
        time.sleep(0.5)                 # let it enter IDLE (not an assertion on speed)
        dovecot.append("INBOX", client_mail(1))
        # The first pass is over and the interval is an hour: only IDLE can bring it in.
        _wait_stored(ctx, 1, limit=60)
    finally:
        imap.stop()
        ctx.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_in_serve_a_pass_waits_its_turn_for_the_write_lock_instead_of_failing(
        imap_config, config_set, dovecot, caplog):
    """In `serve` the poller's transactions (its lease, what it stores) take the daemon's
    write turn (IntakeGate), as the listener's commits do: while another writer of the daemon
    holds SQLite's lock for five lock timeouts, the pass waits for it; it does not fail with
    "database is locked" and reconnect."""
    import logging
    import sqlite3

    from maildesk.app import IntakeGate
    from maildesk.ingress.imap_service import ImapService

    caplog.set_level(logging.WARNING)
    imap_config(import_existing="all")
    config_set.write(database={"lock_timeout_ms": 200})
    dovecot.append("INBOX", client_mail(1))
    ctx = load(config_set)
    gate = IntakeGate()
    imap = ImapService(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                       max_size=ctx.settings.smtp.max_message_size, intake=gate)
    blocker = sqlite3.connect(ctx.engine.url.database, isolation_level=None)
    try:
        with gate.turn:                      # the deliverer or the timers, writing
            blocker.execute("BEGIN IMMEDIATE")
            imap.start()
            wait_for(gate.waiting, "the poller asking for its turn", 30)
            time.sleep(1.0)                  # five lock timeouts (not an assertion on speed)
            assert imap_inbound(ctx) == []
            blocker.execute("COMMIT")
        _wait_stored(ctx, 1)
        wait_for(lambda: all(b"\\Seen" in f for f in dovecot.flags("INBOX").values()),
                 "the message flagged")
    finally:
        imap.stop()
        blocker.close()
        ctx.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- connections and configuration ------------------------------------------------------------
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_connections_verify_the_server(imap_config, config_set, dovecot, security):
    port = dovecot.tls_port if security == "tls" else dovecot.port
    imap_config(security=security, port=port, ca_file=str(dovecot.ca_file),
                import_existing="all")
    dovecot.append("INBOX", client_mail(1))
    ctx = load(config_set)
    try:
        (result,) = poll(ctx)
        assert result.result.stored == 1
    finally:
        ctx.close()


def test_a_server_certificate_we_cannot_verify_is_refused(imap_config, config_set, dovecot):
    from maildesk.ingress.imap_service import poll_once

    imap_config(security="tls", port=dovecot.tls_port)   # no ca_file: self-signed is unknown
    ctx = load(config_set)
    try:
        (result,) = poll_once(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                              max_size=ctx.settings.smtp.max_message_size)
        assert result.result is None and "CERTIFICATE_VERIFY_FAILED" in result.error
    finally:
        ctx.close()


def test_wrong_password_is_reported_not_retried_in_a_loop(imap_config, config_set, dovecot,
                                                          monkeypatch, cli):
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", "wrong")
    proc = cli("poll", "--once")
    assert proc.returncode == 75
    assert f"login as {dovecot.user} refused".encode() in proc.stdout


def test_serve_polls_several_accounts_and_stops_cleanly(imap_config, config_set, dovecot, cli,
                                                       tmp_path):
    import json

    dovecot.create_folder("Sales")
    config_set.write(imap={"accounts": [
        account(dovecot, name="support", import_existing="all"),
        account(dovecot, name="sales", folders=["Sales"], after_store="move",
                move_to="Sales-done", import_existing="all")]})
    dovecot.append("INBOX", client_mail(1, subject="Касса не печатает"))
    dovecot.append("Sales", client_mail(2, subject="Price list, please"))
    log = tmp_path / "serve.log"
    exe = str(Path(sys.executable).parent / "maildesk")
    with open(log, "wb") as err:
        proc = subprocess.Popen([exe, "--config", str(config_set.path), "serve",
                                 "--only", "imap,process,outbound"],
                                stdout=subprocess.PIPE, stderr=err)
        try:
            assert b"maildesk serving" in proc.stdout.readline(), log.read_text()
            rows = wait_for(lambda: len(json.loads(cli("tickets", "list", "--json",
                                                       check=True).stdout)) == 2 or None,
                            "two tickets")
            assert rows
            dovecot.append("Sales", client_mail(3, subject="Second order"))  # IDLE brings it
            wait_for(lambda: len(json.loads(cli("tickets", "list", "--json",
                                                check=True).stdout)) == 3 or None,
                     "the third ticket")
            assert len(dovecot.uids("Sales-done")) == 2
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert "support/INBOX: connected" in text and "sales/Sales: connected" in text


def test_mail_over_the_size_limit_is_moved_to_quarantine_not_stored(imap_config, config_set,
                                                                     dovecot):
    imap_config(quarantine_folder="Quarantine", after_store="delete", import_existing="all")
    config_set.write(smtp={"max_message_size": 4096})
    dovecot.append("INBOX", client_mail(1, body="x" * 10000))
    dovecot.append("INBOX", client_mail(2))
    ctx = load(config_set)
    try:
        (result,) = poll(ctx)
        assert (result.result.stored, result.result.oversize) == (1, 1)
        assert dovecot.uids("INBOX") == []                 # the small one: stored, deleted
        (big,) = dovecot.fetch_all("Quarantine").values()  # the big one: moved, intact
        assert len(big) > 10000 and b"Subject: Request 1" in big
        assert len(imap_inbound(ctx)) == 1
    finally:
        ctx.close()


def lease_holder(ctx) -> str | None:
    from maildesk.db.models import ImapLease
    with ctx.make_session() as s:
        row = s.scalar(select(ImapLease).where(ImapLease.account == "support",
                                               ImapLease.folder == "INBOX"))
        return row.owner if row is not None else None


def test_one_daemon_polls_a_folder_and_a_standby_takes_over_when_it_dies(
        imap_config, config_set, dovecot, tmp_path, db_url):
    """Two daemons watch the same folder: the one holding its lease polls it, the other stands
    by; killed with SIGKILL, the holder's lease runs out and the standby takes the folder over
    (within LEASE + STANDBY_CHECK), from the progress the dead one committed: every mail once."""
    from maildesk.ingress.lease import LEASE, STANDBY_CHECK

    imap_config(import_existing="all", idle=True)
    exe = str(Path(sys.executable).parent / "maildesk")
    cmd = [exe, "--config", str(config_set.path), "serve", "--only", "imap"]
    ctx = load(config_set)
    daemons: list[subprocess.Popen] = []
    try:
        for name in ("a", "b"):
            with open(tmp_path / f"{name}.log", "wb") as err:
                daemons.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err))
            assert b"maildesk serving" in daemons[-1].stdout.readline()
            if name == "a":    # the first one takes the folder
                wait_for(lambda: lease_holder(ctx), "the first daemon's lease")
        first, second = daemons
        holder = lease_holder(ctx)
        assert f":{first.pid}:" in holder
        for i in range(5):
            dovecot.append("INBOX", client_mail(i))
        _wait_stored(ctx, 5, 60)
        wait_for(lambda: "standing by" in (tmp_path / "b.log").read_text(), "the standby")

        first.send_signal(signal.SIGKILL)
        first.wait(30)
        for i in range(5, 10):
            dovecot.append("INBOX", client_mail(i))
        bound = LEASE.total_seconds() + STANDBY_CHECK + 30   # + a loaded machine's slack
        wait_for(lambda: f":{second.pid}:" in (lease_holder(ctx) or ""), "the take-over", bound)
        _wait_stored(ctx, 10, 60)
        sources = [i.source for i in imap_inbound(ctx)]
        assert len(sources) == 10 and len(set(sources)) == 10
        flags = dovecot.flags("INBOX")
        assert len(flags) == 10 and all(b"\\Seen" in f for f in flags.values())
        assert "taking over from" in (tmp_path / "b.log").read_text()
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
        assert "support/INBOX: connected" not in (tmp_path / "b.log").read_text().split(
            "taking over from")[0]   # the standby never polled while the first held it
    finally:
        for proc in daemons:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        ctx.close()
