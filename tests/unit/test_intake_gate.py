"""The daemon's intake gate: the processor holds off while intake stores, a bounded while
(maildesk.app.IntakeGate; issue 22)."""

from __future__ import annotations

import threading

from maildesk.app import IntakeGate, ProcessorThread


def test_the_processor_waits_for_intake_to_go_quiet_and_takes_its_share_of_a_flood():
    gate = IntakeGate(quiet=0.01)
    gate.MAX_HOLD = 0.2
    assert gate.wait_idle()                  # nothing stored: at once, a batch as usual
    release = threading.Event()

    def flood() -> None:                     # intake storing the whole time
        with gate.busy():
            release.wait(30)

    storer = threading.Thread(target=flood)
    storer.start()
    try:
        assert not gate.wait_idle()          # did not stop: the batch takes its share
    finally:
        release.set()
        storer.join()
    assert gate.wait_idle()                  # stopped: quiet again


def test_how_busy_intake_was_counts_the_stores_of_the_last_half_second(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("maildesk.app.time.monotonic", lambda: now[0])
    gate = IntakeGate()
    assert gate.busy_share() == 0.0
    for _ in range(5):                       # a steady flow: 10 ms storing every 100 ms
        with gate.busy():
            now[0] += 0.01
        now[0] += 0.09
    assert round(gate.busy_share(), 3) == 0.1
    with gate.busy():                        # a burst: storing the whole half second
        now[0] += 0.5
    assert gate.busy_share() == 1.0
    now[0] += 0.6                            # quiet since: nothing left in the window
    assert gate.busy_share() == 0.0


def test_batches_grow_while_processing_falls_behind_a_steady_flow_not_in_a_burst():
    grow = ProcessorThread.next_least
    least = IntakeGate.LEAST
    steps = []
    for _ in range(6):                       # mail waited 0.3 s, intake busy a fifth of the time
        least = grow(least, waited=0.3, busy_share=0.2)
        steps.append(least)
    assert steps[0] == 2 * IntakeGate.LEAST and steps == sorted(steps)
    assert steps[-1] == ProcessorThread.LONGEST         # bounded: intake waits that long at most
    assert grow(least, waited=0.01, busy_share=0.2) == IntakeGate.LEAST   # caught up
    assert grow(least, waited=0.3, busy_share=0.9) == IntakeGate.LEAST    # a burst: short again
