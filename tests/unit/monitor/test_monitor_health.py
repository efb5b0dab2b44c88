"""The health verdict on queue figures and the workers' progress, and the counters' labels."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prometheus_client import generate_latest

from maildesk.monitor.health import judge
from maildesk.monitor.metrics import Metrics
from maildesk.monitor.queues import QueueFigures

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
LIMIT = timedelta(minutes=10)


def figures(pending_since: timedelta | None = None, n: int = 3,
            due_since: timedelta | None = None) -> QueueFigures:
    return QueueFigures(
        now=NOW, inbound_pending=n if pending_since else 0,
        inbound_oldest_pending=NOW - pending_since if pending_since else None,
        inbound_quarantined=0, outbox_queued=2 if due_since else 0,
        outbox_oldest_queued=NOW - due_since if due_since else None,
        outbox_due=2 if due_since else 0,
        outbox_oldest_due=NOW - due_since if due_since else None, outbox_failed=0,
        timers_due=0, timers_oldest_due=None, timers_next_due=None)


def test_old_pending_mail_and_no_processor_here_is_stuck():
    health = judge(figures(timedelta(minutes=12)), LIMIT, None)
    assert not health.ok
    assert health.line() == "processing stuck: 3 mails pending, oldest 12 min"


def test_young_pending_mail_is_fine():
    assert judge(figures(timedelta(minutes=3)), LIMIT, None).line() == "ok"


def test_a_processor_that_keeps_passing_is_behind_not_stuck():
    metrics = Metrics()
    metrics.watch("processor")
    assert judge(figures(timedelta(minutes=12)), LIMIT, metrics).ok
    assert not judge(figures(timedelta(minutes=12)), timedelta(0), metrics).ok


def test_delivery_stuck_is_said_too():
    health = judge(figures(timedelta(seconds=700), n=1, due_since=timedelta(hours=3)), LIMIT,
                   None)
    assert health.line() == ("processing stuck: 1 mail pending, oldest 11 min; "
                             "delivery stuck: 2 mails due, oldest due for 3 h 0 min")


def test_refusals_count_by_code_and_retries_have_no_latency():
    metrics = Metrics()
    metrics.smtp_refused("550 5.1.1 <x@y>: no such support address here")
    metrics.smtp_refused("550 5.7.1 token probing")
    metrics.mail_processed("retry", 3.0, False)
    metrics.mail_processed("done", 2.0, True)
    text = generate_latest(metrics.registry).decode()
    assert 'maildesk_smtp_refused_total{code="550"} 2.0' in text
    assert "maildesk_processing_latency_seconds_count 1.0" in text
    assert "maildesk_tickets_opened_total 1.0" in text
    assert 'maildesk_mail_processed_total{outcome="retry"} 1.0' in text
    # A registry of its own: a second daemon in one process counts apart.
    assert "maildesk_tickets_opened_total 0.0" in generate_latest(Metrics().registry).decode()
