"""A database that cannot be used, as the people running maildesk see it.

A failure is said in one line: what failed and where (the URL without its password), never a
traceback or the SQL. `is_unreachable` tells a database that is down, refuses the connection or
the login from one that is merely locked; `is_missing_schema` a database that `maildesk db
upgrade` has not (fully) made yet. `OutageWatch`, for the daemon, logs an outage seen by any of
its threads once per attempt on a capped backoff (1, 2, 4 ... 30 s), and once when the database
is back: the threads themselves stay quiet about it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

# PostgreSQL's SQLSTATEs that mean "no usable connection": class 08 (connection exception),
# 28 (bad login), 3D000 (no such database), 53300 (too many connections), 57P01-57P03 (shut
# down, crashed, starting up).
_UNREACHABLE_STATES = ("08", "28", "3D000", "53300", "57P01", "57P02", "57P03")
_MISSING_STATES = ("42P01", "42703")   # undefined table, undefined column
_SQLITE_UNREACHABLE = ("unable to open database file", "disk i/o error",
                       "attempt to write a readonly database")
_SQLITE_MISSING = ("no such table", "no such column")


def redact_url(url: str) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: hide anything between : and @
        return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _dbapi_error(exc: BaseException) -> BaseException:
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def _is_database_error(exc: BaseException) -> bool:
    orig = _dbapi_error(exc)
    module = type(orig).__module__
    return (isinstance(exc, SQLAlchemyError) or module.startswith("psycopg")
            or module.startswith("sqlite3"))


def is_unreachable(exc: BaseException) -> bool:
    """The database is down, refuses the connection or the login, lost the connection, or (for
    SQLite) its file cannot be opened: nothing to do but wait, or fix the setup. A locked
    database is not unreachable (it is busy)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = _dbapi_error(exc)
    module = type(orig).__module__
    if module.startswith("psycopg"):
        state = getattr(orig, "sqlstate", None)
        if state is None:  # raised by the client: no connection, or it broke
            return type(orig).__name__ in ("OperationalError", "InterfaceError")
        return state.startswith(_UNREACHABLE_STATES)
    if module.startswith("sqlite3"):
        text = str(orig).lower()
        return any(t in text for t in _SQLITE_UNREACHABLE)
    return False


def is_missing_schema(exc: BaseException) -> bool:
    """A table or column maildesk needs is not there: `maildesk db upgrade` was not run (or
    not since this version of maildesk)."""
    orig = _dbapi_error(exc)
    module = type(orig).__module__
    if module.startswith("psycopg"):
        return getattr(orig, "sqlstate", None) in _MISSING_STATES
    if module.startswith("sqlite3"):
        return str(orig).lower().startswith(_SQLITE_MISSING)
    return False


def reason(exc: BaseException) -> str:
    """What the database (or its driver) said, in one line: "Connection refused",
    "password authentication failed for user "x"", "no such table: ticket"."""
    orig = _dbapi_error(exc)
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    if "failed: " in text:  # psycopg: connection to server at "h", port p failed: REASON
        text = text.rsplit("failed: ", 1)[1] or text
    text = re.sub(r"^(FATAL|ERROR):\s+", "", text)
    return re.sub(r"\s+", " ", text)


def one_line(exc: BaseException) -> str:
    """Any exception in one line: a database's reason, else `Type: first line`."""
    if _is_database_error(exc):
        return reason(exc)
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class OutageWatch:
    """Log an outage of one engine's database, whichever thread meets it: a WARNING when it
    starts, then one per attempt at most every 1, 2, 4 ... `cap` seconds (saying how many
    attempts failed meanwhile), and an INFO line once a connection is made again."""

    def __init__(self, url: str, logger: logging.Logger, *, first: float = 1.0,
                 cap: float = 30.0, now: Callable[[], float] = time.monotonic):
        self.url = redact_url(url)
        self._log = logger
        self._first, self._cap, self._now = first, cap, now
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._failed = 0          # attempts failed since the last line
        self._interval = first    # until the next line may be written
        self._next_line = 0.0

    def attach(self, engine: Engine) -> OutageWatch:
        event.listen(engine, "handle_error", self._on_error)
        event.listen(engine, "connect", self._on_connect)
        return self

    def _on_error(self, context: Any) -> None:
        if context.is_pre_ping:  # a pooled connection found dead; the pool opens a new one
            return
        exc = context.sqlalchemy_exception or context.original_exception
        if context.is_disconnect or is_unreachable(context.original_exception):
            self.failed(exc)

    def _on_connect(self, _dbapi_connection: Any, _record: Any) -> None:
        self.reconnected()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            now = self._now()
            first = self.down_since is None
            if first:
                self.down_since = now
            self._failed += 1
            if now < self._next_line:
                return
            failed, self._failed = self._failed, 0
            wait = self._interval
            self._interval = min(self._interval * 2, self._cap)
            self._next_line = now + wait
        more = "" if first or failed == 1 else f" ({failed} attempts since the last report)"
        self._log.warning("database unreachable: %s: %s%s; retrying (next report in %.0f s at "
                          "the earliest)", self.url, reason(exc), more, wait)

    def reconnected(self) -> None:
        with self._lock:
            if self.down_since is None:
                return
            took = self._now() - self.down_since
            self.down_since = None
            self._failed, self._interval, self._next_line = 0, self._first, 0.0
        self._log.info("database reachable again: %s (unreachable for %.0f s)", self.url, took)
