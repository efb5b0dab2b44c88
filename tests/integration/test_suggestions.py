"""Self-service in the acknowledgement (issue 19): public knowledge-base articles that match the
client's mail are named in the autoreply, in the client's language; none when nothing matches
well. SMTP in through the real listener, the outbound Maildir out; the example kb/ set."""

from __future__ import annotations

import pytest

from test_agents import Mailboxes, body, client_mail, events, send

CLIENT = "ivan@shop.example.ru"


def acknowledgement(ctx, listener, processor, subject: str, text: str):
    send(listener, client_mail(subject, text), "support@example.com", CLIENT)
    processor.drain()
    (ack,) = Mailboxes(ctx).new(CLIENT)
    return ack


def test_a_matching_article_is_quoted_in_the_clients_language(ctx, smtp_listener, processor):
    ack = acknowledgement(ctx, smtp_listener, processor, "Забыл пароль",
                          "Не могу войти, забыл пароль от личного кабинета. Как сбросить?")
    text = body(ack)
    title = ctx.settings.kb.get("password-reset", "ru").title
    assert "Возможно, ответ уже есть" in text and title in text
    (suggested,) = events(ctx, "kb_suggested")
    assert suggested.data["articles"][0] == "password-reset"
    assert suggested.data["language"] == "ru"


def test_nothing_is_suggested_when_nothing_matches(ctx, smtp_listener, processor):
    ack = acknowledgement(ctx, smtp_listener, processor, "Счёт за ноябрь",
                          "Пришлите, пожалуйста, акт сверки и счёт за ноябрь.")
    assert "Возможно, ответ уже есть" not in body(ack)
    assert events(ctx, "kb_suggested") == []


@pytest.fixture
def with_faq(config_set):
    config_set.write(autoreply={**config_set.data["autoreply"],
                                "faq_url": "https://support.example.com/faq/"})


def test_with_a_published_faq_the_article_is_a_link(with_faq, ctx, smtp_listener, processor):
    ack = acknowledgement(ctx, smtp_listener, processor, "Забыл пароль",
                          "Не могу войти, забыл пароль от личного кабинета. Как сбросить?")
    assert "https://support.example.com/faq/ru/password-reset.html" in body(ack)
    html = ack.get_body(("html",)).get_content()
    assert 'href="https://support.example.com/faq/ru/password-reset.html"' in html
