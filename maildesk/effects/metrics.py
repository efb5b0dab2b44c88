"""KPI facts written when they happen, in the caller's transaction (see Ticket in
db/models.py): the report then aggregates plain columns in SQL.

Two measures of every wait: calendar seconds (the wall clock), and the SLA clock (business
time of the ticket's policy calendar, with the time the ticket stood `pending` or `resolved`
left out) — the clock its deadlines are counted on.
"""

from __future__ import annotations

from datetime import datetime

from maildesk.config.model import Settings
from maildesk.db.models import Ticket
from maildesk.effects.lifecycle import sla_state
from maildesk.sla.schedule import clock_elapsed


def waited(ticket: Ticket, settings: Settings, since: datetime, now: datetime) -> tuple[int, int]:
    """Calendar and SLA-clock seconds from `since` to `now` on this ticket."""
    state = sla_state(ticket)
    policy = settings.sla_policies.get(ticket.sla_policy)
    calendar = None if policy is None or policy.calendar.always else policy.calendar
    clock = clock_elapsed(calendar, since, now, state.pauses)
    return max(0, round((now - since).total_seconds())), round(clock.total_seconds())


def record_response(ticket: Ticket, settings: Settings, now: datetime,
                    agent: str | None) -> None:
    """An agent answered the client. Counted when the client was waiting: for the first
    answer (since the creation) or for an answer to a follow-up (since the follow-up); call it
    before the waiting marks (first_responded_at, next_response_since) are updated."""
    first = ticket.first_responded_at is None
    since = ticket.created_at if first else ticket.next_response_since
    if since is None:
        return   # nobody waited: a second answer, a note to the client
    seconds, clock = waited(ticket, settings, since, now)
    ticket.response_count = (ticket.response_count or 0) + 1
    ticket.response_s = (ticket.response_s or 0) + seconds
    ticket.response_bs = (ticket.response_bs or 0) + clock
    if first:
        ticket.first_response_by = agent
        ticket.first_response_s, ticket.first_response_bs = seconds, clock


def record_resolution(ticket: Ticket, settings: Settings, now: datetime,
                      agent: str | None) -> None:
    """The ticket was resolved (or closed without being resolved first): the handling time
    runs from the creation to the latest resolution. Call it after the status change, so the
    pause it opened is not counted."""
    ticket.resolved_by = agent
    ticket.handling_s, ticket.handling_bs = waited(ticket, settings, ticket.created_at, now)
