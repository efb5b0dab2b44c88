"""The KPIs of `maildesk report`, aggregated in the database.

Every figure is a SUM/COUNT over plain columns that the effects write when things happen
(effects/metrics.py): a few aggregate queries over the period's tickets, whatever their
number, never a ticket loaded into Python. The README defines each KPI; in short:

- the period's tickets are those *created* in [since, until); their figures are read as they
  stand now (a ticket created in the period and resolved after it counts as resolved), the
  answers they got included;
- overdue and backlog are snapshots at `now`, over every ticket open now;
- every duration twice: business (the ticket's SLA clock: business time of its policy's
  calendar, pending time left out) and calendar (wall-clock) seconds.

The passes, for SQLite's sake (each GROUP BY there is a sort of its rows): one over the
tickets grouped by group and minute of business-time first response (all sums, the
distribution, where the medians lie), one for the minutes of calendar time, index lookups of
the few values in each median's minute, and per-day counts from ix_ticket_created_at alone.

The result is a JSON-ready dict, the stable format documented in the README.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (Integer, Select, and_, case, column, func, literal, literal_column, or_,
                        select, text, values)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from maildesk.config.model import Settings
from maildesk.db.models import Ticket, TicketStatus, UTCDateTime

FORMAT_VERSION = 1
GROUPINGS = ("line", "agent", "category", "priority")
NONE_KEY = "(none)"
_K, _M = literal_column("k"), literal_column("m")
DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)
OPEN = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING)
RUNNING = (TicketStatus.NEW, TicketStatus.OPEN)
# First-response distribution: upper bounds in seconds (the last bucket is open-ended).
RESPONSE_BUCKETS = ((900, "< 15 min"), (3600, "15 min – 1 h"), (4 * 3600, "1 – 4 h"),
                    (8 * 3600, "4 – 8 h"), (86400, "8 h – 1 d"), (3 * 86400, "1 – 3 d"),
                    (None, "> 3 d"))
AGE_BUCKETS = ((86400, "< 1 d"), (3 * 86400, "1 – 3 d"), (7 * 86400, "3 – 7 d"),
               (30 * 86400, "7 – 30 d"), (None, "> 30 d"))

Progress = Callable[[str], None]


def build_report(session: Session, settings: Settings, *, since: datetime, until: datetime,
                 by: str | None, now: datetime, progress: Progress | None = None) -> dict[str, Any]:
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}: one of {', '.join(GROUPINGS)}")
    zone = report_zone(settings)
    step = progress or (lambda name: None)
    key = _ticket_key(by)
    cohort = and_(Ticket.created_at >= since, Ticket.created_at < until)
    scan = _scan_hint(session, since, until)
    if session.get_bind().dialect.name == "postgresql":
        # For this transaction only: hash the groups in memory instead of sorting them on disk
        # (the default 4 MB is too small for a year of tickets), and no JIT compilation
        # (a few hundred milliseconds per query here, more than it wins).
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))

    # 1. Every sum, per group and minute of business-time first response: one pass, and the
    # minutes give the distribution and where each group's median lies.
    step("tickets")
    minute = Ticket.first_response_bs // 60
    rows = session.execute(scan(select(key.label("k"), minute.label("m"), *_ticket_sums())
                                .where(cohort).group_by(_K, _M))).all()
    groups: dict[str, _Sums] = {}
    total = _Sums()
    hist: dict[str, dict[str | None, Counter[int]]] = {"bs": {}, "s": {}}
    for row in rows:
        sums = row._mapping
        total.add(sums)
        groups.setdefault(_k(row.k), _Sums()).add(sums)
        if row.m is not None:
            n = sums["fr_n_bs"]
            hist["bs"].setdefault(_k(row.k), Counter())[int(row.m)] += n
            hist["bs"].setdefault(None, Counter())[int(row.m)] += n
    # 2. The same minutes in calendar time.
    step("medians")
    minute = Ticket.first_response_s // 60
    for k, m, n in session.execute(scan(
            select(key.label("k"), minute.label("m"), func.count())
            .where(cohort, Ticket.first_response_s.is_not(None)).group_by(_K, _M))):
        hist["s"].setdefault(_k(k), Counter())[int(m)] += n
        hist["s"].setdefault(None, Counter())[int(m)] += n
    # 3. The exact medians: the few values of the minute each middle rank falls in.
    medians = {name: {g: _median(session, name, key if g is not None else None, g, h, cohort)
                      for g, h in per.items() if by or g is None} for name, per in hist.items()}
    # 4. Tickets per local day, from the index alone.
    step("days")
    daily = _days(session, since, until, zone)
    # 5. What is open now.
    step("backlog")
    snapshot = session.execute(
        select(key.label("k"), _age_bucket(now).label("b"),
               func.count().label("backlog"),
               _flag(_overdue(now)).label("overdue"))
        .where(Ticket.status.in_(OPEN)).group_by(_K, literal_column("b"))).all()
    backlog_ages = [0] * len(AGE_BUCKETS)
    for row in snapshot:
        for sums in (total, groups.setdefault(_k(row.k), _Sums())):
            sums.backlog += row.backlog
            sums.overdue += row.overdue or 0
        backlog_ages[int(row.b)] += row.backlog

    def kpi(sums: _Sums, group: str | None) -> dict[str, Any]:
        return sums.kpi((medians["bs"].get(group), medians["s"].get(group)))

    return {
        "format": "maildesk-report", "version": FORMAT_VERSION,
        "generated_at": now.astimezone(zone).isoformat(timespec="seconds"),
        "period": {"since": since.astimezone(zone).isoformat(timespec="seconds"),
                   "until": until.astimezone(zone).isoformat(timespec="seconds")},
        "timezone": zone.key,
        "by": by,
        "totals": kpi(total, None),
        "groups": ([{"key": k, "label": _label(settings, by, k), "kpi": kpi(sums, k)}
                    for k, sums in _ordered(settings, by, groups)] if by else []),
        "daily": daily,
        "first_response_distribution": [
            {"label": label, "upper_s": upper, "business": b, "calendar": c}
            for (upper, label), b, c in zip(RESPONSE_BUCKETS,
                                            _distribution(hist["bs"].get(None, Counter())),
                                            _distribution(hist["s"].get(None, Counter())))],
        "backlog_by_age": [{"label": label, "upper_s": upper, "count": n}
                           for (upper, label), n in zip(AGE_BUCKETS, backlog_ages)],
    }


def report_zone(settings: Settings) -> ZoneInfo:
    """Days and times of the report: the zone of the default SLA calendar (UTC without one)."""
    return settings.sla_policies.zone(None)


# -- SQL pieces ---------------------------------------------------------------------------------
def _ticket_key(by: str | None) -> ColumnElement[Any]:
    if by is None:
        return literal(NONE_KEY)
    if by == "agent":
        # Whose ticket it is: the assignee, else who resolved it, else who answered first.
        return func.coalesce(Ticket.assignee, Ticket.resolved_by, Ticket.first_response_by)
    return {"line": Ticket.line, "category": Ticket.category, "priority": Ticket.priority}[by]


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    # COUNT(*) FILTER: cheaper than SUM(CASE ...) on PostgreSQL, and SQLite has it too.
    return func.count().filter(condition)


def _ticket_sums() -> list[ColumnElement[Any]]:
    done = Ticket.status.in_(DONE)
    cols: list[ColumnElement[Any]] = [
        func.count().label("tickets"),
        _flag(done).label("resolved"),
        _flag(and_(done, Ticket.escalation_count == 0, Ticket.reopen_count == 0)).label("fcr"),
        func.count(Ticket.first_response_s).label("fr_n_s"),
        func.sum(Ticket.first_response_s).label("fr_sum_s"),
        func.count(Ticket.first_response_bs).label("fr_n_bs"),
        func.sum(Ticket.first_response_bs).label("fr_sum_bs"),
        _flag(and_(done, Ticket.handling_s.is_not(None))).label("h_n_s"),
        func.sum(Ticket.handling_s).filter(done).label("h_sum_s"),
        _flag(and_(done, Ticket.handling_bs.is_not(None))).label("h_n_bs"),
        func.sum(Ticket.handling_bs).filter(done).label("h_sum_bs"),
        _flag(Ticket.breached_at.is_not(None)).label("breached"),
        _flag(Ticket.handling_s.is_not(None)).label("ever_resolved"),
        _flag(and_(Ticket.handling_s.is_not(None), Ticket.reopen_count > 0)).label("reopened"),
        func.count(Ticket.rating).label("ratings"),
        func.sum(Ticket.rating).label("rating_sum"),
    ]
    cols += [_flag(Ticket.rating == score).label(f"r{score}") for score in range(1, 6)]
    cols += [func.sum(Ticket.response_count).label("answers"),
             func.sum(Ticket.response_bs).label("answer_bs"),
             func.sum(Ticket.response_s).label("answer_s")]
    return cols


def _overdue(now: datetime) -> ColumnElement[bool]:
    """Running (not pending: its clock stands still) and past a deadline it has not met."""
    return and_(Ticket.status.in_(RUNNING), or_(
        and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at < now),
        Ticket.resolution_due_at < now, Ticket.next_response_due_at < now))


def _age_bucket(now: datetime) -> ColumnElement[int]:
    whens = [(Ticket.created_at > now - timedelta(seconds=upper), i)
             for i, (upper, _) in enumerate(AGE_BUCKETS) if upper is not None]
    return case(*whens, else_=len(AGE_BUCKETS) - 1)


def _scan_hint(session: Session, since: datetime,
               until: datetime) -> Callable[[Select[Any]], Select[Any]]:
    """SQLite without statistics reads a period through the created_at index even when the
    period is nearly every ticket, which is slower than reading the table: when the period
    covers most of the tickets' time span, the table is read instead."""
    if session.get_bind().dialect.name != "sqlite":
        return lambda q: q
    first = session.scalar(select(func.min(Ticket.created_at)))
    last = session.scalar(select(func.max(Ticket.created_at)))
    if first is None or last is None or last <= first:
        return lambda q: q
    covered = min(until, last) - max(since, first)
    if covered / (last - first) < 0.4:
        return lambda q: q
    return lambda q: q.with_hint(Ticket, "NOT INDEXED", "sqlite")


def _median(session: Session, name: str, key: ColumnElement[Any] | None, group: str | None,
            minutes: Counter[int], cohort: ColumnElement[bool]) -> float | None:
    """The exact median of the first responses counted in `minutes` (per minute of the
    measure): the middle rank(s) located in the counts, then the values of just those
    minutes read through the measure's index."""
    n = sum(minutes.values())
    if not n:
        return None
    column = Ticket.first_response_bs if name == "bs" else Ticket.first_response_s
    index = "ix_ticket_first_response_bs" if name == "bs" else "ix_ticket_first_response_s"
    wanted = sorted({(n - 1) // 2, n // 2})
    found: list[float] = []
    seen, ranks = 0, iter(wanted)
    rank = next(ranks)
    for m in sorted(minutes):
        count = minutes[m]
        if rank < seen + count:
            q = (select(column).where(cohort, column >= m * 60, column < (m + 1) * 60)
                 .order_by(column).with_hint(Ticket, f"INDEXED BY {index}", "sqlite"))
            if key is not None:
                q = q.where(_is_group(key, group))
            values = list(session.scalars(q))
            while rank is not None and rank < seen + count:
                found.append(values[rank - seen])
                rank = next(ranks, None)
            if rank is None:
                break
        seen += count
    return sum(found) / len(found)


def _is_group(key: ColumnElement[Any], group: str | None) -> ColumnElement[bool]:
    if group == NONE_KEY:
        return or_(key.is_(None), key == "")
    return key == group


def _distribution(minutes: Counter[int]) -> list[int]:
    """Counts per RESPONSE_BUCKETS bucket (their bounds are whole minutes)."""
    out = [0] * len(RESPONSE_BUCKETS)
    bounds = [upper // 60 for upper, _ in RESPONSE_BUCKETS if upper is not None]
    for m, count in minutes.items():
        out[bisect_right(bounds, m)] += count
    return out


def _days(session: Session, since: datetime, until: datetime,
          zone: ZoneInfo) -> list[dict[str, Any]]:
    """Every local day of the period (days without tickets included): tickets created,
    resolved of them, breached of them; each day an index range (ix_ticket_created_at
    holds the three columns), whatever the time zone's changes."""
    days = local_days(since, until, zone)
    if not days:
        return []
    bounds = values(column("i", Integer), column("a", UTCDateTime()),
                    column("b", UTCDateTime()), name="days").data(
        [(i, a, b) for i, (_, a, b) in enumerate(days)]).cte("days")
    in_day = and_(Ticket.created_at >= bounds.c.a, Ticket.created_at < bounds.c.b)

    def count(*where: ColumnElement[bool]) -> Any:
        # SQLite would take the status index for the status test: all closed tickets per day.
        return (select(func.count()).where(in_day, *where)
                .with_hint(Ticket, "INDEXED BY ix_ticket_created_at", "sqlite")
                .scalar_subquery())
    q = select(bounds.c.i, count(), count(Ticket.status.in_(DONE)),
               count(Ticket.breached_at.is_not(None)))
    figures = {i: (c, r, b) for i, c, r, b in session.execute(q)}
    return [{"date": day.isoformat(), "created": figures[i][0], "resolved": figures[i][1],
             "breached": figures[i][2]} for i, (day, _, _) in enumerate(days)]


def local_days(since: datetime, until: datetime,
               zone: ZoneInfo) -> list[tuple[date, datetime, datetime]]:
    """(local date, start, end) of each day of [since, until) in `zone`, in UTC; the first and
    last cut to the period."""
    out = []
    day = since.astimezone(zone).date()
    while True:
        start = max(datetime.combine(day, time(0), zone).astimezone(timezone.utc), since)
        end = min(datetime.combine(day + timedelta(days=1), time(0), zone)
                  .astimezone(timezone.utc), until)
        if start >= until:
            return out
        out.append((day, start, end))
        day += timedelta(days=1)


# -- folding rows into figures --------------------------------------------------------------------
@dataclass
class _Sums:
    tickets: int = 0
    backlog: int = 0
    overdue: int = 0

    def __post_init__(self) -> None:
        self.c: dict[str, int] = {}

    def add(self, row: Mapping[str, Any]) -> None:
        for name, value in row.items():
            if name not in ("k", "m"):
                self.c[name] = self.c.get(name, 0) + int(value or 0)   # PostgreSQL: Decimal
        self.tickets = self.c.get("tickets", 0)

    def kpi(self, medians: tuple[float | None, float | None]) -> dict[str, Any]:
        c = self.c.get
        resolved, ever = c("resolved", 0), c("ever_resolved", 0)
        ratings = c("ratings", 0)
        return {
            "tickets": self.tickets,
            "resolved": resolved, "resolved_share": _share(resolved, self.tickets),
            "first_contact_resolved": c("fcr", 0),
            "first_contact_resolution_rate": _share(c("fcr", 0), resolved),
            "first_response": {
                "count": c("fr_n_s", 0),
                "mean_business_s": _mean(c("fr_sum_bs", 0), c("fr_n_bs", 0)),
                "median_business_s": _round(medians[0]),
                "mean_calendar_s": _mean(c("fr_sum_s", 0), c("fr_n_s", 0)),
                "median_calendar_s": _round(medians[1])},
            "response": {"count": c("answers", 0),
                         "mean_business_s": _mean(c("answer_bs", 0), c("answers", 0)),
                         "mean_calendar_s": _mean(c("answer_s", 0), c("answers", 0))},
            "handling": {"count": c("h_n_s", 0),
                         "mean_business_s": _mean(c("h_sum_bs", 0), c("h_n_bs", 0)),
                         "mean_calendar_s": _mean(c("h_sum_s", 0), c("h_n_s", 0))},
            "breached": c("breached", 0), "breached_share": _share(c("breached", 0), self.tickets),
            "overdue_now": self.overdue, "backlog_now": self.backlog,
            "reopened": c("reopened", 0), "reopen_rate": _share(c("reopened", 0), ever),
            "csat": {"resolved": resolved, "ratings": ratings,
                     "response_rate": _share(ratings, resolved),
                     "mean": _mean(c("rating_sum", 0), ratings, 2),
                     "satisfied_share": _share(c("r4", 0) + c("r5", 0), ratings),
                     "distribution": {str(s): c(f"r{s}", 0) for s in range(1, 6)}},
        }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(total: int, count: int, digits: int = 1) -> float | None:
    return round(total / count, digits) if count else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _k(value: Any) -> str:
    return NONE_KEY if value is None or value == "" else str(value)


def _label(settings: Settings, by: str | None, key: str) -> str:
    if by == "line":
        line = settings.line(key)
        return line.name if line else key
    if by == "agent":
        found = settings.agent(key) if key != NONE_KEY else None
        return f"{found[1].name} <{key}>" if found and found[1].name else key
    return key


def _ordered(settings: Settings, by: str | None,
             groups: dict[str, _Sums]) -> list[tuple[str, _Sums]]:
    """Lines in the order of lines.yaml, then any other; else the busiest first."""
    if by == "line":
        order = {line.id: i for i, line in enumerate(settings.lines)}
        return sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    return sorted(groups.items(), key=lambda kv: (-kv[1].tickets, kv[0]))

