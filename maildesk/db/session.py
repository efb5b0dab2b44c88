"""Engines and sessions: SQLite in WAL with real durability, PostgreSQL through psycopg 3."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # a type only: config is above db
    from maildesk.config.model import Database

READ_ONLY = "maildesk_read_only"   # execution option: begin SQLite transactions deferred


def make_engine(db: Database, *, pool_size: int = 5) -> Engine:
    """An engine with the durability and lock-timeout settings maildesk relies on."""
    url = db.url
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": db.lock_timeout_ms / 1000,
                                                  "isolation_level": None,
                                                  "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute(f"PRAGMA busy_timeout={int(db.lock_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: the ticket indexes stay in memory
            cur.close()

        # Table hints (`INDEXED BY`, `NOT INDEXED`: the report's queries on a database
        # SQLite has no statistics of) are dropped by SQLAlchemy's SQLite compiler; render them.
        engine.dialect.statement_compiler = _HintingSQLiteCompiler

        # pysqlite's own transaction handling starts deferred transactions that fail to upgrade
        # to a write lock under concurrency; take the write lock up front instead. Read-only
        # sessions (reports, listings) begin deferred: in WAL mode they read a snapshot and
        # never hold up the daemon's writes.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

        return engine
    options = f"-c lock_timeout={int(db.lock_timeout_ms)}"
    engine = create_engine(url, pool_size=pool_size, pool_pre_ping=True,
                           connect_args={"options": options})
    _SOLO_OPTIONS[engine] = options
    event.listen(engine, "engine_disposed", _dispose_solo)
    return engine


# PostgreSQL: statements committed on their own at once, beside a longer transaction (the
# ticket counter's bump, db/queries.py): an engine per engine, in autocommit (no BEGIN and
# COMMIT of their own), not waiting for the disk to commit (`synchronous_commit` off for these
# connections only), without a ping per checkout (a connection the server dropped fails once
# and is replaced: `solo_retry`). Made on first use, disposed with its engine.
_SOLO_OPTIONS: WeakKeyDictionary[Engine, str] = WeakKeyDictionary()
_SOLO: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()
_SOLO_LOCK = threading.Lock()


def solo_engine(engine: Engine) -> Engine:
    """The autocommit side engine of a PostgreSQL engine made by `make_engine`."""
    with _SOLO_LOCK:
        solo = _SOLO.get(engine)
        if solo is None:
            options = _SOLO_OPTIONS.get(engine, "")
            solo = _SOLO[engine] = create_engine(
                engine.url, pool_size=1, max_overflow=4, isolation_level="AUTOCOMMIT",
                connect_args={"options": f"{options} -c synchronous_commit=off".strip()})
        return solo


def _dispose_solo(engine: Engine) -> None:
    with _SOLO_LOCK:
        solo = _SOLO.pop(engine, None)
    if solo is not None:
        solo.dispose()


class _HintingSQLiteCompiler(SQLiteCompiler):
    def get_from_hint_text(self, table: Any, text: str) -> str:
        return text


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading only: on SQLite they take no write lock (see make_engine); on
    PostgreSQL the transaction is READ ONLY. Nothing they change is committed."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(postgresql_readonly=True)
    else:
        engine = engine.execution_options(**{READ_ONLY: True})
    return sessionmaker(engine, expire_on_commit=False)


def is_retryable(exc: BaseException) -> bool:
    """A locked or briefly unavailable database: the caller should try again later."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    text = str(exc).lower()
    return "database is locked" in text or "lock timeout" in text or "could not obtain lock" in text
