"""sender_of / missing_sender: who a ticket is from when headers or the envelope are missing."""

from __future__ import annotations

import pytest

from maildesk.pipeline.parse import ParsedMessage, parse_message
from maildesk.pipeline.plan import missing_sender, sender_of


def parsed(raw: bytes) -> ParsedMessage:
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage), m
    return m


NO_FROM = parsed(b"To: support@example.com\nSubject: Scanner offline\n\nOffline.\n")


def test_from_wins_over_reply_to_and_the_envelope():
    m = parsed(b"From: Ivan <Ivan@Shop.example>\nReply-To: other@shop.example\n\nx\n")
    assert sender_of(m, "bounce@relay.example") == ("ivan@shop.example", "Ivan")
    assert missing_sender(m, None) is None


@pytest.mark.parametrize("mail_from,expected", [
    ("Scanner-4@Customer.example", "scanner-4@customer.example"),
    ("<scanner-4@customer.example>", "scanner-4@customer.example"),
    ("scan\x00ner@customer.example", "scan ner@customer.example"),  # never a NUL downstream
])
def test_without_any_sender_header_the_envelope_sender_is_the_sender(mail_from, expected):
    assert NO_FROM.from_ is None
    assert sender_of(NO_FROM, mail_from) == (expected, "")
    assert missing_sender(NO_FROM, mail_from) is None


@pytest.mark.parametrize("mail_from", [None, "", "<>", " \x00 "])
def test_without_sender_header_and_envelope_sender_the_reason_says_so(mail_from):
    reason = missing_sender(NO_FROM, mail_from)
    assert reason is not None and "no sender" in reason and "envelope sender is empty" in reason
    assert reason.endswith(".") and "\n" not in reason


def test_a_bounce_from_the_null_sender_is_not_held_for_lack_of_a_sender():
    m = parsed(b"From: <>\nSubject: Undelivered Mail\n\nx\n")
    assert m.from_ is not None and m.from_.address == ""
    assert missing_sender(m, "") is None
