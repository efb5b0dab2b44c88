"""The KPIs of `maildesk report`, aggregated in the database.

Every figure is a SUM/COUNT over plain columns that the effects write when things happen
(effects/metrics.py): a few aggregate queries over the period's tickets, whatever their
number, never a ticket loaded into Python. The README defines each KPI; in short:

- the period's tickets are those *created* in [since, until); their figures are read as they
  stand now (a ticket created in the period and resolved after it counts as resolved);
- answers (mean response time) are those *given* in the period;
- overdue and backlog are snapshots at `now`, over every ticket open now;
- every duration twice: business (the ticket's SLA clock: business time of its policy's
  calendar, pending time left out) and calendar (wall-clock) seconds.

The result is a JSON-ready dict, the stable format documented in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, and_, case, cast, func, literal, literal_column, null, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from maildesk.config.model import Settings
from maildesk.db.models import Ticket, TicketResponse, TicketStatus

FORMAT_VERSION = 1
GROUPINGS = ("line", "agent", "category", "priority")
NONE_KEY = "(none)"
_K = literal_column("k")
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
    dialect = session.get_bind().dialect.name
    key = _ticket_key(by)

    step("tickets")
    cohort = and_(Ticket.created_at >= since, Ticket.created_at < until)
    day = _local_day(Ticket.created_at, zone, since, until, dialect)
    # Grouped by the output names: the same expression twice would carry its bound values
    # twice, and PostgreSQL cannot tell they are equal.
    rows = session.execute(select(key.label("k"), day.label("d"), *_ticket_sums())
                           .where(cohort).group_by(_K, literal_column("d"))).all()
    step("medians")
    medians = _medians(session, key if by else None, cohort, dialect)
    step("answers")
    answers = _answers(session, by, since, until)
    step("backlog")
    snapshot = session.execute(
        select(key.label("k"), _age_bucket(now).label("b"),
               func.count().label("backlog"),
               func.sum(case((_overdue(now), 1), else_=0)).label("overdue"))
        .where(Ticket.status.in_(OPEN)).group_by(_K, literal_column("b"))).all()

    groups: dict[str, _Sums] = {}
    total = _Sums()
    daily: dict[int, list[int]] = {}
    for row in rows:
        sums = row._mapping
        total.add(sums)
        groups.setdefault(_k(row.k), _Sums()).add(sums)
        d = daily.setdefault(int(row.d), [0, 0, 0])
        d[0] += sums["tickets"]
        d[1] += sums["resolved"] or 0
        d[2] += sums["breached"] or 0
    backlog_ages = [0] * len(AGE_BUCKETS)
    for row in snapshot:
        for sums in (total, groups.setdefault(_k(row.k), _Sums())):
            sums.backlog += row.backlog
            sums.overdue += row.overdue or 0
        backlog_ages[int(row.b)] += row.backlog
    for k, (count, business, calendar) in answers.items():
        for sums in ((total,) if k is None else (groups.setdefault(_k(k), _Sums()),)):
            sums.answers, sums.answer_bs, sums.answer_s = count, business, calendar

    return {
        "format": "maildesk-report", "version": FORMAT_VERSION,
        "generated_at": now.astimezone(zone).isoformat(timespec="seconds"),
        "period": {"since": since.astimezone(zone).isoformat(timespec="seconds"),
                   "until": until.astimezone(zone).isoformat(timespec="seconds")},
        "timezone": zone.key,
        "by": by,
        "totals": total.kpi(medians.get(None, (None, None))),
        "groups": ([{"key": k, "label": _label(settings, by, k),
                     "kpi": sums.kpi(medians.get(k, (None, None)))}
                    for k, sums in _ordered(settings, by, groups)] if by else []),
        "daily": _daily(daily, since, until, zone),
        "first_response_distribution": [
            {"label": label, "upper_s": upper, "business": b, "calendar": c}
            for (upper, label), b, c in zip(RESPONSE_BUCKETS, total.histogram("bs"),
                                            total.histogram("s"))],
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
    return func.sum(case((condition, 1), else_=0))


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
        func.sum(case((done, Ticket.handling_s), else_=null())).label("h_sum_s"),
        _flag(and_(done, Ticket.handling_bs.is_not(None))).label("h_n_bs"),
        func.sum(case((done, Ticket.handling_bs), else_=null())).label("h_sum_bs"),
        _flag(Ticket.breached_at.is_not(None)).label("breached"),
        _flag(Ticket.handling_s.is_not(None)).label("ever_resolved"),
        _flag(and_(Ticket.handling_s.is_not(None), Ticket.reopen_count > 0)).label("reopened"),
        func.count(Ticket.rating).label("ratings"),
        func.sum(Ticket.rating).label("rating_sum"),
    ]
    cols += [_flag(Ticket.rating == score).label(f"r{score}") for score in range(1, 6)]
    for suffix, column in (("s", Ticket.first_response_s), ("bs", Ticket.first_response_bs)):
        cols += [_flag(column < upper).label(f"fr_lt{i}_{suffix}")
                 for i, (upper, _) in enumerate(RESPONSE_BUCKETS) if upper is not None]
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


def _epoch(column: ColumnElement[datetime], dialect: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), Integer)
    return cast(func.strftime("%s", column), Integer)


def _local_day(column: ColumnElement[datetime], zone: ZoneInfo, since: datetime,
               until: datetime, dialect: str) -> ColumnElement[int]:
    """Days since 1970-01-01 in `zone`: the UTC offsets in force over the period (the DST
    changes found in Python) as a CASE, so both backends count local days alike."""
    changes = utc_offsets(zone, since, until)
    offset: ColumnElement[int]
    if len(changes) == 1:
        offset = literal(changes[0][1])
    else:
        offset = case(*[(column < at, off) for (_, off), (at, _) in zip(changes, changes[1:])],
                      else_=changes[-1][1])
    return (_epoch(column, dialect) + offset) // 86400


def utc_offsets(zone: ZoneInfo, since: datetime, until: datetime) -> list[tuple[datetime, int]]:
    """[(from, offset seconds)] for the zone over [since, until): the first from `since`, then
    one per change (found hour by hour, then to the second)."""
    def off(at: datetime) -> int:
        return int(at.astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]

    since, until = since.astimezone(timezone.utc), until.astimezone(timezone.utc)
    out = [(since, off(since))]
    at = since
    while at < until:
        step = min(at + timedelta(hours=1), until)
        if off(step) != out[-1][1]:
            lo, hi = at, step          # the change lies in (lo, hi]
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if off(mid) == out[-1][1] else (lo, mid)
            out.append((hi.replace(microsecond=0), off(step)))
        at = step
    return out


def _medians(session: Session, key: ColumnElement[Any] | None, cohort: ColumnElement[bool],
             dialect: str) -> dict[str | None, tuple[float | None, float | None]]:
    """Median first response (business, calendar) per group and (key None) over all."""
    out: dict[str | None, list[float | None]] = {}
    for i, column in enumerate((Ticket.first_response_bs, Ticket.first_response_s)):
        for grouped in (False, True) if key is not None else (False,):
            for k, value in _median(session, key if grouped else None, column, cohort, dialect):
                out.setdefault(_k(k) if grouped else None, [None, None])[i] = value
    return {k: (v[0], v[1]) for k, v in out.items()}


def _median(session: Session, key: ColumnElement[Any] | None, column: ColumnElement[int],
            cohort: ColumnElement[bool], dialect: str) -> Iterable[tuple[Any, float]]:
    k = key if key is not None else literal(NONE_KEY)
    where = and_(cohort, column.is_not(None))
    if dialect == "postgresql":
        q = (select(k.label("k"), func.percentile_cont(0.5).within_group(column))
             .where(where).group_by(_K))
        return [(row[0], float(row[1])) for row in session.execute(q)]
    # SQLite: the middle row(s) of each group by ROW_NUMBER.
    inner = select(k.label("k"), column.label("v")).where(where).subquery()
    ranked = select(inner.c.k, inner.c.v,
                    func.row_number().over(partition_by=inner.c.k, order_by=inner.c.v)
                    .label("rn"),
                    func.count().over(partition_by=inner.c.k).label("n")).subquery()
    q = (select(ranked.c.k, func.avg(ranked.c.v))
         .where(ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2]))
         .group_by(ranked.c.k))
    return [(row[0], float(row[1])) for row in session.execute(q)]


def _answers(session: Session, by: str | None, since: datetime,
             until: datetime) -> dict[str | None, tuple[int, int, int]]:
    """Answers given in the period: count and summed waits (business, calendar) per group
    (the answering agent, the line the ticket was on, the ticket's category or priority) and
    over all (key None)."""
    r = TicketResponse
    in_period = and_(r.at >= since, r.at < until)
    sums = (func.count().label("n"), func.sum(r.waited_bs), func.sum(r.waited_s))
    out: dict[str | None, tuple[int, int, int]] = {}
    row = session.execute(select(*sums).where(in_period)).one()
    out[None] = (row[0], row[1] or 0, row[2] or 0)
    if by is None:
        return out
    if by in ("agent", "line"):
        key: ColumnElement[Any] = r.agent if by == "agent" else r.line
        q = select(key, *sums).where(in_period).group_by(key)
    else:
        key = Ticket.category if by == "category" else Ticket.priority
        q = (select(key, *sums).join(Ticket, Ticket.id == r.ticket_id).where(in_period)
             .group_by(key))
    for k, n, business, calendar in session.execute(q):
        out[_k(k)] = (n, business or 0, calendar or 0)
    return out


# -- folding rows into figures --------------------------------------------------------------------
@dataclass
class _Sums:
    tickets: int = 0
    backlog: int = 0
    overdue: int = 0
    answers: int = 0
    answer_bs: int = 0
    answer_s: int = 0

    def __post_init__(self) -> None:
        self.c: dict[str, int] = {}

    def add(self, row: Mapping[str, Any]) -> None:
        for name, value in row.items():
            if name not in ("k", "d"):
                self.c[name] = self.c.get(name, 0) + (value or 0)
        self.tickets = self.c.get("tickets", 0)

    def histogram(self, suffix: str) -> list[int]:
        below = [self.c.get(f"fr_lt{i}_{suffix}", 0) for i in range(len(RESPONSE_BUCKETS) - 1)]
        below.append(self.c.get(f"fr_n_{suffix}", 0))
        return [b - a for a, b in zip([0, *below], below)]

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
            "response": {"count": self.answers,
                         "mean_business_s": _mean(self.answer_bs, self.answers),
                         "mean_calendar_s": _mean(self.answer_s, self.answers)},
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


def _daily(days: dict[int, list[int]], since: datetime, until: datetime,
           zone: ZoneInfo) -> list[dict[str, Any]]:
    """Every local day of the period, days without tickets included."""
    epoch = date(1970, 1, 1)
    first = since.astimezone(zone).date()
    last = (until - timedelta(microseconds=1)).astimezone(zone).date()
    out = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        created, resolved, breached = days.get((day - epoch).days, (0, 0, 0))
        out.append({"date": day.isoformat(), "created": created, "resolved": resolved,
                    "breached": breached})
    return out


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

