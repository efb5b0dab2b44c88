"""How the report's figures read on the HTML page: values formatted for people (durations,
shares, counts, times in the report's zone), the headline cards and the per-group table rows.

Pure functions of the stable report dict; a figure that is missing or not a finite number
shows as a dash.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

DASH = "—"
NBSP = "\u00a0"


# -- value formatting ---------------------------------------------------------------------------
def as_number(value: Any) -> float | None:
    """The value as a finite float; None for missing, booleans, text and NaN/infinity."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) or math.isinf(x) else x


def _round(x: float) -> int:
    """Half up (12.5 -> 13), not Python's half-to-even."""
    return math.floor(x + 0.5)


def fmt_duration(seconds: Any) -> str:
    """45 -> '45 s', 750 -> '12 min', 7500 -> '2 h 05 min', 273600 -> '3 d 4 h'; None -> '—'."""
    s = as_number(seconds)
    if s is None:
        return DASH
    sign = "−" if s < 0 else ""
    s = abs(s)
    if _round(s) < 60:
        return f"{sign}{_round(s)}{NBSP}s"
    if _round(s / 60) < 60:
        return f"{sign}{_round(s / 60)}{NBSP}min"
    if _round(s / 60) < 24 * 60:
        h, m = divmod(_round(s / 60), 60)
        return f"{sign}{h}{NBSP}h {m:02d}{NBSP}min"
    d, h = divmod(_round(s / 3600), 24)
    return f"{sign}{d}{NBSP}d" + (f" {h}{NBSP}h" if h else "")


def fmt_share(value: Any) -> str:
    """0.6667 -> '66.7 %'; None -> '—'."""
    x = as_number(value)
    if x is None:
        return DASH
    pct = x * 100
    text = f"{pct:.0f}" if abs(pct - round(pct)) < 0.05 else f"{pct:.1f}"
    return f"{text}{NBSP}%"


def fmt_count(value: Any) -> str:
    """1234 -> '1 234'; None -> '—'."""
    x = as_number(value)
    if x is None:
        return DASH
    if x == int(x):
        return f"{int(x):,}".replace(",", NBSP)
    return f"{x:,.1f}".replace(",", NBSP)


def fmt_score(value: Any) -> str:
    x = as_number(value)
    return DASH if x is None else f"{x:.2f}"


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
def cards(kpi: dict) -> list[dict]:
    """The headline figures: label, main value, a secondary line (left out when its numbers
    are unknown)."""
    g = lambda *k: get_in(kpi, *k)

    def sub(template: str, *values: Any) -> str:
        if any(as_number(v) is None for v in values):
            return ""
        return template.format(*(fmt_count(v) for v in values))

    def calendar(section: str, key: str) -> str:
        value = g(section, key)
        return "" if as_number(value) is None else "calendar: " + fmt_duration(value)

    bh = "business hours"
    return [
        {"label": "Tickets", "value": fmt_count(g("tickets")), "sub": "created in period"},
        {"label": "Resolved", "value": fmt_share(g("resolved_share")),
         "sub": sub("{} of {} tickets", g("resolved"), g("tickets"))},
        {"label": "First-contact resolution",
         "value": fmt_share(g("first_contact_resolution_rate")),
         "sub": sub("{} tickets", g("first_contact_resolved"))
         if as_number(g("first_contact_resolution_rate")) is not None else ""},
        {"label": "First response, median",
         "value": fmt_duration(g("first_response", "median_business_s")),
         "sub": calendar("first_response", "median_calendar_s"), "note": bh},
        {"label": "First response, mean",
         "value": fmt_duration(g("first_response", "mean_business_s")),
         "sub": calendar("first_response", "mean_calendar_s"), "note": bh},
        {"label": "Response time, mean", "value": fmt_duration(g("response", "mean_business_s")),
         "sub": calendar("response", "mean_calendar_s"), "note": bh},
        {"label": "Handling time, mean", "value": fmt_duration(g("handling", "mean_business_s")),
         "sub": calendar("handling", "mean_calendar_s"), "note": bh},
        {"label": "SLA breached", "value": fmt_count(g("breached")),
         "sub": f"{fmt_share(g('breached_share'))} of tickets"
         if as_number(g("breached_share")) is not None else "",
         "alert": bool(as_number(g("breached")))},
        {"label": "Overdue now", "value": fmt_count(g("overdue_now")), "sub": "open, past deadline",
         "alert": bool(as_number(g("overdue_now")))},
        {"label": "Reopen rate", "value": fmt_share(g("reopen_rate")),
         "sub": sub("{} reopened", g("reopened"))},
        {"label": "Backlog now", "value": fmt_count(g("backlog_now")), "sub": "open tickets"},
        {"label": "CSAT, mean", "value": fmt_score(g("csat", "mean")),
         "sub": sub("{} ratings, scale 1–5", g("csat", "ratings"))},
        {"label": "CSAT, satisfied", "value": fmt_share(g("csat", "satisfied_share")),
         "sub": "rated 4 or 5"},
        {"label": "CSAT, response rate", "value": fmt_share(g("csat", "response_rate")),
         "sub": sub("of {} resolved", g("csat", "resolved"))},
    ]


# Table columns: header, second header line, main value, optional second line.
_BC = "business / calendar"
_COLUMNS = [
    ("Tickets", None, lambda k: fmt_count(get_in(k, "tickets")), None),
    ("Resolved", None, lambda k: fmt_share(get_in(k, "resolved_share")),
     lambda k: fmt_count(get_in(k, "resolved"))),
    ("FCR", "first contact", lambda k: fmt_share(get_in(k, "first_contact_resolution_rate")),
     lambda k: fmt_count(get_in(k, "first_contact_resolved"))),
    ("First response, median", _BC,
     lambda k: fmt_duration(get_in(k, "first_response", "median_business_s")),
     lambda k: fmt_duration(get_in(k, "first_response", "median_calendar_s"))),
    ("First response, mean", _BC,
     lambda k: fmt_duration(get_in(k, "first_response", "mean_business_s")),
     lambda k: fmt_duration(get_in(k, "first_response", "mean_calendar_s"))),
    ("Response, mean", _BC, lambda k: fmt_duration(get_in(k, "response", "mean_business_s")),
     lambda k: fmt_duration(get_in(k, "response", "mean_calendar_s"))),
    ("Handling, mean", _BC, lambda k: fmt_duration(get_in(k, "handling", "mean_business_s")),
     lambda k: fmt_duration(get_in(k, "handling", "mean_calendar_s"))),
    ("Breached", None, lambda k: fmt_count(get_in(k, "breached")),
     lambda k: fmt_share(get_in(k, "breached_share"))),
    ("Overdue now", None, lambda k: fmt_count(get_in(k, "overdue_now")), None),
    ("Reopen rate", None, lambda k: fmt_share(get_in(k, "reopen_rate")),
     lambda k: fmt_count(get_in(k, "reopened"))),
    ("Backlog now", None, lambda k: fmt_count(get_in(k, "backlog_now")), None),
    ("CSAT mean", "ratings", lambda k: fmt_score(get_in(k, "csat", "mean")),
     lambda k: fmt_count(get_in(k, "csat", "ratings"))),
    ("Satisfied", "CSAT 4–5", lambda k: fmt_share(get_in(k, "csat", "satisfied_share")), None),
    ("CSAT response rate", None, lambda k: fmt_share(get_in(k, "csat", "response_rate")), None),
]


def table_row(label: str, kpi: dict) -> dict:
    return {"label": label,
            "cells": [{"value": main(kpi), "sub": sub(kpi) if sub else None}
                      for _, _, main, sub in _COLUMNS]}


def column_heads() -> list[dict[str, str | None]]:
    """The table's column headers: title and optional second line."""
    return [{"title": title, "sub": sub} for title, sub, _, _ in _COLUMNS]
