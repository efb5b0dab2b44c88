"""Several daemons on one PostgreSQL: what one of them is working on, the others skip, and they
find the next work instead of waiting for it or doing it twice (issue 22).

Claims are row locks taken by the statement that finds the work (`FOR UPDATE SKIP LOCKED`), in
the transaction that does it: a daemon that dies releases them with its connection."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from desk import MONDAY, Desk, body
from helpers import store
from mails import mail
from maildesk.db.models import Direction, Message, Outbox, Ticket, TicketTimer, TimerState
from maildesk.effects.timers import due_timers
from maildesk.pipeline.parse import parse_message
from maildesk.pipeline.plan import dedupe_key
from maildesk.process import contention
from maildesk.process.affinity import STALE, OwnIntake, claim_pending
from maildesk.process import run

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def desk(config_set):
    d = Desk(config_set.path, MONDAY)
    yield d
    d.close()


def ticket_of(session, timer_ids: list[int]) -> dict[int, int]:
    rows = session.execute(select(TicketTimer.id, TicketTimer.ticket_id)
                           .where(TicketTimer.id.in_(timer_ids)))
    return dict(rows.all())


def test_two_sweepers_claim_timers_of_different_tickets(desk):
    for i in range(6):
        desk.client_writes(f"Printer {i} is broken", f"Printer {i} prints nothing.")
    now = MONDAY + timedelta(days=30)   # every deadline of every ticket is long past
    with desk.ctx.make_session() as s:
        due = s.scalars(select(TicketTimer.id).where(TicketTimer.state == TimerState.PENDING,
                                                     TicketTimer.due_at <= now)).all()
    assert len(due) >= 12   # several timers per ticket

    first, second = desk.ctx.make_session(), desk.ctx.make_session()
    try:
        with first.begin(), second.begin():
            a = due_timers(first, now, 5)          # the five oldest, their tickets claimed
            b = due_timers(second, now, len(due))  # everything the first has not claimed
            tickets_a, tickets_b = ticket_of(first, a), ticket_of(first, b)
            assert len(a) == 5 and b and not set(a) & set(b)
            # Not even the later timers of a ticket the first sweeper holds: a ticket's timers
            # fire in the order they fell due.
            assert not set(tickets_a.values()) & set(tickets_b.values())
            first.rollback()                       # the first sweeper dies: its claims end
            c = due_timers(second, now, len(due))
            assert set(a) <= set(c)
    finally:
        first.close()
        second.close()


@contextmanager
def another_batch(ctx) -> Iterator[Session]:
    """A session in an open transaction, as another daemon's batch in flight; when the block
    ends that daemon dies: its transaction rolls back and its claims end."""
    other = ctx.make_session()
    try:
        with other.begin():
            yield other
            other.rollback()
    finally:
        other.close()


def test_a_second_processor_takes_the_next_mail_not_the_claimed_one(ctx, processor):
    ids = [store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
           for i in range(6)]
    with another_batch(ctx) as other:
        held = claim_pending(other, 3)   # another daemon's batch, in flight
        assert sorted(held) == ids[:3]
        outcomes = processor.run_batch(limit=10)
        assert sorted(o.inbound_id for o in outcomes) == ids[3:]
    assert sorted(o.inbound_id for o in processor.drain()) == ids[:3]


def test_a_daemon_processes_the_mail_it_stored_before_older_mail_of_another(ctx, processor):
    ids = [store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
           for i in range(6)]
    processor.own = OwnIntake()
    processor.own.add(ids[4:])      # what this daemon's listener stored; the rest came elsewhere
    assert sorted(o.inbound_id for o in processor.run_batch(limit=10)) == ids[4:]
    assert len(processor.own) == 0
    assert sorted(o.inbound_id for o in processor.run_batch(limit=10)) == ids[:4]


def test_a_daemon_that_dies_leaves_its_mail_to_the_others(ctx, processor):
    ids = [store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
           for i in range(6)]
    theirs = OwnIntake()
    theirs.add(ids[3:])
    with another_batch(ctx) as other:
        # The other daemon claims only its own, though older mail is pending ...
        assert sorted(claim_pending(other, 10, theirs, now=datetime.now(timezone.utc))) == ids[3:]
        assert sorted(o.inbound_id for o in processor.run_batch(limit=10)) == ids[:3]
    # ... and dies: its claims end, this daemon takes its mail up.
    assert sorted(o.inbound_id for o in processor.drain()) == ids[3:]


def test_own_mail_done_elsewhere_is_forgotten_and_the_oldest_of_all_claimed(ctx):
    ids = [store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
           for i in range(6)]
    own = OwnIntake()
    own.add(ids[:2])
    with another_batch(ctx) as other, another_batch(ctx) as mine:
        claim_pending(other, 10, only=ids[:2])          # another daemon took them over
        assert sorted(claim_pending(mine, 3, own, now=datetime.now(timezone.utc))) == ids[2:5]
        assert len(own) == 0


def test_a_reply_of_its_own_waiting_for_an_original_nobody_claims_is_not_stuck(ctx, processor):
    # The original came in at a daemon that died before processing it; the reply here.
    original = store(ctx, mail(subject="Printer", message_id="<orig@customer.example>"))
    reply = store(ctx, mail(subject="Re: Printer", message_id="<re@customer.example>",
                            in_reply_to="<orig@customer.example>"))
    processor.own = OwnIntake()
    processor.own.add([reply])
    assert [(o.inbound_id, o.status) for o in processor.run_batch(limit=10)] == [
        (reply, "deferred")]                       # an earlier mail of its thread is pending
    done = processor.run_batch(limit=10)           # then the order of all: the original first
    assert [(o.inbound_id, o.status) for o in done] == [(original, "done"), (reply, "done")]
    assert done[0].ticket_number == done[1].ticket_number


def test_mail_pending_long_is_taken_before_a_daemons_own(ctx):
    ids = [store(ctx, mail(sender=f"c{i}@customer.example", subject=f"question {i}"))
           for i in range(4)]
    own = OwnIntake()
    own.add(ids[2:])
    later = datetime.now(timezone.utc) + STALE + timedelta(seconds=1)
    with another_batch(ctx) as mine:
        assert sorted(claim_pending(mine, 2, own, now=later)) == ids[:2]


# -- what a batch needs that another one holds: it waits its turn, it does not wait on a lock --
def ticket_numbers(ctx) -> list[int]:
    with ctx.make_session() as s:
        return list(s.scalars(select(Ticket.number).order_by(Ticket.number)))


def test_a_reply_waits_while_its_original_is_held_by_another_processor(ctx, processor):
    original = store(ctx, mail(subject="Printer", message_id="<orig@customer.example>"))
    reply = store(ctx, mail(subject="Re: Printer", message_id="<re@customer.example>",
                            in_reply_to="<orig@customer.example>",
                            references=["<orig@customer.example>"]))
    with another_batch(ctx) as other:
        assert list(claim_pending(other, 1)) == [original]   # being written
        (outcome,) = processor.run_batch(limit=10)
        assert (outcome.inbound_id, outcome.status) == (reply, "deferred")
        assert ticket_numbers(ctx) == []            # no ticket of its own
    assert [o.status for o in processor.drain()] == ["done", "done"]
    assert len(ticket_numbers(ctx)) == 1               # one thread, one ticket


def test_an_original_waits_while_its_reply_stored_before_it_is_held_elsewhere(ctx, processor):
    reply = store(ctx, mail(subject="Re: Printer", message_id="<re@customer.example>",
                            in_reply_to="<orig@customer.example>"))
    original = store(ctx, mail(subject="Printer", message_id="<orig@customer.example>"))
    with another_batch(ctx) as other:
        assert list(claim_pending(other, 1)) == [reply]
        (outcome,) = processor.run_batch(limit=10)
        assert (outcome.inbound_id, outcome.status) == (original, "deferred")
    assert [o.status for o in processor.drain()] == ["done", "done"]
    assert len(ticket_numbers(ctx)) == 1


def test_a_new_mail_of_another_thread_does_not_wait(ctx, processor):
    store(ctx, mail(subject="Printer", message_id="<orig@customer.example>"))
    other_thread = store(ctx, mail(sender="Somebody <else@elsewhere.example>",
                                   subject="Scanner", message_id="<scan@elsewhere.example>"))
    with another_batch(ctx) as other:
        claim_pending(other, 1)
        (outcome,) = processor.run_batch(limit=10)
        assert (outcome.inbound_id, outcome.status) == (other_thread, "done")


def test_a_reply_by_subject_waits_while_mail_naming_its_sender_is_held_elsewhere(ctx, processor):
    """Only its subject says it is a reply: it joins a ticket its sender takes part in, which
    an earlier mail naming the sender (here in its header, in other case, sent through a list
    with an envelope of its own) may be opening elsewhere."""
    original = store(ctx, mail(sender="Client <CLIENT@Customer.Example>", subject="Printer"),
                     mail_from="bounces@lists.customer.example")
    reply = store(ctx, mail(subject="Re: Printer"), mail_from="client@customer.example")
    with another_batch(ctx) as other:
        assert list(claim_pending(other, 1)) == [original]   # being written
        (outcome,) = processor.run_batch(limit=10)
        assert (outcome.inbound_id, outcome.status) == (reply, "deferred")
    assert [o.status for o in processor.drain()] == ["done", "done"]
    assert len(ticket_numbers(ctx)) == 1               # one thread, one ticket


def test_a_reply_by_subject_does_not_wait_for_mail_of_other_senders(ctx, processor):
    """A forward or a reply from outside opens its ticket while other clients' mail is being
    written elsewhere (it used to wait until no earlier mail at all was pending)."""
    store(ctx, mail(sender="Somebody <else@elsewhere.example>", subject="Scanner"),
          mail_from="else@elsewhere.example")
    forward = store(ctx, mail(subject="Fwd: invoice from our supplier"),
                    mail_from="client@customer.example")
    with another_batch(ctx) as other:
        claim_pending(other, 1)
        (outcome,) = processor.run_batch(limit=10)
        assert (outcome.inbound_id, outcome.status) == (forward, "done")


def test_mail_to_a_ticket_another_processor_is_changing_waits_for_it(ctx, processor):
    store(ctx, mail(subject="Printer", message_id="<orig@customer.example>"))
    processor.drain()
    (number,) = ticket_numbers(ctx)
    reply = store(ctx, mail(subject="Re: Printer", in_reply_to="<orig@customer.example>"))
    with another_batch(ctx) as other:
        other.execute(select(Ticket.id).with_for_update())   # e.g. a timer sweep
        (outcome,) = processor.run_batch(limit=10)
        assert (outcome.inbound_id, outcome.status) == (reply, "deferred")
    (outcome,) = processor.drain()
    assert (outcome.status, outcome.ticket_number) == ("done", number)


def test_a_copy_another_processor_is_applying_waits_and_is_then_a_duplicate(ctx, processor):
    raw = mail(subject="Printer", message_id="<twice@customer.example>")
    parsed = parse_message(raw)
    store(ctx, raw)
    copy = store(ctx, raw, rcpt=("help@example.com",))
    with another_batch(ctx) as other:
        claim_pending(other, 1)               # the first copy, being applied
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                      {"k": contention._key(dedupe_key(parsed))})
        (outcome,) = processor.run_batch(limit=10)
        assert (outcome.inbound_id, outcome.status) == (copy, "deferred")
    assert [o.status for o in processor.drain()] == ["done", "duplicate"]
    assert len(ticket_numbers(ctx)) == 1


@pytest.fixture
def parser_ahead(monkeypatch):
    """The parse child ahead of the batch (as under load): each mail is processed once the
    rest of the batch waits parsed in the queue, so their locks and reads go together."""
    peek = run._parsed_ahead

    def waiting(parsed):   # type: ignore[no-untyped-def]
        for _ in range(200):
            if parsed.full() or len(peek(parsed)) >= waiting.rest:
                break
            time.sleep(0.01)
        waiting.rest -= 1
        return peek(parsed)

    monkeypatch.setattr(run, "_parsed_ahead", waiting)
    return waiting


def test_a_copy_in_the_middle_of_a_batch_waits_while_the_others_go_ahead(ctx, processor,
                                                                           parser_ahead):
    # The batch tries the locks of the mails it has parsed ahead together with the first
    # one's: the copy's is refused then, and again at its turn; the mails around it go on.
    raw = mail(subject="Printer", message_id="<twice-mid@customer.example>")
    store(ctx, raw)
    before = store(ctx, mail(sender="a@customer.example", subject="VPN"))
    copy = store(ctx, raw, rcpt=("help@example.com",))
    after = store(ctx, mail(sender="b@customer.example", subject="Scanner"))
    parser_ahead.rest = 2
    with another_batch(ctx) as other:
        claim_pending(other, 1)               # the first copy, being applied
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                      {"k": contention._key(dedupe_key(parse_message(raw)))})
        outcomes = processor.run_batch(limit=10)
        assert [(o.inbound_id, o.status) for o in outcomes] == [
            (before, "done"), (copy, "deferred"), (after, "done")]
    assert [o.status for o in processor.drain()] == ["done", "duplicate"]
    assert len(ticket_numbers(ctx)) == 3


def test_two_copies_in_one_batch_are_one_entry_and_a_duplicate_without_a_rerun(
        ctx, processor, caplog, parser_ahead):
    # What a batch reads ahead for its next mails (their copies stored before) was read before
    # the first copy was written: the second copy is asked about on its own, at its turn.
    raw = mail(subject="Printer", message_id="<twice-in-batch@customer.example>")
    first = store(ctx, raw)
    between = store(ctx, mail(sender="a@customer.example", subject="VPN"))
    second = store(ctx, raw, rcpt=("help@example.com",))
    parser_ahead.rest = 2
    with caplog.at_level("INFO", logger="maildesk.process.run"):
        outcomes = processor.run_batch(limit=10)
    assert [(o.inbound_id, o.status) for o in outcomes] == [
        (first, "done"), (between, "done"), (second, "duplicate")]
    assert outcomes[2].ticket_number == outcomes[0].ticket_number
    assert "runs again" not in caplog.text   # no unique-key error and careful rerun
    assert len(ticket_numbers(ctx)) == 2


def test_a_batch_read_ahead_opens_each_ticket_with_its_own_rows(ctx, processor, parser_ahead):
    # Mails parsed ahead get the ids of the tickets they may open drawn with the batch's read
    # ahead (db/ids.py); a reply in the same batch draws its own while it holds its ticket.
    clients = [f"c{i}@customer.example" for i in range(4)]
    ids = [store(ctx, mail(sender=c, subject=f"Question {i}",
                           message_id=f"<q{i}@customer.example>"))
           for i, c in enumerate(clients)]
    ids.append(store(ctx, mail(sender=clients[0], subject="Re: Question 0",
                               in_reply_to="<q0@customer.example>")))
    parser_ahead.rest = 4
    outcomes = processor.run_batch(limit=10)
    assert [o.status for o in outcomes] == ["done"] * 5
    with ctx.make_session() as s:
        tickets = {t.requester: t for t in s.scalars(select(Ticket))}
        assert sorted(tickets) == clients
        for client in clients:
            t = tickets[client]
            mails = s.scalars(select(Message).where(Message.ticket_id == t.id)
                              .order_by(Message.id)).all()
            inbound = [m.inbound_id for m in mails if m.direction is Direction.IN]
            expected = [ids[0], ids[4]] if client == clients[0] else [ids[clients.index(client)]]
            assert inbound == expected   # the reply after its original, in id order too
            autoreplies = s.scalars(select(Outbox).where(Outbox.ticket_id == t.id,
                                                         Outbox.kind == "autoreply")).all()
            assert [o.recipients for o in autoreplies] == [[client]]


def test_a_reply_notifies_the_line_with_the_clients_other_tickets_newest_first(desk):
    """PostgreSQL reads them with the lock on the ticket the reply joins (the line's
    notification of a reply lists them as that of a new ticket does)."""
    for subject in ("Принтер не печатает", "Касса не открывается", "Сканер не читает"):
        desk.client_writes(subject, "Помогите, пожалуйста.")
    desk.read_all_mailboxes()
    desk.client_replies(1001, "Касса всё ещё не открывается.")
    (note,) = desk.mailbox("line2@example.com")   # the rules route the cash register there
    text = body(note)
    assert "Касса всё ещё не открывается." in text
    earlier = re.findall(r"^\[(MD-\d+)\] (.+)$", text.split("earlier tickets ---", 1)[1],
                         re.MULTILINE)
    assert [tag for tag, _ in earlier] == ["MD-1002", "MD-1000"]   # not the ticket itself
    # Status, subject and the local time of creation, as a new ticket's notification shows them.
    assert earlier[0][1] == "new  Сканер не читает  (Monday 23 November, 10:00)"
