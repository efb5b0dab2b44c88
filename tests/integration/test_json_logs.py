"""`logging.format: json`: the daemon's stderr as a log collector reads it, one JSON object per
line, with the inbound id, ticket and Message-ID where the line is about a mail."""

from __future__ import annotations

import json
import re
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli_json, send_smtp, wait_for
from mails import mail

EXE = str(Path(sys.executable).parent / "maildesk")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def run_daemon(config_set, log: Path, *options: str) -> subprocess.Popen:
    with open(log, "wb") as err:
        proc = subprocess.Popen([EXE, "--config", str(config_set.path), *options, "serve"],
                                stdout=subprocess.PIPE, stderr=err)
    assert "maildesk serving" in proc.stdout.readline().decode(), log.read_text()
    return proc


def test_every_line_of_the_log_is_one_json_object(config_set, tmp_path, cli):
    config_set.write(logging={"format": "json"})
    log = tmp_path / "serve.log"
    daemon = run_daemon(config_set, log)
    try:
        port = config_set.data["smtp"]["port"]
        send_smtp("127.0.0.1", port, mail(subject="Касса №3 не печатает",
                                          message_id="<json-log-1@customer.example>"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send_smtp("127.0.0.1", port, mail(), rcpt=["nobody@example.com"])
        (ticket,) = wait_for(lambda: cli_json(cli, "tickets", "list"), "the ticket")
        wait_for(lambda: cli_json(cli, "outbox", "list", "--status", "queued") == []
                 and cli_json(cli, "outbox", "list"), "the autoreply sent")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0

    lines = log.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]   # each line parses alone
    assert len(records) >= 5
    for r in records:
        assert {"time", "level", "component", "logger", "message"} <= r.keys(), r
        assert TIME.match(r["time"]), r["time"]
        assert r["level"] in {"debug", "info", "warning", "error", "critical"}
        assert "\n" not in r["message"] or r.get("exception") is None

    components = {r["component"] for r in records}
    assert {"smtp", "processor", "outbound", "daemon"} <= components, components
    stored = next(r for r in records if r["message"].startswith("stored inbound"))
    assert stored["component"] == "smtp" and isinstance(stored["inbound_id"], int)
    (processed,) = [r for r in records if r.get("ticket") is not None]
    assert processed == {**processed, "component": "processor", "ticket": ticket["number"],
                         "inbound_id": stored["inbound_id"], "outcome": "done",
                         "message_id": "json-log-1@customer.example"}
    assert f"ticket {ticket['number']}" in processed["message"]
    refused = next(r for r in records if "refused RCPT" in r["message"])
    assert refused["component"] == "smtp" and "ticket" not in refused
    assert records[-1]["message"] == "stopped"


def test_the_command_line_overrides_the_config(config_set, tmp_path):
    config_set.write(logging={"format": "json"})
    log = tmp_path / "serve.log"
    daemon = run_daemon(config_set, log, "--log-format", "text")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(60) == 0
    text = log.read_text(encoding="utf-8")
    assert " INFO maildesk: stopped" in text and not text.startswith("{")
