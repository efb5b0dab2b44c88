"""The words every layer shares, at the bottom of the house: imports nothing of maildesk.

So far: what threading knows of a ticket (`TicketFacts`), read by db/queries.py and decided
on by pipeline/thread.py. The statuses, roles and event kinds that still live in db/models.py
belong here too (issue 18).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TicketFacts:
    """A ticket as threading sees it: whether the sender takes part, how recent it is."""

    id: int
    number: int
    status: str
    reply_token: str
    participants: frozenset[str]
    last_activity_at: datetime
