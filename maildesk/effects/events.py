"""What a cause writes besides its ticket, gathered as rows and written at its end.

The mails it records (with their attachments, references and search entries), new
participants, outgoing mail, new timers and ticket events: rows nothing reads back from the
database while the cause runs (what does read them, a line notification's history, gets the
gathered ones from here). Gathered in the order they happen, each table's go in as one
executemany (the same ids in the same order as row by row), after one flush of the ORM objects
(the ticket, new or changed: these rows name it). Their own ids are drawn in advance where
other rows name them (db/ids.py). Whoever gathers rows writes them before the cause's
transaction (or savepoint) ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from maildesk.db.models import (Attachment, Message, MessageReference, Outbox, Participant,
                                SearchEntry, TicketEvent, TicketTimer)

EventRows = list[dict[str, Any]]
Rows = list[dict[str, Any]]

# On the tables (Core): every row of one has the same columns, one executemany, and none of
# the ORM's unit of work (several times the cost of the statement). Parents first.
_INSERTS = tuple(insert(model.__table__) for model in (   # type: ignore[attr-defined]
    Message, Attachment, SearchEntry, MessageReference, Participant, Outbox, TicketTimer,
    TicketEvent))


def event_row(ticket_id: int, at: datetime, kind: str, actor: str | None,
              data: dict[str, Any]) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "at": at, "kind": kind, "actor": actor, "data": data}


@dataclass
class Gathered:
    """One cause's rows, until `write`."""

    messages: Rows = field(default_factory=list)
    attachments: Rows = field(default_factory=list)
    search: Rows = field(default_factory=list)
    references: Rows = field(default_factory=list)
    participants: Rows = field(default_factory=list)
    outbox: Rows = field(default_factory=list)
    timers: Rows = field(default_factory=list)
    events: EventRows = field(default_factory=list)

    def write(self, session: Session) -> None:
        """Flush what is pending (the rows' ticket), insert the gathered rows, forget them."""
        batches = (self.messages, self.attachments, self.search, self.references,
                   self.participants, self.outbox, self.timers, self.events)
        session.flush()
        if not any(batches):
            return
        conn = session.connection()
        for statement, rows in zip(_INSERTS, batches):
            if rows:
                conn.execute(statement, rows)
                rows.clear()

    def messages_of(self, ticket_id: int) -> Rows:
        """The mails this cause records on the ticket and has not written yet."""
        return [m for m in self.messages if m["ticket_id"] == ticket_id]
