"""Deliver the outbox: claim due rows, hand them to the transport, record what happened.

A row is claimed by pushing its `next_attempt_at` forward by a lease (an optimistic UPDATE that
only one deliverer can win), delivered outside any transaction, then marked sent, retried with
exponential backoff, or failed. A crash between sending and marking leaves the lease to expire
and the mail is sent again with the same Message-ID: the only duplicate possible, and one that
mail clients fold together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock
from maildesk.db.models import Outbox, OutboxStatus
from maildesk.outbound.transport import (DeliveryError, PermanentDeliveryError, Transport)

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


class OutboxDeliverer:
    def __init__(self, make_session: sessionmaker[Session], transport: Transport, clock: Clock):
        self.make_session = make_session
        self.transport = transport
        self.clock = clock

    def _claim(self, limit: int) -> list[Outbox]:
        now = self.clock.now()
        claimed = []
        with self.make_session() as session:
            due = session.execute(
                select(Outbox.id, Outbox.next_attempt_at)
                .where(Outbox.status == OutboxStatus.QUEUED, Outbox.next_attempt_at <= now)
                .order_by(Outbox.next_attempt_at, Outbox.id).limit(limit)).all()
        for outbox_id, when in due:
            with self.make_session.begin() as session:
                won = session.execute(
                    update(Outbox).where(Outbox.id == outbox_id, Outbox.next_attempt_at == when,
                                         Outbox.status == OutboxStatus.QUEUED)
                    .values(next_attempt_at=now + LEASE)).rowcount
                if won:
                    claimed.append(session.get_one(Outbox, outbox_id))
        return claimed

    def run_once(self, limit: int = 50) -> list[DeliveryOutcome]:
        """Deliver what is due now (up to `limit` mails)."""
        outcomes = []
        for row in self._claim(limit):
            outcomes.append(self._deliver(row))
        return outcomes

    def drain(self) -> list[DeliveryOutcome]:
        out: list[DeliveryOutcome] = []
        while True:
            got = self.run_once()
            out.extend(got)
            if not got:
                return out

    def _deliver(self, row: Outbox) -> DeliveryOutcome:
        try:
            result = self.transport.deliver(row.envelope_from, row.recipients, row.data)
        except DeliveryError as exc:
            return self._record_failure(row, exc)
        except Exception as exc:  # a transport bug must not kill the deliverer
            log.exception("delivering outbox %s failed unexpectedly", row.id)
            return self._record_failure(row, DeliveryError(f"{type(exc).__name__}: {exc}"))
        now = self.clock.now()
        notes = [f"{r}: {t}" for r, t in {**result.refused}.items()]
        with self.make_session.begin() as session:
            fresh = session.get_one(Outbox, row.id)
            fresh.attempts += 1
            if result.deferred:
                fresh.recipients = list(result.deferred)
                fresh.last_error = "; ".join(notes + [f"{r}: {t}" for r, t in result.deferred.items()])
                fresh.next_attempt_at = now + backoff(fresh.attempts)
                return DeliveryOutcome(row.id, "retry", fresh.last_error)
            fresh.status = OutboxStatus.SENT if result.accepted else OutboxStatus.FAILED
            fresh.sent_at = now if result.accepted else None
            fresh.last_error = "; ".join(notes) or None
            log.info("outbox %s %s to %s", row.id, fresh.status.value, ", ".join(result.accepted))
            return DeliveryOutcome(row.id, fresh.status.value, fresh.last_error or "")

    def _record_failure(self, row: Outbox, exc: DeliveryError) -> DeliveryOutcome:
        now = self.clock.now()
        with self.make_session.begin() as session:
            fresh = session.get_one(Outbox, row.id)
            fresh.attempts += 1
            fresh.last_error = str(exc)
            if isinstance(exc, PermanentDeliveryError) or now >= fresh.give_up_at:
                fresh.status = OutboxStatus.FAILED
                fresh.next_attempt_at = now
                log.warning("outbox %s failed for good: %s", row.id, exc)
                return DeliveryOutcome(row.id, "failed", str(exc))
            fresh.next_attempt_at = min(now + backoff(fresh.attempts), fresh.give_up_at)
            log.info("outbox %s deferred (attempt %d): %s", row.id, fresh.attempts, exc)
            return DeliveryOutcome(row.id, "retry", str(exc))


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
