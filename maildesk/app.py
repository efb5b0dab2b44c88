"""The Context (settings, database, clock) and `serve`: listener, processor, signals."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock, SystemClock, default_clock
from maildesk.config import ConfigError, Settings, load_settings
from maildesk.db.session import make_engine, make_read_sessionmaker, make_sessionmaker

log = logging.getLogger("maildesk")

COMPONENTS = ("smtp", "imap", "process", "outbound", "timers")


@dataclass
class Context:
    settings: Settings
    engine: Engine
    make_session: sessionmaker[Session]
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def load(cls, config_path: str | Path | None = None, clock: Clock | None = None) -> Context:
        settings = load_settings(config_path)
        engine = make_engine(settings.database)
        return cls(settings, engine, make_sessionmaker(engine), clock or default_clock())

    def read_session(self) -> Session:
        """A session for reading only (no write lock on SQLite: the daemon keeps writing)."""
        return make_read_sessionmaker(self.engine)()

    def close(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    # Imported here: alembic costs a few hundred ms, and only `db upgrade` needs it.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location",
                        str(resources.files("maildesk") / "skeleton" / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def upgrade_database(settings: Settings) -> None:
    """Apply every migration (idempotent); creates the SQLite file's folder if needed."""
    url = settings.database.url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), "head")


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
    (effects/timers.py); every `timers.interval`, and at start for what fell due meanwhile."""

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
        if fired and self.on_outbox:
            self.on_outbox()
        return fired >= TIMER_BATCH


# Timers per transaction: on SQLite a sweep holds the write lock, which intake needs too.
TIMER_BATCH = 50


def run_timers(ctx: Context, settings: Settings, composer, *, arm: bool = False,  # type: ignore[no-untyped-def]
               limit: int = TIMER_BATCH) -> int:
    """One sweep in one transaction: (first) arm tickets without timers, fire what is due."""
    from maildesk.effects.timers import arm_unarmed, fire_due

    now = ctx.clock.now()
    with ctx.make_session() as session, session.begin():
        if arm:
            armed = arm_unarmed(session, settings, now)
            if armed:
                log.info("armed the SLA timers of %d open tickets", armed)
        fired = fire_due(session, settings, composer, now, limit=limit)
    if fired:
        log.info("%d timers fired", fired)
    return fired


async def _serve(ctx: Context, components: tuple[str, ...], config_path: str | None) -> int:
    from maildesk.ingress.limits import AcceptErrorHandler, RelayNetworks
    from maildesk.ingress.smtp import SupportHandler, make_smtp_factory
    from maildesk.probes import TokenProbeGuard
    from maildesk.store.raw import GroupCommitWriter

    loop = asyncio.get_running_loop()
    # Out of file descriptors, accept() fails per connection: one log line per 10 s, no traceback.
    AcceptErrorHandler(log).install(loop)
    stop = asyncio.Event()
    current = {"settings": ctx.settings}
    # One guard: the processor counts failed token lookups per IP, the listener refuses past it.
    probes = TokenProbeGuard(ctx.settings.security.token_failures_per_hour,
                             exempt=RelayNetworks(ctx.settings.smtp.relays).contains)
    outbound = OutboundThread(ctx) if "outbound" in components else None
    processor = (ProcessorThread(ctx, on_outbox=outbound.wake if outbound else None,
                                 probes=probes)
                 if "process" in components else None)
    timers = (TimersThread(ctx, on_outbox=outbound.wake if outbound else None)
              if "timers" in components else None)
    writer = GroupCommitWriter(ctx.engine,
                               on_stored=processor.wake if processor else None)
    imap = None
    if "imap" in components and any(a.enabled for a in ctx.settings.imap_accounts):
        from maildesk.ingress.imap_service import ImapService

        imap = ImapService(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                           max_size=ctx.settings.smtp.max_message_size,
                           on_stored=processor.wake if processor else None,
                           intake=processor.intake if processor else None)
        if processor:
            processor.on_quarantine = imap.wake
    server = None
    handler = None
    if "smtp" in components and ctx.settings.smtp.enabled:
        authenticate = None
        if ctx.settings.authenticity.own_check.enabled:
            # Reads the current settings per mail: a reload may change or switch it off
            # (switching it on takes a restart, like the listener's address).
            from maildesk.ingress.authcheck import make_authenticator
            authenticate = make_authenticator(lambda: current["settings"])
        handler = SupportHandler(lambda: current["settings"], writer, ctx.clock,
                                 authenticate=authenticate, probes=probes)
        s = ctx.settings.smtp
        server = await loop.create_server(make_smtp_factory(handler, ctx.settings), s.host, s.port)
        log.info("SMTP listener on %s:%s for %s", s.host, s.port,
                 ", ".join(ctx.settings.support_addresses))
    for worker in (processor, outbound, timers):
        if worker:
            worker.start()
            worker.wake()
    if imap is not None:
        imap.start()
        log.info("IMAP poller: %s", ", ".join(w.poller.label for w in imap.watchers))

    def reload() -> None:
        try:
            new = load_settings(config_path or ctx.settings.config_path)
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays in force:\n%s", exc)
            return
        current["settings"] = new
        if processor:
            processor.processor.settings = new
        if timers:
            timers.reload(new)
        log.info("configuration reloaded from %s", new.config_path)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    print(f"maildesk serving ({', '.join(components)}); SIGTERM stops, SIGHUP reloads", flush=True)
    await stop.wait()
    log.info("stopping: no new connections; finishing what is in flight")
    if server is not None:
        server.close()
    if handler is not None:
        for _ in range(300):  # up to 30 s for DATA commands already under way
            if handler.in_flight == 0:
                break
            await asyncio.sleep(0.1)
        handler.closing = True
    if imap is not None:
        await loop.run_in_executor(None, imap.stop)
    await loop.run_in_executor(None, writer.close)
    if timers:
        await loop.run_in_executor(None, timers.stop)
    if processor:
        await loop.run_in_executor(None, processor.stop)
    if outbound:
        await loop.run_in_executor(None, outbound.stop)
    log.info("stopped")
    return 0


def serve(ctx: Context, components: tuple[str, ...], config_path: str | None = None) -> int:
    return asyncio.run(_serve(ctx, components, config_path))
