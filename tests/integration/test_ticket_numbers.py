"""Ticket numbers stay unique with several writers and are never reused."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from helpers import store
from mails import mail
from maildesk.db.models import Counter, Ticket
from maildesk.db.queries import next_ticket_number


def test_concurrent_writers_get_distinct_consecutive_numbers(ctx):
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer() -> None:
        try:
            for _ in range(25):
                with ctx.make_session.begin() as s:
                    n = next_ticket_number(s, 1000)
                with lock:
                    got.append(n)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == list(range(1000, 1200))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_batch_in_flight_does_not_hold_up_numbers_on_postgresql(ctx):
    """On PostgreSQL a number is drawn in a transaction of its own: a daemon's batch that has
    opened a ticket but not committed does not make the next daemon wait for the counter (it
    would, up to database.lock_timeout_ms, then fail). A batch that rolls back leaves its
    number unused."""
    first = ctx.make_session()
    try:
        with first.begin():
            held = next_ticket_number(first, 1000)
            with ctx.make_session.begin() as second:
                assert next_ticket_number(second, 1000) == held + 1
            first.rollback()
    finally:
        first.close()
    with ctx.make_session.begin() as third:
        assert next_ticket_number(third, 1000) == held + 2   # `held` stays unused


def test_one_batch_numbers_its_tickets_in_order_and_the_next_batch_goes_on(ctx, processor):
    """On SQLite a batch bumps the counter once and writes where it got to at its end: five new
    tickets in one batch are 1000-1004, the counter says 1004, and the next batch opens 1005."""
    for i in range(5):
        store(ctx, mail(sender=f"c{i}@customer.example", subject=f"topic {i}",
                        message_id=f"<b{i}@customer.example>"))
    assert [o.ticket_number for o in processor.run_batch(limit=10)] == [1000, 1001, 1002, 1003,
                                                                         1004]
    with ctx.make_session() as s:
        assert s.scalar(select(Counter.value).where(Counter.name == "ticket")) == 1004
    store(ctx, mail(sender="late@customer.example", subject="later",
                    message_id="<late@customer.example>"))
    assert [o.ticket_number for o in processor.run_batch(limit=10)] == [1005]


def test_a_batch_run_again_carefully_leaves_no_number_taken_twice(ctx, processor, monkeypatch):
    """A mail that fails rolls its batch back; run again message by message, the others get
    distinct rising numbers and the counter matches the last ticket: on SQLite consecutive
    ones (the bumps rolled back too), on PostgreSQL after those the first run drew (a number
    drawn in a batch that rolls back stays unused, as a sequence's would)."""
    from maildesk.process import run

    ids = [store(ctx, mail(sender=f"c{i}@customer.example", subject=f"topic {i}",
                           message_id=f"<f{i}@customer.example>")) for i in range(4)]
    real = run.apply_plan

    def fail_third(session, plan, inbound, **kw):
        if inbound.id == ids[2]:
            raise RuntimeError("this one fails")
        return real(session, plan, inbound, **kw)

    monkeypatch.setattr(run, "apply_plan", fail_third)
    outcomes = processor.run_batch(limit=10)
    assert [o.status for o in outcomes] == ["done", "done", "retry", "done"]
    numbers = [o.ticket_number for o in outcomes if o.status == "done"]
    assert numbers == sorted(set(numbers)) and len(numbers) == 3
    if ctx.engine.dialect.name == "sqlite":
        assert numbers == [1000, 1001, 1002]
    with ctx.make_session() as s:
        assert s.scalar(select(Counter.value).where(Counter.name == "ticket")) == numbers[-1]
        assert sorted(s.scalars(select(Ticket.number))) == numbers
