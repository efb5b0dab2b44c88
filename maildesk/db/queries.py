"""Reads shared by the pipeline and the commands. Every lookup here runs on an index."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, exists, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from maildesk.addresses import token_matches
from maildesk.db.session import solo_engine
from maildesk.db.models import (Counter, Message, MessageReference, Outbox, Participant, Ticket,
                                TicketStatus)
from maildesk.domain import TicketFacts


# Statements of the per-message path, built once: building them anew (coercing every
# element, computing cache keys) cost about as much interpreter time as running them. Those
# that read columns, not tickets, run on the session's connection: the ORM's execution path
# (autoflush, result objects) cost several times the statement, and nothing they read can be
# pending in the session (a cause writes its rows at its end, effects/events.py).
_BUMP = (update(Counter).where(Counter.name == "ticket").values(value=Counter.value + 1)
         .returning(Counter.value))
# Does `sender` take part in the ticket: asked in the statement that finds the tickets.
_SENDS = (exists().where(Participant.ticket_id == Ticket.id,
                         Participant.address == bindparam("sender")).label("with_sender"))
# The tickets owning any of the Message-IDs, with the one each row owns.
_OWNED = (select(Ticket, Message.message_id, _SENDS)
          .join(Message, Message.ticket_id == Ticket.id)
          .where(Message.message_id.in_(bindparam("ids", expanding=True))))
# Read from the index (referenced_id, ticket_id) alone; a handful of tickets at most.
_REFERENCING = (select(MessageReference.ticket_id).distinct()
                .where(MessageReference.referenced_id.in_(bindparam("ids", expanding=True)))
                .order_by(MessageReference.ticket_id).limit(10))
_TICKETS_BY_ID = (select(Ticket, _SENDS).where(Ticket.id.in_(bindparam("ids", expanding=True)))
                  .order_by(Ticket.id))
# session.info key of what a message's lookups found out for its applier (HeldTickets).
_HELD = "maildesk.held_tickets"
_BY_NUMBERS = (select(Ticket, _SENDS)
               .where(Ticket.number.in_(bindparam("numbers", expanding=True))))
_BY_NUMBER = select(Ticket, _SENDS).where(Ticket.number == bindparam("number"))
_BY_SUBJECT = (select(Ticket).join(Participant, Participant.ticket_id == Ticket.id)
               .where(Ticket.subject_key == bindparam("key"),
                      Ticket.status != TicketStatus.CLOSED,
                      Participant.address == bindparam("sender"))
               .order_by(Ticket.last_activity_at.desc()).limit(bindparam("limit")))
# As many of a mail's own references as are recorded per mail (effects/record.py).
MAX_LOOKED_UP_REFERENCES = 50
_HISTORY = (select(func.count().filter(Outbox.kind == "autoreply",
                                       Outbox.created_at >= bindparam("sent_since"))
                   .label("sent"),
                   func.count().filter(Outbox.bounced_at >= bindparam("bounced_since"))
                   .label("bounced"))
            .select_from(Outbox).join(Ticket, Ticket.id == Outbox.ticket_id)
            .where(Ticket.requester == bindparam("address"))).subquery()
# Two counts, each from an index alone: (recipient_domain, kind, created_at) and (kind,
# created_at).
_TO_DOMAIN = (select(func.count()).select_from(Outbox)
              .where(Outbox.recipient_domain == bindparam("domain"),
                     Outbox.created_at >= bindparam("since"), Outbox.kind == "autoreply")
              .scalar_subquery())
_TOTAL = (select(func.count()).select_from(Outbox)
          .where(Outbox.kind == "autoreply", Outbox.created_at >= bindparam("since"))
          .scalar_subquery())
# The address's latest tickets, read with the counts: a ticket it opens notifies its line with
# the requester's other tickets (effects/notify.py), which need not be asked for again.
LATEST_TICKETS = 11
_LATEST = (select(Ticket.id, Ticket.number, Ticket.subject, Ticket.status, Ticket.created_at)
           .where(Ticket.requester == bindparam("address"))
           .order_by(Ticket.id.desc()).limit(LATEST_TICKETS).subquery())
# All in one round trip (each part reads as before; the counts are one aggregate row, repeated
# beside each of the latest tickets).
_COUNTS = (select(_HISTORY.c.sent, _HISTORY.c.bounced, _TO_DOMAIN, _TOTAL, _LATEST.c.id,
                  _LATEST.c.number, _LATEST.c.subject, _LATEST.c.status, _LATEST.c.created_at)
           .select_from(_HISTORY.outerjoin(_LATEST, true())))
# And the tickets whose recorded mail names `message_id` (`tickets_referencing`), as an array
# beside them (SQLite: a JSON array).
_NAMING_ONE = (select(MessageReference.ticket_id).distinct()
               .where(MessageReference.referenced_id == bindparam("message_id"))
               .order_by(MessageReference.ticket_id).limit(10).subquery())
_COUNTS_AND_NAMING = {
    "postgresql": _COUNTS.add_columns(
        select(func.array_agg(_NAMING_ONE.c.ticket_id)).scalar_subquery().label("naming")),
    "sqlite": _COUNTS.add_columns(
        select(func.json_group_array(_NAMING_ONE.c.ticket_id)).scalar_subquery()
        .label("naming"))}


# A batch of the processor on SQLite, holding the write lock from its first statement to its
# commit, draws numbers from the counter it bumped once and writes where it got to at its end
# (`numbers_in_batch`, `write_numbers`): one statement a batch instead of one a new ticket.
_NUMBERS = "maildesk.ticket_numbers_in_batch"


@dataclass
class _Numbers:
    last: int | None = None      # the last number handed out
    written: int | None = None   # the counter's value in the transaction


def numbers_in_batch(session: Session) -> None:
    """SQLite: from now on the session's new tickets take numbers past the one the counter
    gave first, until `write_numbers(stop=True)`. Only for one transaction that holds the write
    lock throughout and rolls back whole (no savepoint may undo a number's bump alone)."""
    if session.get_bind().dialect.name == "sqlite":
        session.info[_NUMBERS] = _Numbers()


def write_numbers(session: Session, *, stop: bool = False) -> None:
    """Set the counter to the last number handed out; `stop`: and bump it per ticket again."""
    held = session.info.pop(_NUMBERS, None) if stop else session.info.get(_NUMBERS)
    if held is not None and held.last != held.written:
        session.connection().execute(update(Counter).where(Counter.name == "ticket")
                                     .values(value=held.last))
        held.written = held.last


def next_ticket_number(session: Session, first: int) -> int:
    """Bump the ticket counter. The row lock serialises writers, so numbers stay unique; the
    counter only grows, so a deleted ticket's number is never reused.

    SQLite (one writer anyway): in the caller's transaction, so numbers have no gaps (in a batch,
    `numbers_in_batch`, the counter is written once at its end). PostgreSQL:
    in a transaction of its own, committed at once, so the counter's row lock is held for one
    statement and not for the caller's whole batch: several daemons open tickets at the same
    time. A batch that then fails leaves its numbers unused, as a sequence would."""
    held: _Numbers | None = session.info.get(_NUMBERS)
    if held is not None:
        if held.last is None:
            held.last = held.written = _bump(session.connection(), first)
        else:
            held.last += 1
        return held.last
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return _bump(session.connection(), first)
    # One statement, committed at once without waiting for the disk: the WAL is written in
    # order, so the commit of any ticket with this number makes the bump durable first. A
    # crash can only lose the bump of a number no committed ticket has, which the next ticket
    # then gets.
    solo = solo_engine(bind if isinstance(bind, Engine) else bind.engine)
    for attempt in (1, 2):
        try:
            with solo.connect() as conn:
                return _bump(conn, first)
        except DBAPIError as exc:   # a connection the server dropped (no ping): once more
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _bump(conn: Connection, first: int) -> int:
    number = conn.execute(_BUMP).scalar()
    if number is None:  # the very first ticket: create the counter (racing writers: one wins)
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(Counter)
        conn.execute(ins.values(name="ticket", value=first - 1)
                     .on_conflict_do_nothing(index_elements=["name"]))
        number = conn.execute(_BUMP).scalar_one()
    return number


class HeldTickets:
    """What one message's lookups found, kept for its applier (until the next message's).

    The tickets stay loaded: the session's identity map holds an unchanged object only
    weakly, and a ticket the thread lookup loaded was gone again when the decision asked for
    its state, and again when the applier joined it, each time one more SELECT of the same
    row. And who takes part in them: the applier need not ask again."""

    def __init__(self) -> None:
        self.tickets: list[Ticket] = []
        self.participants: set[tuple[int, str]] = set()   # (ticket id, address)
        # PostgreSQL: the ticket read again as the statement that locked it found it (process/
        # contention.py): current for the applier, which need not read it once more.
        self.locked: int | None = None
        # Addresses' latest tickets, read with the autoreply counts, the ticket lock or a timer
        # sweep: {address: [(id, number, subject, status, created_at)]}, LATEST_TICKETS at most
        # each, newest first.
        self.requester_tickets: dict[str, list[tuple[Any, ...]]] = {}
        # A timer sweep's tickets' latest mails for their line notifications (effects/notify.py
        # `_HISTORY`'s rows), by ticket id; each taken once (a later cause reads it again).
        self.histories: dict[int, list[Any]] = {}


def held_tickets(session: Session) -> HeldTickets | None:
    """What this message's lookups keep (`hold_tickets`), if any."""
    held: HeldTickets | None = session.info.get(_HELD)
    return held


def hold_tickets(session: Session) -> HeldTickets:
    """From now on, until the next call, keep what these lookups find (HeldTickets)."""
    held = session.info[_HELD] = HeldTickets()
    return held


def takes_part(session: Session, ticket_id: int, address: str) -> bool | None:
    """True when the lookups found `address` among the ticket's participants; None: they do
    not know (no rows are ever removed, so only a yes can be relied on)."""
    held = session.info.get(_HELD)
    return True if held is not None and (ticket_id, address) in held.participants else None


def _facts(session: Session, tickets: Sequence[Ticket], sender: str,
           with_sender: set[int]) -> list[TicketFacts]:
    """`with_sender`: the ids of those on which `sender` takes part (asked with them)."""
    held = session.info.get(_HELD)
    if held is not None:
        held.tickets.extend(tickets)
        held.participants.update((i, sender) for i in with_sender)
    return [TicketFacts(id=t.id, number=t.number, status=t.status.value, reply_token=t.reply_token,
                        participants=frozenset({sender}) if t.id in with_sender else frozenset(),
                        last_activity_at=t.last_activity_at) for t in tickets]


def ticket_by_token(session: Session, number: int, token: str,
                    sender: str) -> tuple[TicketFacts, bool] | None:
    """The ticket a reply token names, and whether it was the agents' token (never shown to
    the client) rather than the client's."""
    row = session.execute(_BY_NUMBER, {"number": number, "sender": sender}).first()
    if row is None:
        return None
    ticket, sends = row
    # Both compared, in constant time: how long the answer takes says nothing of either.
    client, agent = token_matches(token, ticket.reply_token), token_matches(token, ticket.agent_token)
    if client or agent:
        return (_facts(session, [ticket], sender, {ticket.id} if sends else set())[0],
                agent and not client)
    return None


def tickets_by_message_ids(session: Session, ids: Sequence[str], sender: str) -> list[TicketFacts]:
    """Tickets owning any of `ids`, in the order of the first id each one owns."""
    if not ids:
        return []
    owner: dict[str, int] = {}
    tickets: dict[int, Ticket] = {}
    with_sender: set[int] = set()
    for ticket, mid, sends in session.execute(
            _OWNED, {"ids": list(dict.fromkeys(ids))[:200], "sender": sender}):
        owner.setdefault(mid, ticket.id)
        tickets[ticket.id] = ticket
        if sends:
            with_sender.add(ticket.id)
    order = dict.fromkeys(owner[i] for i in ids if i in owner)
    return _facts(session, [tickets[i] for i in order], sender, with_sender)


def tickets_referencing(session: Session, message_id: str | None,
                        sender: str) -> list[TicketFacts]:
    """Tickets with a recorded mail whose In-Reply-To/References name `message_id`, oldest
    ticket first: where a mail belongs whose reply arrived before it."""
    return _naming(session, [message_id] if message_id else [], sender)


def tickets_sharing_references(session: Session, ids: Sequence[str],
                               sender: str) -> list[TicketFacts]:
    """Tickets with a recorded mail that names any of `ids` too, oldest ticket first: where a
    reply belongs whose sibling (a reply to the same, absent mail) arrived before it."""
    return _naming(session, list(dict.fromkeys(i for i in ids if i))[:MAX_LOOKED_UP_REFERENCES],
                   sender)


def _naming(session: Session, ids: list[str], sender: str) -> list[TicketFacts]:
    if not ids:
        return []
    # Mostly nothing is found: the cheap read of the index first, the tickets only then.
    return _tickets_by_id(session, list(session.connection().scalars(_REFERENCING, {"ids": ids})),
                          sender)


def _tickets_by_id(session: Session, ids: list[int], sender: str) -> list[TicketFacts]:
    if not ids:
        return []
    rows = session.execute(_TICKETS_BY_ID, {"ids": ids, "sender": sender}).all()
    return _facts(session, [t for t, _ in rows], sender, {t.id for t, sends in rows if sends})


def tickets_by_numbers(session: Session, numbers: Iterable[int], sender: str) -> list[TicketFacts]:
    numbers = list(dict.fromkeys(numbers))[:20]
    if not numbers:
        return []
    found = {t.number: (t, sends) for t, sends in
             session.execute(_BY_NUMBERS, {"numbers": numbers, "sender": sender})}
    rows = [found[n] for n in numbers if n in found]
    return _facts(session, [t for t, _ in rows], sender, {t.id for t, sends in rows if sends})


def tickets_by_subject(session: Session, key: str, sender: str, limit: int = 10) -> list[TicketFacts]:
    """Not-closed tickets with this subject key on which `sender` takes part, newest first."""
    if not key:
        return []
    tickets = session.scalars(_BY_SUBJECT, {"key": key, "sender": sender, "limit": limit}).all()
    return _facts(session, tickets, sender, {t.id for t in tickets})


Counts = tuple[int, bool, int, int]


def autoreply_counts(session: Session, address: str, domain: str, *, sent_since: datetime,
                     bounced_since: datetime, since: datetime) -> Counts:
    """For the loop guards and the backscatter caps, in one statement of indexed reads: how
    many autoreplies went to `address` since `sent_since` (the hourly cap); whether mail to it
    bounced since `bounced_since` (such an address gets no autoreply for a while); and the
    autoreplies queued since `since` to addresses of `domain`, and in total."""
    rows = session.connection().execute(_COUNTS, {
        "sent_since": sent_since, "bounced_since": bounced_since, "address": address,
        "domain": domain.lower(), "since": since}).all()
    return _counted(session, address, rows)


def _counted(session: Session, address: str, rows: Sequence[Any]) -> Counts:
    held = session.info.get(_HELD)
    if held is not None:
        held.requester_tickets[address] = [tuple(r[4:9]) for r in rows if r[4] is not None]
    row = rows[0]
    return row[0] or 0, bool(row[1]), row[2] or 0, row[3] or 0


def referencing_and_counts(session: Session, message_id: str, sender: str, domain: str, *,
                           sent_since: datetime, bounced_since: datetime,
                           since: datetime) -> tuple[list[TicketFacts], Counts]:
    """`tickets_referencing` and `autoreply_counts` in one statement, for a mail that names no
    other (most likely it opens a ticket, and then it asks for both)."""
    conn = session.connection()
    rows = conn.execute(_COUNTS_AND_NAMING[conn.dialect.name], {
        "sent_since": sent_since, "bounced_since": bounced_since, "address": sender,
        "domain": domain.lower(), "since": since, "message_id": message_id}).all()
    counts = _counted(session, sender, rows)
    naming = rows[0].naming
    if isinstance(naming, str):   # SQLite's JSON text
        naming = json.loads(naming)
    return _tickets_by_id(session, naming or [], sender), counts
