"""SQL conditions on tickets that several readers share (pure expressions, no session).

`overdue` is the one definition of an overdue ticket: `tickets list --overdue` filters on it,
`tickets show` says the same of each deadline, and the KPI report counts it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from maildesk.db.models import Ticket, TicketStatus

# The statuses in which the SLA clock runs: a pending ticket's clock stands still.
RUNNING = (TicketStatus.NEW, TicketStatus.OPEN)


def overdue(now: datetime) -> ColumnElement[bool]:
    """Running (not pending: its clock stands still) and past a deadline it has not met: the
    first response (none given yet), the resolution, or the answer to a client's follow-up.
    The status test runs on ix_ticket_status_number."""
    return and_(Ticket.status.in_(RUNNING), or_(
        and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at < now),
        Ticket.resolution_due_at < now, Ticket.next_response_due_at < now))
