"""The HTML report page (maildesk.report.html) without a browser: it renders from empty data,
refers to no other address, and escapes what the data says."""

from __future__ import annotations

import re

import pytest

from maildesk.report.html import fmt_duration, fmt_share, to_html


def kpi(tickets: int = 0, **over) -> dict:
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
        "first_response_distribution": [
            {"label": "< 15 min", "upper_s": 900, "business": 0, "calendar": 0},
            {"label": "> 3 d", "upper_s": None, "business": 0, "calendar": 0}],
        "backlog_by_age": [{"label": "< 1 d", "upper_s": 86400, "count": 0},
                           {"label": "> 30 d", "upper_s": None, "count": 0}],
    }
    base.update(over)
    return base


def busy_report(label: str) -> dict:
    groups = [{"key": "line1", "label": label, "kpi": kpi(12, resolved=9, resolved_share=0.75)},
              {"key": "line2", "label": "Вторая линия", "kpi": kpi(3)}]
    return report(
        by="line", totals=kpi(15, resolved=9, resolved_share=0.6, breached=2,
                              breached_share=0.1333,
                              first_response={"count": 11, "mean_business_s": 5400.0,
                                              "median_business_s": 3600.0,
                                              "mean_calendar_s": 9000.0,
                                              "median_calendar_s": 4000.0}),
        groups=groups,
        daily=[{"date": f"2026-11-{d:02d}", "created": d % 5, "resolved": d % 3,
                "breached": d % 2} for d in range(1, 31)],
        first_response_distribution=[
            {"label": label, "upper_s": 900, "business": 4, "calendar": 3},
            {"label": "> 3 d", "upper_s": None, "business": 1, "calendar": 2}],
        backlog_by_age=[{"label": label, "upper_s": 86400, "count": 5},
                        {"label": "> 30 d", "upper_s": None, "count": 1}])


@pytest.fixture(scope="module")
def busy_page() -> str:
    return to_html(busy_report("Первая линия"))


def external_references(page: str) -> list[str]:
    """Anything that would make a browser fetch from another address."""
    found = []
    found += re.findall(r'''\b(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*'''
                        r'''(?!#|data:)([a-z][a-z0-9+.-]*:[^"'\s>]*|//[^"'\s>]*)''',
                        page, re.IGNORECASE)
    found += re.findall(r"url\(\s*['\"]?\s*(?!#|data:)[^)]*\)", page, re.IGNORECASE)
    found += re.findall(r"@import", page, re.IGNORECASE)
    # Any other absolute URL, except the SVG/XLink namespace names (never fetched).
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    found += [u for u in re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page)
              if u not in namespaces and not u.startswith("//-")]
    return found


def test_empty_report_renders() -> None:
    """A report for a quiet month (no tickets, no days, no grouping) still opens: dashes for
    the figures, 'no data' in the charts, and no comparison section."""
    page = to_html(report())
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page and '<meta charset="utf-8">' in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "maildesk — KPI report" in page
    for chart in ("chart-first-response", "chart-backlog-age", "chart-daily"):
        assert f'id="{chart}"' in page
    assert 'id="chart-groups"' not in page and "Comparison by" not in page
    assert page.count("<figcaption>") == 3
    assert "—" in page
    assert "made by maildesk" in page
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_missing_sections_and_null_values() -> None:
    """A report with sections absent or null does not break the page."""
    r = report(totals={}, first_response_distribution=None, backlog_by_age=[], daily=None,
               period={"since": None, "until": "2026-12-01T00:00:00+03:00"}, timezone=None)
    page = to_html(r)
    assert "Tickets per day" in page


def test_no_external_references(busy_page: str) -> None:
    """The page fetches nothing: no src/href to another address, no url(http…), no @import."""
    for page in (to_html(report()), busy_page):
        assert external_references(page) == []
        assert "<script" not in page.lower()
        assert "<img" not in page.lower() and "<link" not in page.lower()


def test_labels_are_escaped() -> None:
    """A line named with markup shows as text; it cannot add a script to the page."""
    evil = '<script>alert("x")</script> & Линия'
    page = to_html(busy_report(evil))
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Линия" in page
    assert "Вторая линия" in page


def test_grouped_report_has_comparison(busy_page: str) -> None:
    """Grouped by line: a comparison chart and one table row per line plus the total."""
    page = busy_page
    assert "Comparison by line" in page
    assert page.count('<figure class="chart') == 4
    assert page.count("<path") > 200
    table = page[page.index("<table>"):page.index("</table>")]
    assert table.count("<tr>") == 4  # header, two lines, total
    table = table.replace("\u00a0", " ")
    assert "1 h 00 min" in table and "75 %" in table and "13.3 %" in table


def test_deterministic(busy_page: str) -> None:
    """Rendering the same report twice gives the same bytes (ids and paths are stable)."""
    assert to_html(busy_report("Первая линия")) == busy_page


def test_svg_ids_do_not_collide(busy_page: str) -> None:
    """Several SVGs in one page: every id is unique, and every #reference points to one."""
    page = busy_page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    assert refs and refs <= set(ids)


@pytest.mark.parametrize("seconds,text", [
    (None, "—"), (45, "45 s"), (0, "0 s"), (59.4, "59 s"), (59.6, "1 min"), (750, "13 min"),
    (3599, "1 h 00 min"), (3600, "1 h 00 min"),
    (7500, "2 h 05 min"), (86399, "1 d"), (86400, "1 d"), (273600, "3 d 4 h"), (float("nan"), "—"),
])
def test_fmt_duration(seconds, text) -> None:
    """Durations read like a person writes them."""
    assert fmt_duration(seconds).replace("\u00a0", " ") == text


@pytest.mark.parametrize("share,text", [(None, "—"), (0.75, "75 %"), (0.6667, "66.7 %"),
                                        (0, "0 %"), (1, "100 %")])
def test_fmt_share(share, text) -> None:
    """Shares as percentages."""
    assert fmt_share(share).replace("\u00a0", " ") == text
