"""What a cause writes, gathered and written at its end by Core, not by the ORM's flush.

Its ticket (new: one INSERT of every column; loaded: one UPDATE of what changed), the end state
of the mail behind it, the mails it records (with their attachments, references and search
entries), new participants, outgoing mail, new timers and ticket events: rows nothing reads back
from the database while the cause runs (what does read them, a line notification's history,
gets the gathered ones from here). Gathered in the order they happen, each table's go in as one
executemany on SQLite (the same ids in the same order as row by row), the ticket first: these
rows name it; on PostgreSQL the ticket and all the tables' rows as one statement
(db/onestatement.py). Their own ids are drawn in advance where other rows name them (db/ids.py). Whoever gathers
rows writes them before the cause's transaction (or savepoint) ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table, Update, bindparam, insert, inspect, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from maildesk.db.models import (Attachment, Inbound, Message, MessageReference, Outbox,
                                Participant, SearchEntry, Ticket, TicketEvent, TicketTimer)
from maildesk.db.onestatement import RowTemplate, insert_template, update_template, write_all
from maildesk.db.queries import numbers_in_batch, write_numbers

EventRows = list[dict[str, Any]]
Rows = list[dict[str, Any]]

class _Inserting:
    """The INSERT of one table's gathered rows (all with the same columns), as one executemany
    (PostgreSQL: one multi-row INSERT, db/onestatement.py) of the statement compiled once per
    dialect and set of columns, its values converted by
    the columns' own bind processors: SQLAlchemy's work per statement (compiling the
    parameters column by column, for each execution) cost more than SQLite's for these small
    rows. Through `exec_driver_sql`, so its events and error handling are those of any
    statement. Rows that leave out a column with a default go in by Core (it fills them)."""

    def __init__(self, table: Table):
        self.table = table
        self.statement = insert(table)
        self._prepared: dict[tuple[str, tuple[str, ...]], _Prepared | None] = {}

    def __call__(self, conn: Connection, rows: Rows) -> None:
        keys = tuple(rows[0])
        dialect = conn.dialect
        prepared = self._prepared_for(dialect, keys)
        if prepared is None:
            conn.execute(self.statement, rows)
            return
        if dialect.name == "postgresql":   # multi-row VALUES, one statement (onestatement.py)
            write_all(conn, [(insert_template(self.table, keys, dialect), rows)])
            return
        sql, order, convert, positional = prepared
        if positional:
            params: list[Any] = [tuple([c(r[k]) if c else r[k] for k, c in zip(order, convert)])
                                 for r in rows]
        else:
            params = [{k: c(r[k]) if c else r[k] for k, c in zip(order, convert)} for r in rows]
        conn.exec_driver_sql(sql, params if len(params) > 1 else params[0])

    def template(self, dialect: Dialect, keys: tuple[str, ...]) -> RowTemplate | None:
        """PostgreSQL: the rows' INSERT as a part of one statement (db/onestatement.py); None
        when Core must fill a column's default."""
        if self._prepared_for(dialect, keys) is None:
            return None
        return insert_template(self.table, keys, dialect)

    def _prepared_for(self, dialect: Dialect, keys: tuple[str, ...]) -> _Prepared | None:
        try:
            return self._prepared[dialect.name, keys]
        except KeyError:
            prepared = self._prepared[dialect.name, keys] = self._prepare(dialect, keys)
            return prepared

    def _prepare(self, dialect: Dialect, keys: tuple[str, ...]) -> _Prepared | None:
        compiled = self.statement.compile(dialect=dialect, column_keys=list(keys))
        positional = bool(compiled.positional)
        order = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
        if set(order) != set(keys):   # a default to fill, or a key no column has: Core's way
            return None
        convert = tuple(self.table.c[k].type.dialect_impl(dialect).bind_processor(dialect)
                        for k in order)
        return compiled.string, order, convert, positional


_Prepared = tuple[str, tuple[str, ...], tuple[Any, ...], bool]

# On the tables: every row of one has the same columns, one executemany, and none of the ORM's
# unit of work (several times the cost of the statement). Parents first.
_INSERTS = tuple(_Inserting(model.__table__) for model in (   # type: ignore[attr-defined]
    Message, Attachment, SearchEntry, MessageReference, Participant, Outbox, TicketTimer,
    TicketEvent))


@contextmanager
def _one_round_trip(conn: Connection) -> Iterator[None]:
    """PostgreSQL: the statements run inside go out without waiting for each one's answer
    (psycopg's pipeline mode) and are answered together at the end, where an error among them
    is raised. For statements whose results nobody reads: INSERTs, and UPDATEs whose row count
    is not checked (Core's, not the ORM's flush, which checks it)."""
    with conn.connection.dbapi_connection.pipeline():   # type: ignore[union-attr]
        yield


def _dirty_besides(session: Session, tickets: list[Ticket]) -> bool:
    """Does the ORM hold changes of its own besides the tickets `write_ticket` writes?"""
    return any(obj not in tickets for obj in session.dirty)


def event_row(ticket_id: int, at: datetime, kind: str, actor: str | None,
              data: dict[str, Any]) -> dict[str, Any]:
    return {"ticket_id": ticket_id, "at": at, "kind": kind, "actor": actor, "data": data}


@dataclass
class Gathered:
    """One cause's rows, until `write`."""

    tickets: list[Ticket] = field(default_factory=list)   # its ticket: made or changed by it
    inbound: Rows = field(default_factory=list)   # the end state of the mail behind it
    messages: Rows = field(default_factory=list)
    attachments: Rows = field(default_factory=list)
    search: Rows = field(default_factory=list)
    references: Rows = field(default_factory=list)
    participants: Rows = field(default_factory=list)
    outbox: Rows = field(default_factory=list)
    timers: Rows = field(default_factory=list)
    events: EventRows = field(default_factory=list)
    written: bool = False   # has `write` run (rows of this cause may be in the database)?

    def write(self, session: Session) -> None:
        """Write the tickets, flush what else is pending, insert the gathered rows, forget
        them. On PostgreSQL all of it in one round trip (`_one_round_trip`) when the ORM has
        nothing of its own to flush (the happy path; a bounce's note is an ORM object)."""
        self.written = True
        conn = session.connection()
        if conn.dialect.name == "postgresql" and not (session.new or session.deleted) \
                and not _dirty_besides(session, self.tickets):
            self._write_as_one(session, conn)
            return
        for ticket in self.tickets:
            write_ticket(session, ticket)
        session.flush()   # what the rarer paths keep as ORM objects (a bounce's note)
        self._insert(session, conn)

    def _write_as_one(self, session: Session, conn: Connection) -> None:
        """PostgreSQL: the tickets and the gathered rows as one statement (db/onestatement.py);
        a table whose rows leave a column's default to fill goes in by Core beside it, in the
        same round trip."""
        dialect = conn.dialect
        pieces: list[tuple[RowTemplate, Rows]] = []
        for ticket in self.tickets:
            change = _ticket_change(session, ticket)
            if change is not None:
                keys, row, new = change
                pieces.append((insert_template(_TICKET, keys, dialect) if new
                               else update_template(_TICKET, keys, dialect), [row]))
        self._defer(session)
        if self.inbound:
            pieces.append((update_template(Inbound.__table__, _INBOUND_KEYS, dialect),
                           list(self.inbound)))
            self.inbound.clear()
        by_core: list[tuple[_Inserting, Rows]] = []
        for insert_rows, rows in zip(_INSERTS, self._batches()):
            if rows:
                template = insert_rows.template(dialect, tuple(rows[0]))
                if template is None:
                    by_core.append((insert_rows, list(rows)))
                else:
                    pieces.append((template, list(rows)))
                rows.clear()
        if not by_core:
            write_all(conn, pieces)
            return
        with _one_round_trip(conn):
            write_all(conn, pieces)
            for insert_rows, rows in by_core:
                insert_rows(conn, rows)

    def _batches(self) -> tuple[Rows, ...]:
        return (self.messages, self.attachments, self.search, self.references,
                self.participants, self.outbox, self.timers, self.events)

    def _defer(self, session: Session) -> None:
        later = session.info.get(_LATER)
        if later is not None:   # a batch that writes these once, at its end
            for mine, theirs in ((self.inbound, later.inbound), (self.search, later.search),
                                 (self.attachments, later.attachments),
                                 (self.events, later.events)):
                theirs.extend(mine)
                mine.clear()

    def _insert(self, session: Session, conn: Connection) -> None:
        batches = self._batches()
        if not any(batches) and not self.inbound:
            return
        self._defer(session)
        if self.inbound:
            conn.execute(_INBOUND_DONE, self.inbound)
            self.inbound.clear()
        for insert_rows, rows in zip(_INSERTS, batches):
            if rows:
                insert_rows(conn, rows)
                rows.clear()

    def messages_of(self, ticket_id: int) -> Rows:
        """The mails this cause records on the ticket and has not written yet."""
        return [m for m in self.messages if m["ticket_id"] == ticket_id]


# A batch run without savepoints (process/run.py): the end state of its mails, their search
# entries and attachments and the tickets' events, which nothing in the batch reads back (but a
# #search, which writes them first: `write_later`; the events a ticket's later mails could ask
# for name what was mailed to the client, which is sent only after the commit), go in at its
# end, one statement per table for the whole batch rather than per mail. (Not with
# savepoints: a mail rolled back alone must take its rows along.)
_LATER = "maildesk.rows_at_batch_end"


@dataclass
class _Later:
    inbound: Rows = field(default_factory=list)
    search: Rows = field(default_factory=list)
    attachments: Rows = field(default_factory=list)
    events: Rows = field(default_factory=list)


def write_at_batch_end(session: Session) -> None:
    """From now on, gather the end state of mails and their search entries until
    `write_later` (the batch's end); new tickets' numbers likewise (db/queries.py)."""
    session.info[_LATER] = _Later()
    numbers_in_batch(session)


def write_later(session: Session, *, stop: bool = False) -> None:
    """Write what `write_at_batch_end` gathered so far; `stop`: and gather no more."""
    write_numbers(session, stop=stop)
    later = session.info.pop(_LATER, None) if stop else session.info.get(_LATER)
    if later is None:
        return
    conn = session.connection()
    with _one_round_trip(conn) if conn.dialect.name == "postgresql" else nullcontext():
        if later.inbound:
            conn.execute(_INBOUND_DONE, later.inbound)
            later.inbound.clear()
        for insert_rows, rows in ((_INSERT_SEARCH, later.search),
                                  (_INSERT_ATTACHMENTS, later.attachments),
                                  (_INSERT_EVENTS, later.events)):
            if rows:
                insert_rows(conn, rows)
                rows.clear()


_INSERT_SEARCH, _INSERT_ATTACHMENTS, _INSERT_EVENTS = (
    next(i for i in _INSERTS if i.table is model.__table__)  # type: ignore[attr-defined]
    for model in (SearchEntry, Attachment, TicketEvent))

_TICKET = Ticket.__table__
_ADD_TICKET = _Inserting(_TICKET)
_TICKET_COLUMNS = {c.key: c for c in _TICKET.columns}
_CHANGES: dict[tuple[str, ...], Update] = {}   # UPDATE statements by the columns they set
_INBOUND_KEYS = ("status", "reason", "processed_at")
_INBOUND_DONE = (update(Inbound.__table__).where(Inbound.__table__.c.id == bindparam("b_id"))
                 .values(status=bindparam("status"), reason=bindparam("reason"),
                         processed_at=bindparam("processed_at")))


def write_ticket(session: Session, ticket: Ticket) -> None:
    """The ticket as a cause left it, by Core: the ORM's flush cost several times the
    statement. A new one (made by effects/record.py, not yet in the session) is inserted with
    every column and then joins the session as if loaded; one loaded before gets an UPDATE
    of the columns that changed, which then count as unchanged."""
    change = _ticket_change(session, ticket)
    if change is None:
        return
    keys, row, new = change
    if new:
        _ADD_TICKET(session.connection(), [row])
        return
    statement = _CHANGES.get(keys)
    if statement is None:
        statement = _CHANGES[keys] = (
            update(_TICKET).where(_TICKET.c.id == bindparam("b_id"))
            .values({key: bindparam(key) for key in keys}))
    session.connection().execute(statement, row)


def _ticket_change(session: Session, ticket: Ticket
                   ) -> tuple[tuple[str, ...], dict[str, Any], bool] | None:
    """What `write_ticket` writes: (its columns, the row, whether it is new), the ticket
    taken as written (joins the session, or its changes count as unchanged); None: nothing.
    The caller writes the row before anything reads the ticket from the database."""
    state = inspect(ticket)
    if state.transient:
        values = {key: state.dict[key] if key in state.dict else _default(column)
                  for key, column in _TICKET_COLUMNS.items()}
        # Straight into the instance's dict: it is about to count as loaded (its history
        # reset), and the instrumented setattr cost a sixth of writing a new ticket.
        state.dict.update({key: value for key, value in values.items() if key not in state.dict})
        make_transient_to_detached(ticket)
        session.add(ticket)
        return tuple(values), values, True
    changed = {key: state.dict[key] for key in state.committed_state if key in _TICKET_COLUMNS}
    if not changed:
        return None
    for key, value in changed.items():
        set_committed_value(ticket, key, value)
    if not state.committed_state:
        # Nothing left unwritten: the ticket stops counting as touched, or every later flush
        # of the batch walks the unit of work to find nothing to write (as costly as a
        # statement). What the ORM's own flush does after writing (SQLAlchemy's private API).
        state._commit_all(state.dict, session.identity_map)
    return tuple(sorted(changed)), {**changed, "b_id": ticket.id}, False


def _default(column: Column[Any]) -> Any:
    default = column.default
    if default is None:
        return None
    return default.arg(None) if default.is_callable else default.arg   # type: ignore[attr-defined]
