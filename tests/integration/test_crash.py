"""Nothing lost when the daemon is killed with SIGKILL in the middle of a burst."""

from __future__ import annotations

import email
import json
import signal
import smtplib
import subprocess
import sys
from email import policy
from pathlib import Path

from helpers import wait_for
from mails import mail

EXE = str(Path(sys.executable).parent / "maildesk")


def start(config_set, log: Path) -> subprocess.Popen:
    err = open(log, "ab")
    proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve"],
                            stdout=subprocess.PIPE, stderr=err)
    assert "maildesk serving" in proc.stdout.readline().decode(), log.read_text()
    return proc


def test_sigkill_mid_burst_loses_no_ticket_and_no_autoreply(config_set, cli, tmp_path):
    port = config_set.data["smtp"]["port"]
    log = tmp_path / "serve.log"
    daemon = start(config_set, log)
    mails = {i: mail(sender=f"client{i}@customer.example", subject=f"burst {i}",
                     message_id=f"<burst{i}@customer.example>") for i in range(200)}
    acked: set[int] = set()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for i, raw in mails.items():
                smtp.sendmail(f"client{i}@customer.example", ["support@example.com"], raw)
                acked.add(i)
                if len(acked) == 80:
                    daemon.send_signal(signal.SIGKILL)
                    daemon.wait()
    except (smtplib.SMTPException, OSError):
        pass  # the sending MTA keeps what was not acknowledged and tries again later
    assert 80 <= len(acked) < 200
    daemon = start(config_set, log)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for i, raw in mails.items():
                if i not in acked:
                    smtp.sendmail(f"client{i}@customer.example", ["support@example.com"], raw)

        def outbox_done():
            rows = json.loads(cli("outbox", "list", "--limit", "0", "--json", check=True).stdout)
            return len(rows) == 200 and all(r["status"] == "sent" for r in rows)

        # What the killed daemon had claimed goes out once its lease (90 s) has passed.
        wait_for(outbox_done, "every autoreply to be sent", limit=400)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    tickets = json.loads(cli("tickets", "list", "--limit", "0", "--json", check=True).stdout)
    assert sorted(t["subject"] for t in tickets) == sorted(f"burst {i}" for i in range(200))
    new = Path(config_set.data["outbound"]["maildir"]) / "new"
    sent = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in new.iterdir()]
    by_id: dict[str, set[str]] = {}
    for m in sent:
        by_id.setdefault(m["Message-ID"], set()).add(m["To"].addresses[0].addr_spec)
    # Every client got its acknowledgement; a copy sent twice (killed while sending) can only
    # be the same mail with the same Message-ID.
    assert len(by_id) == 200
    assert all(len(to) == 1 for to in by_id.values())
    assert {next(iter(to)) for to in by_id.values()} == {f"client{i}@customer.example"
                                                          for i in range(200)}
