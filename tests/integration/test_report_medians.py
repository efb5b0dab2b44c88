"""The report's medians are exact, whatever the spread of the first responses: each group's
median is found in the one bucket of the distribution its middle rank falls in, read from
either end of that bucket. Tickets with first-response times chosen to be awkward (on the
buckets' bounds, crowded into one bucket, a group with a single answered ticket, an even
count whose two middle values lie in different buckets, tickets outside the period) are
written straight into the database; every median of every grouping must equal the median
computed here in Python, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
import statistics
from datetime import datetime, timedelta, timezone

import pytest

from maildesk.db.models import Ticket, TicketStatus
from maildesk.report.kpi import BOUNDS, NONE_KEY, build_report

SINCE = datetime(2026, 11, 2, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 30, tzinfo=timezone.utc)
NOW = UNTIL
LINES = ("line1", "line2", "line3")
AGENTS = ("alice@example.com", "boris@example.com", None)


def awkward_times(rng: random.Random, n: int) -> list[int | None]:
    """First-response seconds: bounds and their neighbours, a crowd in one bucket, a long tail,
    unanswered tickets."""
    edges = [b + d for b in BOUNDS for d in (-1, 0, 1)]
    out: list[int | None] = []
    for _ in range(n):
        pick = rng.random()
        if pick < 0.25:
            out.append(rng.choice(edges))
        elif pick < 0.6:
            out.append(rng.randrange(3600, 4 * 3600))            # the crowd
        elif pick < 0.9:
            out.append(int(rng.lognormvariate(8, 2)))
        else:
            out.append(None)
    return out


def make_ticket(number: int, created: datetime, fr_s: int | None, fr_bs: int | None,
                line: str | None, agent: str | None, category: str | None) -> Ticket:
    return Ticket(number=number, reply_token=f"t{number}", subject=f"s{number}",
                  subject_key=f"s{number}", status=TicketStatus.CLOSED, priority="P3",
                  line=line, category=category, requester=f"c{number}@example.org",
                  mailbox="support@example.com", created_at=created, updated_at=created,
                  last_activity_at=created, first_response_s=fr_s, first_response_bs=fr_bs,
                  first_responded_at=None if fr_s is None else created + timedelta(seconds=fr_s),
                  first_response_by=agent if fr_s is not None else None, assignee=agent)


@pytest.fixture
def tickets(ctx):
    rng = random.Random(8)
    rows = []
    calendar = awkward_times(rng, 400)
    for i, fr_s in enumerate(calendar):
        fr_bs = None if fr_s is None else min(fr_s, rng.choice([fr_s, fr_s // 3, rng.choice(BOUNDS)]))
        inside = i % 10 != 0   # every tenth ticket outside the period
        created = (SINCE + timedelta(minutes=53 * i) if inside
                   else SINCE - timedelta(days=1 + i % 5))
        line = LINES[0] if i % 7 else LINES[1]
        if i == 5:
            line = LINES[2]    # line3: one answered ticket only
        rows.append(make_ticket(1000 + i, created, fr_s, fr_bs, line, AGENTS[i % 3],
                                ["Кассы", "Оплата картой", None][i % 3 if i % 11 else 2]))
    # Two tickets in one group whose middle values lie in two buckets.
    for j, value in enumerate((BOUNDS[0] - 5, BOUNDS[3] + 5)):
        rows.append(make_ticket(2000 + j, SINCE + timedelta(hours=j + 1), value, value,
                                "vendor", None, "Network"))
    with ctx.make_session() as session:
        session.add_all(rows)
        session.commit()
    return [t for t in rows if SINCE <= t.created_at < UNTIL]


def expected(tickets: list[Ticket], by: str | None, attr: str) -> dict[str, float | None]:
    def key(t: Ticket) -> str:
        value = {None: NONE_KEY, "line": t.line, "category": t.category,
                 "agent": t.assignee or t.first_response_by}[by] if by else NONE_KEY
        return value or NONE_KEY
    groups: dict[str, list[int]] = {}
    for t in tickets:
        groups.setdefault(key(t), [])
        if getattr(t, attr) is not None:
            groups[key(t)].append(getattr(t, attr))
    return {k: (round(statistics.median(v), 1) if v else None) for k, v in groups.items()}


@pytest.mark.parametrize("by", [None, "line", "agent", "category"])
def test_every_median_is_exact(ctx, tickets, by):
    with ctx.make_session() as session:
        report = build_report(session, ctx.settings, since=SINCE, until=UNTIL, by=by, now=NOW)
    for field, attr in (("median_business_s", "first_response_bs"),
                        ("median_calendar_s", "first_response_s")):
        want = expected(tickets, by, attr)
        got = ({g["key"]: g["kpi"]["first_response"][field] for g in report["groups"]}
               if by else {NONE_KEY: report["totals"]["first_response"][field]})
        assert got == want, field
        assert report["totals"]["first_response"][field] == expected(tickets, None, attr)[NONE_KEY]


def test_distribution_counts_every_answered_ticket_once(ctx, tickets):
    with ctx.make_session() as session:
        report = build_report(session, ctx.settings, since=SINCE, until=UNTIL, by=None, now=NOW)
    answered = [t for t in tickets if t.first_response_s is not None]
    for measure, attr in (("business", "first_response_bs"), ("calendar", "first_response_s")):
        counts = [b[measure] for b in report["first_response_distribution"]]
        bounds = [b["upper_s"] for b in report["first_response_distribution"]]
        want = [sum(1 for t in answered
                    if (i == 0 or getattr(t, attr) >= bounds[i - 1])
                    and (upper is None or getattr(t, attr) < upper))
                for i, upper in enumerate(bounds)]
        assert counts == want
        assert sum(counts) == len(answered)
