"""One poller per IMAP folder, whatever the number of daemons: a lease row per account+folder.

The daemon that holds a folder's lease polls it and renews the lease every RENEW_EVERY while it
does (between IDLE ticks, before each pass); every other daemon stands by and tries again every
STANDBY_CHECK, so when the holder dies (kill -9, a lost host) a standby takes the folder over
within LEASE + STANDBY_CHECK. A daemon that stops cleanly gives its leases up at once.

The lease is also checked inside every transaction that stores mail or moves the folder's
progress (`confirm`): a holder that stalled past its lease (and was taken over) cannot commit
what it fetched, so UIDVALIDITY+UID progress stays exactly-once across a hand-over.

Times are the daemons' clocks: daemons on several hosts need them in step (NTP), as their
timers and deadlines do.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock
from maildesk.db.models import ImapLease

LEASE = timedelta(seconds=20)
RENEW_EVERY = 5.0       # seconds between renewals while polling
STANDBY_CHECK = 5.0     # seconds between a standby's tries
_EXPIRED = datetime(1970, 1, 1, tzinfo=timezone.utc)


class LeaseLost(Exception):
    """Another daemon holds the folder now; str() names it."""


def daemon_id() -> str:
    """Who holds a lease: host, process and a random part (two services in one process, a
    restarted process with a recycled pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class FolderLease:
    """The lease of one folder of one account, held on behalf of `owner`."""

    def __init__(self, make_session: sessionmaker[Session], clock: Clock, account: str,
                 folder: str, owner: str, *, duration: timedelta = LEASE,
                 write_turn: Callable[[], AbstractContextManager[Any]] | None = None):
        self.make_session = make_session
        # `serve`: the daemon's write turn (IntakeGate.storing), taken for each transaction.
        self._turn = write_turn or nullcontext
        self.clock = clock
        self.account = account
        self.folder = folder
        self.owner = owner
        self.duration = duration
        engine: Engine = make_session.kw["bind"]
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._mine = (ImapLease.account == account, ImapLease.folder == folder,
                      ImapLease.owner == owner)

    def acquire(self) -> str | None:
        """Take or renew the lease; None when it is ours, else who holds it."""
        now = self.clock.now()
        table = ImapLease.__table__
        # Take it when nobody has it, renew it when we do, take it over when it ran out: one
        # statement, so two daemons trying at once cannot both win.
        stmt = self._insert(table).values(account=self.account, folder=self.folder,
                                          owner=self.owner, expires_at=now + self.duration)
        take = stmt.on_conflict_do_update(
            index_elements=[table.c.account, table.c.folder],
            set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
            where=(table.c.owner == self.owner) | (table.c.expires_at < now),
        ).returning(table.c.owner)
        with self._turn(), self.make_session.begin() as session:
            if session.execute(take).first() is not None:
                return None
            holder = session.scalar(select(ImapLease.owner).where(
                ImapLease.account == self.account, ImapLease.folder == self.folder))
        return holder or "another daemon"

    def confirm(self, session: Session) -> None:
        """In the caller's transaction: still ours (renewed), or LeaseLost and the caller's
        transaction must not commit."""
        now = self.clock.now()
        renewed = session.execute(update(ImapLease).where(*self._mine)
                                  .values(expires_at=now + self.duration)
                                  .execution_options(synchronize_session=False))
        if renewed.rowcount != 1:
            holder = session.scalar(select(ImapLease.owner).where(
                ImapLease.account == self.account, ImapLease.folder == self.folder))
            raise LeaseLost(holder or "nobody")

    def release(self) -> None:
        """Give it up (a clean stop): a standby takes the folder at its next try."""
        with self._turn(), self.make_session.begin() as session:
            session.execute(update(ImapLease).where(*self._mine).values(expires_at=_EXPIRED)
                            .execution_options(synchronize_session=False))
