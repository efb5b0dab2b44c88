"""A cause's ticket events, gathered and written in one statement.

As ORM objects each event was an INSERT of its own (with RETURNING, for an id nothing reads);
gathered as rows, in the order they happen, they go in as one executemany, with the same ids
in the same order. Whoever gathers them writes them before the cause's transaction (or
savepoint) ends; nothing in between reads the events of the cause.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from maildesk.db.models import TicketEvent

EventRows = list[dict[str, Any]]

# On the table (Core): every row has the same columns, one executemany, and none of the ORM's
# bulk machinery (half the cost of the statement).
_INSERT = insert(TicketEvent.__table__)


def event_row(ticket_id: int, at: datetime, kind: str, actor: str | None,
              data: dict[str, Any]) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "at": at, "kind": kind, "actor": actor, "data": data}


def write_events(session: Session, rows: EventRows) -> None:
    """Insert the gathered rows (oldest first) and forget them. They need nothing pending
    (their ticket has its id), so no flush first: what is pending goes in the caller's next."""
    if rows:
        with session.no_autoflush:
            session.execute(_INSERT, rows)
        rows.clear()
