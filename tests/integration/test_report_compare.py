"""KPI report (issue 20): the comparison with the period just before, the SLA-met shares, one
rounding rule in every format, plural forms. Two weeks of tickets with known figures are
written straight into the database (as test_report_medians.py does), on SQLite and PostgreSQL;
every figure below is worked out by hand.

The current period is Mon 16 - Sun 22 Nov 2026 (UTC), the previous one Mon 9 - Sun 15 Nov;
the report runs at Wed 25 Nov 00:00. Times are after the creation (+1 h: an hour later).

Current (7 tickets)                                      first response        resolution
  C1 16 Nov 00:00 (the first second of the period) line1  1800 s, due +2 h met  +3 h, due +8 h met
     resolved, answers 1 (1800 s), handling 10800 s, rated 4
  C2 17 Nov 10:00 line1 closed (resolved +2 h)            3600 s, due +2 h met  +2 h, due +1 h late
     answers 1 (3600 s), handling 7200 s, rated 2, breached
  C3 18 Nov 10:00 line2 resolved, escalated               4000 s (business 2000), due +1 h late
     answers 2 (4600 s; business 2600), handling 86400 s (business 28800)   +1 d, due +2 d met
  C4 19 Nov 10:00 line2 open                              5000 s, due +2 h met  due 20 Nov: overdue
     answers 1 (5000 s), breached
  C5 20 Nov 10:00 line1 pending                           5997 s, due +1 h late due 21 Nov: paused
     answers 1 (5997 s)
  C6 21 Nov 10:00 line1 new, unanswered                   due +2 h: overdue     due 22 Nov: overdue
     breached
  C7 22 Nov 10:00 line2 new, unanswered                   due 26 Nov: running   due 27 Nov: running

Previous (5 tickets)
  P1 10 Nov 10:00 line1 resolved                          3600 s, due +2 h met  +5 h, due +8 h met
     answers 1 (3600 s), handling 18000 s, rated 5
  P2 11 Nov 10:00 line2 resolved, reopened once          7200 s, due +1 h late +30 h, due +24 h late
     answers 2 (9000 s), handling 108000 s (business 32400), rated 1, breached
  P3 12 Nov 10:00 line1 open, unanswered                  due +2 h: overdue     due 13 Nov: overdue
     breached
  P4 15 Nov 23:59:59 (the last second) line1 closed, no SLA deadlines
     600 s, answers 1 (600 s), handling 3600 s
  P5 14 Nov 10:00 line3 closed unanswered, no deadlines   handling 3600 s (a group of then only)

The first responses' calendar mean of the current period is 20397 / 5 = 4079.4 s: the table
once showed it "1 h 07 min" (seconds rounded, minutes cut) and the page "1 h 08 min".
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from maildesk.cli import main
from maildesk.db.models import Ticket, TicketStatus
from maildesk.report.display import NBSP, fmt_duration
from maildesk.report.formats import to_csv, to_json, to_table
from maildesk.report.html import to_html
from maildesk.report.kpi import build_report

H, D = 3600, 86400
UTC = timezone.utc
SINCE, UNTIL = datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
NOW = datetime(2026, 11, 25, tzinfo=UTC)
S = TicketStatus


def at(day: int, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def ticket(number: int, created: datetime, line: str, status: TicketStatus, *,
           fr: int | None = None, fr_bs: int | None = None, fr_due: float | None = None,
           res_due: datetime | float | None = None, resolved: float | None = None,
           closed: float | None = None, handling: int | None = None,
           handling_bs: int | None = None, answers: tuple[int, int, int] = (0, 0, 0),
           rating: int | None = None, breached: bool = False, reopened: int = 0,
           escalated: int = 0) -> Ticket:
    """A ticket with its KPI facts; times given as seconds are after the creation."""
    def after(value: datetime | float | None) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return created + timedelta(seconds=value)

    return Ticket(
        number=number, reply_token=f"t{number}", subject=f"s{number}", subject_key=f"s{number}",
        status=status, priority="P3", line=line, category=None, requester=f"c{number}@ex.org",
        mailbox="support@example.com", created_at=created, updated_at=created,
        last_activity_at=created, first_line=line,
        first_response_s=fr, first_response_bs=fr if fr_bs is None and fr is not None else fr_bs,
        first_responded_at=after(fr), first_response_by="alice@example.com" if fr else None,
        first_response_due_at=after(fr_due), resolution_due_at=after(res_due),
        resolved_at=after(resolved), closed_at=after(closed),
        handling_s=handling, handling_bs=handling if handling_bs is None else handling_bs,
        response_count=answers[0], response_s=answers[1], response_bs=answers[2],
        rating=rating, breached_at=created + timedelta(hours=1) if breached else None,
        reopen_count=reopened, escalation_count=escalated)


@pytest.fixture
def weeks(ctx):
    rows = [
        # The current period.
        ticket(1, at(16, 0), "line1", S.RESOLVED, fr=1800, fr_due=2 * H, resolved=3 * H,
               res_due=8 * H, handling=10800, answers=(1, 1800, 1800), rating=4),
        ticket(2, at(17), "line1", S.CLOSED, fr=3600, fr_due=2 * H, resolved=2 * H,
               closed=3 * D, res_due=1 * H, handling=7200, answers=(1, 3600, 3600), rating=2,
               breached=True),
        ticket(3, at(18), "line2", S.RESOLVED, fr=4000, fr_bs=2000, fr_due=1 * H,
               resolved=1 * D, res_due=2 * D, handling=86400, handling_bs=28800,
               answers=(2, 4600, 2600), breached=True, escalated=1),
        ticket(4, at(19), "line2", S.OPEN, fr=5000, fr_due=2 * H, res_due=at(20),
               answers=(1, 5000, 5000), breached=True),
        ticket(5, at(20), "line1", S.PENDING, fr=5997, fr_due=1 * H, res_due=at(21),
               answers=(1, 5997, 5997)),
        ticket(6, at(21), "line1", S.NEW, fr_due=2 * H, res_due=at(22), breached=True),
        ticket(7, at(22), "line2", S.NEW, fr_due=at(26), res_due=at(27)),
        # The previous period.
        ticket(11, at(10), "line1", S.RESOLVED, fr=3600, fr_due=2 * H, resolved=5 * H,
               res_due=8 * H, handling=18000, answers=(1, 3600, 3600), rating=5),
        ticket(12, at(11), "line2", S.RESOLVED, fr=7200, fr_due=1 * H, resolved=30 * H,
               res_due=24 * H, handling=108000, handling_bs=32400, answers=(2, 9000, 9000),
               rating=1, breached=True, reopened=1),
        ticket(13, at(12), "line1", S.OPEN, fr_due=2 * H, res_due=at(13), breached=True),
        ticket(14, at(15, 23, 59, 59), "line1", S.CLOSED, fr=600, closed=1 * H, handling=3600,
               answers=(1, 600, 600)),
        ticket(15, at(14), "line3", S.CLOSED, closed=1 * H, handling=3600),
        # Outside both: the period's end, and before the previous one's start.
        ticket(21, UNTIL, "line1", S.CLOSED, fr=60, fr_due=1 * H, closed=1 * H, handling=3600,
               answers=(1, 60, 60), breached=True),
        ticket(22, SINCE - timedelta(days=7, seconds=1), "line1", S.CLOSED, closed=1 * H,
               handling=3600),
    ]
    with ctx.make_session() as session:
        session.add_all(rows)
        session.commit()
    return ctx


def report(ctx, by: str | None = None, **kw) -> dict:
    with ctx.make_session() as session:
        return build_report(session, ctx.settings, since=kw.pop("since", SINCE),
                            until=kw.pop("until", UNTIL), by=by, now=NOW, **kw)


def test_each_kpi_of_both_periods_and_its_change_match_the_hand_figures(weeks):
    r = report(weeks)
    t, p, c = r["totals"], r["previous"]["totals"], r["changes"]["totals"]
    assert r["previous"]["period"] == {"since": "2026-11-09T03:00:00+03:00",
                                       "until": "2026-11-16T03:00:00+03:00"}
    assert (t["tickets"], t["resolved"], t["resolved_share"]) == (7, 3, 0.4286)
    assert (p["tickets"], p["resolved"], p["resolved_share"]) == (5, 4, 0.8)
    assert (c["tickets"], c["resolved"], c["resolved_share"]) == (2, -1, -37.14)
    assert (t["first_contact_resolution_rate"], p["first_contact_resolution_rate"],
            c["first_contact_resolution_rate"]) == (0.6667, 0.75, -8.33)
    assert t["first_response"] == {"count": 5, "mean_business_s": 3679.4,
                                   "median_business_s": 3600.0, "mean_calendar_s": 4079.4,
                                   "median_calendar_s": 4000.0}
    assert p["first_response"] == {"count": 3, "mean_business_s": 3800.0,
                                   "median_business_s": 3600.0, "mean_calendar_s": 3800.0,
                                   "median_calendar_s": 3600.0}
    assert c["first_response"] == {"count": 2, "mean_business_s": -120.6,
                                   "median_business_s": 0.0, "mean_calendar_s": 279.4,
                                   "median_calendar_s": 400.0}
    assert t["response"] == {"count": 6, "mean_business_s": 3166.2, "mean_calendar_s": 3499.5}
    assert p["response"] == {"count": 4, "mean_business_s": 3300.0, "mean_calendar_s": 3300.0}
    assert c["response"] == {"count": 2, "mean_business_s": -133.8, "mean_calendar_s": 199.5}
    assert t["handling"] == {"count": 3, "mean_business_s": 15600.0, "mean_calendar_s": 34800.0}
    assert p["handling"] == {"count": 4, "mean_business_s": 14400.0, "mean_calendar_s": 33300.0}
    assert c["handling"] == {"count": -1, "mean_business_s": 1200.0, "mean_calendar_s": 1500.0}
    assert (t["breached"], t["breached_share"], p["breached"], p["breached_share"]) == \
        (4, 0.5714, 2, 0.4)
    assert (c["breached"], c["breached_share"]) == (2, 17.14)
    assert (t["reopen_rate"], p["reopen_rate"], c["reopen_rate"]) == (0.0, 0.25, -25.0)
    assert (t["csat"]["mean"], p["csat"]["mean"], c["csat"]["mean"]) == (3.0, 3.0, 0.0)
    assert (t["csat"]["response_rate"], p["csat"]["response_rate"],
            c["csat"]["response_rate"]) == (0.6667, 0.5, 16.67)
    assert c["csat"]["distribution"] == {"1": -1, "2": 1, "3": 0, "4": 1, "5": -1}
    # Snapshots of now: the same for both periods, so none for the previous one.
    assert (t["overdue_now"], t["backlog_now"]) == (3, 5)        # C4, C6, P3; + C5, C7
    assert (p["overdue_now"], p["backlog_now"]) == (None, None)
    assert (c["overdue_now"], c["backlog_now"]) == (None, None)


def test_sla_met_shares_count_met_late_and_overdue_of_the_decided_deadlines(weeks):
    """Met: done at or before the deadline; late: after it; overdue: not done, the clock
    running, the deadline past now. Undecided (running, paused) and no deadline: left out."""
    r = report(weeks)
    t, p, c = (r["totals"]["sla_met"], r["previous"]["totals"]["sla_met"],
               r["changes"]["totals"]["sla_met"])
    assert t == {"first_response": {"count": 6, "met": 3, "late": 2, "overdue": 1, "share": 0.5},
                 "resolution": {"count": 5, "met": 2, "late": 1, "overdue": 2, "share": 0.4}}
    assert p == {"first_response": {"count": 3, "met": 1, "late": 1, "overdue": 1,
                                    "share": 0.3333},
                 "resolution": {"count": 3, "met": 1, "late": 1, "overdue": 1, "share": 0.3333}}
    assert c["first_response"] == {"count": 3, "met": 2, "late": 1, "overdue": 0,
                                   "share": 16.67}
    assert c["resolution"]["share"] == 6.67


def test_groups_are_compared_with_the_same_groups_then(weeks):
    r = report(weeks, "line")
    assert [g["key"] for g in r["groups"]] == ["line1", "line2"]
    # The previous period's groups: this report's, in its order, then those of then only.
    assert [g["key"] for g in r["previous"]["groups"]] == ["line1", "line2", "line3"]
    assert [g["key"] for g in r["changes"]["groups"]] == ["line1", "line2"]
    prev = {g["key"]: g["kpi"] for g in r["previous"]["groups"]}
    change = {g["key"]: g["change"] for g in r["changes"]["groups"]}
    assert [prev[k]["tickets"] for k in ("line1", "line2", "line3")] == [3, 1, 1]
    assert (change["line1"]["tickets"], change["line2"]["tickets"]) == (1, 2)
    # line2: first answers 4000 and 5000 s now, 7200 s then.
    line2 = next(g["kpi"] for g in r["groups"] if g["key"] == "line2")
    assert line2["first_response"]["median_calendar_s"] == 4500.0
    assert prev["line2"]["first_response"]["median_calendar_s"] == 7200.0
    assert change["line2"]["first_response"]["median_calendar_s"] == -2700.0
    assert line2["sla_met"]["resolution"] == {"count": 2, "met": 1, "late": 0, "overdue": 1,
                                              "share": 0.5}
    assert change["line2"]["sla_met"]["resolution"]["share"] == 50.0    # P2 was late: 0 %
    # The groups of each period add up to its totals.
    assert sum(g["kpi"]["tickets"] for g in r["previous"]["groups"]) == 5


def test_without_the_comparison_nothing_else_changes(weeks):
    compared, alone = report(weeks, "line"), report(weeks, "line", compare=False)
    assert alone["previous"] is None and alone["changes"] is None
    for key in ("totals", "groups", "daily", "first_response_distribution", "backlog_by_age"):
        assert alone[key] == compared[key]
    assert "±" not in to_table(alone) and "_previous" not in to_csv(alone).decode("utf-8-sig")
    assert 'class="chg' not in to_html(alone).split("</style>")[1]


def test_one_duration_reads_the_same_in_the_table_the_csv_and_the_page(weeks):
    """4079.4 s: "1 h 08 min" everywhere (the table used to cut it to "1 h 07 min")."""
    r = report(weeks, "line")
    assert r["totals"]["first_response"]["mean_calendar_s"] == 4079.4
    table = to_table(r, width=200)
    row = next(line for line in table.splitlines() if line.startswith("1st resp. mean (cal.)"))
    assert row.rstrip().endswith("1 h 08 min      +5 min")
    rows = list(csv.DictReader(io.StringIO(to_csv(r).decode("utf-8-sig"))))
    seconds = rows[-1]["first_response_mean_calendar_s"]
    assert seconds == "4079.4" and rows[-1]["first_response_mean_calendar_s_change"] == "279.4"
    assert fmt_duration(float(seconds), " ") == "1 h 08 min"
    page = to_html(r).replace(NBSP, " ")
    card = page[page.index("First response, mean</div>"):]
    assert card[:card.index("</li>")].count("calendar: 1 h 08 min") == 1
    assert json.loads(to_json(r))["totals"]["first_response"]["mean_calendar_s"] == 4079.4


def test_the_formats_show_the_changes(weeks):
    r = report(weeks, "line")
    table = to_table(r)
    assert all(len(line) <= 100 for line in table.splitlines())
    assert "± prev." in table and "2026-11-09 03:00 — 2026-11-16 03:00" in table
    tickets = next(line for line in table.splitlines() if line.startswith("Tickets"))
    assert tickets.split() == ["Tickets", "4", "+1", "3", "+2", "7", "+2"]
    resolved = next(line for line in table.splitlines() if line.startswith("Resolved %"))
    assert resolved.split()[-3:] == ["%", "\u221237.1", "pp"]          # 42.9 % −37.1 pp
    fr_sla = next(line for line in table.splitlines() if line.startswith("1st resp. SLA met %"))
    assert fr_sla.split()[-4:] == ["50", "%", "+16.7", "pp"]
    backlog = next(line for line in table.splitlines() if line.startswith("Backlog now"))
    assert backlog.split() == ["Backlog", "now", "3", "2", "5"]        # a snapshot: no change

    rows = list(csv.DictReader(io.StringIO(to_csv(r).decode("utf-8-sig"))))
    total = rows[-1]
    assert (total["tickets"], total["tickets_previous"], total["tickets_change"]) == \
        ("7", "5", "2")
    assert (total["resolution_sla_met_share"], total["resolution_sla_met_share_previous"],
            total["resolution_sla_met_share_change"]) == ("0.4", "0.3333", "6.67")
    assert total["previous_since"] == "2026-11-09T03:00:00+03:00"
    assert "backlog_now_previous" not in total and "overdue_now_change" not in total
    assert list(total)[:5] == ["group", "key", "label", "since", "until"]

    page = to_html(r)
    # Response times: lower is better; shares: higher is better; breaches: lower is better.
    assert 'class="chg worse" title="worse than the previous period">▲\u00a0+20\u00a0min' in page
    assert 'class="chg better" title="better than the previous period">▲\u00a0+16.7\u00a0pp' in page
    assert 'class="chg worse" title="worse than the previous period">▲\u00a0+2<' in page
    assert 'class="chg neutral" title="against the previous period">▲\u00a0+2<' in page  # tickets
    assert "Compared with" in page


def test_one_ticket_is_a_ticket(weeks):
    """C7 alone in its day; C6 alone the day before."""
    r = report(weeks, since=at(22, 0), until=at(23, 0))
    assert (r["totals"]["tickets"], r["previous"]["totals"]["tickets"]) == (1, 1)
    page = to_html(r).replace(NBSP, " ")
    assert "0 of 1 ticket<" in page and "1 tickets" not in page
    two = to_html(report(weeks)).replace(NBSP, " ")
    assert "3 of 7 tickets" in two and "2 tickets" in two and "2 ratings, scale 1–5" in two


def test_the_cli_compares_unless_told_not_to(weeks, tmp_path):
    clock = tmp_path / "clock"
    clock.write_text(NOW.isoformat(), encoding="utf-8")
    env = {**os.environ, "MAILDESK_CLOCK_FILE": str(clock)}
    base = ["--config", str(weeks.settings.config_path), "report", "--since",
            "2026-11-16T03:00", "--until", "2026-11-23T03:00", "--format", "json"]
    runner = CliRunner()
    data = json.loads(runner.invoke(main, base, env=env, catch_exceptions=False).stdout)
    assert data["changes"]["totals"]["tickets"] == 2 and data["version"] == 1
    alone = json.loads(runner.invoke(main, [*base, "--no-compare"], env=env,
                                     catch_exceptions=False).stdout)
    assert alone["previous"] is None and alone["totals"] == data["totals"]
