"""Subject prefixes, tags and the comparison key."""

from hypothesis import given, strategies as st
import pytest

from maildesk.pipeline.subject import analyse_subject, format_tag, strip_prefixes, subject_key


@pytest.mark.parametrize("subject", [
    "Re: Printer", "RE: Printer", "AW: Printer", "SV: Printer", "Ответ: Printer", "Отв: Printer",
    "RE: AW: Re: Printer", "Re[2]: Printer", "Re(3): Printer", "re : Printer", "Antw: Printer",
    "[MD-7] Re: Printer", "Re: [MD-7] Printer", "RE:  [md-7]   printer", "[EXTERNAL] RE: Printer",
])
def test_reply_prefixes_and_tag_reduce_to_the_same_key(subject):
    info = analyse_subject(subject, "MD")
    assert info.key == "printer"
    assert info.is_reply and not info.is_forward


@pytest.mark.parametrize("subject", ["Fwd: Printer", "FW: Printer", "WG: Printer", "Пересл: Printer",
                                     "Fwd: Re: Printer", "TR: Printer"])
def test_forwards_are_told_apart_from_replies(subject):
    info = analyse_subject(subject, "MD")
    assert info.is_forward and not info.is_reply
    assert info.key == "printer"


def test_reply_to_a_forward_is_a_reply():
    info = analyse_subject("Re: Fwd: Касса не печатает чеки", "MD")
    assert info.is_reply and not info.is_forward
    assert info.key == "касса не печатает чеки"


def test_words_that_only_look_like_prefixes_stay():
    assert subject_key("Information: server down", "MD") == "information: server down"
    assert subject_key("Retail: cash register", "MD") == "retail: cash register"
    assert not analyse_subject("Printer", "MD").is_reply


def test_tag_numbers_in_order_and_clean_subject():
    info = analyse_subject("Re: [MD-1042] Принтер [md-7]", "MD")
    assert info.tag_numbers == (1042, 7)
    assert info.clean == "Re: Принтер"
    assert format_tag("MD", 1042) == "[MD-1042]"


def test_other_tags_are_not_ours():
    info = analyse_subject("[RT-55] Re: [Ticket#11162] test", "MD")
    assert info.tag_numbers == ()


def test_strip_prefixes_reports_them_outermost_first():
    rest, found = strip_prefixes("RE: Fwd: AW: x")
    assert rest == "x"
    assert found == ["re", "fwd", "aw"]


@given(st.text(max_size=200))
def test_key_is_idempotent(text):
    key = subject_key(text, "MD")
    assert subject_key(key, "MD") == key


@given(st.text(max_size=200))
def test_clean_subject_is_one_line_without_the_tag(text):
    info = analyse_subject(text + " [MD-5]", "MD")
    assert "[MD-5]" not in info.clean


# Outlook (ru), The Bat! and Mail.ru put a dot after the abbreviation: "Отв.:", "Пересл.:".
@pytest.mark.parametrize("subject", [
    "Отв.: Printer", "Ответ.: Printer", "Re.: Printer", "RE.: Printer", "RE.:Printer",
    "Отв.: Отв.: Printer", "Re: Отв.: Printer", "Отв.: [MD-7] Printer", "[MD-7] Отв.: Printer",
    "Отв.[2]: Printer", "Re: Отв.: Пересл.: Printer",
])
def test_dotted_reply_prefixes_are_replies(subject):
    info = analyse_subject(subject, "MD")
    assert info.key == "printer"
    assert info.is_reply and not info.is_forward


@pytest.mark.parametrize("subject", [
    "Пересл.: Printer", "Перес.: Printer", "Fwd.: Printer", "FW.: Printer", "fw.: Printer",
    "Пересл.: Отв.: Printer", "Fwd.: Re: Printer", "Пересл.: [MD-7] Printer",
    "Пересл.: Пересл.: Printer",
])
def test_dotted_forward_prefixes_are_forwards(subject):
    info = analyse_subject(subject, "MD")
    assert info.key == "printer"
    assert info.is_forward and not info.is_reply


def test_dotted_prefixes_are_reported_without_the_dot():
    rest, found = strip_prefixes("Re: Отв.: Пересл.: Fwd.: x")
    assert rest == "x"
    assert found == ["re", "отв", "пересл", "fwd"]


def test_dotted_words_that_are_not_prefixes_stay():
    # An abbreviation with a dot is only a prefix when it is one of the known words.
    assert subject_key("Инв.: 4711 касса", "MD") == "инв.: 4711 касса"
    assert subject_key("Retail.: cash register", "MD") == "retail.: cash register"
    assert subject_key("Re..: x", "MD") == "re..: x"
    assert not analyse_subject("Прил.: счёт", "MD").is_reply
