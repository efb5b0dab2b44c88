"""The read-only queries decide() asks, answered from the database (db/queries.py).

The runner uses one per message inside its write transaction; `rules test` uses one on a
read-only session, so both decide from the same facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from maildesk.db import queries
from maildesk.db.models import (Counter, Inbound, Message, Outbox, RawMessage, Ticket,
                                TicketEvent)
from maildesk.domain import EventKind
from maildesk.effects.events import write_later
from maildesk.pipeline.agent import TicketState
from maildesk.pipeline.authenticity import domain_of
from maildesk.pipeline.decide import OutgoingFacts, SenderHistory
from maildesk.pipeline.subject import SubjectInfo
from maildesk.pipeline.thread import ThreadFacts, TicketFacts

# Built once (see db/queries.py): the same message seen before, by its dedupe key.
_EARLIER = select(Message.id, Ticket.number).join(Ticket).where(
    Message.dedupe_key == bindparam("key"))
_SUGGESTED = (select(TicketEvent.data)
              .where(TicketEvent.ticket_id == bindparam("ticket_id"),
                     TicketEvent.kind == EventKind.KB_SUGGESTED)
              .order_by(TicketEvent.id).limit(1))
_RAW = select(RawMessage.data).join(Inbound, Inbound.raw_id == RawMessage.id).where(
    Inbound.id == bindparam("inbound_id"))


class DbLookups:
    """decide()'s `Lookups` on a session; `inbound_id` names the stored raw bytes."""

    def __init__(self, session: Session, inbound_id: int | None = None, raw: bytes | None = None,
                 known_copy: tuple[str, tuple[int, int] | None] | None = None,
                 history_window: tuple[datetime, datetime] | None = None):
        self.session = session
        # The processor: `sender_history`'s (since, bounced_since), to ask it with the thread
        # lookups of a mail that names no other; what they found, by its question.
        self._window = history_window
        self._history: tuple[tuple[str, datetime, datetime], SenderHistory] | None = None
        self._inbound_id = inbound_id
        self._raw = raw
        # (dedupe key, what duplicate_of answers for it), read already in this transaction
        # (PostgreSQL: with the contention check, process/contention.py).
        self._known_copy = known_copy
        # The tickets decided about stay loaded for the applier (one message's at a time).
        self._held = queries.hold_tickets(session)

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = bytes(self.session.scalar(_RAW, {"inbound_id": self._inbound_id}) or b"")
        return self._raw

    def next_ticket_number(self, first: int) -> int:
        """The number a new ticket would get now (for the dry run's autoreply)."""
        value = self.session.scalar(select(Counter.value).where(Counter.name == "ticket"))
        return first if value is None else value + 1

    def duplicate_of(self, key: str) -> tuple[int, int] | None:
        if self._known_copy is not None and self._known_copy[0] == key:
            return self._known_copy[1]
        row = self.session.connection().execute(_EARLIER, {"key": key}).first()
        return (row.id, row.number) if row is not None else None

    def outgoing(self, outbox_id: int | None, legacy_tag: str | None) -> OutgoingFacts | None:
        if outbox_id is not None:
            row = self.session.get(Outbox, outbox_id)
        else:
            row = self.session.scalar(select(Outbox).where(Outbox.bounce_tag == legacy_tag)
                                      .order_by(Outbox.id.desc()).limit(1))
        if row is None:
            return None
        return OutgoingFacts(row.id, row.bounce_tag, row.recipients[0] if row.recipients else "",
                             row.created_at)

    def ticket_by_token(self, number: int, token: str,
                        sender: str) -> tuple[TicketFacts, bool] | None:
        return queries.ticket_by_token(self.session, number, token, sender)

    def thread_facts(self, sender: str, subject: SubjectInfo, ref_ids: Sequence[str],
                     message_id: str | None) -> ThreadFacts:
        s = self.session
        referenced = tuple(queries.tickets_by_message_ids(s, ref_ids, sender))
        # Asked only when they can decide: the mail's own references come first, then the
        # mails that name it, then the mails that name what it names.
        if referenced or not message_id:
            referenced_by: tuple[TicketFacts, ...] = ()
        elif not ref_ids and self._window is not None:
            found, counts = queries.referencing_and_counts(
                s, message_id, sender, domain_of(sender), sent_since=self._window[0],
                bounced_since=self._window[1], since=self._window[0])
            referenced_by = tuple(found)
            self._history = ((sender, *self._window), _sender_history(counts))
        else:
            referenced_by = tuple(queries.tickets_referencing(s, message_id, sender))
        siblings = () if referenced or referenced_by or not ref_ids else tuple(
            queries.tickets_sharing_references(s, ref_ids, sender))
        # Where the headers decide, tag and subject are not asked (pipeline/thread.py).
        by_subject = not (referenced or referenced_by or siblings)
        return ThreadFacts(
            token_ticket=None,
            referenced=referenced,
            referenced_by=referenced_by,
            sharing_references=siblings,
            tagged=tuple(queries.tickets_by_numbers(s, subject.tag_numbers, sender))
            if by_subject else (),
            same_subject=tuple(queries.tickets_by_subject(s, subject.key, sender))
            if by_subject and (subject.is_reply or subject.is_forward) else ())

    def ticket_state(self, ticket_id: int) -> TicketState:
        t = self.session.get_one(Ticket, ticket_id)
        self._held.tickets.append(t)
        return TicketState(number=t.number, status=t.status, line=t.line, priority=t.priority,
                           assignee=t.assignee, category=t.category, tags=tuple(t.tags or ()),
                           subject=t.subject, requester=t.requester,
                           requester_name=t.requester_name, language=t.language,
                           sla_policy=t.sla_policy,
                           first_response_due_at=t.first_response_due_at,
                           resolution_due_at=t.resolution_due_at)

    def search_tickets(self, query: str, limit: int) -> list[dict[str, Any]]:
        """An agent's #search over every ticket (agents see them all), best first."""
        from maildesk.search.query import search_tickets

        write_later(self.session)   # the batch's mails so far are found too
        return [{"number": h.number, "status": getattr(h.status, "value", h.status),
                 "subject": h.subject,
                 "snippet": h.snippet}
                for h in search_tickets(self.session, query, limit=limit)]

    def suggested_articles(self, ticket_id: int) -> tuple[tuple[str, ...], str]:
        """The articles the ticket's acknowledgement named, in its order, and its language."""
        data = self.session.scalar(_SUGGESTED, {"ticket_id": ticket_id})
        if not isinstance(data, dict):
            return (), ""
        slugs = data.get("articles")
        return (tuple(str(s) for s in slugs) if isinstance(slugs, list) else (),
                str(data.get("language") or ""))

    def sender_history(self, sender: str, *, since: datetime,
                       bounced_since: datetime) -> SenderHistory:
        if self._history is not None and self._history[0] == (sender, since, bounced_since):
            return self._history[1]
        return _sender_history(queries.autoreply_counts(
            self.session, sender, domain_of(sender), sent_since=since,
            bounced_since=bounced_since, since=since))


def _sender_history(counts: queries.Counts) -> SenderHistory:
    sent, bounced, to_domain, total = counts
    return SenderHistory(to_sender=sent, to_domain=to_domain, total=total,
                         bounced_recently=bounced)


class EmptyLookups:
    """decide()'s `Lookups` for a database with nothing in it (a dry run without one)."""

    def __init__(self, raw: bytes = b""):
        self._raw = raw

    def raw(self) -> bytes:
        return self._raw

    def next_ticket_number(self, first: int) -> int:
        return first

    def duplicate_of(self, key: str) -> tuple[int, int] | None:
        return None

    def outgoing(self, outbox_id: int | None, legacy_tag: str | None) -> OutgoingFacts | None:
        return None

    def ticket_by_token(self, number: int, token: str,
                        sender: str) -> tuple[TicketFacts, bool] | None:
        return None

    def thread_facts(self, sender: str, subject: SubjectInfo, ref_ids: Sequence[str],
                     message_id: str | None) -> ThreadFacts:
        return ThreadFacts(token_ticket=None, referenced=(), tagged=(), same_subject=())

    def ticket_state(self, ticket_id: int) -> TicketState:
        raise LookupError(f"no ticket {ticket_id} in an empty database")

    def suggested_articles(self, ticket_id: int) -> tuple[tuple[str, ...], str]:
        return (), ""

    def search_tickets(self, query: str, limit: int) -> list[dict[str, Any]]:
        return []

    def sender_history(self, sender: str, *, since: datetime,
                       bounced_since: datetime) -> SenderHistory:
        return SenderHistory()
