"""Ticket numbers stay unique with several writers and are never reused."""

from __future__ import annotations

import threading

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
