"""The metrics endpoint as Prometheus and an operator meet it (`metrics.listen`): a real
`serve` process, a known burst over SMTP, the counts on `/metrics`; `/healthz` turning 503
while the processor (a second `serve --only process`) is stopped with SIGSTOP, and 200 again
once SIGCONT lets it drain the backlog."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import time
import urllib.error
from datetime import timedelta
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from desk import MONDAY, Desk
from dovecot import dovecot_or_skip
from helpers import cli_json, send_smtp, wait_for
from mails import mail
from maildesk.monitor.metrics import Metrics

EXE = str(Path(sys.executable).parent / "maildesk")


def start_serve(config: Path, log: Path, *args: str) -> subprocess.Popen:
    err = open(log, "wb")
    proc = subprocess.Popen([EXE, "--config", str(config), "serve", *args],
                            stdout=subprocess.PIPE, stderr=err)
    err.close()
    line = proc.stdout.readline().decode()
    assert "maildesk serving" in line, log.read_text()
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)   # a stopped process cannot act on SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return samples_of(reply.read().decode())


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def healthz(base: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_desk(config_set):
    port = free_port()
    config_set.write(metrics={"listen": f"127.0.0.1:{port}"},
                     smtp={"max_message_size": 20_000})
    return config_set, f"http://127.0.0.1:{port}"


def test_a_known_burst_shows_up_in_the_counts(metrics_desk, tmp_path, cli):
    config_set, base = metrics_desk
    daemon = start_serve(config_set.path, tmp_path / "serve.log")
    try:
        smtp_port = config_set.data["smtp"]["port"]
        for i in range(5):
            send_smtp("127.0.0.1", smtp_port, mail(subject=f"burst {i}",
                                                  message_id=f"<burst{i}@customer.example>"))
        send_smtp("127.0.0.1", smtp_port, b"no headers at all, only words\r\n")  # quarantined
        with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
            send_smtp("127.0.0.1", smtp_port, mail(), rcpt=["nobody@example.com"])
        assert unknown.value.recipients["nobody@example.com"][0] == 550
        with pytest.raises(smtplib.SMTPException) as large:
            send_smtp("127.0.0.1", smtp_port, mail(body="x" * 30_000))
        assert large.value.smtp_code == 552

        wait_for(lambda: value(s := scrape(base), "maildesk_mail_processed_total",
                               outcome="done") == 5
                 and value(s, "maildesk_mail_processed_total", outcome="quarantined") == 1,
                 "the burst processed")   # and so every mail it queues is in the outbox

        def all_sent():
            rows = cli_json(cli, "outbox", "list")
            return rows and all(r["status"] == "sent" for r in rows) and rows
        outbox = wait_for(all_sent, "the burst's mail sent")

        samples = wait_for(lambda: (s := scrape(base)) and value(  # a moment after the DB
            s, "maildesk_outbox_deliveries_total", result="sent") == len(outbox) and s,
            "the deliveries counted")
        assert value(samples, "maildesk_mail_processed_total", outcome="done") == 5
        assert value(samples, "maildesk_mail_processed_total", outcome="quarantined") == 1
        assert value(samples, "maildesk_mail_received_total", channel="smtp") == 8
        assert value(samples, "maildesk_mail_accepted_total", channel="smtp") == 6
        assert value(samples, "maildesk_smtp_refused_total", code="550") == 1
        assert value(samples, "maildesk_smtp_refused_total", code="552") == 1
        assert {labels for name, labels in samples if name == "maildesk_smtp_refused_total"} \
            == {(("code", "550"),), (("code", "552"),)}
        assert value(samples, "maildesk_mail_processed_total", outcome="retry") == 0
        assert value(samples, "maildesk_tickets_opened_total") == 5
        assert value(samples, "maildesk_processing_latency_seconds_count") == 6
        assert value(samples, "maildesk_inbound_pending") == 0
        assert value(samples, "maildesk_inbound_quarantined") == 1
        assert value(samples, "maildesk_outbox_queued") == 0
        assert value(samples, "maildesk_outbox_deliveries_total", result="failed") == 0
        assert value(samples, "maildesk_outbox_failed") == 0
        assert value(samples, "maildesk_healthy") == 1
        assert ("maildesk_info", (("version", "0.1.0"),)) in samples
        assert value(samples, "maildesk_worker_last_progress_timestamp_seconds",
                     worker="processor") > 0
        assert healthz(base) == (200, "ok\n")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nothing", timeout=10)
        assert missing.value.code == 404
    finally:
        stop(daemon)


def test_healthz_fails_while_the_processor_is_stopped_and_recovers(metrics_desk, tmp_path, cli):
    """Intake and processing in two daemons on one database, as a desk may run them, each with
    its endpoint: the intake's /healthz sees stored mail waiting; SIGSTOP is a processor that
    hangs."""
    config_set, base = metrics_desk
    config_set.write(metrics={"stuck_after": "2s"})
    processor_port = free_port()
    processor_config = config_set.dir / "processor.yaml"
    processor_config.write_text(yaml.safe_dump(
        {**config_set.data, "metrics": {"listen": f"127.0.0.1:{processor_port}"}},
        allow_unicode=True, sort_keys=False))
    intake = start_serve(config_set.path, tmp_path / "intake.log", "--only", "smtp")
    processor = start_serve(processor_config, tmp_path / "processor.log", "--only",
                            "process,outbound")
    try:
        assert healthz(base) == (200, "ok\n")
        # Stopped between two passes (it polls every 5 s), not while it holds the database.
        last_pass = ("maildesk_worker_last_progress_timestamp_seconds", (("worker", "processor"),))
        first = scrape(f"http://127.0.0.1:{processor_port}")[last_pass]
        wait_for(lambda: scrape(f"http://127.0.0.1:{processor_port}")[last_pass] > first,
                 "a pass of the processor")
        processor.send_signal(signal.SIGSTOP)
        send_smtp("127.0.0.1", config_set.data["smtp"]["port"], mail(subject="while stopped"))
        code, body = wait_for(lambda: (h := healthz(base))[0] == 503 and h,
                              "/healthz to say the processing is stuck", limit=60)
        assert body.startswith("processing stuck: 1 mail pending, oldest ")
        assert body.endswith(" s\n") and body.count("\n") == 1
        samples = scrape(base)
        assert value(samples, "maildesk_healthy") == 0
        assert value(samples, "maildesk_queues_readable") == 1
        assert value(samples, "maildesk_inbound_pending") == 1
        assert cli_json(cli, "tickets", "list") == []

        processor.send_signal(signal.SIGCONT)
        wait_for(lambda: healthz(base) == (200, "ok\n"), "/healthz healthy again", limit=60)
        (ticket,) = cli_json(cli, "tickets", "list")
        assert ticket["subject"] == "while stopped"
        wait_for(lambda: cli_json(cli, "outbox", "list", "--status", "queued") == [],
                 "the autoreply sent")
        time.sleep(2.5)   # past stuck_after: nothing left waiting, so nothing to be stuck
        samples = scrape(base)
        assert value(samples, "maildesk_healthy") == 1
        assert value(samples, "maildesk_inbound_pending") == 0
        assert healthz(base) == (200, "ok\n")
    finally:
        stop(processor)
        stop(intake)


def test_a_listen_address_off_loopback_is_refused_unless_allowed(config_set, cli):
    config_set.write(metrics={"listen": "0.0.0.0:9187"})
    proc = cli("check")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "metrics.listen" in err and "not a loopback address" in err
    config_set.write(metrics={"listen": "127.0.0.1:http"})
    err = cli("check").stderr.decode()
    assert "metrics.listen" in err and "host:port" in err
    config_set.write(metrics={"listen": "0.0.0.0:9187", "allow_remote": True})
    assert cli("check").returncode == 0, cli("check").stderr.decode()


def test_serve_refuses_to_start_when_the_metrics_port_is_taken(metrics_desk, tmp_path):
    config_set, _ = metrics_desk
    first = start_serve(config_set.path, tmp_path / "first.log", "--only", "process")
    try:
        proc = subprocess.run([EXE, "--config", str(config_set.path), "serve", "--only",
                               "process"], capture_output=True, timeout=120)
        assert proc.returncode == 1
        assert b"metrics.listen" in proc.stderr and b"cannot listen" in proc.stderr
    finally:
        stop(first)


def test_fired_timers_are_counted_with_how_late_they_fired(config_set):
    """The sweep (as `serve`'s timers thread runs it) counts each timer once it committed."""
    desk = Desk(config_set.path, MONDAY)
    try:
        desk.ctx.metrics = Metrics()
        desk.client_writes("Printer on fire", "It is on fire.")
        kind, stage, due = desk.timers()[0]
        desk.at(due + timedelta(minutes=3))
        fired = desk.fire()
        assert fired >= 1
        samples = samples_of(generate_latest(desk.ctx.metrics.registry).decode())
        assert value(samples, "maildesk_timers_fired_total", kind=kind, stage=stage) >= 1
        assert sum(v for (name, _), v in samples.items()
                   if name == "maildesk_timers_fired_total") == fired
        assert value(samples, "maildesk_timer_lateness_seconds_count") == fired
        assert value(samples, "maildesk_timer_lateness_seconds_sum") >= 180
    finally:
        desk.close()


def test_imap_mail_and_the_folder_lag_show_up(metrics_desk, tmp_path, monkeypatch):
    config_set, base = metrics_desk
    dovecot = dovecot_or_skip(tmp_path / "dovecot")
    try:
        monkeypatch.setenv("MAILDESK_TEST_IMAP_PASSWORD", dovecot.password)
        config_set.write(imap={"accounts": [{
            "name": "support", "host": "127.0.0.1", "port": dovecot.port, "security": "none",
            "username": dovecot.user, "password": {"env": "MAILDESK_TEST_IMAP_PASSWORD"},
            "folders": ["INBOX"], "import_existing": "all", "poll_interval": "1h"}]})
        for i in range(3):
            raw = mail(subject=f"by IMAP {i}", message_id=f"<imap{i}@customer.example>")
            dovecot.append("INBOX", raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        daemon = start_serve(config_set.path, tmp_path / "serve.log", "--only", "imap,process")
        try:
            samples = wait_for(lambda: (s := scrape(base)) and value(
                s, "maildesk_mail_processed_total", outcome="done") == 3 and s, "3 processed")
            assert value(samples, "maildesk_mail_received_total", channel="imap") == 3
            assert value(samples, "maildesk_mail_accepted_total", channel="imap") == 3
            assert value(samples, "maildesk_mail_received_total", channel="smtp") == 0
            lag = samples[("maildesk_imap_lag_seconds", (("account", "support"),
                                                         ("folder", "INBOX")))]
            assert 0 <= lag < 60
            assert value(samples, "maildesk_imap_last_sync_timestamp_seconds",
                         account="support", folder="INBOX") > time.time() - 60
        finally:
            stop(daemon)
    finally:
        dovecot.close()
