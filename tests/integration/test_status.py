"""`maildesk status` on a desk whose contents the test knows, the daemon not running: the
queues and their oldest entries, the next timer, the tickets, the IMAP folders, and the
daemon's endpoint that does not answer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from conftest import free_port
from mails import mail
from maildesk.clock import FixedClock
from maildesk.db.models import Channel, ImapFolder, Ticket, TicketTimer, TimerState
from maildesk.process.run import Processor
from maildesk.services.context import Context
from maildesk.store.raw import Arrival, store_one

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)   # Monday 10:00 in Moscow


def stored(ctx: Context, raw: bytes, at: datetime) -> int:
    return store_one(ctx.make_session, Arrival(data=raw, channel=Channel.PIPE, received_at=at,
                                               mail_from="client@customer.example",
                                               rcpt_to=("support@example.com",)))


def test_status_says_what_waits_and_since_when(config_set, cli, tmp_path, monkeypatch):
    metrics_port = free_port()
    monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", "secret")
    config_set.write(
        metrics={"listen": f"127.0.0.1:{metrics_port}"},
        imap={"accounts": [{"name": "support", "host": "127.0.0.1", "port": free_port(),
                            "security": "none", "username": "support",
                            "password": {"env": "MAILDESK_TEST_IMAP_PASSWORD"},
                            "folders": ["INBOX", "Urgent"]}]})
    clock = FixedClock(T0)
    ctx = Context.load(config_set.path, clock=clock)
    processor = Processor(ctx.settings, ctx.make_session, clock)
    try:
        stored(ctx, mail(subject="Printer on fire"), T0)                      # a ticket
        assert [o.status for o in processor.drain()] == ["done"]
        clock.advance(minutes=5)
        stored(ctx, b"not a mail, just words\r\n", clock.now())              # quarantined
        assert [o.status for o in processor.drain()] == ["quarantined"]
        stored(ctx, mail(subject="later 1"), T0 + timedelta(minutes=20))      # pending
        stored(ctx, mail(subject="later 2"), T0 + timedelta(minutes=25))      # pending
        with ctx.make_session.begin() as s:
            s.add(ImapFolder(account="support", folder="INBOX", uidvalidity=7, last_uid=42,
                             acked_uid=42, backlog_until=40, started_at=T0,
                             updated_at=T0 + timedelta(minutes=10)))
        with ctx.make_session() as s:
            first_timer = s.execute(
                select(TicketTimer.kind, TicketTimer.stage, TicketTimer.due_at)
                .join(Ticket, Ticket.id == TicketTimer.ticket_id)
                .where(TicketTimer.state == TimerState.PENDING, Ticket.number == 1000)
                .order_by(TicketTimer.due_at).limit(1)).one()
    finally:
        processor.close()
        ctx.close()
    now = T0 + timedelta(minutes=30)
    clock_file = tmp_path / "clock"
    clock_file.write_text(now.isoformat())
    monkeypatch.setenv("MAILDESK_CLOCK_FILE", str(clock_file))

    data = json.loads(cli("status", "--json", check=True).stdout)
    assert data["version"] == "0.1.0"
    assert data["config"] == str(config_set.path)
    assert data["database"] == config_set.data["database"]["url"]   # (it has no password)
    assert data["metrics_listen"] == f"127.0.0.1:{metrics_port}"
    assert data["schema"]["up_to_date"] and data["schema"]["revision"] == data["schema"]["head"]
    assert data["as_of"] == "2026-11-23T07:30:00Z"
    assert data["inbound"] == {"pending": 2, "oldest_pending_at": "2026-11-23T07:20:00Z",
                               "oldest_pending_age_s": 600, "quarantined": 1}
    assert data["outbox"] == {"queued": 2, "due": 2, "oldest_queued_at": "2026-11-23T07:00:00Z",
                              "oldest_queued_age_s": 1800, "failed": 0}
    kind, stage, due_at = first_timer
    assert data["timers"] == {"overdue": 0, "oldest_overdue_at": None, "next": {
        "due_at": due_at.isoformat().replace("+00:00", "Z"), "kind": kind, "stage": stage,
        "ticket": 1000, "tag": "MD-1000"}}
    assert data["tickets"] == {"new": 1, "open": 0, "pending": 0, "resolved": 0}
    assert data["imap"] == [
        {"account": "support", "folder": "INBOX", "watched": True, "last_uid": 42,
         "uidvalidity": 7, "first_contact_at": "2026-11-23T07:00:00Z",
         "last_change_at": "2026-11-23T07:10:00Z"},
        {"account": "support", "folder": "Urgent", "watched": True, "last_uid": None,
         "uidvalidity": None, "first_contact_at": None, "last_change_at": None}]
    assert data["daemon"]["url"] == f"http://127.0.0.1:{metrics_port}"
    assert data["daemon"]["answering"] is False and data["daemon"]["error"]

    text = cli("status", check=True).stdout.decode()
    lines = text.splitlines()
    assert lines[0] == "maildesk 0.1.0  (as of 2026-11-23 10:30 Europe/Moscow)"
    assert lines[1] == f"config     {config_set.path}"
    assert lines[2].startswith("database   ") and "up to date" in lines[2]
    assert lines[3].startswith(f"daemon     http://127.0.0.1:{metrics_port}: not answering")
    assert lines[4] == "inbound    2 pending, oldest 10 min; 1 quarantined"
    assert lines[5] == "outbox     2 queued (2 due), oldest 30 min; 0 failed"
    assert lines[6].startswith(f"timers     0 overdue; next MD-1000 {kind} {stage} in ")
    assert lines[7] == "tickets    1 new, 0 open, 0 pending, 0 resolved"
    assert lines[8] == ("imap       support/INBOX   last change 2026-11-23 10:10 "
                        "(20 min ago), UID 42")
    assert lines[9] == "           support/Urgent  not contacted yet"
    assert len(lines) == 10

    quick = cli("status", "--no-daemon", check=True).stdout.decode().splitlines()
    assert quick[3] == "daemon     not asked"
