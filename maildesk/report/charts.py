"""The charts of the HTML report, drawn by matplotlib as SVG to inline in the page: text as
paths (no font is fetched), deterministic ids made unique per chart, sized by the page's CSS.

matplotlib is imported inside the functions, so that importing this module (and the CLI)
stays fast; draw inside `matplotlib.rc_context(MPL_RC)`.
"""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

from maildesk.report.display import as_number, fmt_count, fmt_duration, get_in

MPL_RC = {
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


_XML_PROLOG = re.compile(r"\A\s*<\?xml[^>]*\?>\s*")
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def inline_svg(fig: Any, prefix: str, caption: str) -> str:
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
    return [(as_number(v) or 0.0) for v in values]


def first_response_chart(rows: list[dict]) -> Any:
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


def daily_chart(rows: list[dict]) -> Any:
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


def backlog_chart(rows: list[dict]) -> Any:
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


def groups_chart(groups: list[dict]) -> Any:
    n = len(groups)
    w, h = FULL_W, max(2.0, 0.42 * n + 1.0)
    labels = [str(g.get("label") or g.get("key") or "") for g in groups]
    tickets = _ints([get_in(g, "kpi", "tickets") for g in groups])
    medians = [as_number(get_in(g, "kpi", "first_response", "median_business_s")) for g in groups]
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
