"""The daemon (`maildesk serve`): worker threads, the SMTP listener and the signals, put
together by `serve` in small named steps.

The Context, the migrations and the timer sweep are services (maildesk/services/); they are
imported here under their old names for the callers that import them from app."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from maildesk.config import ConfigError, Settings, load_settings
from maildesk.services.context import Context
from maildesk.services.database import alembic_config, upgrade_database
from maildesk.services.schedules import run_schedules
from maildesk.services.timers import TIMER_BATCH, run_timers

if TYPE_CHECKING:
    from maildesk.ingress.imap_service import ImapService
    from maildesk.ingress.smtp import SupportHandler
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

    def __init__(self, name: str, step, poll_seconds: float = 5.0):  # type: ignore[no-untyped-def]
        self._step = step
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._poll = poll_seconds
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Let the current step finish, then end the thread."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self._step():
                    pass
            except Exception:  # a locked or lost database, a down smarthost: log, try again
                log.exception("%s pass failed; retrying shortly", self._thread.name)


class OutboundThread(Worker):
    """Delivers the outbox through the configured transport."""

    def __init__(self, ctx: Context):
        from maildesk.outbound.outbox import OutboxDeliverer
        from maildesk.outbound.registry import make_transport

        transport = make_transport(ctx.settings.outbound, ctx.settings.domain)
        self.deliverer = OutboxDeliverer(ctx.make_session, transport, ctx.clock,
                                         lease=ctx.settings.outbound.lease)
        super().__init__("outbound", lambda: bool(self.deliverer.run_once()))

    def stop(self) -> None:
        super().stop()
        self.deliverer.transport.close()
        self.deliverer.close()


class IntakeGate:
    """Taking mail in goes before processing it: while an IMAP pass is storing a batch of
    messages, the processor holds off (a bounded while, so a big import never starves it).
    Storing is cheap and is what lets the server forget a message; processing holds the
    database's write lock and the interpreter for much longer per message."""

    MAX_HOLD = 1.0  # seconds the processor waits for intake at most, per batch

    def __init__(self) -> None:
        self._busy = 0
        self._cond = threading.Condition()

    @contextmanager
    def busy(self) -> Iterator[None]:
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def wait_idle(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._busy == 0, timeout=self.MAX_HOLD)


class ProcessorThread(Worker):
    """Runs the pipeline: woken when mail is stored, and every few seconds for mail stored by
    other processes (`ingest`, a second daemon)."""

    def __init__(self, ctx: Context, on_outbox=None, probes=None):  # type: ignore[no-untyped-def]
        from maildesk.process.run import Processor

        self.processor = Processor(ctx.settings, ctx.make_session, ctx.clock, on_outbox=on_outbox,
                                   probes=probes)
        self.on_quarantine = None  # the IMAP poller copies quarantined mail to its folder
        self.intake = IntakeGate()
        super().__init__("processor", self._step)

    def _step(self) -> bool:
        # Small batches: a batch holds SQLite's write lock, which the listener and the
        # deliverer also need; 20 keeps their waits short and still shares commits.
        self.intake.wait_idle()
        outcomes = self.processor.run_batch(limit=20)
        for o in outcomes:
            log.info("inbound %s: %s%s", o.inbound_id, o.status,
                     f" ticket {o.ticket_number}" if o.ticket_number else
                     f" ({o.reason.splitlines()[0]})" if o.reason else "")
        if self.on_quarantine and any(o.status == "quarantined" for o in outcomes):
            self.on_quarantine()
        return bool(outcomes) and not all(o.status == "retry" for o in outcomes)

    def stop(self) -> None:
        super().stop()
        self.processor.close()


class TimersThread(Worker):
    """Fires SLA warnings and breaches, OLA moves and auto-closes as they fall due
    (effects/timers.py), then sends the digests and reports by mail that are due
    (services/schedules.py); every `timers.interval`, and at start for what fell due meanwhile."""

    def __init__(self, ctx: Context, on_outbox=None):  # type: ignore[no-untyped-def]
        from maildesk.outbound.compose import Composer

        self.ctx = ctx
        self.settings = ctx.settings
        self.composer = Composer(ctx.settings.templates_dir)
        self.on_outbox = on_outbox
        self._armed = False
        super().__init__("timers", self._step, poll_seconds=ctx.settings.timer_interval
                         .total_seconds())

    def reload(self, settings: Settings) -> None:
        from maildesk.outbound.compose import Composer

        self.settings, self.composer = settings, Composer(settings.templates_dir)

    def _step(self) -> bool:
        fired = run_timers(self.ctx, self.settings, self.composer, arm=not self._armed)
        self._armed = True
        scheduled = run_schedules(self.ctx, self.settings, self.composer)
        if (fired or scheduled) and self.on_outbox:
            self.on_outbox()
        return fired >= TIMER_BATCH


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

    def current_settings(self) -> Settings:
        return self.settings


def _assemble(ctx: Context, components: tuple[str, ...]) -> Daemon:
    """The worker threads of `components`, wired to wake each other; nothing started yet."""
    from maildesk.ingress.limits import RelayNetworks
    from maildesk.probes import TokenProbeGuard
    from maildesk.store.raw import GroupCommitWriter

    # One guard: the processor counts failed token lookups per IP, the listener refuses past it.
    probes = TokenProbeGuard(ctx.settings.security.token_failures_per_hour,
                             exempt=RelayNetworks(ctx.settings.smtp.relays).contains)
    outbound = OutboundThread(ctx) if "outbound" in components else None
    wake_outbound = outbound.wake if outbound else None
    processor = (ProcessorThread(ctx, on_outbox=wake_outbound, probes=probes)
                 if "process" in components else None)
    timers = TimersThread(ctx, on_outbox=wake_outbound) if "timers" in components else None
    writer = GroupCommitWriter(ctx.engine, on_stored=processor.wake if processor else None)
    daemon = Daemon(ctx, ctx.settings, probes, writer, outbound, processor, timers)
    if "imap" in components:
        daemon.imap = _imap_service(ctx, processor)
    return daemon


def _imap_service(ctx: Context, processor: ProcessorThread | None) -> ImapService | None:
    """The IMAP poller, when an account is enabled: it wakes the processor with new mail, and
    the processor wakes it to copy quarantined mail to the quarantine folder."""
    if not any(a.enabled for a in ctx.settings.imap_accounts):
        return None
    from maildesk.ingress.imap_service import ImapService

    imap = ImapService(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                       max_size=ctx.settings.smtp.max_message_size,
                       on_stored=processor.wake if processor else None,
                       intake=processor.intake if processor else None)
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
                                    authenticate=authenticate, probes=daemon.probes)
    s = settings.smtp
    daemon.server = await loop.create_server(make_smtp_factory(daemon.handler, settings),
                                             s.host, s.port)
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


def _reload(daemon: Daemon, config_path: str | None) -> None:
    """SIGHUP: load the config again; a broken one leaves the running one in force."""
    try:
        new = load_settings(config_path or daemon.ctx.settings.config_path)
    except ConfigError as exc:
        log.error("reload refused, the running configuration stays in force:\n%s", exc)
        return
    daemon.settings = new
    if daemon.processor:
        daemon.processor.processor.settings = new
    if daemon.timers:
        daemon.timers.reload(new)
    log.info("configuration reloaded from %s", new.config_path)


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


async def _serve(ctx: Context, components: tuple[str, ...], config_path: str | None) -> int:
    from maildesk.ingress.limits import AcceptErrorHandler

    loop = asyncio.get_running_loop()
    # Out of file descriptors, accept() fails per connection: one log line per 10 s, no traceback.
    AcceptErrorHandler(log).install(loop)
    stop = asyncio.Event()
    daemon = _assemble(ctx, components)
    if "smtp" in components and ctx.settings.smtp.enabled:
        await _listen(daemon, loop)
    _start(daemon)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, daemon, config_path)
    print(f"maildesk serving ({', '.join(components)}); SIGTERM stops, SIGHUP reloads", flush=True)
    await stop.wait()
    log.info("stopping: no new connections; finishing what is in flight")
    await _shut_down(daemon, loop)
    log.info("stopped")
    return 0


def serve(ctx: Context, components: tuple[str, ...], config_path: str | None = None) -> int:
    return asyncio.run(_serve(ctx, components, config_path))
