"""Deliver the outbox: claim due rows, hand them to the transport, record what happened.

A row is claimed by pushing its `next_attempt_at` forward by a lease (an optimistic UPDATE that
only one deliverer can win), delivered outside any transaction, then marked sent, retried with
exponential backoff, or failed. Results that cannot be written (the database locked or gone for a
moment) are kept and written first thing on the next pass, before anything new is claimed: a
mail that went out is not sent again because its "sent" was late. Only a crash between sending
and marking leaves the lease to expire and the mail is sent again with the same Message-ID: the
one duplicate possible, and one that mail clients fold together.

A reload hands the deliverer a new transport (`replace_transport`); the delivering thread takes
it up between two mails and closes the old one, so every mail goes through exactly one of them.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock
from maildesk.db.models import Outbox, OutboxStatus
from maildesk.outbound.transport import DeliveryError, PermanentDeliveryError, Transport

log = logging.getLogger(__name__)

# How long a claimed mail stays invisible to other deliverers. After a crash, what the dead
# process had claimed goes out again once this has passed (with the same Message-ID).
LEASE = timedelta(seconds=90)
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes after each failed attempt, at most an hour."""
    exponent = min(max(attempts - 1, 0), 20)  # 2**20 minutes is past the cap already
    return min(FIRST_RETRY * (2 ** exponent), MAX_RETRY)


@dataclass(frozen=True)
class DeliveryOutcome:
    outbox_id: int
    status: str          # sent | retry | failed
    detail: str = ""


# Mails are leased, and their results written, CLAIM_EVERY at a time.
CLAIM_EVERY = 25


@dataclass(frozen=True)
class Claimed:
    """What delivering one leased outbox row needs."""
    id: int
    envelope_from: str
    recipients: list[str]
    data: bytes
    attempts: int
    give_up_at: datetime


# The statements of the delivery loop, built once: rebuilding them (an IN list of 25 values
# coerced one by one) cost more interpreter time than SQLite took to run them.
_IDS = bindparam("ids", expanding=True)
_DUE = (select(Outbox.id)
        .where(Outbox.status == OutboxStatus.QUEUED, Outbox.next_attempt_at <= bindparam("now"))
        .order_by(Outbox.next_attempt_at, Outbox.id).limit(bindparam("limit")))
_LEASE = (update(Outbox)
          .where(Outbox.id.in_(_IDS), Outbox.status == OutboxStatus.QUEUED,
                 Outbox.next_attempt_at <= bindparam("now"))
          .values(next_attempt_at=bindparam("until")).returning(Outbox.id))
_LOAD = select(Outbox.id, Outbox.envelope_from, Outbox.recipients, Outbox.data, Outbox.attempts,
               Outbox.give_up_at).where(Outbox.id.in_(_IDS))
_SENT = (update(Outbox).where(Outbox.id.in_(_IDS))
         .values(status=OutboxStatus.SENT, sent_at=bindparam("at"), last_error=None,
                 attempts=Outbox.attempts + 1))

Delivered = tuple[Claimed, dict[str, object], DeliveryOutcome]


class OutboxDeliverer:
    def __init__(self, make_session: sessionmaker[Session], transport: Transport, clock: Clock,
                 *, lease: timedelta = LEASE,
                 write_turn: AbstractContextManager[Any] | None = None):
        self.make_session = make_session
        # `serve` on SQLite: held for each transaction (the daemon's writers take turns).
        self.write_turn = write_turn or nullcontext()
        self.transport = transport
        self.clock = clock
        self.lease = lease
        self._engine = make_session.kw["bind"]
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        self._next_transport: Transport | None = None   # handed over by a reload
        self._swap_lock = threading.Lock()
        self._swapped = threading.Event()
        # Results of mails that went out but could not be written yet (on the db thread only).
        self._owed: list[Delivered] = []

    def replace_transport(self, transport: Transport) -> threading.Event:
        """Deliver through `transport` from the next mail on (callable from any thread). The
        delivering thread swaps it in between two mails and closes the old transport then, when
        no mail is in its hands; the event returned is set once that has happened."""
        with self._swap_lock:
            superseded, self._next_transport = self._next_transport, transport
            self._swapped = swapped = threading.Event()
        if superseded is not None:  # two reloads in a row: the first one's was never used
            superseded.close()
        return swapped

    def take_new_transport(self) -> None:
        """On the delivering thread: swap in the transport a reload handed over, if any."""
        if self._next_transport is None:
            return
        with self._swap_lock:
            new, self._next_transport = self._next_transport, None
            swapped = self._swapped
        if new is None:
            return
        old, self.transport = self.transport, new
        try:
            old.close()
        except Exception:  # a connection that died meanwhile: nothing left to close
            log.exception("closing the previous outbound transport failed")
        swapped.set()

    def run_once(self, limit: int = 100) -> list[DeliveryOutcome]:
        """Deliver what is due now (up to `limit` mails); return once every result is recorded.

        Mails are leased a group at a time. The database work runs beside the sending, on one
        helper thread, as one transaction per group: while group k goes out, the results of
        group k-1 are written and group k+1 is leased. That keeps the outbox close to a bare
        smtplib loop. A crash can leave up to two groups sent but not marked: they go out again
        with their original Message-IDs once the lease ends."""
        outcomes: list[DeliveryOutcome] = []
        self.take_new_transport()
        rows = self._db.submit(self._record_and_claim, [], min(limit, CLAIM_EVERY)).result()
        claimed = len(rows)
        unrecorded: list[Delivered] = []
        try:
            while rows:
                more = min(limit - claimed, CLAIM_EVERY) if len(rows) == CLAIM_EVERY else 0
                step = self._db.submit(self._record_and_claim, unrecorded, more)
                outcomes.extend(d[2] for d in unrecorded)
                unrecorded = [(row, *self._deliver(row)) for row in rows]
                rows = step.result()
                claimed += len(rows)
        finally:
            if unrecorded:
                self._db.submit(self._record_and_claim, unrecorded, 0).result()
                outcomes.extend(d[2] for d in unrecorded)
        return outcomes

    def drain(self) -> list[DeliveryOutcome]:
        out: list[DeliveryOutcome] = []
        while True:
            got = self.run_once(limit=500)
            out.extend(got)
            if not got:
                return out

    def close(self) -> None:
        if self._owed:  # one last try; what stays unwritten goes out again after its lease
            try:
                self._db.submit(self._record_and_claim, [], 0).result()
            except Exception as exc:
                log.warning("results of %d sent mail(s) could not be written: %s; they will be "
                            "sent again once their lease ends", len(self._owed), exc)
        self._db.shutdown(wait=True)

    def _record_and_claim(self, done: list[Delivered], limit: int) -> list[Claimed]:
        """One transaction: write the results in `done`, then lease up to `limit` due mails.
        Only rows still due are won, so two deliverers never take the same mail. (Core
        statements: this runs beside the sending and should take little interpreter time.)"""
        done = self._owed + done
        if not done and not limit:
            return []
        now = self.clock.now()
        try:
            with self.write_turn, self._engine.begin() as conn:
                self._record(conn, done)
                rows: dict[int, Claimed] = {}
                due = conn.scalars(_DUE, {"now": now, "limit": limit}).all() if limit else []
                if due:
                    won = conn.scalars(_LEASE, {"ids": due, "now": now,
                                                "until": now + self.lease}).all()
                    rows = {row.id: Claimed(*row) for row in conn.execute(_LOAD, {"ids": won})}
        except BaseException:
            # Those mails went out: their results wait for the next transaction that works
            # (well inside their lease), rather than the lease ending and sending them again.
            self._owed = done
            raise
        self._owed = []
        return [rows[i] for i in due if i in rows]

    @staticmethod
    def _record(conn: Connection, done: list[Delivered]) -> None:
        # The common case, sent without remarks, is one statement for the whole group.
        plain = {row.id: change["sent_at"] for row, change, _ in done
                 if change.get("status") is OutboxStatus.SENT and not change["last_error"]}
        if plain:
            conn.execute(_SENT, {"ids": list(plain), "at": max(plain.values())})
        for row, change, _ in done:
            if row.id not in plain:
                conn.execute(update(Outbox).where(Outbox.id == row.id).values(**change))

    def _deliver(self, row: Claimed) -> tuple[dict[str, object], DeliveryOutcome]:
        """Hand one mail to the transport; return the row's new values and the outcome."""
        if self._next_transport is not None:  # a reload: from this mail on, the new one
            self.take_new_transport()
        try:
            result = self.transport.deliver(row.envelope_from, row.recipients, row.data)
        except DeliveryError as exc:
            return self._failure(row, exc)
        except Exception as exc:  # a transport bug must not kill the deliverer
            log.exception("delivering outbox %s failed unexpectedly", row.id)
            return self._failure(row, DeliveryError(f"{type(exc).__name__}: {exc}"))
        now = self.clock.now()
        attempts = row.attempts + 1
        notes = [f"{r}: {t}" for r, t in result.refused.items()]
        if result.deferred:
            error = "; ".join(notes + [f"{r}: {t}" for r, t in result.deferred.items()])
            return ({"attempts": attempts, "recipients": list(result.deferred),
                     "last_error": error, "next_attempt_at": now + backoff(attempts)},
                    DeliveryOutcome(row.id, "retry", error))
        status = OutboxStatus.SENT if result.accepted else OutboxStatus.FAILED
        log.info("outbox %s %s to %s", row.id, status.value, ", ".join(result.accepted))
        error = "; ".join(notes) or None
        return ({"attempts": attempts, "status": status, "last_error": error,
                 "sent_at": now if result.accepted else None},
                DeliveryOutcome(row.id, status.value, error or ""))

    def _failure(self, row: Claimed, exc: DeliveryError
                 ) -> tuple[dict[str, object], DeliveryOutcome]:
        now = self.clock.now()
        attempts = row.attempts + 1
        if isinstance(exc, PermanentDeliveryError) or now >= row.give_up_at:
            log.warning("outbox %s failed for good: %s", row.id, exc)
            return ({"attempts": attempts, "last_error": str(exc), "status": OutboxStatus.FAILED,
                     "next_attempt_at": now}, DeliveryOutcome(row.id, "failed", str(exc)))
        log.info("outbox %s deferred (attempt %d): %s", row.id, attempts, exc)
        return ({"attempts": attempts, "last_error": str(exc),
                 "next_attempt_at": min(now + backoff(attempts), row.give_up_at)},
                DeliveryOutcome(row.id, "retry", str(exc)))


def retry_now(session: Session, outbox_id: int, now: datetime) -> Outbox | None:
    """`outbox retry ID`: queue a failed or waiting mail for delivery right away."""
    row = session.get(Outbox, outbox_id)
    if row is None or row.status is OutboxStatus.SENT:
        return row
    row.status = OutboxStatus.QUEUED
    row.next_attempt_at = now
    if row.give_up_at <= now:
        row.give_up_at = now + (row.give_up_at - row.created_at)
    return row
