"""SLA over a ticket's life (issue 7), end to end on a controlled clock: warnings and breaches
with escalation, deadlines over weekends and the Russian New Year holidays, the OLA of a line,
the clock standing still while a ticket is pending, reopening, ratings and the auto-close; and
the timer processes themselves (a daemon stopped, killed and restarted; two sweepers on one
PostgreSQL database), where every timer must fire exactly once.

Time never comes from the wall clock: in-process a FixedClock is shared by the processor, the
timers and the deliverer, and a subprocess reads its time from MAILDESK_CLOCK_FILE. Waiting for
a subprocess polls the database with a bound (`wait_for`), never asserts on a duration.
"""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select

from desk import (CLIENT, EXE, LINE1, LINE2, LINE3, MONDAY, MSK, SUPPORT, VENDOR, Desk, body,
                  edit_lines, events, mail, msk)
from helpers import wait_for
from maildesk.db.models import (Channel, Outbox, OutboxStatus, Ticket, TicketEvent, TicketStatus,
                                TicketTimer, TimerState)
from maildesk.store.raw import Arrival, store_one

@pytest.fixture
def make_desk(config_set):
    desks: list[Desk] = []

    def make(start: datetime = MONDAY) -> Desk:
        desk = Desk(config_set.path, start)
        desks.append(desk)
        return desk
    yield make
    for d in desks:
        d.close()


PRINTER = ("Printer in shop 5 does not print",
           "Hello, since this morning the printer in shop 5 prints nothing at all.")


def about(notification) -> str:
    """What a line notification is about: the line after the marker (its subject is the
    ticket's alone, the same for all its mail)."""
    return body(notification).splitlines()[1]


# -- 1. warning, breach, escalation --------------------------------------------------------------
def test_warning_at_80_percent_then_breach_escalates_to_the_next_line_once(config_set,
                                                                          make_desk):
    edit_lines(config_set, line1={"ola": None})   # only the deadlines; the OLA has its own test
    desk = make_desk()
    t = desk.client_writes(*PRINTER)
    assert (t.number, t.line, t.priority, t.status) == (1000, "line1", "P3", TicketStatus.NEW)
    assert t.first_response_due_at == msk(2026, 11, 23, 18, 0)
    assert t.resolution_due_at == msk(2026, 11, 30, 10, 0)
    # 80 % of 8 business hours is 6 h 24 min after 10:00; of 45 h, 36 h (Friday 10:00).
    assert desk.timers() == [
        ("first_response", "warning", msk(2026, 11, 23, 16, 24)),
        ("first_response", "breach", msk(2026, 11, 23, 18, 0)),
        ("resolution", "warning", msk(2026, 11, 27, 10, 0)),
        ("resolution", "breach", msk(2026, 11, 30, 10, 0)),
    ]
    (new,) = desk.mailbox(LINE1)
    assert new["Subject"] == "[MD-1000] " + PRINTER[0]      # one subject for the ticket's thread
    assert about(new).startswith("New ticket: [MD-1000]")
    desk.read_all_mailboxes()

    desk.at(msk(2026, 11, 23, 16, 23, 59))
    assert desk.fire() == 0
    assert desk.mailbox(LINE1) == [] and desk.events("sla_warning") == []

    desk.at(msk(2026, 11, 23, 16, 24))
    assert desk.fire() == 1
    (warning,) = desk.mailbox(LINE1)
    assert warning["Subject"] == new["Subject"]
    assert about(warning).startswith("Deadline soon: [MD-1000]")
    text = body(warning)
    # The year is written only when it is not the current one (the wall clock's here).
    assert re.search(r"The first response deadline is on Monday 23 November( 2026)? at 18:00\.",
                     text)
    assert warning["Reply-To"].addresses[0].addr_spec == \
        f"support+1000-{desk.ticket().agent_token}@example.com"
    assert [e.data["deadline"] for e in desk.events("sla_warning")] == ["first_response"]
    assert desk.ticket().breached_at is None and desk.ticket().line == "line1"
    assert desk.fire() == 0                                  # fired once

    desk.at(msk(2026, 11, 23, 17, 59, 59))
    assert desk.fire() == 0
    desk.at(msk(2026, 11, 23, 18, 0, 1))
    assert desk.fire() == 1
    t = desk.ticket()
    assert t.breached_at == desk.clock.now()
    assert t.line == "line2" and t.status is TicketStatus.NEW
    (breach,) = desk.events("sla_breach")
    assert breach.data["deadline"] == "first_response" and breach.data["line"] == "line1"
    (escalated,) = desk.events("escalated")
    assert (escalated.data["from"], escalated.data["to"]) == ("line1", "line2")
    assert "first response deadline passed" in escalated.data["reason"]
    (n,) = desk.mailbox(LINE2)
    text = body(n)
    assert about(n).startswith("Escalated from line1")
    assert "Why: the first response deadline passed" in text
    assert "The first response deadline was" in text
    assert "prints nothing at all" in text                   # the client's mail, in the history
    assert desk.mailbox(LINE1) == [] and desk.mailbox(CLIENT) == []

    # Nothing fires twice: not at once, not later the same evening.
    assert desk.fire() == 0
    desk.at(msk(2026, 11, 23, 23, 0))
    assert desk.fire() == 0
    assert len(desk.events("sla_breach")) == 1 and len(desk.events("sla_warning")) == 1
    assert desk.mailbox(LINE1) == desk.mailbox(LINE2) == []
    fired = desk.timers(state=TimerState.FIRED)
    assert [(k, s) for k, s, _ in fired] == [("first_response", "warning"),
                                            ("first_response", "breach")]
    # What is still ahead: the resolution, and line 2's OLA (a working day from its arrival
    # at 18:00, i.e. from Tuesday 09:00).
    assert desk.timers() == [
        ("ola", "due", msk(2026, 11, 24, 18, 0)),
        ("resolution", "warning", msk(2026, 11, 27, 10, 0)),
        ("resolution", "breach", msk(2026, 11, 30, 10, 0)),
    ]


def test_one_sweep_fires_two_timers_of_each_of_several_tickets_once(make_desk):
    """Nobody ran the timers all afternoon: one sweep finds two due on each of three tickets,
    line 1's OLA (14:00) and the first-response warning (16:24). What they do is written at
    the sweep's end, together: each ticket moves to line 2 once and warns once, line 2 hears
    of each twice, and nothing fires again."""
    desk = make_desk()
    for shop in (1, 2, 3):
        desk.client_writes(f"Printer in shop {shop} does not print", PRINTER[1])
    desk.read_all_mailboxes()

    desk.at(msk(2026, 11, 23, 16, 30))
    assert desk.fire() == 6
    assert desk.fire() == 0
    for number in (1000, 1001, 1002):
        assert desk.ticket(number).line == "line2"
        assert [len(desk.events(kind, number)) for kind in
                ("escalated", "sla_warning", "sla_breach")] == [1, 1, 0]
        # Line 2's own OLA, counted from the move (a working day: Tuesday 16:30).
        assert [(k, s) for k, s, _ in desk.timers(number)][:1] == [("first_response", "breach")]
        assert ("ola", "due") in [(k, s) for k, s, _ in desk.timers(number)]
    mails = desk.mailbox(LINE2)
    assert desk.mailbox(LINE1) == []
    assert Counter(m["Subject"] for m in mails) == {
        f"[MD-100{i}] Printer in shop {i + 1} does not print": 2 for i in range(3)}
    assert sorted(about(m).split(":")[0] for m in mails) == \
        ["Deadline soon"] * 3 + ["Escalated from line1"] * 3


# -- 2. deadlines over a weekend and the New Year holidays ---------------------------------------
def test_deadlines_skip_the_weekend_and_the_new_year_holidays(make_desk):
    """Russia 2026/27: Thu 31 Dec is a day off, 1-8 Jan are holidays, 9-10 Jan a weekend; work
    resumes Mon 11 Jan 09:00. Every value below is counted by hand in 09:00-18:00 days."""
    desk = make_desk(msk(2026, 12, 25, 16, 0))            # Friday
    fri = desk.client_writes("Scanner is offline", "The barcode scanner does not respond.")
    # 2 h on Friday, 6 h on Monday 28th.
    assert fri.first_response_due_at == msk(2026, 12, 28, 15, 0)
    # 45 h: Fri 2 + Mon 9 + Tue 9 + Wed 9 = 29; holidays; Mon 11 Jan 9 = 38; Tue 12th 7 h.
    assert fri.resolution_due_at == msk(2027, 1, 12, 16, 0)

    # Friday's ticket catches up on Monday's deadlines (no working day is skipped for it).
    desk.at(msk(2026, 12, 30, 14, 59))
    assert desk.fire() > 0
    assert desk.ticket(fri.number).breached_at == msk(2026, 12, 30, 14, 59)
    assert [k for k, _, _ in desk.timers(fri.number)] == ["resolution", "resolution"]

    desk.at(msk(2026, 12, 30, 15, 0))                      # Wednesday, the last working day
    wed = desk.client_writes("Label printer jams", "The label printer jams on every label.")
    # 3 h on the 30th, then 5 h on Monday 11 January.
    assert wed.first_response_due_at == msk(2027, 1, 11, 14, 0)
    # 3 h + 11th..14th (36 h) = 39 h, 6 h on Friday 15th.
    assert wed.resolution_due_at == msk(2027, 1, 15, 15, 0)
    assert desk.timers(wed.number) == [
        ("ola", "due", msk(2027, 1, 11, 10, 0)),                      # 4 h: 3 h + 1 h
        ("first_response", "warning", msk(2027, 1, 11, 12, 24)),      # 6.4 h: 3 h + 3.4 h
        ("first_response", "breach", msk(2027, 1, 11, 14, 0)),
        ("resolution", "warning", msk(2027, 1, 14, 15, 0)),           # 36 h: 3 + 27 + 6
        ("resolution", "breach", msk(2027, 1, 15, 15, 0)),
    ]

    desk.at(msk(2026, 12, 31, 12, 0))                      # a day off
    hol = desk.client_writes("Terminal reboots", "The payment terminal reboots every hour.")
    # The clock starts on Monday 11 January 09:00; 45 h are that whole week, to Friday 18:00.
    assert hol.first_response_due_at == msk(2027, 1, 11, 17, 0)
    assert hol.resolution_due_at == msk(2027, 1, 15, 18, 0)
    (ack,) = [m for m in desk.mailbox(CLIENT) if f"[MD-{hol.number}]" in m["Subject"]]
    assert re.search(r"work on your request starts on Monday 11 January( 2027)? at 9:00\.",
                     body(ack))

    desk.at(msk(2026, 12, 31, 23, 30))
    # The cash-register rule puts it on line 2 under `incidents`, a 24/7 calendar.
    inc = desk.client_writes("Касса не работает", "Касса №2 не включается.")
    assert (inc.line, inc.priority, inc.sla_policy) == ("line2", "P1", "incidents")
    assert inc.first_response_due_at == msk(2027, 1, 1, 0, 30)
    assert inc.resolution_due_at == msk(2027, 1, 1, 7, 30)
    assert ("ola", "due", msk(2027, 1, 1, 23, 30)) in desk.timers(inc.number)   # 1d = 24 h

    # Over the holidays only the round-the-clock ticket's timers fall due.
    with desk.ctx.make_session() as s:
        before = set(s.scalars(select(TicketTimer.id).where(
            TicketTimer.state == TimerState.FIRED)))
    desk.at(msk(2027, 1, 10, 23, 59))
    assert desk.fire() > 0
    with desk.ctx.make_session() as s:
        numbers = set(s.scalars(select(Ticket.number).join(
            TicketTimer, TicketTimer.ticket_id == Ticket.id).where(
            TicketTimer.state == TimerState.FIRED, TicketTimer.id.not_in(before))))
    assert numbers == {inc.number}
    assert desk.ticket(inc.number).breached_at == msk(2027, 1, 10, 23, 59)
    for t in (wed, hol):
        assert desk.ticket(t.number).breached_at is None
        assert desk.timers(t.number, state=TimerState.FIRED) == []
    # The catch-up fires breaches, not warnings that come after their own deadline.
    assert desk.events("sla_warning", inc.number) == []
    assert [e.data["deadline"] for e in desk.events("sla_breach", inc.number)] == \
        ["first_response", "resolution"]
    assert len(desk.events("timer_stale", inc.number)) == 2
    assert desk.ticket(inc.number).line == "vendor"          # line2 -> line3 -> vendor


# -- 3. OLA ---------------------------------------------------------------------------------------
def test_a_ticket_left_on_line1_beyond_its_ola_moves_to_line2(make_desk):
    desk = make_desk()
    t = desk.client_writes(*PRINTER)
    assert ("ola", "due", msk(2026, 11, 23, 14, 0)) in desk.timers()     # 4 business hours
    desk.read_all_mailboxes()

    desk.at(msk(2026, 11, 23, 13, 59, 59))
    assert desk.fire() == 0
    desk.at(msk(2026, 11, 23, 14, 0))
    assert desk.fire() == 1
    t = desk.ticket()
    assert t.line == "line2" and t.breached_at is None and t.status is TicketStatus.NEW
    (e,) = desk.events("escalated")
    assert (e.data["from"], e.data["to"]) == ("line1", "line2")
    assert "OLA" in e.data["reason"] and "line1" in e.data["reason"]
    assert desk.events("sla_breach") == []
    (n,) = desk.mailbox(LINE2)
    assert about(n).startswith("Escalated")
    assert "Why: longer than the OLA of line1" in body(n)
    assert "prints nothing at all" in body(n)
    assert desk.mailbox(LINE1) == []
    # Line 2's own OLA (1 working day) runs from the move: 4 h on Monday, 5 h on Tuesday.
    assert ("ola", "due", msk(2026, 11, 24, 14, 0)) in desk.timers()
    assert desk.fire() == 0

    # The deadlines stayed: the first-response warning now reaches the line that has it.
    desk.at(msk(2026, 11, 23, 16, 24))
    assert desk.fire() == 1
    (w,) = desk.mailbox(LINE2)
    assert about(w).startswith("Deadline soon")
    assert desk.mailbox(LINE1) == []


def test_a_timer_that_fails_in_a_sweep_is_set_aside_and_the_others_fire_once(make_desk,
                                                                              monkeypatch):
    """A sweep fires its timers without a savepoint each; one that fails rolls the sweep back,
    which runs again with savepoints: the failing timer is set aside (fired, with a
    timer_failed event), the others act once, not twice."""
    from maildesk.effects import timers

    desk = make_desk()
    for i in range(3):
        desk.client_writes(f"Printer in shop {i} does not print", "It prints nothing at all.")
    desk.read_all_mailboxes()
    doomed = desk.ticket(1001).id
    carry_out = timers._carry_out
    attempts: list[int] = []

    def fail_for_one(session, timer, *args, **kwargs):  # type: ignore[no-untyped-def]
        if timer.ticket_id == doomed:
            attempts.append(timer.id)
            raise OSError("template store unreachable")
        return carry_out(session, timer, *args, **kwargs)

    monkeypatch.setattr(timers, "_carry_out", fail_for_one)
    desk.at(msk(2026, 11, 23, 14, 0))   # the OLAs of all three (4 business hours)
    assert desk.fire() == 3
    assert len(attempts) == 2 and len(set(attempts)) == 1   # the sweep, then its careful run
    assert {desk.ticket(n).line for n in (1000, 1002)} == {"line2"}
    assert desk.ticket(1001).line == "line1"
    assert [e.data["to"] for e in desk.events("escalated")] == ["line2", "line2"]
    (failed,) = desk.events("timer_failed")
    assert failed.ticket_id == doomed and "template store unreachable" in failed.data["error"]
    assert len(desk.mailbox(LINE2)) == 2
    monkeypatch.undo()
    assert desk.fire() == 0   # set aside: not fired again


def test_without_a_next_line_the_lead_or_the_line_itself_is_told(config_set, make_desk):
    """`on_breach: lead` keeps a breached ticket on its line and tells the lead; a line with
    neither a next line nor a lead (the vendor here) is told itself, of a breach and of its
    OLA alike."""
    edit_lines(config_set, line1={"ola": None, "lead": "boss@example.com", "on_breach": "lead"},
               vendor={"ola": "2h"})
    desk = make_desk()
    desk.client_writes(*PRINTER)
    desk.client_writes("Scale shows wrong weight", "The scale at the till shows +20 g.",
                       sender="olga@shop.example.ru")
    desk.at(msk(2026, 11, 23, 10, 30))
    desk.agent_replies(1001, "#escalate vendor")
    assert desk.ticket(1001).line == "vendor"
    (moved,) = desk.mailbox(VENDOR)
    assert about(moved).startswith("Escalated")
    desk.read_all_mailboxes()

    desk.at(msk(2026, 11, 23, 12, 30))              # the vendor's OLA, two hours after 10:30
    assert desk.fire() == 1
    (ola,) = desk.mailbox(VENDOR)
    assert "[MD-1001]" in ola["Subject"]
    assert "Why: longer than the OLA of vendor" in body(ola)
    assert desk.ticket(1001).line == "vendor" and desk.ticket(1001).breached_at is None
    assert desk.events("escalated", 1001)[-1].actor == "alice@example.com"   # only the agent's

    desk.at(msk(2026, 11, 23, 16, 30))
    assert desk.fire() == 2                          # both first-response warnings
    assert [about(m).startswith("Deadline soon") for m in desk.mailbox(LINE1)] == [True]
    assert [about(m).startswith("Deadline soon") for m in desk.mailbox(VENDOR)] == [True]

    desk.at(msk(2026, 11, 23, 18, 0))
    assert desk.fire() == 2                          # both breaches
    (lead,) = desk.mailbox("boss@example.com")
    assert about(lead).startswith("Deadline missed: [MD-1000]") and "[MD-1000]" in lead["Subject"]
    assert "Why: the first response deadline passed" in body(lead)
    (missed,) = desk.mailbox(VENDOR)
    assert about(missed).startswith("Deadline missed: [MD-1001]")
    assert "[MD-1001]" in missed["Subject"]
    assert desk.mailbox(LINE1) == [] and desk.mailbox(LINE2) == []
    for number, line in ((1000, "line1"), (1001, "vendor")):
        t = desk.ticket(number)
        assert t.line == line and t.breached_at == msk(2026, 11, 23, 18, 0)
    assert len(desk.events("sla_breach")) == 2
    assert [e.actor for e in desk.events("escalated")] == ["alice@example.com"]


# -- 4. pending stops the clock -------------------------------------------------------------------
def test_pending_stops_the_clock_and_the_client_answer_moves_the_deadlines(make_desk):
    desk = make_desk()
    desk.client_writes(*PRINTER)
    desk.at(msk(2026, 11, 23, 10, 15))
    desk.agent_replies(1000, "#priority P1")         # standard P1: 1 h / 8 h
    t = desk.ticket()
    assert t.priority == "P1" and t.status is TicketStatus.NEW
    assert t.resolution_due_at == msk(2026, 11, 23, 18, 0)
    due_before = t.resolution_due_at
    desk.read_all_mailboxes()

    pause_start = msk(2026, 11, 23, 10, 30)
    desk.at(pause_start)
    desk.agent_replies(1000, "#pending\nPlease send us a photo of the printer's display.")
    t = desk.ticket()
    assert t.status is TicketStatus.PENDING and t.first_responded_at == pause_start
    (answer,) = desk.mailbox(CLIENT)
    assert "photo of the printer's display" in body(answer)
    assert desk.timers() == []                       # nothing runs while the clock stands still
    assert t.resolution_due_at == due_before         # the last deadline stays shown

    # Two working days pass: the 8 h resolution deadline, its warning and line 1's OLA
    # (14:00) would all have fallen due meanwhile.
    for when in (msk(2026, 11, 23, 18, 30), msk(2026, 11, 24, 12, 0),
                 msk(2026, 11, 25, 10, 30)):
        desk.at(when)
        assert desk.fire() == 0
    pause_end = msk(2026, 11, 25, 10, 30)
    calendar = desk.ctx.settings.sla_policies.get(None).calendar
    paused = calendar.between(pause_start, pause_end)
    assert paused == timedelta(hours=18)             # 7.5 + 9 + 1.5
    for kind in ("sla_breach", "sla_warning", "escalated", "timer_stale"):
        assert desk.events(kind) == [], kind
    t = desk.ticket()
    assert t.breached_at is None and t.line == "line1" and t.status is TicketStatus.PENDING

    desk.client_replies(1000, "Here is what the display says: ERROR 41, paper jam.")
    t = desk.ticket()
    assert t.status is TicketStatus.OPEN
    assert [p[1] is not None for p in t.pauses] == [True]
    # The clock ran 30 min before the pause; 7.5 h remain from Wednesday 10:30.
    assert t.resolution_due_at == msk(2026, 11, 25, 18, 0)
    assert calendar.between(due_before, t.resolution_due_at) == paused
    assert calendar.add(due_before, paused) == t.resolution_due_at
    # Re-armed: the warning at 6.4 h of clock time, the breach, and line 1's OLA, whose
    # 4 h also stood still (30 min before, 3.5 h after).
    assert desk.timers() == [
        ("ola", "due", msk(2026, 11, 25, 14, 0)),
        ("resolution", "warning", msk(2026, 11, 25, 16, 24)),
        ("resolution", "breach", msk(2026, 11, 25, 18, 0)),
    ]
    (update,) = desk.mailbox(LINE1)
    assert about(update).startswith("The client wrote again")

    desk.at(msk(2026, 11, 25, 17, 59, 59))
    desk.fire()
    assert desk.events("sla_breach") == []
    desk.at(msk(2026, 11, 25, 18, 0))
    assert desk.fire() == 1
    (b,) = desk.events("sla_breach")
    assert b.data["deadline"] == "resolution"
    assert desk.ticket().breached_at == msk(2026, 11, 25, 18, 0)
    # Line 1's OLA had moved it to line 2 at 14:00; the breach moves it on to line 3.
    assert desk.ticket().line == "line3"
    (n,) = desk.mailbox(LINE3)
    assert "Why: the resolution deadline passed" in body(n)


# -- 5. reopen, ratings, auto-close ---------------------------------------------------------------
def test_a_client_reply_reopens_a_resolved_ticket_and_it_does_not_close_by_itself(make_desk):
    desk = make_desk()
    desk.client_writes(*PRINTER)
    desk.at(msk(2026, 11, 23, 11, 0))
    desk.agent_replies(1000, "#resolve\nWe replaced the cartridge, it prints again.")
    t = desk.ticket()
    assert t.status is TicketStatus.RESOLVED
    assert desk.timers() == [("auto_close", "due", msk(2026, 11, 30, 11, 0))]

    desk.at(msk(2026, 11, 24, 9, 30))
    desk.client_replies(1000, "Unfortunately it stopped printing again after an hour, "
                              "the same blank receipts as before.")
    t = desk.ticket()
    assert t.status is TicketStatus.OPEN and t.resolved_at is None and t.rating is None
    assert len(desk.events("reopened")) == 1
    assert all(kind != "auto_close" for kind, _, _ in desk.timers())
    # The resolution clock stood still while it was resolved (Mon 11:00 to Tue 09:30, 7.5
    # business hours): 1 h had run, 44 h remain from Tuesday 09:30.
    assert t.resolution_due_at == msk(2026, 11, 30, 17, 30)

    desk.at(msk(2026, 12, 2, 12, 0))                 # well past the 7 days
    desk.fire()
    t = desk.ticket()
    assert t.status is not TicketStatus.CLOSED and t.closed_at is None
    assert not [e for e in desk.events("status") if e.data.get("to") == "closed"]
    with desk.ctx.make_session() as s:
        assert s.scalar(select(TicketTimer).where(TicketTimer.kind == "auto_close",
                                                  TicketTimer.state == TimerState.FIRED)) is None


def test_a_resolved_ticket_closes_after_seven_days_once(make_desk):
    desk = make_desk()
    desk.client_writes(*PRINTER)
    desk.at(msk(2026, 11, 23, 11, 0))
    desk.agent_replies(1000, "#resolve\nThe cartridge is replaced.")
    desk.read_all_mailboxes()
    desk.at(msk(2026, 11, 30, 10, 59, 59))
    assert desk.fire() == 0
    desk.at(msk(2026, 11, 30, 11, 0))
    assert desk.fire() == 1
    t = desk.ticket()
    assert t.status is TicketStatus.CLOSED and t.closed_at == msk(2026, 11, 30, 11, 0)
    (e,) = [e for e in desk.events("status") if e.data.get("to") == "closed"]
    assert e.data["from"] == "resolved" and e.actor is None
    desk.at(msk(2026, 12, 30, 12, 0))
    assert desk.fire() == 0 and desk.timers() == []
    assert desk.mailbox(CLIENT) == []                # closing tells nobody


def test_a_rating_keeps_the_ticket_resolved_and_it_still_closes_after_seven_days(make_desk):
    desk = make_desk()
    desk.client_writes(*PRINTER)
    desk.client_writes("Scale shows wrong weight", "The scale at the till shows +20 g.",
                       sender="olga@shop.example.ru")
    desk.at(msk(2026, 11, 23, 11, 0))
    desk.agent_replies(1000, "#resolve\nThe cartridge is replaced.")
    desk.at(msk(2026, 11, 23, 12, 0))
    desk.agent_replies(1001, "#resolve\nThe scale is calibrated.")
    desk.read_all_mailboxes()

    desk.at(msk(2026, 11, 23, 15, 0))
    desk.client_replies(1000, "5")
    desk.client_replies(1001, "4 - спасибо")
    for number, score in ((1000, 5), (1001, 4)):
        t = desk.ticket(number)
        assert (t.rating, t.status) == (score, TicketStatus.RESOLVED), number
        assert t.rated_at == msk(2026, 11, 23, 15, 0)
    assert [e.data["rating"] for e in desk.events("rated")] == [5, 4]
    assert desk.events("reopened") == []
    rated = desk.mailbox(LINE1)
    assert sorted(about(m).split(" rated the solution ")[1][:6] for m in rated) == \
        ["4 of 5", "5 of 5"]

    # Seven days after each resolution, not after the rating.
    desk.at(msk(2026, 11, 30, 10, 59, 59))
    assert desk.fire() == 0
    desk.at(msk(2026, 11, 30, 11, 0))
    assert desk.fire() == 1
    assert desk.ticket(1000).status is TicketStatus.CLOSED
    assert desk.ticket(1001).status is TicketStatus.RESOLVED
    desk.at(msk(2026, 11, 30, 12, 0))
    assert desk.fire() == 1
    for number in (1000, 1001):
        t = desk.ticket(number)
        assert t.status is TicketStatus.CLOSED and t.rating in (4, 5)
        (e,) = [e for e in desk.events("status", number) if e.data.get("to") == "closed"]
        assert e.data["from"] == "resolved"
    assert desk.mailbox(CLIENT) == []


# -- 6. the timer daemon: stopped, restarted, killed ----------------------------------------------
def write_clock(path: Path, when: datetime) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(when.isoformat(), encoding="utf-8")
    os.replace(tmp, path)                            # a reader never sees half a time


def start_daemon(config_set, clock_file: Path, log: Path, only: str) -> subprocess.Popen:
    env = {**os.environ, "MAILDESK_CLOCK_FILE": str(clock_file)}
    with open(log, "ab") as err:
        proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve", "--only", only],
                                stdout=subprocess.PIPE, stderr=err, env=env)
    line = proc.stdout.readline().decode()
    assert "maildesk serving" in line, log.read_text()
    return proc


def timers_run(config_set, clock_file: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILDESK_CLOCK_FILE": str(clock_file)}
    return subprocess.run([EXE, "--config", str(config_set.path), "timers", "run"], env=env,
                          capture_output=True, timeout=300)


def timer_rows(ctx) -> list[TicketTimer]:
    with ctx.make_session() as s:
        return list(s.scalars(select(TicketTimer).order_by(TicketTimer.id)))


def fired_count(ctx) -> int:
    return sum(t.state is TimerState.FIRED for t in timer_rows(ctx))


# What a fired timer leaves behind (besides `timer_stale` when its reason had gone).
OUTCOMES = {("ola", "due"): [{"escalated"}], ("auto_close", "due"): [{"status"}],
            "warning": [{"sla_warning"}], "breach": [{"sla_breach"}, {"sla_breach", "escalated"}]}


def assert_each_fired_timer_acted_once(ctx) -> Counter:
    """Every fired timer has exactly one outcome, no event names a timer twice, and no timer
    queued more than one notification. Returns the events counted by kind."""
    fired = {t.id: t for t in timer_rows(ctx) if t.state is TimerState.FIRED}
    with ctx.make_session() as s:
        evs = list(s.scalars(select(TicketEvent).where(TicketEvent.kind.in_(
            ["sla_warning", "sla_breach", "escalated", "status", "timer_stale",
             "timer_failed"]))))
        notes = list(s.scalars(select(TicketEvent).where(TicketEvent.kind == "notification")))
    failed = [f"timer {e.data['timer']}: {e.data['error']}" for e in evs
              if e.kind == "timer_failed"]
    assert not failed, "\n".join(failed)
    by_timer = Counter((e.data["timer"], e.kind) for e in evs if "timer" in e.data)
    assert all(n == 1 for n in by_timer.values()), by_timer
    assert {timer for timer, _ in by_timer} == set(fired)
    for tid, t in fired.items():
        kinds = {k for (timer, k) in by_timer if timer == tid}
        allowed = OUTCOMES.get((t.kind, t.stage)) or OUTCOMES[t.stage]
        assert kinds in [*allowed, {"timer_stale"}], (t.kind, t.stage, kinds)
    # A timer's mail names its cause: timer.<id>.<what>; one per timer and what.
    per_timer = Counter(n.data["cause"].split(".")[1] for n in notes
                        if n.data.get("cause", "").startswith("timer."))
    assert all(n == 1 for n in per_timer.values()), per_timer
    assert {int(i) for i in per_timer} <= set(fired)
    return Counter(e.kind for e in evs)


def test_the_timer_daemon_fires_each_timer_once_across_stops_kills_and_restarts(
        config_set, make_desk, tmp_path):
    config_set.write(timers={"interval": "1s"})
    desk = make_desk()
    for i in range(3):
        desk.client_writes(f"Printer {i} does not print", f"Printer number {i} is broken.",
                           sender=f"client{i}@shop.example.ru")
    desk.ctx.engine.dispose()
    clock = tmp_path / "clock"
    log = tmp_path / "serve.log"
    only = "timers,process,outbound"

    def all_sent() -> bool:
        with desk.ctx.make_session() as s:
            return all(o.status is OutboxStatus.SENT for o in s.scalars(select(Outbox)))

    # Monday 16:30: each ticket's OLA (14:00) and first-response warning (16:24) are due.
    write_clock(clock, msk(2026, 11, 23, 16, 30))
    daemon = start_daemon(config_set, clock, log, only)
    try:
        wait_for(lambda: fired_count(desk.ctx) == 6 and all_sent(), "the first sweep", 60)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert len(events(desk.ctx, "sla_warning")) == 3
    assert {desk.ticket(n).line for n in (1000, 1001, 1002)} == {"line2"}

    # Down over 18:00: the first-response breaches fall due while nothing runs; they fire at
    # the start. Then, running, the clock moves on to Friday: the resolution warnings.
    write_clock(clock, msk(2026, 11, 23, 18, 30))
    assert fired_count(desk.ctx) == 6
    daemon = start_daemon(config_set, clock, log, only)
    try:
        wait_for(lambda: len(events(desk.ctx, "sla_breach")) == 3, "the breaches after restart",
                 60)
        assert {desk.ticket(n).line for n in (1000, 1001, 1002)} == {"line3"}
        write_clock(clock, msk(2026, 11, 27, 10, 30))
        wait_for(lambda: fired_count(desk.ctx) == 12 and all_sent(), "the resolution warnings",
                 60)
        daemon.send_signal(signal.SIGKILL)       # a crash, no goodbye
        daemon.wait(60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

    # From cron instead: the resolution breaches (Monday 30th 10:00) fire once, then nothing.
    write_clock(clock, msk(2026, 11, 30, 10, 30))
    first = timers_run(config_set, clock)
    assert first.returncode == 0, first.stderr.decode()
    assert first.stdout.decode().strip() == "3 timers fired"
    again = timers_run(config_set, clock)
    assert again.returncode == 0 and again.stdout.decode().strip() == "0 timers fired"

    outcomes = assert_each_fired_timer_acted_once(desk.ctx)
    assert fired_count(desk.ctx) == 15                  # 5 per ticket
    assert outcomes["sla_warning"] == 6 and outcomes["sla_breach"] == 6
    assert outcomes["escalated"] == 9 and outcomes["timer_stale"] == 0
    for n in (1000, 1001, 1002):
        t = desk.ticket(n)
        assert t.line == "vendor" and t.breached_at == msk(2026, 11, 23, 18, 30)
    # Per ticket: new, OLA move, warning, breach move, warning, breach move; each sent once.
    with desk.ctx.make_session() as s:
        notes = list(s.scalars(select(Outbox).where(Outbox.kind == "notification")))
    assert len(notes) == 18
    per_ticket = Counter(o.ticket_id for o in notes)
    assert sorted(per_ticket.values()) == [6, 6, 6]
    delivered = [email.message_from_bytes(p.read_bytes(), policy=policy.default)["Message-ID"]
                 .strip("<>") for p in (Path(desk.ctx.settings.outbound.maildir) / "new").iterdir()]
    sent = {o.message_id for o in notes if o.status is OutboxStatus.SENT}
    assert len(sent) == 15                    # the last 3 (from `timers run`) wait for delivery
    assert Counter(m for m in delivered if m in sent) == Counter({m: 1 for m in sent})


# -- 7. two timer processes on one PostgreSQL database --------------------------------------------
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_timer_processes_fire_every_due_timer_exactly_once(config_set, make_desk, tmp_path):
    """A P3 ticket opened at 10:00 on each of 60 working days in a row; a month after the last
    one, two `timers run` race over all 300 timers at once. Sorted by due time the tickets'
    timers interleave (a ticket's resolution timers come days after the next tickets' own),
    so each sweeper's batches of 200 reach into tickets the other one is working on. One of
    the two is killed in the middle; the next run picks up what it left."""
    desk = make_desk()
    calendar = desk.ctx.settings.sla_policies.get(None).calendar
    count, day, arrivals = 60, MONDAY, []
    for i in range(count):
        sender = f"client{i}@shop{i % 7}.example.ru"
        store_one(desk.ctx.make_session, Arrival(
            data=mail(sender, SUPPORT, f"Printer {i} is broken",
                      f"Printer number {i} prints nothing.", day),
            channel=Channel.PIPE, received_at=day.astimezone(timezone.utc), mail_from=sender,
            rcpt_to=(SUPPORT,)))
        arrivals.append(day)
        day = calendar.next_working(day + timedelta(days=1)).astimezone(MSK) \
            .replace(hour=10, minute=0)
    desk.at(arrivals[-1])
    outcomes = desk.processor.drain()
    assert len(outcomes) == count and {o.status for o in outcomes} == {"done"}
    with desk.ctx.make_session() as s:
        assert [t.created_at for t in s.scalars(select(Ticket).order_by(Ticket.number))] == \
            arrivals
    desk.ctx.engine.dispose()

    # Per ticket five timers fall due: the OLA (to line 2), the first-response warning (stale:
    # its deadline is long gone), the breach (to line 3), the resolution warning (stale) and
    # breach (to the vendor). Line 2's own OLA is cancelled by the move to line 3.
    now = arrivals[-1] + timedelta(days=30)
    clock = tmp_path / "clock"
    write_clock(clock, now)
    env = {**os.environ, "MAILDESK_CLOCK_FILE": str(clock)}
    procs = [subprocess.Popen([EXE, "--config", str(config_set.path), "timers", "run"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    # Once the first batch is committed, one of them dies where it stands (a batch of its
    # own in flight, most likely): what it had claimed rolls back and stays pending.
    wait_for(lambda: fired_count(desk.ctx) > 0, "a first committed batch", 120)
    procs[1].kill()
    out, err = procs[0].communicate(timeout=300)
    procs[1].communicate(timeout=60)
    assert procs[0].returncode == 0, err.decode()
    assert out.decode().endswith(" timers fired\n")
    # The next run (cron a minute later) fires what is left, then nothing is.
    rest = timers_run(config_set, clock)
    assert rest.returncode == 0, rest.stderr.decode()
    assert timers_run(config_set, clock).stdout.decode().strip() == "0 timers fired"
    assert fired_count(desk.ctx) == 5 * count

    outcomes = assert_each_fired_timer_acted_once(desk.ctx)
    assert outcomes["sla_breach"] == 2 * count and outcomes["escalated"] == 3 * count
    assert outcomes["timer_stale"] == 2 * count and outcomes["sla_warning"] == 0
    with desk.ctx.make_session() as s:
        rows = list(s.scalars(select(Ticket)))
        notes = Counter(o.ticket_id for o in s.scalars(
            select(Outbox).where(Outbox.kind == "notification")))
        due = list(s.scalars(select(TicketTimer).where(TicketTimer.state == TimerState.PENDING,
                                                      TicketTimer.due_at <= now)))
        moves = list(s.scalars(select(TicketEvent).where(TicketEvent.kind == "escalated")
                               .order_by(TicketEvent.ticket_id, TicketEvent.id)))
    assert due == []
    # Each ticket as one sweeper alone would leave it, its moves in the order they were due.
    assert {t.line for t in rows} == {"vendor"}
    assert all(t.breached_at == now for t in rows)
    assert set(notes.values()) == {4}            # new, and one per move
    by_ticket: dict[int, list[tuple[str, str]]] = {}
    for e in moves:
        by_ticket.setdefault(e.ticket_id, []).append((e.data["from"], e.data["to"]))
    assert set(map(tuple, by_ticket.values())) == \
        {(("line1", "line2"), ("line2", "line3"), ("line3", "vendor"))}
