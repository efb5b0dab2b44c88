"""Ids of new rows, known before their INSERT.

A row whose id is known need not be flushed on its own to learn it: the rows that name it
(a ticket's message, a message's search entry, an outbox row's signed return path) are made at
once, and everything one mail writes goes in at the end, a table at a time
(effects/events.py).

SQLite: a rowid table gives a new row max(id) + 1, and a write transaction is the only writer:
max(id) is read once per transaction and table and counted on from. Every row of these tables
that processing and the timers make draws its id here (a row inserted beside the count would
take an id the count hands out later). A savepoint rolled back leaves a gap, nothing worse.

PostgreSQL: the table's sequence, shared with the other processors. A mail's applier draws
what it will likely need in one statement first (`draw_ids`: a ticket when it opens one, two
messages, two outgoing mails) and lets what is left go at its end (`release_ids`): the ids a
ticket's rows get still grow with time, as the mail is applied while its ticket is locked.
What the draw did not foresee takes one statement each.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

_KEY = "maildesk.next_ids"   # session.info: {table name: [transaction, the next row's id]}
_POOL = "maildesk.drawn_ids"  # session.info (PostgreSQL): {table name: [ids drawn, unused]}
_NEXTVAL = text("SELECT nextval(pg_get_serial_sequence(:table, 'id'))")
_DRAW = text(" UNION ALL ".join(
    f"SELECT '{t}', nextval(pg_get_serial_sequence('{t}', 'id')) "
    f"FROM generate_series(1, :{t})" for t in ("ticket", "message", "outbox")))


def draw_ids(session: Session, *, ticket: int = 0, message: int = 0, outbox: int = 0) -> None:
    """PostgreSQL: draw ids for the rows about to be made, in one statement (SQLite: nothing
    to do, it counts)."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return
    pool: dict[str, list[int]] = {"ticket": [], "message": [], "outbox": []}
    for table, value in conn.execute(_DRAW, {"ticket": ticket, "message": message,
                                             "outbox": outbox}):
        pool[table].append(int(value))
    for ids in pool.values():
        ids.sort(reverse=True)   # popped from the end: lowest first
    session.info[_POOL] = pool


def release_ids(session: Session) -> None:
    """Forget ids drawn and not used (a gap in the sequence, nothing worse)."""
    session.info.pop(_POOL, None)


def new_id(session: Session, model: type) -> int:
    """The id for the next row of `model`'s table."""
    table = model.__table__   # type: ignore[attr-defined]
    conn = session.connection()   # (begins the transaction, if need be)
    if conn.dialect.name == "postgresql":
        drawn = session.info.get(_POOL, {}).get(table.name)
        if drawn:
            return drawn.pop()
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
