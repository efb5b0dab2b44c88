"""The timers a ticket needs, from its state (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from maildesk.config.model import Line
from maildesk.db.models import TicketStatus
from maildesk.sla.calendar import calendar_from_config
from maildesk.sla.policy import policies_from_sla
from maildesk.sla.schedule import SlaState, due_after, schedule

MOSCOW = calendar_from_config("moscow", {
    "timezone": "Europe/Moscow",
    "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "RU"}})
POLICIES = policies_from_sla({"policies": {"standard": {"calendar": "moscow", "targets": {
    "P3": {"first_response": "8h", "next_response": "4h", "resolution": "5d"}}}},
    "default_policy": "standard"}, {"moscow": MOSCOW})
LINES = {"line1": Line(id="line1", name="Line 1", mailbox="line1@example.com", agents=(),
                       next="line2", ola=timedelta(hours=4), ola_text="4h")}
MON_10 = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)       # 10:00 in Moscow


def kinds(plan) -> set[tuple[str, str]]:
    return {(t.kind, t.stage) for t in plan.timers}


def test_a_new_ticket_needs_warnings_breaches_and_its_lines_ola():
    plan = schedule(SlaState(TicketStatus.NEW, "P3", None, "line1", MON_10,
                             line_entered_at=MON_10),
                    policies=POLICIES, lines=LINES, close_after=timedelta(days=7))
    assert kinds(plan) == {("first_response", "warning"), ("first_response", "breach"),
                           ("resolution", "warning"), ("resolution", "breach"), ("ola", "due")}
    assert plan.first_response == datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)  # 18:00
    due = {(t.kind, t.stage): t.due_at for t in plan.timers}
    assert due[("ola", "due")] == MON_10 + timedelta(hours=4)
    # 80% of 8 business hours = 6:24 -> Monday 16:24 Moscow.
    assert due[("first_response", "warning")] == datetime(2026, 11, 23, 13, 24,
                                                          tzinfo=timezone.utc)


def test_the_next_response_clock_runs_from_the_clients_follow_up_until_the_answer():
    follow_up = MON_10 + timedelta(hours=2)
    state = SlaState(TicketStatus.OPEN, "P3", None, "line1", MON_10, line_entered_at=MON_10,
                     first_responded_at=MON_10 + timedelta(hours=1),
                     next_response_since=follow_up)
    plan = schedule(state, policies=POLICIES, lines=LINES, close_after=None)
    assert ("next_response", "breach") in kinds(plan)
    assert ("first_response", "breach") not in kinds(plan)      # answered already
    assert plan.next_response == follow_up + timedelta(hours=4)
    answered = schedule(SlaState(TicketStatus.OPEN, "P3", None, "line1", MON_10,
                                 line_entered_at=MON_10, first_responded_at=follow_up),
                        policies=POLICIES, lines=LINES, close_after=None)
    assert ("next_response", "breach") not in kinds(answered)


def test_fired_timers_are_not_scheduled_again_and_a_pause_stops_everything():
    state = SlaState(TicketStatus.NEW, "P3", None, "line1", MON_10, line_entered_at=MON_10)
    fired = frozenset({("first_response", "warning", ""), ("ola", "due",
                                                           f"line1@{MON_10.isoformat()}")})
    plan = schedule(state, policies=POLICIES, lines=LINES, close_after=None, fired=fired)
    assert ("first_response", "warning") not in kinds(plan) and ("ola", "due") not in kinds(plan)
    pending = SlaState(TicketStatus.PENDING, "P3", None, "line1", MON_10,
                       line_entered_at=MON_10, pauses=((MON_10 + timedelta(hours=1), None),))
    plan = schedule(pending, policies=POLICIES, lines=LINES, close_after=None)
    assert plan.timers == () and plan.paused


def test_a_deadline_moves_by_the_business_time_of_a_pause():
    start = MON_10
    pause = (MON_10 + timedelta(hours=1), MON_10 + timedelta(days=2))   # Mon 11:00 - Wed 10:00
    plain = due_after(timedelta(hours=8), True, MOSCOW, start, ())
    paused = due_after(timedelta(hours=8), True, MOSCOW, start, (pause,))
    assert MOSCOW.between(plain, paused) == MOSCOW.between(*pause)     # 7 + 9 + 1 = 17 hours
    assert MOSCOW.between(*pause) == timedelta(hours=17)
    assert due_after(timedelta(hours=8), True, MOSCOW, start, ((pause[0], None),)) is None


def test_a_resolved_ticket_needs_only_its_auto_close():
    resolved = MON_10 + timedelta(hours=3)
    plan = schedule(SlaState(TicketStatus.RESOLVED, "P3", None, "line1", MON_10,
                             line_entered_at=MON_10, resolved_at=resolved,
                             pauses=((resolved, None),)),
                    policies=POLICIES, lines=LINES, close_after=timedelta(days=7))
    assert [(t.kind, t.due_at) for t in plan.timers] == [("auto_close",
                                                          resolved + timedelta(days=7))]
