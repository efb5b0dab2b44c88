"""The knowledge-base figures of `maildesk report` (issue 19): per article, how often the
acknowledgement suggested it, agents inserted it, and a client's "this solved it" resolved a
ticket with it, and whether that solve held (no reopening within 7 days), was reopened, or is
still too young to tell. Tickets and their events are written straight into the database
(SQLite, and PostgreSQL when configured); the figures are compared with those worked out by
hand below, and the table and HTML outputs must show them.

The month (Moscow; period 2 Nov - 30 Nov, the report runs Thu 3 Dec 12:00):

  1001  suggested receipts + printer (3 Nov); solved with receipts 4 Nov 10:00; the client's
        earlier mail reopened it on 3 Nov (before the solve: does not count)    -> held
  1002  suggested receipts twice (in one list, and again in a second event); solved with
        receipts 6 Nov 10:00, reopened 13 Nov 09:00 (6 d 23 h later)            -> reopened
  1003  suggested password; solved 11 Nov 10:00, reopened 18 Nov 11:00 (7 d 1 h later: the
        solve had held by then)                                                  -> held
  1004  suggested password; solved 26 Nov 12:00, exactly 7 days before the report -> held
  1005  suggested printer; solved 27 Nov 09:00 (6 d 3 h before the report)     -> pending
  1006  suggested retired-article (no longer in the KB); solved 28 Nov, reopened 29 Nov
                                                                                 -> reopened
  1001, 1002: agents inserted #macro receipts twice and #kb printer once (8, 9 Nov).
  1007  outside the period: suggested printer on 30 Oct, solved with printer 30 Nov 00:00
        (the period's end, exclusive), an insertion on 1 Dec: none of it counts.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from desk import msk
from maildesk.cli import main
from maildesk.db.models import Ticket, TicketEvent, TicketStatus
from maildesk.report.formats import to_table
from maildesk.report.html import to_html
from maildesk.report.kb import kb_figures
from maildesk.report.kpi import build_report

SINCE, UNTIL = msk(2026, 11, 2), msk(2026, 11, 30)
NOW = msk(2026, 12, 3, 12, 0)
RECEIPTS, PRINTER, PASSWORD = "cash-register-receipts", "printer-not-printing", "password-reset"
RETIRED = "retired-article"


def ticket(number: int, created: datetime) -> Ticket:
    created = created.astimezone(timezone.utc)
    return Ticket(number=number, reply_token=f"t{number}", subject=f"s{number}",
                  subject_key=f"s{number}", status=TicketStatus.RESOLVED, priority="P3",
                  line="line1", requester=f"c{number}@example.org",
                  mailbox="support@example.com", created_at=created, updated_at=created,
                  last_activity_at=created)


def suggested(*slugs: str) -> tuple[str, dict]:
    return "kb_suggested", {"language": "en", "articles": list(slugs)}


def solved(slug: str) -> tuple[str, dict]:
    return "kb_solved", {"slug": slug, "language": "en", "article": 1}


def inserted(kind: str, slug: str) -> tuple[str, dict]:
    return "kb_inserted", {"kind": kind, "slug": slug, "language": "en"}


REOPENED = ("reopened", {})

MONTH: dict[int, list[tuple[datetime, tuple[str, dict]]]] = {
    1001: [(msk(2026, 11, 3, 10), suggested(RECEIPTS, PRINTER)),
           (msk(2026, 11, 3, 12), REOPENED),
           (msk(2026, 11, 4, 10), solved(RECEIPTS)),
           (msk(2026, 11, 8, 15), inserted("macro", RECEIPTS)),
           (msk(2026, 11, 8, 15), inserted("kb", PRINTER))],
    1002: [(msk(2026, 11, 5, 10), suggested(RECEIPTS, RECEIPTS)),
           (msk(2026, 11, 5, 11), suggested(RECEIPTS)),
           (msk(2026, 11, 6, 10), solved(RECEIPTS)),
           (msk(2026, 11, 9, 10), inserted("macro", RECEIPTS)),
           (msk(2026, 11, 13, 9), REOPENED)],
    1003: [(msk(2026, 11, 10, 10), suggested(PASSWORD)),
           (msk(2026, 11, 10, 10), ("created", {})),
           (msk(2026, 11, 11, 10), solved(PASSWORD)),
           (msk(2026, 11, 18, 11), REOPENED)],
    1004: [(msk(2026, 11, 26, 10), suggested(PASSWORD)),
           (msk(2026, 11, 26, 12), solved(PASSWORD))],
    1005: [(msk(2026, 11, 27, 8), suggested(PRINTER)),
           (msk(2026, 11, 27, 9), solved(PRINTER))],
    1006: [(msk(2026, 11, 20, 10), suggested(RETIRED)),
           (msk(2026, 11, 28, 10), solved(RETIRED)),
           (msk(2026, 11, 29, 10), REOPENED)],
    1007: [(msk(2026, 10, 30, 10), suggested(PRINTER)),
           (msk(2026, 11, 30, 0), solved(PRINTER)),
           (msk(2026, 12, 1, 10), inserted("macro", PRINTER))],
}


@pytest.fixture
def month(ctx):
    with ctx.make_session() as session:
        tickets = {n: ticket(n, events[0][0]) for n, events in MONTH.items()}
        session.add_all(tickets.values())
        session.flush()
        session.add_all(TicketEvent(ticket_id=tickets[n].id, at=at.astimezone(timezone.utc),
                                    kind=kind, actor=None, data=data)
                        for n, events in MONTH.items() for at, (kind, data) in events)
        session.commit()
    return ctx


def report(ctx, now: datetime = NOW) -> dict:
    with ctx.make_session() as session:
        return build_report(session, ctx.settings, since=SINCE, until=UNTIL, by=None, now=now)


def test_each_article_counts_suggestions_insertions_and_solves_that_held(month):
    kb = report(month)["knowledge_base"]
    assert kb["hold_s"] == 7 * 86400
    rows = {a["slug"]: a for a in kb["articles"]}
    # Busiest first (suggested + inserted), then by slug.
    assert [a["slug"] for a in kb["articles"]] == [RECEIPTS, PRINTER, PASSWORD, RETIRED]
    figures = ("suggested", "inserted", "inserted_macro", "inserted_kb", "solved", "held",
               "reopened", "pending", "self_service")
    # 1002's two suggestions of receipts are one ticket; 1007's October one is outside.
    assert {slug: tuple(a[f] for f in figures) for slug, a in rows.items()} == {
        RECEIPTS: (2, 2, 2, 0, 2, 1, 1, 0, 0.5),      # 1001 held, 1002 reopened
        PRINTER: (2, 1, 0, 1, 1, 0, 0, 1, 0.0),       # 1005 pending: not a success yet
        PASSWORD: (2, 0, 0, 0, 2, 2, 0, 0, 1.0),      # 1003 reopened too late, 1004 on the edge
        RETIRED: (1, 0, 0, 0, 1, 0, 1, 0, 0.0),       # reopened before its 7 days were up
    }
    assert kb["totals"] == {
        "tickets_suggested": 6, "suggestions": 7, "inserted": 3,
        "inserted_macro": 2, "inserted_kb": 1, "solved": 6, "tickets_solved": 6,
        "held": 3, "reopened": 2, "pending": 1, "self_service": 0.5}


def test_titles_come_from_the_knowledge_base_and_a_removed_article_shows_its_slug(month):
    titles = {a["slug"]: a["title"] for a in report(month)["knowledge_base"]["articles"]}
    assert titles == {RECEIPTS: "The cash register does not print receipts",
                      PRINTER: "The printer does not print",
                      PASSWORD: "Resetting your password",
                      RETIRED: RETIRED}


def test_a_pending_solve_holds_once_seven_quiet_days_have_passed(month):
    """The same month reported a week later: 1005's solve has held; nothing else changed."""
    later = report(month, now=msk(2026, 12, 10, 12))["knowledge_base"]
    printer = next(a for a in later["articles"] if a["slug"] == PRINTER)
    assert (printer["held"], printer["pending"], printer["self_service"]) == (1, 0, 0.5)
    assert (later["totals"]["held"], later["totals"]["reopened"],
            later["totals"]["pending"]) == (4, 2, 0)


def test_one_second_before_the_seven_days_a_solve_is_still_pending(month):
    with month.make_session() as session:
        kb = kb_figures(session, since=SINCE, until=UNTIL,
                        now=msk(2026, 12, 3, 12) - timedelta(seconds=1))
    password = next(a for a in kb["articles"] if a["slug"] == PASSWORD)
    assert (password["held"], password["pending"]) == (1, 1)     # 1004 not yet
    assert password["title"] == PASSWORD                         # no titles given


def test_the_reopenings_read_in_small_chunks_give_the_same_figures(month, monkeypatch):
    """The solved tickets' reopenings are read 500 ticket ids at a time; two at a time here."""
    whole = report(month)["knowledge_base"]
    monkeypatch.setattr("maildesk.report.kb.CHUNK", 2)
    assert report(month)["knowledge_base"] == whole


def test_a_period_without_knowledge_base_events_shows_nothing(month):
    with month.make_session() as session:
        r = build_report(session, month.settings, since=msk(2026, 9, 1), until=msk(2026, 10, 1),
                         by=None, now=NOW)
    assert r["knowledge_base"]["articles"] == []
    assert r["knowledge_base"]["totals"]["tickets_suggested"] == 0
    assert r["knowledge_base"]["totals"]["self_service"] is None
    assert "Knowledge base" not in to_table(r)
    assert "No article was suggested, inserted or solved" in to_html(r)


def run_cli(ctx, tmp_path, *args: str) -> str:
    clock = tmp_path / "clock"
    clock.write_text(NOW.isoformat(), encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(ctx.settings.config_path), "report",
                                       "--since", "2026-11-02", "--until", "2026-11-29", *args],
                                env={**os.environ, "MAILDESK_CLOCK_FILE": str(clock),
                                     "COLUMNS": "100"},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_table_shows_a_knowledge_base_section(month, tmp_path):
    table = run_cli(month, tmp_path)
    assert all(len(line) <= 100 for line in table.splitlines())
    section = table[table.index("Knowledge base"):]
    assert "6 tickets got suggested articles" in section
    assert "6 solved" in section and "pending: 1" in section
    lines = section.splitlines()
    head = next(line for line in lines if line.startswith("Article"))
    assert "Held 7 d" in head and "Reopened" in head and "Pending" in head
    receipts = next(line for line in lines
                    if line.startswith("The cash register does not print"))
    assert receipts.split()[-8:] == ["2", "2", "2", "1", "1", "0", "50", "%"]
    retired = next(line for line in lines if line.startswith(RETIRED))
    assert retired.split()[-8:] == ["1", "0", "1", "0", "1", "0", "0", "%"]
    # A narrow terminal shortens the titles, never wraps the rows.
    narrow = to_table(report(month), width=80)
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert any(line.startswith("The cash") and line.endswith("50 %")
               for line in narrow.splitlines())


def test_the_html_page_has_a_knowledge_base_table(month, tmp_path):
    out = tmp_path / "kpi.html"
    run_cli(month, tmp_path, "--format", "html", "--output", str(out))
    page = out.read_text(encoding="utf-8")
    section = page[page.index('id="knowledge-base"'):page.index("</section>",
                                                              page.index('id="knowledge-base"'))]
    assert "<h2" in section and "Knowledge base" in section
    assert "Held 7\u00a0days" in section and "Self-service" in section
    assert section.count("<tr>") == 1 + 4 + 1          # the head, four articles, all articles
    assert "The cash register does not print receipts" in section
    assert f"<td>{RETIRED}</td>" in section            # no title: the slug
    assert "50\u00a0%" in section and "100\u00a0%" in section
    # Still one self-contained page.
    for attribute in ("src=", "<link", "@import", "url(http"):
        assert attribute not in page


def test_json_carries_the_knowledge_base_beside_the_kpis(month, tmp_path):
    import json
    data = json.loads(run_cli(month, tmp_path, "--format", "json", "--by", "line"))
    assert data["version"] == 1
    assert data["knowledge_base"]["totals"]["solved"] == 6
    assert all("knowledge_base" not in g for g in data["groups"])
