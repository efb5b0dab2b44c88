"""A mail that went out is not sent again because writing its "sent" failed for a moment:
the deliverer keeps the results and writes them before it claims anything new. (Found by
benchmarks/end_to_end.py: a "database is locked" on that commit sent 25 mails twice.)"""

from __future__ import annotations

import email
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from helpers import store
from mails import mail
from maildesk.clock import FixedClock
from maildesk.db.models import Outbox, OutboxStatus
from maildesk.outbound.outbox import CLAIM_EVERY, LEASE, OutboxDeliverer
from maildesk.outbound.transport import DeliveryResult


class TableLock:
    """Another connection holding the outbox's write lock, as a busy daemon would."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.held = None

    def take(self) -> None:
        url = self.ctx.engine.url
        if url.get_backend_name() == "sqlite":
            conn = sqlite3.connect(url.database, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            self.held = conn
        else:
            conn = self.ctx.engine.connect()
            conn.begin()
            conn.exec_driver_sql("LOCK TABLE outbox IN EXCLUSIVE MODE")
            self.held = conn

    def release(self) -> None:
        if self.held is not None:
            self.held.rollback()
            self.held.close()
            self.held = None


class Recorder:
    """A transport that accepts everything and remembers each Message-ID it was handed; it
    lets `on_send(n)` act before the n-th mail goes out."""

    def __init__(self, on_send):
        self.sent: list[str] = []
        self.on_send = on_send

    def deliver(self, envelope_from: str, recipients: Sequence[str],
                message: bytes) -> DeliveryResult:
        self.on_send(len(self.sent) + 1)
        self.sent.append(email.message_from_bytes(message)["Message-ID"])
        return DeliveryResult(tuple(recipients))

    def close(self) -> None:
        pass


def test_sent_mail_is_not_sent_again_when_recording_it_fails(ctx, processor):
    for i in range(40):   # autoreplies and line notifications: more than two groups
        store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
    processor.drain()
    with ctx.make_session() as s:
        queued = len(s.scalars(select(Outbox.id)).all())
    assert queued > 2 * CLAIM_EVERY

    lock = TableLock(ctx)
    clock = FixedClock(ctx.clock.now() + timedelta(seconds=1))

    def leased() -> int:
        with ctx.make_session() as s:
            return len(s.scalars(select(Outbox.id).where(Outbox.next_attempt_at > clock.now()))
                       .all())

    def before_send(n: int) -> None:
        # The last mail of the first group, once the second group is leased (beside the first
        # going out), takes the lock: writing the first group's "sent" (beside the second
        # going out) fails after database.lock_timeout_ms, and so does the second's.
        if n == CLAIM_EVERY:
            for _ in range(500):
                if leased() == 2 * CLAIM_EVERY:
                    break
                time.sleep(0.01)
            lock.take()

    transport = Recorder(before_send)
    deliverer = OutboxDeliverer(ctx.make_session, transport, clock)
    try:
        with pytest.raises(OperationalError):
            deliverer.run_once(limit=500)
        assert len(transport.sent) == 2 * CLAIM_EVERY   # both groups went out
        lock.release()
        deliverer.drain()                                # writes them, then sends the rest
        clock.advance(seconds=LEASE.total_seconds() + 60)  # past every lease of the first try
        deliverer.drain()
    finally:
        lock.release()
        deliverer.close()

    twice = [mid for mid, n in Counter(transport.sent).items() if n > 1]
    assert twice == [] and len(transport.sent) == queued
    with ctx.make_session() as s:
        assert set(s.scalars(select(Outbox.status))) == {OutboxStatus.SENT}
