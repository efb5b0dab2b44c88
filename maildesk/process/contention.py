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
  Message-ID or one it refers to, found in the stored bytes): the two belong to one thread,
  and the earlier one, in another batch, is not committed yet (a reply stored before its
  original is the same case the other way round). A reply that refers to nothing by its
  headers (only its subject says so) and would open a ticket waits while any earlier mail is
  pending.

The first two are asked before the decision reads anything (a batch committing in between
would otherwise go unseen), the ticket once the decision has named it.

SQLite has one writer at a time: none of this applies there.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from sqlalchemy import BigInteger, LargeBinary, Select, bindparam, func, or_, select, text
from sqlalchemy.orm import Session

from maildesk.db.models import Inbound, InboundStatus, RawMessage, Ticket
from maildesk.pipeline.decide import Decision
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.plan import dedupe_key
from maildesk.pipeline.subject import strip_prefixes

_TRY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("key", type_=BigInteger)))
_LOCK_TICKET = (select(Ticket.id).where(Ticket.id == bindparam("ticket_id"))
                .with_for_update(skip_locked=True))
_EARLIER_PENDING = (select(Inbound.id).where(Inbound.status == InboundStatus.PENDING,
                                             Inbound.id < bindparam("inbound_id")).limit(1))
# How far back the stored bytes of pending mail are searched: the batches in flight are the
# newest pending mail; an older backlog is not being written by anyone right now.
RELATED_WINDOW = 500
# Advisory lock keys of this module: a namespace, so other users of advisory locks on the
# same database do not collide with ours.
_NAMESPACE = b"maildesk.dedupe\0"


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(_NAMESPACE + text.encode()).digest()[:8], "big",
                          signed=True)


def looks_like_reply(message: ParsedMessage) -> bool:
    """In-Reply-To, References, or a reply/forward prefix on the subject."""
    return bool(message.in_reply_to or message.references or strip_prefixes(message.subject)[1])


def held_elsewhere(session: Session, inbound_id: int, message: ParsedMessage) -> str | None:
    """Before deciding: why this mail must wait for another processor's commit (None: go
    ahead). Asked before the decision reads anything, so that what it reads is either already
    committed or still held here: a batch that commits between the decision and this check
    cannot slip through. Takes its lock in the caller's transaction."""
    if not session.scalar(_TRY_LOCK, {"key": _key(dedupe_key(message))}):
        return "a copy of this mail is being processed elsewhere"
    if _related_pending(session, inbound_id, message):
        return "earlier mail of its thread is being processed elsewhere"
    return None


def ticket_held_elsewhere(session: Session, inbound_id: int, message: ParsedMessage,
                          d: Decision) -> str | None:
    """After deciding: the ticket the mail joins is locked here, or it waits (None: go ahead);
    a reply that refers to nothing by its headers (only its subject says so) and would open a
    ticket waits while any earlier mail is pending."""
    plan = d.plan
    if plan is None or d.outcome not in ("ticket", "agent"):
        return None
    joins = plan.thread.ticket_id
    if joins is not None:
        if session.scalar(_LOCK_TICKET, {"ticket_id": joins}) is None:
            return "its ticket is being changed elsewhere"
    elif not (message.in_reply_to or message.references) and looks_like_reply(message) and \
            session.scalar(_EARLIER_PENDING, {"inbound_id": inbound_id}) is not None:
        return "a reply that would open a ticket while earlier mail is still pending"
    return None


def _related_pending(session: Session, inbound_id: int, message: ParsedMessage) -> bool:
    """Is an earlier, still pending mail naming this one's Message-ID or one it names?"""
    needles = [m.encode("ascii", "replace") for m in
               dict.fromkeys((message.message_id, *message.in_reply_to, *message.references))
               if m]
    if not needles:
        return False
    params: dict[str, object] = {f"needle{k}": needle for k, needle in enumerate(needles)}
    params.update(inbound_id=inbound_id, window=inbound_id - RELATED_WINDOW)
    return session.scalar(_related_query(len(needles)), params) is not None


@lru_cache(maxsize=64)
def _related_query(needles: int) -> Select[tuple[int]]:
    """The search for `needles` ids, built once per count (building and compiling it for each
    mail cost more than the search)."""
    found = [text(f"position(:needle{k} in raw_message.data) > 0")
             .bindparams(bindparam(f"needle{k}", type_=LargeBinary)) for k in range(needles)]
    return (select(Inbound.id).join(RawMessage, RawMessage.id == Inbound.raw_id)
            .where(Inbound.status == InboundStatus.PENDING, Inbound.id < bindparam("inbound_id"),
                   Inbound.id >= bindparam("window"), or_(*found)).limit(1))
