"""Claim stored messages, run the pure stages, apply each Plan; many messages per commit.

A batch runs first without a savepoint per message. When a message fails, the batch is rolled
back and run again with each message inside its own savepoint, so the one that fails rolls
back alone and is retried later (quarantined with the traceback after
`processing.max_attempts`), while the others in the batch commit together. Replaying is safe:
a message already done is not pending any more, and a second copy stops at the dedupe key.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock
from maildesk.config.model import Settings
from maildesk.db.models import Inbound, InboundStatus, Outbox, RawMessage
from maildesk.db.session import make_read_sessionmaker
from maildesk.effects.apply import apply_bounce, apply_plan, mark_inbound
from maildesk.effects.events import write_at_batch_end, write_later
from maildesk.outbound.compose import Composer
from maildesk.pipeline.decide import Arrival as DecideArrival, Decision, decide, history_window
from maildesk.pipeline.isolate import ParseSandbox
from maildesk.pipeline.parse import ParsedMessage, Unparseable
from maildesk.pipeline.plan import sender_of
from maildesk.probes import TokenProbeGuard, source_ip
from maildesk.process.affinity import OwnIntake, claim_pending
from maildesk.process.contention import Contention
from maildesk.process.lookups import DbLookups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    status: str
    ticket_number: int | None = None
    reason: str | None = None
    # For the log and the metrics: when the mail was stored, its Message-ID, a ticket opened.
    received_at: datetime | None = None
    message_id: str | None = None
    opened: bool = False


# Outcomes that leave the message pending: failed (tried again later, counted) and deferred
# (another processor holds what it needs: taken up by the next batch, not counted).
UNSETTLED = ("retry", "deferred")

# Decisions that leave the message without a ticket entry: the inbound status, the outcome.
_HELD = {"quarantine": (InboundStatus.QUARANTINED, "quarantined"),
         "duplicate": (InboundStatus.DUPLICATE, "duplicate"),
         "ignore": (InboundStatus.IGNORED, "ignored")}


def _sender_name(message: ParsedMessage, inbound: Inbound) -> str:
    return sender_of(message, inbound.mail_from)[1]

# A parse result as the feed thread hands it over: the inbound id and the message, or what
# went wrong with the sandbox itself.
Parsed = tuple[int, "ParsedMessage | Unparseable | Exception"]

# Messages the parser may be ahead of the writer. Its results outlive a batch that ends early
# (kept for the next one), so running ahead wastes nothing, and a parser that is ahead leaves
# the writer's thread alone while it writes.
PARSE_AHEAD = 32

# How long a batch, holding the database's write lock, waits for the next parse result.
PARSE_WAIT_IN_BATCH = 0.25


class _ParseFeed:
    """A thread feeding the parse child's results to a batch, up to PARSE_AHEAD ahead of it;
    `close` stops it and keeps what the batch did not take in `ahead` for the next one."""

    def __init__(self, sandbox: ParseSandbox, pending: list[tuple[int, bytes]],
                 ahead: dict[int, ParsedMessage | Unparseable]):
        self.sandbox, self.pending, self.ahead = sandbox, pending, ahead
        self.queue: queue.Queue[Parsed] = queue.Queue(maxsize=PARSE_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._parse_all, name="parse-feed", daemon=True)
        self._thread.start()

    def first(self) -> Parsed:
        return self.queue.get()

    def _hand_over(self, item: Parsed) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _parse_all(self) -> None:
        for inbound_id, data in self.pending:
            if self._stop.is_set():
                return
            result = self.ahead.pop(inbound_id, None)
            if result is None:
                try:
                    result = self.sandbox.parse(data)
                except Exception as exc:  # the sandbox failed: not this message's fault
                    self._hand_over((inbound_id, exc))
                    return
            if not self._hand_over((inbound_id, result)):
                self.ahead[inbound_id] = result
                return

    def close(self) -> None:
        # Emptying the queue first frees a parser waiting to hand over, so it sees the stop at
        # once rather than at its next poll; what it parsed is kept either way.
        self._stop.set()
        self._keep_handed_over()
        self._thread.join()
        self._keep_handed_over()

    def _keep_handed_over(self) -> None:
        """Move what the parser handed over and the batch did not take into `ahead`."""
        while True:
            try:
                inbound_id, result = self.queue.get_nowait()
            except queue.Empty:
                return
            if not isinstance(result, Exception):
                self.ahead[inbound_id] = result


def _parsed_ahead(parsed: queue.Queue[Parsed]) -> list[tuple[int, ParsedMessage]]:
    """The parse results waiting in the queue (with their inbound ids), left where they are."""
    with parsed.mutex:
        return [(i, r) for i, r in parsed.queue if isinstance(r, ParsedMessage)]


class _Careful(Exception):
    """A message of a batch run without savepoints failed: run `ids` again, carefully."""

    def __init__(self, ids: list[int]):
        super().__init__(f"{len(ids)} messages to run again")
        self.ids = ids


class Processor:
    """Turns pending inbound rows into ticket entries."""

    def __init__(self, settings: Settings, make_session: sessionmaker[Session], clock: Clock,
                 sandbox: ParseSandbox | None = None,
                 on_outbox: Callable[[], None] | None = None,
                 probes: TokenProbeGuard | None = None,
                 yield_to: Callable[[], bool] | None = None,
                 write_turn: AbstractContextManager[Any] | None = None,
                 hold_seconds: float | None = None, own: OwnIntake | None = None):
        self.settings = settings  # the property below derives what each message needs
        self.make_session = make_session
        self.on_outbox = on_outbox  # told after a commit that queued mail, to deliver it now
        self.probes = probes        # failed token lookups per client IP, for the listener
        self._queued_mail = False
        # What the batch's decisions note, logged and counted once it commits (a batch that
        # is run again, carefully, must not count a client's failed token lookups twice).
        self._noted: list[tuple[int, str, Decision]] = []
        self.clock = clock
        # SQLite: asked after each message whether intake waits for the write lock; if so the
        # batch commits what is done at once and the rest waits for the next one.
        self.yield_to = yield_to
        self.write_turn = write_turn or nullcontext()   # SQLite: held while a batch writes
        # SQLite: how long a batch may hold the write lock before it commits what is done
        # (the outbox and the timers wait for it; intake is served by `yield_to`).
        self.hold_seconds = hold_seconds
        self._postgres = make_session.kw["bind"].dialect.name == "postgresql"
        self._read_session = make_read_sessionmaker(make_session.kw["bind"])
        self._contention = Contention()   # PostgreSQL: what other processors hold
        # PostgreSQL: the mail this daemon stored itself, claimed before the others'
        # (process/affinity.py).
        self.own = own if self._postgres else None
        # Parse results of a batch that ended before it used them (intake waiting, the hold
        # over): the next batch claims the same oldest pending mail and takes
        # them instead of parsing again. Parsing is a pure function of the stored bytes.
        self._parsed_ahead: dict[int, ParsedMessage | Unparseable] = {}
        self.sandbox = sandbox or ParseSandbox(timeout=settings.processing.parse_timeout_seconds,
                                               memory_mb=settings.processing.parse_memory_mb)

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """Swapped whole on reload, with the templates it names."""
        self._settings = settings
        self.composer = Composer(settings.templates_dir)

    def close(self) -> None:
        self.sandbox.close()

    # -- claiming ---------------------------------------------------------------------------
    def _pending(self, limit: int, only: list[int] | None) -> list[tuple[int, bytes]]:
        """SQLite: the oldest pending messages, read before the write lock is taken, in one
        read transaction (begun deferred: a write transaction would take the lock the
        listener commits with, through SQLite's sleeping busy handler); the stored bytes only
        of those not parsed already (kept from an earlier batch: b"" stands in)."""
        with self._read_session() as session:
            q = (select(Inbound.id).where(Inbound.status == InboundStatus.PENDING)
                 .order_by(Inbound.id).limit(limit))
            if only is not None:
                q = q.where(Inbound.id.in_(only))
            ids = list(session.scalars(q))
            need = [i for i in ids if i not in self._parsed_ahead]
            data = dict(session.execute(
                select(Inbound.id, RawMessage.data)
                .join(RawMessage, RawMessage.id == Inbound.raw_id)
                .where(Inbound.id.in_(need))).all()) if need else {}
            return [(i, bytes(data.get(i, b""))) for i in ids
                    if i in data or i in self._parsed_ahead]

    def run_batch(self, limit: int = 100, only: list[int] | None = None,
                  least: float = 0.0) -> list[Outcome]:
        """Process up to `limit` pending messages (oldest first); return what became of them.
        `least`: seconds the batch works before intake waiting ends it (SQLite).

        The child process parses message i+1 while this thread writes message i, so a batch
        costs about max(parse, write) rather than their sum.

        A batch first runs without a savepoint per message (two statements and the session's
        bookkeeping for each, a tenth of the work): when a message fails, the whole batch is
        rolled back and run again carefully, each message in its own savepoint, so that only
        the failing one is set aside."""
        self._noted.clear()
        try:
            outcomes = self._run(limit, only, least, careful=False)
        except _Careful as again:
            self._noted.clear()
            outcomes = self._run(limit, again.ids, least, careful=True)
        if self.own is not None:   # done, or deferred: to be taken up in the order of all
            self.own.forget(o.inbound_id for o in outcomes)
        for inbound_id, source, decision in self._noted:
            self._log_and_count(inbound_id, source, decision)
        self._noted.clear()
        if self._queued_mail and self.on_outbox is not None:
            self._queued_mail = False
            self.on_outbox()
        return outcomes

    def _run(self, limit: int, only: list[int] | None, least: float, *,
             careful: bool) -> list[Outcome]:
        """Parse the batch's mail beside applying it: on PostgreSQL in the transaction that
        claims it, on SQLite in a write transaction begun once the first mail is parsed. The
        parser is stopped after the transaction ends: a batch does not keep its claims (or
        SQLite's write lock) while the parser finishes a slow mail the batch will not use."""
        feed: _ParseFeed | None = None
        try:
            if self._postgres:
                with self.make_session.begin() as session:
                    rows = claim_pending(session, limit, self.own, only, self.clock.now())
                    if not rows:
                        return []
                    data = dict(session.execute(select(RawMessage.id, RawMessage.data).where(
                        RawMessage.id.in_([r.raw_id for r in rows.values()]))).all())
                    pending = [(i, bytes(data[r.raw_id])) for i, r in rows.items()]
                    feed = self._feed(pending)
                    self._contention.begin_batch(careful=careful)
                    if not careful:   # no savepoints: some rows go in at the end
                        write_at_batch_end(session)
                    outcomes = self._apply_parsed(session, pending, rows, [feed.first()],
                                                  feed.queue, careful=careful)
                    write_later(session, stop=True)
                    return outcomes
            pending = self._pending(limit, only)
            if not pending:
                return []
            feed = self._feed(pending)
            # SQLite: the write lock is taken only once the first message is parsed, and a
            # batch ends early when the next parse keeps it waiting (a child starting, a
            # message near the parse time bound): the SMTP listener and the IMAP poller need
            # that lock to store.
            ready = [feed.first()]
            with self.write_turn, self.make_session.begin() as session:
                claim = select(Inbound).where(Inbound.id.in_([i for i, _ in pending]),
                                              Inbound.status == InboundStatus.PENDING)
                rows = {row.id: row for row in session.scalars(claim)}
                if not careful:   # one writer, no savepoints: some rows go in at the end
                    write_at_batch_end(session)
                outcomes = self._apply_parsed(session, pending, rows, ready, feed.queue,
                                              yield_to=self._yield_check(least),
                                              careful=careful)
                write_later(session, stop=True)
                return outcomes
        finally:
            if feed is not None:
                feed.close()

    def _feed(self, pending: list[tuple[int, bytes]]) -> _ParseFeed:
        """Start parsing `pending`, with what earlier batches parsed of it and did not use
        (only for these messages: a result another processor made stale is dropped)."""
        kept = self._parsed_ahead
        self._parsed_ahead = {i: kept[i] for i, _ in pending if i in kept}
        return _ParseFeed(self.sandbox, pending, self._parsed_ahead)

    def _yield_check(self, least: float) -> Callable[[], bool] | None:
        """SQLite: asked after each message of a batch; True commits what is done (intake
        waiting ends the batch once it has worked `least` seconds)."""
        if self.hold_seconds is None:
            return self.yield_to
        start = time.monotonic()
        until, least = start + self.hold_seconds, start + least
        intake = self.yield_to
        return lambda: time.monotonic() > until or (
            intake is not None and intake() and time.monotonic() > least)

    def _apply_parsed(self, session: Session, pending: list[tuple[int, bytes]],
                      rows: dict[int, Inbound], ready: list[Parsed],
                      parsed: queue.Queue[Parsed],
                      yield_to: Callable[[], bool] | None = None,
                      careful: bool = True) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for _ in pending:
            if outcomes and yield_to is not None:
                if yield_to():
                    break  # intake waits for the write lock: commit, the rest stays pending
                # Between two mails the interpreter is offered to the daemon's other threads
                # (the listener above all), which otherwise wait for the switch interval
                # (5 ms) at each step of an SMTP session while a batch runs: SMTP accepted
                # 0.57-1.07 of the sink without, 0.84-1.21 with (end_to_end.py --quick).
                time.sleep(0)
            if ready:
                inbound_id, result = ready.pop()
            else:
                try:
                    inbound_id, result = parsed.get(timeout=PARSE_WAIT_IN_BATCH)
                except queue.Empty:
                    break  # commit what is done; the rest stays pending
            if isinstance(result, Exception):
                raise result  # roll the batch back; it stays pending for the next pass
            inbound = rows.get(inbound_id)
            if inbound is None:  # another processor took it
                continue
            if not careful:
                try:
                    outcomes.append(self._process(session, inbound, result,
                                                  ahead=lambda: _parsed_ahead(parsed)))
                    if outcomes[-1].status not in UNSETTLED:
                        self._contention.settled.add(inbound_id)
                except Exception:
                    # Roll the batch back (the exception ends its transaction) and run the
                    # same messages again, each in a savepoint.
                    log.info("inbound %s failed in a batch; the batch runs again, each message "
                             "on its own", inbound_id)
                    raise _Careful([i for i, _ in pending]) from None
                continue
            savepoint = session.begin_nested()
            try:
                outcome = self._process(session, inbound, result)
                savepoint.commit()
            except Exception:
                savepoint.rollback()
                # The rows the message wrote by Core (its ticket's too) are undone with the
                # savepoint; the ORM expires what it saw change, and to be sure of the ticket
                # written by Core and marked unchanged (effects/events.py), all is read again.
                session.expire_all()
                outcome = self._failed(inbound, traceback.format_exc())
            outcomes.append(outcome)
        return outcomes

    def drain(self, batch: int = 100) -> list[Outcome]:
        """Process until nothing is pending (messages that keep failing stop counting)."""
        out: list[Outcome] = []
        while True:
            got = self.run_batch(batch)
            out.extend(got)
            if not got or all(o.status in UNSETTLED for o in got):
                return out

    def _failed(self, inbound: Inbound, tb: str) -> Outcome:
        inbound.attempts += 1
        log.error("processing inbound %s failed (attempt %d):\n%s", inbound.id, inbound.attempts,
                  tb)
        if inbound.attempts >= self.settings.processing.max_attempts:
            reason = f"processing failed {inbound.attempts} times; last error:\n{tb}"
            mark_inbound(inbound, InboundStatus.QUARANTINED, reason, now=self.clock.now())
            return Outcome(inbound.id, "quarantined", reason=reason,
                           received_at=inbound.received_at)
        inbound.reason = tb
        return Outcome(inbound.id, "retry", reason=tb, received_at=inbound.received_at)

    # -- one message --------------------------------------------------------------------------
    def _process(self, session: Session, inbound: Inbound,
                 result: ParsedMessage | Unparseable,
                 ahead: Callable[[], Sequence[tuple[int, ParsedMessage]]] | None = None
                 ) -> Outcome:
        """Gather the facts, decide (pipeline/decide.py), apply the decision. `ahead`: gives
        the batch's next mails, parsed already (PostgreSQL: their locks are taken with this
        one's; asked only when this one's lock is not held yet)."""
        now = self.clock.now()
        arrival = DecideArrival(
            inbound_id=inbound.id, mail_from=inbound.mail_from,
            rcpt_to=tuple(inbound.rcpt_to), received_at=inbound.received_at,
            source=inbound.source, no_autoreply=inbound.no_autoreply,
            update_only=inbound.update_only, auth_results=inbound.auth_results)
        # PostgreSQL, several processors: what another batch holds is waited for by
        # deferring, not by a lock wait (process/contention.py).
        contended = result if self._postgres and isinstance(result, ParsedMessage) else None
        why = self._contention.held_elsewhere(session, inbound.id, contended, ahead) \
            if contended else None
        if why is None:
            copy = self._contention.copy if contended else None
            lookups = DbLookups(session, inbound.id, known_copy=copy[1:]
                                if copy is not None and copy[0] == inbound.id else None,
                                history_window=history_window(now, self.settings))
            d = decide(result, arrival, lookups, self.settings, now=now,
                       languages=self.composer.languages)
            if contended:
                why = self._contention.ticket_held_elsewhere(session, inbound.id, contended, d)
        if why is not None:   # stays pending: the next batch takes it up
            return Outcome(inbound.id, "deferred", reason=why, received_at=inbound.received_at)
        self._noted.append((inbound.id, inbound.source, d))
        seen = {"received_at": inbound.received_at,
                "message_id": result.message_id if isinstance(result, ParsedMessage) else None}
        if d.outcome in _HELD:
            status, word = _HELD[d.outcome]
            mark_inbound(inbound, status, d.reason or word, now=now)
            return Outcome(inbound.id, word, d.ticket_number, d.reason, **seen)
        assert isinstance(result, ParsedMessage)
        if d.outcome == "bounce":
            assert d.bounce is not None
            outgoing, report = d.bounce
            number = apply_bounce(session, inbound, result, session.get_one(Outbox, outgoing.id),
                                  report, now=now)
            return Outcome(inbound.id, "done", number, **seen)
        assert d.plan is not None   # a ticket or an agent's reply: one plan, one applier
        s = self.settings
        applied = apply_plan(session, d.plan, inbound, now=now,
                             first_number=s.first_ticket_number, settings=s,
                             composer=self.composer, sender_name=_sender_name(result, inbound))
        self._queued_mail |= applied.queued_mail
        return Outcome(inbound.id, "done", applied.ticket.number, **seen,
                       opened=d.plan.new_ticket is not None)

    def _log_and_count(self, inbound_id: int, source: str, d: Decision) -> None:
        """The decision's notes go to the log; failed token lookups count against the IP."""
        ip = source_ip(source)
        for note in d.notes:
            log.info("inbound %s from %s: %s", inbound_id, ip or source, note)
        if d.probe_failures:
            if self.probes is not None:
                self.probes.record_failure(ip, d.probe_failures)
            if d.outcome == "quarantine":  # token probing
                log.warning("inbound %s from %s: %s", inbound_id, ip or source, d.reason)
