"""The new text of a reply (pipeline/reply.py): what its writer typed, without the quote, the
signature or our notification.

Three parts: the reply bodies of github/email_reply_parser and two zammad mails from
../shared/corpus (read in place, skipped when absent); replies written here in the shapes of
the mail clients our agents use, in English and Russian; and a property over arbitrary text.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from maildesk.pipeline.parse import ParsedMessage, parse_message
from maildesk.pipeline.reply import MARKER, ReplyText, new_text

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
ERP = CORPUS / "email_reply_parser"
ZAMMAD = CORPUS / "zammad"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def lines_of(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# -- github/email_reply_parser ------------------------------------------------------------------
# Per file: the new text as a whole (a str), or phrases it must hold (`has`) and phrases of the
# quoted history, signature or list footer it must not (`not`). Decided by reading each file;
# the comments say where the answer is a judgement.
EXACT = "exact"
UNCHANGED = "unchanged"
ERP_EXPECTED: dict[str, dict] = {
    "correct_sig.txt": {EXACT: "this is an email with a correct -- signature."},
    # "-Abhishek Kona" is kept: we keep hyphen lists ("- step one"), so a "-Name" line is text.
    # The mailing-list footer below the line of underscores is not the writer's.
    "email_1_1.txt": {
        "has": ["Hi folks", "What is the best way to clear a Riak bucket of all key, values after",
                "running a test?", "I am currently using the Java HTTP API."],
        "not": ["_____", "riak-users mailing list", "lists.basho.com"]},
    # Answered below the quote, after a one-word greeting: the greeting and the answer are the
    # new text; the quoted question, the attribution and the footer are not.
    "email_1_2.txt": {
        "has": ["Hi,", "You can list the keys for the bucket and call delete for each.",
                "Something like:", '        String bucket = "my_bucket";',
                "            riakClient.delete(bucket, key);", "would do it.",
                "http://wiki.basho.com/REST-API.html#Bucket-operations",
                "delete them all individually."],
        "not": ["Abhishek Kona wrote", "What is the best way to clear", "Java HTTP API",
                "-Abhishek Kona", "riak-users mailing list", "> "]},
    "email_1_3.txt": {
        "has": ["Oh thanks.", "Having the function would be great.", "-Abhishek Kona"],
        "not": ["Russell Brown wrote", "You can list the keys", "String bucket",
                "What is the best way", "riak-users mailing list"]},
    "email_1_4.txt": {EXACT: "Awesome! I haven't had another problem with it."},
    "email_1_5.txt": {UNCHANGED: True},        # bullets and paragraphs, no quote, no signature
    # "Sent from a magnificent torch of pixels" is no "Sent from my …" line: the writer's.
    "email_1_6.txt": {EXACT: "I get proper rendering as well.\n\n"
                             "Sent from a magnificent torch of pixels"},
    "email_1_7.txt": {EXACT: ":+1:"},          # CRLF, a two-line Gmail attribution
    # Inline answers under an attribution on top: both answers, none of the quotes (we never
    # relay "> " lines), not the signature at the bottom.
    "email_1_8.txt": {
        "has": ["I will reply under this one", "and under this."],
        "not": ["Example Dev", "here's some stuff I can write", "okay?", "-- Tim",
                "Tim Haines", "hi there", "Hey there, this is my signature", "--"]},
    "email_2_1.txt": {EXACT: "Outlook with a reply"},
    "email_2_2.txt": {EXACT: "Outlook with a reply directly above line"},
    "email_2_3.txt": {EXACT: "Outlook with a reply directly above line"},
    "email_BlackBerry.txt": {EXACT: "Here is another email"},
    "email_bullets.txt": {EXACT: "test 2 this should list second\n\nand have spaces\n\n"
                                 "and retain this formatting\n\n\n"
                                 "   - how about bullets\n   - and another"},
    "email_iPhone.txt": {EXACT: "Here is another email"},
    # Pathological: a 700,000-character line of ">" (a quote with no attribution, so not taken
    # for history) and an "A>>>…" line that is no quote at all. All that matters is that the
    # text above survives, the footer goes, and it is quick (see the timing test).
    "email_long_quote.txt": {
        "has": ["Hi folks", "What is the best way to clear a Riak bucket", "running a test?",
                "I am currently using the Java HTTP API."],
        "not": ["riak-users mailing list"]},
    "email_multi_word_sent_from_my_mobile_device.txt": {EXACT: "Here is another email"},
    # "One outstanding question I had:" is a line ending with ":" but no attribution.
    "email_one_is_not_on.txt": {
        "has": ["Thank, this is really helpful.", "One outstanding question I had:",
                "Locally (on development), when I run..."],
        "not": ["Dave Tapley", "The good news", "lastLocation"]},
    "email_sent_from_my_not_signature.txt": {UNCHANGED: True},
    "email_sig_delimiter_in_middle_of_line.txt": {UNCHANGED: True},
    # A reply that starts with "On …", the real attribution further down; indentation kept.
    "greedy_on.txt": {
        "has": ["On your remote host you can run:", "\n     telnet 127.0.0.1 52698\n",
                "fails, the tunnel is not working."],
        "not": ["George Plymale", "port forwarding stopped", "rmate/issues"]},
    "pathological.txt": {EXACT: "I think you're onto something. I will try to fix the problem "
                                "as soon as I\nget back to a computer."},
}


def erp_body(name: str) -> str:
    return (need(ERP) / name).read_text(encoding="utf-8")


@pytest.mark.corpus
def test_every_email_reply_parser_file_has_an_expectation():
    names = {p.name for p in need(ERP).glob("*.txt")}
    assert names == set(ERP_EXPECTED), "new or removed corpus files: decide what they expect"


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(ERP_EXPECTED))
def test_email_reply_parser_corpus(name):
    body = erp_body(name)
    expected = ERP_EXPECTED[name]
    result = new_text(body)
    assert isinstance(result, ReplyText)
    if EXACT in expected:
        assert result.text == expected[EXACT]
        assert result.cut
    elif UNCHANGED in expected:
        assert result.text == body.strip()
        assert not result.cut
    else:
        for phrase in expected["has"]:
            assert phrase in result.text, phrase
        for phrase in expected["not"]:
            assert phrase not in result.text, phrase
        assert result.cut


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["email_long_quote.txt", "pathological.txt"])
def test_pathological_corpus_files_are_quick(name):
    body = erp_body(name)
    started = time.perf_counter()
    new_text(body)
    assert time.perf_counter() - started < 2


# -- zammad ---------------------------------------------------------------------------------
def zammad_text(name: str) -> str:
    parsed = parse_message((need(ZAMMAD) / name).read_bytes())
    assert isinstance(parsed, ParsedMessage)
    return parsed.text


@pytest.mark.corpus
def test_zammad_outlook_german_reply_stops_at_the_sign_off_and_the_von_block():
    result = new_text(zammad_text("mail003.box"))
    assert result.text.startswith("Hallo Fritz,")
    assert "ich möchte mich gern für den Beta-Test für die Ticket Templates" in result.text
    for leak in ("Mit freundlichen Grüßen", "Example GmbH", "Geschäftsführer",
                 "Diese Information ist ausschließlich", "Von: Fritz Bauer", "Gesendet:",
                 "ich versuche an den Punkten", "Moin Moin", "Am 4. April 2012"):
        assert leak not in result.text, leak


@pytest.mark.corpus
def test_zammad_thunderbird_answer_below_the_quote_is_the_new_text():
    # The writer answered below the quote ("Am …, schrieb …:" and "> " lines on top). The
    # quote is the message being answered, not what the writer typed, and a quote may be our
    # notification: we relay the answer only. (The library alone returned the quote and lost
    # the answer, since the quoted "Liebe Grüße!" looked like the signature.)
    result = new_text(zammad_text("mail005.box"))
    assert result.text.startswith("Hallo Martin,")
    for phrase in ("John und ich könnten leider nur am Freitag", "den Freitag vormerken",
                   "einfach kurz ne Rückmeldung"):
        assert phrase in result.text, phrase
    for leak in ("schrieb Martin Edenhofer", "super! Ich freu mich!", "Mögliche Termine",
                 "Liebe Grüße", "Managing Director", "> "):
        assert leak not in result.text, leak
    # The sign-off "Grüße aus Bonn" is not cut: words after a sign-off phrase that are not a
    # name are taken for the writer's sentence (see test_a_sentence_starting_like_a_sign_off).


# -- the mail clients, in their own shapes --------------------------------------------------------
NOTIFICATION = (f"{MARKER}\n"
                "Reply to this mail to answer the client; commands on lines of their own at the "
                "top:\n#resolve  #close  #pending\n\nNew ticket: [MD-1000] Касса\n"
                "Client:      Иван Петров <ivan@shop.example.ru>\n\n"
                "--- Message from Иван Петров, 23.11.2026 13:00 ---\n"
                "Касса №3 не печатает чеки.\n\n-- \nmaildesk")
HISTORY = ("Касса №3", "Иван Петров", "New ticket", "maildesk", "##-", "#pending")


def quoted(text: str, prefix: str = "> ") -> str:
    return "\n".join((prefix + line).rstrip() for line in text.split("\n"))


def assert_clean(result: ReplyText, *extra: str) -> None:
    for leak in (*HISTORY, *extra):
        assert leak not in result.text, leak
    assert result.cut


def test_outlook_english():
    body = ("Hello Ivan,\n\nPlease restart the register and check the paper roll.\n\n"
            "Best regards,\nCarol\nLine 2\n\n________________________________\n"
            "From: Example Support <support@example.com>\n"
            "Sent: Monday, November 23, 2026 1:05 PM\nTo: Line 2 <line2@example.com>\n"
            "Subject: [MD-1000] Касса\n\n" + NOTIFICATION)
    result = new_text(body)
    assert result.text == "Hello Ivan,\n\nPlease restart the register and check the paper roll."
    assert_clean(result, "Best regards", "From:", "Sent:", "____")


def test_outlook_english_original_message_separator():
    body = ("Done, the driver is updated.\n\n-----Original Message-----\n"
            "From: Example Support <support@example.com>\nSent: Monday, November 23, 2026\n"
            "To: Line 2\nSubject: [MD-1000] Касса\n\n" + NOTIFICATION)
    assert new_text(body).text == "Done, the driver is updated."


def test_outlook_russian():
    body = ("Здравствуйте, Иван!\n\nПерезагрузите, пожалуйста, кассу.\n\nС уважением,\nКэрол\n"
            "Вторая линия\n\nОт: Example Support <support@example.com>\n"
            "Отправлено: 23 ноября 2026 г. 13:05\nКому: Вторая линия <line2@example.com>\n"
            "Тема: [MD-1000] Касса\n\n" + NOTIFICATION)
    result = new_text(body)
    assert result.text == "Здравствуйте, Иван!\n\nПерезагрузите, пожалуйста, кассу."
    assert_clean(result, "С уважением", "От:", "Отправлено:")


def test_outlook_russian_original_message_separator():
    body = ("Перезагрузите кассу.\n\n-----Исходное сообщение-----\n"
            "От: Example Support <support@example.com>\nОтправлено: 23 ноября 2026 г. 13:05\n"
            "Кому: Вторая линия\nТема: [MD-1000] Касса\n\n" + NOTIFICATION)
    result = new_text(body)
    assert result.text == "Перезагрузите кассу."
    assert_clean(result, "Исходное сообщение")


def test_thunderbird_english_with_signature():
    body = ("Please check that the receipt printer is on.\n\n-- \nCarol, Line 2\n\n"
            "On 23/11/2026 13:05, Example Support wrote:\n" + quoted(NOTIFICATION) + "\n")
    result = new_text(body)
    assert result.text == "Please check that the receipt printer is on."
    assert_clean(result, "Carol", "wrote:", "> ")


def test_thunderbird_russian_with_signature():
    body = ("Проверьте, что принтер чеков включён.\n\n-- \nКэрол, вторая линия\n\n"
            "23.11.2026 13:05, Example Support пишет:\n" + quoted(NOTIFICATION) + "\n")
    result = new_text(body)
    assert result.text == "Проверьте, что принтер чеков включён."
    assert_clean(result, "Кэрол", "пишет:", "> ")


def test_thunderbird_russian_answer_below_the_quote():
    # Thunderbird's default: the cursor below the quote. Before, the quoted marker cut at the
    # top and the answer was lost without a word.
    body = ("23.11.2026 13:05, Example Support пишет:\n" + quoted(NOTIFICATION) + "\n\n"
            "Проверьте, что принтер чеков включён.\n\n-- \nКэрол")
    result = new_text(body)
    assert result.text == "Проверьте, что принтер чеков включён."
    assert_clean(result, "Кэрол", "пишет:")


def test_inline_answers_between_quotes_are_kept_the_quotes_are_not():
    body = ("On Mon, Nov 23, 2026 at 1:05 PM Example Support <support@example.com> wrote:\n"
            "> Which register?\n>\n> Since when?\n\nThe third one.\n\n> Anything else?\n\n"
            "Since this morning.\n  (after the update)\n")
    result = new_text(body)
    assert result.text == "The third one.\n\nSince this morning.\n  (after the update)"


def test_greeting_and_commands_above_an_answer_below_the_quote():
    body = ("Иван,\n\n23.11.2026 13:05, Example Support пишет:\n" + quoted(NOTIFICATION)
            + "\n\nкасса перезагружена.\n")
    assert new_text(body).text == "Иван,\n\nкасса перезагружена."
    body = ("#resolve\n\n23.11.2026 13:05, Example Support пишет:\n" + quoted(NOTIFICATION)
            + "\n\nГотово.\n")
    assert new_text(body).text == "#resolve\n\nГотово."


def test_top_posted_reply_ignores_what_a_server_appends_below_the_quote():
    body = ("Готово, касса работает.\n\n23.11.2026 13:05, Example Support пишет:\n"
            + quoted(NOTIFICATION) + "\n\nThis message has been scanned for viruses.\n")
    assert new_text(body).text == "Готово, касса работает."


def test_gmail_english():
    body = ("Done.\n\nOn Mon, Nov 23, 2026 at 1:05 PM Example Support <support@example.com> "
            "wrote:\n\n" + quoted(NOTIFICATION) + "\n")
    assert new_text(body).text == "Done."
    wrapped = ("Done.\n\nOn Mon, Nov 23, 2026 at 1:05 PM Example Support <\n"
               "support@example.com> wrote:\n\n" + quoted(NOTIFICATION) + "\n")
    assert new_text(wrapped).text == "Done."


def test_gmail_russian():
    body = ("Готово.\n\nпн, 23 нояб. 2026 г. в 13:05, Example Support <support@example.com>:\n\n"
            + quoted(NOTIFICATION) + "\n")
    result = new_text(body)
    assert result.text == "Готово."
    assert_clean(result, "нояб.")
    wrapped = ("Готово.\n\nпн, 23 нояб. 2026 г. в 13:05, Example Support\n"
               "<support@example.com>:\n\n" + quoted(NOTIFICATION) + "\n")
    assert new_text(wrapped).text == "Готово."


@pytest.mark.parametrize("attribution", [
    "23 нояб. 2026 г., в 13:05, Example Support <support@example.com> написал(а):",
    "Понедельник, 23 ноября 2026, 13:05 +03:00 от Example Support <support@example.com>:",
    '23.11.2026, 13:05, "Example Support" <support@example.com>:',
    "Example Support <support@example.com> писал(а) 23.11.2026 в 13:05:",
])
def test_mail_ru_yandex_and_apple_russian(attribution):
    body = f"Чек распечатан.\n\n\n{attribution}\n\n" + quoted(NOTIFICATION) + "\n"
    result = new_text(body)
    assert result.text == "Чек распечатан."
    assert_clean(result, "Example Support")


def test_apple_mail_english():
    body = ("Works now, thank you.\n\n"
            "> On 23 Nov 2026, at 13:05, Example Support <support@example.com> wrote:\n"
            ">\n" + quoted(NOTIFICATION) + "\n")
    assert new_text(body).text == "Works now, thank you."
    body = ("Works now, thank you.\n\n"
            "On 23 Nov 2026, at 13:05, Example Support <support@example.com> wrote:\n\n"
            + quoted(NOTIFICATION) + "\n")
    assert new_text(body).text == "Works now, thank you."


@pytest.mark.parametrize("device_line", [
    "Отправлено с iPhone", "Отправлено из мобильной Почты Mail.ru", "Sent from my iPhone",
    "Sent from my Samsung Galaxy smartphone."])
def test_phone_signatures(device_line):
    body = (f"Перезагрузите кассу.\n\n{device_line}\n\n"
            "23 нояб. 2026 г., в 13:05, Example Support <support@example.com> написал(а):\n\n"
            + quoted(NOTIFICATION))
    assert new_text(body).text == "Перезагрузите кассу."
    assert new_text(f"Перезагрузите кассу.\n\n{device_line}").text == "Перезагрузите кассу."


def test_sent_from_in_a_sentence_is_text():
    body = "Отправлено с задержкой, извините.\nОтправлено с опозданием"
    assert new_text(body).text == body


def test_our_marker_quoted_with_an_attribution_we_do_not_know():
    body = ("Готово.\n\nSome client we have never seen, 23/11:\n" + quoted(NOTIFICATION))
    result = new_text(body)
    assert result.text == "Готово."
    assert_clean(result, "never seen")


def test_our_marker_unquoted_and_alone():
    result = new_text("Готово.\n\n" + NOTIFICATION)
    assert result.text == "Готово." and result.cut
    result = new_text("\n\n" + quoted(NOTIFICATION))
    assert result.text == "" and result.cut


def test_crlf_input():
    body = ("Line one\r\n    indented\r\n\r\n-- \r\nCarol\r\n\r\n"
            "On Mon, Nov 23, 2026 at 1:05 PM Example Support <support@example.com> wrote:\r\n"
            "> quoted\r\n")
    result = new_text(body)
    assert result.text == "Line one\n    indented"
    assert "\r" not in result.text


def test_indentation_is_kept():
    text = ("Run this on the register:\n\n    sudo systemctl restart kkt\n\t\tthen wait\n"
            "  1. check the paper\n  2. print a test receipt")
    body = f"{text}\n\nThanks,\nCarol\n\n23.11.2026 13:05, Example Support пишет:\n" + quoted(
        NOTIFICATION)
    assert new_text(body).text == text


def test_hyphen_lists_are_not_a_signature():
    text = "Steps:\n- step one\n- step two\n-no space either\n\nThat is all."
    assert new_text(text).text == text
    assert new_text(f"{text}\n\n-- \nCarol").text == text
    assert new_text(f"{text}\n\n--\nCarol").text == text


def test_a_dash_divider_is_not_a_signature():
    text = "Part one\n\n----------------------------------------\n\nPart two"
    assert new_text(text).text == text


def test_a_line_of_underscores_starts_the_history():
    body = ("Готово.\n\n________________________________\nПересылаемые данные\nhistory")
    assert new_text(body).text == "Готово."


@pytest.mark.parametrize("text", [
    "Касса работает.\nПроверено в 13:05.",
    "Hello Ivan,\n\n  the register works again.\n\nCarol",
    "#resolve",
    "  indented first line\nsecond",
])
def test_a_reply_without_quote_or_signature_is_unchanged(text):
    result = new_text(text)
    assert result == ReplyText(text=text, cut=False)


@pytest.mark.parametrize("body", ["", "\n", "   \n\n\t\n", "\r\n\r\n"])
def test_empty_body(body):
    assert new_text(body).text == ""


def test_pishet_in_a_sentence_is_not_an_attribution():
    text = ("Клиент пишет, что касса не печатает чеки.\nВот что он пишет: бумага есть.\n"
            "А бухгалтерия пишет:\nпринтер мигает красным.")
    assert new_text(text) == ReplyText(text=text, cut=False)
    body = text + "\n\nС уважением,\nКэрол\n\n23.11.2026 13:05, Example Support пишет:\n" + \
        quoted(NOTIFICATION)
    assert new_text(body).text == text


def test_a_sentence_starting_like_a_sign_off_is_text():
    text = ("Hello Ivan,\n\nThank you, the payment arrived.\nThanks, I checked the logs too.\n"
            "С уважением отношусь к вашему времени, поэтому коротко: всё готово.")
    assert new_text(text).text == text
    assert new_text("Done.\n\nThanks,\nCarol").text == "Done."
    assert new_text("Done.\n\nBest regards, Carol Smith\nLine 2").text == "Done."
    assert new_text("Готово.\n\nС уважением, Кэрол").text == "Готово."
    # A sign-off phrase that only begins a word (Danish "Tak", Swedish "/name") is no sign-off.
    text = "Check the log:\n\n/var/log/maildesk.log\n\nTake the receipt to the shop."
    assert new_text(text).text == text


def test_a_disclaimer_is_cut_only_at_the_end():
    text = "Hello,\n\nWarning: the mail server restarts tonight at 22:00.\n\nPlease save your work."
    assert new_text(text).text == text
    body = ("Done.\n\nCONFIDENTIALITY: This e-mail is intended only for the addressee.")
    assert new_text(body).text == "Done."


def test_russian_header_words_in_text_are_text():
    text = "Тема: выезд мастера\nДата: завтра\nПриеду в 10."
    assert new_text(text).text == text


def test_quotes_of_the_writers_own_are_kept_above_the_history():
    text = "Run this:\n> ping 127.0.0.5\nand send me what it prints."
    body = f"{text}\n\n-- \nCarol\n\nOn Mon, Nov 23, 2026 at 1:05 PM Support <s@x> wrote:\n" + \
        quoted(NOTIFICATION)
    assert new_text(body).text == text
    assert new_text(text).text == text


def test_outlook_history_holding_quotes_is_history():
    body = ("Done.\n\nFrom: Ivan <ivan@shop.example.ru>\nSent: Monday\nTo: Support\n"
            "Subject: Касса\n\nКасса №3 не печатает.\n> an older quote of his\nmore of his text")
    result = new_text(body)
    assert result.text == "Done."
    assert_clean(result, "older quote", "more of his")


@pytest.mark.parametrize("body", [
    "\n".join([">" * 1000] * 1000),
    "a" * 1_000_000,
    " \n" * 300_000,
    "\n".join(["> a", "b"] * 100_000),
    "\n".join(["just some text here"] * 50_000),
    "\n".join(["Thanks, i did"] * 50_000),
    "\n".join(["x" * 190 + " пишет"] * 5000),
])
def test_huge_and_odd_bodies_are_quick(body):
    started = time.perf_counter()
    new_text(body)
    assert time.perf_counter() - started < 5


# -- any text -------------------------------------------------------------------------------
PIECES = ["> quoted", ">", "> > deeper", "On Mon, Nov 23, 2026 at 1:05 PM X <x@y> wrote:",
          "23.11.2026 13:05, X пишет:", "пн, 23 нояб. 2026 г. в 13:05, X <x@y>:", "-- ", "--",
          "С уважением,", "Thanks,", "Carol", MARKER, "> " + MARKER, "От: X", "Тема: Y",
          "From: X", "Sent: Z", "-----Original Message-----", "_" * 32, "-" * 40,
          "Sent from my iPhone", "Отправлено с iPhone", "  indented", "\tTab", "", " ", "#resolve",
          "Hi,", "- item", "Warning: mail here", "CONFIDENTIALITY: this e-mail", "\r"]


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=40)), max_size=40)
    .map("\n".join),
))
def test_new_text_never_raises_and_only_keeps_lines_of_the_input(body):
    result = new_text(body)
    assert isinstance(result, ReplyText)
    source = lines_of(body)
    for line in result.text.split("\n"):
        if line.strip():
            # whole lines of the input, or the start of one (a signature cut in mid-line)
            assert any(original.startswith(line) for original in source), line
    assert result.text == result.text.rstrip()
    if not result.cut:
        assert result.text == "\n".join(source).strip("\n").rstrip()
