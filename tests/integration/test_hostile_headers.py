"""Hostile and broken headers through the real SMTP listener (issue 17): a NUL in a header or
the body, a mail without From. What a user sees: a ticket with a readable subject from the
right requester, nothing quarantined; and the raw mail kept byte for byte. PostgreSQL refuses
NUL in text columns, so every test runs on both backends."""

from __future__ import annotations

import json
import smtplib

from sqlalchemy import select

from helpers import SUPPORT, cli_json, inbound_statuses, send_smtp
from maildesk.db.models import RawMessage

CLIENT = "client@customer.example"


def deliver_smtp(smtp_listener, processor, raw: bytes, *, sender: str = CLIENT) -> None:
    assert send_smtp(smtp_listener.host, smtp_listener.port, raw, sender=sender) == {}
    processor.drain()


def only_ticket(cli) -> dict:
    (listed,) = cli_json(cli, "tickets", "list")
    return cli_json(cli, "tickets", "show", str(listed["number"]))


def assert_no_control_characters(shown: dict) -> None:
    """No NUL nor other C0 control reached what is stored and shown, except in the text."""
    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            allowed = "\t\n" if key == "text" else ""
            assert not any(ord(c) < 0x20 and c not in allowed for c in value), (key, value)
    assert "\\u0000" not in json.dumps(shown)
    walk(shown)


def test_nul_in_the_subject_and_body_makes_a_readable_ticket(smtp_listener, processor, cli, ctx):
    raw = (b"From: Ivan Petrov <ivan@shop.example.ru>\r\n"
           b"To: support@example.com\r\n"
           b"Subject: Printer\x00 broken\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <nul-subject-1@shop.example.ru>\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"\r\n"
           b"The printer\x00 on the second floor is broken.\r\n")
    deliver_smtp(smtp_listener, processor, raw)

    assert inbound_statuses(ctx) == ["done"]
    assert cli_json(cli, "quarantine", "list") == []
    shown = only_ticket(cli)
    assert shown["subject"] == "Printer broken"
    assert shown["requester"]["address"] == "ivan@shop.example.ru"
    assert shown["requester"]["name"] == "Ivan Petrov"
    (message,) = [m for m in shown["messages"] if m["direction"] == "in"]
    assert message["text"] == "The printer on the second floor is broken."
    assert_no_control_characters(shown)
    # The raw mail is kept as it came, NUL bytes included.
    with ctx.make_session() as s:
        (data,) = s.scalars(select(RawMessage.data)).all()
    assert b"Subject: Printer\x00 broken\r\n" in bytes(data)
    assert b"The printer\x00 on" in bytes(data)


def test_control_bytes_in_every_header_make_a_ticket_with_nothing_unstorable(
        smtp_listener, processor, cli, ctx):
    raw = (b"From: Iv\x00an \x01Petrov <ivan@shop.example.ru>\r\n"
           b"To: support@example.com, Ol\x00ga <olga@shop.example.ru>\r\n"
           b"Cc: =?utf-8?Q?Bor=00is?= <boris@shop.example.ru>\r\n"
           b"Subject: =?utf-8?Q?Kassa=00_3?= \x1b[31mdoes not print\x07\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <nul-everywhere-1@shop.example.ru>\x00\r\n"
           b"Content-Language: r\x00u\r\n"
           b"X-Mailer: Bad\x00Mailer\x7f 1.0\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
           b"\r\n"
           b"--b1\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n"
           b"\r\n"
           b"<p>Receipts come out\x00 blank.</p>\r\n"
           b"--b1\r\n"
           b"Content-Type: application/pd\x00f; name=\"scan\x00.pdf\"\r\n"
           b"Content-Disposition: attachment; filename=\"sc\x00an.pdf\"\r\n"
           b"\r\n"
           b"%PDF-1.4 \x00\x01\x02\r\n"
           b"--b1--\r\n")
    deliver_smtp(smtp_listener, processor, raw)

    assert inbound_statuses(ctx) == ["done"]
    assert cli_json(cli, "quarantine", "list") == []
    shown = only_ticket(cli)
    assert shown["subject"] == "Kassa 3 [31mdoes not print"
    assert shown["requester"] == {"address": "ivan@shop.example.ru", "name": "Iv an Petrov"}
    (message,) = [m for m in shown["messages"] if m["direction"] == "in"]
    assert message["message_id"] == "nul-everywhere-1@shop.example.ru"
    assert message["to"] == ["support@example.com", "olga@shop.example.ru"]
    assert message["cc"] == ["boris@shop.example.ru"]
    assert message["text"].replace("\ufffd", "") == "Receipts come out blank."
    (attachment,) = message["attachments"]
    assert attachment["filename"] == "sc an.pdf"
    assert attachment["size"] == len(b"%PDF-1.4 \x00\x01\x02")  # the file's bytes untouched
    assert_no_control_characters(shown)


def test_mail_without_from_is_a_ticket_from_the_envelope_sender(smtp_listener, processor, cli,
                                                                 ctx):
    raw = (b"To: support@example.com\r\n"
           b"Subject: Scanner offline\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <no-from-1@scanner.customer.example>\r\n"
           b"\r\n"
           b"The scanner in room 4 is offline.\r\n")
    deliver_smtp(smtp_listener, processor, raw, sender="Scanner-4@Customer.example")

    assert inbound_statuses(ctx) == ["done"]
    assert cli_json(cli, "quarantine", "list") == []
    shown = only_ticket(cli)
    assert shown["subject"] == "Scanner offline"
    assert shown["requester"]["address"] == "scanner-4@customer.example"
    assert [p["address"] for p in shown["participants"]] == ["scanner-4@customer.example"]
    (message,) = [m for m in shown["messages"] if m["direction"] == "in"]
    assert message["from"]["address"] == "scanner-4@customer.example"
    assert message["text"] == "The scanner in room 4 is offline."


def test_mail_without_from_with_a_nul_in_the_subject(smtp_listener, processor, cli, ctx):
    raw = (b"To: support@example.com\r\n"
           b"Subject: UPS\x00 alarm\r\n"
           b"\r\n"
           b"Battery low\x00.\r\n")
    deliver_smtp(smtp_listener, processor, raw, sender="ups@customer.example")

    assert inbound_statuses(ctx) == ["done"]
    shown = only_ticket(cli)
    assert (shown["subject"], shown["requester"]["address"]) == ("UPS alarm",
                                                                 "ups@customer.example")
    assert_no_control_characters(shown)


def test_mail_without_from_and_with_a_null_envelope_sender_is_quarantined_with_the_reason(
        smtp_listener, processor, cli, ctx):
    raw = (b"To: support@example.com\r\n"
           b"Subject: Who sent this?\r\n"
           b"\r\n"
           b"Nobody.\r\n")
    deliver_smtp(smtp_listener, processor, raw, sender="")  # MAIL FROM:<>

    assert inbound_statuses(ctx) == ["quarantined"]
    assert cli_json(cli, "tickets", "list") == []
    (held,) = cli_json(cli, "quarantine", "list")
    assert held["rcpt_to"] == [SUPPORT]
    assert "no sender" in held["reason"] and "envelope sender is empty" in held["reason"]
    assert "Traceback" not in held["reason"]


def test_a_return_path_with_control_characters_is_refused(smtp_listener, ctx):
    with smtplib.SMTP(smtp_listener.host, smtp_listener.port, timeout=30) as smtp:
        smtp.ehlo()
        code, reply = smtp.docmd("MAIL FROM:<a\x00b@customer.example>")
        assert code == 553, reply
        assert smtp.docmd("MAIL FROM:<ab@customer.example>")[0] == 250
