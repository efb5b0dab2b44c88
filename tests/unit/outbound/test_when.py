"""Dates written as a native speaker writes them (issue 20): the phrases of
maildesk.outbound.when against a table written out by hand, and the shipped templates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from maildesk.outbound.compose import Composer, format_when, sample_context
from maildesk.outbound.when import phrase, ru_accusative, ru_genitive, ru_in, zone_name

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=MSK)
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def msk(day: int, hour: int, minute: int = 0, month: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=MSK)


# 7-13 December 2026 is Monday to Sunday. "by": a deadline at 12:00; "on": work resumes at
# 9:00; "at": a moment that passed (a breach) at 17:30 — the same phrase as "on".
TABLE = [
    ("ru", "by", msk(7, 12), "до понедельника, 7 декабря, 12:00"),
    ("ru", "by", msk(8, 12), "до вторника, 8 декабря, 12:00"),
    ("ru", "by", msk(9, 12), "до среды, 9 декабря, 12:00"),
    ("ru", "by", msk(10, 12), "до четверга, 10 декабря, 12:00"),
    ("ru", "by", msk(11, 12), "до пятницы, 11 декабря, 12:00"),
    ("ru", "by", msk(12, 12), "до субботы, 12 декабря, 12:00"),
    ("ru", "by", msk(13, 12), "до воскресенья, 13 декабря, 12:00"),
    ("ru", "on", msk(7, 9), "в понедельник, 7 декабря, в 9:00"),
    ("ru", "on", msk(8, 9), "во вторник, 8 декабря, в 9:00"),
    ("ru", "on", msk(9, 9), "в среду, 9 декабря, в 9:00"),
    ("ru", "on", msk(10, 9), "в четверг, 10 декабря, в 9:00"),
    ("ru", "on", msk(11, 9), "в пятницу, 11 декабря, в 9:00"),
    ("ru", "on", msk(12, 9), "в субботу, 12 декабря, в 9:00"),
    ("ru", "on", msk(13, 9), "в воскресенье, 13 декабря, в 9:00"),
    ("ru", "at", msk(7, 17, 30), "в понедельник, 7 декабря, в 17:30"),
    ("ru", "at", msk(8, 17, 30), "во вторник, 8 декабря, в 17:30"),
    ("ru", "at", msk(9, 17, 30), "в среду, 9 декабря, в 17:30"),
    ("ru", "at", msk(10, 17, 30), "в четверг, 10 декабря, в 17:30"),
    ("ru", "at", msk(11, 17, 30), "в пятницу, 11 декабря, в 17:30"),
    ("ru", "at", msk(12, 17, 30), "в субботу, 12 декабря, в 17:30"),
    ("ru", "at", msk(13, 17, 30), "в воскресенье, 13 декабря, в 17:30"),
    ("en", "by", msk(7, 12), "by Monday 7 December, 12:00"),
    ("en", "by", msk(8, 12), "by Tuesday 8 December, 12:00"),
    ("en", "by", msk(9, 12), "by Wednesday 9 December, 12:00"),
    ("en", "by", msk(10, 12), "by Thursday 10 December, 12:00"),
    ("en", "by", msk(11, 12), "by Friday 11 December, 12:00"),
    ("en", "by", msk(12, 12), "by Saturday 12 December, 12:00"),
    ("en", "by", msk(13, 12), "by Sunday 13 December, 12:00"),
    ("en", "on", msk(7, 9), "on Monday 7 December at 9:00"),
    ("en", "on", msk(8, 9), "on Tuesday 8 December at 9:00"),
    ("en", "on", msk(9, 9), "on Wednesday 9 December at 9:00"),
    ("en", "on", msk(10, 9), "on Thursday 10 December at 9:00"),
    ("en", "on", msk(11, 9), "on Friday 11 December at 9:00"),
    ("en", "on", msk(12, 9), "on Saturday 12 December at 9:00"),
    ("en", "on", msk(13, 9), "on Sunday 13 December at 9:00"),
    ("en", "at", msk(7, 17, 30), "on Monday 7 December at 17:30"),
    ("en", "at", msk(8, 17, 30), "on Tuesday 8 December at 17:30"),
    ("en", "at", msk(9, 17, 30), "on Wednesday 9 December at 17:30"),
    ("en", "at", msk(10, 17, 30), "on Thursday 10 December at 17:30"),
    ("en", "at", msk(11, 17, 30), "on Friday 11 December at 17:30"),
    ("en", "at", msk(12, 17, 30), "on Saturday 12 December at 17:30"),
    ("en", "at", msk(13, 17, 30), "on Sunday 13 December at 17:30"),
]
FILTER = {"by": "by", "on": "on", "at": "on"}


@pytest.mark.parametrize("lang,use,value,expected", TABLE)
def test_every_weekday_in_every_phrase(lang, use, value, expected):
    assert phrase(value, lang, FILTER[use], now=NOW) == expected


def test_the_table_covers_each_weekday_once_per_language_and_use():
    assert len(TABLE) == 42
    for lang in ("ru", "en"):
        for use in ("by", "on", "at"):
            assert sorted(v.weekday() for la, u, v, _ in TABLE if (la, u) == (lang, use)) == \
                list(range(7))


@pytest.mark.parametrize("lang,value,expected", [
    ("ru", msk(4, 12), "пятница, 4 декабря, 12:00"),
    ("ru", msk(8, 9, 5), "вторник, 8 декабря, 9:05"),
    ("ru", msk(13, 0), "воскресенье, 13 декабря, 0:00"),
    ("en", msk(4, 12), "Friday 4 December, 12:00"),
    ("en", msk(8, 9, 5), "Tuesday 8 December, 9:05"),
    ("en", msk(13, 0), "Sunday 13 December, 0:00"),
])
def test_the_plain_form(lang, value, expected):
    assert phrase(value, lang, now=NOW) == expected
    assert format_when(value, lang, now=NOW) == expected


@pytest.mark.parametrize("lang,form,expected", [
    ("ru", "plain", "пятница, 8 января 2027 г., 12:00"),
    ("ru", "by", "до пятницы, 8 января 2027 г., 12:00"),
    ("ru", "on", "в пятницу, 8 января 2027 г., в 12:00"),
    ("en", "plain", "Friday 8 January 2027, 12:00"),
    ("en", "by", "by Friday 8 January 2027, 12:00"),
    ("en", "on", "on Friday 8 January 2027 at 12:00"),
])
def test_the_year_is_written_when_it_is_not_the_current_one(lang, form, expected):
    assert phrase(msk(8, 12, month=1, year=2027), lang, form, now=NOW) == expected
    # ... and not when it is: in the value's own zone (31 December 22:00 UTC is 1 January
    # in Moscow).
    new_year = datetime(2026, 12, 31, 22, 0, tzinfo=timezone.utc)
    assert "2027" not in phrase(msk(8, 12, month=1, year=2027), lang, form, now=new_year)


def test_minutes_midnight_and_other_zones():
    assert phrase(msk(9, 9, 5), "ru", "by", now=NOW) == "до среды, 9 декабря, 9:05"
    assert phrase(msk(9, 0), "ru", "on", now=NOW) == "в среду, 9 декабря, в 0:00"
    assert phrase(msk(9, 23, 59), "en", "on", now=NOW) == "on Wednesday 9 December at 23:59"
    # Written in the zone the value carries: Moscow's 17:00 is 21:00 at UTC+7 (the same
    # instant, an equal datetime: phrases are not remembered by the datetime).
    plus7 = timezone(timedelta(hours=7))
    assert phrase(msk(9, 17), "ru", "by", now=NOW) == "до среды, 9 декабря, 17:00"
    assert phrase(msk(9, 17).astimezone(plus7), "ru", "by", now=NOW) == \
        "до среды, 9 декабря, 21:00"
    assert zone_name(msk(9, 17)) == "Europe/Moscow"
    assert zone_name(msk(9, 17).astimezone(plus7)) == "UTC+07:00"
    assert zone_name(datetime(2026, 12, 9, tzinfo=timezone.utc)) == "UTC"


def test_nothing_and_not_a_time():
    assert phrase(None, "ru", "by") == "" and zone_name(None) == ""
    assert phrase("soon", "en", "by") == "soon"
    with pytest.raises(ValueError):
        phrase(msk(9, 9), "en", "until", now=NOW)


def test_russian_grammar():
    days = ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"]
    assert [ru_genitive(d) for d in days] == [
        "понедельника", "вторника", "среды", "четверга", "пятницы", "субботы", "воскресенья"]
    assert [ru_accusative(d) for d in days] == [
        "понедельник", "вторник", "среду", "четверг", "пятницу", "субботу", "воскресенье"]
    assert [ru_in(d) for d in days] == ["в", "во", "в", "в", "в", "в", "в"]


def test_languages_without_a_grammar_here():
    # CLDR's own full date and short time; an unknown language is written as English.
    assert phrase(msk(11, 12), "de", "by", now=NOW) == "Freitag, 11. Dezember 2026, 12:00"
    assert phrase(msk(11, 12), "xx", "by", now=NOW) == "by Friday 11 December, 12:00"
    assert phrase(msk(11, 12), "ru-RU", "by", now=NOW) == "до пятницы, 11 декабря, 12:00"


# -- the templates ------------------------------------------------------------------------------
SETTINGS = SimpleNamespace(ticket_tag="MD", instance_name="Example Support",
                           domain="example.com")
# Work resumes at 9:00 and the first answer is due at 17:00 that day; the resolution on the
# same weekday a week later at 18:00, in Moscow; the client writes from UTC+7.
AUTOREPLY = {
    "ru": [
        ("в понедельник, 7 декабря, в 9:00", "до понедельника, 7 декабря, 17:00",
         "до понедельника, 14 декабря, 18:00", "до понедельника, 7 декабря, 21:00"),
        ("во вторник, 8 декабря, в 9:00", "до вторника, 8 декабря, 17:00",
         "до вторника, 15 декабря, 18:00", "до вторника, 8 декабря, 21:00"),
        ("в среду, 9 декабря, в 9:00", "до среды, 9 декабря, 17:00",
         "до среды, 16 декабря, 18:00", "до среды, 9 декабря, 21:00"),
        ("в четверг, 10 декабря, в 9:00", "до четверга, 10 декабря, 17:00",
         "до четверга, 17 декабря, 18:00", "до четверга, 10 декабря, 21:00"),
        ("в пятницу, 11 декабря, в 9:00", "до пятницы, 11 декабря, 17:00",
         "до пятницы, 18 декабря, 18:00", "до пятницы, 11 декабря, 21:00"),
        ("в субботу, 12 декабря, в 9:00", "до субботы, 12 декабря, 17:00",
         "до субботы, 19 декабря, 18:00", "до субботы, 12 декабря, 21:00"),
        ("в воскресенье, 13 декабря, в 9:00", "до воскресенья, 13 декабря, 17:00",
         "до воскресенья, 20 декабря, 18:00", "до воскресенья, 13 декабря, 21:00"),
    ],
    "en": [
        ("on Monday 7 December at 9:00", "by Monday 7 December, 17:00",
         "by Monday 14 December, 18:00", "by Monday 7 December, 21:00"),
        ("on Tuesday 8 December at 9:00", "by Tuesday 8 December, 17:00",
         "by Tuesday 15 December, 18:00", "by Tuesday 8 December, 21:00"),
        ("on Wednesday 9 December at 9:00", "by Wednesday 9 December, 17:00",
         "by Wednesday 16 December, 18:00", "by Wednesday 9 December, 21:00"),
        ("on Thursday 10 December at 9:00", "by Thursday 10 December, 17:00",
         "by Thursday 17 December, 18:00", "by Thursday 10 December, 21:00"),
        ("on Friday 11 December at 9:00", "by Friday 11 December, 17:00",
         "by Friday 18 December, 18:00", "by Friday 11 December, 21:00"),
        ("on Saturday 12 December at 9:00", "by Saturday 12 December, 17:00",
         "by Saturday 19 December, 18:00", "by Saturday 12 December, 21:00"),
        ("on Sunday 13 December at 9:00", "by Sunday 13 December, 17:00",
         "by Sunday 20 December, 18:00", "by Sunday 13 December, 21:00"),
    ],
}
SENTENCES = {
    "ru": ("Сейчас нерабочее время; мы приступим к вашей заявке {}.",
           "Мы ответим вам {}.", "Срок решения: {}.",
           "Время указано по часовому поясу Europe/Moscow.",
           "По вашему времени (UTC+07:00): ответ {}; решение "),
    "en": ("We are outside working hours now; work on your request starts {}.",
           "You will hear from us {}.", "We aim to solve it {}.",
           "All times are in the Europe/Moscow time zone.",
           "In your time zone (UTC+07:00): an answer {}; a solution "),
}


def _autoreply_context(day: int) -> dict:
    plus7 = timezone(timedelta(hours=7))
    first, solve = msk(day, 17), msk(day + 7, 18)
    ctx = sample_context(SETTINGS)
    ctx.update(now=NOW, resumes_at=msk(day, 9),
               deadlines={"first_response": first, "resolution": solve},
               client_deadlines={"first_response": first.astimezone(plus7),
                                 "resolution": solve.astimezone(plus7), "zone": "UTC+07:00"})
    return ctx


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("weekday", range(7))
def test_the_autoreply_says_each_weekday_as_a_person_would(lang, weekday):
    resumes, first, solve, client = AUTOREPLY[lang][weekday]
    rendered = Composer(TEMPLATES).render("autoreply", lang, _autoreply_context(7 + weekday))
    starts, answer, solution, zone, local = SENTENCES[lang]
    for text in (rendered.text, re.sub(r"<[^>]+>", "", rendered.html)):
        assert starts.format(resumes) in text
        assert answer.format(first) in text and solution.format(solve) in text
        assert zone in text
    assert local.format(client) in rendered.text
    # The zone is said once, not after each time.
    assert rendered.text.count("Europe/Moscow") == 1


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_no_template_puts_a_preposition_before_a_bare_weekday(lang):
    """`до понедельник`, `в понедельник` with a plain time, `by Monday, …`: the old mistakes."""
    composer = Composer(TEMPLATES)
    days = "(понедельник|вторник|среда|четверг|пятница|суббота|воскресенье)"
    bad = re.compile(rf"(до|заявке|\bby|starts|on) {days}\b"
                     r"|\bв (вторник|среда|пятница|суббота)\b"
                     r"|\b(by|starts) (Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday),"
                     r"|\(Europe/Moscow\)|\d\d:\d\d \(")
    for day in range(7, 14):
        ctx = _autoreply_context(day)
        for event in ("new", "warning", "breached", "escalated", "note", "rated", "solved",
                      "client"):
            ctx_n = {**ctx, "event": event, "deadline": {
                "deadline": "first_response", "due": msk(day, 17), "share": 0.8}}
            for name in ("autoreply", "line_notification"):
                r = composer.render(name, lang, ctx_n)
                for text in (r.subject, r.text, re.sub(r"<[^>]+>", "", r.html or "")):
                    assert not bad.search(text), (name, event, bad.search(text))


@pytest.mark.parametrize("lang,kind,deadline", [
    ("ru", "Скоро срок: [MD-1042] Касса не печатает чеки",
     "Срок первого ответа истекает в пятницу, 11 декабря, в 17:00."),
    ("en", "Deadline soon: [MD-1042] Касса не печатает чеки",
     "The first response deadline is on Friday 11 December at 17:00."),
])
def test_a_line_notification_keeps_one_subject_and_says_what_happened_after_the_marker(
        lang, kind, deadline):
    ctx = {**_autoreply_context(11), "event": "warning",
           "deadline": {"deadline": "first_response", "due": msk(11, 17), "share": 0.8}}
    r = Composer(TEMPLATES).render("line_notification", lang, ctx)
    assert r.subject == "[MD-1042] Касса не печатает чеки"
    lines = r.text.splitlines()
    assert lines[0] == ctx["marker"] and lines[1] == kind and lines[2] == deadline
    first = {"ru": "Первый ответ: до пятницы, 11 декабря, 17:00",
             "en": "First response: by Friday 11 December, 17:00"}[lang]
    assert first in lines
    assert {"ru": "Часовой пояс: Europe/Moscow", "en": "Time zone:      Europe/Moscow"}[lang] \
        in lines
    # An earlier ticket of another year shows its year.
    assert {"ru": "(пятница, 14 марта 2025 г., 9:05)",
            "en": "(Friday 14 March 2025, 9:05)"}[lang] in r.text
    for event in ("new", "escalated", "note", "rated", "breached", "solved", "client"):
        assert Composer(TEMPLATES).render("line_notification", lang,
                                          {**ctx, "event": event}).subject == r.subject


def test_maildesk_check_renders_every_template_in_both_languages():
    composer = Composer(TEMPLATES)
    assert composer.languages >= {"ru", "en"}
    assert composer.check(sample_context(SETTINGS)) == []
