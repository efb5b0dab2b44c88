"""The gauges worked out at scrape time: the queues (read from the database, queues.py), the
lag of each IMAP folder, the health verdict, the version."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from maildesk.clock import Clock
from maildesk.monitor.health import judge
from maildesk.monitor.metrics import Metrics
from maildesk.monitor.queues import QueueFigures, read_queues

log = logging.getLogger(__name__)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class QueueCollector(Collector):
    """Registered in a Metrics registry; each scrape runs a few indexed queries."""

    def __init__(self, metrics: Metrics, make_session: Callable[[], Session], clock: Clock,
                 stuck_after: timedelta, version: str):
        self.metrics = metrics
        self.make_session = make_session
        self.clock = clock
        self.stuck_after = stuck_after
        self.version = version
        metrics.registry.register(self)

    def describe(self) -> list[GaugeMetricFamily]:
        return []   # unchecked: the names are all maildesk_* and distinct from the counters'

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily("maildesk_info", "The maildesk version.", labels=["version"])
        info.add_metric([self.version], 1)
        yield info
        yield from self._imap()
        try:
            with self.make_session() as session:
                figures = read_queues(session, self.clock.now())
        except Exception as exc:   # the other metrics still get out; the error counts
            log.warning("metrics: reading the queues failed: %s: %s", type(exc).__name__, exc)
            yield _gauge("maildesk_queues_readable", "1 when the scrape could read the "
                         "queues from the database.", 0)
            yield _gauge("maildesk_healthy", "1 when /healthz says ok.", 0)
            return
        yield _gauge("maildesk_queues_readable", "1 when the scrape could read the queues from "
                     "the database.", 1)
        yield from self._queues(figures)
        health = judge(figures, self.stuck_after, self.metrics)
        yield _gauge("maildesk_healthy", "1 when /healthz says ok.", 1 if health.ok else 0)

    @staticmethod
    def _queues(f: QueueFigures) -> Iterator[GaugeMetricFamily]:
        yield _gauge("maildesk_inbound_pending", "Stored mails waiting for the processor.",
                     f.inbound_pending)
        yield _gauge("maildesk_inbound_pending_oldest_age_seconds", "How long the oldest "
                     "pending mail has waited since it was stored (0: none pending).",
                     f.pending_age())
        yield _gauge("maildesk_inbound_quarantined", "Mails in quarantine now.",
                     f.inbound_quarantined)
        yield _gauge("maildesk_outbox_queued", "Outbox mails waiting for delivery (due or "
                     "waiting for a retry).", f.outbox_queued)
        yield _gauge("maildesk_outbox_oldest_age_seconds", "Age of the oldest queued outbox "
                     "mail (0: none queued).", f.queued_age())
        yield _gauge("maildesk_outbox_due", "Queued outbox mails due for an attempt now.",
                     f.outbox_due)
        yield _gauge("maildesk_outbox_due_oldest_seconds", "How long the longest-due outbox "
                     "mail has been due (0: none due).", f.due_age())
        yield _gauge("maildesk_outbox_failed", "Outbox mails given up (failed) in all.",
                     f.outbox_failed)
        yield _gauge("maildesk_timers_due", "SLA timers due and not fired yet.", f.timers_due)
        yield _gauge("maildesk_timers_due_oldest_seconds", "How long the longest-due unfired "
                     "timer has been due (0: none due).", f.timers_lateness())
        if f.timers_next_due is not None:
            yield _gauge("maildesk_timers_next_due_timestamp_seconds", "When the next pending "
                         "SLA timer is due (Unix time).", f.timers_next_due.timestamp())

    def _imap(self) -> Iterator[GaugeMetricFamily]:
        synced = self.metrics.imap_sync_times()
        if not synced:
            return
        lag = GaugeMetricFamily("maildesk_imap_lag_seconds", "Seconds since an IMAP folder "
                                "was last known to be taken in.", labels=["account", "folder"])
        now = time.time()
        for (account, folder), at in sorted(synced.items()):
            lag.add_metric([account, folder], max(now - at, 0.0))
        yield lag
