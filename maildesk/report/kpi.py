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

The work, for SQLite's sake (each GROUP BY there is a sort of its rows, each aggregate a cost
per row): ONE pass over the period's tickets grouped by the report's grouping alone (on
PostgreSQL also by resolved-or-not, see _ticket_sums), with every sum and each group's first
responses counted per bucket of the distribution; each median then read from the one bucket
its rank falls in, a short ordered range of a covering index (ix_ticket_first_response_bs/_s)
walked from the bucket's nearer end; the per-day counts from ix_ticket_created_at alone, one
range per day.

With `compare` (the default) the same pass and medians run once more over the period of the
same length just before [since, until): `previous` holds its KPIs (totals and groups; the
snapshots of now, overdue and backlog, are not a period's and are null there) and `changes`
each figure's change, current - previous (report/display.py says in what unit and how
rounded).

The SLA-met shares come from the same pass: per deadline kind (first response, resolution),
the tickets with that deadline whose outcome is known (met: done at or before the deadline;
late: done after it; overdue: not done, running, past it now), counted by comparisons of the
ticket's own columns.

The knowledge-base figures (per article, the whole period only) are report/kb.py's.

The result is a JSON-ready dict, the stable format documented in the README.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (Integer, Select, and_, bindparam, case, column, func, literal,
                        literal_column, or_, select, text, values)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from maildesk.config.model import Settings
from maildesk.db.conditions import RUNNING, overdue
from maildesk.db.models import Ticket, TicketStatus, UTCDateTime
from maildesk.report.display import kpi_change, round_half_up
from maildesk.report.kb import kb_figures

FORMAT_VERSION = 1
GROUPINGS = ("line", "agent", "category", "priority")
NONE_KEY = "(none)"
_K = literal_column("k")
DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)
OPEN = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING)
# First-response distribution: upper bounds in seconds (the last bucket is open-ended).
RESPONSE_BUCKETS = ((900, "< 15 min"), (3600, "15 min – 1 h"), (4 * 3600, "1 – 4 h"),
                    (8 * 3600, "4 – 8 h"), (86400, "8 h – 1 d"), (3 * 86400, "1 – 3 d"),
                    (None, "> 3 d"))
# The bounds between those buckets: each group's first responses are counted per bucket, and
# its median is read from the bucket its middle rank falls in.
BOUNDS = tuple(upper for upper, _ in RESPONSE_BUCKETS if upper is not None)
MEASURES = {"bs": (Ticket.first_response_bs, "ix_ticket_first_response_bs"),
            "s": (Ticket.first_response_s, "ix_ticket_first_response_s")}
AGE_BUCKETS = ((86400, "< 1 d"), (3 * 86400, "1 – 3 d"), (7 * 86400, "3 – 7 d"),
               (30 * 86400, "7 – 30 d"), (None, "> 30 d"))

Progress = Callable[[str], None]


def build_report(session: Session, settings: Settings, *, since: datetime, until: datetime,
                 by: str | None, now: datetime, progress: Progress | None = None,
                 compare: bool = True) -> dict[str, Any]:
    """The report's data (README: "KPI report"); with `compare`, also the KPIs of the period
    of the same length just before, and each figure's change (`previous`, `changes`)."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}: one of {', '.join(GROUPINGS)}")
    zone = report_zone(settings)
    step = progress or (lambda name: None)
    key = _ticket_key(by)
    span = _ticket_span(session)
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        _tune_postgresql(session)

    # 1.-2. Every sum and the first responses per bucket, per group: one pass; then the exact
    # medians, each read in the one bucket its middle rank falls in.
    total, groups, medians = _period(session, key, by, since, until, now, span, postgresql,
                                     step)
    # 2b. The same over the period just before, for the comparison.
    before = since - (until - since)
    if compare:
        step("previous period")
        p_total, p_groups, p_medians = _period(session, key, by, before, since, now, span,
                                               postgresql, lambda name: None)
    # 3. Tickets per local day, from the index alone.
    step("days")
    daily = _days(session, since, until, zone)
    # 4. What is open now.
    step("backlog")
    backlog_ages = _fold_backlog(session, key, now, total, groups)
    # 5. The knowledge base: articles suggested, inserted, solved (the whole period only).
    step("knowledge base")
    knowledge_base = kb_figures(session, since=since, until=until, now=now,
                                titles=_kb_titles(settings))

    def kpi(sums: _Sums, group: str | None, medians: _Medians = medians,
            snapshots: bool = True) -> dict[str, Any]:
        return sums.kpi((medians["bs"].get(group), medians["s"].get(group)), snapshots)

    def stamp(when: datetime) -> str:
        return when.astimezone(zone).isoformat(timespec="seconds")

    ordered = _ordered(settings, by, groups) if by else []
    report = {
        "format": "maildesk-report", "version": FORMAT_VERSION,
        "generated_at": stamp(now),
        "period": {"since": stamp(since), "until": stamp(until)},
        "timezone": zone.key,
        "by": by,
        "totals": kpi(total, None),
        "groups": [{"key": k, "label": _label(settings, by, k), "kpi": kpi(sums, k)}
                   for k, sums in ordered],
        "daily": daily,
        "first_response_distribution": _distribution(total),
        "backlog_by_age": [{"label": label, "upper_s": upper, "count": n}
                           for (upper, label), n in zip(AGE_BUCKETS, backlog_ages)],
        "knowledge_base": knowledge_base,
        "previous": None,
        "changes": None,
    }
    if compare:
        # The previous period's groups: those of this report in its order (zeros where the
        # group had no ticket then), then any group that had tickets then only.
        p_keys = [k for k, _ in ordered] + [k for k, _ in _ordered(settings, by, p_groups)
                                            if k not in groups] if by else []
        report["previous"] = {
            "period": {"since": stamp(before), "until": stamp(since)},
            "totals": kpi(p_total, None, p_medians, snapshots=False),
            "groups": [{"key": k, "label": _label(settings, by, k),
                        "kpi": kpi(p_groups.get(k, _Sums()), k, p_medians, snapshots=False)}
                       for k in p_keys]}
        report["changes"] = {
            "totals": kpi_change(report["totals"], report["previous"]["totals"]),
            "groups": [{"key": g["key"], "label": g["label"],
                        "change": kpi_change(g["kpi"], p["kpi"])}
                       for g, p in zip(report["groups"], report["previous"]["groups"])]}
    return report


_Medians = dict[str, dict[str | None, float | None]]


def _period(session: Session, key: ColumnElement[Any], by: str | None, since: datetime,
            until: datetime, now: datetime, span: tuple[datetime, datetime] | None,
            postgresql: bool, step: Progress) -> tuple[_Sums, dict[str, _Sums], _Medians]:
    """One period's sums (the one pass) and exact medians, over all its tickets and per
    group."""
    cohort = and_(Ticket.created_at >= since, Ticket.created_at < until)
    scan = _scan_hint(session, since, until, span)
    step("tickets")
    total, groups = _fold_tickets(session, scan(_sums_query(key, by, cohort, postgresql, now)))
    step("medians")
    medians = _medians(session, key, cohort, total, groups if by else {})
    return total, groups, medians


def _kb_titles(settings: Settings) -> dict[str, str]:
    """Each article's title by slug, in the default language when it has that version."""
    kb = settings.kb
    return {slug: article.title for slug in kb.slugs()
            if (article := kb.get(slug, settings.language)) is not None}


def _tune_postgresql(session: Session) -> None:
    """For this transaction only: hash the groups in memory instead of sorting them on disk
    (the default 4 MB is too small for a year of tickets), and no JIT compilation (a few
    hundred milliseconds per query here, more than it wins)."""
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    session.execute(text("SET LOCAL jit = off"))


def _sums_query(key: ColumnElement[Any], by: str | None, cohort: ColumnElement[bool],
                postgresql: bool, now: datetime) -> Select[Any]:
    """The one pass over the period's tickets: grouped by the report's grouping (and, on
    PostgreSQL, by resolved-or-not: see _ticket_sums)."""
    cols = [key.label("k")]
    group = [_K] if by is not None else []
    if postgresql:
        cols.append(Ticket.status.in_(DONE).label("done"))
        group.append(literal_column("done"))
    q = select(*cols, *_ticket_sums(done_is_key=postgresql, now=now)).where(cohort)
    return q.group_by(*group) if group else q


def _fold_tickets(session: Session, query: Select[Any]) -> tuple[_Sums, dict[str, _Sums]]:
    """The pass's rows added up: over all tickets, and per group."""
    groups: dict[str, _Sums] = {}
    total = _Sums()
    for row in session.execute(query):
        sums = dict(row._mapping)
        if sums.pop("done", True) is False:
            sums.update(dict.fromkeys(DONE_ONLY, 0))
        total.add(sums)
        groups.setdefault(_k(row.k), _Sums()).add(sums)
    return total, groups


def _medians(session: Session, key: ColumnElement[Any], cohort: ColumnElement[bool],
             total: _Sums, groups: dict[str, _Sums]) -> dict[str, dict[str | None, float | None]]:
    """Per measure: the median of all tickets (under None) and of each of `groups`."""
    return {name: {g: _median(session, name, key if g is not None else None, g,
                              sums.buckets(name), cohort)
                   for g, sums in [(None, total), *groups.items()]}
            for name in MEASURES}


def _fold_backlog(session: Session, key: ColumnElement[Any], now: datetime, total: _Sums,
                  groups: dict[str, _Sums]) -> list[int]:
    """Adds the tickets open now (and overdue of them) to the totals and groups; returns
    their count per AGE_BUCKETS bucket."""
    snapshot = session.execute(
        select(key.label("k"), _age_bucket(now).label("b"),
               func.count().label("backlog"),
               _flag(overdue(now)).label("overdue"))
        .where(Ticket.status.in_(OPEN)).group_by(_K, literal_column("b"))).all()
    backlog_ages = [0] * len(AGE_BUCKETS)
    for row in snapshot:
        for sums in (total, groups.setdefault(_k(row.k), _Sums())):
            sums.backlog += row.backlog
            sums.overdue += row.overdue or 0
        backlog_ages[int(row.b)] += row.backlog
    return backlog_ages


def _distribution(total: _Sums) -> list[dict[str, Any]]:
    return [{"label": label, "upper_s": upper, "business": b, "calendar": c}
            for (upper, label), b, c in zip(RESPONSE_BUCKETS, total.buckets("bs"),
                                            total.buckets("s"))]


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


# The sums that count resolved (and closed) tickets only.
DONE_ONLY = ("resolved", "fcr", "h_n_s", "h_sum_s", "h_n_bs", "h_sum_bs", "res_met", "res_late")


def _ticket_sums(done_is_key: bool, now: datetime) -> list[ColumnElement[Any]]:
    """The pass's aggregates. With `done_is_key` the rows are also grouped by "resolved or
    closed" and the DONE_ONLY sums are taken over every row (the fold keeps them from the
    resolved groups only): on PostgreSQL the status test, once per row as a key, costs far
    less than in six filters; on SQLite a second key costs more than the filters."""
    done = Ticket.status.in_(DONE)

    def if_done(aggregate: Any, *conditions: ColumnElement[bool]) -> ColumnElement[Any]:
        where = conditions if done_is_key else (done, *conditions)
        return aggregate.filter(and_(*where)) if where else aggregate

    cols: list[ColumnElement[Any]] = [
        func.count().label("tickets"),
        if_done(func.count()).label("resolved"),
        if_done(func.count(), Ticket.escalation_count == 0, Ticket.reopen_count == 0
                ).label("fcr"),
        func.count(Ticket.first_response_s).label("fr_n_s"),
        func.sum(Ticket.first_response_s).label("fr_sum_s"),
        func.count(Ticket.first_response_bs).label("fr_n_bs"),
        func.sum(Ticket.first_response_bs).label("fr_sum_bs"),
        if_done(func.count(Ticket.handling_s)).label("h_n_s"),
        if_done(func.sum(Ticket.handling_s)).label("h_sum_s"),
        if_done(func.count(Ticket.handling_bs)).label("h_n_bs"),
        if_done(func.sum(Ticket.handling_bs)).label("h_sum_bs"),
        _flag(Ticket.breached_at.is_not(None)).label("breached"),
        _flag(Ticket.handling_s.is_not(None)).label("ever_resolved"),
        _flag(and_(Ticket.handling_s.is_not(None), Ticket.reopen_count > 0)).label("reopened"),
        func.count(Ticket.rating).label("ratings"),
        func.sum(Ticket.rating).label("rating_sum"),
    ]
    cols += [_flag(Ticket.rating == score).label(f"r{score}") for score in range(1, 6)]
    # The SLA-met shares: per deadline kind, met (done at or before it), late (done after
    # it), overdue (not done, the clock running, past it now). Done for the resolution: the
    # latest resolution (resolved_at), else the closing.
    running = Ticket.status.in_(RUNNING)
    fr_due, res_due = Ticket.first_response_due_at, Ticket.resolution_due_at
    done_at = func.coalesce(Ticket.resolved_at, Ticket.closed_at)
    cols += [_flag(Ticket.first_responded_at <= fr_due).label("fr_met"),
             _flag(Ticket.first_responded_at > fr_due).label("fr_late"),
             _flag(and_(Ticket.first_responded_at.is_(None), running, fr_due < now)
                   ).label("fr_overdue"),
             if_done(func.count(), done_at <= res_due).label("res_met"),
             if_done(func.count(), done_at > res_due).label("res_late"),
             _flag(and_(running, res_due < now)).label("res_overdue")]
    cols += [func.sum(Ticket.response_count).label("answers"),
             func.sum(Ticket.response_bs).label("answer_bs"),
             func.sum(Ticket.response_s).label("answer_s")]
    # First responses below each bound (cumulative: one comparison per row and bound).
    cols += [_flag(column < bound).label(f"fr_lt{i}_{name}")
             for name, (column, _) in MEASURES.items() for i, bound in enumerate(BOUNDS)]
    return cols


def _age_bucket(now: datetime) -> ColumnElement[int]:
    whens = [(Ticket.created_at > now - timedelta(seconds=upper), i)
             for i, (upper, _) in enumerate(AGE_BUCKETS) if upper is not None]
    return case(*whens, else_=len(AGE_BUCKETS) - 1)


def _ticket_span(session: Session) -> tuple[datetime, datetime] | None:
    """On SQLite, the first and last ticket's creation (for _scan_hint); None elsewhere."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    first = session.scalar(select(func.min(Ticket.created_at)))
    last = session.scalar(select(func.max(Ticket.created_at)))
    return None if first is None or last is None else (first, last)


def _scan_hint(session: Session, since: datetime, until: datetime,
               span: tuple[datetime, datetime] | None) -> Callable[[Select[Any]], Select[Any]]:
    """SQLite without statistics reads a period through the created_at index even when the
    period is nearly every ticket, which is slower than reading the table: when the period
    covers most of the tickets' time span (`span`, _ticket_span's), the table is read
    instead."""
    if session.get_bind().dialect.name != "sqlite" or span is None:
        return lambda q: q
    first, last = span
    if last <= first:
        return lambda q: q
    covered = min(until, last) - max(since, first)
    if covered / (last - first) < 0.4:
        return lambda q: q
    return lambda q: q.with_hint(Ticket, "NOT INDEXED", "sqlite")


def _median(session: Session, name: str, key: ColumnElement[Any] | None, group: str | None,
            buckets: list[int], cohort: ColumnElement[bool]) -> float | None:
    """The exact median of a group's first responses (`buckets`: their count per bucket of
    RESPONSE_BUCKETS): the mean of the value(s) at the middle rank(s)."""
    n = sum(buckets)
    if not n:
        return None
    ranks = sorted({(n - 1) // 2, n // 2})
    found = _at_ranks(session, name, key, group, buckets, cohort, ranks[0], len(ranks))
    return sum(found) / len(found)


def _at_ranks(session: Session, name: str, key: ColumnElement[Any] | None, group: str | None,
              buckets: list[int], cohort: ColumnElement[bool], rank: int, many: int) -> list[int]:
    """The values at ranks rank .. rank+many-1 (0-based, ascending) of a group's first
    responses: read from the bucket they fall in, walked from its nearer end through the
    measure's covering index, so that at most half a bucket is read."""
    below = 0
    for i, count in enumerate(buckets):
        if rank < below + count:
            break
        below += count
    if rank + many > below + count:   # the ranks straddle two buckets
        return (_at_ranks(session, name, key, group, buckets, cohort, rank, 1)
                + _at_ranks(session, name, key, group, buckets, cohort, rank + 1, many - 1))
    column, index = MEASURES[name]
    q = select(column).where(cohort, column.is_not(None)).limit(many)
    if i > 0:
        q = q.where(column >= BOUNDS[i - 1])
    if i < len(BOUNDS):
        q = q.where(column < BOUNDS[i])
    if key is not None:
        q = q.where(_is_group(key, group))
    q = q.with_hint(Ticket, f"INDEXED BY {index}", "sqlite")
    offset = rank - below
    if offset + many / 2 <= count / 2:
        return list(session.scalars(q.order_by(column).offset(offset)))
    from_top = count - offset - many
    return list(reversed(session.scalars(q.order_by(column.desc()).offset(from_top)).all()))


def _is_group(key: ColumnElement[Any], group: str | None) -> ColumnElement[bool]:
    if group == NONE_KEY:
        return or_(key.is_(None), key == "")
    return key == group


def _days(session: Session, since: datetime, until: datetime,
          zone: ZoneInfo) -> list[dict[str, Any]]:
    """Every local day of the period (days without tickets included): tickets created,
    resolved of them, breached of them; each day an index range (ix_ticket_created_at
    holds the three columns), whatever the time zone's changes."""
    days = local_days(since, until, zone)
    if not days:
        return []
    params: dict[str, Any] = {}
    for i, (_, a, b) in enumerate(days):
        params[f"a{i}"], params[f"b{i}"] = a, b
    statement = _days_statement(len(days), session.get_bind().dialect.name == "sqlite")
    figures = {i: json.loads(c) if isinstance(c, str) else c
               for i, c in session.execute(statement, params)}
    return [{"date": day.isoformat(), "created": figures[i][0], "resolved": figures[i][1],
             "breached": figures[i][2]} for i, (day, _, _) in enumerate(days)]


@lru_cache(maxsize=16)
def _days_statement(count: int, sqlite: bool) -> Select[Any]:
    """The per-day counts for `count` days, their bounds bound as a{i}, b{i}: one statement
    object per number of days, so that it is compiled once (with the bounds as literal values
    it was compiled again for every report: 2 years of days cost more than the query)."""
    bounds = values(column("i", Integer), column("a", UTCDateTime()),
                    column("b", UTCDateTime()), name="days").data(
        [(literal(i, Integer), bindparam(f"a{i}", type_=UTCDateTime()),
          bindparam(f"b{i}", type_=UTCDateTime())) for i in range(count)]).cte("days")
    # One range of the index per day, its three counts packed into one JSON array (a
    # correlated subquery has one column). SQLite would take the status index for the status
    # test, all closed tickets per day: the hint keeps it on the range.
    pack = func.json_array if sqlite else func.json_build_array
    counts = (select(pack(func.count(), _flag(Ticket.status.in_(DONE)),
                          _flag(Ticket.breached_at.is_not(None))))
              .where(Ticket.created_at >= bounds.c.a, Ticket.created_at < bounds.c.b)
              .with_hint(Ticket, "INDEXED BY ix_ticket_created_at", "sqlite").scalar_subquery())
    return select(bounds.c.i, counts)


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
            if name != "k":
                self.c[name] = self.c.get(name, 0) + int(value or 0)   # PostgreSQL: Decimal
        self.tickets = self.c.get("tickets", 0)

    def buckets(self, name: str) -> list[int]:
        """First responses (business "bs" or calendar "s") per RESPONSE_BUCKETS bucket."""
        below = [self.c.get(f"fr_lt{i}_{name}", 0) for i in range(len(BOUNDS))]
        below.append(self.c.get(f"fr_n_{name}", 0))
        return [b - a for a, b in zip([0, *below], below)]

    def kpi(self, medians: tuple[float | None, float | None],
            snapshots: bool = True) -> dict[str, Any]:
        """The KPI object (README); without `snapshots` (a previous period) overdue_now and
        backlog_now are null: they are of now, not of a period."""
        c = self.c.get
        resolved, ever = c("resolved", 0), c("ever_resolved", 0)
        ratings = c("ratings", 0)

        def sla(kind: str) -> dict[str, Any]:
            met, late, overdue = c(f"{kind}_met", 0), c(f"{kind}_late", 0), c(f"{kind}_overdue", 0)
            count = met + late + overdue
            return {"count": count, "met": met, "late": late, "overdue": overdue,
                    "share": _share(met, count)}

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
            "overdue_now": self.overdue if snapshots else None,
            "backlog_now": self.backlog if snapshots else None,
            "reopened": c("reopened", 0), "reopen_rate": _share(c("reopened", 0), ever),
            "csat": {"resolved": resolved, "ratings": ratings,
                     "response_rate": _share(ratings, resolved),
                     "mean": _mean(c("rating_sum", 0), ratings, 2),
                     "satisfied_share": _share(c("r4", 0) + c("r5", 0), ratings),
                     "distribution": {str(s): c(f"r{s}", 0) for s in range(1, 6)}},
            "sla_met": {"first_response": sla("fr"), "resolution": sla("res")},
        }


# Rounded by the report's one rule (display.round_half_up), on the exact quotient.
def _share(part: int, whole: int) -> float | None:
    return round_half_up(Decimal(part) / Decimal(whole), 4) if whole else None


def _mean(total: int, count: int, digits: int = 1) -> float | None:
    return round_half_up(Decimal(total) / Decimal(count), digits) if count else None


def _round(value: float | None) -> float | None:
    return round_half_up(value, 1)


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

