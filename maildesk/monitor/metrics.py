"""The event counts of one daemon, in a registry of its own (never prometheus_client's global
one: tests and several daemons in one process must not add up).

Each method is one counter step or one observation, called where the event happens (the SMTP
handler, the processor thread, the deliverer, the timer sweep, the IMAP watchers): a lock and
an addition, nothing that could slow a mail down. The figures of the queues are read from the
database at scrape time instead (queues.py): they are true whoever filled the queues.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds from storing a mail to its ticket entry: most within a second, a backlog in minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Seconds a timer fired after its due time: up to a sweep interval normally (30 s).
LATENESS_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 4 * 3600.0,
                    24 * 3600.0)
# What processing made of a message (process/run.py Outcome.status).
OUTCOMES = ("done", "duplicate", "ignored", "quarantined", "retry")
DELIVERY_RESULTS = ("sent", "retry", "failed")


class Metrics:
    """The counters and histograms of one daemon, and the times its parts last made progress."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "maildesk_mail_received", "Mails offered: SMTP transactions begun (MAIL FROM), "
            "IMAP messages found new in a folder.", ["channel"], registry=r)
        self.accepted = Counter(
            "maildesk_mail_accepted", "Mails stored and acknowledged (SMTP 250 after DATA, "
            "IMAP stored before the flag or move).", ["channel"], registry=r)
        self.refused = Counter(
            "maildesk_smtp_refused", "Error replies (4xx, 5xx) the SMTP listener gave, by "
            "code: 550 no such address, 552 too large, 451 not stored, 452 too many "
            "recipients, 421 too many connections or errors, 5xx bad commands...",
            ["code"], registry=r)
        self.processed = Counter(
            "maildesk_mail_processed", "Stored mails processed, by outcome: done (a ticket "
            "entry), duplicate, ignored, quarantined, retry (failed, tried again later).",
            ["outcome"], registry=r)
        self.deferred = Counter(
            "maildesk_mail_deferred", "Stored mails left pending for a later batch because "
            "another daemon's batch held their thread, their ticket or a copy of them (several "
            "daemons on PostgreSQL).", registry=r)
        self.tickets_opened = Counter(
            "maildesk_tickets_opened", "New tickets opened by processed mail.", registry=r)
        self.latency = Histogram(
            "maildesk_processing_latency_seconds", "From storing a mail to its processing "
            "(ticket entry, quarantine...).", buckets=LATENCY_BUCKETS, registry=r)
        self.deliveries = Counter(
            "maildesk_outbox_deliveries", "Outbox delivery attempts by result: sent, retry "
            "(deferred, tried again later), failed (given up).", ["result"], registry=r)
        self.timers_fired = Counter(
            "maildesk_timers_fired", "SLA timers fired (warnings, breaches, OLA moves, "
            "auto-close), by kind and stage.", ["kind", "stage"], registry=r)
        self.timer_lateness = Histogram(
            "maildesk_timer_lateness_seconds", "How long after its due time a timer fired.",
            buckets=LATENESS_BUCKETS, registry=r)
        self._progress = Gauge(
            "maildesk_worker_last_progress_timestamp_seconds", "When a worker thread last "
            "finished a pass (Unix time).", ["worker"], registry=r)
        self._imap_synced = Gauge(
            "maildesk_imap_last_sync_timestamp_seconds", "When an IMAP folder was last known "
            "to be taken in: a pass ended, or IDLE was listening (Unix time).",
            ["account", "folder"], registry=r)
        self._lock = threading.Lock()
        self._last_pass: dict[str, float] = {}      # worker -> time.monotonic()
        self._imap: dict[tuple[str, str], float] = {}  # (account, folder) -> time.time()
        self._imap_started: dict[tuple[str, str], float] = {}
        for channel in ("smtp", "imap"):
            self.received.labels(channel)
            self.accepted.labels(channel)
        for outcome in OUTCOMES:
            self.processed.labels(outcome)
        for result in DELIVERY_RESULTS:
            self.deliveries.labels(result)

    # -- events -------------------------------------------------------------------------------
    def mail_received(self, channel: str, n: int = 1) -> None:
        if n:
            self.received.labels(channel).inc(n)

    def mail_accepted(self, channel: str, n: int = 1) -> None:
        if n:
            self.accepted.labels(channel).inc(n)

    def smtp_refused(self, reply: str) -> None:
        """Count a refusal by its code (the reply's first three characters)."""
        self.refused.labels(reply[:3]).inc()

    def mail_processed(self, outcome: str, latency: float | None, opened: bool) -> None:
        self.processed.labels(outcome).inc()
        if opened:
            self.tickets_opened.inc()
        if latency is not None and outcome != "retry":
            self.latency.observe(max(latency, 0.0))

    def mail_deferred(self, n: int = 1) -> None:
        if n:
            self.deferred.inc(n)

    def delivered(self, result: str) -> None:
        self.deliveries.labels(result).inc()

    def timer_fired(self, kind: str, stage: str, lateness: float) -> None:
        self.timers_fired.labels(kind, stage).inc()
        self.timer_lateness.observe(max(lateness, 0.0))

    # -- progress -----------------------------------------------------------------------------
    def watch(self, worker: str) -> None:
        """`worker` runs in this daemon from now on: the health check heeds its passes."""
        self.progressed(worker)

    def watches(self, worker: str) -> bool:
        with self._lock:
            return worker in self._last_pass

    def progressed(self, worker: str) -> None:
        """`worker` finished a pass (the health check's heartbeat)."""
        with self._lock:
            self._last_pass[worker] = time.monotonic()
        self._progress.labels(worker).set(time.time())

    def since_progress(self, worker: str) -> float | None:
        """Seconds since `worker` last finished a pass; None when it never has."""
        with self._lock:
            last = self._last_pass.get(worker)
        return None if last is None else time.monotonic() - last

    def imap_watch(self, account: str, folder: str) -> None:
        """A watcher of this folder starts: its lag counts from now until its first sync."""
        with self._lock:
            self._imap_started.setdefault((account, folder), time.time())

    def imap_passed(self, account: str, folder: str, found: int, stored: int) -> None:
        """A pass over a folder ended: `found` new mails (stored, or too large), `stored`."""
        self.mail_received("imap", found)
        self.mail_accepted("imap", stored)
        self.imap_synced(account, folder)

    def imap_synced(self, account: str, folder: str) -> None:
        now = time.time()
        with self._lock:
            self._imap[(account, folder)] = now
        self._imap_synced.labels(account, folder).set(now)

    def imap_sync_times(self) -> dict[tuple[str, str], float]:
        """(account, folder) -> the last sync, or the watcher's start before the first."""
        with self._lock:
            return {**self._imap_started, **self._imap}
