"""The KPI report as a mail (`reports:` in maildesk.yaml, `maildesk report --mail`).

The HTML part is the HTML report (report/html.py) made safe for mail clients:

- the charts, inline SVG on the page, become PNG images drawn by matplotlib from the same
  figures and sent as `multipart/related` parts referenced by `cid:` (Gmail and Outlook drop
  inline SVG and `data:` images; `cid:` parts they show);
- no `<script>`, no `<link>`, no remote resource (a `src`, `background` or CSS `url()` that
  names http(s) or `//` is removed); the page's Content-Security-Policy allows `cid:` and
  `data:` images only;
- the CSV of the same report (report/formats.py `to_csv`) is attached.

The text part (templates `report_mail`) carries the headline figures, for clients that show
text only. Pure: report dict in, MIME bytes out; matplotlib is imported when drawing.
"""

from __future__ import annotations

import base64
import io
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.policy import compat32
from email.utils import format_datetime
from typing import Any

from markupsafe import escape

from maildesk.outbound.compose import clean_header, encode_header, format_address
from maildesk.report.display import (DASH, NBSP, fmt_count, fmt_duration, fmt_score,
                                     fmt_share, fmt_when, get_in)

KIND = "report_mail"                # the outbox row's kind
MAIL_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src cid: data:"
PNG_DPI = 150                       # charts are drawn at 1.5x the page's 100 px per inch
PAGE_PX_PER_INCH = 100              # report/charts.py sizes figures for ~100 px/in


@dataclass(frozen=True)
class InlineImage:
    """A picture of the HTML part: `<img src="cid:{cid}">`."""

    cid: str
    filename: str
    data: bytes
    content_type: str = "image/png"


@dataclass(frozen=True)
class ReportMail:
    """What a report mail is made of, built once and sent to each recipient."""

    html: str
    images: tuple[InlineImage, ...]
    csv: bytes
    csv_name: str
    summary: dict[str, Any]          # the templates' `report` (headline figures, period)


# -- the charts as PNG ------------------------------------------------------------------------
def _chart_drawings(report: dict) -> dict[str, Callable[[], Any]]:
    """Per figure id of the HTML page (`chart-<id>`), how to draw it again."""
    from maildesk.report.charts import (backlog_chart, daily_chart, first_response_chart,
                                        groups_chart)

    rows = lambda key: report.get(key) or []   # noqa: E731
    groups = [g for g in (report.get("groups") or []) if isinstance(g, dict)]
    return {
        "first-response": lambda: first_response_chart(rows("first_response_distribution")),
        "backlog-age": lambda: backlog_chart(rows("backlog_by_age")),
        "daily": lambda: daily_chart(rows("daily")),
        "groups": lambda: groups_chart(groups),
    }


def _png(fig: Any) -> tuple[bytes, int]:
    """The figure as PNG, and its width in CSS pixels on the page."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buf.getvalue(), round(fig.get_size_inches()[0] * PAGE_PX_PER_INCH)


# -- the HTML made mail-safe ----------------------------------------------------------------------
_FIGURE = re.compile(r'(<figure\b[^>]*\bid="chart-([\w-]+)"[^>]*>)(.*?)(</figure>)', re.S)
_CAPTION = re.compile(r"<figcaption>(.*?)</figcaption>", re.S)
_SVG = re.compile(r"<svg\b.*?</svg>", re.S | re.I)
_SCRIPT = re.compile(r"<script\b.*?</script\s*>|<script\b[^>]*/?>", re.S | re.I)
_EMBED = re.compile(r"<(?:link|iframe|object|embed|base)\b[^>]*>(?:\s*</(?:iframe|object)>)?",
                    re.S | re.I)
_REMOTE_ATTR = re.compile(r"""\s(?:src|srcset|background|poster|data)\s*=\s*(["'])\s*"""
                          r"""(?:https?:)?//[^"']*\1""", re.I)
_REMOTE_URL = re.compile(r"""url\(\s*(["']?)\s*(?:https?:)?//[^)]*?\1\s*\)""", re.I)
_IMPORT = re.compile(r"@import\b[^;]*;", re.I)
_CSP = re.compile(r'(<meta http-equiv="Content-Security-Policy" content=")[^"]*(")', re.I)
_TAG = re.compile(r"<[^>]+>")


def mail_safe_html(html: str, images: dict[str, InlineImage], widths: dict[str, int]) -> str:
    """The page with each chart's SVG replaced by its `cid:` image (a figure without one says
    so), and scripts, embedded objects and remote resources taken out."""

    def figure(m: re.Match[str]) -> str:
        start, chart_id, inner, end = m.groups()
        caption = _CAPTION.search(inner)
        alt = _TAG.sub("", caption.group(1)).strip() if caption else chart_id
        image = images.get(chart_id)
        if image is None:
            replacement = ('<p style="color:#5d6677">(This chart is not drawn in the mail: '
                           "<code>maildesk report --format html</code> shows it.)</p>")
        else:
            w = widths[chart_id]
            replacement = (f'<img src="cid:{image.cid}" alt="{escape(alt)}" width="{w}" '
                           f'style="display:block;width:100%;max-width:{w}px;height:auto;'
                           'border:0">')
        return start + _SVG.sub(lambda _: replacement, inner, count=1) + end

    html = _FIGURE.sub(figure, html)
    html = _SVG.sub("", html)
    html = _SCRIPT.sub("", html)
    html = _EMBED.sub("", html)
    html = _REMOTE_ATTR.sub("", html)
    html = _REMOTE_URL.sub("none", html)
    html = _IMPORT.sub("", html)
    return _CSP.sub(lambda m: m.group(1) + MAIL_CSP + m.group(2), html)


# -- the parts ---------------------------------------------------------------------------------
def report_mail_parts(report: dict, domain: str, *, every: str | None = None,
                      label: str | None = None) -> ReportMail:
    """The mail-safe HTML, its chart images, the CSV and the figures of the text part.
    `every` and `label` name a scheduled period ("week", "2026-W49"); None for one made now."""
    import matplotlib

    from maildesk.report.charts import MPL_RC
    from maildesk.report.formats import to_csv
    from maildesk.report.html import to_html

    page = to_html(report)
    wanted = set(_FIGURE_IDS.findall(page))
    images: dict[str, InlineImage] = {}
    widths: dict[str, int] = {}
    token = secrets.token_hex(6)
    with matplotlib.rc_context(MPL_RC):
        for chart_id, draw in _chart_drawings(report).items():
            if chart_id not in wanted:
                continue
            data, widths[chart_id] = _png(draw())
            images[chart_id] = InlineImage(f"chart-{chart_id}.{token}@{domain}",
                                           f"chart-{chart_id}.png", data)
    summary = report_summary(report, every=every, label=label)
    name = f"maildesk-report-{label or summary['since'][:10] + '_' + summary['until'][:10]}.csv"
    return ReportMail(html=mail_safe_html(page, images, widths),
                      images=tuple(images.values()), csv=to_csv(report),
                      csv_name=re.sub(r"[^A-Za-z0-9._-]", "_", name), summary=summary)


_FIGURE_IDS = re.compile(r'<figure\b[^>]*\bid="chart-([\w-]+)"')


def _plain(text: str) -> str:
    return text.replace(NBSP, " ")


def report_summary(report: dict, *, every: str | None = None,
                   label: str | None = None) -> dict[str, Any]:
    """The templates' `report`: the period, the headline figures formatted for people (as the
    HTML cards word them) and a line per group."""
    tz = report.get("timezone")
    totals = report.get("totals") or {}

    def figures(kpi: dict) -> dict[str, str]:
        g = lambda *k: get_in(kpi, *k)   # noqa: E731
        return {k: _plain(v) for k, v in {
            "tickets": fmt_count(g("tickets")), "resolved": fmt_count(g("resolved")),
            "resolved_share": fmt_share(g("resolved_share")),
            "first_contact_resolution": fmt_share(g("first_contact_resolution_rate")),
            "first_response_median": fmt_duration(g("first_response", "median_business_s")),
            "first_response_median_calendar":
                fmt_duration(g("first_response", "median_calendar_s")),
            "handling_mean": fmt_duration(g("handling", "mean_business_s")),
            "breached": fmt_count(g("breached")), "breached_share": fmt_share(g("breached_share")),
            "overdue_now": fmt_count(g("overdue_now")), "backlog_now": fmt_count(g("backlog_now")),
            "csat_mean": fmt_score(g("csat", "mean")), "ratings": fmt_count(g("csat", "ratings")),
        }.items()}

    groups = [{"key": str(g.get("key") or ""), "label": str(g.get("label") or g.get("key")
                                                             or DASH),
               "count": int(get_in(g, "kpi", "tickets") or 0), **figures(g.get("kpi") or {})}
              for g in (report.get("groups") or []) if isinstance(g, dict)]
    return {"since": fmt_when(get_in(report, "period", "since"), tz),
            "until": fmt_when(get_in(report, "period", "until"), tz),
            "timezone": tz or "UTC", "by": report.get("by"), "every": every, "label": label,
            "tickets": int(get_in(totals, "tickets") or 0),
            "figures": figures(totals), "groups": groups}


# -- the MIME message --------------------------------------------------------------------------
_CRLF = compat32.clone(linesep="\r\n")


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")


def _text(text: str, subtype: str) -> str:
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{_b64(text.encode('utf-8'))}")


def _multipart(subtype: str, parts: Sequence[str], extra: str = "") -> str:
    boundary = f"=_md_{secrets.token_hex(12)}"
    return (f'Content-Type: multipart/{subtype}; boundary="{boundary}"{extra}\r\n\r\n'
            + "".join(f"--{boundary}\r\n{part}" for part in parts) + f"--{boundary}--\r\n")


def _image(image: InlineImage) -> str:
    name = clean_header(image.filename, 100).replace('"', "_")
    return (f'Content-Type: {image.content_type}; name="{name}"\r\n'
            f"Content-Transfer-Encoding: base64\r\nContent-ID: <{clean_header(image.cid)}>\r\n"
            f'Content-Disposition: inline; filename="{name}"\r\n\r\n{_b64(image.data)}')


def _csv(name: str, data: bytes) -> str:
    name = clean_header(name, 100).replace('"', "_")
    return (f'Content-Type: text/csv; charset="utf-8"; name="{name}"\r\n'
            f"Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{_b64(data)}')


def build_report_message(*, parts: ReportMail, text: str, subject: str, from_name: str,
                         from_address: str, to_address: str, to_name: str = "",
                         message_id: str, date: datetime) -> bytes:
    """The mail's bytes (CRLF): multipart/mixed of a multipart/related (the text and HTML
    alternatives, then the chart images) and the CSV. Automatic mail (RFC 3834)."""
    headers: list[tuple[str, str | Header]] = [
        ("From", format_address(from_address, from_name)),
        ("To", format_address(to_address, to_name)),
        ("Subject", encode_header(subject, "Subject")),
        ("Date", format_datetime(date)),
        ("Message-ID", f"<{clean_header(message_id)}>"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
    ]
    alternative = _multipart("alternative", [_text(text, "plain"), _text(parts.html, "html")])
    related = _multipart("related", [alternative, *(_image(i) for i in parts.images)],
                         '; type="multipart/alternative"')
    body = _multipart("mixed", [related, _csv(parts.csv_name, parts.csv)])
    out = "".join(_CRLF.fold(name, value) for name, value in headers)
    return (out + "MIME-Version: 1.0\r\n" + body).encode("ascii")
