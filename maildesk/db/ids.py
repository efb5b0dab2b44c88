"""Ids of new rows, known before their INSERT.

A row whose id is known need not be flushed on its own to learn it: the rows that name it
(a ticket's message, a message's search entry, an outbox row's signed return path) are made at
once, and everything one mail writes goes in at the end, a table at a time
(effects/events.py).

SQLite: a rowid table gives a new row max(id) + 1, and a write transaction is the only writer:
max(id) is read once per transaction and table and counted on from. Every row of these tables
that processing and the timers make draws its id here (a row inserted beside the count would
take an id the count hands out later). A savepoint rolled back leaves a gap, nothing worse.

PostgreSQL: the table's sequence, shared with the other processors (one statement, as the
INSERT ... RETURNING it replaces).
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

_KEY = "maildesk.next_ids"   # session.info: {table name: [transaction, the next row's id]}
_NEXTVAL = text("SELECT nextval(pg_get_serial_sequence(:table, 'id'))")


def new_id(session: Session, model: type) -> int:
    """The id for the next row of `model`'s table."""
    table = model.__table__   # type: ignore[attr-defined]
    conn = session.connection()   # (begins the transaction, if need be)
    if conn.dialect.name == "postgresql":
        return int(conn.execute(_NEXTVAL, {"table": table.name}).scalar_one())
    transaction = session.get_transaction()
    counters = session.info.setdefault(_KEY, {})
    held = counters.get(table.name)
    if held is None or held[0] is not transaction:
        top = conn.execute(select(func.max(table.c.id))).scalar()
        held = counters[table.name] = [transaction, (top or 0) + 1]
    predicted = held[1]
    held[1] += 1
    return int(predicted)
