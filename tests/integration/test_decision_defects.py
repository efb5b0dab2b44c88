"""Issue 18, through the real pipeline: dotted reply/forward prefixes (`Отв.:`, `Пересл.:`),
robots whose local part only contains a noreply word, and `#priority` given with a status
command."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from desk import MSK, Desk, edit_lines, msk
from helpers import deliver, outbox_rows
from mails import mail
from maildesk.db.models import Ticket, TicketEvent, TicketStatus

CLIENT = "Иван Петров <ivan@customer.example>"
SUBJECT = "Касса не печатает чеки"


def first(ctx, processor):
    return deliver(ctx, processor, mail(sender=CLIENT, subject=SUBJECT,
                                        message_id="<first@customer.example>"))


# -- 1. dotted prefixes (Outlook ru, The Bat!, Mail.ru) --------------------------------------------
@pytest.mark.parametrize("prefix", ["Отв.:", "Ответ.:", "Re.:", "RE: Отв.:", "Отв.: Отв.:"])
def test_a_headerless_dotted_reply_joins_by_subject(ctx, processor, prefix):
    t = first(ctx, processor)
    r = deliver(ctx, processor, mail(sender=CLIENT, subject=f"{prefix} {SUBJECT}",
                                     message_id="<reply@customer.example>"))
    assert r.id == t.id and r.messages[-1].thread_reason == "subject"


@pytest.mark.parametrize("prefix", ["Пересл.:", "Fwd.:", "FW.:", "Перес.:", "Пересл.: Отв.:"])
def test_a_dotted_forward_with_the_tag_opens_a_new_linked_ticket(ctx, processor, prefix):
    t = first(ctx, processor)
    f = deliver(ctx, processor, mail(sender=CLIENT, message_id="<fwd@customer.example>",
                                     subject=f"{prefix} [MD-{t.number}] {SUBJECT}"))
    assert f.id != t.id and f.linked_ticket_id == t.id
    assert f.messages[0].thread_reason == "forward"
    with ctx.make_session() as s:
        assert len(s.get(Ticket, t.id).messages) == 2        # the mail and its autoreply only


@pytest.mark.parametrize("prefix", ["Пересл.:", "Fwd.:"])
def test_a_dotted_forward_without_the_tag_links_the_senders_ticket(ctx, processor, prefix):
    # PRODUCT.md §4: a forward without a token or known header opens a new, linked ticket.
    t = first(ctx, processor)
    f = deliver(ctx, processor, mail(sender=CLIENT, message_id="<fwd@customer.example>",
                                     subject=f"{prefix} {SUBJECT}"))
    assert f.id != t.id and f.linked_ticket_id == t.id
    assert f.messages[0].thread_reason == "forward"


# -- 2. noreply words inside the local part -------------------------------------------------------
@pytest.mark.parametrize("sender", ["no-reply-4711@shop.example", "noreply+x@shop.example",
                                    "alerts-noreply@monitoring.example",
                                    "do_not_reply.billing@bank.example",
                                    "noreply.notifications@github.example"])
def test_a_noreply_word_in_the_local_part_gets_a_ticket_but_no_autoreply(ctx, processor,
                                                                          sender):
    t = deliver(ctx, processor, mail(sender=sender, subject="Your invoice"),
                mail_from=sender)
    assert t is not None and t.status is TicketStatus.NEW
    assert outbox_rows(ctx, "autoreply") == []
    with ctx.make_session() as s:
        (event,) = s.scalars(select(TicketEvent).where(
            TicketEvent.ticket_id == t.id, TicketEvent.kind == "autoreply_suppressed"))
    assert event.data["reason"] == f"robot sender {sender}"


def test_a_person_whose_name_starts_like_noreply_gets_the_autoreply(ctx, processor):
    t = deliver(ctx, processor, mail(sender="Noreen <noreen@customer.example>"))
    assert t is not None
    assert [r.recipients for r in outbox_rows(ctx, "autoreply")] == [["noreen@customer.example"]]


# -- 3. #priority with a status command -----------------------------------------------------------
# P2 in the standard policy (config/sla.yaml): first response 4 business hours, resolution two
# working days (18 h). The ticket came on Monday 10:00 (Moscow) as P3: Mon 18:00 and Mon 30 Nov.
@pytest.fixture
def desk(config_set):
    edit_lines(config_set, line1={"ola": None})   # only the deadlines; no OLA timer on the way
    d = Desk(config_set.path, msk(2026, 11, 23, 10, 0))
    yield d
    d.close()


@pytest.mark.parametrize("status", ["resolve", "pending"])
def test_priority_with_a_status_command_moves_the_deadlines(desk, status):
    t = desk.client_writes("Printer in shop 5 does not print", "It prints nothing at all.")
    assert t.priority == "P3"
    assert t.first_response_due_at == msk(2026, 11, 23, 18, 0)
    assert t.resolution_due_at == msk(2026, 11, 30, 10, 0)

    desk.at(msk(2026, 11, 23, 10, 15))
    desk.agent_replies(1000, f"#priority P2\n#{status}\nPlease check the paper roll.")
    t = desk.ticket()
    assert t.priority == "P2" and t.status is not TicketStatus.OPEN
    assert [e.data["to"] for e in desk.events("priority")] == ["P2"]
    # The clock stands still from 10:15; the deadlines shown are P2's where it stopped.
    assert t.first_response_due_at == msk(2026, 11, 23, 14, 0)
    assert t.resolution_due_at == msk(2026, 11, 25, 10, 0)
    same_alone = _deadlines_of_priority_alone(desk)
    assert (t.first_response_due_at, t.resolution_due_at) == same_alone

    # The client answers on Tuesday 09:30: 15 minutes had run, P2's rest runs from now on.
    desk.at(msk(2026, 11, 24, 9, 30))
    desk.client_replies(1000, "Paper is in, still nothing.")
    t = desk.ticket()
    assert t.status is TicketStatus.OPEN and t.priority == "P2"
    assert t.first_response_due_at == msk(2026, 11, 24, 13, 15)     # 3 h 45 min left
    assert t.resolution_due_at == msk(2026, 11, 26, 9, 15)          # 17 h 45 min left
    due = {(kind, stage): when for kind, stage, when in desk.timers()}
    assert due[("resolution", "breach")] == msk(2026, 11, 26, 9, 15)


def _deadlines_of_priority_alone(desk) -> tuple[datetime, datetime]:
    """What `#priority P2` alone gives a P3 ticket of the same minute (the path that worked)."""
    t = desk.client_writes("Printer in shop 6 does not print", "Same here.",
                           sender="olga@shop.example.ru")
    desk.agent_replies(t.number, "#priority P2")
    t = desk.ticket(t.number)
    assert t.status is TicketStatus.NEW
    shift = t.created_at - msk(2026, 11, 23, 10, 0)                 # created at 10:15
    assert shift == timedelta(minutes=15)
    return (t.first_response_due_at.astimezone(MSK) - shift,
            t.resolution_due_at.astimezone(MSK) - shift)
