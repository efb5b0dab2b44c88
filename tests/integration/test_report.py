"""KPI report (issue 8): a week of a small support desk lived through the real pipeline on a
controlled clock (clients' mails, agents' replies and commands, a rating, a reopening, an
escalation, a pending pause, a breach fired by the timers), then every KPI of `maildesk report`
compared with the figure worked out by hand below, in business and calendar time, on SQLite
and PostgreSQL; and the CSV and JSON formats as a spreadsheet and a script would read them.

The week (Moscow, standard policy: 9:00-18:00 Mon-Fri, P3 first response 8 business hours;
line 1 without its OLA so tickets move only when we say):

  1000  Mon 10:00 new, a cash register: the rules send it to line 2 on the 24/7 `incidents`
        policy (business time = calendar time there); alice answers 11:00; alice #resolve
        12:00; the client rates 5 at 13:00.
  1001  Mon 17:00 new; alice answers Tue 10:00 (17 h calendar, 2 h business); the client
        writes again Tue 11:00, boris answers 12:30 (1.5 h); alice #escalate line2 13:00;
        carol #resolve Wed 10:00 (41 h calendar, 11 h business); the client rates 2.
  1002  Tue 09:30 new; alice #pending with a question 10:30 (1 h); the client answers Wed
        10:30 (pause: 24 h), alice #resolve with an answer 11:30 (1 h); the client writes again
        Thu 10:00 (reopened), alice #resolve with an answer 11:00 (1 h). Handling: Tue 9:30 to
        Thu 11:00 = 49.5 h calendar, 3 h business (the pending and resolved time left out).
  1003  Wed 20:00 new, never answered: first response due Thu 17:00; the timers at Fri 12:00
        mark it breached and escalate it to line 2. Overdue now.
  1004  Thu 10:30 new; alice #pending with a question 11:00 (30 min). Pending now.

The report runs at Fri 27 Nov 12:00 over Mon 23 - Fri 27 Nov.
"""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from click.testing import CliRunner

from desk import Desk, edit_lines, msk
from maildesk.cli import main
from maildesk.report.kpi import build_report

H = 3600
ALICE, BORIS, CAROL = "alice@example.com", "boris@example.com", "carol@example.com"
NOW = msk(2026, 11, 27, 12, 0)
SINCE, UNTIL = msk(2026, 11, 23), msk(2026, 11, 28)


@pytest.fixture
def lived(config_set):
    """The whole week in time order (the clock only moves forward)."""
    edit_lines(config_set, line1={"ola": None})
    desk = Desk(config_set.path, msk(2026, 11, 23, 10, 0))
    steps = [
        (msk(2026, 11, 23, 10, 0), lambda: desk.client_writes(
            "Касса не печатает чеки", "Добрый день! Касса №2 не печатает чеки.")),
        (msk(2026, 11, 23, 11, 0), lambda: desk.agent_replies(
            1000, "Перезагрузите, пожалуйста, кассу.", ALICE)),
        (msk(2026, 11, 23, 12, 0), lambda: desk.agent_replies(
            1000, "#resolve\nРады, что всё заработало.", ALICE)),
        (msk(2026, 11, 23, 13, 0), lambda: desk.client_replies(1000, "5")),
        (msk(2026, 11, 23, 17, 0), lambda: desk.client_writes(
            "Terminal offline", "The card terminal in shop 3 is offline.",
            sender="olga@shop3.example.ru")),
        (msk(2026, 11, 24, 9, 30), lambda: desk.client_writes(
            "Не приходят чеки ОФД", "Чеки не уходят в ОФД со вчерашнего дня.",
            sender="petr@shop7.example.ru")),
        (msk(2026, 11, 24, 10, 0), lambda: desk.agent_replies(
            1001, "Please check the network cable.", ALICE)),
        (msk(2026, 11, 24, 10, 30), lambda: desk.agent_replies(
            1002, "#pending\nПришлите, пожалуйста, номер фискального накопителя.", ALICE)),
        (msk(2026, 11, 24, 11, 0), lambda: desk.client_replies(
            1001, "The cable is fine, still offline.")),
        (msk(2026, 11, 24, 12, 30), lambda: desk.agent_replies(
            1001, "We are looking into it with the bank.", BORIS)),
        (msk(2026, 11, 24, 13, 0), lambda: desk.agent_replies(1001, "#escalate line2", ALICE)),
        (msk(2026, 11, 25, 10, 0), lambda: desk.agent_replies(
            1001, "#resolve\nThe bank renewed the terminal's key.", CAROL)),
        (msk(2026, 11, 25, 10, 30), lambda: desk.client_replies(
            1002, "Номер ФН 9960440300112233.")),
        (msk(2026, 11, 25, 11, 0), lambda: desk.client_replies(1001, "2")),
        (msk(2026, 11, 25, 11, 30), lambda: desk.agent_replies(
            1002, "#resolve\nФН заменён, чеки уходят.", ALICE)),
        (msk(2026, 11, 25, 20, 0), lambda: desk.client_writes(
            "Сканер не читает штрихкоды", "Сканер на кассе 1 перестал читать коды.",
            sender="anna@shop9.example.ru")),
        (msk(2026, 11, 26, 10, 0), lambda: desk.client_replies(
            1002, "Снова не уходят, посмотрите ещё раз, пожалуйста.")),
        (msk(2026, 11, 26, 10, 30), lambda: desk.client_writes(
            "Нужна выгрузка продаж", "Пришлите выгрузку продаж за октябрь.",
            sender="ivan@shop1.example.ru")),
        (msk(2026, 11, 26, 11, 0), lambda: desk.agent_replies(
            1002, "#resolve\nПерезапустили обмен с ОФД.", ALICE)),
        (msk(2026, 11, 26, 11, 0), lambda: desk.agent_replies(
            1004, "#pending\nЗа какие магазины нужна выгрузка?", ALICE)),
        (NOW, desk.fire),
    ]
    try:
        for when, step in steps:
            desk.at(when)
            step()
        yield desk
    finally:
        desk.close()


def report(desk: Desk, by: str | None = None) -> dict:
    with desk.ctx.make_session() as session:
        return build_report(session, desk.ctx.settings, since=SINCE, until=UNTIL, by=by,
                            now=NOW.astimezone(desk.clock.current.tzinfo))


def test_every_kpi_of_the_week_matches_the_figures_worked_out_by_hand(lived):
    """The headline figures a support manager reads, each against its hand computation."""
    t = report(lived)["totals"]
    assert lived.ticket(1003).line == "line2" and lived.ticket(1003).breached_at is not None
    assert t["tickets"] == 5
    assert (t["resolved"], t["resolved_share"]) == (3, 0.6)
    # Only 1000 was solved by line 1 alone: 1001 was escalated, 1002 reopened.
    assert (t["first_contact_resolved"], t["first_contact_resolution_rate"]) == (1, 0.3333)
    # First answers: 1000 1 h / 1 h, 1001 17 h / 2 h, 1002 1 h / 1 h, 1004 30 min / 30 min.
    assert t["first_response"] == {
        "count": 4,
        "mean_business_s": (1 * H + 2 * H + 1 * H + 0.5 * H) / 4,
        "median_business_s": 1.0 * H,                    # 0.5, 1, 1, 2 h
        "mean_calendar_s": (1 * H + 17 * H + 1 * H + 0.5 * H) / 4,
        "median_calendar_s": 1.0 * H}                    # 0.5, 1, 1, 17 h
    # Answers to a waiting client: the four first answers, boris's 1.5 h to 1001's follow-up,
    # and 1002's two 1 h answers after the pause and after the reopening.
    waits_calendar = [1, 17, 1, 0.5, 1.5, 1, 1]
    waits_business = [1, 2, 1, 0.5, 1.5, 1, 1]
    assert t["response"] == {
        "count": 7,
        "mean_business_s": round(sum(waits_business) * H / 7, 1),
        "mean_calendar_s": round(sum(waits_calendar) * H / 7, 1)}
    # Creation to resolution: 1000 2 h / 2 h, 1001 41 h / 11 h, 1002 49.5 h / 3 h.
    assert t["handling"] == {"count": 3,
                             "mean_business_s": (2 + 11 + 3) * H / 3,
                             "mean_calendar_s": (2 + 41 + 49.5) * H / 3}
    assert (t["breached"], t["breached_share"]) == (1, 0.2)
    assert t["overdue_now"] == 1                   # 1003; 1004 is pending: its clock stands
    assert t["backlog_now"] == 2
    assert (t["reopened"], t["reopen_rate"]) == (1, 0.3333)
    assert t["csat"] == {"resolved": 3, "ratings": 2, "response_rate": 0.6667, "mean": 3.5,
                         "satisfied_share": 0.5,
                         "distribution": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}}


def test_the_charts_data_counts_days_buckets_and_ages_as_a_person_would(lived):
    """Tickets per Moscow day, the first-answer distribution, the backlog by age."""
    r = report(lived)
    assert [d["date"] for d in r["daily"]] == [f"2026-11-{d}" for d in range(23, 28)]
    assert [(d["created"], d["resolved"], d["breached"]) for d in r["daily"]] == [
        (2, 2, 0), (1, 1, 0), (1, 0, 1), (1, 0, 0), (0, 0, 0)]
    dist = {b["label"]: (b["business"], b["calendar"]) for b in r["first_response_distribution"]}
    assert dist["< 15 min"] == (0, 0)
    assert dist["15 min – 1 h"] == (1, 1)          # 1004's 30 min
    assert dist["1 – 4 h"] == (3, 2)               # 1 h, 1 h and 1001's 2 business hours
    assert dist["8 h – 1 d"] == (0, 1)             # 1001's 17 calendar hours
    assert sum(b for b, _ in dist.values()) == 4
    ages = {b["label"]: b["count"] for b in r["backlog_by_age"]}
    assert ages == {"< 1 d": 0, "1 – 3 d": 2, "3 – 7 d": 0, "7 – 30 d": 0, "> 30 d": 0}


def test_by_line_and_by_agent_split_the_figures_where_the_work_was_done(lived):
    """Per line: where the tickets are now; per agent: whose ticket it is (assignee, else
    resolver, else first answerer). Every figure of a group is about its tickets."""
    by_line = {g["key"]: g for g in report(lived, "line")["groups"]}
    assert list(by_line) == ["line1", "line2"]
    assert by_line["line1"]["label"] == "Line 1 / Первая линия"
    l1, l2 = by_line["line1"]["kpi"], by_line["line2"]["kpi"]
    # Line 1 holds 1002 (resolved, but reopened) and 1004; line 2 1000 (routed there and
    # solved there: first contact), 1001 (escalated to it) and 1003 (moved by the breach).
    assert (l1["tickets"], l1["resolved"], l1["first_contact_resolution_rate"]) == (2, 1, 0.0)
    assert (l2["tickets"], l2["resolved"], l2["first_contact_resolution_rate"]) == (3, 2, 0.5)
    assert l1["first_response"]["median_business_s"] == 0.75 * H   # 0.5 and 1 h
    assert l2["first_response"]["median_calendar_s"] == 9.0 * H    # 1 and 17 h
    assert (l1["breached"], l1["overdue_now"], l1["backlog_now"]) == (0, 0, 1)
    assert (l2["breached"], l2["overdue_now"], l2["backlog_now"]) == (1, 1, 1)
    # Answers count with their ticket: line 1 has 1002's three and 1004's, line 2 1000's
    # and 1001's two (given while it was still on line 1).
    assert (l1["response"]["count"], l2["response"]["count"]) == (4, 3)
    assert l1["response"]["mean_business_s"] == 3.5 * H / 4
    assert l2["response"]["mean_calendar_s"] == (1 + 17 + 1.5) * H / 3
    assert l1["csat"]["mean"] is None and l2["csat"]["mean"] == 3.5

    by_agent = {g["key"]: g["kpi"] for g in report(lived, "agent")["groups"]}
    # boris answered once, on carol's ticket: he has no ticket of his own.
    assert {k: v["tickets"] for k, v in by_agent.items()} == {ALICE: 3, CAROL: 1, "(none)": 1}
    assert by_agent[ALICE]["response"]["count"] == 5
    assert by_agent[CAROL]["response"]["count"] == 2
    assert by_agent[CAROL]["csat"]["mean"] == 2.0
    assert by_agent["(none)"]["overdue_now"] == 1


def run_cli(desk: Desk, tmp_path, *args: str):
    clock = tmp_path / "clock"
    clock.write_text(NOW.isoformat(), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(desk.ctx.settings.config_path), "report",
                                  "--since", "2026-11-23", "--until", "2026-11-27", *args],
                           env={**os.environ, "MAILDESK_CLOCK_FILE": str(clock)},
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_json_csv_and_table_formats_carry_the_same_figures(lived, tmp_path):
    """`--until 2026-11-27` takes the whole Friday; CSV opens in Excel with Russian names."""
    data = json.loads(run_cli(lived, tmp_path, "--format", "json", "--by", "line").stdout)
    assert data["format"] == "maildesk-report" and data["version"] == 1
    assert data["period"] == {"since": "2026-11-23T00:00:00+03:00",
                              "until": "2026-11-28T00:00:00+03:00"}
    assert data["timezone"] == "Europe/Moscow" and data["by"] == "line"
    assert data["totals"]["tickets"] == 5 and data["totals"]["first_response"]["count"] == 4

    out = tmp_path / "kpi.csv"
    run_cli(lived, tmp_path, "--format", "csv", "--by", "line", "--output", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")             # UTF-8 BOM: Excel reads it as UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["label"] for r in rows] == ["Line 1 / Первая линия", "Line 2 / Вторая линия",
                                          "Total"]
    assert rows[-1]["tickets"] == "5" and rows[-1]["first_response_median_business_s"] == "3600.0"
    assert rows[1]["response_mean_business_s"] == "5400.0"    # (1 + 2 + 1.5 h) / 3
    assert rows[0]["csat_mean"] == ""                  # no ratings on line 1: empty, not 0

    table = run_cli(lived, tmp_path, "--by", "line").stdout
    assert "Line 1 / Первая линия"[:11] in table
    assert "FCR %" in table and "33.3 %" in table and "1 h 00 min" in table
    assert all(len(line) <= 100 for line in table.splitlines())


def test_a_period_without_tickets_reports_zeros_and_no_means(lived):
    """Nothing created: counts are 0, means and shares are empty (not 0), days are listed."""
    with lived.ctx.make_session() as session:
        r = build_report(session, lived.ctx.settings, since=msk(2026, 10, 1),
                         until=msk(2026, 10, 8), by="category", now=NOW)
    t = r["totals"]
    assert (t["tickets"], t["resolved_share"], t["first_response"]["mean_business_s"]) == \
        (0, None, None)
    assert t["backlog_now"] == 2                     # a snapshot: open now, whenever created
    assert len(r["daily"]) == 7 and {d["created"] for d in r["daily"]} == {0}


def test_bad_periods_are_refused_with_a_clear_message(lived, tmp_path):
    clock = tmp_path / "clock"
    clock.write_text(NOW.isoformat(), encoding="utf-8")
    runner = CliRunner()
    env = {**os.environ, "MAILDESK_CLOCK_FILE": str(clock)}
    base = ["--config", str(lived.ctx.settings.config_path), "report"]
    bad = runner.invoke(main, [*base, "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "not a date or ISO time" in bad.output
    backwards = runner.invoke(main, [*base, "--since", "2026-11-27", "--until", "2026-11-20"],
                              env=env)
    assert backwards.exit_code == 2 and "is not before" in backwards.output




def test_html_format_writes_one_self_contained_page(lived, tmp_path):
    """`--format html --output`: one file with the charts inline and nothing to fetch."""
    out = tmp_path / "kpi.html"
    run_cli(lived, tmp_path, "--format", "html", "--by", "agent", "--output", str(out))
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") >= 4 and "Content-Security-Policy" in page
    assert "default-src 'none'" in page
    for attribute in ("src=", "<link", "@import", "url(http"):
        assert attribute not in page
    assert "alice@example.com" in page
