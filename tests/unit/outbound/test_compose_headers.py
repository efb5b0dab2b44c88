"""The headers of the mail maildesk writes: folded into lines of at most 78 characters where the
words allow, non-ASCII text RFC 2047-encoded, and read back by a mail client's parser as the
value that went in."""

from __future__ import annotations

import email
import email.header
import email.policy
from datetime import datetime, timezone
from itertools import takewhile

import pytest

from maildesk.outbound.compose import Rendered, build_message, clean_header

SUBJECTS = [
    "Ответ: [#123] Не работает принтер на 3-м этаже — срочно!!! " * 3,
    "Привет 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 " + "ё" * 120,
    "plain ascii subject that is long enough to need folding " * 3,
    "a  b   c" + " d" * 60,                    # runs of spaces come back as they were
    "x" * 120 + " y",                          # a word longer than a line keeps its own
    "short",
]


def _mail(subject: str, from_name: str = "Служба поддержки ООО «Ромашка»") -> bytes:
    refs = tuple(f"{i:024x}.{'r' * 20}@mail.example.com" for i in range(25))
    return build_message(
        from_name=from_name, from_address="support@example.com", to_name="Иван Петров",
        to_address="ivan@example.org", subject=subject,
        rendered=Rendered(subject, "текст", None), message_id="abc@example.com",
        in_reply_to=refs[-1], references=refs, reply_to="support+12-abcdef@example.com",
        date=datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc), auto=True)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_headers_read_back_as_written_in_lines_of_78(subject):
    raw = _mail(subject)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for line in head.split("\r\n"):
        # Only a single word too long for any line may pass 78 characters.
        assert len(line) <= 78 or " " not in line.split(":", 1)[-1].strip(), line
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(msg["Subject"]) == clean_header(subject)
    assert msg["From"].addresses[0].display_name == "Служба поддержки ООО «Ромашка»"
    assert msg["To"].addresses[0].display_name == "Иван Петров"
    assert str(msg["References"]).split() == [
        f"<{i:024x}.{'r' * 20}@mail.example.com>" for i in range(5, 25)]   # the last 20
    assert msg["Reply-To"].addresses[0].addr_spec == "support+12-abcdef@example.com"


def test_an_encoded_word_never_splits_a_character():
    head = _mail("😀" * 40).split(b"\r\n\r\n", 1)[0].decode("ascii")
    subject = head.split("\r\nSubject: ", 1)[1].split("\r\n")
    words = [subject[0], *(line.strip() for line in takewhile(
        lambda line: line.startswith(" "), subject[1:]))]
    assert len(words) > 1
    for word in words:   # each decodes on its own (RFC 2047 §5)
        text, charset = email.header.decode_header(word)[0]
        assert charset == "utf-8" and set(text.decode("utf-8")) == {"😀"}
