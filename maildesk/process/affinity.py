"""Several daemons on one PostgreSQL: each one processes first the mail it took in itself.

A client sends the mails of a thread over its connection to one daemon (and an IMAP folder is
polled by one daemon). Claiming the oldest pending mail of all, two daemons split those threads
between their batches, and the reply in one batch is deferred while its original is in the
other's (process/contention.py): 280 of the 400 deferrals for 2,000 mails on two daemons
(benchmarks/end_to_end.py), each one claimed, parsed and looked at again 0.2 s later. So a
processor claims the mail its own listener and IMAP pollers stored, oldest first, and takes
the oldest pending mail of the others only when none of its own is left to claim (a daemon
that stopped, or one busier than this one): work is shared as before, threads are split only
at the tail of a backlog. A mail of its own that had to wait (deferred: an earlier mail of its
thread came in elsewhere, its ticket is held) is its own no more: the order of all, oldest
first, is what lets the earlier mail go first (claiming it again and again as its own, a
daemon waited forever for an earlier mail of a dead daemon). Mail pending longer than STALE
is everyone's, oldest first, before their own.

What this daemon stored is known from memory alone: a preference, never a claim. The claim is
still the `FOR UPDATE SKIP LOCKED` of the statement that finds the mail; a daemon that dies
leaves its mail pending, and the others take it as soon as their own is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, any_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from maildesk.db.models import Inbound, InboundStatus

__all__ = ["OwnIntake", "claim_pending"]


class OwnIntake:
    """The ids of the mail this daemon stored and has not processed yet, oldest first."""

    # A daemon whose processor stopped keeps storing: beyond this many the oldest are
    # forgotten (the claim takes them up as anyone's).
    LIMIT = 20_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[int, None] = {}   # insertion-ordered: ids come in ascending

    def add(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._ids.update(dict.fromkeys(ids))
            while len(self._ids) > self.LIMIT:
                del self._ids[next(iter(self._ids))]

    def snapshot(self) -> list[int]:
        with self._lock:
            return list(self._ids)

    def forget(self, ids: Iterable[int]) -> None:
        with self._lock:
            for i in ids:
                self._ids.pop(i, None)

    def __len__(self) -> int:
        return len(self._ids)


_PENDING = (select(Inbound).where(Inbound.status == InboundStatus.PENDING)
            .order_by(Inbound.id).limit(bindparam("limit"))
            .with_for_update(skip_locked=True))
# One array parameter, whatever its length: the statement's text stays the same, so psycopg
# prepares it once (a parameter per id would make each claim a new statement).
_OWN_OR_STALE = _PENDING.where(or_(Inbound.id == any_(bindparam("own", type_=ARRAY(BigInteger))),
                                   Inbound.received_at < bindparam("stale")))

# Mail pending this long is anyone's, oldest first, before a daemon's own: what a dead daemon
# stored, or what a reply of a daemon's own waits for (an earlier mail of its thread that came
# in elsewhere), is not left behind a flow that keeps every daemon busy with its own.
STALE = timedelta(seconds=30)


def claim_pending(session: Session, limit: int, own: OwnIntake | None = None,
                  only: list[int] | None = None, now: datetime | None = None
                  ) -> dict[int, Inbound]:
    """PostgreSQL: lock and return up to `limit` pending messages no other processor holds:
    the oldest of this daemon's own (`own`) and of those pending longer than STALE before
    `now`, else the oldest of all (`only`: among these). The claim lasts as long as the
    transaction."""
    if only is not None:
        q = _PENDING.where(Inbound.id.in_(only))
        return {row.id: row for row in session.scalars(q, {"limit": limit})}
    if own is not None and now is not None:
        mine = own.snapshot()
        if mine:
            rows = {row.id: row for row in session.scalars(
                _OWN_OR_STALE, {"limit": limit, "own": mine, "stale": now - STALE})}
            if len(rows) < limit:
                # Every claimable one was taken: the rest are done or held elsewhere (were
                # a holder to die, they are pending again and taken up as anyone's).
                own.forget(i for i in mine if i not in rows)
            if rows:
                return rows
    return {row.id: row for row in session.scalars(_PENDING, {"limit": limit})}
