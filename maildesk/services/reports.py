"""The KPI report (README: "KPI report"): its period, its data and its output formats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from maildesk.services.context import Context
from maildesk.services.errors import BadRequest

# The steps build_report tells `progress` about, in order.
STEPS = ("tickets", "medians", "days", "backlog", "knowledge base")
FORMATS = ("table", "csv", "json", "html")
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Period:
    """Tickets created from `start` up to `end` (exclusive), measured at `now`."""

    start: datetime
    end: datetime
    now: datetime


def parse_time(text: str, zone: tzinfo, *, end: bool) -> datetime:
    """A date (local midnight; as an end, the midnight after it) or an ISO time (local time
    when it has no offset)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(0), zone)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date or ISO time: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=zone)


def report_period(ctx: Context, since: str | None, until: str | None) -> Period:
    """The period from --since and --until as given (either may be None: until now, and the
    30 days before the end); BadRequest when one does not parse or they are out of order."""
    from maildesk.report.kpi import report_zone

    zone = report_zone(ctx.settings)
    now = ctx.clock.now()
    try:
        end = parse_time(until, zone, end=True) if until else now
        start = parse_time(since, zone, end=False) if since else end - timedelta(days=DEFAULT_DAYS)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if start >= end:
        raise BadRequest(f"--since ({start.isoformat()}) is not before --until "
                         f"({end.isoformat()})")
    return Period(start, end, now)


def build(ctx: Context, period: Period, *, by: str | None = None,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The report's data (the JSON format's shape); `by` adds the KPIs per group."""
    from maildesk.report.kpi import build_report

    with ctx.read_session() as session:
        return build_report(session, ctx.settings, since=period.start, until=period.end, by=by,
                            now=period.now, progress=progress)


def render(data: dict[str, Any], fmt: str, *, width: int = 100) -> bytes:
    """The report as `fmt` (one of FORMATS); `width` is the table's."""
    from maildesk.report.formats import to_csv, to_json, to_table

    if fmt == "html":
        from maildesk.report.html import to_html
        return to_html(data).encode("utf-8")
    if fmt == "csv":
        return to_csv(data)
    if fmt == "json":
        return to_json(data).encode("utf-8")
    return to_table(data, width).encode("utf-8")
