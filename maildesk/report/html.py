"""The self-contained HTML format of `maildesk report`: one file, no request to any other address.

`to_html(report)` takes the stable report dict (format "maildesk-report", version 1) and returns
a page with headline cards, charts drawn by matplotlib as inline SVG (report/charts.py), and a
per-group table (the figures as report/display.py words them). With the comparison (the
report's `previous` and `changes`) each card and table cell also says how its figure moved
against the previous period: an arrow for up or down, green when that is better, red when
worse (display.KPI_FIGURES says which way is better). matplotlib and jinja2 are imported
inside `to_html` so that the CLI starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from maildesk.report.charts import (MPL_RC, backlog_chart, daily_chart, first_response_chart,
                                    groups_chart, inline_svg)
from maildesk.report.display import (DASH, NBSP, as_number, cards, column_heads, fmt_count,
                                     fmt_duration, fmt_score, fmt_share, fmt_when, get_in, plural,
                                     table_row)

# The formatting helpers stay importable from here, where they were before the split.
__all__ = ["CSP", "DASH", "NBSP", "TEMPLATE", "fmt_count", "fmt_duration", "fmt_score",
           "fmt_share", "to_html"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

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
          --accent: #3b6fb6; --alert: #b8334a; --better: #1e7a4f; }
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
  .chg { font-size: 12px; font-weight: 600; white-space: nowrap; }
  .chg.better { color: var(--better); }
  .chg.worse { color: var(--alert); }
  .chg.same, .chg.neutral { color: var(--muted); font-weight: 400; }
  td small.chg { font-size: 10.5px; white-space: normal; }  /* wraps only when the table is tight */
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
  th, td { padding: 6px 5px; text-align: right; border-bottom: 1px solid var(--line);
           vertical-align: top; white-space: nowrap; }
  th { font-size: 12px; color: var(--muted); font-weight: 600; background: #f8f9fb;
       white-space: normal; vertical-align: bottom; line-height: 1.25; }
  th small { display: block; font-weight: 400; font-size: 11px; margin-top: 2px; }
  th:first-child, td:first-child { text-align: left; white-space: normal; min-width: 120px;
                                   overflow-wrap: anywhere; }
  td small { display: block; color: var(--muted); font-size: 11.5px; }
  tbody tr:nth-child(even) td { background: #fafbfc; }
  tfoot td { font-weight: 700; border-top: 2px solid var(--line); border-bottom: 0; }
  tbody tr:last-child td { border-bottom: 0; }
  .kb-note { margin: 0; color: var(--muted); font-size: 14px; }
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
    {%- if previous %}
    <div><dt>Compared with</dt><dd>{{ previous.since }} – {{ previous.until }}</dd></div>
    {%- endif %}
  </dl>
</header>

<section aria-labelledby="h-headline">
  <h2 id="h-headline">Headline figures</h2>
  {%- if previous %}
  <p class="kb-note">Under each figure, its change against the previous period
    ({{ previous.since }} – {{ previous.until }}): <span class="chg better">green</span> is
    better, <span class="chg worse">red</span> worse, grey neither; shares change in percentage
    points.</p>
  {%- endif %}
  <ul class="cards">
  {%- for c in cards %}
    <li class="card{% if c.alert %} alert{% endif %}">
      <div class="label">{{ c.label }}</div>
      <div class="value">{{ c.value }}</div>
      {%- if c.change %}
      <div class="chg {{ c.change.tone }}" title="{{ c.change.title }}">{{ c.change.text }}</div>
      {%- endif %}
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
      {%- for c in r.cells %}<td>{{ c.value }}{% if c.sub %}<small>{{ c.sub }}</small>{% endif %}{% if c.change %}<small class="chg {{ c.change.tone }}" title="{{ c.change.title }}">{{ c.change.text }}</small>{% endif %}</td>{% endfor %}</tr>
    {%- endfor %}
    </tbody>
    <tfoot>
      <tr><td>{{ comparison.total.label }}</td>
      {%- for c in comparison.total.cells %}<td>{{ c.value }}{% if c.sub %}<small>{{ c.sub }}</small>{% endif %}{% if c.change %}<small class="chg {{ c.change.tone }}" title="{{ c.change.title }}">{{ c.change.text }}</small>{% endif %}</td>{% endfor %}</tr>
    </tfoot>
  </table>
  </div>
</section>
{%- endif %}

{%- if kb %}
<section aria-labelledby="h-kb" id="knowledge-base">
  <h2 id="h-kb">Knowledge base</h2>
  <p class="kb-note">{{ kb.note }}</p>
  {%- if kb.rows %}
  <div class="table-wrap">
  <table>
    <thead><tr><th scope="col">Article</th>
    {%- for h in kb.columns %}<th scope="col">{{ h.title }}{% if h.sub %}<small>{{ h.sub }}</small>{% endif %}</th>{% endfor %}</tr></thead>
    <tbody>
    {%- for r in kb.rows %}
      <tr><td>{{ r.label }}{% if r.sub %}<small>{{ r.sub }}</small>{% endif %}</td>
      {%- for c in r.cells %}<td>{{ c.value }}{% if c.sub %}<small>{{ c.sub }}</small>{% endif %}</td>{% endfor %}</tr>
    {%- endfor %}
    </tbody>
    <tfoot>
      <tr><td>{{ kb.total.label }}</td>
      {%- for c in kb.total.cells %}<td>{{ c.value }}{% if c.sub %}<small>{{ c.sub }}</small>{% endif %}</td>{% endfor %}</tr>
    </tfoot>
  </table>
  </div>
  {%- endif %}
</section>
{%- endif %}
</main>
<footer>made by maildesk{% if version %} · report format {{ version }}{% endif %}</footer>
</body>
</html>
"""


# The page's charts in order: id, caption, full width, the report's rows, the drawing.
_CHARTS: tuple[tuple[str, str, bool, str, Callable[[list[dict]], Any]], ...] = (
    ("first-response", "First response time distribution", False,
     "first_response_distribution", first_response_chart),
    ("backlog-age", "Backlog by age", False, "backlog_by_age", backlog_chart),
    ("daily", "Tickets per day", True, "daily", daily_chart),
)


def to_html(report: dict) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG only); with the
    comparison, the changes against the previous period beside the figures."""
    import jinja2
    import matplotlib
    from markupsafe import Markup

    tz = report.get("timezone")
    since = fmt_when(get_in(report, "period", "since"), tz)
    until = fmt_when(get_in(report, "period", "until"), tz)
    totals = report.get("totals") or {}
    by = report.get("by") or None
    previous, changes = report.get("previous"), report.get("changes")
    compared = isinstance(previous, dict) and isinstance(changes, dict)
    total_change = (changes.get("totals") or {}) if compared else None

    with matplotlib.rc_context(MPL_RC):
        charts = [_figure(cid, caption, draw(report.get(rows) or []), wide=wide)
                  for cid, caption, wide, rows, draw in _CHARTS]
        comparison = _comparison(by, _groups(report, by), totals,
                                 _group_changes(report, by) if compared else None, total_change)

    env = jinja2.Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False,
                             undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        csp=Markup(CSP),  # a constant; its quotes stay literal
        period_text=f"{since} – {until}" if since != DASH or until != DASH else "",
        since=since, until=until, timezone=tz,
        by=by, generated_at=fmt_when(report.get("generated_at"), tz),
        cards=[{"alert": False, "note": None, "change": None, **c}
               for c in cards(totals, total_change)],
        previous={"since": fmt_when(get_in(previous, "period", "since"), tz),
                  "until": fmt_when(get_in(previous, "period", "until"), tz)}
        if compared else None,
        charts=charts, comparison=comparison, kb=_knowledge_base(report.get("knowledge_base")),
        columns=column_heads(), version=report.get("version"),
    )


def _groups(report: dict, by: str | None) -> list[dict]:
    """The groups to compare: none without a grouping; entries that are not dicts skipped."""
    if not by:
        return []
    return [g for g in (report.get("groups") or []) if isinstance(g, dict)]


def _figure(cid: str, caption: str, fig: Any, *, wide: bool) -> dict[str, Any]:
    """A chart for the template: its SVG ids prefixed with `svg-<cid>`."""
    from markupsafe import Markup

    return {"id": cid, "caption": caption, "wide": wide,
            "svg": Markup(inline_svg(fig, f"svg-{cid}", caption))}


def _group_changes(report: dict, by: str | None) -> list[dict]:
    """Each group's change against the previous period, in the order of the groups (an empty
    dict where the report has none)."""
    if not by:
        return []
    found = get_in(report, "changes", "groups") or []
    return [(c.get("change") or {}) if isinstance(c, dict) else {} for c in found]


def _comparison(by: str | None, groups: list[dict], totals: dict,
                changes: list[dict] | None = None, total_change: dict | None = None
                ) -> dict | None:
    """The comparison section: its chart, a table row per group and the totals' row (with
    `changes`, each group's change against the previous period, the figures' too)."""
    if not (by and groups):
        return None
    caption = f"Comparison by {by}: tickets and median first response"

    def change(i: int) -> dict | None:
        if changes is None:
            return None
        return changes[i] if i < len(changes) else {}

    return {
        "chart": _figure("groups", caption, groups_chart(groups), wide=True),
        "rows": [table_row(str(g.get("label") or g.get("key") or DASH), g.get("kpi") or {},
                           change(i))
                 for i, g in enumerate(groups)],
        "total": table_row("All", totals, total_change),
    }


def _knowledge_base(kb: Any) -> dict | None:
    """The knowledge-base section: a row per article and the totals' row; None when the report
    has no such figures (a report of an older maildesk)."""
    if not isinstance(kb, dict):
        return None
    totals = kb.get("totals") if isinstance(kb.get("totals"), dict) else {}
    articles = [a for a in (kb.get("articles") or []) if isinstance(a, dict)]
    seconds = as_number(kb.get("hold_s")) or 0
    hold = (f"{seconds / 86400:g}{NBSP}{plural(seconds / 86400, 'day')}"
            if seconds % 86400 == 0 else f"{seconds / 3600:g}{NBSP}h")
    if not articles:
        return {"note": "No article was suggested, inserted or solved in the period.",
                "rows": []}
    columns = [
        {"title": "Suggested", "sub": "tickets"},
        {"title": "Inserted", "sub": "#macro / #kb"},
        {"title": "Solved", "sub": "by the client"},
        {"title": f"Held {hold}", "sub": "not reopened"},
        {"title": "Reopened", "sub": f"within {hold}"},
        {"title": "Pending", "sub": f"solved < {hold} ago"},
        {"title": "Self-service", "sub": "held / suggested"},
    ]

    def cells(f: dict, suggested: Any) -> list[dict]:
        return [{"value": fmt_count(suggested), "sub": None},
                {"value": fmt_count(f.get("inserted")),
                 "sub": f"{fmt_count(f.get('inserted_macro'))} / "
                        f"{fmt_count(f.get('inserted_kb'))}" if as_number(f.get("inserted"))
                 else None},
                {"value": fmt_count(f.get("solved")), "sub": None},
                {"value": fmt_count(f.get("held")), "sub": None},
                {"value": fmt_count(f.get("reopened")), "sub": None},
                {"value": fmt_count(f.get("pending")), "sub": None},
                {"value": fmt_share(f.get("self_service")), "sub": None}]

    note = (f"Per article, the events of the period: suggested in the acknowledgement, "
            f"inserted by agents, solved by the client's \u201cthis solved it\u201d. A solve "
            f"holds when the client has not written again within {hold}; younger solves are "
            f"pending.")
    rows = []
    for a in articles:
        slug, title = str(a.get("slug") or DASH), str(a.get("title") or a.get("slug") or DASH)
        rows.append({"label": title, "sub": slug if slug != title else None,
                     "cells": cells(a, a.get("suggested"))})
    return {"note": note, "columns": columns, "rows": rows,
            "total": {"label": "All articles",
                      "cells": cells(totals, totals.get("tickets_suggested"))}}
