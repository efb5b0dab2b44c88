"""Nothing lost when the daemon is killed with SIGKILL in the middle of a burst."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import cli_outbox, maildir_mails, wait_for
from mails import mail

EXE = str(Path(sys.executable).parent / "maildesk")


def start(config_set, log: Path) -> subprocess.Popen:
    err = open(log, "ab")
    proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve"],
                            stdout=subprocess.PIPE, stderr=err)
    assert "maildesk serving" in proc.stdout.readline().decode(), log.read_text()
    return proc


def send_as_an_mta(smtp: smtplib.SMTP, sender: str, raw: bytes) -> None:
    """A 4xx answer (451: the database was locked for too long) means "try again later": the
    sending MTA keeps the mail and does. Anything else is raised."""
    def accepted() -> bool:
        try:
            smtp.sendmail(sender, ["support@example.com"], raw)
        except smtplib.SMTPResponseException as exc:
            if not 400 <= exc.smtp_code < 500:
                raise
            return False
        return True
    wait_for(accepted, f"the mail from {sender} to be accepted", limit=120)


def outbox_now(cli) -> list[dict] | None:
    """The outbox as `maildesk outbox list` shows it, or None while the busy daemon holds the
    SQLite write lock longer than the CLI's lock timeout (it fails then, and says so)."""
    proc = cli("outbox", "list", "--limit", "0", "--json")
    if proc.returncode != 0 and b"database is locked" in proc.stderr:
        return None
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_sigkill_mid_burst_loses_no_ticket_and_no_autoreply(config_set, cli, tmp_path):
    # A short lease: what the killed daemon had claimed goes out again sooner.
    # 200 clients of one domain within the hour: above the backscatter caps, which are not
    # what this test is about.
    config_set.write(outbound={"lease": "10s"},
                     autoreply={"max_per_hour": 1000, "max_per_domain_per_hour": 1000})
    port = config_set.data["smtp"]["port"]
    log = tmp_path / "serve.log"
    daemon = start(config_set, log)
    mails = {i: mail(sender=f"client{i}@customer.example", subject=f"burst {i}",
                     message_id=f"<burst{i}@customer.example>") for i in range(200)}
    acked: set[int] = set()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for i, raw in mails.items():
                send_as_an_mta(smtp, f"client{i}@customer.example", raw)
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
                    send_as_an_mta(smtp, f"client{i}@customer.example", raw)

        def outbox_done():
            rows = outbox_now(cli)
            if rows is None:
                return False
            kinds = Counter(r["kind"] for r in rows)
            return (kinds["autoreply"] >= 200 and kinds["notification"] >= 200
                    and all(r["status"] == "sent" for r in rows))

        # What the killed daemon had claimed goes out once its lease (10 s) has passed.
        wait_for(outbox_done, "every autoreply and line notification to be sent", limit=400)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    tickets = json.loads(cli("tickets", "list", "--limit", "0", "--json", check=True).stdout)
    assert sorted(t["subject"] for t in tickets) == sorted(f"burst {i}" for i in range(200))
    # Each ticket queued exactly one acknowledgement and one notification to its line: the
    # mail received twice (killed before it was acknowledged) made no second mail of any kind.
    rows = cli_outbox(cli, "--limit", "0")
    assert Counter(r["kind"] for r in rows) == {"autoreply": 200, "notification": 200}
    for kind in ("autoreply", "notification"):
        assert sorted(r["ticket"] for r in rows if r["kind"] == kind) == \
            sorted(t["number"] for t in tickets)
    sent = maildir_mails(config_set.data["outbound"]["maildir"])
    by_id: dict[str, set[str]] = {}
    for m in sent:
        by_id.setdefault(m["Message-ID"], set()).add(m["To"].addresses[0].addr_spec)
    # Every client got its acknowledgement and the line heard of every ticket; a copy sent twice
    # (killed while sending) can only be the same mail with the same Message-ID.
    assert set(by_id) == {f"<{r['message_id']}>" for r in rows}
    assert all(len(to) == 1 for to in by_id.values())
    kind_of = {f"<{r['message_id']}>": r["kind"] for r in rows}
    acks = [next(iter(to)) for mid, to in by_id.items() if kind_of[mid] == "autoreply"]
    assert sorted(acks) == sorted(f"client{i}@customer.example" for i in range(200))
    assert {next(iter(to)) for mid, to in by_id.items() if kind_of[mid] == "notification"} == \
        {"line1@example.com"}
