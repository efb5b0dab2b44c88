"""The report as a terminal table, CSV and JSON (the HTML page is report/html.py).

Every figure is worded by report/display.py, the one rounding rule of every format; with the
comparison (the report's `previous` and `changes`), the table has a "± prev." column beside
each group's and the CSV `<column>_previous` and `<column>_change` columns.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Callable
from typing import Any

from maildesk.report.display import counted, fmt_change, fmt_value, fmt_when, plural

# (column, heading, how to read it off a KPI dict, kind) — one list for the table and the CSV.
Column = tuple[str, str, Callable[[dict[str, Any]], Any], str]
COLUMNS: list[Column] = [
    ("tickets", "Tickets", lambda k: k["tickets"], "count"),
    ("resolved", "Resolved", lambda k: k["resolved"], "count"),
    ("resolved_share", "Resolved %", lambda k: k["resolved_share"], "share"),
    ("fcr_rate", "FCR %", lambda k: k["first_contact_resolution_rate"], "share"),
    ("first_response_median_business_s", "1st resp. median (bus.)",
     lambda k: k["first_response"]["median_business_s"], "duration"),
    ("first_response_mean_business_s", "1st resp. mean (bus.)",
     lambda k: k["first_response"]["mean_business_s"], "duration"),
    ("first_response_median_calendar_s", "1st resp. median (cal.)",
     lambda k: k["first_response"]["median_calendar_s"], "duration"),
    ("first_response_mean_calendar_s", "1st resp. mean (cal.)",
     lambda k: k["first_response"]["mean_calendar_s"], "duration"),
    ("responses", "Answers", lambda k: k["response"]["count"], "count"),
    ("response_mean_business_s", "Resp. mean (bus.)",
     lambda k: k["response"]["mean_business_s"], "duration"),
    ("response_mean_calendar_s", "Resp. mean (cal.)",
     lambda k: k["response"]["mean_calendar_s"], "duration"),
    ("handling_mean_business_s", "Handling mean (bus.)",
     lambda k: k["handling"]["mean_business_s"], "duration"),
    ("handling_mean_calendar_s", "Handling mean (cal.)",
     lambda k: k["handling"]["mean_calendar_s"], "duration"),
    ("breached", "Breached", lambda k: k["breached"], "count"),
    ("breached_share", "Breached %", lambda k: k["breached_share"], "share"),
    ("overdue_now", "Overdue now", lambda k: k["overdue_now"], "count"),
    ("reopen_rate", "Reopen %", lambda k: k["reopen_rate"], "share"),
    ("backlog_now", "Backlog now", lambda k: k["backlog_now"], "count"),
    ("csat_mean", "CSAT mean", lambda k: k["csat"]["mean"], "score"),
    ("csat_satisfied_share", "CSAT 4-5 %", lambda k: k["csat"]["satisfied_share"], "share"),
    ("csat_response_rate", "CSAT answered %", lambda k: k["csat"]["response_rate"], "share"),
    ("ratings", "Ratings", lambda k: k["csat"]["ratings"], "count"),
    ("first_response_sla_met_share", "1st resp. SLA met %",
     lambda k: _sla(k, "first_response"), "share"),
    ("resolution_sla_met_share", "Resolution SLA met %", lambda k: _sla(k, "resolution"), "share"),
]
# The figures that are snapshots of now, not of the period: no previous value, no change.
SNAPSHOTS = ("overdue_now", "backlog_now")
# The table's order of the rows: the SLA-met shares beside the breaches (the CSV keeps its
# columns' order and adds new ones at the end).
_SLA_ROWS = [c for c in COLUMNS if c[0].endswith("_sla_met_share")]
_OTHER_ROWS = [c for c in COLUMNS if c not in _SLA_ROWS]
_AT = [c[0] for c in _OTHER_ROWS].index("breached_share") + 1
TABLE_ORDER = _OTHER_ROWS[:_AT] + _SLA_ROWS + _OTHER_ROWS[_AT:]


def _sla(kpi: dict[str, Any], kind: str) -> Any:
    """An SLA-met share; None in a report without them (an older maildesk's)."""
    return ((kpi.get("sla_met") or {}).get(kind) or {}).get("share")


def _get(column: Column, kpi: dict[str, Any] | None) -> Any:
    """A column's figure of a KPI object, None where it has none."""
    if not isinstance(kpi, dict):
        return None
    try:
        return column[2](kpi)
    except (KeyError, TypeError):
        return None


def _compared(report: dict[str, Any]) -> bool:
    return isinstance(report.get("previous"), dict) and isinstance(report.get("changes"), dict)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def to_csv(report: dict[str, Any]) -> bytes:
    """One row per group, then the total; durations in seconds, shares as fractions. With the
    comparison, then the previous period's bounds and, per figure but the snapshots,
    `<column>_previous` and `<column>_change` (shares' changes in percentage points). UTF-8
    with a byte-order mark, so Excel reads Russian names right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    compared = _compared(report)
    over = [c for c in COLUMNS if c[0] not in SNAPSHOTS]
    head = ["group", "key", "label", "since", "until", *[c[0] for c in COLUMNS]]
    if compared:
        head += ["previous_since", "previous_until", *[f"{c[0]}_previous" for c in over],
                 *[f"{c[0]}_change" for c in over]]
    writer.writerow(head)
    period = report["period"]
    previous = report.get("previous") or {}
    changes = report.get("changes") or {}
    p_groups = previous.get("groups") or []
    c_groups = changes.get("groups") or []
    rows = [(report["by"] or "", g["key"], g["label"], g["kpi"],
             p_groups[i]["kpi"] if i < len(p_groups) else None,
             c_groups[i]["change"] if i < len(c_groups) else None)
            for i, g in enumerate(report["groups"])]
    rows.append(("total", "", "Total", report["totals"], previous.get("totals"),
                 changes.get("totals")))

    def cells(columns: list[Column], kpi: dict[str, Any] | None) -> list[Any]:
        return ["" if (v := _get(c, kpi)) is None else v for c in columns]

    for by, key, label, kpi, before, change in rows:
        row = [by, key, label, period["since"], period["until"], *cells(COLUMNS, kpi)]
        if compared:
            p_period = previous.get("period") or {}
            row += [p_period.get("since", ""), p_period.get("until", ""), *cells(over, before),
                    *cells(over, change)]
        writer.writerow(row)
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def to_table(report: dict[str, Any], width: int = 100) -> str:
    """KPIs as rows and groups as columns (a terminal is taller than wide); groups that do not
    fit the width go to a further block. With the comparison, each group's column has a
    "± prev." column beside it: the change against the previous period."""
    period = report["period"]
    zone = report.get("timezone")
    head = [f"maildesk KPI report {_when(period['since'], zone)} — "
            f"{_when(period['until'], zone)} ({zone})"
            + (f", by {report['by']}" if report["by"] else "")]
    compared = _compared(report)
    changes = report.get("changes") or {}
    c_groups = changes.get("groups") or []
    columns = [(g["label"], g["kpi"], c_groups[i]["change"] if i < len(c_groups) else None)
               for i, g in enumerate(report["groups"])]
    columns.append(("Total", report["totals"], changes.get("totals")))
    if compared:
        p_period = report["previous"].get("period") or {}
        head += textwrap.wrap(f"± prev.: the change against the previous period "
                              f"{_when(p_period.get('since'), zone)} — "
                              f"{_when(p_period.get('until'), zone)} (shares in percentage "
                              f"points)", width)
    label_w = max(len(c[1]) for c in COLUMNS) + 2
    cell_w, change_w = 12, 11
    per_column = cell_w + 1 + (change_w + 1 if compared else 0)
    per_block = max(1, (width - label_w) // per_column)
    lines = head
    for start in range(0, len(columns), per_block):
        block = columns[start:start + per_block]
        lines.append("")
        lines.append(" " * label_w + " ".join(
            _fit(name, cell_w).rjust(cell_w) + (" " + "± prev.".rjust(change_w) if compared
                                                else "")
            for name, _, _ in block))
        for column in TABLE_ORDER:
            name, heading, _, kind = column
            cells = []
            for _, kpi, change in block:
                cell = format_value(_get(column, kpi), kind).rjust(cell_w)
                if compared:
                    delta = "" if name in SNAPSHOTS else \
                        fmt_change(_get(column, change), kind, " ")
                    cell += " " + delta.rjust(change_w)
                cells.append(cell)
            lines.append(heading.ljust(label_w) + " ".join(cells).rstrip())
    backlog = ", ".join(f"{b['label']}: {b['count']}" for b in report["backlog_by_age"])
    lines += ["", f"Backlog by age: {backlog}"]
    lines += _kb_table(report.get("knowledge_base"), width)
    return "\n".join(lines) + "\n"


# The knowledge-base section: at most this many articles (the busiest; JSON and HTML have all).
KB_TABLE_ROWS = 15


def _kb_table(kb: dict[str, Any] | None, width: int) -> list[str]:
    """A short section per article, when the period used the knowledge base at all."""
    if not kb or not kb.get("articles"):
        return []
    t, held = kb["totals"], hold_label(kb.get("hold_s"))
    n = lambda value: format_value(value, "count")
    summary = (f"Knowledge base: {counted(t['tickets_suggested'], 'ticket', space=' ')} got "
               f"suggested articles, {n(t['solved'])} solved by the client's "
               f"\"this solved it\" (held {held}: {n(t['held'])}, reopened: {n(t['reopened'])}, "
               f"pending: {n(t['pending'])}; self-service "
               f"{format_value(t['self_service'], 'share')}); "
               f"{counted(t['inserted'], 'insertion', space=' ')} by agents "
               f"({n(t['inserted_macro'])} #macro, {n(t['inserted_kb'])} #kb).")
    heads = [("Suggested", "suggested", "count"), ("Inserted", "inserted", "count"),
             ("Solved", "solved", "count"), (f"Held {held}", "held", "count"),
             ("Reopened", "reopened", "count"), ("Pending", "pending", "count"),
             ("Self-serv.", "self_service", "share")]
    widths = [max(len(h), 7) for h, _, _ in heads]
    title_w = max(16, width - sum(w + 1 for w in widths))
    lines = ["", *textwrap.wrap(summary, width), "",
             "Article".ljust(title_w) + "".join(" " + h.rjust(w)
                                                 for (h, _, _), w in zip(heads, widths))]
    for a in kb["articles"][:KB_TABLE_ROWS]:
        lines.append(_fit(a["title"], title_w).ljust(title_w) + "".join(
            " " + format_value(a[key], kind).rjust(w) for (_, key, kind), w in zip(heads, widths)))
    more = len(kb["articles"]) - KB_TABLE_ROWS
    if more > 0:
        lines.append(f"… and {more} more {plural(more, 'article')} (--format json or html: all "
                     f"of them)")
    return lines


def hold_label(seconds: Any) -> str:
    """How long a solve must hold: "7 d", "36 h"."""
    s = int(seconds or 0)
    return f"{s // 86400} d" if s and s % 86400 == 0 else f"{s // 3600} h"


def format_value(value: Any, kind: str) -> str:
    """A figure as the table shows it: display.py's wording, with plain spaces."""
    return fmt_value(value, kind, " ")


def format_duration(seconds: float) -> str:
    """45 s, 13 min, 1 h 08 min, 3 d 4 h: display.fmt_duration with plain spaces."""
    return fmt_value(seconds, "duration", " ")


def _when(text: Any, zone: str | None) -> str:
    """A time of the report in its zone, to the minute."""
    return fmt_when(text, zone)[:16]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
