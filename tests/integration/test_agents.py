"""Routing to a line, the line's notification, agents answering from their mail client, and
their commands (PRODUCT.md §5), end to end: SMTP in, the outbound Maildir out."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import delivery_order, send_smtp
from maildesk.db.models import Inbound, InboundStatus, Message, Ticket, TicketEvent
from maildesk.outbound.outbox import OutboxDeliverer
from maildesk.outbound.registry import make_transport
from maildesk.pipeline.reply import MARKER

CLIENT = "ivan@shop.example.ru"


# -- helpers ------------------------------------------------------------------------------------
def flush_outbox(ctx) -> None:
    d = OutboxDeliverer(ctx.make_session, make_transport(ctx.settings.outbound), ctx.clock)
    try:
        d.drain()
    finally:
        d.transport.close()


class Mailboxes:
    """The outbound Maildir, read per recipient (its files keep the envelope)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.seen: set[str] = set()

    def new(self, to: str) -> list[EmailMessage]:
        """Mails to `to` delivered since the last call for anyone."""
        flush_outbox(self.ctx)
        folder = Path(self.ctx.settings.outbound.maildir) / "new"
        out = []
        for path in sorted(folder.iterdir(), key=delivery_order):
            msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if to.lower() in msg["X-Maildesk-Envelope-To"].lower() and path.name not in self.seen:
                self.seen.add(path.name)
                out.append(msg)
        return out


def body(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()


def client_mail(subject: str, text: str, *, charset: str = "utf-8",
                attachment: tuple[str, bytes] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Иван Петров <{CLIENT}>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc))
    msg["Message-ID"] = make_msgid(domain="shop.example.ru")
    msg.set_content(text, charset=charset)
    if attachment:
        msg.add_attachment(attachment[1], maintype="image", subtype="jpeg",
                           filename=attachment[0])
    return msg.as_bytes()


def agent_mail(notification: EmailMessage, text: str, *, sender: str = "Carol <carol@example.com>",
               to: str | None = None) -> bytes:
    """A reply to a notification, as a mail client sends it (Reply-To honoured)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to or notification["Reply-To"].addresses[0].addr_spec
    msg["Subject"] = "RE: " + notification["Subject"]
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg["In-Reply-To"] = notification["Message-ID"]
    msg["References"] = notification["Message-ID"]
    msg["Date"] = format_datetime(datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc))
    msg.set_content(text)
    return msg.as_bytes()


def outlook_reply(notification: EmailMessage, new_text: str) -> str:
    quoted = body(notification)
    return (f"{new_text}\n\nС уважением,\nCarol\nLine 2 / Вторая линия\n\n"
            "-----Original Message-----\n"
            f"From: Example Support <support@example.com>\n"
            "Sent: Monday, November 23, 2026 1:05 PM\n"
            "To: Line 2 <line2@example.com>\n"
            f"Subject: {notification['Subject']}\n\n{quoted}")


def thunderbird_reply(notification: EmailMessage, new_text: str) -> str:
    quoted = "\n".join("> " + line for line in body(notification).splitlines())
    return (f"{new_text}\n\n-- \nCarol, Line 2\n\n"
            f"23.11.2026 13:05, Example Support пишет:\n{quoted}\n")


def send(listener, raw: bytes, rcpt: str, sender: str) -> None:
    """Over SMTP with CRLF line ends, as every MTA and mail client sends."""
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    send_smtp(listener.host, listener.port, raw, sender=sender, rcpt=[rcpt])


def ticket(ctx, number: int = 1000) -> Ticket:
    with ctx.make_session() as s:
        return s.scalar(select(Ticket).where(Ticket.number == number))


def events(ctx, kind: str) -> list[TicketEvent]:
    with ctx.make_session() as s:
        return list(s.scalars(select(TicketEvent).where(TicketEvent.kind == kind)
                              .order_by(TicketEvent.id)))


@pytest.fixture
def desk(ctx, smtp_listener, processor):
    """A cash-register ticket routed to line 2, its notification read from line 2's mailbox."""
    boxes = Mailboxes(ctx)
    raw = client_mail("Не работает касса", "Добрый день! Касса №3 не печатает чеки с утра.\n"
                      "Магазин на Ленина, 5.", charset="cp1251",
                      attachment=("чек.jpg", b"\xff\xd8\xff\xe0 fake jpeg"))
    send(smtp_listener, raw, "support@example.com", CLIENT)
    processor.drain()
    (ack,) = boxes.new(CLIENT)
    (notification,) = boxes.new("line2@example.com")

    class Desk:
        pass

    d = Desk()
    d.ctx, d.listener, d.processor, d.boxes = ctx, smtp_listener, processor, boxes
    d.ack, d.notification, d.client_raw = ack, notification, raw

    def reply(text: str, *, sender: str = "Carol <carol@example.com>", to: str | None = None,
              shape=None) -> None:
        content = shape(d.notification, text) if shape else text
        address = re.search(r"<([^>]+)>", sender)
        send(smtp_listener, agent_mail(d.notification, content, sender=sender, to=to),
             to or d.notification["Reply-To"].addresses[0].addr_spec,
             address.group(1) if address else sender)
        processor.drain()
    d.reply = reply
    return d


# -- the whole story ----------------------------------------------------------------------------
def test_routed_notified_answered_from_outlook_and_thunderbird_then_resolved(desk):
    ctx, boxes = desk.ctx, desk.boxes
    t = ticket(ctx)
    assert (t.line, t.priority, t.category) == ("line2", "P1", "pos")
    assert [e.data["rules"] for e in events(ctx, "routed")] == [["cash registers are urgent"]]

    n = desk.notification
    text = body(n)
    # One subject for all the ticket's mail to a line; what happened is the line after the marker.
    assert n["Subject"] == "[MD-1000] Не работает касса"
    assert text.splitlines()[1] == "New ticket: [MD-1000] Не работает касса"
    assert re.search(r"^Priority: +P1\b", text, re.MULTILINE)
    assert n["Reply-To"].addresses[0].addr_spec == f"support+1000-{t.agent_token}@example.com"
    assert t.agent_token != t.reply_token
    assert t.reply_token not in n.as_string()           # the client's token stays the client's
    assert text.startswith(MARKER)
    assert "Касса №3 не печатает чеки" in text           # the client's words, from cp1251
    assert "First response: by " in text and "Resolution:     by " in text
    assert "Time zone:      Europe/Moscow" in text
    assert "#resolve" in text and "#escalate" in text     # the command help
    assert [a.get_filename() for a in n.iter_attachments()] == ["чек.jpg"]
    # The client's own acknowledgement names the client's token, never the agents'.
    assert desk.ack["Reply-To"].addresses[0].addr_spec == \
        f"support+1000-{t.reply_token}@example.com"

    # Outlook: new text on top, signature, then "-----Original Message-----" and the quote.
    desk.reply("Здравствуйте, Иван!\n\nПерезагрузите, пожалуйста, кассу и проверьте бумагу.",
               shape=outlook_reply)
    (answer,) = boxes.new(CLIENT)
    relayed = body(answer)
    assert "Перезагрузите, пожалуйста, кассу" in relayed
    for leak in ("Original Message", "Sent:", MARKER, "Касса №3", "С уважением", "#resolve",
                 t.agent_token):
        assert leak not in answer.as_string() and leak not in relayed
    assert answer["From"].addresses[0].addr_spec == "support@example.com"
    assert answer["Subject"] == "Re: [MD-1000] Не работает касса"
    client_id = email.message_from_bytes(desk.client_raw, policy=policy.default)["Message-ID"]
    assert answer["In-Reply-To"] == client_id
    assert client_id in answer["References"]
    assert answer["Reply-To"].addresses[0].addr_spec == f"support+1000-{t.reply_token}@example.com"
    assert answer["Auto-Submitted"] is None               # a person's answer
    assert boxes.new("line2@example.com") == []
    t = ticket(ctx)
    assert t.status.value == "open" and t.first_responded_at is not None

    # Thunderbird: new text, "-- " signature, then the attribution line and "> " quotes.
    desk.reply("Ещё проверьте, что принтер чеков включён.", shape=thunderbird_reply)
    (second,) = boxes.new(CLIENT)
    relayed = body(second)
    assert "принтер чеков включён" in relayed
    for leak in ("пишет:", MARKER, "Касса №3", "Carol, Line 2", "> "):
        assert leak not in relayed
    assert answer["Message-ID"] in second["References"]

    # The whole replies stay on the ticket, quotes included.
    with ctx.make_session() as s:
        kept = [m.body_text for m in s.scalars(select(Message).where(
            Message.role == "agent", Message.direction == "in").order_by(Message.id))]
    assert len(kept) == 2 and "Original Message" in kept[0] and "пишет:" in kept[1]

    desk.reply("#resolve", shape=outlook_reply)
    (notice,) = boxes.new(CLIENT)
    assert "[MD-1000]" in notice["Subject"] and "решена" in body(notice).lower() or \
        "resolved" in body(notice).lower()
    assert ticket(ctx).status.value == "resolved"


# -- each command ---------------------------------------------------------------------------
def test_a_new_ticket_notifies_the_line_with_the_clients_ten_latest_other_tickets(desk):
    # The fixture's cash-register ticket (MD-1000) and eleven more from the same client, the
    # last eleven in one batch: each notification lists the client's others, newest first,
    # ten at most, never the ticket itself (PRODUCT.md §5).
    for i in range(1, 12):
        send(desk.listener, client_mail(f"Вопрос {i}", f"Текст {i}."), "support@example.com",
             CLIENT)
    desk.processor.drain()
    notes = {n["Subject"]: body(n) for n in desk.boxes.new("line1@example.com")
             + desk.boxes.new("line2@example.com")}
    listed = {subject: re.findall(r"^\[(MD-\d+)\] ", text.split("earlier tickets ---", 1)[1],
                                  re.MULTILINE)
              for subject, text in notes.items() if "Вопрос" in subject}
    assert len(listed) == 11
    last = next(v for k, v in listed.items() if k.endswith("Вопрос 11"))
    assert last == [f"MD-{n}" for n in range(1010, 1000, -1)]    # MD-1011 is itself
    second = next(v for k, v in listed.items() if k.endswith("Вопрос 1"))
    assert second == ["MD-1000"]


def test_escalate_moves_the_ticket_and_notifies_the_next_line_with_the_history(desk):
    desk.reply("#note\nПроверил драйвер ККТ, версия старая.")
    desk.boxes.new("line2@example.com")
    desk.reply("#escalate")
    t = ticket(desk.ctx)
    assert t.line == "line3"
    (n,) = desk.boxes.new("line3@example.com")
    text = body(n)
    assert text.splitlines()[1].startswith("Escalated") and "line2" in text
    assert "Касса №3 не печатает чеки" in text            # the client's first mail in the history
    assert "Проверил драйвер ККТ" in text                  # internal notes: line 3 is ours
    assert desk.boxes.new(CLIENT) == []


def test_escalate_to_an_external_vendor_hides_internal_notes(desk, config_set):
    desk.reply("#note\nВнутреннее: клиент ругается.")
    lines = (config_set.dir / "lines.yaml").read_text()
    assert "id: vendor" in lines
    desk.processor.settings = desk.ctx.settings = _with_external_vendor(config_set)
    desk.reply("#escalate vendor")
    (n,) = desk.boxes.new("support@vendor.example")
    text = body(n)
    assert "Касса №3" in text and "клиент ругается" not in text
    assert ticket(desk.ctx).line == "vendor"


def _with_external_vendor(config_set):
    from maildesk.config.model import load_settings
    path = config_set.dir / "lines.yaml"
    path.write_text(path.read_text().replace("    mailbox: support@vendor.example\n",
                                             "    mailbox: support@vendor.example\n"
                                             "    external: true\n"))
    return load_settings(config_set.path)


def test_note_stays_internal_and_goes_to_the_line(desk):
    desk.reply("#note\nКлиент звонил, просит ускорить.", shape=thunderbird_reply)
    assert desk.boxes.new(CLIENT) == []
    (n,) = desk.boxes.new("line2@example.com")
    assert body(n).splitlines()[1].startswith("Internal note by")
    assert "Клиент звонил, просит ускорить." in body(n)
    with desk.ctx.make_session() as s:
        note = s.scalar(select(Message).where(Message.role == "agent"))
    assert note.internal
    assert ticket(desk.ctx).status.value == "new"          # a note is not an answer


def test_status_commands(desk):
    desk.reply("#pending\n\nПришлите, пожалуйста, фото чековой ленты.")
    (asked,) = desk.boxes.new(CLIENT)
    assert "фото чековой ленты" in body(asked)
    assert ticket(desk.ctx).status.value == "pending"
    desk.reply("#open")
    assert ticket(desk.ctx).status.value == "open"
    assert desk.boxes.new(CLIENT) == []                   # only commands: nothing to the client
    desk.reply("#close")
    t = ticket(desk.ctx)
    assert t.status.value == "closed" and t.closed_at is not None
    assert desk.boxes.new(CLIENT) == []


def test_assign_priority_category_tag(desk):
    before = ticket(desk.ctx)
    desk.reply("#assign me\n#priority p3\n#category ККТ / фискальный накопитель\n#tag срочно, ffd")
    t = ticket(desk.ctx)
    assert t.assignee == "carol@example.com"
    assert t.priority == "P3"
    assert t.first_response_due_at > before.first_response_due_at   # P3 allows longer
    assert t.category == "ККТ / фискальный накопитель"
    assert t.tags == ["срочно", "ffd"]
    desk.reply("#assign dmitry@example.com")
    assert ticket(desk.ctx).assignee == "dmitry@example.com"
    assert desk.boxes.new(CLIENT) == []


@pytest.mark.parametrize("command, complaint", [
    ("#resolv", "unknown command"),
    ("#priority P7", "#priority"),
    ("#assign stranger@evil.example", "not an agent"),
    ("#escalate line9", "no such line"),
])
def test_a_bad_command_changes_nothing_reaches_no_client_and_tells_the_agent(desk, command,
                                                                              complaint):
    before = ticket(desk.ctx)
    desk.reply(f"{command}\n\nВсё готово, касса работает.")
    t = ticket(desk.ctx)
    assert (t.status, t.priority, t.line, t.assignee) == \
        (before.status, before.priority, before.line, before.assignee)
    assert desk.boxes.new(CLIENT) == []
    (error,) = desk.boxes.new("carol@example.com")
    assert complaint.lower() in body(error).lower()
    assert "nothing was sent to the client" in body(error).lower()
    assert error["Reply-To"].addresses[0].addr_spec == \
        desk.notification["Reply-To"].addresses[0].addr_spec
    assert [e.data["errors"] for e in events(desk.ctx, "command_rejected")]


def test_a_stranger_forging_an_agents_from_without_the_token_is_a_client(desk):
    t = ticket(desk.ctx)
    client_address = f"support+1000-{t.reply_token}@example.com"  # known from the autoreply
    desk.reply("#resolve\nГотово.", sender="Carol <carol@example.com>", to=client_address)
    t = ticket(desk.ctx)
    assert t.status.value == "new"
    assert desk.boxes.new(CLIENT) == []                   # nothing relayed to the client
    (update,) = desk.boxes.new("line2@example.com")       # the line sees it as client text
    assert "#resolve" in body(update)
    with desk.ctx.make_session() as s:
        m = s.scalar(select(Message).where(Message.from_address == "carol@example.com"))
    assert m.role.value == "client"


def test_a_client_writing_a_command_is_relayed_to_the_line_as_text(desk):
    t = ticket(desk.ctx)
    raw = client_mail("Re: [MD-1000] Не работает касса", "#resolve\nСпасибо, заработало!")
    send(desk.listener, raw, f"support+1000-{t.reply_token}@example.com", CLIENT)
    desk.processor.drain()
    assert ticket(desk.ctx).status.value == "new"
    (update,) = desk.boxes.new("line2@example.com")
    assert "#resolve" in body(update) and "заработало" in body(update)


# -- rules actions --------------------------------------------------------------------------
def test_ignore_rule_keeps_the_mail_and_opens_no_ticket(ctx, processor, smtp_listener):
    msg = client_mail("Weekly digest", "news")
    msg = msg.replace(b"Subject:", b"List-Id: <news.shop.example.ru>\nSubject:", 1)
    send(smtp_listener, msg, "support@example.com", CLIENT)
    processor.drain()
    with ctx.make_session() as s:
        (inbound,) = s.scalars(select(Inbound))
        assert inbound.status is InboundStatus.IGNORED
        assert "mailing lists are not tickets" in inbound.reason
        assert s.scalar(select(Ticket)) is None


def test_the_agents_attachment_reaches_the_client(desk):
    msg = email.message_from_bytes(agent_mail(desk.notification, "Инструкция во вложении."),
                                   policy=policy.default)
    msg.add_attachment("Шаг 1: выключить кассу.".encode(), maintype="application",
                       subtype="pdf", filename="Инструкция ККТ.pdf")
    send(desk.listener, msg.as_bytes(), desk.notification["Reply-To"].addresses[0].addr_spec,
         "carol@example.com")
    desk.processor.drain()
    (answer,) = desk.boxes.new(CLIENT)
    assert "Инструкция во вложении." in body(answer)
    (att,) = answer.iter_attachments()
    assert att.get_filename() == "Инструкция ККТ.pdf"
    assert att.get_content() == "Шаг 1: выключить кассу.".encode()


def test_an_agent_trusted_by_our_mtas_authentication_results(desk, config_set):
    """Where configured, our own MTA's DKIM pass makes a listed agent an agent even when they
    write to the client's address; a header that another server added counts for nothing."""
    config_set.write(agents={"trust_authentication_results": "mx.example.com"})
    from maildesk.config.model import load_settings
    desk.processor.settings = desk.ctx.settings = load_settings(config_set.path)
    t = ticket(desk.ctx)
    client_address = f"support+1000-{t.reply_token}@example.com"

    def write(text: str, results: str) -> None:
        raw = agent_mail(desk.notification, text, to=client_address)
        raw = f"Authentication-Results: {results}\n".encode() + raw
        send(desk.listener, raw, client_address, "carol@example.com")
        desk.processor.drain()

    write("#priority P2\nПереключил на P2.",
          "mx.evil.example; dkim=pass header.d=example.com")
    assert ticket(desk.ctx).priority == "P1"                  # not our MTA: a client's mail
    write("#priority P2\nПереключил на P2.",
          "mx.example.com; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com")
    assert ticket(desk.ctx).priority == "P2"
    (answer,) = desk.boxes.new(CLIENT)
    assert "Переключил на P2." in body(answer)


def test_a_reply_with_nothing_new_is_not_dropped_in_silence(desk):
    """An agent who hits Send on a bare quote is told, and the client gets nothing."""
    desk.reply("", shape=outlook_reply)
    assert desk.boxes.new(CLIENT) == []
    (error,) = desk.boxes.new("carol@example.com")
    assert "no new text" in body(error).lower()
    assert ticket(desk.ctx).status.value == "new"
