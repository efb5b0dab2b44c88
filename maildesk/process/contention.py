"""Several processors on one PostgreSQL: a message whose work another processor holds waits
its turn (stays pending, taken up by the next batch) instead of waiting for a lock.

Each batch is one transaction that keeps its locks until it commits. Waiting inside it for a
lock another batch holds is how two daemons deadlock, or how the second copy of a mail hits the
dedupe key, or how a reply opens a ticket of its own because its original is still being
written elsewhere. So, before a decision is applied:

- the copy's dedupe key is taken with `pg_try_advisory_xact_lock`: the same mail arriving twice
  at once is applied by one processor; the other finds it a duplicate afterwards;
- the ticket it joins is locked `FOR UPDATE SKIP LOCKED`: a ticket another batch (or a timer
  sweep) is changing is not waited for;
- a mail waits while an earlier mail that is still pending names it or what it names (its
  Message-ID or one it refers to, found in the stored header): the two belong to one thread,
  and the earlier one, in another batch, is not committed yet (a reply stored before its
  original is the same case the other way round). A reply that refers to nothing by its
  headers (only its subject says so) and would open a ticket waits while an earlier pending
  mail names its sender (envelope, or the address in its header): subject threading joins a
  ticket the sender takes part in, and only such a mail can be opening it. (Waiting for any
  earlier pending mail deferred such replies again and again while two daemons were busy:
  1,800 deferrals for 2,000 mails, and a long tail.)

What is pending earlier is asked before the decision reads anything (a batch committing in
between would otherwise go unseen), and so is the dedupe key; the ticket once the decision
has named it. The header of each earlier pending mail is read from the database once and
searched here (searching the stored bytes in the database for every mail cost 10 ms a mail
with 200 mails in the other daemon's batch).

SQLite has one writer at a time: none of this applies there.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (BigInteger, bindparam, func, literal, literal_column, null, select, text,
                        true, union_all)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, aliased

from maildesk.db.ids import (AHEAD_COUNTS, JOIN_COUNTS, draw_ahead_select, drawn_with,
                             keep_drawn_ahead, keep_drawn_under_lock)
from maildesk.db.models import Inbound, InboundStatus, Message, RawMessage, Ticket, TicketStatus
from maildesk.db.queries import LATEST_TICKETS, held_tickets
from maildesk.pipeline.decide import Decision
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.plan import dedupe_key
from maildesk.pipeline.subject import strip_prefixes

_TRY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("key", type_=BigInteger)))
# The keys of the mails parsed ahead in the same batch, tried together (`lock_ahead`).
_TRY_LOCKS = text("SELECT k, pg_try_advisory_xact_lock(k) "
                  "FROM unnest(CAST(:keys AS bigint[])) AS k")
# The ticket as it is once locked (the decision read it before): the applier's copy, and the
# ids its applier draws (db/ids.py), drawn by the same statement once the row is locked.
_LOCKED = (select(Ticket).where(Ticket.id == bindparam("ticket_id"))
           .with_for_update(skip_locked=True).cte("locked"))
# And its requester's latest tickets, for the line notification (effects/notify.py), as the
# autoreply counts read them for a new ticket (db/queries.py).
_MINE = aliased(Ticket.__table__, name="mine")
_LATEST_OF_REQUESTER = (select(_MINE.c.id, _MINE.c.number, _MINE.c.subject, _MINE.c.status,
                               _MINE.c.created_at)
                        .where(_MINE.c.requester == _LOCKED.c.requester)
                        .order_by(_MINE.c.id.desc()).limit(LATEST_TICKETS)
                        .correlate(_LOCKED).subquery("latest"))
_REQUESTER_TICKETS = (select(func.json_agg(aggregate_order_by(
    func.json_build_array(*_LATEST_OF_REQUESTER.c), _LATEST_OF_REQUESTER.c.id.desc())))
    .scalar_subquery().label("requester_tickets"))
_LOCK_TICKET = (select(aliased(Ticket, _LOCKED), *drawn_with(_LOCKED.c.id.is_not(None)),
                       _REQUESTER_TICKETS)
                .execution_options(populate_existing=True))
# How far back pending mail is looked at: the batches in flight are the newest pending mail; an
# older backlog is not being written by anyone right now.
RELATED_WINDOW = 500
_EARLIER = (select(func.array_agg(Inbound.id))
            .where(Inbound.status == InboundStatus.PENDING, Inbound.id < bindparam("inbound_id"),
                   Inbound.id >= bindparam("window")).scalar_subquery())
# The mail stored before (by its dedupe key): decide()'s first question, asked here in the
# same statement (and snapshot) as the pending mail, after the lock on its key is held.
_COPY = (select(Message.id, Ticket.number).join(Ticket, Ticket.id == Message.ticket_id)
         .where(Message.dedupe_key == bindparam("key")).limit(1).subquery())
_EARLIER_AND_COPY = (select(_EARLIER.label("earlier"), _COPY.c.id, _COPY.c.number)
                     .select_from(select(literal(1)).subquery().outerjoin(_COPY, true())))
# For the mails parsed ahead, after their locks are taken (`_read_ahead`): the copies stored
# before of their dedupe keys, and the mail pending below the last of them (within the window).
# And the ids the mails will need if they open tickets (db/ids.py), drawn in the same statement.
_AHEAD_READ = union_all(
    select(Message.dedupe_key, Message.id, Ticket.number)
    .join(Ticket, Ticket.id == Message.ticket_id)
    .where(Message.dedupe_key.in_(bindparam("keys", expanding=True))),
    select(null(), Inbound.id, null())
    .where(Inbound.status == InboundStatus.PENDING, Inbound.id < bindparam("upto"),
           Inbound.id >= bindparam("window")),
    *draw_ahead_select("mails").selects)
# A stored mail's header: its bytes up to the blank line (64 KB when none is found).
_HEAD = literal_column("substring(raw_message.data from 1 for coalesce(nullif(position("
                       "'\\x0d0a0d0a'::bytea in raw_message.data), 0), 65536))")
_HEADS = (select(Inbound.id, Inbound.mail_from, _HEAD)
          .join(RawMessage, RawMessage.id == Inbound.raw_id)
          .where(Inbound.id.in_(bindparam("ids", expanding=True))))
# Advisory lock keys of this module: a namespace, so other users of advisory locks on the
# same database do not collide with ours.
_NAMESPACE = b"maildesk.dedupe\0"


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(_NAMESPACE + text.encode()).digest()[:8], "big",
                          signed=True)


def looks_like_reply(message: ParsedMessage) -> bool:
    """In-Reply-To, References, or a reply/forward prefix on the subject."""
    return bool(message.in_reply_to or message.references or strip_prefixes(message.subject)[1])


@dataclass
class _Ahead:
    """What `_read_ahead` found for the mails with ids from `lo` up to `upto`."""

    lo: int
    upto: int
    pending: list[int]                    # pending at the read, below `upto`
    keys: set[str]                        # dedupe keys whose copies were read
    copies: dict[str, tuple[int, int]]    # of those: (message id, ticket number) found


# An earlier pending mail as searched: its envelope sender and its header, both lower case
# (Message-IDs compared without case can only make a mail wait when it need not).
_Head = tuple[str, bytes]


class Contention:
    """One processor's questions about what the others hold, with the headers of the pending
    mail it has looked at (read once each)."""

    def __init__(self) -> None:
        self._heads: dict[int, _Head] = {}
        self._earlier: tuple[int, list[_Head]] = (0, [])
        # Dedupe keys whose lock this batch's transaction holds, taken for mails parsed ahead
        # (`ahead`): only in a batch without savepoints (a savepoint rolled back would
        # release a lock taken inside it); cleared with `settled` when a batch begins.
        self.locked: set[str] = set()
        self._careful = False
        # The batch's last read for the mails parsed ahead, and the dedupe keys of the mails
        # it has let through (a second copy in the same batch is asked about on its own: the
        # read ahead was made before the first was written).
        self._ahead: _Ahead | None = None
        self._seen_keys: set[str] = set()
        # What held_elsewhere found of the mail's copy stored before: (inbound id, dedupe key,
        # (message id, ticket number) or None), for decide()'s lookups (process/lookups.py).
        self.copy: tuple[int, str, tuple[int, int] | None] | None = None
        # Mails this processor's batch has settled: still pending in the database until the
        # batch writes their end state at its end (effects/events.py), but not held elsewhere.
        self.settled: set[int] = set()

    def begin_batch(self, *, careful: bool = False) -> None:
        """A batch begins; `careful`: each mail in a savepoint (the locks it takes are not
        kept in `locked`)."""
        self._careful = careful
        self.settled.clear()
        self.locked.clear()
        self._seen_keys.clear()
        self._ahead = None

    def held_elsewhere(self, session: Session, inbound_id: int, message: ParsedMessage,
                       ahead: Callable[[], Sequence[tuple[int, ParsedMessage]]] | None = None
                       ) -> str | None:
        """Before deciding: why this mail must wait for another processor's commit (None: go
        ahead). Asked before the decision reads anything, so that what it reads is either
        already committed or still held here: a batch that commits between the decision and
        this check cannot slip through. Takes its lock in the caller's transaction.

        `ahead` (a batch without savepoints): gives the batch's next mails, parsed already,
        with their inbound ids (asked only when this mail's lock is not held yet). Their locks are tried with this one's, and then what each would
        ask is read for all of them in one statement: the copies of their keys (after the
        locks: nobody else can store one now) and the pending mail below them. For a later
        mail that read is older than its turn, which can only show it more mail pending than
        there is by then (it then waits a batch longer), never less: mail stored since has
        higher ids."""
        key = dedupe_key(message)
        if key not in self.locked:
            following = ahead() if ahead is not None and not self._careful else ()
            if following:   # one statement for the next mails' locks too
                group = [(inbound_id, key), *((i, dedupe_key(m)) for i, m in following)]
                self._lock_ahead(session, [k for _, k in group])
                got = key in self.locked
                if got:
                    self._read_ahead(session, group)
            else:
                got = bool(session.scalar(_TRY_LOCK, {"key": _key(key)}))
                if got and not self._careful:
                    self.locked.add(key)
            if not got:
                return "a copy of this mail is being processed elsewhere"
        earlier = self._pending_read_ahead(session, inbound_id, key)
        if earlier is None:
            earlier = self._pending_before(session, inbound_id, key)
        self._seen_keys.add(key)
        self._earlier = (inbound_id, earlier)
        needles = [m.lower().encode("ascii", "replace") for m in
                   dict.fromkeys((message.message_id, *message.in_reply_to,
                                  *message.references)) if m]
        if needles and any(n in head for _, head in earlier for n in needles):
            return "earlier mail of its thread is being processed elsewhere"
        return None

    def _lock_ahead(self, session: Session, keys: list[str]) -> None:
        """Try the locks of `keys` not held yet in one statement; those refused are tried
        again at their mail's turn."""
        wanted = {_key(k): k for k in dict.fromkeys(keys) if k not in self.locked}
        rows = session.execute(_TRY_LOCKS, {"keys": list(wanted)})
        self.locked.update(wanted[k] for k, got in rows if got)

    def _read_ahead(self, session: Session, group: list[tuple[int, str]]) -> None:
        """The copies of the locked keys of `group` (inbound id, key) and the mail pending
        below its last, in one statement (`_AHEAD_READ`)."""
        ids = [i for i, _ in group]
        lo, upto = min(ids), max(ids) + 1
        keys = sorted({k for _, k in group if k in self.locked})
        mails = [i for i, k in group if k in self.locked]
        pending: list[int] = []
        copies: dict[str, tuple[int, int]] = {}
        drawn: dict[str, list[int]] = {table: [] for table in AHEAD_COUNTS}
        for key, row_id, number in session.execute(_AHEAD_READ, {
                "keys": keys, "upto": upto, "window": lo - RELATED_WINDOW,
                "mails": len(mails)}):
            if key is None:
                pending.append(row_id)
            elif key.startswith("ids:"):
                drawn[key[4:]].append(row_id)
            else:
                copies.setdefault(key, (row_id, number))
        keep_drawn_ahead(session, mails, drawn)
        self._ahead = _Ahead(lo, upto, sorted(pending), set(keys), copies)

    def _pending_read_ahead(self, session: Session, inbound_id: int,
                            key: str) -> list[_Head] | None:
        """What `_read_ahead` found for this mail (None: it did not cover it)."""
        a = self._ahead
        if a is None or not a.lo <= inbound_id < a.upto or key not in a.keys \
                or key in self._seen_keys:
            return None
        self.copy = (inbound_id, key, a.copies.get(key))
        return self._with_heads(session, [i for i in a.pending
                                          if inbound_id - RELATED_WINDOW <= i < inbound_id])

    def ticket_held_elsewhere(self, session: Session, inbound_id: int, message: ParsedMessage,
                              d: Decision) -> str | None:
        """After deciding: the ticket the mail joins is locked here, or it waits (None: go
        ahead); a reply that refers to nothing by its headers (only its subject says so) and
        would open a ticket waits while mail naming its sender was pending before the
        decision read anything."""
        plan = d.plan
        if plan is None or d.outcome not in ("ticket", "agent"):
            return None
        joins = plan.thread.ticket_id
        if joins is not None:
            row = session.execute(_LOCK_TICKET, {"ticket_id": joins}).first()
            if row is None:
                return "its ticket is being changed elsewhere"
            ticket = row[0]
            keep_drawn_under_lock(session, inbound_id, {t: row._mapping[f"ids_{t}"]
                                                        for t in JOIN_COUNTS})
            held = held_tickets(session)
            if held is not None:   # kept loaded for the applier, and known to be current
                held.tickets.append(ticket)
                held.locked = joins
                held.requester_tickets[ticket.requester] = [
                    (i, number, subject, TicketStatus(status), datetime.fromisoformat(created))
                    for i, number, subject, status, created in row.requester_tickets or ()]
        elif not (message.in_reply_to or message.references) and looks_like_reply(message):
            asked, earlier = self._earlier
            if asked != inbound_id:   # held_elsewhere was not asked first: ask now
                earlier = self._pending_before(session, inbound_id)
            if _names(earlier, plan.sender):
                return ("a reply by subject that would open a ticket while earlier mail of its "
                        "sender is pending")
        return None

    def _pending_before(self, session: Session, inbound_id: int,
                        key: str | None = None) -> list[_Head]:
        """The mail pending before this one (within the window), with their headers; with a
        dedupe `key`, the copy stored before goes to `copy`."""
        row = session.execute(_EARLIER_AND_COPY, {
            "inbound_id": inbound_id, "window": inbound_id - RELATED_WINDOW,
            "key": key or ""}).one()
        if key is not None:
            self.copy = (inbound_id, key, (row.id, row.number) if row.id is not None else None)
        return self._with_heads(session, sorted(row.earlier or ()))

    def _with_heads(self, session: Session, ids: list[int]) -> list[_Head]:
        """The headers of those of `ids` this batch has not settled (read once each)."""
        ids = [i for i in ids if i not in self.settled]
        missing = [i for i in ids if i not in self._heads]
        if missing:
            for i, mail_from, head in session.execute(_HEADS, {"ids": missing}):
                self._heads[i] = ((mail_from or "").strip().strip("<>").lower(),
                                  bytes(head or b"").lower())
            if len(self._heads) > 4 * RELATED_WINDOW:   # those done by now are not asked for
                keep = set(ids)
                self._heads = {i: h for i, h in self._heads.items() if i in keep}
        return [self._heads[i] for i in ids if i in self._heads]


def _names(earlier: Sequence[_Head], sender: str) -> bool:
    """Is one of `earlier` from `sender`, or naming it in its header?"""
    address = sender.strip().lower()
    if not address:
        return bool(earlier)
    needle = address.encode("utf-8")
    return any(mail_from == address or needle in head for mail_from, head in earlier)
