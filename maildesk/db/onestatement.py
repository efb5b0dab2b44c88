"""PostgreSQL: the rows of several tables written by one statement.

A cause writes a handful of rows to five or six tables (effects/events.py). Sent as one
statement per table they still cost psycopg, and the server, their work per statement (parse or
bind, plan, run, answer) six times over; as one statement, each table's rows one data-modifying
`WITH` part of it (`WITH w0 AS (INSERT ...), w1 AS (UPDATE ...) INSERT ...`), they cost it once.
Every part runs to completion whatever the others do, all on one snapshot; the foreign keys are
checked at the statement's end, so a part may name a row another part inserts; an error in any
part undoes the whole statement.

The statements are compiled by SQLAlchemy once per table and set of columns, with its casts,
and their parameters made positional; the values go through the columns' own bind processors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Table, bindparam, insert, update

ROWS_PER_INSERT = 100          # rows in one INSERT's VALUES list
MAX_PARAMETERS = 30_000        # per statement (the protocol allows 65,535)
_NAMED = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class RowTemplate:
    """One row's share of a statement: an INSERT's `head` and VALUES `group`, or (head "")
    a whole single-row UPDATE; `names` in the order of the `%s` placeholders."""

    head: str
    group: str
    names: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]

    def values(self, row: dict[str, Any]) -> list[Any]:
        return [c(row[k]) if c else row[k] for k, c in zip(self.names, self.convert)]


_TEMPLATES: dict[tuple[Any, ...], RowTemplate] = {}


def _template(key: tuple[Any, ...], table: Table, sql: str, dialect: Dialect,
              types: dict[str, Any], head: str) -> RowTemplate:
    names = tuple(_NAMED.findall(sql))
    convert = tuple(types[n].dialect_impl(dialect).bind_processor(dialect) for n in names)
    template = RowTemplate(head, _NAMED.sub("%s", sql), names, convert)
    _TEMPLATES[key] = template
    return template


def insert_template(table: Table, keys: tuple[str, ...], dialect: Dialect) -> RowTemplate:
    """INSERT INTO table (keys) VALUES (...): the head and one row's group."""
    key = ("insert", table.name, keys, dialect.name)
    found = _TEMPLATES.get(key)
    if found is not None:
        return found
    sql = str(insert(table).values([{k: bindparam(k, type_=table.c[k].type) for k in keys}])
              .compile(dialect=dialect))
    head, _, group = sql.partition(" VALUES ")
    return _template(key, table, group, dialect, {k: table.c[k].type for k in keys},
                     head + " VALUES ")


def update_template(table: Table, keys: tuple[str, ...], dialect: Dialect) -> RowTemplate:
    """UPDATE table SET keys WHERE id = the row's "b_id"."""
    key = ("update", table.name, keys, dialect.name)
    found = _TEMPLATES.get(key)
    if found is not None:
        return found
    sql = str(update(table).where(table.c.id == bindparam("b_id"))
              .values({k: bindparam(k, type_=table.c[k].type) for k in keys})
              .compile(dialect=dialect))
    types = {k: table.c[k].type for k in keys}
    types["b_id"] = table.c.id.type
    return _template(key, table, sql, dialect, types, "")


def write_all(conn: Connection, pieces: Sequence[tuple[RowTemplate, Sequence[dict[str, Any]]]]
              ) -> None:
    """Write each piece's rows (an INSERT's as one VALUES list, an UPDATE's one statement a
    row) as parts of as few statements as the parameter limit allows: one, in practice."""
    parts: list[str] = []
    params: list[Any] = []
    for template, rows in pieces:
        width = len(template.names)
        step = ROWS_PER_INSERT if template.head else 1
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            if params and len(params) + width * len(chunk) > MAX_PARAMETERS:
                _run(conn, parts, params)
                parts, params = [], []
            parts.append(template.head + ", ".join([template.group] * len(chunk)))
            for row in chunk:
                params.extend(template.values(row))
    if parts:
        _run(conn, parts, params)


def _run(conn: Connection, parts: list[str], params: list[Any]) -> None:
    *first, last = parts
    sql = last if not first else \
        "WITH " + ", ".join(f"w{i} AS ({p})" for i, p in enumerate(first)) + " " + last
    conn.exec_driver_sql(sql, tuple(params))
