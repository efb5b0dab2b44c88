"""The daemon (`maildesk serve`): worker threads, the SMTP listener and the signals, put
together by `serve` in small named steps.

Under systemd (Type=notify, contrib/systemd/) it reports READY=1 once the listener is bound
and the workers run, pings the watchdog from the event loop, and brackets a reload with
RELOADING=1 ... READY=1; outside systemd those messages go nowhere (maildesk/sdnotify.py).

A reload (SIGHUP) swaps in the new settings everywhere they are read per message, builds a new
outbound transport and starts, stops or restarts IMAP watchers as `imap.accounts` changed. What
only a restart can change (the listener's address, the database) is logged as such.

The Context, the migrations and the timer sweep are services (maildesk/services/); they are
imported here under their old names for the callers that import them from app."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maildesk.config import ConfigError, Settings, load_settings
from maildesk.sdnotify import Notifier
from maildesk.services.context import Context
from maildesk.services.database import alembic_config, upgrade_database
from maildesk.services.schedules import run_schedules
from maildesk.services.timers import TIMER_BATCH, run_timers

if TYPE_CHECKING:
    from maildesk.ingress.imap_service import ImapService
    from maildesk.ingress.smtp import SupportHandler
    from maildesk.monitor.metrics import Metrics
    from maildesk.monitor.service import Monitor
    from maildesk.outbound.transport import Transport
    from maildesk.probes import TokenProbeGuard
    from maildesk.store.raw import GroupCommitWriter

__all__ = ["COMPONENTS", "TIMER_BATCH", "Context", "IntakeGate", "OutboundThread",
           "ProcessorThread", "TimersThread", "Worker", "alembic_config", "run_schedules",
           "run_timers", "serve", "upgrade_database"]

log = logging.getLogger("maildesk")

COMPONENTS = ("smtp", "imap", "process", "outbound", "timers")


class Worker:
    """A thread that runs `step` whenever woken, and every `poll_seconds` regardless (for work
    another process queued). `step` returns True while there may be more to do."""

    def __init__(self, name: str, step, poll_seconds: float = 5.0,  # type: ignore[no-untyped-def]
                 metrics: Metrics | None = None):
        self._step = step
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._poll = poll_seconds
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.metrics = metrics  # each finished pass is a heartbeat for /healthz

    def start(self) -> None:
        if self.metrics is not None:
            self.metrics.watch(self._thread.name)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Let the current step finish, then end the thread."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    RETRY_FIRST, RETRY_MAX = 1.0, 30.0   # seconds between passes that fail, doubling

    def prepare(self) -> None:
        """Run first on the thread, before it waits for work."""

    def _run(self) -> None:
        retry: float | None = None   # after a failed pass: the wait before the next try
        last_error: tuple[str, str] | None = None
        try:
            self.prepare()
        except Exception:   # the first pass tries again
            log.exception("%s: preparing failed", self._thread.name)
        while not self._stop.is_set():
            # After a failure, a wake still cuts the wait short: it comes from work that went
            # through (mail stored), so the database is back.
            self._wake.wait(self._poll if retry is None else retry)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self._pass():
                    pass
            except Exception as exc:  # a lost or locked database, a bug: log, try again later
                retry = self.RETRY_FIRST if retry is None else min(retry * 2, self.RETRY_MAX)
                last_error = self._failed(exc, retry, last_error)
            else:
                retry, last_error = None, None

    def _failed(self, exc: Exception, retry: float,
                last: tuple[str, str] | None) -> tuple[str, str]:
        """Log a failed pass in proportion: a database that cannot be reached is the outage
        watch's to log (one line per attempt for all threads), a locked one is one line, a
        bug is a traceback the first time and one line while it repeats."""
        from maildesk.db.outage import is_unreachable, one_line
        from maildesk.db.session import is_retryable

        name = self._thread.name
        error = (type(exc).__name__, str(exc))
        if is_unreachable(exc):
            log.debug("%s pass failed: database unreachable: %s", name, one_line(exc))
        elif is_retryable(exc):
            log.warning("%s pass failed: %s; retrying in %.0f s", name, one_line(exc), retry)
        elif error == last:
            log.warning("%s pass failed again: %s; retrying in %.0f s", name, one_line(exc),
                        retry)
        else:
            log.exception("%s pass failed; retrying in %.0f s", name, retry)
        return error

    def _pass(self) -> bool:
        more = self._step()
        if self.metrics is not None:
            self.metrics.progressed(self._thread.name)
        return bool(more)


class OutboundThread(Worker):
    """Delivers the outbox through the configured transport."""

    def __init__(self, ctx: Context, write_turn: AbstractContextManager[Any] | None = None):
        from maildesk.outbound.outbox import OutboxDeliverer

        self.deliverer = OutboxDeliverer(ctx.make_session, self.build(ctx.settings), ctx.clock,
                                         lease=ctx.settings.outbound.lease,
                                         write_turn=write_turn)
        super().__init__("outbound", self._deliver, metrics=ctx.metrics)

    def _deliver(self) -> bool:
        outcomes = self.deliverer.run_once()
        if self.metrics is not None:
            for outcome in outcomes:
                self.metrics.delivered(outcome.status)
        return bool(outcomes)

    @staticmethod
    def build(settings: Settings) -> Transport:
        """The transport `settings` ask for (raises when it cannot be made)."""
        from maildesk.outbound.registry import make_transport

        return make_transport(settings.outbound, settings.domain)

    def reload(self, settings: Settings, transport: Transport) -> threading.Event:
        """Deliver through `transport` from the next mail on; the event is set once the old
        transport is out of use and closed. (A mail is claimed by the deliverer, not by a
        transport: each one goes through exactly one of the two.)"""
        self.deliverer.lease = settings.outbound.lease
        swapped = self.deliverer.replace_transport(transport)
        self.wake()  # an idle thread takes it up at once
        return swapped

    def stop(self) -> None:
        super().stop()
        self.deliverer.take_new_transport()  # one handed over too late to be used: close it
        self.deliverer.transport.close()
        self.deliverer.close()


class IntakeGate:
    """Taking mail in goes before processing it: while intake stores (an IMAP pass storing a
    batch of messages, the SMTP listener's commits coming back to back in a burst), the
    processor holds off, a bounded while, so a big import or a flood never starves it.
    Storing is cheap and is what lets the client or server forget a message; processing holds
    the database's write lock and the interpreter for much longer per message.

    A batch squeezed in between two commits of a burst did one mail for a batch's overhead
    (reading, claiming, committing: 10-15 ms of a busy interpreter) and took that time from
    intake; so a batch starts once intake has been quiet for QUIET, and works LEAST before
    it lets intake in (a few mails: a steady 100 mails/s got its autoreplies in 0.4 s instead
    of 1 s). QUIET is short: a steady 50 mails/s (20 ms apart) is processed as it comes."""

    MAX_HOLD = 1.0  # seconds the processor waits for intake at most, per batch
    QUIET = 0.005   # intake counts as done once nothing was stored for this long
    LEAST = 0.01    # seconds a batch works before intake waiting ends it
    # After waiting MAX_HOLD for intake that does not stop, the batch works this long before
    # it lets intake in: processing keeps a share (a sixth) of a flood.
    SHARE = 0.2

    # How busy intake was lately (`busy_share`): the stores that ended in the last WINDOW s.
    WINDOW = 0.5

    def __init__(self, quiet: float = QUIET) -> None:
        self.quiet = quiet
        self._busy = 0
        self._last = 0.0   # monotonic time the last store ended
        self._stores: deque[tuple[float, float]] = deque()   # (start, end) of recent stores
        self._cond = threading.Condition()
        # SQLite's write lock, as this process hands it on: the processor holds it for a
        # batch, the listener's writer takes it for a commit. Waiting on it, the writer gets
        # the lock the moment the batch commits, instead of polling SQLite's busy handler
        # (sleeps of 1, 2, 5 ... 50 ms) while the processor may start its next batch.
        self.turn = threading.Lock()

    @contextmanager
    def storing(self) -> Iterator[None]:
        """The listener's commit: intake waits (the batch in hand commits), then writes."""
        with self.busy(), self.turn:
            yield

    @contextmanager
    def busy(self) -> Iterator[None]:
        start = time.monotonic()
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._last = time.monotonic()
                # Forgotten here too, not only when asked: a daemon without a processor
                # (`serve --only smtp`) never asks.
                self._forget_before(self._last - self.WINDOW)
                self._stores.append((start, self._last))
                self._cond.notify_all()

    def busy_share(self) -> float:
        """The share of the last WINDOW seconds intake spent storing (or waiting to): near 1
        in a burst, a fraction under a steady flow."""
        with self._cond:
            since = time.monotonic() - self.WINDOW
            self._forget_before(since)
            busy = sum(end - max(start, since) for start, end in self._stores)
        return min(1.0, busy / self.WINDOW)

    def _forget_before(self, since: float) -> None:
        while self._stores and self._stores[0][1] < since:
            self._stores.popleft()

    def wait_idle(self) -> bool:
        """Wait until intake has been quiet for QUIET, MAX_HOLD at most: False when it did
        not stop meanwhile (the batch then takes its SHARE)."""
        deadline = time.monotonic() + self.MAX_HOLD
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return False
                quiet_in = self._last + self.quiet - now if self._busy == 0 else deadline - now
                if quiet_in <= 0:
                    return True
                self._cond.wait(min(quiet_in, deadline - now))

    def waiting(self) -> bool:
        """Is intake storing (or about to), so that a batch holding the lock should commit?"""
        return self._busy > 0


# Seconds before a batch that left mail deferred (PostgreSQL, several daemons) runs again.
DEFER_WAIT = 0.2


class ProcessorThread(Worker):
    """Runs the pipeline: woken when mail is stored, and every few seconds for mail stored by
    other processes (`ingest`, a second daemon)."""

    def __init__(self, ctx: Context, on_outbox=None, probes=None,  # type: ignore[no-untyped-def]
                 intake: IntakeGate | None = None):
        from maildesk.process.affinity import OwnIntake
        from maildesk.process.run import Processor

        self.intake = intake or IntakeGate()
        self._least = self.intake.LEAST   # how long a batch works before intake waiting ends it
        # On SQLite a batch commits early when intake waits for the write lock: the listener's
        # 250 must not wait for a batch of processing (on PostgreSQL they do not contend).
        self.processor = Processor(ctx.settings, ctx.make_session, ctx.clock, on_outbox=on_outbox,
                                   probes=probes, yield_to=self.intake.waiting,
                                   write_turn=self.intake.turn, hold_seconds=self.HOLD,
                                   own=OwnIntake())
        self.on_quarantine = None  # the IMAP poller copies quarantined mail to its folder
        super().__init__("processor", self._step, metrics=ctx.metrics)

    def stored(self, ids: list[int]) -> None:
        """The listener or an IMAP poller of this daemon committed these: process them now
        (on PostgreSQL before other daemons' mail, process/affinity.py)."""
        if self.processor.own is not None:
            self.processor.own.add(ids)
        self.wake()

    def prepare(self) -> None:
        # The parse child takes about half a second to start, and the first mail would compile
        # the templates of its autoreply and notification: neither while the first mail waits.
        # The child starts on another core while this one compiles.
        warm = threading.Thread(target=self.processor.composer.warm, name="warm", daemon=True)
        warm.start()
        self.processor.sandbox.start()
        warm.join()

    # A batch: up to BATCH mails in one commit, holding SQLite's write lock HOLD seconds at
    # most (the deliverer and the timers need it too; the listener's commit goes first at
    # once, IntakeGate.waiting). Bigger batches cost fewer commits: 20 mails a batch took
    # about a fifth more time per mail than 100, and 100 (0.25 s) about 4 % more than 200
    # (0.5 s: what an autoreply may wait for the deliverer's turn in a burst).
    BATCH, HOLD = 200, 0.5

    # Mail that waited longer than BEHIND before its batch, while intake is busy less than
    # STEADY of the time, means processing falls behind a steady flow: the next batch works
    # twice as long before it lets intake in, up to LONGEST, so that fewer, longer batches pay
    # their overhead (reading what is pending, starting the parse feed, the commit) less
    # often. At a steady 100 mails/s, batches of LEAST did two or three mails each and the
    # backlog grew by the second (benchmarks/outbox.py: autoreplies 0.5-5.8 s after the 250).
    # Not in a burst (intake busy nearly all the time): there longer batches only take the
    # interpreter from the listener (SMTP accepted 0.40-0.54 of the sink with them, ticketed
    # no sooner: benchmarks/end_to_end.py).
    BEHIND, STEADY, LONGEST = 0.1, 0.5, 0.1

    @classmethod
    def next_least(cls, least: float, waited: float, busy_share: float) -> float:
        """How long the next batch works before intake waiting ends it, after a batch whose
        longest-waiting mail waited `waited` s, intake busy `busy_share` of the time lately."""
        if waited > cls.BEHIND and busy_share < cls.STEADY:
            return min(cls.LONGEST, 2 * least)
        return IntakeGate.LEAST

    def _step(self) -> bool:
        quiet = self.intake.wait_idle()
        least = self._least if quiet else self.intake.SHARE
        outcomes = self.processor.run_batch(limit=self.BATCH, least=least)
        now = self.processor.clock.now()
        waited = max(((now - o.received_at).total_seconds() for o in outcomes
                      if o.received_at is not None), default=0.0)
        self._least = self.next_least(self._least, waited, self.intake.busy_share())
        deferred = sum(o.status == "deferred" for o in outcomes)
        if deferred:
            if self.metrics is not None:
                self.metrics.mail_deferred(deferred)
            # Another daemon's batch holds what they need: soon again, not at the next poll.
            timer = threading.Timer(DEFER_WAIT, self.wake)
            timer.daemon = True
            timer.start()
        for o in outcomes:
            if o.status == "deferred":
                log.debug("inbound %s: deferred (%s)", o.inbound_id, o.reason)
                continue
            log.info("inbound %s: %s%s", o.inbound_id, o.status,
                     f" ticket {o.ticket_number}" if o.ticket_number else
                     f" ({o.reason.splitlines()[0]})" if o.reason else "",
                     extra={"inbound_id": o.inbound_id, "outcome": o.status,
                            "ticket": o.ticket_number, "message_id": o.message_id})
            if self.metrics is not None:
                self.metrics.mail_processed(o.status, (now - o.received_at).total_seconds()
                                            if o.received_at else None, o.opened)
        if self.on_quarantine and any(o.status == "quarantined" for o in outcomes):
            self.on_quarantine()
        from maildesk.process.run import UNSETTLED

        return bool(outcomes) and not all(o.status in UNSETTLED for o in outcomes)

    def stop(self) -> None:
        super().stop()
        self.processor.close()


class TimersThread(Worker):
    """Fires SLA warnings and breaches, OLA moves and auto-closes as they fall due
    (effects/timers.py), then sends the digests and reports by mail that are due
    (services/schedules.py); every `timers.interval`, and at start for what fell due meanwhile."""

    def __init__(self, ctx: Context, on_outbox=None,  # type: ignore[no-untyped-def]
                 write_turn: AbstractContextManager[Any] | None = None):
        from maildesk.outbound.compose import Composer

        self.ctx = ctx
        self.write_turn = write_turn   # run_timers holds it for its transaction
        self.settings = ctx.settings
        self.composer = Composer(ctx.settings.templates_dir)
        self.on_outbox = on_outbox
        self._armed = False
        super().__init__("timers", self._step, poll_seconds=ctx.settings.timer_interval
                         .total_seconds(), metrics=ctx.metrics)

    def reload(self, settings: Settings) -> None:
        from maildesk.outbound.compose import Composer

        self.settings, self.composer = settings, Composer(settings.templates_dir)
        self._poll = settings.timer_interval.total_seconds()  # from the next wait on

    def _step(self) -> bool:
        fired = run_timers(self.ctx, self.settings, self.composer, arm=not self._armed,
                           write_turn=self.write_turn)
        self._armed = True
        scheduled = run_schedules(self.ctx, self.settings, self.composer,
                                  write_turn=self.write_turn)
        if (fired or scheduled) and self.on_outbox:
            self.on_outbox()
        # Sweep again at once while sweeps fire anything: a batch can fire fewer than it
        # read (tickets another daemon holds are skipped), and what is left is due now.
        return fired > 0


@dataclass
class Daemon:
    """The parts `serve` runs, as the steps below build, start and stop them."""

    ctx: Context
    settings: Settings  # in force now: SIGHUP replaces them
    probes: TokenProbeGuard
    writer: GroupCommitWriter
    outbound: OutboundThread | None = None
    processor: ProcessorThread | None = None
    timers: TimersThread | None = None
    imap: ImapService | None = None
    handler: SupportHandler | None = None
    server: asyncio.Server | None = None
    components: tuple[str, ...] = COMPONENTS
    relays: Relays | None = None    # smtp.relays for the probe guard's exemption
    notifier: Notifier = field(default_factory=lambda: Notifier({}))
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)  # one reload at a time
    stopping: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)    # reloads under way

    def current_settings(self) -> Settings:
        return self.settings


class Relays:
    """smtp.relays as configured now, for the token-probe guard: a reload replaces them."""

    def __init__(self, relays: tuple) -> None:  # type: ignore[type-arg]
        self.update(relays)

    def update(self, relays: tuple) -> None:  # type: ignore[type-arg]
        from maildesk.ingress.limits import RelayNetworks

        self.networks = RelayNetworks(relays)

    def contains(self, ip: str) -> bool:
        return self.networks.contains(ip)


def _assemble(ctx: Context, components: tuple[str, ...]) -> Daemon:
    """The worker threads of `components`, wired to wake each other; nothing started yet."""
    from maildesk.probes import TokenProbeGuard
    from maildesk.store.raw import GroupCommitWriter

    # One guard: the processor counts failed token lookups per IP, the listener refuses past it.
    relays = Relays(ctx.settings.smtp.relays)
    probes = TokenProbeGuard(ctx.settings.security.token_failures_per_hour,
                             exempt=relays.contains)
    # SQLite has one writer: the threads that write hand its lock on inside the process
    # (IntakeGate.turn) rather than through SQLite's busy handler, which sleeps 1, 2, 5 ...
    # 100 ms between tries while the lock may have been free and taken again meanwhile.
    sqlite = ctx.engine.dialect.name == "sqlite"
    # PostgreSQL: intake and processing share no write lock; a batch waits only while a store
    # is under way, not for intake to go quiet.
    gate = IntakeGate(quiet=IntakeGate.QUIET if sqlite else 0.0)
    turn = gate.turn if sqlite else None
    outbound = OutboundThread(ctx, write_turn=turn) if "outbound" in components else None
    wake_outbound = outbound.wake if outbound else None
    processor = (ProcessorThread(ctx, on_outbox=wake_outbound, probes=probes, intake=gate)
                 if "process" in components else None)
    timers = (TimersThread(ctx, on_outbox=wake_outbound, write_turn=turn)
              if "timers" in components else None)
    writer = GroupCommitWriter(ctx.engine, on_stored=processor.stored if processor else None,
                               intake=processor.intake.storing if processor else None)
    daemon = Daemon(ctx, ctx.settings, probes, writer, outbound, processor, timers,
                    components=components, relays=relays)
    if "imap" in components:
        daemon.imap = _imap_service(ctx, processor)
    return daemon


def _imap_service(ctx: Context, processor: ProcessorThread | None,
                  settings: Settings | None = None) -> ImapService | None:
    """The IMAP poller, when an account is enabled: it wakes the processor with new mail, and
    the processor wakes it to copy quarantined mail to the quarantine folder."""
    settings = settings or ctx.settings
    if not any(a.enabled for a in settings.imap_accounts):
        return None
    from maildesk.ingress.imap_service import ImapService

    imap = ImapService(settings.imap_accounts, ctx.make_session, ctx.clock,
                       max_size=settings.smtp.max_message_size,
                       on_stored=processor.stored if processor else None,
                       intake=processor.intake if processor else None, metrics=ctx.metrics)
    if processor:
        processor.on_quarantine = imap.wake
    return imap


async def _listen(daemon: Daemon, loop: asyncio.AbstractEventLoop) -> None:
    """Open the SMTP listener; its handler reads the settings in force per mail."""
    from maildesk.ingress.smtp import SupportHandler, make_smtp_factory

    settings = daemon.ctx.settings
    authenticate = None
    if settings.authenticity.own_check.enabled:
        # Reads the current settings per mail: a reload may change or switch it off
        # (switching it on takes a restart, like the listener's address).
        from maildesk.ingress.authcheck import make_authenticator
        authenticate = make_authenticator(daemon.current_settings)
    daemon.handler = SupportHandler(daemon.current_settings, daemon.writer, daemon.ctx.clock,
                                    authenticate=authenticate, probes=daemon.probes,
                                    metrics=daemon.ctx.metrics)
    s = settings.smtp
    try:
        daemon.server = await loop.create_server(make_smtp_factory(daemon.handler, settings),
                                                 s.host, s.port)
    except OSError as exc:  # one line naming the address and the keys that set it
        from maildesk.services.failures import listen_failure
        raise listen_failure(s.host, s.port, exc, settings) from exc
    log.info("SMTP listener on %s:%s for %s", s.host, s.port,
             ", ".join(settings.support_addresses))


def _workers(daemon: Daemon) -> list[Worker]:
    return [w for w in (daemon.processor, daemon.outbound, daemon.timers) if w]


def _start(daemon: Daemon) -> None:
    for worker in _workers(daemon):
        worker.start()
        worker.wake()
    if daemon.imap is not None:
        daemon.imap.start()
        log.info("IMAP poller: %s", ", ".join(w.poller.label for w in daemon.imap.watchers))


# How long a reload waits for the outbound thread to put the new transport in use (it does
# between two mails; one mail to a smarthost that does not answer takes its timeout).
TRANSPORT_SWAP_WAIT = 60.0


def _on_sighup(daemon: Daemon, config_path: str | None) -> None:
    task = asyncio.get_running_loop().create_task(_reload(daemon, config_path))
    daemon.tasks.add(task)
    task.add_done_callback(daemon.tasks.discard)


async def _reload(daemon: Daemon, config_path: str | None) -> None:
    """SIGHUP: load the config again and put it in force; a broken one (or one whose outbound
    transport cannot be made) is refused and the running one stays. Bracketed by RELOADING=1
    and READY=1 for systemd; one reload at a time, none once stopping."""
    loop = asyncio.get_running_loop()
    async with daemon.reloading:
        if daemon.stopping:
            return
        daemon.notifier.reloading("reloading the configuration")
        path = config_path or daemon.ctx.settings.config_path
        try:
            new = await loop.run_in_executor(None, load_settings, path)
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays in force:\n%s", exc)
            daemon.notifier.ready("reload refused; running the previous configuration")
            return
        except Exception:  # a bug in loading: still refused, and systemd still told
            log.exception("reload refused, the running configuration stays in force")
            daemon.notifier.ready("reload refused; running the previous configuration")
            return
        try:
            transport = (await loop.run_in_executor(None, OutboundThread.build, new)
                         if daemon.outbound else None)
        except Exception as exc:  # e.g. an unreadable ca_file: the transport cannot be made
            log.error("reload refused, the running configuration stays in force: "
                      "outbound transport: %s: %s", type(exc).__name__, exc)
            daemon.notifier.ready("reload refused; running the previous configuration")
            return
        try:
            await loop.run_in_executor(None, _apply, daemon, new, transport)
        except Exception:  # half applied; the daemon keeps running what it has
            log.exception("reload failed part way; restart maildesk to be sure of its state")
            daemon.notifier.ready("reload failed part way; a restart is advised")
            return
        log.info("configuration reloaded from %s", new.config_path)
        daemon.notifier.ready(_status(daemon))


def _apply(daemon: Daemon, new: Settings, transport: Transport | None) -> None:
    """Put `new` in force (blocking: it waits for the outbound thread and for IMAP watchers
    to finish their pass, so it runs off the event loop)."""
    for what in _needs_restart(daemon, new):
        log.warning("reload: %s changed; needs a restart, the running value stays in force",
                    what)
    daemon.settings = new  # the listener reads it per mail
    if daemon.relays is not None:
        daemon.relays.update(new.smtp.relays)
    daemon.probes.threshold = new.security.token_failures_per_hour
    if daemon.processor:
        daemon.processor.processor.settings = new
    if daemon.timers:
        daemon.timers.reload(new)
    if daemon.outbound and transport is not None:
        from maildesk.outbound.registry import describe

        if daemon.outbound.reload(new, transport).wait(TRANSPORT_SWAP_WAIT):
            log.info("reload: outbound mail now goes to %s", describe(new.outbound))
        else:
            log.warning("reload: outbound mail goes to %s once the mail being delivered is done",
                        describe(new.outbound))
    if "imap" in daemon.components:
        _reload_imap(daemon, new)


def _reload_imap(daemon: Daemon, new: Settings) -> None:
    """Start, stop and restart IMAP watchers as `imap.accounts` changed (by account name)."""
    if daemon.imap is None:
        daemon.imap = _imap_service(daemon.ctx, daemon.processor, new)
        if daemon.imap is not None:
            daemon.imap.start()
            log.info("reload: IMAP poller started: %s",
                     ", ".join(w.poller.label for w in daemon.imap.watchers))
        return
    changes = daemon.imap.reconfigure(new.imap_accounts, max_size=new.smtp.max_message_size)
    for verb, names in (("added", changes.added), ("removed", changes.removed),
                        ("restarted", changes.changed)):
        if names:
            log.info("reload: IMAP account(s) %s: %s", verb, ", ".join(names))


def _needs_restart(daemon: Daemon, new: Settings) -> list[str]:
    """The settings `new` changes that the running daemon cannot take up: those it was started
    with (the listener's socket and greeting, the database, the parse sandbox), compared with
    the start, so that each reload repeats what still waits for a restart."""
    started = daemon.ctx.settings
    keys: list[tuple[str, object, object]] = [
        ("database.url", started.database.url, new.database.url),
        ("database.lock_timeout_ms", started.database.lock_timeout_ms,
         new.database.lock_timeout_ms)]
    if daemon.processor:
        p, q = started.processing, new.processing
        keys += [("processing.parse_timeout_seconds", p.parse_timeout_seconds,
                  q.parse_timeout_seconds),
                 ("processing.parse_memory_mb", p.parse_memory_mb, q.parse_memory_mb)]
    if "smtp" in daemon.components:
        keys.append(("smtp.enabled", started.smtp.enabled, new.smtp.enabled))
    if daemon.server is not None:
        a, b = started.smtp, new.smtp
        keys += [("smtp.host", a.host, b.host), ("smtp.port", a.port, b.port),
                 ("smtp.fd_reserve", a.fd_reserve, b.fd_reserve),
                 ("instance.domain (the SMTP greeting)", started.domain, new.domain)]
        if not started.authenticity.own_check.enabled:  # switching it off is taken up
            keys.append(("authenticity.own_check.enabled", False,
                         new.authenticity.own_check.enabled))
    return [key if key == "database.url" else f"{key} ({old} -> {now})"  # the URL: no password
            for key, old, now in keys if old != now]


def _status(daemon: Daemon) -> str:
    """One line for `systemctl status`."""
    from maildesk.outbound.registry import describe

    parts = []
    if daemon.server is not None:
        s = daemon.ctx.settings.smtp
        parts.append(f"SMTP on {s.host}:{s.port}")
    if daemon.imap is not None:
        parts.append(f"{len(daemon.imap.watchers)} IMAP folder(s)")
    if daemon.outbound is not None:
        parts.append(f"outbound to {describe(daemon.settings.outbound)}")
    return "serving" + (": " + ", ".join(parts) if parts else "")


async def _watchdog(notifier: Notifier, every: float) -> None:
    """WATCHDOG=1 every `every` seconds, from the event loop itself: a loop that is stuck stops
    the pings, and systemd (WatchdogSec=) kills and restarts the daemon."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(every)


async def _close_listener(daemon: Daemon) -> None:
    """No new connections; up to 30 s for DATA commands already under way."""
    if daemon.server is not None:
        daemon.server.close()
    if daemon.handler is not None:
        for _ in range(300):
            if daemon.handler.in_flight == 0:
                break
            await asyncio.sleep(0.1)
        daemon.handler.closing = True


async def _shut_down(daemon: Daemon, loop: asyncio.AbstractEventLoop) -> None:
    """Intake first, then the threads that work on what it stored; each finishes its step."""
    await _close_listener(daemon)
    if daemon.imap is not None:
        await loop.run_in_executor(None, daemon.imap.stop)
    await loop.run_in_executor(None, daemon.writer.close)
    for worker in (daemon.timers, daemon.processor, daemon.outbound):
        if worker:
            await loop.run_in_executor(None, worker.stop)


def _monitor(ctx: Context) -> Monitor | None:
    """The daemon's metrics (in `ctx`, where the parts count) and health check, served on
    `metrics.listen` when set; None when that address cannot be bound (logged)."""
    from maildesk import __version__
    from maildesk.monitor.service import Monitor

    m = ctx.settings.metrics
    monitor = Monitor(ctx.engine, ctx.clock, listen=m.listen, stuck_after=m.stuck_after,
                      version=__version__)
    try:
        monitor.start()
    except OSError as exc:
        log.error("metrics.listen %s:%s: cannot listen: %s", *(m.listen or ("?", "?")),
                  exc.strerror or exc)
        return None
    ctx.metrics = monitor.metrics
    return monitor


async def _serve(ctx: Context, components: tuple[str, ...], config_path: str | None) -> int:
    from maildesk.ingress.limits import AcceptErrorHandler

    loop = asyncio.get_running_loop()
    # Out of file descriptors, accept() fails per connection: one log line per 10 s, no traceback.
    AcceptErrorHandler(log).install(loop)
    monitor = _monitor(ctx)
    if monitor is None:
        return 1
    stop = asyncio.Event()
    notifier = Notifier()  # systemd's NOTIFY_SOCKET; does nothing without it
    watchdog = (loop.create_task(_watchdog(notifier, notifier.watchdog_seconds))
                if notifier.watchdog_seconds else None)
    daemon = _assemble(ctx, components)
    daemon.notifier = notifier
    if "smtp" in components and ctx.settings.smtp.enabled:
        await _listen(daemon, loop)
    _start(daemon)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _on_sighup, daemon, config_path)
    print(f"maildesk serving ({', '.join(components)}); SIGTERM stops, SIGHUP reloads", flush=True)
    # What is loaded by now (modules, settings, templates, the engine) lives as long as the
    # daemon: out of the cyclic collector's way, whose full passes walked all of it again and
    # again while mail was processed (4 % of the instructions of processing a mail).
    gc.freeze()
    notifier.ready(_status(daemon))  # the listener is bound and the workers run
    await stop.wait()
    notifier.stopping("stopping: finishing what is in flight")
    log.info("stopping: no new connections; finishing what is in flight")
    daemon.stopping = True
    async with daemon.reloading:  # a reload under way completes first
        await _shut_down(daemon, loop)
    if watchdog is not None:  # pings go on while shutting down: it may take a while
        watchdog.cancel()
    notifier.close()
    monitor.stop()
    log.info("stopped")
    return 0


def serve(ctx: Context, components: tuple[str, ...], config_path: str | None = None) -> int:
    return asyncio.run(_serve(ctx, components, config_path))
