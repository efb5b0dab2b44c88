"""The self-contained HTML format of `maildesk report`: one file, no request to any other address.

`to_html(report)` takes the stable report dict (format "maildesk-report", version 1) and returns
a page with headline cards, charts drawn by matplotlib as inline SVG (text as paths, so no font
is fetched; deterministic ids), and a per-group table. matplotlib and jinja2 are imported inside
`to_html` so that the CLI starts fast.
"""

from __future__ import annotations

import io
import math
import re
from datetime import date, datetime
from typing import Any

__all__ = ["fmt_count", "fmt_duration", "fmt_share", "to_html"]

DASH = "—"
NBSP = "\u00a0"

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_MPL_RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "maildesk",
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#8a94a3",
    "axes.labelcolor": "#333a45",
    "xtick.color": "#4a5261",
    "ytick.color": "#4a5261",
    "axes.grid": True,
    "grid.color": "#e3e7ee",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "svg.image_inline": True,
}

C_BUSINESS = "#3b6fb6"
C_CALENDAR = "#9bb7dd"
C_CREATED = "#8fb0d9"
C_BREACHED = "#d1495b"
C_RESOLVED = "#2a7f62"
C_BACKLOG = "#e0a030"

# Width of the page content in inches at ~100 px/in: the SVGs are scaled to the box width by CSS.
FULL_W = 11.2
HALF_W = 5.5


# -- value formatting ---------------------------------------------------------------------------
def _num(value: Any) -> float | None:
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
    s = _num(seconds)
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
    x = _num(value)
    if x is None:
        return DASH
    pct = x * 100
    text = f"{pct:.0f}" if abs(pct - round(pct)) < 0.05 else f"{pct:.1f}"
    return f"{text}{NBSP}%"


def fmt_count(value: Any) -> str:
    """1234 -> '1 234'; None -> '—'."""
    x = _num(value)
    if x is None:
        return DASH
    if x == int(x):
        return f"{int(x):,}".replace(",", NBSP)
    return f"{x:,.1f}".replace(",", NBSP)


def fmt_score(value: Any) -> str:
    x = _num(value)
    return DASH if x is None else f"{x:.2f}"


def _fmt_when(text: Any, tz_name: str | None) -> str:
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


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


# -- KPI presentation ---------------------------------------------------------------------------
def _cards(kpi: dict) -> list[dict]:
    """The headline figures: label, main value, a secondary line (left out when its numbers
    are unknown)."""
    g = lambda *k: _get(kpi, *k)

    def sub(template: str, *values: Any) -> str:
        if any(_num(v) is None for v in values):
            return ""
        return template.format(*(fmt_count(v) for v in values))

    def calendar(section: str, key: str) -> str:
        value = g(section, key)
        return "" if _num(value) is None else "calendar: " + fmt_duration(value)

    bh = "business hours"
    return [
        {"label": "Tickets", "value": fmt_count(g("tickets")), "sub": "created in period"},
        {"label": "Resolved", "value": fmt_share(g("resolved_share")),
         "sub": sub("{} of {} tickets", g("resolved"), g("tickets"))},
        {"label": "First-contact resolution",
         "value": fmt_share(g("first_contact_resolution_rate")),
         "sub": sub("{} tickets", g("first_contact_resolved"))
         if _num(g("first_contact_resolution_rate")) is not None else ""},
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
         if _num(g("breached_share")) is not None else "", "alert": bool(_num(g("breached")))},
        {"label": "Overdue now", "value": fmt_count(g("overdue_now")), "sub": "open, past deadline",
         "alert": bool(_num(g("overdue_now")))},
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
    ("Tickets", None, lambda k: fmt_count(_get(k, "tickets")), None),
    ("Resolved", None, lambda k: fmt_share(_get(k, "resolved_share")),
     lambda k: fmt_count(_get(k, "resolved"))),
    ("FCR", "first contact", lambda k: fmt_share(_get(k, "first_contact_resolution_rate")),
     lambda k: fmt_count(_get(k, "first_contact_resolved"))),
    ("First response, median", _BC,
     lambda k: fmt_duration(_get(k, "first_response", "median_business_s")),
     lambda k: fmt_duration(_get(k, "first_response", "median_calendar_s"))),
    ("First response, mean", _BC,
     lambda k: fmt_duration(_get(k, "first_response", "mean_business_s")),
     lambda k: fmt_duration(_get(k, "first_response", "mean_calendar_s"))),
    ("Response, mean", _BC, lambda k: fmt_duration(_get(k, "response", "mean_business_s")),
     lambda k: fmt_duration(_get(k, "response", "mean_calendar_s"))),
    ("Handling, mean", _BC, lambda k: fmt_duration(_get(k, "handling", "mean_business_s")),
     lambda k: fmt_duration(_get(k, "handling", "mean_calendar_s"))),
    ("Breached", None, lambda k: fmt_count(_get(k, "breached")),
     lambda k: fmt_share(_get(k, "breached_share"))),
    ("Overdue now", None, lambda k: fmt_count(_get(k, "overdue_now")), None),
    ("Reopen rate", None, lambda k: fmt_share(_get(k, "reopen_rate")),
     lambda k: fmt_count(_get(k, "reopened"))),
    ("Backlog now", None, lambda k: fmt_count(_get(k, "backlog_now")), None),
    ("CSAT mean", "ratings", lambda k: fmt_score(_get(k, "csat", "mean")),
     lambda k: fmt_count(_get(k, "csat", "ratings"))),
    ("Satisfied", "CSAT 4–5", lambda k: fmt_share(_get(k, "csat", "satisfied_share")), None),
    ("CSAT response rate", None, lambda k: fmt_share(_get(k, "csat", "response_rate")), None),
]


def _row(label: str, kpi: dict) -> dict:
    return {"label": label,
            "cells": [{"value": main(kpi), "sub": sub(kpi) if sub else None}
                      for _, _, main, sub in _COLUMNS]}


# -- charts -------------------------------------------------------------------------------------
_XML_PROLOG = re.compile(r"\A\s*<\?xml[^>]*\?>\s*")
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _svg(fig: Any, prefix: str, caption: str) -> str:
    """The figure as an SVG element ready to inline: no prolog, ids made unique to the chart."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = _XML_PROLOG.sub("", svg)
    svg = _DOCTYPE.sub("", svg)
    svg = _METADATA.sub("", svg)
    svg = _COMMENT.sub("", svg)
    # Several SVGs share one HTML document: keep their ids (clip paths, glyphs) apart.
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r'(xlink:href|href)="#([^"]+)"',
                 lambda m: f'{m.group(1)}="#{prefix}-{m.group(2)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    # Scale with the page: keep the viewBox, let CSS set the size.
    svg = re.sub(r'<svg\b([^>]*?)\swidth="[^"]*"\sheight="[^"]*"',
                 lambda m: f'<svg{m.group(1)}', svg, count=1)
    from markupsafe import escape
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(caption)}" ', 1)
    return svg.strip()


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained", facecolor="white")


def _no_data(width: float, height: float) -> Any:
    fig = _new_figure(width, min(height, 1.6))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=14, color="#8a94a3",
            transform=ax.transAxes)
    return fig


def _set_category_ticks(ax: Any, labels: list[str], width_in: float) -> None:
    """Bucket labels under bars: on one line when they fit, else broken at the dash of a range
    ('15 min –' over '1 h'), else slanted."""
    n = max(1, len(labels))
    room = width_in * 72 * 0.82 / n        # points of axis per label
    char = 0.6 * 9.5                       # a DejaVu Sans character at the tick size, roughly
    fits = lambda texts: all(
        max(len(line) for line in t.split("\n")) * char <= room for t in texts)
    rotation, ha = 0, "center"
    if not fits(labels):
        wrapped = [re.sub(r"\s+([–—-])\s+", r" \1\n", t, count=1) for t in labels]
        if fits(wrapped):
            labels = wrapped
        else:
            rotation, ha = 35, "right"
    ax.set_xticks(range(len(labels)), labels, rotation=rotation, ha=ha,
                  rotation_mode="anchor" if rotation else "default")
    ax.tick_params(axis="x", labelsize=9.5)


def _ints(values: list) -> list[float]:
    return [(_num(v) or 0.0) for v in values]


def _chart_first_response(rows: list[dict]) -> Any:
    w, h = HALF_W, 3.4
    business = _ints([r.get("business") for r in rows])
    calendar = _ints([r.get("calendar") for r in rows])
    if not rows or not any(business + calendar):
        return _no_data(w, h)
    fig = _new_figure(w, h)
    ax = fig.add_subplot()
    x = list(range(len(rows)))
    bw = 0.4
    ax.bar([i - bw / 2 for i in x], business, bw, label="business hours", color=C_BUSINESS)
    ax.bar([i + bw / 2 for i in x], calendar, bw, label="calendar time", color=C_CALENDAR)
    _set_category_ticks(ax, [str(r.get("label", "")) for r in rows], w)
    ax.set_ylabel("tickets")
    ax.set_xlabel("time to first response")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(0, max(business + calendar) * 1.22)
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper center", ncols=2)
    return fig


def _parse_day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def _chart_daily(rows: list[dict]) -> Any:
    w, h = FULL_W, 3.6
    days = [(d, r) for r in rows if (d := _parse_day(r.get("date"))) is not None]
    if not days:
        return _no_data(w, h)
    import matplotlib.dates as mdates
    fig = _new_figure(w, h)
    ax = fig.add_subplot()
    xs = [d for d, _ in days]
    created = _ints([r.get("created") for _, r in days])
    breached = _ints([r.get("breached") for _, r in days])
    resolved = _ints([r.get("resolved") for _, r in days])
    bw = 0.8
    h1 = ax.bar(xs, created, bw, color=C_CREATED, label="created")
    h2 = ax.bar(xs, breached, bw * 0.55, color=C_BREACHED, label="of them SLA breached")
    (h3,) = ax.plot(xs, resolved, color=C_RESOLVED, linewidth=1.8, marker="o", markersize=2.8,
                    label="resolved")
    span = (xs[-1] - xs[0]).days
    if span <= 14:
        ax.xaxis.set_major_locator(mdates.DayLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    elif span <= 200:
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=14))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    else:
        locator = mdates.AutoDateLocator(minticks=4, maxticks=14)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(mdates.date2num(xs[0]) - 0.7, mdates.date2num(xs[-1]) + 0.7)
    ax.set_ylabel("tickets")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="x", visible=False)
    ax.legend(handles=[h1, h2, h3], loc="upper left", ncols=3)
    top = max(created + resolved + [1.0])
    ax.set_ylim(0, top * 1.18)
    return fig


def _chart_backlog(rows: list[dict]) -> Any:
    w, h = HALF_W, 3.4
    counts = _ints([r.get("count") for r in rows])
    if not rows or not any(counts):
        return _no_data(w, h)
    fig = _new_figure(w, h)
    ax = fig.add_subplot()
    x = list(range(len(rows)))
    bars = ax.bar(x, counts, 0.6, color=C_BACKLOG)
    ax.bar_label(bars, labels=[fmt_count(c) for c in counts], padding=2, fontsize=9,
                 color="#4a5261")
    _set_category_ticks(ax, [str(r.get("label", "")) for r in rows], w)
    ax.set_ylabel("open tickets")
    ax.set_xlabel("age of open ticket")
    ax.set_ylim(0, max(counts) * 1.15)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="x", visible=False)
    return fig


def _chart_groups(groups: list[dict]) -> Any:
    n = len(groups)
    w, h = FULL_W, max(2.0, 0.42 * n + 1.0)
    labels = [str(g.get("label") or g.get("key") or "") for g in groups]
    tickets = _ints([_get(g, "kpi", "tickets") for g in groups])
    medians = [_num(_get(g, "kpi", "first_response", "median_business_s")) for g in groups]
    fig = _new_figure(w, h)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    y = list(range(n))
    b1 = ax1.barh(y, tickets, 0.6, color=C_BUSINESS)
    ax1.bar_label(b1, labels=[fmt_count(t) for t in tickets], padding=3, fontsize=9,
                  color="#4a5261")
    ax1.set_yticks(y, labels)
    ax1.invert_yaxis()
    ax1.set_title("Tickets", loc="left", fontsize=10)
    ax1.set_xlim(0, max(tickets + [1.0]) * 1.15)
    ax1.xaxis.get_major_locator().set_params(integer=True)
    ax1.grid(axis="y", visible=False)
    hours = [(m or 0.0) / 3600 for m in medians]
    b2 = ax2.barh(y, hours, 0.6, color=C_CALENDAR)
    ax2.bar_label(b2, labels=[fmt_duration(m) for m in medians], padding=3, fontsize=9,
                  color="#4a5261")
    ax2.set_title("Median first response, business hours (h)", loc="left", fontsize=10)
    ax2.set_xlim(0, max(hours + [0.1]) * 1.2)
    ax2.grid(axis="y", visible=False)
    ax2.tick_params(axis="y", left=False)
    return fig


# -- the page -----------------------------------------------------------------------------------
TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="maildesk">
<title>maildesk — KPI report{% if period_text %}, {{ period_text }}{% endif %}</title>
<style>
  :root { --ink: #1f2430; --muted: #5d6677; --line: #dfe3ea; --bg: #f3f5f8; --card: #ffffff;
          --accent: #3b6fb6; --alert: #b8334a; }
  * { box-sizing: border-box; }
  html { background: var(--bg); }
  body { margin: 0; color: var(--ink); font: 15px/1.45 system-ui, "Segoe UI", Roboto,
         "Helvetica Neue", Arial, "Liberation Sans", "DejaVu Sans", sans-serif; }
  main { max-width: 1200px; margin: 0 auto; padding: 24px 20px 16px; }
  header h1 { margin: 0 0 6px; font-size: 26px; font-weight: 700; letter-spacing: -0.01em; }
  header dl { display: flex; flex-wrap: wrap; gap: 4px 28px; margin: 0; color: var(--muted);
              font-size: 14px; }
  header dl div { display: flex; gap: 6px; }
  header dt { font-weight: 600; }
  header dd { margin: 0; }
  h2 { font-size: 18px; margin: 28px 0 12px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 12px;
           margin: 0; padding: 0; list-style: none; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
          padding: 12px 14px 11px; min-height: 104px; }
  .card .label { font-size: 13px; color: var(--muted); font-weight: 600; line-height: 1.4;
                 min-height: 2.8em; }
  .card .value { font-size: 22px; font-weight: 700; margin: 2px 0 1px; white-space: nowrap; }
  .card.alert .value { color: var(--alert); }
  .card .sub { font-size: 12.5px; color: var(--muted); }
  .card .sub:empty { display: none; }
  .card .note { font-size: 11px; color: var(--muted); text-transform: uppercase;
                letter-spacing: 0.03em; }
  .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
  .charts .wide { grid-column: 1 / -1; }
  figure.chart { margin: 0; background: var(--card); border: 1px solid var(--line);
                 border-radius: 8px; padding: 12px 14px 8px; min-width: 0; }
  figure.chart figcaption { font-weight: 700; font-size: 15px; margin-bottom: 4px; }
  figure.chart svg { display: block; width: 100%; height: auto; }
  .table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line);
                border-radius: 8px; margin-top: 16px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; font-stretch: condensed;
          font-variant-numeric: tabular-nums; }
  th, td { padding: 6px 7px; text-align: right; border-bottom: 1px solid var(--line);
           vertical-align: top; white-space: nowrap; }
  th { font-size: 12px; color: var(--muted); font-weight: 600; background: #f8f9fb;
       white-space: normal; vertical-align: bottom; line-height: 1.25; }
  th small { display: block; font-weight: 400; font-size: 11px; margin-top: 2px; }
  th:first-child, td:first-child { text-align: left; white-space: normal; min-width: 120px; }
  td small { display: block; color: var(--muted); font-size: 11.5px; }
  tbody tr:nth-child(even) td { background: #fafbfc; }
  tfoot td { font-weight: 700; border-top: 2px solid var(--line); border-bottom: 0; }
  tbody tr:last-child td { border-bottom: 0; }
  footer { max-width: 1200px; margin: 8px auto 24px; padding: 0 20px; color: var(--muted);
           font-size: 12.5px; }
  @media (max-width: 820px) { .charts { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<main>
<header>
  <h1>maildesk — KPI report</h1>
  <dl>
    <div><dt>Period</dt><dd>{{ since }} – {{ until }}{% if timezone %} ({{ timezone }}){% endif %}</dd></div>
    <div><dt>Grouping</dt><dd>{{ by if by else "none" }}</dd></div>
    <div><dt>Generated</dt><dd>{{ generated_at }}</dd></div>
  </dl>
</header>

<section aria-labelledby="h-headline">
  <h2 id="h-headline">Headline figures</h2>
  <ul class="cards">
  {%- for c in cards %}
    <li class="card{% if c.alert %} alert{% endif %}">
      <div class="label">{{ c.label }}</div>
      <div class="value">{{ c.value }}</div>
      <div class="sub">{{ c.sub }}</div>
      {%- if c.note %}<div class="note">{{ c.note }}</div>{% endif %}
    </li>
  {%- endfor %}
  </ul>
</section>

<section aria-labelledby="h-charts">
  <h2 id="h-charts">Charts</h2>
  <div class="charts">
  {%- for ch in charts %}
    <figure class="chart{% if ch.wide %} wide{% endif %}" id="chart-{{ ch.id }}">
      <figcaption>{{ ch.caption }}</figcaption>
      {{ ch.svg }}
    </figure>
  {%- endfor %}
  </div>
</section>

{%- if comparison %}
<section aria-labelledby="h-groups" id="comparison">
  <h2 id="h-groups">Comparison by {{ by }}</h2>
  <div class="charts">
    <figure class="chart wide" id="chart-{{ comparison.chart.id }}">
      <figcaption>{{ comparison.chart.caption }}</figcaption>
      {{ comparison.chart.svg }}
    </figure>
  </div>
  <div class="table-wrap">
  <table>
    <thead><tr><th scope="col">{{ by|capitalize }}</th>
    {%- for h in columns %}<th scope="col">{{ h.title }}{% if h.sub %}<small>{{ h.sub }}</small>{% endif %}</th>{% endfor %}</tr></thead>
    <tbody>
    {%- for r in comparison.rows %}
      <tr><td>{{ r.label }}</td>
      {%- for c in r.cells %}<td>{{ c.value }}{% if c.sub %}<small>{{ c.sub }}</small>{% endif %}</td>{% endfor %}</tr>
    {%- endfor %}
    </tbody>
    <tfoot>
      <tr><td>{{ comparison.total.label }}</td>
      {%- for c in comparison.total.cells %}<td>{{ c.value }}{% if c.sub %}<small>{{ c.sub }}</small>{% endif %}</td>{% endfor %}</tr>
    </tfoot>
  </table>
  </div>
</section>
{%- endif %}
</main>
<footer>made by maildesk{% if version %} · report format {{ version }}{% endif %}</footer>
</body>
</html>
"""


def to_html(report: dict) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG only)."""
    import jinja2
    import matplotlib
    from markupsafe import Markup

    tz = report.get("timezone")
    since = _fmt_when(_get(report, "period", "since"), tz)
    until = _fmt_when(_get(report, "period", "until"), tz)
    totals = report.get("totals") or {}
    by = report.get("by") or None
    groups = [g for g in (report.get("groups") or []) if isinstance(g, dict)] if by else []

    with matplotlib.rc_context(_MPL_RC):
        specs = [
            ("first-response", "First response time distribution", False,
             lambda: _chart_first_response(report.get("first_response_distribution") or [])),
            ("backlog-age", "Backlog by age", False,
             lambda: _chart_backlog(report.get("backlog_by_age") or [])),
            ("daily", "Tickets per day", True,
             lambda: _chart_daily(report.get("daily") or [])),
        ]
        charts = []
        for cid, caption, wide, make in specs:
            svg = _svg(make(), f"svg-{cid}", caption)
            charts.append({"id": cid, "caption": caption, "wide": wide, "svg": Markup(svg)})
        comparison = None
        if by and groups:
            caption = f"Comparison by {by}: tickets and median first response"
            svg = _svg(_chart_groups(groups), "svg-groups", caption)
            comparison = {
                "chart": {"id": "groups", "caption": caption, "svg": Markup(svg)},
                "rows": [_row(str(g.get("label") or g.get("key") or DASH), g.get("kpi") or {})
                         for g in groups],
                "total": _row("All", totals),
            }

    env = jinja2.Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False,
                             undefined=jinja2.StrictUndefined)
    page = env.from_string(TEMPLATE).render(
        csp=Markup(CSP),  # a constant; its quotes stay literal
        period_text=f"{since} – {until}" if since != DASH or until != DASH else "",
        since=since, until=until, timezone=tz,
        by=by, generated_at=_fmt_when(report.get("generated_at"), tz),
        cards=[{"alert": False, "note": None, **c} for c in _cards(totals)],
        charts=charts, comparison=comparison,
        columns=[{"title": c[0], "sub": c[1]} for c in _COLUMNS], version=report.get("version"),
    )
    return page
