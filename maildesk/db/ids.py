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
What the draw did not foresee takes one statement each. A mail that opens a ticket may take
ids drawn earlier, with its batch's read ahead (`draw_ahead_select`): nobody else adds rows to
a ticket before it is committed. A mail that joins a ticket takes those drawn by the statement
that locked it (`drawn_with`), once the lock was held.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, literal, null, select, text, union_all
from sqlalchemy.orm import Session

_KEY = "maildesk.next_ids"   # session.info: {table name: [transaction, the next row's id]}
_POOL = "maildesk.drawn_ids"  # session.info (PostgreSQL): {table name: [ids drawn, unused]}
_NEXTVAL = text("SELECT nextval(pg_get_serial_sequence(:table, 'id'))")
_DRAW = text(" UNION ALL ".join(
    f"SELECT '{t}', nextval(pg_get_serial_sequence('{t}', 'id')) "
    f"FROM generate_series(1, :{t})" for t in ("ticket", "message", "outbox")))


def draw_ids(session: Session, *, ticket: int = 0, message: int = 0, outbox: int = 0,
             inbound_id: int | None = None) -> None:
    """PostgreSQL: draw ids for the rows about to be made, in one statement (SQLite: nothing
    to do, it counts); a mail that opens a ticket takes those drawn ahead for it, if any."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return
    wanted = (("ticket", ticket), ("message", message), ("outbox", outbox))
    if inbound_id is not None:
        ahead = session.info.get(_AHEAD, {}).pop(inbound_id, None)
        locked = session.info.get(_UNDER_LOCK, {}).pop(inbound_id, None)
        # Drawn before: only for a ticket this mail opens; drawn with its ticket's lock: for
        # the ticket it joins.
        pool = ahead if ticket else locked
        if pool is not None and all(len(pool.get(t, ())) >= n for t, n in wanted):
            session.info[_POOL] = pool
            return
    pool: dict[str, list[int]] = {"ticket": [], "message": [], "outbox": []}
    for table, value in conn.execute(_DRAW, {"ticket": ticket, "message": message,
                                             "outbox": outbox}):
        pool[table].append(int(value))
    for ids in pool.values():
        ids.sort(reverse=True)   # popped from the end: lowest first
    session.info[_POOL] = pool


# PostgreSQL: ids drawn for a mail before its turn (process/contention.py reads ahead for the
# mails a batch has parsed, and draws their ids in the same statement), by inbound id. Only a
# mail that opens a ticket takes them: no other processor adds rows to a ticket that is not
# committed yet, so its ids may be drawn early; a mail that joins a ticket draws its own while
# it holds the ticket's lock (see the module's docstring).
_AHEAD = "maildesk.ids_drawn_ahead"
AHEAD_COUNTS = {"ticket": 1, "message": 2, "outbox": 2}   # per mail, as `draw_ids` below


def draw_ahead_select(mails: str) -> Any:
    """The rows ('ids:TABLE', id, NULL) of AHEAD_COUNTS ids per mail for `mails` mails (the
    bound parameter of that name), to go in a UNION ALL with other reads."""
    return union_all(*(
        select(literal(f"ids:{table}"), func.nextval(func.pg_get_serial_sequence(table, "id")),
               null())
        .select_from(func.generate_series(1, bindparam(mails) * count))
        for table, count in AHEAD_COUNTS.items()))


def keep_drawn_ahead(session: Session, inbound_ids: list[int],
                     drawn: dict[str, list[int]]) -> None:
    """Hand the ids of `draw_ahead_select` out to `inbound_ids`, in order."""
    kept = session.info.setdefault(_AHEAD, {})
    for table in drawn:
        drawn[table].sort()
    for n, inbound_id in enumerate(inbound_ids):
        kept[inbound_id] = {table: sorted(drawn[table][n * count:(n + 1) * count], reverse=True)
                            for table, count in AHEAD_COUNTS.items()}


# PostgreSQL: ids drawn by the statement that locks the ticket a mail joins (process/
# contention.py), after the lock is held, by inbound id: what `draw_ids` would draw then.
_UNDER_LOCK = "maildesk.ids_drawn_under_lock"
JOIN_COUNTS = {"message": 2, "outbox": 2}


def drawn_with(row_exists: Any) -> list[Any]:
    """Columns ('ids_message', 'ids_outbox': arrays of JOIN_COUNTS ids) to add to the
    statement that locks a ticket: drawn for each row it returns, once `row_exists` (a
    condition on that row) holds, i.e. after the row is locked."""
    return [select(func.array_agg(func.nextval(func.pg_get_serial_sequence(table, "id"))))
            .select_from(func.generate_series(1, count)).where(row_exists)
            .scalar_subquery().label(f"ids_{table}")
            for table, count in JOIN_COUNTS.items()]


def keep_drawn_under_lock(session: Session, inbound_id: int,
                          drawn: dict[str, list[int] | None]) -> None:
    """Hand the ids of `drawn_with` to the mail `inbound_id` (its `draw_ids`)."""
    session.info.setdefault(_UNDER_LOCK, {})[inbound_id] = {
        "ticket": [], **{t: sorted(ids or (), reverse=True) for t, ids in drawn.items()}}


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
