"""Canned answers and search by mail (issue 19): an agent writes `#macro NAME`, `#kb SLUG` or
`#search WORDS` in a reply to a notification; SMTP in through the real listener, the outbound
Maildir out."""

from __future__ import annotations

import re
import shutil

import pytest

from test_agents import Mailboxes, agent_mail, body, client_mail, events, send, ticket

CLIENT = "ivan@shop.example.ru"

ARTICLES = {
    "ru/password-reset.md": """---
title: Как сбросить пароль
tags: [account]
keywords: [пароль, сброс, вход]
macro: |
  Здравствуйте, {{ client_name }}!

  Пароль по заявке {{ tag }} сброшен: откройте ссылку из письма «Сброс пароля».
  Ответим до {{ deadlines.resolution | datetime }}.
commands: ["#pending", "#tag password"]
---
Откройте страницу входа и нажмите «Забыли пароль?».
""",
    "en/password-reset.md": """---
title: How to reset your password
tags: [account]
keywords: [password, reset, login]
macro: |
  Hello {{ client_name }},

  the password of ticket {{ tag }} has been reset.
---
Open the login page and choose "Forgot password?".
""",
    "ru/receipt-paper.md": """---
title: Касса не печатает чек
tags: [pos]
keywords: [касса, чек, бумага]
---
Проверьте, что в кассе есть чековая лента и крышка принтера закрыта.
""",
    "ru/escalation-howto.md": """---
title: Как эскалировать на вендора
audience: internal
---
Пишите #escalate line4.
""",
}


@pytest.fixture
def ctx(config_set):
    kb = config_set.dir / "kb"
    shutil.rmtree(kb, ignore_errors=True)
    for name, text in ARTICLES.items():
        path = kb / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    from maildesk.app import Context
    context = Context.load(config_set.path)
    yield context
    context.close()


@pytest.fixture
def desk(ctx, smtp_listener, processor):
    boxes = Mailboxes(ctx)
    send(smtp_listener, client_mail("Не работает касса", "Касса №3 не печатает чеки с утра."),
         "support@example.com", CLIENT)
    processor.drain()
    boxes.new(CLIENT)
    (notification,) = boxes.new("line2@example.com")

    def reply(text: str) -> None:
        address = notification["Reply-To"].addresses[0].addr_spec
        send(smtp_listener, agent_mail(notification, text), address, "carol@example.com")
        processor.drain()

    return ctx, boxes, reply


def test_macro_inserts_the_tickets_language_version_with_its_data_and_commands(desk):
    ctx, boxes, reply = desk
    reply("#macro password-reset\n\nЕсли не получится, позвоните нам.")
    (answer,) = boxes.new(CLIENT)
    text = body(answer)
    assert "Здравствуйте, Иван Петров!" in text
    assert "Пароль по заявке [MD-1000] сброшен" in text
    assert "Если не получится, позвоните нам." in text
    assert "{{" not in text and "#macro" not in text and "None" not in text
    t = ticket(ctx)
    assert t.status.value == "pending" and "password" in t.tags     # the macro's commands
    (inserted,) = events(ctx, "kb_inserted")
    assert inserted.data["slug"] == "password-reset" and inserted.data["language"] == "ru"


def test_kb_inserts_a_public_article(desk):
    ctx, boxes, reply = desk
    reply("Посмотрите, пожалуйста:\n#kb receipt-paper")
    (answer,) = boxes.new(CLIENT)
    assert "Касса не печатает чек" in body(answer) and "чековая лента" in body(answer)


@pytest.mark.parametrize("line, says", [
    ("#macro pasword-reset", "did you mean password-reset"),
    ("#kb escalation-howto", "internal"),
    ("#macro receipt-paper", "has no macro"),
])
def test_what_cannot_be_inserted_sends_nothing_and_tells_the_agent(desk, line, says):
    ctx, boxes, reply = desk
    reply(f"{line}\n\nС уважением, Carol")
    assert boxes.new(CLIENT) == []
    (error,) = boxes.new("carol@example.com")
    assert says in body(error)
    assert ticket(ctx).status.value == "new"


def test_a_macro_asking_for_what_the_ticket_lacks_sends_nothing(ctx, smtp_listener, processor):
    # The client signs with no name: the macro's {{ client_name }} has nothing to say.
    boxes = Mailboxes(ctx)
    raw = client_mail("Не могу войти", "Забыл пароль.").replace(
        "Иван Петров <ivan@shop.example.ru>".encode(), b"petr@shop.example.ru")
    raw = re.sub(rb"From: =\?utf-8\?[^\n]*", b"From: petr@shop.example.ru", raw)
    send(smtp_listener, raw, "support@example.com", "petr@shop.example.ru")
    processor.drain()
    boxes.new("petr@shop.example.ru")     # the acknowledgement
    (notification,) = boxes.new("line1@example.com") or boxes.new("line2@example.com")
    address = notification["Reply-To"].addresses[0].addr_spec
    send(smtp_listener, agent_mail(notification, "#macro password-reset"), address,
         "carol@example.com")
    processor.drain()
    assert boxes.new("petr@shop.example.ru") == []
    (error,) = boxes.new("carol@example.com")
    assert "password-reset" in body(error) and "client_name" in body(error)


def test_search_by_mail_answers_the_agent_only(desk):
    ctx, boxes, reply = desk
    reply("#search касса чеки")
    assert boxes.new(CLIENT) == []
    (answer,) = boxes.new("carol@example.com")
    text = body(answer)
    assert "Search: касса чеки" in answer["Subject"] or "Поиск: касса чеки" in answer["Subject"]
    assert "[MD-1000]" in text                       # the ticket itself matches
    assert "receipt-paper" in text                   # so does the article
    assert re.search(r"password-reset", text) is None
    assert answer["Reply-To"].addresses[0].addr_spec.startswith("support+1000-")


def test_search_by_mail_finds_mail_taken_in_just_before_it(desk, smtp_listener):
    """The client's mail and the agent's #search are processed in one batch, the mail first:
    the search finds it (the batch writes search entries at its end, and before a search)."""
    ctx, boxes, reply = desk
    send(smtp_listener, client_mail("Весы", "Весы показывают флюгегехайм вместо веса."),
         "support@example.com", CLIENT)
    reply("#search флюгегехайм")
    (answer,) = boxes.new("carol@example.com")
    assert "[MD-1001]" in body(answer)
