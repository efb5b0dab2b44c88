"""Digests and KPI reports by mail on their schedule (`digests:` and `reports:` in
maildesk.yaml), each once per period, however many daemons run and however often they restart.

Every timer sweep (app.TimersThread) calls `run_schedules`, which works out from the calendars
what is due *now*, and sends what is due and not yet done:

- a line's **digest** is due on each business day of the line's calendar (its SLA policy's,
  else the default policy's) from `digests.at`, local time: key `digest:<line>:<date>`;
- a **report** is due from `at` on the first business day of the calendar from the start of
  the current period (for a weekly report: from its `on` weekday), and covers the previous
  full period: `day` — the days since the previous business day (on a Monday, Friday to
  Sunday), key `report:<n>:<first day>`; `week` — the 7 days before its `on` weekday, key
  `report:<n>:<ISO year>-W<week>` of the first day; `month` — the previous calendar month, key
  `report:<n>:<YYYY-MM>`. `<n>` is the entry's position in `reports:`. When a whole week (or
  month) from the period's start holds no business day, it goes on the start day itself.

Only the current period is looked at: a daemon started at 15:00 sends today's digest (late,
but due), and never one of an earlier day it missed (no back-fill).

Once: the key is inserted into `scheduled_mail` in the transaction that queues the period's
mails. A second daemon that got as far as the insert meets the unique key (IntegrityError;
PostgreSQL makes it wait for the first one's commit), rolls back and moves on; one that starts
later finds the key and does nothing. A digest with nothing to list still records its key (with
0 mails): it is a morning mail, not sent later in the day when something turns up.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from maildesk.config import Settings
from maildesk.config.settings import Line, ReportMailing
from maildesk.db.models import ScheduledMail
from maildesk.services.context import Context
from maildesk.sla.calendar import WorkCalendar

if TYPE_CHECKING:
    from maildesk.outbound.compose import Composer

log = logging.getLogger("maildesk")

_UTC_ALWAYS = WorkCalendar("always", ZoneInfo("UTC"), always=True)


@dataclass(frozen=True)
class ReportPeriod:
    label: str          # what the key names: 2026-12-04, 2026-W49, 2026-11
    start: datetime     # local midnight of the first day
    end: datetime       # local midnight after the last day (exclusive)


@dataclass(frozen=True)
class DueMail:
    """A digest or report due now and its key."""

    key: str
    calendar: WorkCalendar
    line: Line | None = None
    report: ReportMailing | None = None
    period: ReportPeriod | None = None


# -- when things are due (pure) ------------------------------------------------------------------
def is_business_day(calendar: WorkCalendar, day: date) -> bool:
    return bool(calendar.spans_on(day))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone)


def _first_business_day(calendar: WorkCalendar, first: date, days: int) -> date:
    """The first business day of `days` days from `first`; `first` when there is none."""
    return next((first + timedelta(n) for n in range(days)
                 if is_business_day(calendar, first + timedelta(n))), first)


def digest_day(calendar: WorkCalendar, at: time, now: datetime) -> date | None:
    """Today (local) when it is a business day and `at` has passed, else None."""
    local = now.astimezone(calendar.zone)
    today = local.date()
    if not is_business_day(calendar, today):
        return None
    return today if now >= datetime.combine(today, at, calendar.zone) else None


def report_period(every: str, on: int, at: time, calendar: WorkCalendar,
                  now: datetime) -> ReportPeriod | None:
    """The period whose report is due at `now` (module docstring), or None."""
    zone = calendar.zone
    today = now.astimezone(zone).date()
    if every == "day":
        if not is_business_day(calendar, today):
            return None
        first = next((today - timedelta(n) for n in range(1, 367)
                      if is_business_day(calendar, today - timedelta(n))),
                     today - timedelta(1))
        start, end, send, label = first, today, today, first.isoformat()
    elif every == "week":
        end = today - timedelta((today.weekday() - on) % 7)
        start = end - timedelta(7)
        send = _first_business_day(calendar, end, 7)
        year, week, _ = start.isocalendar()
        label = f"{year}-W{week:02d}"
    elif every == "month":
        end = today.replace(day=1)
        start = (end - timedelta(1)).replace(day=1)
        send = _first_business_day(calendar, end, 28)
        label = start.strftime("%Y-%m")
    else:
        raise ValueError(f"unknown report period {every!r}")
    if today < send or now < datetime.combine(send, at, zone):
        return None
    return ReportPeriod(label, _midnight(start, zone), _midnight(end, zone))


def line_calendar(settings: Settings, line: Line) -> WorkCalendar:
    """The line's business calendar: its SLA policy's, else the default policy's."""
    policy = settings.sla_policies.get(line.sla_policy)
    return policy.calendar if policy else _UTC_ALWAYS


def report_calendar(settings: Settings, report: ReportMailing) -> WorkCalendar:
    if report.calendar and report.calendar in settings.calendars:
        return settings.calendars[report.calendar]
    policy = settings.sla_policies.get(None)
    return policy.calendar if policy else _UTC_ALWAYS


def due_mails(settings: Settings, now: datetime) -> list[DueMail]:
    """What is due at `now`, done or not (run_schedules skips what is done)."""
    from maildesk.effects.digest import digest_lines

    due = []
    if settings.digests.enabled:
        for line in digest_lines(settings):
            calendar = line_calendar(settings, line)
            day = digest_day(calendar, settings.digests.at, now)
            if day is not None:
                due.append(DueMail(f"digest:{line.id}:{day.isoformat()}", calendar, line=line))
    for i, report in enumerate(settings.reports):
        calendar = report_calendar(settings, report)
        period = report_period(report.every, report.on, report.at, calendar, now)
        if period is not None:
            due.append(DueMail(f"report:{i}:{period.label}", calendar, report=report,
                               period=period))
    return due


# -- sending -------------------------------------------------------------------------------------
def run_schedules(ctx: Context, settings: Settings, composer: Composer,
                  now: datetime | None = None,
                  write_turn: AbstractContextManager[Any] | None = None) -> int:
    """Send every digest and report due at `now` (default: the clock's) and not done yet;
    how many mails were queued. One that fails is logged and tried again at the next sweep.
    `write_turn`: `serve`'s on SQLite, held for each write transaction (the daemon's
    writers take turns rather than starve in SQLite's busy handler)."""
    turn = write_turn or nullcontext()
    now = now or ctx.clock.now()
    due = due_mails(settings, now)
    if not due:
        return 0
    with ctx.read_session() as session:
        done = set(session.scalars(select(ScheduledMail.key)
                                   .where(ScheduledMail.key.in_([d.key for d in due]))))
    queued = 0
    for item in due:
        if item.key in done:
            continue
        try:
            queued += (_send_digest(ctx, settings, composer, item, now, turn) if item.line
                       else _send_report(ctx, settings, composer, item, now, turn))
        except IntegrityError:
            log.info("%s: done by another process", item.key)
        except OperationalError as exc:   # locked past the lock timeout: try again
            log.warning("%s: database busy (%s); tried again at the next sweep", item.key,
                        str(exc).splitlines()[0])
        except Exception:   # a template, the database: the next sweep tries again
            log.exception("%s failed; tried again at the next sweep", item.key)
    return queued


def _send_digest(ctx: Context, settings: Settings, composer: Composer, item: DueMail,
                 now: datetime, turn: AbstractContextManager[Any]) -> int:
    from maildesk.effects.digest import queue_digest

    assert item.line is not None
    with turn, ctx.make_session() as session, session.begin():
        row = ScheduledMail(key=item.key, sent_at=now, mails=0)
        session.add(row)
        session.flush()   # a second daemon stops here (IntegrityError), before any mail
        mails = queue_digest(session, settings, composer, item.line, item.calendar, now)
        row.mails = mails
    log.info("%s: %s", item.key, f"queued to {item.line.mailbox}" if mails
             else "nothing to list, not sent")
    return mails


def _send_report(ctx: Context, settings: Settings, composer: Composer, item: DueMail,
                 now: datetime, turn: AbstractContextManager[Any]) -> int:
    from maildesk.report.kpi import build_report
    from maildesk.services.reports import prepare_report_mail, queue_report_mail

    report, period = item.report, item.period
    assert report is not None and period is not None
    # Built before the write transaction (a report reads for a while; SQLite's write lock is
    # wanted by intake meanwhile). Two daemons may both build it; one queues it.
    with ctx.read_session() as session:
        data = build_report(session, settings, since=period.start, until=period.end,
                            by=report.by, now=now)
    prepared = prepare_report_mail(settings, composer, data, every=report.every,
                                   label=period.label)
    with turn, ctx.make_session() as session, session.begin():
        session.add(ScheduledMail(key=item.key, sent_at=now, mails=len(report.to)))
        session.flush()
        queue_report_mail(session, settings, prepared, report.to, now)
    log.info("%s: queued to %s", item.key, ", ".join(report.to))
    return len(report.to)
