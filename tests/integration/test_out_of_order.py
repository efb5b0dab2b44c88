"""A mail that arrives after a reply to it joins the reply's ticket (issue 18).

Eight SMTP clients delivering a threaded corpus at once, or SMTP and IMAP at their own speeds,
hand the reply in before the mail it answers. The reply names the original in In-Reply-To and
References; the original names nothing of the reply. The references of every recorded mail are
kept (capped), so the original finds the reply's ticket by its own Message-ID.
"""

from __future__ import annotations

from alembic import command
from sqlalchemy import delete, func, select, update

from helpers import deliver, ticket_count
from mails import mail
from maildesk.app import alembic_config
from maildesk.db import queries
from maildesk.db.models import Message, MessageReference, Ticket, TicketStatus
from maildesk.effects.apply import MAX_STORED_REFERENCES

CLIENT = "Анна Смирнова <anna@customer.example>"
COLLEAGUE = "Boris <boris@customer.example>"
SUBJECT = "Касса не печатает чеки"


def original(**kw) -> bytes:
    kw.setdefault("sender", CLIENT)
    return mail(subject=SUBJECT, message_id="<a@customer.example>", **kw)


def reply(**kw) -> bytes:
    kw.setdefault("sender", COLLEAGUE)
    kw.setdefault("message_id", "<b@customer.example>")
    return mail(subject=f"Re: {SUBJECT}", in_reply_to="<a@customer.example>",
                references=["<a@customer.example>"], **kw)


def references_of(ctx, message_id: str) -> list[str]:
    with ctx.make_session() as s:
        row = s.scalar(select(Message.id).where(Message.message_id == message_id))
        return list(s.scalars(select(MessageReference.referenced_id)
                              .where(MessageReference.message_id == row)
                              .order_by(MessageReference.id)))


def all_references(ctx) -> list[tuple[int, int, str]]:
    with ctx.make_session() as s:
        return [tuple(r) for r in s.execute(
            select(MessageReference.message_id, MessageReference.ticket_id,
                   MessageReference.referenced_id).order_by(MessageReference.id))]


def test_the_original_arriving_after_its_reply_joins_the_reply_ticket(ctx, processor):
    # Needs the thread facts to carry `referenced_by` (process/lookups.py DbLookups.thread_facts).
    b = deliver(ctx, processor, reply())
    a = deliver(ctx, processor, original())
    assert a.id == b.id and ticket_count(ctx) == 1
    assert [(m.message_id, m.thread_reason) for m in a.messages if m.direction.value == "in"] \
        == [("b@customer.example", "new"), ("a@customer.example", "referenced-by")]
    assert {p.address for p in a.participants} >= {"anna@customer.example",
                                                  "boris@customer.example"}


def test_a_thread_of_three_delivered_backwards_ends_on_one_ticket(ctx, processor):
    # Needs the thread facts to carry `referenced_by`, as above.
    c = deliver(ctx, processor, mail(sender=CLIENT, subject=f"Re: Re: {SUBJECT}",
                                     message_id="<c@customer.example>",
                                     in_reply_to="<b@customer.example>",
                                     references=["<a@customer.example>", "<b@customer.example>"]))
    b = deliver(ctx, processor, reply())
    a = deliver(ctx, processor, original())
    assert a.id == b.id == c.id and ticket_count(ctx) == 1


def test_two_replies_to_a_mail_not_yet_arrived_share_one_ticket_with_it(ctx, processor):
    # Boris and Anna both answer <a>; both answers come before <a> itself.
    b = deliver(ctx, processor, reply())
    c = deliver(ctx, processor, mail(sender=CLIENT, subject=f"Re: {SUBJECT}",
                                     message_id="<c@customer.example>",
                                     in_reply_to="<a@customer.example>",
                                     references=["<a@customer.example>"]))
    a = deliver(ctx, processor, original())
    assert a.id == b.id == c.id and ticket_count(ctx) == 1
    assert [m.thread_reason for m in a.messages if m.direction.value == "in"] \
        == ["new", "shared-references", "referenced-by"]


def test_a_reply_naming_a_mail_only_an_unrelated_ticket_names_stays_apart_when_closed(
        ctx, processor):
    # Shared references join like references do: a closed ticket gets a linked new one.
    b = deliver(ctx, processor, reply())
    with ctx.make_session.begin() as s:
        s.execute(update(Ticket).where(Ticket.id == b.id).values(status=TicketStatus.CLOSED))
    c = deliver(ctx, processor, mail(sender=CLIENT, subject=f"Re: {SUBJECT}",
                                     message_id="<c@customer.example>",
                                     in_reply_to="<a@customer.example>"))
    assert c.id != b.id and c.linked_ticket_id == b.id


def test_the_original_of_a_reply_on_a_closed_ticket_opens_a_linked_one(ctx, processor):
    # Needs the thread facts to carry `referenced_by`, as above.
    b = deliver(ctx, processor, reply())
    with ctx.make_session.begin() as s:
        s.execute(update(Ticket).where(Ticket.id == b.id).values(status=TicketStatus.CLOSED))
    a = deliver(ctx, processor, original())
    assert a.id != b.id and a.linked_ticket_id == b.id
    assert a.messages[0].thread_reason == "after-closed"


def test_references_are_kept_in_reply_then_newest_first(ctx, processor):
    deliver(ctx, processor, mail(sender=CLIENT, message_id="<c@customer.example>",
                                 in_reply_to="<b@customer.example>",
                                 references=["<a@customer.example>", "<b@customer.example>",
                                             "<c@customer.example>"]))
    # Its own id is not kept; the duplicate of In-Reply-To in References is kept once.
    assert references_of(ctx, "c@customer.example") == ["b@customer.example",
                                                        "a@customer.example"]
    deliver(ctx, processor, original())
    assert references_of(ctx, "a@customer.example") == []


def test_the_reply_ticket_is_found_by_the_original_message_id(ctx, processor):
    b = deliver(ctx, processor, reply())
    deliver(ctx, processor, mail(subject="unrelated", message_id="<x@customer.example>"))
    with ctx.make_session() as s:
        found = queries.tickets_referencing(s, "a@customer.example", "anna@customer.example")
        assert [t.id for t in found] == [b.id]
        assert found[0].participants == frozenset()   # Anna has not written on it yet
        assert queries.tickets_referencing(s, "b@customer.example", "x") == []
        assert queries.tickets_referencing(s, None, "x") == []


def test_a_hostile_mail_with_thousands_of_references_writes_a_capped_number_of_rows(
        ctx, processor):
    hostile = mail(sender=CLIENT, message_id="<hostile@evil.example>",
                   in_reply_to=" ".join(f"<irt{i}@evil.example>" for i in range(300)),
                   references=[f"<r{i}@evil.example>" for i in range(5000)])
    t = deliver(ctx, processor, hostile)
    assert t is not None
    with ctx.make_session() as s:
        stored = s.scalar(select(func.count()).select_from(MessageReference))
    assert 0 < stored <= MAX_STORED_REFERENCES


def test_the_migration_backfills_what_processing_writes(ctx, processor):
    deliver(ctx, processor, reply())
    deliver(ctx, processor, mail(sender=CLIENT, subject=f"Re: Re: {SUBJECT}",
                                 message_id="<c@customer.example>",
                                 in_reply_to="<b@customer.example>",
                                 references=[f"<r{i}@customer.example>" for i in range(80)]
                                 + ["<a@customer.example>", "<b@customer.example>"]))
    deliver(ctx, processor, mail(subject="no headers", message_id="<d@customer.example>"))
    written = all_references(ctx)
    assert len(written) == 1 + MAX_STORED_REFERENCES
    with ctx.make_session.begin() as s:
        s.execute(delete(MessageReference))
    ctx.engine.dispose()
    cfg = alembic_config(ctx.settings.database.url)
    command.downgrade(cfg, "0008")
    command.upgrade(cfg, "head")
    assert sorted(all_references(ctx)) == sorted(written)
