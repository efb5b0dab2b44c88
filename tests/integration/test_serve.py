"""`maildesk serve` as `make run` starts it: a real daemon process, signals included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from helpers import send_smtp, wait_for
from mails import mail
from maildesk.db.models import Ticket

EXE = str(Path(sys.executable).parent / "maildesk")


@pytest.fixture
def daemon(config_set, tmp_path):
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve"],
                                stdout=subprocess.PIPE, stderr=err)
        line = proc.stdout.readline().decode()
        assert "maildesk serving" in line, log.read_text()
        proc.log = log  # type: ignore[attr-defined]
        yield proc
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def tickets(cli) -> list[dict]:
    return json.loads(cli("tickets", "list", "--json", check=True).stdout)


def test_mail_sent_to_the_daemon_shows_up_in_tickets_list(daemon, config_set, cli):
    port = config_set.data["smtp"]["port"]
    send_smtp("127.0.0.1", port, mail(subject="Не работает касса №3"))
    rows = wait_for(lambda: tickets(cli), "the ticket")
    assert rows[0]["subject"] == "Не работает касса №3" and rows[0]["tag"] == "MD-1000"
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(60) == 0


def test_sighup_with_a_broken_file_keeps_the_old_config(daemon, config_set, cli):
    port = config_set.data["smtp"]["port"]
    rules = config_set.dir / "rules.yaml"
    good = rules.read_text(encoding="utf-8")
    rules.write_text(good.replace("stop: true", "stop: maybe"), encoding="utf-8")
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in daemon.log.read_text(), "the refusal in the log")
    assert "rules.yaml" in daemon.log.read_text() and "stop" in daemon.log.read_text()
    send_smtp("127.0.0.1", port, mail(subject="still served"))
    rules.write_text(good, encoding="utf-8")  # so that this test's own CLI calls can load it
    (row,) = wait_for(lambda: tickets(cli), "the ticket")
    assert row["line"] == "line1"  # the old rules' default still applied
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(60) == 0


def test_sigterm_finishes_what_is_in_flight(daemon, config_set, cli):
    port = config_set.data["smtp"]["port"]
    for i in range(20):
        send_smtp("127.0.0.1", port, mail(subject=f"burst {i}"))
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(120) == 0
    # Everything acknowledged was stored; what the processor had not reached stays pending
    # and is taken up by the next start (here: a one-shot `process`).
    cli("process", check=True)
    assert len(tickets(cli)) == 20


def ticket_lines(config_set) -> list[str | None]:
    """The line of each ticket, read from the database (the CLI would refuse a broken
    rules.yaml, which the daemon keeps running without)."""
    engine = create_engine(config_set.data["database"]["url"])
    try:
        with engine.connect() as conn:
            return list(conn.scalars(select(Ticket.line).order_by(Ticket.number)))
    finally:
        engine.dispose()


def test_sighup_swaps_in_a_valid_rule_set_and_refuses_a_broken_one(daemon, config_set):
    port = config_set.data["smtp"]["port"]
    rules = config_set.dir / "rules.yaml"
    good = rules.read_text(encoding="utf-8")
    assert good.count("rules:\n") == 1
    printers = ("rules:\n  - name: printers go to line 3\n"
                "    match: {subject: {regex: \"(?i)принтер\"}}\n"
                "    set: {line: line3}\n    stop: true\n")
    broken = good.replace("rules:\n", printers.replace('"(?i)принтер"', '"(?i)принтер("'), 1)
    rules.write_text(broken, encoding="utf-8")
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in daemon.log.read_text(), "the refusal in the log")
    log = daemon.log.read_text()
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "принтер(" in text)
    column = broken.splitlines()[line - 1].index('"(?i)') + 1   # the value's column
    assert f"rules.yaml:{line}:{column}: rules[0].match.subject.regex" in log
    assert "regular expression" in log
    send_smtp("127.0.0.1", port, mail(subject="Принтер не печатает", message_id="<p1@c>"))
    assert wait_for(lambda: ticket_lines(config_set), "the first ticket") == ["line1"]  # old rules

    rules.write_text(good.replace("rules:\n", printers, 1), encoding="utf-8")
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.log.read_text(), "the reload")
    send_smtp("127.0.0.1", port, mail(subject="Принтер снова не печатает", message_id="<p2@c>"))
    lines = wait_for(lambda: (x := ticket_lines(config_set)) and len(x) == 2 and x, "the second")
    assert lines == ["line1", "line3"]                                 # the new rules
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(60) == 0
