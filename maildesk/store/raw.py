"""Keep every received message byte for byte, with its envelope, and commit before any ack.

`store_arrivals` writes raw bytes (once per distinct content, by sha256) and one `inbound` row
per arrival in the caller's transaction. `GroupCommitWriter` serves the SMTP listener: sessions
that finish DATA at the same time share one transaction and so one fsync, and each gets its 250
only after that commit.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from maildesk.db.models import Channel, Inbound, InboundStatus, RawMessage

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


def _insert_ignore(session: Session):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(RawMessage)


def store_arrivals(session: Session, arrivals: Sequence[Arrival]) -> list[int]:
    """Write the arrivals in the session's transaction; return their inbound ids, in order."""
    if not arrivals:
        return []
    digests = [hashlib.sha256(a.data).hexdigest() for a in arrivals]
    fresh: dict[str, Arrival] = {}
    for digest, arrival in zip(digests, arrivals):
        fresh.setdefault(digest, arrival)
    known = dict(session.execute(
        select(RawMessage.sha256, RawMessage.id).where(RawMessage.sha256.in_(list(fresh)))).all())
    missing = [{"sha256": d, "size": len(a.data), "data": a.data, "stored_at": a.received_at}
               for d, a in fresh.items() if d not in known]
    if missing:
        # Another writer may store the same bytes at the same moment: ignore, then look up.
        session.execute(_insert_ignore(session).on_conflict_do_nothing(index_elements=["sha256"]),
                        missing)
        known.update(session.execute(
            select(RawMessage.sha256, RawMessage.id)
            .where(RawMessage.sha256.in_([m["sha256"] for m in missing]))).all())
    rows = [{"raw_id": known[d], "channel": a.channel, "source": a.source,
             "mail_from": a.mail_from, "rcpt_to": list(a.rcpt_to), "received_at": a.received_at,
             "status": InboundStatus.PENDING, "attempts": 0}
            for d, a in zip(digests, arrivals)]
    ids = session.scalars(insert(Inbound).returning(Inbound.id, sort_by_parameter_order=True), rows)
    return list(ids)


def store_one(make_session: sessionmaker[Session], arrival: Arrival) -> int:
    """Store one arrival in its own committed transaction (pipe delivery, tools)."""
    with make_session.begin() as session:
        return store_arrivals(session, [arrival])[0]


@dataclass
class _Job:
    arrival: Arrival
    future: Future[int] = field(default_factory=Future)


class GroupCommitWriter:
    """A writer thread that commits the arrivals queued while the previous commit ran together."""

    def __init__(self, make_session: sessionmaker[Session], *, max_batch: int = 64,
                 on_stored: Callable[[], None] | None = None):
        self._make_session = make_session
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
            try:
                with self._make_session.begin() as session:
                    ids = store_arrivals(session, [j.arrival for j in jobs])
            except Exception as exc:  # every waiter learns the commit failed: SMTP says 451
                log.warning("storing %d message(s) failed: %s", len(jobs), exc)
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            for job, inbound_id in zip(jobs, ids):
                job.future.set_result(inbound_id)
            if self._on_stored is not None:
                self._on_stored()
