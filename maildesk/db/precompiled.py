"""A Core statement compiled once per dialect, run as the driver's SQL.

SQLAlchemy's work per execution (the statement's cache key, walked anew each time; the
parameters, processed bind by bind) is small against most statements, but not against a short
indexed one that runs often: the timer sweep's due query (a join and a row lock) took 0.5 ms
of SQLAlchemy beside its 0.75 ms on the server (benchmarks/sla.py). Compiled once, its text
and the processors of its parameters are kept; each run only converts the values given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, CursorResult, Dialect
from sqlalchemy.sql import Executable

__all__ = ["Precompiled"]

_Processor = Callable[[Any], Any] | None


class Precompiled:
    def __init__(self, statement: Executable):
        self.statement = statement
        self._by_dialect: dict[str, tuple[str, dict[str, Any], dict[str, _Processor],
                                          tuple[str, ...] | None]] = {}

    def execute(self, conn: Connection, params: dict[str, Any]) -> CursorResult[Any]:
        """Run it on `conn` with `params` (the statement's own values are bound already)."""
        dialect = conn.dialect
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = self._compile(dialect)
        sql, fixed, processors, order = found
        values = dict(fixed)
        for key, value in params.items():
            process = processors[key]
            values[key] = process(value) if process else value
        if order is not None:   # a positional paramstyle (SQLite's "?")
            return conn.exec_driver_sql(sql, tuple(values[k] for k in order))
        return conn.exec_driver_sql(sql, values)

    def _compile(self, dialect: Dialect) -> tuple[str, dict[str, Any], dict[str, _Processor],
                                                   tuple[str, ...] | None]:
        compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        processors: dict[str, _Processor] = {}
        fixed: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            processors[name] = process
            if bind.value is not None and not bind.callable:
                fixed[name] = process(bind.value) if process else bind.value
        order = tuple(compiled.positiontup) if compiled.positional else None
        return compiled.string, fixed, processors, order
