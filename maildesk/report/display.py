"""How the report's figures read, in every format (the terminal table, CSV, JSON, the HTML
page): the one rounding rule, values formatted for people (durations, shares, counts, scores,
changes against the previous period, times in the report's zone), plural forms, which way each
figure is better, the headline cards and the per-group table rows.

The rounding rule: half up, away from zero (12.5 -> 13, -12.5 -> -13), on the decimal value
(4079.65 -> 4079.7, never 4079.6 because of its binary form). A duration shows in seconds under
a minute, else in whole minutes (rounded so) under a day ("1 h 08 min"), else in whole hours
("3 d 4 h"); a share in tenths of a percent with ".0" dropped ("66.7 %", "75 %"); a count with
a space between thousands ("1 234"); a score with two decimals. The JSON and CSV keep seconds
and fractions, rounded by the same rule (kpi.py).

Pure functions of the stable report dict; a figure that is missing or not a finite number
shows as a dash. The table passes `space=" "`, the page keeps the non-breaking space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

DASH = "—"
NBSP = "\u00a0"
MINUS = "\u2212"


# -- the rounding rule --------------------------------------------------------------------------
def as_number(value: Any) -> float | None:
    """The value as a finite float; None for missing, booleans, text and NaN/infinity."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) or math.isinf(x) else x


def _decimal(value: Any) -> Decimal | None:
    """The value as a Decimal of its shortest written form (4079.6, not 4079.59999...)."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    x = as_number(value)
    if x is None:
        return None
    try:
        return Decimal(repr(x))
    except InvalidOperation:   # pragma: no cover - repr of a finite float always parses
        return None


def round_half_up(value: Any, digits: int = 0) -> float | None:
    """The report's one rounding rule: to `digits` decimals, half away from zero, on the
    decimal value; None for no number. Every rounded figure of every format comes from here."""
    d = _decimal(value)
    if d is None:
        return None
    return float(d.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _whole(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# -- value formatting ---------------------------------------------------------------------------
def fmt_duration(seconds: Any, space: str = NBSP) -> str:
    """45 -> '45 s', 750 -> '13 min', 4079.6 -> '1 h 08 min', 273600 -> '3 d 4 h'; None -> '—'."""
    d = _decimal(seconds)
    if d is None:
        return DASH
    s = abs(d)
    if _whole(s) < 60:
        text = f"{_whole(s)}{space}s"
    elif (minutes := _whole(s / 60)) < 60:
        text = f"{minutes}{space}min"
    elif minutes < 24 * 60:
        h, m = divmod(minutes, 60)
        text = f"{h}{space}h {m:02d}{space}min"
    else:
        days, h = divmod(_whole(s / 3600), 24)
        text = f"{days}{space}d" + (f" {h}{space}h" if h else "")
    return (MINUS if d < 0 and _whole(s) else "") + text


def _percent(value: Any) -> str | None:
    """A share as percent, tenths, '.0' dropped: 0.6667 -> '66.7', 0.75 -> '75'."""
    d = _decimal(value)
    if d is None:
        return None
    pct = (abs(d) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    text = f"{pct:.0f}" if pct == pct.to_integral_value() else f"{pct:.1f}"
    return (MINUS if d < 0 and pct else "") + text


def fmt_share(value: Any, space: str = NBSP) -> str:
    """0.6667 -> '66.7 %', 0.75 -> '75 %'; None -> '—'."""
    text = _percent(value)
    return DASH if text is None else f"{text}{space}%"


def fmt_count(value: Any, space: str = NBSP) -> str:
    """1234 -> '1 234'; None -> '—'."""
    d = _decimal(value)
    if d is None:
        return DASH
    if d == d.to_integral_value():
        return f"{int(d):,}".replace(",", space)
    return f"{round_half_up(d, 1):,.1f}".replace(",", space)


def fmt_score(value: Any, space: str = NBSP) -> str:
    """A mean rating: 3.5 -> '3.50'; None -> '—'."""
    x = round_half_up(value, 2)
    return DASH if x is None else f"{x:.2f}"


# The kinds of figures, each with its formatter.
FORMATTERS = {"count": fmt_count, "share": fmt_share, "duration": fmt_duration,
              "score": fmt_score}


def fmt_value(value: Any, kind: str, space: str = NBSP) -> str:
    """A figure of a kind (count, share, duration, score) as every format shows it."""
    return FORMATTERS[kind](value, space)


def fmt_change(change: Any, kind: str, space: str = NBSP) -> str:
    """A change against the previous period, signed, in the figure's unit: '+12 min',
    '−5.2 pp' (a share's change is in percentage points), '+3', '±0'; '' without one."""
    d = _decimal(change)
    if d is None:
        return ""
    if kind == "share":      # already in percentage points (the JSON's "changes")
        text = f"{_percent(abs(d) / 100)}{space}pp"
    else:
        text = fmt_value(abs(d), kind, space)
    if is_zero_change(change, kind):
        return "±0"
    return ("+" if d > 0 else MINUS) + text


def is_zero_change(change: Any, kind: str) -> bool:
    """Whether a change shows as none: it rounds to 0 as the figure is shown."""
    d = _decimal(change)
    if d is None:
        return False
    d = abs(d)
    if kind == "share":
        return d.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) == 0
    if kind == "duration":
        return _whole(d) == 0
    if kind == "score":
        return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) == 0
    return d.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) == 0


# -- plural forms -------------------------------------------------------------------------------
# The words the report counts, by CLDR plural category (babel's rules decide the category).
WORDS: dict[str, dict[str, Mapping[str, str]]] = {
    "en": {"ticket": {"one": "ticket", "other": "tickets"},
           "rating": {"one": "rating", "other": "ratings"},
           "insertion": {"one": "insertion", "other": "insertions"},
           "article": {"one": "article", "other": "articles"},
           "day": {"one": "day", "other": "days"}},
    "ru": {"ticket": {"one": "заявка", "few": "заявки", "many": "заявок", "other": "заявки"},
           "rating": {"one": "оценка", "few": "оценки", "many": "оценок", "other": "оценки"},
           "article": {"one": "статья", "few": "статьи", "many": "статей", "other": "статьи"},
           "day": {"one": "день", "few": "дня", "many": "дней", "other": "дня"}},
}


@lru_cache(maxsize=16)
def _plural_rule(lang: str) -> Any:
    from babel import Locale
    return Locale.parse(lang).plural_form


def plural_category(n: Any, lang: str = "en") -> str:
    """CLDR's plural category of `n` in `lang`: 'one', 'few', 'many' or 'other'."""
    x = as_number(n)
    if x is None:
        return "other"
    return _plural_rule(lang)(int(x) if x == int(x) else x)


def plural(n: Any, word: str, lang: str = "en") -> str:
    """The form of `word` (a key of WORDS) that goes with `n`: ticket / tickets; заявка /
    заявки / заявок."""
    forms = WORDS[lang][word]
    return forms.get(plural_category(n, lang), forms["other"])


def counted(n: Any, word: str, lang: str = "en", space: str = NBSP) -> str:
    """'1 ticket', '2 tickets', '1 234 tickets'; '5 заявок' in Russian."""
    return f"{fmt_count(n, space)} {plural(n, word, lang)}"


def fmt_when(text: Any, tz_name: str | None) -> str:
    """An ISO timestamp shown in the report's timezone: '2026-11-01 00:00'."""
    if not text:
        return DASH
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if tz_name and when.tzinfo is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            when = when.astimezone(ZoneInfo(tz_name))
        except (ZoneInfoNotFoundError, ValueError):  # unknown zone: keep the offset as written
            pass
    out = when.strftime("%Y-%m-%d %H:%M")
    if when.second:
        out = when.strftime("%Y-%m-%d %H:%M:%S")
    return out


def get_in(d: Any, *keys: str) -> Any:
    """d[k1][k2]..., None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


# -- KPI presentation ---------------------------------------------------------------------------
def cards(kpi: dict, change: dict | None = None) -> list[dict]:
    """The headline figures: label, main value, a secondary line (left out when its numbers
    are unknown), and with `change` (the KPI's change against the previous period) how the
    main value moved."""
    g = lambda *k: get_in(kpi, *k)

    def sub(template: str, *values: Any) -> str:
        if any(as_number(v) is None for v in values):
            return ""
        return template.format(*(fmt_count(v) for v in values))

    def calendar(section: str, key: str) -> str:
        value = g(section, key)
        return "" if as_number(value) is None else "calendar: " + fmt_duration(value)

    def of_tickets(part: Any, whole: Any, then: str = "") -> str:
        if as_number(part) is None or as_number(whole) is None:
            return ""
        return f"{fmt_count(part)} of {counted(whole, 'ticket')}{then}"

    def card(label: str, path: tuple[str, ...], value: str, sub: str, **more: Any) -> dict:
        out = {"label": label, "value": value, "sub": sub, **more}
        if change is not None:
            out["change"] = change_note(path, get_in(change, *path))
        return out

    def sla(kind: str) -> str:
        section = ("sla_met", kind)
        return of_tickets(g(*section, "met"), g(*section, "count"), " in time") \
            if as_number(g(*section, "count")) else ""

    bh = "business hours"
    fr, rs = ("first_response",), ("response",)
    return [
        card("Tickets", ("tickets",), fmt_count(g("tickets")), "created in period"),
        card("Resolved", ("resolved_share",), fmt_share(g("resolved_share")),
             of_tickets(g("resolved"), g("tickets"))),
        card("First-contact resolution", ("first_contact_resolution_rate",),
             fmt_share(g("first_contact_resolution_rate")),
             counted(g("first_contact_resolved"), "ticket")
             if as_number(g("first_contact_resolution_rate")) is not None else ""),
        card("First response, median", (*fr, "median_business_s"),
             fmt_duration(g(*fr, "median_business_s")),
             calendar("first_response", "median_calendar_s"), note=bh),
        card("First response, mean", (*fr, "mean_business_s"),
             fmt_duration(g(*fr, "mean_business_s")),
             calendar("first_response", "mean_calendar_s"), note=bh),
        card("Response time, mean", (*rs, "mean_business_s"),
             fmt_duration(g(*rs, "mean_business_s")),
             calendar("response", "mean_calendar_s"), note=bh),
        card("Handling time, mean", ("handling", "mean_business_s"),
             fmt_duration(g("handling", "mean_business_s")),
             calendar("handling", "mean_calendar_s"), note=bh),
        card("First response SLA met", ("sla_met", "first_response", "share"),
             fmt_share(g("sla_met", "first_response", "share")), sla("first_response")),
        card("Resolution SLA met", ("sla_met", "resolution", "share"),
             fmt_share(g("sla_met", "resolution", "share")), sla("resolution")),
        card("SLA breached", ("breached",), fmt_count(g("breached")),
             f"{fmt_share(g('breached_share'))} of tickets"
             if as_number(g("breached_share")) is not None else "",
             alert=bool(as_number(g("breached")))),
        card("Overdue now", ("overdue_now",), fmt_count(g("overdue_now")),
             "open, past deadline", alert=bool(as_number(g("overdue_now")))),
        card("Reopen rate", ("reopen_rate",), fmt_share(g("reopen_rate")),
             sub("{} reopened", g("reopened"))),
        card("Backlog now", ("backlog_now",), fmt_count(g("backlog_now")), "open tickets"),
        card("CSAT, mean", ("csat", "mean"), fmt_score(g("csat", "mean")),
             f"{counted(g('csat', 'ratings'), 'rating')}, scale 1–5"
             if as_number(g("csat", "ratings")) is not None else ""),
        card("CSAT, satisfied", ("csat", "satisfied_share"),
             fmt_share(g("csat", "satisfied_share")), "rated 4 or 5"),
        card("CSAT, response rate", ("csat", "response_rate"),
             fmt_share(g("csat", "response_rate")), sub("of {} resolved", g("csat", "resolved"))),
    ]


# Table columns: header, second header line, the main figure (path, kind), optional second line.
_BC = "business / calendar"
Col = tuple[str, Any, tuple[str, ...], str, Any]


def _dur(*path: str) -> Any:
    return lambda k: fmt_duration(get_in(k, *path))


_COLUMNS: list[Col] = [
    ("Tickets", None, ("tickets",), "count", None),
    ("Resolved", None, ("resolved_share",), "share", lambda k: fmt_count(get_in(k, "resolved"))),
    ("FCR", "first contact", ("first_contact_resolution_rate",), "share",
     lambda k: fmt_count(get_in(k, "first_contact_resolved"))),
    ("First response, median", _BC, ("first_response", "median_business_s"), "duration",
     _dur("first_response", "median_calendar_s")),
    ("First response, mean", _BC, ("first_response", "mean_business_s"), "duration",
     _dur("first_response", "mean_calendar_s")),
    ("Response, mean", _BC, ("response", "mean_business_s"), "duration",
     _dur("response", "mean_calendar_s")),
    ("Handling, mean", _BC, ("handling", "mean_business_s"), "duration",
     _dur("handling", "mean_calendar_s")),
    ("SLA met", "first response / resolution", ("sla_met", "first_response", "share"), "share",
     lambda k: fmt_share(get_in(k, "sla_met", "resolution", "share"))),
    ("Breached", None, ("breached",), "count", lambda k: fmt_share(get_in(k, "breached_share"))),
    ("Overdue now", None, ("overdue_now",), "count", None),
    ("Reopen rate", None, ("reopen_rate",), "share", lambda k: fmt_count(get_in(k, "reopened"))),
    ("Backlog now", None, ("backlog_now",), "count", None),
    ("CSAT mean", "ratings", ("csat", "mean"), "score",
     lambda k: fmt_count(get_in(k, "csat", "ratings"))),
    ("Satisfied", "CSAT 4–5", ("csat", "satisfied_share"), "share", None),
    ("CSAT response rate", None, ("csat", "response_rate"), "share", None),
]


def table_row(label: str, kpi: dict, change: dict | None = None) -> dict:
    """A row of the page's table: each column's value, second line and (with `change`) how
    the value moved against the previous period."""
    return {"label": label,
            "cells": [{"value": fmt_value(get_in(kpi, *path), kind),
                       "sub": sub(kpi) if sub else None,
                       "change": change_note(path, get_in(change, *path))
                       if change is not None else None}
                      for _, _, path, kind, sub in _COLUMNS]}


def column_heads() -> list[dict[str, str | None]]:
    """The table's column headers: title and optional second line."""
    return [{"title": title, "sub": sub} for title, sub, _, _, _ in _COLUMNS]


# -- the figures of a KPI object, and their changes ---------------------------------------------
# Every figure of a KPI object (README, "KPI report"): its kind, and which way is better (1:
# higher, -1: lower, 0: neither, a volume). Snapshots are of "now", not of a period: they have
# no previous value and no change.
_DURATIONS = ("mean_business_s", "median_business_s", "mean_calendar_s", "median_calendar_s")
KPI_FIGURES: dict[tuple[str, ...], tuple[str, int]] = {
    ("tickets",): ("count", 0),
    ("resolved",): ("count", 0),
    ("resolved_share",): ("share", 1),
    ("first_contact_resolved",): ("count", 0),
    ("first_contact_resolution_rate",): ("share", 1),
    ("first_response", "count"): ("count", 0),
    **{("first_response", d): ("duration", -1) for d in _DURATIONS},
    ("response", "count"): ("count", 0),
    ("response", "mean_business_s"): ("duration", -1),
    ("response", "mean_calendar_s"): ("duration", -1),
    ("handling", "count"): ("count", 0),
    ("handling", "mean_business_s"): ("duration", -1),
    ("handling", "mean_calendar_s"): ("duration", -1),
    ("breached",): ("count", -1),
    ("breached_share",): ("share", -1),
    ("overdue_now",): ("snapshot", -1),
    ("backlog_now",): ("snapshot", 0),
    ("reopened",): ("count", -1),
    ("reopen_rate",): ("share", -1),
    ("csat", "resolved"): ("count", 0),
    ("csat", "ratings"): ("count", 0),
    ("csat", "response_rate"): ("share", 1),
    ("csat", "mean"): ("score", 1),
    ("csat", "satisfied_share"): ("share", 1),
    **{("csat", "distribution", str(s)): ("count", 0) for s in range(1, 6)},
    **{("sla_met", kind, f): ("count", better)
       for kind in ("first_response", "resolution")
       for f, better in (("count", 0), ("met", 0), ("late", -1), ("overdue", -1))},
    ("sla_met", "first_response", "share"): ("share", 1),
    ("sla_met", "resolution", "share"): ("share", 1),
}
# The decimals a change keeps in the JSON: counts whole, percentage points 2 (shares have 4),
# seconds 1, scores 2.
_CHANGE_DIGITS = {"count": 0, "share": 2, "duration": 1, "score": 2}


def change_of(current: Any, previous: Any, kind: str) -> float | int | None:
    """current - previous in the figure's unit (a share's in percentage points), rounded by
    the rule; None when either is missing, and for a snapshot."""
    a, b = _decimal(current), _decimal(previous)
    if a is None or b is None or kind not in _CHANGE_DIGITS:
        return None
    diff = (a - b) * (100 if kind == "share" else 1)
    value = round_half_up(diff, _CHANGE_DIGITS[kind])
    return int(value) if kind == "count" and value is not None else value


def kpi_change(current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """A KPI object's change against the previous period's: the same shape, each figure
    current - previous (README: "changes")."""
    out: dict[str, Any] = {}
    for path, (kind, _) in KPI_FIGURES.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = change_of(get_in(current, *path), get_in(previous, *path), kind)
    return out


def tone(path: tuple[str, ...], change: Any) -> str:
    """How a change reads: 'better', 'worse', 'same' (none as shown), 'neutral' (a volume,
    neither better nor worse) or '' (no change known)."""
    kind, better = KPI_FIGURES.get(path, ("count", 0))
    x = as_number(change)
    if x is None or kind == "snapshot":
        return ""
    if is_zero_change(change, kind):
        return "same"
    if not better:
        return "neutral"
    return "better" if (x > 0) == (better > 0) else "worse"


def change_note(path: tuple[str, ...], change: Any, space: str = NBSP) -> dict[str, str] | None:
    """A change as the page shows it: text with an arrow (up or down), its tone and a title
    in words; None when there is no change to show."""
    kind = KPI_FIGURES.get(path, ("count", 0))[0]
    how = tone(path, change)
    if not how:
        return None
    x = as_number(change) or 0.0
    arrow = "" if how == "same" else ("▲" if x > 0 else "▼") + space
    words = {"better": "better than", "worse": "worse than", "same": "as in",
             "neutral": "against"}[how]
    return {"text": arrow + fmt_change(change, kind, space), "tone": how,
            "title": f"{words} the previous period"}
