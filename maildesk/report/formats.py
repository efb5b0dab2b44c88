"""The report as a terminal table, CSV and JSON (the HTML page is report/html.py)."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Callable
from typing import Any

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
]


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def to_csv(report: dict[str, Any]) -> bytes:
    """One row per group, then the total; durations in seconds, shares as fractions. UTF-8
    with a byte-order mark, so Excel reads Russian names right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["group", "key", "label", "since", "until", *[c[0] for c in COLUMNS]])
    period = report["period"]
    rows = [(report["by"] or "", g["key"], g["label"], g["kpi"]) for g in report["groups"]]
    rows.append(("total", "", "Total", report["totals"]))
    for by, key, label, kpi in rows:
        writer.writerow([by, key, label, period["since"], period["until"],
                         *["" if (v := c[2](kpi)) is None else v for c in COLUMNS]])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def to_table(report: dict[str, Any], width: int = 100) -> str:
    """KPIs as rows and groups as columns (a terminal is taller than wide); groups that do not
    fit the width go to a further block."""
    period = report["period"]
    head = [f"maildesk KPI report {period['since'][:16].replace('T', ' ')} — "
            f"{period['until'][:16].replace('T', ' ')} ({report['timezone']})"
            + (f", by {report['by']}" if report["by"] else "")]
    columns = [(g["label"], g["kpi"]) for g in report["groups"]] + [("Total", report["totals"])]
    label_w = max(len(c[1]) for c in COLUMNS) + 2
    cell_w = 12
    per_block = max(1, (width - label_w) // (cell_w + 1))
    lines = head
    for start in range(0, len(columns), per_block):
        block = columns[start:start + per_block]
        lines.append("")
        lines.append(" " * label_w + " ".join(_fit(name, cell_w).rjust(cell_w)
                                              for name, _ in block))
        for _, heading, get, kind in COLUMNS:
            lines.append(heading.ljust(label_w) + " ".join(
                format_value(get(kpi), kind).rjust(cell_w) for _, kpi in block))
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
    summary = (f"Knowledge base: {t['tickets_suggested']} tickets got suggested articles, "
               f"{t['solved']} solved by the client's \"this solved it\" (held {held}: "
               f"{t['held']}, reopened: {t['reopened']}, pending: {t['pending']}; self-service "
               f"{format_value(t['self_service'], 'share')}); {t['inserted']} insertions by "
               f"agents ({t['inserted_macro']} #macro, {t['inserted_kb']} #kb).")
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
        lines.append(f"… and {more} more articles (--format json or html: all of them)")
    return lines


def hold_label(seconds: Any) -> str:
    """How long a solve must hold: "7 d", "36 h"."""
    s = int(seconds or 0)
    return f"{s // 86400} d" if s and s % 86400 == 0 else f"{s // 3600} h"


def format_value(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "share":
        return f"{value * 100:.1f}%"
    if kind == "duration":
        return format_duration(value)
    if kind == "score":
        return f"{value:.2f}"
    return str(value)


def format_duration(seconds: float) -> str:
    """45 s, 12 min, 2 h 05 min, 3 d 4 h."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
