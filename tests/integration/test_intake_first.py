"""Intake goes before processing on SQLite, where both need the one write lock: a processing
batch commits after the message in hand as soon as the listener waits to store, so a 250 waits
for one message's processing at most, not a batch's (issue 22)."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from helpers import store
from mails import mail
from maildesk.app import IntakeGate
from maildesk.db.models import Channel, Inbound, InboundStatus
from maildesk.pipeline.isolate import ParseSandbox
from maildesk.process.run import Processor
from maildesk.store.raw import Arrival, GroupCommitWriter

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def pending(ctx) -> int:
    with ctx.make_session() as s:
        return len(s.scalars(select(Inbound.id).where(Inbound.status == InboundStatus.PENDING))
                   .all())


def test_a_batch_commits_after_the_message_in_hand_when_intake_waits(ctx):
    for i in range(5):
        store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
    processor = Processor(ctx.settings, ctx.make_session, ctx.clock, yield_to=lambda: True)
    try:
        assert [o.status for o in processor.run_batch(limit=20)] == ["done"]
        assert pending(ctx) == 4
        assert len(processor.drain()) == 4   # one message per batch while intake keeps waiting
    finally:
        processor.close()
    assert pending(ctx) == 0


class CountingSandbox(ParseSandbox):
    """The real parse child, counting what it is asked to parse."""

    def __init__(self):
        super().__init__(timeout=30, memory_mb=512)
        self.parsed: list[bytes] = []

    def parse(self, raw):
        self.parsed.append(raw)
        return super().parse(raw)


def test_what_the_parser_got_ahead_of_a_batch_that_ended_early_is_not_parsed_again(ctx):
    """A batch that commits early (intake waiting) leaves parsed mail for the next batch: each
    message goes through the parse child once, however many batches it takes."""
    for i in range(6):
        store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
    sandbox = CountingSandbox()
    processor = Processor(ctx.settings, ctx.make_session, ctx.clock, sandbox=sandbox,
                          yield_to=lambda: True)
    try:
        outcomes = processor.drain()
    finally:
        processor.close()
    assert [o.status for o in outcomes] == ["done"] * 6
    assert pending(ctx) == 0
    assert len(sandbox.parsed) == 6 == len(set(sandbox.parsed))


def test_the_writer_says_intake_waits_while_it_waits_for_the_lock(ctx):
    gate = IntakeGate()
    writer = GroupCommitWriter(ctx.engine, intake=gate.busy)
    blocker = sqlite3.connect(ctx.engine.url.database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")   # a processing batch holding the write lock
        assert not gate.waiting()
        future = writer.submit(Arrival(data=mail(subject="in a hurry"), channel=Channel.SMTP,
                                       received_at=datetime.now(timezone.utc),
                                       mail_from="c@customer.example",
                                       rcpt_to=("support@example.com",)))
        for _ in range(200):                 # the writer's thread gets to its commit
            if gate.waiting():
                break
            time.sleep(0.01)
        assert gate.waiting()                # a batch asked now commits what it has
        blocker.execute("COMMIT")
        assert future.result(timeout=10) > 0
        assert not gate.waiting()
    finally:
        blocker.close()
        writer.close()


def test_the_writer_gets_the_lock_the_moment_the_batch_lets_it_go(ctx):
    """In one daemon the write lock is handed on in the process (IntakeGate.turn): a batch that
    holds it keeps the listener's commit waiting, and releasing it lets the commit through."""
    gate = IntakeGate()
    writer = GroupCommitWriter(ctx.engine, intake=gate.storing)
    try:
        with gate.turn:                      # a processing batch writing
            future = writer.submit(Arrival(data=mail(subject="next"), channel=Channel.SMTP,
                                           received_at=datetime.now(timezone.utc),
                                           mail_from="c@customer.example",
                                           rcpt_to=("support@example.com",)))
            for _ in range(200):
                if gate.waiting():
                    break
                time.sleep(0.01)
            assert gate.waiting() and not future.done()   # told, and waiting for its turn
        assert future.result(timeout=10) > 0
    finally:
        writer.close()


def test_a_batch_given_a_share_keeps_working_while_intake_waits(ctx):
    """After the processor held off for intake that did not stop (a flood), its batch works
    its share before letting intake in: here all five mails, where a batch without a share
    does one."""
    for i in range(5):
        store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
    processor = Processor(ctx.settings, ctx.make_session, ctx.clock, yield_to=lambda: True,
                          hold_seconds=3600)
    try:
        assert len(processor.run_batch(limit=20, least=3600)) == 5
    finally:
        processor.close()
    assert pending(ctx) == 0


def test_reading_the_pending_mail_takes_no_write_lock(ctx):
    """The processor reads what is pending before it takes SQLite's write lock, in a read
    transaction: a listener's commit (here another connection holding the lock) does not
    hold that read up, and the read does not hold the listener up."""
    for i in range(3):
        store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
    processor = Processor(ctx.settings, ctx.make_session, ctx.clock)
    blocker = sqlite3.connect(ctx.engine.url.database, isolation_level=None, timeout=0)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        assert len(processor._pending(10, None)) == 3
        blocker.execute("COMMIT")
    finally:
        blocker.close()
        processor.close()
