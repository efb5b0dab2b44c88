"""The client's one-click "this solved it" and the agents' likely answers (issue 19).

The acknowledgement names suggested articles with a mailto to the ticket's client token plus
`-solvedN`; mail to it resolves a ticket still being worked on, counts the article and tells
the client and the line. Nothing else may do that: a guessed token, the agents' token, a
ticket already resolved or closed. SMTP in through the real listener, the outbound Maildir out;
the example kb/ set."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from test_agents import Mailboxes, body, client_mail, events, send, ticket

from maildesk.domain import TicketStatus

CLIENT = "ivan@shop.example.ru"
QUESTION = ("Забыл пароль", "Не могу войти, забыл пароль от личного кабинета. Как сбросить?")
SOLVED = re.compile(r"mailto:(support\+1000-[a-z2-7]{26}-solved(\d)@example\.com)")


def click(listener, processor, address: str, *, sender: str = CLIENT,
          subject: str = "[MD-1000] Решено") -> None:
    """What a mail client sends from the mailto: link (the client only presses Send)."""
    msg = EmailMessage()
    msg["From"] = f"Иван Петров <{sender}>"
    msg["To"] = address
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="shop.example.ru")
    msg.set_content("Статья «Как сбросить пароль» решила мою проблему.")
    send(listener, msg.as_bytes(), address, sender)
    processor.drain()


def asked(ctx, listener, processor, boxes: Mailboxes):
    send(listener, client_mail(*QUESTION), "support@example.com", CLIENT)
    processor.drain()
    (ack,) = boxes.new(CLIENT)
    return ack


def test_the_solved_link_resolves_the_ticket_counts_the_article_and_tells_both(
        ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    ack = asked(ctx, smtp_listener, processor, boxes)
    (notification,) = boxes.new("line1@example.com")
    found = SOLVED.search(body(ack))
    assert found is not None, body(ack)
    address, n = found.groups()
    assert n == "1"
    # The HTML part fills in the subject and a line, so the client only presses Send.
    html = ack.get_body(("html",)).get_content()
    link = re.search(r'href="(mailto:[^"]+)"', html.replace("&amp;", "&")).group(1)
    parts = urlsplit(link)
    assert unquote(parts.path) == address
    assert parse_qs(parts.query)["subject"] == ["[MD-1000] Решено"]

    click(smtp_listener, processor, address)

    t = ticket(ctx)
    assert t.status is TicketStatus.RESOLVED
    assert t.resolved_by is None           # nobody's work: the client helped themselves
    (solved,) = events(ctx, "kb_solved")
    assert (solved.data["slug"], solved.data["language"]) == ("password-reset", "ru")
    (confirmation,) = boxes.new(CLIENT)
    assert "Решено" in confirmation["Subject"] and "[MD-1000]" in confirmation["Subject"]
    assert "статья помогла" in body(confirmation)
    assert confirmation["Reply-To"].addresses[0].addr_spec.startswith("support+1000-")
    (told,) = boxes.new("line1@example.com")
    assert "[MD-1000]" in told["Subject"]
    assert "решила мою проблему" in body(told)


def test_a_reply_after_the_click_reopens_the_ticket(ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    ack = asked(ctx, smtp_listener, processor, boxes)
    click(smtp_listener, processor, SOLVED.search(body(ack)).group(1))
    (confirmation,) = boxes.new(CLIENT)
    reply = EmailMessage()
    reply["From"] = f"Иван Петров <{CLIENT}>"
    reply["To"] = confirmation["Reply-To"]
    reply["Subject"] = "Re: " + confirmation["Subject"]
    reply["Message-ID"] = make_msgid(domain="shop.example.ru")
    reply["In-Reply-To"] = confirmation["Message-ID"]
    reply.set_content("Нет, снова не пускает.")
    send(smtp_listener, reply.as_bytes(), confirmation["Reply-To"].addresses[0].addr_spec,
         CLIENT)
    processor.drain()
    assert ticket(ctx).status is TicketStatus.OPEN
    assert len(events(ctx, "reopened")) == 1


def test_a_guessed_token_resolves_nothing(ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    asked(ctx, smtp_listener, processor, boxes)
    click(smtp_listener, processor, "support+1000-" + "a" * 26 + "-solved1@example.com",
          sender="mallory@evil.example")
    assert ticket(ctx).status is TicketStatus.NEW
    assert events(ctx, "kb_solved") == []
    # The stranger's mail is a mail of its own: a new ticket, nothing of the first one.
    assert ticket(ctx, 1001).requester == "mallory@evil.example"


def test_the_agents_token_with_solved_is_not_a_click(ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    asked(ctx, smtp_listener, processor, boxes)
    (notification,) = boxes.new("line1@example.com")
    agents = notification["Reply-To"].addresses[0].addr_spec.replace("@", "-solved1@")
    click(smtp_listener, processor, agents, sender="carol@example.com",
          subject="RE: " + notification["Subject"])
    assert ticket(ctx).status is not TicketStatus.RESOLVED
    assert events(ctx, "kb_solved") == []


def test_a_click_on_a_resolved_or_closed_ticket_changes_nothing(ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    ack = asked(ctx, smtp_listener, processor, boxes)
    address = SOLVED.search(body(ack)).group(1)
    with ctx.make_session() as s, s.begin():
        t = s.merge(ticket(ctx))
        t.status = TicketStatus.RESOLVED
    click(smtp_listener, processor, address)
    assert ticket(ctx).status is TicketStatus.RESOLVED
    assert events(ctx, "reopened") == [] and events(ctx, "kb_solved") == []
    with ctx.make_session() as s, s.begin():
        t = s.merge(ticket(ctx))
        t.status = TicketStatus.CLOSED
    click(smtp_listener, processor, address, subject="[MD-1000] Решено, ещё раз")
    assert ticket(ctx).status is TicketStatus.CLOSED
    assert ticket(ctx, 1001) is None       # no new ticket either
    assert boxes.new(CLIENT) == []          # and nothing to the client


def test_the_line_notification_lists_the_likely_answers(ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    asked(ctx, smtp_listener, processor, boxes)
    (notification,) = boxes.new("line1@example.com")
    text = body(notification)
    title = ctx.settings.kb.get("password-reset", "ru").title
    line = next(x for x in text.splitlines() if "password-reset" in x)
    assert line.split()[:2] == ["#macro", "password-reset"] and title in line


def test_no_likely_answers_when_nothing_matches(ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    send(smtp_listener, client_mail("Счёт за ноябрь", "Пришлите, пожалуйста, акт сверки."),
         "support@example.com", CLIENT)
    processor.drain()
    boxes.new(CLIENT)
    (notification,) = boxes.new("line1@example.com")
    assert "#kb " not in body(notification) and "#macro " not in body(notification)
