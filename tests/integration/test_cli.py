"""The commands as an admin runs them: init, check, db upgrade, ingest, tickets, quarantine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli_json, count, store, wait_for
from mails import mail
from maildesk.db.models import Inbound, Ticket
from test_smtp_listener import DatabaseLock

EXE = str(Path(sys.executable).parent / "maildesk")


def test_init_writes_a_working_config_set(tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([EXE, "init", str(target)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("maildesk.yaml", "lines.yaml", "rules.yaml", "sla.yaml",
                 "schema/maildesk.schema.json", "schema/rules.schema.json"):
        assert (target / "config" / name).is_file(), name
    check = subprocess.run([EXE, "--config", str(target / "config" / "maildesk.yaml"), "check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    again = subprocess.run([EXE, "init", str(target)], capture_output=True, text=True)
    assert again.returncode == 1 and "exists" in again.stderr


def test_check_reports_file_line_and_key(config_set, cli):
    rules = config_set.dir / "rules.yaml"
    text = rules.read_text(encoding="utf-8").replace("priority: P1", "priority: P9")
    rules.write_text(text, encoding="utf-8")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "P9" in l)
    proc = cli("check")
    assert proc.returncode == 1
    column = text.splitlines()[line - 1].index("P9") + 1
    assert f"{rules}:{line}:{column}: rules[0].set.priority: expected one of 'P1', 'P2', " \
           f"'P3', 'P4', got 'P9'" in proc.stderr.decode()


def test_db_upgrade_is_idempotent(cli):
    assert cli("db", "upgrade").returncode == 0
    assert cli("db", "upgrade").returncode == 0


def test_ingest_stores_and_tickets(cli, tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(mail(subject="Piped in"))
    proc = cli("ingest", "--sender", "client@customer.example", "--recipient",
               "support@example.com", str(eml))
    assert proc.returncode == 0, proc.stderr
    proc = cli("ingest", "-", input=mail(subject="From stdin", message_id="<stdin@c>"))
    assert proc.returncode == 0, proc.stderr
    subjects = {t["subject"] for t in cli_json(cli, "tickets", "list")}
    assert subjects == {"Piped in", "From stdin"}


def test_ingest_refuses_empty_and_oversize_with_65(cli, config_set):
    assert cli("ingest", "-", input=b"").returncode == 65
    config_set.write(smtp={"max_message_size": 2048})
    proc = cli("ingest", "-", input=mail(body="y" * 5000))
    assert proc.returncode == 65 and b"over the limit" in proc.stderr


def test_ingest_asks_to_retry_with_75_when_the_database_is_locked(cli, ctx):
    with DatabaseLock(ctx.settings.database.url):
        proc = cli("ingest", "-", input=mail())
    assert proc.returncode == 75, proc.stderr
    assert count(ctx, Inbound) == 0


def test_read_commands_answer_while_the_daemon_writes(cli, ctx, processor):
    """Listing and showing tickets, the outbox, the quarantine and the report only read: they
    neither wait for the daemon's write lock nor hold it up."""
    store(ctx, mail(subject="Принтер не печатает", body="Совсем."))
    processor.drain()
    # The daemon mid-write: on PostgreSQL the written tables locked against writers only.
    busy = DatabaseLock(ctx.settings.database.url, mode="EXCLUSIVE",
                        tables=("ticket", "message", "outbox", "inbound"))
    with busy:
        answers = {args: cli(*args) for args in (
            ("tickets", "list"), ("tickets", "show", "1000"), ("outbox", "list"),
            ("quarantine", "list"), ("report", "--format", "json"))}
    for args, proc in answers.items():
        assert proc.returncode == 0, (args, proc.stderr.decode())
    assert b"MD-1000" in answers[("tickets", "list")].stdout
    assert b"MD-1000" in answers[("outbox", "list")].stdout   # its acknowledgement


def test_tickets_json_is_stable(cli, ctx, processor):
    store(ctx, mail(sender="Анна <anna@customer.example>", subject="Не работает сканер",
                    body="Сканер не включается."))
    processor.drain()
    (row,) = cli_json(cli, "tickets", "list")
    assert set(row) == {"number", "tag", "subject", "status", "priority", "line", "category",
                        "language", "requester", "created_at", "updated_at", "last_activity_at",
                        "resolved_at", "closed_at", "message_count", "tags", "assignee",
                        "sla_policy", "first_response_due_at", "resolution_due_at",
                        "first_responded_at", "next_response_due_at", "breached_at",
                        "rating"}
    # The client's mail and maildesk's acknowledgement.
    assert row["tag"] == "MD-1000" and row["status"] == "new" and row["message_count"] == 2
    assert row["requester"] == {"address": "anna@customer.example", "name": "Анна"}
    assert row["created_at"].endswith("Z")
    detail = cli_json(cli, "tickets", "show", "1000")
    assert set(detail) >= set(row) | {"reply_address", "participants", "messages", "linked_ticket",
                                      "requester_tickets"}
    msg, ack = detail["messages"]
    assert msg["text"].strip() == "Сканер не включается."
    assert msg["direction"] == "in" and msg["role"] == "client"
    assert ack["direction"] == "out" and ack["role"] == "system"
    assert ack["thread_reason"] == "autoreply" and "MD-1000" in ack["subject"]
    assert cli_json(cli, "tickets", "list", "--status", "closed") == []
    assert len(cli_json(cli, "tickets", "list", "--line", "line1")) == 1
    assert cli("tickets", "show", "9999").returncode == 1


def mime_bomb(parts: int) -> bytes:
    """A message whose parsing takes seconds: the kind that must not stall the queue."""
    boundary = "b"
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(parts))
    return (b"From: bomber@evil.example\r\nTo: support@example.com\r\nSubject: bomb\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=" + boundary.encode()
            + b"\r\n\r\n" + body + b"--b--\r\n")


def test_slow_message_is_quarantined_and_the_queue_goes_on(config_set, cli, ctx):
    config_set.write(processing={"parse_timeout_seconds": 0.5})
    store(ctx, mime_bomb(300_000))
    store(ctx, mail(subject="After the bomb"))
    proc = cli("process", check=True)
    assert "1 done" in proc.stdout.decode() and "1 quarantined" in proc.stdout.decode()
    (q,) = cli_json(cli, "quarantine", "list")
    assert "parsing took longer than 0.5 s" in q["reason"]
    assert [t["subject"] for t in cli_json(cli, "tickets", "list")] == ["After the bomb"]
    # After the admin raises the limit, a retry makes it a ticket.
    config_set.write(processing={"parse_timeout_seconds": 300})
    out = cli("quarantine", "retry", str(q["id"]), check=True).stdout.decode()
    assert "done ticket 1001" in out
    assert cli_json(cli, "quarantine", "list") == []


def test_unparseable_mail_is_quarantined_with_a_reason(cli, ctx, processor):
    store(ctx, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 20)
    store(ctx, b"Subject: nobody sent this\r\n\r\nno sender at all\r\n")
    processor.drain()
    rows = cli_json(cli, "quarantine", "list")
    assert len(rows) == 2 and all(r["reason"] for r in rows)
    text = cli("quarantine", "list", check=True).stdout.decode()
    assert rows[0]["reason"].splitlines()[0] in text
    assert cli("quarantine", "retry").returncode == 2
    out = cli("quarantine", "retry", "--all", check=True).stdout.decode()
    assert out.count("quarantined") == 2


def test_alembic_reports_no_drift(ctx):
    from alembic import command
    from maildesk.app import alembic_config
    command.check(alembic_config(ctx.settings.database.url))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_compresses_large_mail_with_lz4(ctx, processor):
    """Migration 0016: a long mail's raw bytes, its text and the autoreply are stored
    lz4-compressed (pglz was 15% of the server's work per mail)."""
    from sqlalchemy import text
    lines = "\n".join(f"Строка {i}: принтер в кассе {i % 7} не печатает чеки." for i in range(400))
    store(ctx, mail(subject="Длинное письмо", body=lines))
    processor.drain()
    with ctx.make_session() as s:
        methods = s.execute(text(
            "SELECT (SELECT array_agg(DISTINCT pg_column_compression(data)) FROM raw_message),"
            " (SELECT array_agg(DISTINCT pg_column_compression(body_text)) FROM message"
            "  WHERE length(body_text) > 4000)")).one()
    assert methods == (["lz4"], ["lz4"])


def test_a_slow_parse_does_not_hold_the_write_lock(config_set, ctx, processor):
    """While the processor waits for a message near the parse time bound, mail can still be
    stored (the SMTP listener's 250 and the IMAP poller need the same write lock)."""
    import threading

    from maildesk.app import Context

    config_set.write(processing={"parse_timeout_seconds": 4})
    slow = Context.load(config_set.path)   # lock_timeout_ms is 2000 in the tests: < 4 s
    from maildesk.process.run import Processor
    p = Processor(slow.settings, slow.make_session, slow.clock)
    try:
        store(ctx, mail(subject="first"))
        bomb = store(ctx, mime_bomb(300_000))
        done = threading.Event()
        worker = threading.Thread(target=lambda: (p.drain(), done.set()), daemon=True)
        worker.start()
        wait_for(lambda: count(ctx, Ticket) == 1, "the first message to be processed")
        # The first message was committed while the bomb is still being parsed (for up to
        # 4 s): the batch did not sit on the write lock waiting for it ...
        with ctx.make_session() as s:
            assert s.get(Inbound, bomb).status.value == "pending"
        # ... so storing goes through now, well within the 2 s lock timeout.
        store(ctx, mail(subject="during the bomb"))
        worker.join(120)
        assert done.is_set()
    finally:
        p.close()
        slow.close()


# -- rules -----------------------------------------------------------------------------------
KASSA = (b"From: =?utf-8?b?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@shop.example.ru>\r\n"
         b"To: support@example.com\r\nSubject: =?utf-8?b?0J3QtSDRgNCw0LHQvtGC0LDQtdGCINC60LDRgdGB0LA=?=\r\n"
         b"Message-ID: <kassa@shop.example.ru>\r\nDate: Thu, 31 Dec 2026 17:55:00 +0300\r\n"
         b"Content-Type: text/plain; charset=windows-1251\r\n\r\n"
         + "Касса №3 не печатает чеки.\r\n".encode("cp1251"))


def test_rules_test_shows_the_routing_deadlines_and_reply_and_changes_nothing(cli, tmp_path):
    eml = tmp_path / "kassa.eml"
    eml.write_bytes(KASSA)
    proc = cli("rules", "test", str(eml), "--at", "2026-12-31T17:55+03:00", check=True)
    out = proc.stdout.decode()
    assert "1. cash registers are urgent" in out
    assert "line2 -> notification to line2@example.com" in out
    assert "priority:   P1" in out and "category:   pos" in out
    assert "first response by: 2026-12-31T18:55:00+03:00" in out
    assert "Subject: [MD-1000] Не работает касса" in out       # the autoreply it would send
    assert "Здравствуйте, Иван Петров!" in out                 # in Russian, like the mail
    result = json.loads(cli("rules", "test", str(eml), "--at", "2026-12-31T17:55+03:00",
                            "--json", check=True).stdout)
    assert result["matched"] == ["cash registers are urgent"]
    assert (result["line"], result["priority"]) == ("line2", "P1")
    assert result["deadlines"]["resolution"] == "2027-01-01T01:55:00+03:00"
    assert result["autoreply"]["language"] == "ru"
    assert cli_json(cli, "tickets", "list") == []                # a dry run


def test_rules_test_names_the_default_and_the_ignore_rule(cli, tmp_path):
    plain = tmp_path / "plain.eml"
    plain.write_bytes(mail(subject="Question about a delivery"))
    out = cli("rules", "test", str(plain), check=True).stdout.decode()
    assert "no rule (the default applies)" in out and "line:       line1" in out
    listed = tmp_path / "list.eml"
    listed.write_bytes(mail(subject="digest", extra={"List-Id": "<news.example>"}))
    out = cli("rules", "test", str(listed), check=True).stdout.decode()
    assert "ignored: kept, no ticket (rule 'mailing lists are not tickets')" in out


def test_rules_test_before_the_database_is_made_decides_as_for_an_empty_one(tmp_path):
    # An admin trying the rules of a fresh `maildesk init`, before `db upgrade`.
    target = tmp_path / "site"
    subprocess.run([EXE, "init", str(target)], capture_output=True, check=True)
    eml = tmp_path / "plain.eml"
    eml.write_bytes(mail(subject="Question about a delivery"))
    proc = subprocess.run([EXE, "--config", str(target / "config" / "maildesk.yaml"), "rules",
                           "test", str(eml), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["decision"]["outcome"] == "new ticket"
    assert result["line"] == "line1"
    assert "decided as for an empty one" in result["database"]
    assert not (target / "var" / "maildesk.db").exists()   # a dry run makes no database


@pytest.mark.parametrize("old, new, key, problem", [
    ('regex: "(?i)не печата(ет|ются) чеки"', 'regex: "(?i)не печата(ет"',
     "rules[0].match.any[1].body.regex", "not a valid regular expression"),
    ("set: {line: line2,", "set: {line: line7,", "rules[0].set.line", "unknown line 'line7'"),
    ("subject: {contains:", "subjekt: {contains:", "rules[0].match.any[0].subjekt",
     "unknown key; expected one of: all, any, not, from"),
])
def test_check_reports_a_broken_rule_by_file_line_and_key(config_set, cli, old, new, key,
                                                          problem):
    rules = config_set.dir / "rules.yaml"
    text = rules.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    rules.write_text(text, encoding="utf-8")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if new in l)
    proc = cli("check")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert re.search(rf"{re.escape(str(rules))}:{line}:\d+: {re.escape(key)}: ", err), err
    assert problem in err, err


def test_rules_test_deadlines_skip_the_new_year_holidays(cli, tmp_path):
    eml = tmp_path / "scanner.eml"
    eml.write_bytes(mail(sender="Anna <anna@customer.example>", subject="Scanner question",
                         body="How do I set up the scanner?"))
    out = cli("rules", "test", str(eml), "--at", "2026-12-31T17:55+03:00",
              check=True).stdout.decode()
    # 31 December 2026 and 1-8 January 2027 are days off in Russia, 9-10 January a weekend:
    # an 8-business-hour first response from New Year's Eve is due on Monday 11 January.
    assert "work resumes 2027-01-11T09:00:00+03:00" in out
    assert "first response by: 2027-01-11T17:00:00+03:00" in out
    assert "resolution by:     2027-01-15T18:00:00+03:00" in out      # 5 working days
    # The year is written only when it is not the current one.
    assert re.search(r"work on your request starts on Monday 11 January( 2027)? at 9:00\.", out)


def test_version_names_the_package_version(cli):
    from maildesk import __version__

    for flag in ("--version", "-V"):
        proc = cli(flag, check=True)
        assert proc.stdout.decode().strip() == f"maildesk {__version__}"
