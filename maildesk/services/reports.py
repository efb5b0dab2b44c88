"""The KPI report (README: "KPI report"): its period, its data and its output formats."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from maildesk.config import Settings
from maildesk.services.context import Context
from maildesk.services.errors import BadRequest

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from maildesk.outbound.compose import Composer

# The steps build_report tells `progress` about, in order.
STEPS = ("tickets", "medians", "previous period", "days", "backlog", "knowledge base")
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
          progress: Callable[[str], None] | None = None,
          compare: bool = True) -> dict[str, Any]:
    """The report's data (the JSON format's shape); `by` adds the KPIs per group, `compare`
    the previous period's and the changes."""
    from maildesk.report.kpi import build_report

    with ctx.read_session() as session:
        return build_report(session, ctx.settings, since=period.start, until=period.end, by=by,
                            now=period.now, progress=progress, compare=compare)


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


# -- the report by mail (`report --mail`, and `reports:` in maildesk.yaml) ---------------------
@dataclass(frozen=True)
class PreparedReportMail:
    """A report mail rendered once (charts drawn, templates filled), to queue per recipient."""

    parts: Any             # maildesk.report.mail.ReportMail
    subject: str
    text: str


def prepare_report_mail(settings: Settings, composer: Composer, data: dict[str, Any], *,
                        every: str | None = None, label: str | None = None
                        ) -> PreparedReportMail:
    """Draw the charts and render the `report_mail` templates (no database: do it before the
    transaction that queues the mails)."""
    from maildesk.effects.digest import language
    from maildesk.outbound.plural import plural
    from maildesk.report.mail import report_mail_parts

    parts = report_mail_parts(data, settings.domain, every=every, label=label)
    zone = ZoneInfo(data.get("timezone") or "UTC")
    rendered = composer.render("report_mail", language(composer, settings), {
        "instance": settings.instance_name, "report": parts.summary, "plural": plural,
        "now": datetime.fromisoformat(data["generated_at"]).astimezone(zone)
        if data.get("generated_at") else None})
    return PreparedReportMail(parts, rendered.subject, rendered.text)


def queue_report_mail(session: Session, settings: Settings, prepared: PreparedReportMail,
                      recipients: Sequence[str], now: datetime) -> list[int]:
    """One mail per recipient, from the support address, in the caller's transaction; the
    outbox ids."""
    from maildesk.effects.outgoing import queue_outgoing
    from maildesk.outbound.compose import new_message_id
    from maildesk.report.mail import KIND, build_report_message

    sender = settings.support_addresses[0]
    ids = []
    for to in recipients:
        message_id = new_message_id(settings.domain)
        data = build_report_message(parts=prepared.parts, text=prepared.text,
                                    subject=prepared.subject, from_name=settings.instance_name,
                                    from_address=sender, to_address=to,
                                    message_id=message_id, date=now)
        ids.append(queue_outgoing(session, settings, ticket_id=None, kind=KIND,
                                  message_id=message_id, mailbox=sender, to_address=to,
                                  data=data, now=now))
    return ids


def mail_report(ctx: Context, period: Period, recipients: Sequence[str], *,
                by: str | None = None, compare: bool = True) -> list[int]:
    """`report --mail`: the report of `period` queued now to each recipient; the outbox ids.
    BadRequest for an address that is not one."""
    from maildesk.outbound.compose import Composer

    bad = [a for a in recipients if not _ADDRESS.match(a)]
    if bad or not recipients:
        raise BadRequest(f"--mail: not a mail address: {', '.join(bad) or '(none)'}")
    data = build(ctx, period, by=by, compare=compare)
    prepared = prepare_report_mail(ctx.settings, Composer(ctx.settings.templates_dir), data)
    with ctx.make_session.begin() as session:
        return queue_report_mail(session, ctx.settings, prepared,
                                 [a.lower() for a in recipients], ctx.clock.now())


_ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+$")
