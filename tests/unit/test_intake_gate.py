"""The daemon's intake gate: the processor holds off while intake stores, a bounded while
(maildesk.app.IntakeGate; issue 22)."""

from __future__ import annotations

import threading

from maildesk.app import IntakeGate


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
