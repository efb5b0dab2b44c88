"""Keep every received message byte for byte, with its envelope, and commit before any ack.

`store_arrivals` writes raw bytes (once per distinct content, by sha256) and one `inbound` row
per arrival in the caller's transaction. `GroupCommitWriter` serves the SMTP listener: sessions
that finish DATA at the same time share one transaction and so one fsync, and each gets its 250
only after that commit. A commit that fails gets each waiter a StorageFailed (the listener's
451): one line saying why, so a database outage costs a line per message at most.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from maildesk.db.models import Channel, Inbound, InboundStatus, RawMessage
from maildesk.db.outage import is_unreachable, one_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrival:
    """One message as it arrived: bytes, envelope, channel and time."""

    data: bytes
    channel: Channel
    received_at: datetime
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()
    source: str | None = None
    no_autoreply: bool = False   # backlog imported from a mailbox
    update_only: bool = False    # may join a ticket, never open one
    auth_results: str | None = None  # the listener's own SPF/DKIM/DMARC verdict


_RAW = RawMessage.__table__
_INBOUND = Inbound.__table__


def _raw_insert(dialect: str):  # type: ignore[no-untyped-def]
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_RAW)
    # Another writer may store the same bytes at the same moment: skip, then look the id up.
    return ins.on_conflict_do_nothing(index_elements=["sha256"]).returning(_RAW.c.sha256, _RAW.c.id)


def store_arrivals(conn: Connection | Session, arrivals: Sequence[Arrival]) -> list[int]:
    """Write the arrivals in the caller's transaction; return their inbound ids, in order.

    Core statements on one connection: this is the hot path of every SMTP 250."""
    if not arrivals:
        return []
    if isinstance(conn, Session):
        conn = conn.connection()
    digests = [hashlib.sha256(a.data).hexdigest() for a in arrivals]
    fresh: dict[str, Arrival] = {}
    for digest, arrival in zip(digests, arrivals):
        fresh.setdefault(digest, arrival)
    ins = _raw_insert(conn.dialect.name)
    known: dict[str, int] = {}
    for digest, a in fresh.items():
        row = conn.execute(ins, {"sha256": digest, "size": len(a.data), "data": a.data,
                                 "stored_at": a.received_at}).first()
        if row is not None:
            known[row.sha256] = row.id
    missing = [d for d in fresh if d not in known]
    if missing:  # bytes stored before: reuse them
        known.update(conn.execute(select(_RAW.c.sha256, _RAW.c.id)
                                  .where(_RAW.c.sha256.in_(missing))).all())
    rows = [{"raw_id": known[d], "channel": a.channel, "source": a.source,
             "mail_from": a.mail_from, "rcpt_to": list(a.rcpt_to), "received_at": a.received_at,
             "status": InboundStatus.PENDING, "attempts": 0,
             "no_autoreply": a.no_autoreply, "update_only": a.update_only,
             "auth_results": a.auth_results}
            for d, a in zip(digests, arrivals)]
    stmt = insert(_INBOUND).returning(_INBOUND.c.id, sort_by_parameter_order=True)
    return list(conn.execute(stmt, rows).scalars())


def store_one(make_session: sessionmaker[Session], arrival: Arrival) -> int:
    """Store one arrival in its own committed transaction (pipe delivery, tools)."""
    with make_session.begin() as session:
        return store_arrivals(session, [arrival])[0]


class StorageFailed(Exception):
    """The arrivals could not be committed; str() is the reason, in one line."""


@dataclass
class _Job:
    arrival: Arrival
    future: Future[int] = field(default_factory=Future)


class GroupCommitWriter:
    """A writer thread that commits the arrivals queued while the previous commit ran together."""

    def __init__(self, engine: Engine, *, max_batch: int = 64,
                 on_stored: Callable[[list[int]], None] | None = None,
                 intake: Callable[[], AbstractContextManager[None]] | None = None):
        """`intake`: marks each commit as intake at work (serve's IntakeGate.busy), so that
        the processor, sharing SQLite's one write lock, lets it go first."""
        self._engine = engine
        self._intake = intake or nullcontext
        self._max_batch = max_batch
        self._on_stored = on_stored
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="raw-writer", daemon=True)
        self._thread.start()

    def submit(self, arrival: Arrival) -> Future[int]:
        job = _Job(arrival)
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs = [first]
            while len(jobs) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
            # From here on no waiter can cancel its job: what is being stored gets its answer.
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            try:
                with self._intake(), self._engine.begin() as conn:
                    ids = store_arrivals(conn, [j.arrival for j in jobs])
            except Exception as exc:  # every waiter learns the commit failed: SMTP says 451
                self._failed(jobs, exc)
                continue
            for job, inbound_id in zip(jobs, ids):
                job.future.set_result(inbound_id)
            if self._on_stored is not None:
                self._on_stored(ids)

    @staticmethod
    def _failed(jobs: list[_Job], exc: Exception) -> None:
        if is_unreachable(exc):  # the daemon's outage watch logs the outage itself
            failed = StorageFailed(f"database unreachable: {one_line(exc)}")
        else:
            failed = StorageFailed(one_line(exc))
            log.warning("storing %d message(s) failed: %s", len(jobs), failed)
        failed.__cause__ = exc
        for job in jobs:
            job.future.set_exception(failed)
