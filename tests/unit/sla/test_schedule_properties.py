"""schedule() and decide() on generated ticket states: what holds for any of them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from maildesk.config.model import Line
from maildesk.domain import TicketStatus
from maildesk.sla.calendar import calendar_from_config
from maildesk.sla.policy import policies_from_sla
from maildesk.sla.schedule import RUNNING, SlaState, schedule
from maildesk.sla.timers import decide

OFFICE = calendar_from_config("office", {
    "timezone": "Europe/Moscow",
    "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}})
POLICIES = policies_from_sla({"policies": {
    "standard": {"calendar": "office", "targets": {
        "P3": {"first_response": "8h", "next_response": "4h", "resolution": "5d"},
        "P1": {"first_response": {"calendar": "1h"}, "resolution": {"calendar": "1d"}}}},
    "round_the_clock": {"targets": {"P3": {"first_response": "2h"}}, "warn_at": "none"}},
    "default_policy": "standard"}, {"office": OFFICE})
LINES = {
    "line1": Line(id="line1", name="Line 1", mailbox="l1@example.com", next="line2",
                  ola=timedelta(hours=4), ola_text="4h", lead="lead1@example.com"),
    "line2": Line(id="line2", name="Line 2", mailbox="l2@example.com", on_breach="tell",
                  lead="lead2@example.com"),
}
START = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)     # Monday 10:00 in Moscow
times = st.integers(0, 240).map(lambda h: START + timedelta(hours=h))
pauses = st.lists(st.tuples(times, st.none() | times), max_size=3).map(
    lambda ps: tuple(sorted(ps, key=lambda p: p[0])))
states = st.builds(
    SlaState, status=st.sampled_from(list(TicketStatus)),
    priority=st.sampled_from([None, "P1", "P3"]),
    policy=st.sampled_from([None, "standard", "round_the_clock", "unknown"]),
    line=st.sampled_from([None, "line1", "line2", "gone"]), created_at=times,
    line_entered_at=st.none() | times, first_responded_at=st.none() | times,
    next_response_since=st.none() | times, resolved_at=st.none() | times, pauses=pauses)
KINDS = ("first_response", "next_response", "resolution", "ola", "auto_close")
close_afters = st.none() | st.sampled_from([timedelta(0), timedelta(days=7)])


@settings(max_examples=200, deadline=None)
@given(states, close_afters)
def test_timers_fit_the_state(state, close_after):
    plan = schedule(state, policies=POLICIES, lines=LINES, close_after=close_after)
    assert plan.paused == (bool(state.pauses) and state.pauses[-1][1] is None)
    for timer in plan.timers:
        assert timer.kind in KINDS
        if timer.kind == "auto_close":
            assert state.status is TicketStatus.RESOLVED
        else:
            assert state.status in RUNNING       # a stopped clock sets no deadline timer
    breach = {(t.kind, t.key): t.due_at for t in plan.timers if t.stage == "breach"}
    for timer in plan.timers:
        if timer.stage == "warning":
            assert timer.due_at < breach[(timer.kind, timer.key)]


@settings(max_examples=200, deadline=None)
@given(states, close_afters)
def test_what_fired_is_never_scheduled_again(state, close_after):
    plan = schedule(state, policies=POLICIES, lines=LINES, close_after=close_after)
    fired = frozenset((t.kind, t.stage, t.key) for t in plan.timers)
    again = schedule(state, policies=POLICIES, lines=LINES, close_after=close_after, fired=fired)
    assert again.timers == ()
    assert (again.first_response, again.resolution, again.next_response) == \
        (plan.first_response, plan.resolution, plan.next_response)


@settings(max_examples=200, deadline=None)
@given(states, close_afters, times)
def test_a_timer_scheduled_for_a_state_is_acted_on_in_it(state, close_after, now):
    # A timer armed for this very state is not stale (but for a warning caught up by its due).
    plan = schedule(state, policies=POLICIES, lines=LINES, close_after=close_after)
    for timer in plan.timers:
        data = {**timer.data, "key": timer.key}
        action = decide(timer.kind, timer.stage, data, state, LINES, now)
        if timer.stage == "warning" and datetime.fromisoformat(data["due"]) <= now:
            assert action.stale
        else:
            assert not action.stale
            assert action.warn == (timer.stage == "warning")
            assert action.close == (timer.kind == "auto_close")
