"""What a timer that fell due does to its ticket. Pure: effects/timers.py applies it.

A timer whose reason has gone (the first answer went out, the ticket left the line, it was
reopened before closing) is stale and does nothing; `rearm` normally cancels those first, so
this check only guards against a change and a sweep crossing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from maildesk.domain import TicketStatus
from maildesk.sla.schedule import RUNNING, SlaState

if TYPE_CHECKING:  # a type only: config builds on sla, not the other way round
    from maildesk.config.model import Line


@dataclass(frozen=True)
class TimerAction:
    stale: bool = False
    warn: bool = False                 # tell the line a deadline is near
    breach: str | None = None          # the deadline that was missed
    escalate_to: str | None = None     # move the ticket to this line
    tell_lead: str | None = None       # tell this address (the line's lead)
    close: bool = False
    reason: str = ""


STALE = TimerAction(stale=True)


def decide(kind: str, stage: str, data: Mapping[str, Any], state: SlaState,
           lines: Mapping[str, Line], now: datetime) -> TimerAction:
    if kind == "auto_close":
        return _auto_close(state)
    if state.status not in RUNNING:
        return STALE
    line = lines.get(state.line or "")
    if kind == "ola":
        return _ola(data, state, line)
    if _answered(kind, data, state):
        return STALE
    if stage == "warning":
        return _warning(data, now)
    return _breach(kind, line)


def _auto_close(state: SlaState) -> TimerAction:
    """Close a ticket that is still resolved; one reopened or closed since is left alone."""
    if state.status is TicketStatus.RESOLVED:
        return TimerAction(close=True, reason="resolved, no reply since")
    return STALE


def _ola(data: Mapping[str, Any], state: SlaState, line: Line | None) -> TimerAction:
    """Too long on a line: move on, unless the ticket has left the line since."""
    if data.get("line") != state.line:
        return STALE
    return _move(line, f"longer than the OLA of {state.line}", prefer_next=True)


def _answered(kind: str, data: Mapping[str, Any], state: SlaState) -> bool:
    """The response the deadline waited for has gone out (for next_response: the follow-up
    it was set for has been answered, or a newer one has its own deadline)."""
    if kind == "first_response":
        return state.first_responded_at is not None
    if kind == "next_response":
        return (state.next_response_since is None
                or data.get("key") != state.next_response_since.isoformat())
    return False


def _warning(data: Mapping[str, Any], now: datetime) -> TimerAction:
    # Caught up after a stop: the deadline itself has passed, its breach says more.
    due = data.get("due")
    if due and datetime.fromisoformat(due) <= now:
        return STALE
    return TimerAction(warn=True)


def _breach(kind: str, line: Line | None) -> TimerAction:
    """A missed deadline: escalate when the line says so (and has a next line), else tell
    its lead."""
    missed = kind.replace("_", " ")
    action = _move(line, f"the {missed} deadline passed",
                   prefer_next=line is not None and line.on_breach == "escalate")
    return TimerAction(breach=kind, escalate_to=action.escalate_to, tell_lead=action.tell_lead,
                       reason=action.reason)


def _move(line: Line | None, reason: str, *, prefer_next: bool) -> TimerAction:
    """Escalate to the next line, or tell the lead; with neither, the line itself is told."""
    if line is not None and prefer_next and line.next:
        return TimerAction(escalate_to=line.next, reason=reason)
    if line is not None and line.lead:
        return TimerAction(tell_lead=line.lead, reason=reason)
    return TimerAction(reason=reason)
