"""parse_message: what a user sees of a mail (text, names, files, threading ids), and that no
bytes at all can make it raise."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from maildesk.pipeline.parse import Address, ParsedMessage, Unparseable, parse_message

DATA = Path(__file__).resolve().parents[2] / "data"
INTERNAL_ERROR = "The message could not be parsed"


def parse(name: str) -> ParsedMessage:
    result = parse_message((DATA / name).read_bytes())
    assert isinstance(result, ParsedMessage), result
    return result


# --- Russian mail -------------------------------------------------------------------------------

def test_windows_1251_subject_name_and_body_read_as_russian():
    m = parse("cp1251-plain.eml")
    assert m.subject == "Касса №3 не печатает чеки"
    assert m.from_ is not None
    assert m.from_.name == "Иван Петров"
    assert m.from_.address == "ivan.petrov@shop.example.ru"  # lower-cased entirely
    assert m.text.startswith("Здравствуйте!\n\nС утра касса №3 не печатает чеки, на экране "
                             "ошибка «Нет бумаги».")
    assert m.text.endswith("Иван Петров, магазин «Ромашка»")
    assert m.defects == ()


def test_koi8r_encoded_words_across_lines_and_quoted_printable_body():
    m = parse("koi8r-subject-body.eml")
    assert m.subject == "Принтер печатает пустые листы"
    assert m.text == "Добрый день.\nПринтер в бухгалтерии печатает пустые листы.\nСпасибо!"


def test_raw_8bit_cp1251_headers_and_undeclared_body_are_guessed():
    m = parse("8bit-headers-cp1251.eml")
    assert m.subject == "Не работает сканер штрихкодов"
    assert m.from_ is not None and m.from_.name == "Сергей Иванов"
    assert m.text == "Сканер на второй кассе перестал считывать штрихкоды после обновления."
    assert any("cp1251" in d for d in m.defects)  # the guess is on record


def test_undeclared_koi8r_without_any_mime_header_is_not_read_as_cp1251():
    m = parse("koi8r-undeclared.eml")
    assert m.subject == "проблема с почтой"
    assert m.text == "Не могу отправить письмо, сервер отвечает ошибкой."


def test_unknown_charset_label_falls_back_to_detection():
    m = parse("unknown-charset.eml")
    assert m.text == "Оплата картой не проходит на всех терминалах магазина."
    assert any("x-unknown" in d for d in m.defects)


def test_utf8_mail_declared_as_windows_1251_is_read_as_utf8():
    raw = ("From: a@example.ru\nSubject: x\nContent-Type: text/plain; charset=windows-1251\n"
           "Content-Transfer-Encoding: 8bit\n\nПривет, мир\n").encode("utf-8")
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage)
    assert m.text == "Привет, мир"


def test_russian_reply_threading_headers_addresses_and_language():
    m = parse("ru-reply-otvet.eml")
    assert m.subject == "Ответ: Не печатает чеки"
    assert m.message_id == "reply-2@shop.example.ru"
    assert m.in_reply_to == ("MD-1042.k7f3q@helpdesk.example.com",)
    assert m.references == ("first-1@shop.example.ru", "MD-1042.k7f3q@helpdesk.example.com",
                            "last-3@shop.example.ru")
    assert m.date == datetime(2024, 5, 23, 7, 15, 30, tzinfo=timezone.utc)
    assert m.date.tzinfo is not None
    assert [(a.name, a.address) for a in m.to] == [("Support", "support@helpdesk.example.com")]
    assert [(a.name, a.address) for a in m.cc] == [("", "boss@shop.example.ru"),
                                                   ("Petrov, Ivan", "ivan@other.example.ru")]
    assert m.content_language == "ru-ru"
    assert m.text.startswith("Спасибо, теперь чеки печатаются.")
    assert m.header("return-path") == "<ivan.petrov@shop.example.ru>"
    assert m.header("SUBJECT") == "Ответ: Не печатает чеки"


# --- structure: HTML, parts, attachments ---------------------------------------------------------

def test_html_only_mail_is_converted_to_text():
    m = parse("html-only.eml")
    assert m.has_html
    assert "the payment page for order 4711 says “error 500”." in m.text
    assert "12,50 €" in m.text and "Grüße" in m.text
    assert "alert" not in m.text and "color" not in m.text and "<" not in m.text


def test_plain_alternative_wins_and_inline_text_parts_are_joined():
    m = parse("multipart-two-texts.eml")
    assert m.text == "First part, plain.\n\nSecond part, after the picture."
    assert m.has_html  # an HTML body part exists even though the plain one was chosen
    assert [(a.filename, a.content_type, a.part) for a in m.attachments] == [
        ("screen.png", "image/png", "2")]


def test_attachment_names_rfc2231_path_stripped_and_default():
    m = parse("rfc2231-filename.eml")
    assert m.text == "See the attached files."
    names = [(a.filename, a.content_type, a.part) for a in m.attachments]
    assert names == [("Отчёт № 5.pdf", "application/pdf", "2"),
                     ("error.log", "text/plain", "3"),
                     ("part-4.bin", "application/octet-stream", "4")]
    pdf = m.attachments[0]
    assert pdf.size == len(b"%PDF-1.4 fake report\n")
    assert pdf.sha256 == hashlib.sha256(b"%PDF-1.4 fake report\n").hexdigest()
    assert m.attachments[2].sha256 == hashlib.sha256(bytes(range(5))).hexdigest()


def test_forwarded_message_is_an_attachment_not_body_text():
    m = parse("nested-rfc822.eml")
    assert m.text == "Please see the forwarded message below."
    assert "inner text" not in m.text
    [eml] = m.attachments
    assert (eml.filename, eml.content_type, eml.part) == ("Original problem.eml",
                                                          "message/rfc822", "2")
    raw = (DATA / "nested-rfc822.eml").read_bytes()
    inner = raw[raw.index(b"From: Client"):raw.index(b"\n--b1--")]
    assert eml.size == len(inner)  # measured on the bytes as received
    assert eml.sha256 == hashlib.sha256(inner).hexdigest()


def test_tnef_winmail_dat_is_unpacked():
    m = parse("tnef.eml")
    assert [(a.filename, a.content_type, a.size, a.part) for a in m.attachments] == [
        ("report.txt", "text/plain", 18, "1:1"), ("photo.jpg", "image/jpeg", 12, "1:2")]
    assert m.text == "Body text from the TNEF"


def test_unreadable_winmail_dat_is_kept_as_it_is():
    blob = b"this is not TNEF at all" * 3
    raw = (b"From: o@example.com\nSubject: t\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n"
           b"--b\nContent-Type: application/ms-tnef; name=winmail.dat\n"
           b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(blob) + b"--b--\n")
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage)
    assert m.text == "hi"
    [dat] = m.attachments
    assert (dat.filename, dat.size, dat.part) == ("winmail.dat", len(blob), "2")
    assert any("tnef" in d for d in m.defects)


@pytest.mark.parametrize("name,files", [
    ("smime.eml", [("smime.p7m", "application/pkcs7-mime")]),
    ("pgp-encrypted.eml", [("part-1.asc", "application/pgp-encrypted"),
                           ("encrypted.asc", "application/octet-stream")]),
])
def test_encrypted_mail_says_so_and_keeps_the_content(name, files):
    m = parse(name)
    assert "encrypted" in m.text and "attached" in m.text
    assert [(a.filename, a.content_type) for a in m.attachments] == files


# --- headers: injection, ids, dates ----------------------------------------------------------

def test_encoded_crlf_cannot_inject_headers():
    m = parse("header-injection.eml")
    assert m.subject == "Hello Bcc: victim@example.com body"
    assert m.from_ is not None
    assert m.from_.address == "mallory@evil.example"
    assert m.from_.name == "Mallory Bcc: victim@example.com"
    for name, value in m.headers:
        assert not any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in name + value), (name, value)
    assert m.header("X-Evil") == "a b c d"


def test_missing_message_id_and_date_and_mbox_from_line():
    m = parse("no-message-id.eml")
    assert m.message_id is None and m.date is None
    assert m.subject == "No id here"
    assert m.from_ is not None and m.from_.address == "client@example.com"
    assert m.text == "Body without an id."
    assert [k for k, _ in m.headers] == ["From", "To", "Subject"]


@pytest.mark.parametrize("value,expected", [
    ("<a@b>", "a@b"), ("a@b", "a@b"), ("  <a@b> (comment)", "a@b"), ("<a@b> <c@d>", "a@b"),
    ("12345.JavaMail.root", "12345.JavaMail.root"), ("", None), ("<>", None),
])
def test_message_id_tolerates_missing_brackets_and_garbage(value, expected):
    m = parse_message(f"From: a@example.com\nMessage-ID: {value}\n\nx\n".encode())
    assert isinstance(m, ParsedMessage)
    assert m.message_id == expected


@pytest.mark.parametrize("value,expected", [
    ("Tue, 14 May 2024 10:15:00 +0300", datetime(2024, 5, 14, 7, 15, tzinfo=timezone.utc)),
    ("14 May 2024 10:15:00 -0000", datetime(2024, 5, 14, 10, 15, tzinfo=timezone.utc)),
    ("Fri, 21 Nov 1997 09(comment):   55  :  06 -0600",
     datetime(1997, 11, 21, 15, 55, 6, tzinfo=timezone.utc)),
    ("not a date", None), ("Fri, 31 Dec 9999 23:59:59 -1200", None), ("", None),
])
def test_date_is_aware_utc_or_none(value, expected):
    m = parse_message(f"From: a@example.com\nDate: {value}\n\nx\n".encode())
    assert isinstance(m, ParsedMessage)
    assert m.date == expected


def test_huge_header_is_capped():
    raw = (b"From: a@example.com\nSubject: " + b"x" * 200_000 + b"\n"
           + b"".join(b"X-H%d: v\n" % i for i in range(700)) + b"\nbody\n")
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage)
    assert len(m.subject) == 4096
    assert len(m.headers) == 500
    assert any("cut" in d for d in m.defects) and any("500" in d for d in m.defects)


def test_broken_quoting_in_display_names_keeps_every_address():
    raw = b'From: a@example.com\nTo: bad"quote <x@example.com>, "Ok" <y@example.com>\n\nx\n'
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage)
    assert [a.address for a in m.to] == ["x@example.com", "y@example.com"]


def test_bounce_with_null_sender_is_still_a_message():
    raw = (b"Return-Path: <>\nFrom: MAILER-DAEMON <>\nSubject: Undelivered Mail\n"
           b"Auto-Submitted: auto-replied\n\nThe mail could not be delivered.\n")
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage)
    assert m.from_ is not None and m.from_.name == "MAILER-DAEMON" and m.from_.address == ""


# --- duplicates ------------------------------------------------------------------------------

def test_same_mail_over_smtp_and_imap_has_the_same_content_hash():
    raw = (DATA / "ru-reply-otvet.eml").read_bytes()
    smtp = (b"Return-Path: <ivan.petrov@shop.example.ru>\nDelivered-To: support@helpdesk.example"
            b".com\nReceived: from mx.shop.example.ru by mx.helpdesk.example.com; Thu, 23 May"
            b" 2024 10:15:31 +0300\n" + raw)
    imap = raw.replace(b"\n", b"\r\n")  # IMAP servers hand out CRLF
    hashes = {parse_message(r).content_hash for r in (raw, smtp, imap)}
    assert len(hashes) == 1


def test_a_different_body_or_message_id_changes_the_content_hash():
    raw = (DATA / "ru-reply-otvet.eml").read_bytes()
    base = parse_message(raw).content_hash
    assert parse_message(raw.replace("Спасибо".encode(), "Спасибо!".encode())).content_hash != base
    assert parse_message(raw.replace(b"<reply-2@", b"<reply-3@")).content_hash != base


# --- what is not a mail ----------------------------------------------------------------------

@pytest.mark.parametrize("raw,words", [
    (b"", "empty"),
    (b"\r\n \n", "empty"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096), "Outlook .msg"),
    ("From: a@example.com\n\nbody".encode("utf-16"), "does not start with mail headers"),
    (b"Hi folks,\n\nthis is just a body, no headers.\n", "does not start with mail headers"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "does not start with mail headers"),
])
def test_non_mail_input_is_unparseable_with_a_reason(raw, words):
    result = parse_message(raw)
    assert isinstance(result, Unparseable)
    assert words in result.reason
    assert result.reason.endswith(".") and "\n" not in result.reason


def test_mail_without_any_sender_header_parses_without_a_sender():
    # The envelope sender (MAIL FROM) may still name one: plan.sender_of decides, not parsing.
    result = parse_message((DATA / "no-sender.eml").read_bytes())
    assert isinstance(result, ParsedMessage), result
    assert result.from_ is None and result.reply_to == ()
    assert result.subject == "Who sent this?" and result.text == "Nobody."
    assert any("no From" in d for d in result.defects)


# --- control bytes in headers (issue 17) ---------------------------------------------------

def test_nul_in_a_header_value_is_a_space_in_the_parsed_view():
    raw = (b"From: Iv\x00an Petrov <ivan@shop.example.ru>\r\n"
           b"To: support@example.com\r\n"
           b"Subject: Printer\x00 broken\x01\x7f again\r\n"
           b"Message-ID: <nul-1@shop.example.ru>\x00\r\n"
           b"X-Junk: a\x00\x00\x0bb\tc\r\n"
           b"\r\n"
           b"The printer\x00 is broken.\r\n")
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage), m
    assert m.subject == "Printer broken again"
    assert m.from_ == Address("Iv an Petrov", "ivan@shop.example.ru")
    assert m.message_id == "nul-1@shop.example.ru"
    assert m.header("X-Junk") == "a b c"
    assert m.text == "The printer is broken."
    assert_no_control_characters(m)


def test_nul_in_encoded_words_attachment_headers_and_an_html_body_is_dropped():
    raw = (b"From: =?utf-8?Q?Ivan=00_Petrov?= <ivan@shop.example.ru>\n"
           b"Subject: =?utf-8?B?" + base64.b64encode("Касса\x00 №3".encode()) + b"?=\n"
           b"Content-Type: multipart/mixed; boundary=b\n\n"
           b"--b\nContent-Type: text/html; charset=utf-8\n\n<p>Hello\x00 there</p>\n"
           b"--b\nContent-Type: application/pd\x00f\n"
           b"Content-Disposition: attachment; filename=\"scan\x00.pdf\"\n\n%PDF\x00\n"
           b"--b--\n")
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage), m
    assert m.subject == "Касса №3"
    assert m.from_ is not None and m.from_.name == "Ivan Petrov"
    assert m.text.replace("\ufffd", "") == "Hello there"  # the HTML parser's U+FFFD for NUL
    (attachment,) = m.attachments
    assert (attachment.filename, attachment.content_type) == ("scan .pdf", "application/pd f")
    assert attachment.size == 5  # b"%PDF\x00": the bytes themselves are kept as they are
    assert_no_control_characters(m)


def assert_no_control_characters(m: ParsedMessage) -> None:
    """Nothing that goes to a text column (PostgreSQL refuses NUL) carries a C0 control."""
    def clean(value: str, allowed: str = "") -> bool:
        return not any(ord(ch) < 0x20 and ch not in allowed for ch in value)
    texts = [m.subject, m.message_id or "", *m.in_reply_to, *m.references,
             *(v for pair in m.headers for v in pair), *m.defects, m.content_language or ""]
    for address in (m.from_, *m.reply_to, *m.to, *m.cc):
        if address is not None:
            texts += [address.name, address.address]
    for attachment in m.attachments:
        texts += [attachment.filename, attachment.content_type, attachment.part]
    assert all(clean(t) for t in texts), texts
    assert clean(m.text, "\t\n"), m.text


CONTROL = st.sampled_from([chr(c) for c in range(0x20) if c not in (0x0A, 0x0D)] + ["\x7f"])
HEADER_TEXT = st.lists(st.one_of(CONTROL, st.sampled_from(list("ab Я=?<>@\""))),
                       max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "References",
                        "Content-Type", "Content-Disposition", "X-Other"]),
       HEADER_TEXT, HEADER_TEXT)
def test_any_header_value_with_control_bytes_parses_without_control_characters(name, value,
                                                                               body):
    raw = (f"From: client@customer.example\nSubject: hello\n{name}: {value}\n"
           f"Content-Disposition: attachment; filename=x{value}.txt\n\n{body}\n").encode()
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage), m
    assert_no_control_characters(m)


# --- bounded work ------------------------------------------------------------------------------

def test_absurd_nesting_is_cut_not_crashed():
    depth = 400
    raw = b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b0\n\n"
    for i in range(1, depth):
        raw += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i)
    raw += b"--b%d\nContent-Type: text/plain\n\ndeep text\n" % (depth - 1)
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage)
    assert "deep text" in m.text  # the body is kept as text when its parts are not separated
    assert any("boundaries" in d for d in m.defects)


def test_many_parts_are_capped():
    parts = b"".join(b"--b\nContent-Type: application/octet-stream\n\nx\n" for _ in range(1500))
    raw = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
           b"Content-Type: text/plain\n\nhello\n" + parts + b"--b--\n")
    m = parse_message(raw)
    assert isinstance(m, ParsedMessage)
    assert m.text == "hello"
    assert len(m.attachments) < 1000
    assert any("parts" in d for d in m.defects)


# --- never raises ----------------------------------------------------------------------------

def _check(raw: bytes) -> None:
    result = parse_message(raw)
    if isinstance(result, Unparseable):
        assert not result.reason.startswith(INTERNAL_ERROR), result.reason
        return
    assert "\r" not in result.subject and "\n" not in result.subject
    for name, value in result.headers:
        assert "\r" not in name + value and "\n" not in name + value
    for address in (result.from_, *result.to, *result.cc, *result.reply_to):
        if address is not None:
            assert "\n" not in address.name + address.address
    for attachment in result.attachments:
        assert "/" not in attachment.filename and "\n" not in attachment.filename
    assert result.date is None or result.date.tzinfo is not None
    result.text.encode("utf-8")  # no lone surrogates: storable as UTF-8


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_never_raises_on_arbitrary_bytes(raw):
    _check(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_never_raises_on_arbitrary_bytes_after_a_header(raw):
    _check(b"From: a@example.com\nSubject: " + raw)


SAMPLES = sorted(p.name for p in DATA.glob("*.eml"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_never_raises_on_mutated_real_messages(name, data):
    raw = bytearray((DATA / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 12), label="mutations")):
        if not raw:
            break
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]), label="kind")
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        if kind == "flip":
            raw[at] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "insert":
            raw[at:at] = data.draw(st.sampled_from(
                [b"\r", b"\n", b"\r\n\r\n", b"\x00", b"=?utf-8?B?", b"?=", b'"', b"<", b";",
                 b"--outer\n", b"\xd0", b"\xff\xfe", b"=\n", b"Content-Type: multipart/mixed\n"]),
                label="insert")
        elif kind == "delete":
            del raw[at:at + data.draw(st.integers(1, 64), label="len")]
        else:
            del raw[at:]
    _check(bytes(raw))


@pytest.fixture(scope="module")
def sandbox():
    from maildesk.pipeline.isolate import ParseSandbox

    box = ParseSandbox(timeout=20, memory_mb=1024)
    yield box
    box.close()


@pytest.mark.parametrize("raw", [
    b"From: a@example.com\nSubject: " + b" " * 60_000 + b"\x01x\n\nbody\n",
    b"From: a@example.com\nSubject: " + b"=?a?q?" * 10_000 + b"\n\nbody\n",
    b"From: a@example.com\nTo: " + b"a" * 60_000 + b"@b c@d\nCc: " + b'"' * 30_000 + b"\n\nx\n",
    b"From: a@example.com\n\n" + b" " * 3_000_000 + b"x\n",
    b"From: a@example.com\nContent-Type: text/html\n\n" + b"<p>x</p>" * 250_000,
    b"From: a@example.com\nContent-Type: text/html\n\n" + b"<!--<style><" * 150_000,
    b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"
    + (b"--b" + b" " * 1000 + b"x\n") * 2000,
], ids=["spaces-before-control", "unclosed-encoded-words", "address-runs", "blank-run-body",
        "big-html", "unclosed-html", "near-boundaries"])
def test_hostile_input_is_ticketed_not_quarantined_as_too_slow(raw, sandbox):
    # Quadratic behaviour on these would take minutes and hit the daemon's default parse bound
    # (processing.parse_timeout_seconds = 20), quarantining an ordinary-looking message.
    result = sandbox.parse(raw)
    assert isinstance(result, ParsedMessage), result


def test_the_parse_child_does_not_run_the_parents_main_script_again(tmp_path):
    """multiprocessing would have each new parse child run the parent's main script again (for
    the daemon: the console script, importing the whole CLI, half a second a child)."""
    import subprocess
    import sys

    marker = tmp_path / "main-ran-in-child"
    script = tmp_path / "main.py"
    script.write_text(
        "import pathlib\n"
        "if __name__ != '__main__':\n"
        f"    pathlib.Path({str(marker)!r}).write_text(__name__)\n"
        "else:\n"
        "    from maildesk.pipeline.isolate import ParseSandbox\n"
        "    box = ParseSandbox(timeout=30, memory_mb=1024)\n"
        "    first = box.parse(b'From: a@example.com\\r\\nSubject: one\\r\\n\\r\\nhello\\r\\n')\n"
        "    box.close()   # the next mail starts a new child\n"
        "    second = box.parse(b'From: a@example.com\\r\\nSubject: two\\r\\n\\r\\nhi\\r\\n')\n"
        "    box.close()\n"
        "    print(first.subject, second.subject)\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["one", "two"]
    assert not marker.exists()


@pytest.mark.parametrize("flags", [[], ["-S"]], ids=["site", "no-site"])
def test_a_launcher_that_makes_maildesk_importable_itself_still_gets_parse_children(tmp_path,
                                                                                   flags):
    """A wrapper script, run by another Python, that adds maildesk's site directory in its
    main (as the Postfix tests' launcher for the pipe user does, with -S): where a child
    cannot find maildesk without that script, it is started with it."""
    import shutil
    import subprocess
    import sys
    import sysconfig

    system = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}",
                          path="/usr/bin:/usr/local/bin:/bin")
    if system is None or system == sys.executable:
        pytest.skip("no system Python of this version beside the venv's")
    script = tmp_path / "launcher.py"
    script.write_text(
        "import site\n"
        f"site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
        "if __name__ == '__main__':\n"
        "    from maildesk.pipeline.isolate import ParseSandbox\n"
        "    box = ParseSandbox(timeout=30, memory_mb=1024)\n"
        "    print(box.parse(b'From: a@example.com\\r\\nSubject: one\\r\\n\\r\\nhello\\r\\n').subject)\n"
        "    box.close()\n", encoding="utf-8")
    done = subprocess.run([system, *flags, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["one"]
