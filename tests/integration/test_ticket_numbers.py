"""Ticket numbers stay unique with several writers and are never reused."""

from __future__ import annotations

import threading

import pytest

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
