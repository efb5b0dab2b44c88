"""Dates and times as a person writes them in a sentence, in the mail's language.

Three phrases, each a Jinja filter of the mail templates (the language is the context's `lang`):

| filter     | for               | ru / en
|------------|-------------------|------------------------------------------------------------
| `by_time`  | a deadline        | до пятницы, 5 декабря, 12:00 / by Friday 5 December, 12:00
| `on_time`  | a start, a moment | в понедельник, 8 декабря, в 9:00 / on Monday 8 December at 9:00
| `datetime` | a bare time stamp | пятница, 5 декабря, 12:00 / Friday 5 December, 12:00
| `zone`     | the value's zone  | Europe/Moscow (a fixed offset: UTC+07:00)

Weekday and month names come from CLDR (Babel): months in CLDR's format context, which in
Russian is the genitive ("5 декабря"); weekdays in the nominative. The Russian cases a weekday
takes after a preposition — genitive after "до" (до пятницы, до среды, до воскресенья) and
accusative after "в" (в пятницу, в среду, во вторник) — are grammar, made here from the
nominative by `ru_genitive`, `ru_accusative` and `ru_in`.

A time is H:MM (9:00, 9:05, 0:00), in the zone the datetime carries; the phrase never names the
zone (a template says it once: `{{ value | zone }}`). The year is written only when it is not
the year of "now": the filter's argument (`{{ due | by_time(now) }}`), else the context's `now`,
else the wall clock; compared in the value's own zone.

A language with no grammar here gets CLDR's full date (with the year) and short time for all
three phrases, its template writing the words around them; a language CLDR does not know is
written as English.
"""

from __future__ import annotations

from datetime import date as date_of
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_day_names, get_month_names
from jinja2 import pass_context

PLAIN, BY, ON = "plain", "by", "on"
FORMS = (PLAIN, BY, ON)

_RU_VOWELS = frozenset("аеёиоуыэюя")


def ru_genitive(day: str) -> str:
    """After "до": понедельник → понедельника, среда → среды, воскресенье → воскресенья."""
    if day.endswith("а"):
        return day[:-1] + "ы"          # среда, пятница, суббота
    if day.endswith("е"):
        return day[:-1] + "я"          # воскресенье
    return day + "а"                   # понедельник, вторник, четверг


def ru_accusative(day: str) -> str:
    """After "в": среда → среду, пятница → пятницу; the masculine and neuter ones stay."""
    return day[:-1] + "у" if day.endswith("а") else day


def ru_in(word: str) -> str:
    """The preposition "в" before `word`: "во" before в/ф and a consonant (во вторник)."""
    w = word.lower()
    return "во" if len(w) > 1 and w[0] in "вф" and w[1] not in _RU_VOWELS else "в"


@lru_cache(maxsize=32)
def _locale(lang: str) -> Locale | None:
    try:
        return Locale.parse(lang.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None


@lru_cache(maxsize=32)
def _names(lang: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """CLDR's weekday names (Monday first, nominative) and month names (format context)."""
    locale = _locale(lang) or "en"
    days = get_day_names("wide", "format", locale=locale)
    months = get_month_names("wide", "format", locale=locale)
    return tuple(days[i] for i in range(7)), tuple(months[m] for m in range(1, 13))


def _shows_year(value: datetime, now: datetime | None) -> bool:
    if now is None:
        now = datetime.now(timezone.utc)
    if value.tzinfo is not None and now.tzinfo is not None:
        now = now.astimezone(value.tzinfo)
    return value.year != now.year


def phrase(value: Any, lang: str, form: str = PLAIN, *, now: datetime | None = None) -> str:
    """`value` written for a sentence in `lang` (module docstring); "" for None."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        return str(value)
    if form not in FORMS:
        raise ValueError(f"unknown date form {form!r} (one of {', '.join(FORMS)})")
    year = _shows_year(value, now)
    lang = (lang or "en").lower()
    base = lang.split("-")[0].split("_")[0]
    locale = _locale(lang)
    if base not in ("ru", "en") and locale is not None:
        return (f"{format_date(value, 'full', locale=locale)}, "
                f"{format_time(value, 'short', locale=locale)}")
    # The wall-clock fields, not the datetime: two aware datetimes of one instant in different
    # zones are equal (and hash alike) but read differently.
    return _grammar_phrase(value.year, value.month, value.day, value.hour, value.minute,
                           "ru" if base == "ru" else "en", form, year)


@lru_cache(maxsize=4096)
def _grammar_phrase(y: int, m: int, d: int, hour: int, minute: int, base: str, form: str,
                    year: bool) -> str:
    """A phrase in a language whose grammar is written here; the mails of a minute share their
    deadlines, and each mail names several (autoreply, line notification)."""
    days, months = _names(base)
    day = days[date_of(y, m, d).weekday()]
    time = f"{hour}:{minute:02d}"
    if base == "ru":
        date = f"{d} {months[m - 1]}" + (f" {y} г." if year else "")
        if form == BY:
            return f"до {ru_genitive(day)}, {date}, {time}"
        if form == ON:
            weekday = ru_accusative(day)
            return f"{ru_in(weekday)} {weekday}, {date}, в {time}"
        return f"{day}, {date}, {time}"
    date = f"{d} {months[m - 1]}" + (f" {y}" if year else "")
    if form == BY:
        return f"by {day} {date}, {time}"
    if form == ON:
        return f"on {day} {date} at {time}"
    return f"{day} {date}, {time}"


def zone_name(value: Any) -> str:
    """The time zone a datetime is in, as the templates name it: the IANA name
    (Europe/Moscow), else the offset (UTC+07:00), else "UTC"."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        return ""
    return getattr(value.tzinfo, "key", None) or value.strftime("%Z") or "UTC"


def _filter(form: str) -> Any:
    @pass_context
    def apply(ctx: Any, value: Any, now: datetime | None = None) -> str:
        return phrase(value, ctx.get("lang", "en"), form, now=now or ctx.get("now"))
    return apply


# What a template environment registers: `env.filters.update(FILTERS)`.
FILTERS: dict[str, Any] = {
    "datetime": _filter(PLAIN),
    "by_time": _filter(BY),
    "on_time": _filter(ON),
    "zone": zone_name,
}
