"""Threading through the real pipeline: every rule of PRODUCT.md §4, in order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from helpers import SUPPORT, deliver, ticket_count
from mails import mail
from maildesk.db.models import Role, Ticket, TicketStatus
from maildesk.effects.notify import agent_reply_address
from maildesk.views import reply_address

CLIENT = "Иван Петров <ivan@customer.example>"
IVAN = "ivan@customer.example"


def first(ctx, processor, **kw):
    kw.setdefault("sender", CLIENT)
    kw.setdefault("subject", "Касса не печатает чеки")
    kw.setdefault("message_id", "<first@customer.example>")
    return deliver(ctx, processor, mail(**kw))


def role_of(ticket: Ticket, message_id: str) -> Role:
    """The role the mail with this Message-ID was recorded with on the ticket."""
    ids = (message_id, message_id.strip("<>"))
    (role,) = [m.role for m in ticket.messages if m.direction.value == "in" and m.message_id in ids]
    return role


def set_status(ctx, ticket_id: int, status: TicketStatus, **cols) -> None:
    with ctx.make_session.begin() as s:
        s.execute(update(Ticket).where(Ticket.id == ticket_id).values(status=status, **cols))


def test_new_mail_opens_ticket_with_requester_as_participant(ctx, processor):
    # Not about a cash register: rules.yaml routes those to line 2; this one takes the default.
    t = first(ctx, processor, subject="Сканер не читает штрихкоды")
    assert t.number == 1000 and t.status is TicketStatus.NEW
    assert t.subject == "Сканер не читает штрихкоды"
    assert [p.address for p in t.participants] == [IVAN]
    assert t.line == "line1" and t.priority == "P3"  # rules.yaml default
    assert t.messages[0].thread_reason == "new"


def test_numbers_are_sequential_and_unique(ctx, processor):
    numbers = [first(ctx, processor, message_id=f"<n{i}@x>", subject=f"topic {i}").number
               for i in range(5)]
    assert numbers == [1000, 1001, 1002, 1003, 1004]


def test_reply_token_joins_whatever_the_subject(ctx, processor):
    t = first(ctx, processor)
    reply = deliver(ctx, processor, mail(sender=CLIENT, subject="another subject entirely",
                                         to=reply_address(t)), rcpt=(reply_address(t),))
    assert reply.id == t.id and reply.messages[-1].thread_reason == "token"


def test_wrong_token_does_not_join(ctx, processor):
    t = first(ctx, processor)
    forged = reply_address(t).replace(t.reply_token, "zzzzzz")
    other = deliver(ctx, processor, mail(sender="mallory@evil.example", subject="hi", to=forged),
                    rcpt=(forged,))
    assert other.id != t.id


def test_reply_with_only_references_joins(ctx, processor):
    t = first(ctx, processor)
    r = deliver(ctx, processor, mail(sender=CLIENT, subject="no prefix, no tag",
                                     message_id="<r1@customer.example>",
                                     references=["<unknown@elsewhere>", "<first@customer.example>",
                                                 "<also-unknown@elsewhere>"]))
    assert r.id == t.id and r.messages[-1].thread_reason == "references"


def test_in_reply_to_of_a_later_message_joins(ctx, processor):
    t = first(ctx, processor)
    deliver(ctx, processor, mail(sender=CLIENT, subject="Re: x", message_id="<second@c>",
                                 in_reply_to="<first@customer.example>"))
    third = deliver(ctx, processor, mail(sender="colleague@customer.example", subject="x",
                                         in_reply_to="<second@c>"))
    assert third.id == t.id
    # Someone who replies inside the thread takes part from now on.
    assert "colleague@customer.example" in {p.address for p in third.participants}


def test_outlook_reply_without_headers_joins_by_subject(ctx, processor):
    t = first(ctx, processor)
    for prefix in ("RE:", "AW:", "Ответ:", "Отв:", "SV:", "RE: RE:"):
        r = deliver(ctx, processor, mail(sender=CLIENT, subject=f"{prefix} Касса не печатает чеки"))
        assert r.id == t.id, prefix
        assert r.messages[-1].thread_reason == "subject"
    assert ticket_count(ctx) == 1


def test_subject_reply_from_someone_else_opens_new_ticket(ctx, processor):
    t = first(ctx, processor)
    r = deliver(ctx, processor, mail(sender="other@customer.example",
                                     subject="RE: Касса не печатает чеки"))
    assert r.id != t.id


def test_subject_reply_after_the_window_opens_new_ticket(ctx, processor):
    t = first(ctx, processor)
    old = datetime.now(timezone.utc) - timedelta(days=ctx.settings.reply_window_days + 1)
    set_status(ctx, t.id, TicketStatus.OPEN, last_activity_at=old)
    r = deliver(ctx, processor, mail(sender=CLIENT, subject="RE: Касса не печатает чеки"))
    assert r.id != t.id


def test_tag_and_participant_joins(ctx, processor):
    t = first(ctx, processor)
    r = deliver(ctx, processor, mail(sender=CLIENT, subject=f"[MD-{t.number}] one more detail"))
    assert r.id == t.id and r.messages[-1].thread_reason == "tag"


def test_stranger_with_someone_elses_tag_opens_new_ticket_and_learns_nothing(ctx, processor, cli):
    t = first(ctx, processor, body="Secret: our store's admin password is hunter2")
    r = deliver(ctx, processor, mail(sender="mallory@evil.example",
                                     subject=f"Re: [MD-{t.number}] Касса не печатает чеки",
                                     body="Please resend everything"))
    assert r.id != t.id
    assert r.linked_ticket_id is None
    assert r.subject == "Re: Касса не печатает чеки"
    with ctx.make_session() as s:
        victim = s.get(Ticket, t.id)
        assert [p.address for p in victim.participants] == [IVAN]
        assert [m.direction.value for m in victim.messages] == ["in", "out"]  # mail + autoreply
    shown = cli("tickets", "show", str(r.number), check=True).stdout.decode()
    assert "hunter2" not in shown and f"MD-{t.number}" not in shown.split("Subject:")[0]


def test_forward_opens_a_new_ticket_linked_to_the_old(ctx, processor, cli):
    t = first(ctx, processor)
    for n, prefix in enumerate(("Fwd:", "Пересл:")):
        f = deliver(ctx, processor, mail(sender=CLIENT, message_id=f"<fwd{n}@c>",
                                         subject=f"{prefix} [MD-{t.number}] Касса не печатает чеки"))
        assert f.id != t.id and f.linked_ticket_id == t.id
        assert f.messages[0].thread_reason == "forward"
    shown = cli("tickets", "show", "1001", check=True).stdout.decode()
    assert "linked to MD-1000" in shown


def test_client_reply_reopens_a_resolved_ticket(ctx, processor):
    t = first(ctx, processor)
    set_status(ctx, t.id, TicketStatus.RESOLVED, resolved_at=datetime.now(timezone.utc))
    r = deliver(ctx, processor, mail(sender=CLIENT, subject="Re: Касса не печатает чеки",
                                     in_reply_to="<first@customer.example>"))
    assert r.id == t.id and r.status is TicketStatus.OPEN and r.resolved_at is None


def test_client_reply_on_pending_ticket_resumes_it(ctx, processor):
    t = first(ctx, processor)
    set_status(ctx, t.id, TicketStatus.PENDING)
    r = deliver(ctx, processor, mail(sender=CLIENT, subject="Re: x",
                                     in_reply_to="<first@customer.example>"))
    assert r.status is TicketStatus.OPEN


def test_reply_to_a_closed_ticket_opens_a_new_linked_one(ctx, processor):
    t = first(ctx, processor)
    set_status(ctx, t.id, TicketStatus.CLOSED, closed_at=datetime.now(timezone.utc))
    r = deliver(ctx, processor, mail(sender=CLIENT, subject="Re: Касса не печатает чеки",
                                     in_reply_to="<first@customer.example>"))
    assert r.id != t.id and r.linked_ticket_id == t.id
    assert r.messages[0].thread_reason == "after-closed"
    with ctx.make_session() as s:
        assert s.get(Ticket, t.id).status is TicketStatus.CLOSED


def test_agent_is_recognised_only_with_the_reply_token(ctx, processor):
    t = first(ctx, processor)
    agent = "Alice <alice@example.com>"
    # The agents' reply token (the Reply-To of the line notification), not the client's.
    assert t.agent_token and t.agent_token != t.reply_token
    agents = agent_reply_address(t)
    assert agents == f"support+{t.number}-{t.agent_token}@example.com"
    with_token = deliver(ctx, processor, mail(sender=agent, subject="Re: x", to=agents,
                                              message_id="<a1@example.com>"), rcpt=(agents,))
    assert with_token.id == t.id and role_of(with_token, "<a1@example.com>") is Role.AGENT
    # The client's token is known to the client (and whoever they forward to): an agent's
    # From on it may be forged, so it is a client's mail on the ticket.
    client_token = deliver(ctx, processor, mail(sender=agent, subject="Re: x",
                                                to=reply_address(t),
                                                message_id="<a3@example.com>"),
                           rcpt=(reply_address(t),))
    assert client_token.id == t.id and role_of(client_token, "<a3@example.com>") is Role.CLIENT
    forged = deliver(ctx, processor, mail(sender=agent, subject="Re: x",
                                          message_id="<a2@example.com>",
                                          in_reply_to="<first@customer.example>"))
    assert forged.id == t.id and role_of(forged, "<a2@example.com>") is Role.CLIENT


def test_earlier_tickets_of_the_client_are_listed(ctx, processor, cli):
    first(ctx, processor)
    first(ctx, processor, subject="Second problem", message_id="<other@c>")
    shown = cli("tickets", "show", "1001", check=True).stdout.decode()
    other = shown.split("Other tickets of this client (1 ticket):\n", 1)[1].splitlines()[0]
    assert other.split()[:2] == ["MD-1000", "new"] and other.endswith("Касса не печатает чеки")


def test_mail_to_plus_detail_address_keeps_the_mailbox(ctx, processor):
    t = deliver(ctx, processor, mail(to="support+billing@example.com"),
                rcpt=("support+billing@example.com",))
    assert t.mailbox == SUPPORT
    assert reply_address(t).startswith(f"support+{t.number}-")
