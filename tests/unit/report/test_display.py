"""The report's one rounding rule and its words (maildesk.report.display), and that the
table, the CSV and the HTML page of one report show each figure alike."""

from __future__ import annotations

import csv
import io

import pytest

from maildesk.report.display import (KPI_FIGURES, NBSP, change_of, counted, fmt_change,
                                     fmt_count, fmt_duration, fmt_score, fmt_share, kpi_change,
                                     plural, round_half_up, tone)
from maildesk.report.formats import format_duration, to_csv, to_table
from maildesk.report.html import to_html



def kpi(tickets: int = 0, **over) -> dict:
    """A KPI object without data but what `over` gives."""
    base = {
        "tickets": tickets, "resolved": 0, "resolved_share": None,
        "first_contact_resolved": 0, "first_contact_resolution_rate": None,
        "first_response": {"count": 0, "mean_business_s": None, "median_business_s": None,
                           "mean_calendar_s": None, "median_calendar_s": None},
        "response": {"count": 0, "mean_business_s": None, "mean_calendar_s": None},
        "handling": {"count": 0, "mean_business_s": None, "mean_calendar_s": None},
        "breached": 0, "breached_share": None, "overdue_now": 0, "backlog_now": 0,
        "reopened": 0, "reopen_rate": None,
        "csat": {"resolved": 0, "ratings": 0, "response_rate": None, "mean": None,
                 "satisfied_share": None, "distribution": {str(i): 0 for i in range(1, 6)}},
    }
    base.update(over)
    return base


def report(**over) -> dict:
    base = {
        "format": "maildesk-report", "version": 1,
        "generated_at": "2026-12-01T10:00:00+03:00",
        "period": {"since": "2026-11-01T00:00:00+03:00", "until": "2026-12-01T00:00:00+03:00"},
        "timezone": "Europe/Moscow", "by": None, "totals": kpi(), "groups": [], "daily": [],
        "first_response_distribution": [], "backlog_by_age": [],
    }
    base.update(over)
    return base


def plain(text: str) -> str:
    return text.replace(NBSP, " ")


@pytest.mark.parametrize("value,digits,rounded", [
    (2.5, 0, 3), (3.5, 0, 4), (-2.5, 0, -3), (4079.65, 1, 4079.7), (0.12345, 4, 0.1235),
    (1.005, 2, 1.01), (0.66665, 4, 0.6667), (None, 1, None), (float("nan"), 1, None),
])
def test_round_half_up_on_the_decimal_value(value, digits, rounded) -> None:
    """Half up (away from zero), on the number as written: 1.005 is 1.01, not Python's 1.0."""
    assert round_half_up(value, digits) == rounded


@pytest.mark.parametrize("seconds,text", [
    (4079.6, "1 h 08 min"), (4079.4, "1 h 08 min"), (4050, "1 h 08 min"), (4049.9, "1 h 07 min"),
    (29.5, "30 s"), (59.5, "1 min"), (89.9, "1 min"), (90, "2 min"), (750, "13 min"),
    (3569.9, "59 min"), (3570, "1 h 00 min"), (86370, "1 d"), (88199, "1 d"), (88200, "1 d 1 h"),
    (-750, "−13 min"), (-0.4, "0 s"),
])
def test_durations_round_to_the_unit_shown(seconds, text) -> None:
    """Minutes rounded half up from the seconds (the table once cut them: 4079.4 s was
    "1 h 07 min" there and "1 h 08 min" on the page)."""
    assert plain(fmt_duration(seconds)) == text
    assert format_duration(seconds) == text       # the table's: the same words


@pytest.mark.parametrize("share,text", [(0.1235, "12.4 %"), (0.12345, "12.3 %"),
                                        (0.9995, "100 %"), (0.0005, "0.1 %"), (0.5, "50 %")])
def test_shares_in_tenths_of_a_percent(share, text) -> None:
    assert plain(fmt_share(share)) == text


def test_counts_and_scores() -> None:
    assert plain(fmt_count(1234567)) == "1 234 567" and fmt_count(0) == "0"
    assert fmt_count(1234, " ") == "1 234" and fmt_count(None) == "—"
    assert fmt_score(3.125) == "3.13" and fmt_score(4) == "4.00" and fmt_score(None) == "—"


@pytest.mark.parametrize("n,en,ru", [
    (0, "0 tickets", "0 заявок"), (1, "1 ticket", "1 заявка"), (2, "2 tickets", "2 заявки"),
    (4, "4 tickets", "4 заявки"), (5, "5 tickets", "5 заявок"), (11, "11 tickets", "11 заявок"),
    (12, "12 tickets", "12 заявок"), (21, "21 tickets", "21 заявка"),
    (22, "22 tickets", "22 заявки"), (25, "25 tickets", "25 заявок"),
    (101, "101 tickets", "101 заявка"), (111, "111 tickets", "111 заявок"),
    (1001, "1 001 tickets", "1 001 заявка"),
])
def test_plural_forms(n, en, ru) -> None:
    assert plain(counted(n, "ticket")) == en
    assert plain(counted(n, "ticket", "ru")) == ru


def test_plural_words() -> None:
    assert [plural(n, "rating") for n in (1, 2)] == ["rating", "ratings"]
    assert [plural(n, "day") for n in (1, 7.0)] == ["day", "days"]
    assert [plural(n, "article", "ru") for n in (1, 3, 5)] == ["статья", "статьи", "статей"]


@pytest.mark.parametrize("change,kind,text", [
    (279.4, "duration", "+5 min"), (-7740, "duration", "−2 h 09 min"), (0.4, "duration", "±0"),
    (20, "duration", "+20 s"),
    (-37.14, "share", "−37.1 pp"), (0.04, "share", "±0"), (16.67, "share", "+16.7 pp"),
    (3, "count", "+3"), (-1234, "count", "−1 234"), (0, "count", "±0"),
    (-0.05, "score", "−0.05"), (None, "count", ""),
])
def test_changes_are_signed_in_the_figures_unit(change, kind, text) -> None:
    assert plain(fmt_change(change, kind)) == text


def test_a_change_is_current_minus_previous_in_the_figures_unit() -> None:
    assert change_of(0.4286, 0.8, "share") == -37.14            # percentage points
    assert change_of(4079.4, 3800.0, "duration") == 279.4
    assert change_of(3, 4, "count") == -1 and isinstance(change_of(3, 4, "count"), int)
    assert change_of(None, 4, "count") is None and change_of(3, 4, "snapshot") is None
    change = kpi_change(kpi(7, resolved=3, resolved_share=0.4286),
                        kpi(5, resolved=4, resolved_share=0.8))
    assert (change["tickets"], change["resolved"], change["resolved_share"]) == (2, -1, -37.14)
    assert change["first_response"]["mean_business_s"] is None     # no data in either
    assert change["overdue_now"] is None and change["backlog_now"] is None
    assert change["csat"]["distribution"] == {str(s): 0 for s in range(1, 6)}


def test_which_way_is_better() -> None:
    """Response times: lower is better; shares: higher; breaches and reopenings: lower."""
    assert tone(("first_response", "median_business_s"), -60) == "better"
    assert tone(("handling", "mean_calendar_s"), 600) == "worse"
    assert tone(("resolved_share",), 2.5) == "better"
    assert tone(("sla_met", "resolution", "share"), -1.0) == "worse"
    assert tone(("breached",), 2) == "worse" and tone(("breached_share",), -3.1) == "better"
    assert tone(("reopen_rate",), 1.5) == "worse"
    assert tone(("csat", "mean"), 0.2) == "better"
    assert tone(("tickets",), 5) == "neutral"
    assert tone(("response", "mean_business_s"), 0.3) == "same"     # shows as ±0
    assert tone(("backlog_now",), None) == ""
    assert all(kind in ("count", "share", "duration", "score", "snapshot")
               for kind, _ in KPI_FIGURES.values())


@pytest.mark.parametrize("seconds", [4079.6, 4079.4, 4050.0, 750.0, 59.5, 88200.0])
def test_one_report_shows_a_duration_alike_in_the_table_csv_and_page(seconds) -> None:
    """The same figure: one text in the table and on the page, and the CSV's seconds read
    back through the same rule give it too."""
    fr = {"count": 5, "mean_business_s": seconds, "median_business_s": seconds,
          "mean_calendar_s": seconds, "median_calendar_s": seconds}
    r = report(totals=kpi(5, first_response=fr))
    text = plain(fmt_duration(seconds))
    row = next(line for line in to_table(r).splitlines()
               if line.startswith("1st resp. mean (bus.)"))
    assert row.split("  ")[-1].strip() == text
    rows = list(csv.DictReader(io.StringIO(to_csv(r).decode("utf-8-sig"))))
    assert plain(fmt_duration(float(rows[-1]["first_response_mean_business_s"]))) == text
    page = plain(to_html(r))
    card = page[page.index("First response, mean</div>"):]
    card = card[:card.index("</li>")]
    assert f'<div class="value">{text}</div>' in card and f"calendar: {text}" in card


def test_the_table_and_page_say_one_ticket() -> None:
    r = report(totals=kpi(1, resolved=1, resolved_share=1.0, first_contact_resolved=1,
                          first_contact_resolution_rate=1.0,
                          csat={"resolved": 1, "ratings": 1, "response_rate": 1.0, "mean": 5.0,
                                "satisfied_share": 1.0,
                                "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}}))
    page = plain(to_html(r))
    assert "1 of 1 ticket<" in page and "1 ticket<" in page and "1 rating, scale" in page
    assert "1 tickets" not in page and "1 ratings" not in page
