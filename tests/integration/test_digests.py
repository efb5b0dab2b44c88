"""The morning digest of each line mailbox (issue 20), on a controlled clock: one per business
morning of the line's calendar (none on weekends and on Russian public holidays), listing
exactly the overdue, due-today, unassigned and waiting tickets of its own line; never twice,
neither on a second sweep nor after a restart nor with two desks sweeping one PostgreSQL
database at the same moment; late but due on a late start, never back-filled.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from desk import LINE1, LINE2, LINE3, MSK, SUPPORT, VENDOR, Desk, body, edit_lines, msk
from helpers import wait_for
from maildesk.app import TimersThread
from maildesk.config import ConfigError, load_settings
from maildesk.config.settings import Digests, ReportMailing
from maildesk.db.models import Outbox, ScheduledMail, TicketStatus
from maildesk.outbound.compose import Composer, sample_context
from maildesk.outbound.plural import plural_word
from maildesk.services.schedules import report_period, run_schedules

TITLES = {"OVERDUE": "overdue", "DUE TODAY": "due_today", "UNASSIGNED": "unassigned",
          "WAITING ON THE CLIENT FOR MORE THAN 3 DAYS": "waiting"}


@pytest.fixture
def make_desk(config_set):
    config_set.write(digests={"enabled": True, "at": "09:00", "waiting_days": 3})
    desks: list[Desk] = []

    def make(start: datetime) -> Desk:
        desk = Desk(config_set.path, start)
        desks.append(desk)
        return desk
    yield make
    for d in desks:
        d.close()


def sweep(desk: Desk) -> int:
    """One schedule step of the timer sweep, at the desk's clock."""
    return run_schedules(desk.ctx, desk.ctx.settings, desk.composer)


def sections(msg) -> dict[str, list[int]]:
    """The ticket numbers the digest's text part lists, per section."""
    out: dict[str, list[int]] = {}
    current = None
    for line in body(msg).splitlines():
        m = re.match(r"== (.+) \((\d+)\) ==$", line)
        if m:
            current = TITLES[m.group(1)]
            out[current] = []
            assert int(m.group(2)) >= 1
            continue
        m = re.match(r"\[MD-(\d+)\] ", line)
        if m:
            assert current is not None, line
            out[current].append(int(m.group(1)))
    return out


def digests(desk: Desk, to: str) -> list:
    return [m for m in desk.mailbox(to) if m["Subject"].startswith("Digest of")]


def keys(desk: Desk) -> dict[str, int]:
    with desk.ctx.make_session() as s:
        return {r.key: r.mails for r in s.scalars(select(ScheduledMail))}


# -- what a digest lists ----------------------------------------------------------------------
def test_each_line_gets_one_digest_per_morning_listing_exactly_its_own_tickets(make_desk,
                                                                             config_set):
    edit_lines(config_set, vendor={"external": True})
    desk = make_desk(msk(2026, 11, 19, 10, 0))                       # a Thursday
    waiting = desk.client_writes("Printer A is out of toner", "Please help.").number
    desk.at(msk(2026, 11, 19, 10, 30))
    desk.agent_replies(waiting, "#pending\nPlease send us a photo of the display.")
    recent = desk.client_writes("Printer B jams", "It jams.", sender="b@shop.example.ru").number
    desk.at(msk(2026, 11, 20, 10, 0))                                 # Friday
    desk.agent_replies(recent, "#pending\nWhich tray?")  # pending 2 d 23 h on Monday: not yet
    late = desk.client_writes("Scanner broken", "No scans.", sender="c@shop.example.ru").number
    cash = desk.client_writes("Касса не работает", "Совсем.", sender="d@shop.example.ru").number
    desk.at(msk(2026, 11, 20, 17, 0))
    today = desk.client_writes("Keyboard sticks", "Keys.", sender="e@shop.example.ru").number
    desk.at(msk(2026, 11, 20, 17, 30))
    fine = desk.client_writes("Monitor flickers", "Flicker.", sender="f@shop.example.ru").number
    desk.agent_replies(fine, "#assign me\nWe are on it.")
    t = {n: desk.ticket(n) for n in (waiting, recent, late, cash, today, fine)}
    assert [t[n].line for n in (waiting, recent, late, today, fine)] == ["line1"] * 5
    assert t[cash].line == "line2" and t[cash].priority == "P1"
    assert t[late].first_response_due_at == msk(2026, 11, 20, 18, 0)
    assert t[today].first_response_due_at == msk(2026, 11, 23, 16, 0)
    assert t[waiting].status is t[recent].status is TicketStatus.PENDING
    assert t[fine].assignee == "alice@example.com"
    desk.read_all_mailboxes()

    desk.at(msk(2026, 11, 23, 8, 59))                                 # Monday, before 09:00
    assert sweep(desk) == 0 and keys(desk) == {}
    desk.at(msk(2026, 11, 23, 9, 0))
    assert sweep(desk) == 2                                           # line1, line2
    assert keys(desk) == {"digest:line1:2026-11-23": 1, "digest:line2:2026-11-23": 1,
                          "digest:line3:2026-11-23": 0}                # line3: nothing to list
    (one,) = digests(desk, LINE1)
    (two,) = digests(desk, LINE2)
    assert sections(one) == {"overdue": [late], "due_today": [today],
                             "unassigned": [late, today], "waiting": [waiting]}
    assert sections(two) == {"overdue": [cash], "unassigned": [cash]}
    assert desk.mailbox(LINE3) == [] and desk.mailbox(VENDOR) == []   # external: no digest

    # What a line lead sees.
    assert one["Subject"] == "Digest of Line 1 / Первая линия, Monday 23 November: 3 tickets " \
                             "to look at"
    assert one["From"].addresses[0].addr_spec == SUPPORT
    assert one["To"].addresses[0].addr_spec == LINE1
    assert one["Reply-To"].addresses[0].addr_spec == LINE1
    assert one["Auto-Submitted"] == "auto-generated"
    assert one["Message-ID"] != two["Message-ID"] and one["Message-ID"].endswith("@example.com>")
    assert one["In-Reply-To"] is None
    text_part = body(one)
    assert "first response was due on Friday 20 November at 18:00" in text_part
    assert "first response due by Monday 23 November, 16:00" in text_part
    assert "waiting on the client for 3 days, pending since Thursday 19 November, 10:30" \
        in text_part
    html = one.get_body(("html",)).get_content()
    for n in (late, today, waiting):
        reply = f"support+{n}-{desk.ticket(n).agent_token}@example.com"
        assert f"reply: {reply}" in text_part
        assert f'href="mailto:{reply}?subject=Re%3A%20%5BMD-{n}%5D%20' in html
    for n in (recent, fine, cash):
        assert f"[MD-{n}]" not in text_part

    # Again, later that day, and after a restart: nothing more.
    assert sweep(desk) == 0
    desk.at(msk(2026, 11, 23, 15, 0))
    assert sweep(desk) == 0
    restarted = make_desk(msk(2026, 11, 23, 15, 5))
    assert sweep(restarted) == 0
    assert digests(desk, LINE1) == [] and digests(desk, LINE2) == []
    with desk.ctx.make_session() as s:
        rows = list(s.scalars(select(Outbox).where(Outbox.kind == "digest").order_by(Outbox.id)))
    assert [(r.ticket_id, r.recipients) for r in rows] == [(None, [LINE1]), (None, [LINE2])]

    # Tuesday: the next one.
    desk.at(msk(2026, 11, 24, 9, 0))
    assert sweep(desk) == 2
    assert len(digests(desk, LINE1)) == 1 and len(digests(desk, LINE2)) == 1


def test_one_digest_per_business_morning_none_on_weekends_and_holidays(make_desk):
    """4 November is a Russian public holiday (Unity Day); the 7th and 8th a weekend."""
    desk = make_desk(msk(2026, 11, 2, 10, 0))                         # Monday
    calendar = desk.ctx.settings.calendars["moscow"]
    assert not calendar.spans_on(date(2026, 11, 4))
    desk.client_writes("Printer does not print", "Nothing comes out.")   # nobody takes it
    desk.read_all_mailboxes()
    sent = Counter()
    day = date(2026, 11, 2)
    while day <= date(2026, 11, 10):
        for hour, minute in ((8, 0), (9, 0), (9, 30), (13, 0), (18, 30)):
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=MSK)
            if at > desk.clock.current:
                desk.at(at)
                sweep(desk)
                for msg in digests(desk, LINE1):
                    sent[day] += 1
                    assert "UNASSIGNED (1)" in body(msg)
        day += timedelta(days=1)
    # The 2nd: the desk's first sweep came at 13:00, late but due.
    assert sent == {date(2026, 11, d): 1 for d in (2, 3, 5, 6, 9, 10)}
    assert not any(k.endswith(("11-04", "11-07", "11-08")) for k in keys(desk))


def test_a_late_start_sends_todays_digest_and_never_the_missed_days(make_desk):
    desk = make_desk(msk(2026, 11, 23, 10, 0))
    desk.client_writes("Printer does not print", "Nothing comes out.")
    desk.read_all_mailboxes()
    # Nothing ran on Monday afternoon, Tuesday or Wednesday morning: a daemon starts at 15:00.
    late = make_desk(msk(2026, 11, 25, 15, 0))
    assert sweep(late) == 1
    assert {k.rsplit(":", 1)[1] for k in keys(late)} == {"2026-11-25"}
    assert {k: n for k, n in keys(late).items() if n} == {"digest:line1:2026-11-25": 1}
    (msg,) = digests(late, LINE1)
    assert "Wednesday 25 November" in msg["Subject"]
    late.at(msk(2026, 11, 26, 8, 59))
    assert sweep(late) == 0


def test_the_timers_thread_sends_the_digest(make_desk, config_set):
    edit_lines(config_set, line1={"ola": None})
    desk = make_desk(msk(2026, 11, 24, 8, 0))                         # Tuesday, before work
    number = desk.client_writes("Printer does not print", "Nothing comes out.").number
    desk.read_all_mailboxes()
    desk.at(msk(2026, 11, 24, 9, 5))
    woken = []
    thread = TimersThread(desk.ctx, on_outbox=lambda: woken.append(1))
    assert thread._step() is False
    assert woken == [1]
    (msg,) = digests(desk, LINE1)
    assert sections(msg) == {"due_today": [number], "unassigned": [number]}
    assert thread._step() is False and woken == [1]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_in_serve_the_digest_waits_its_turn_for_the_write_lock_instead_of_failing(
        make_desk, config_set, caplog, monkeypatch):
    """The timers thread queues the digest in the daemon's write turn (IntakeGate), as its
    sweeps do: while another writer of the daemon holds SQLite's lock for five lock timeouts,
    the digest waits for it; it is not put off to the next sweep as "database busy"."""
    import sqlite3

    import maildesk.app
    from maildesk.app import IntakeGate

    monkeypatch.setattr(maildesk.app, "run_timers", lambda *a, **kw: 0)   # the digest alone

    config_set.write(database={"lock_timeout_ms": 200})
    edit_lines(config_set, line1={"ola": None})
    desk = make_desk(msk(2026, 11, 24, 8, 0))                         # Tuesday, before work
    number = desk.client_writes("Printer does not print", "Nothing comes out.").number
    desk.read_all_mailboxes()
    desk.at(msk(2026, 11, 24, 9, 5))
    gate = IntakeGate()
    thread = TimersThread(desk.ctx, write_turn=gate.turn)
    blocker = sqlite3.connect(desk.ctx.engine.url.database, isolation_level=None)
    caplog.set_level(logging.WARNING)
    stepped = threading.Thread(target=thread._step)
    try:
        with gate.turn:                      # the processor or the deliverer, writing
            blocker.execute("BEGIN IMMEDIATE")
            stepped.start()
            stepped.join(1.0)                # five lock timeouts (not an assertion on speed)
            assert stepped.is_alive()        # waiting for its turn
            blocker.execute("COMMIT")
        stepped.join(60)
    finally:
        blocker.close()
    (msg,) = digests(desk, LINE1)
    assert sections(msg) == {"due_today": [number], "unassigned": [number]}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_digest_is_not_sent_when_it_would_list_nothing_and_lines_can_be_chosen(
        make_desk, config_set):
    config_set.write(digests={"lines": ["line2", "vendor"]})
    desk = make_desk(msk(2026, 11, 23, 10, 0))
    desk.client_writes("Printer does not print", "Nothing comes out.")   # line1: not chosen
    desk.read_all_mailboxes()
    desk.at(msk(2026, 11, 24, 9, 0))
    assert sweep(desk) == 0
    assert keys(desk) == {"digest:line2:2026-11-24": 0, "digest:vendor:2026-11-24": 0}
    assert desk.mailbox(LINE1) == [] and desk.mailbox(LINE2) == []


# -- two desks, one PostgreSQL database -----------------------------------------------------------
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_desks_sweeping_at_the_same_moment_send_one_digest_per_line(make_desk, caplog):
    first = make_desk(msk(2026, 11, 20, 10, 0))
    first.client_writes("Printer does not print", "Nothing comes out.")          # line1
    first.client_writes("Касса не работает", "Совсем.", sender="d@shop.example.ru")  # line2
    first.read_all_mailboxes()
    second = make_desk(msk(2026, 11, 20, 10, 0))
    for day in (23, 24, 25):
        at = msk(2026, 11, day, 9, 0)
        first.at(at)
        second.at(at)
        barrier = threading.Barrier(2)
        queued: list[int] = []

        def run(desk: Desk) -> None:
            barrier.wait()
            queued.append(sweep(desk))
        threads = [threading.Thread(target=run, args=(d,)) for d in (first, second)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert sum(queued) == 2, queued
        assert len(digests(first, LINE1)) == 1 and len(digests(first, LINE2)) == 1

    # The race decided by the key: a desk whose insert meets another's uncommitted one waits
    # for it, meets the unique key after its commit, rolls back and queues nothing for it.
    at = msk(2026, 11, 26, 9, 0)
    first.at(at)
    second.at(at)
    caplog.set_level(logging.INFO, logger="maildesk")
    holder = first.ctx.make_session()
    holder.begin()
    holder.add(ScheduledMail(key="digest:line1:2026-11-26", sent_at=at, mails=0))
    holder.flush()
    result: list[int] = []
    th = threading.Thread(target=lambda: result.append(sweep(second)))
    th.start()
    try:
        with first.ctx.engine.connect() as conn:
            wait_for(lambda: conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar(), "the second insert to wait", 30)
    finally:
        holder.commit()
        holder.close()
        th.join(60)
    assert result == [1]                                   # line2's only
    assert "digest:line1:2026-11-26: done by another process" in caplog.messages
    assert digests(first, LINE1) == [] and len(digests(first, LINE2)) == 1
    assert keys(first)["digest:line1:2026-11-26"] == 0


# -- plural forms and the Russian digest ----------------------------------------------------------
def test_plural_forms_follow_cldr():
    ru = dict(one="заявка", few="заявки", many="заявок", other="заявки")
    assert [plural_word(n, "ru", **ru) for n in (0, 1, 2, 4, 5, 11, 12, 21, 22, 25, 101, 111)] \
        == ["заявок", "заявка", "заявки", "заявки", "заявок", "заявок", "заявок", "заявка",
            "заявки", "заявок", "заявка", "заявок"]
    assert [plural_word(n, "en", one="ticket", other="tickets") for n in (0, 1, 2, 21)] == \
        ["tickets", "ticket", "tickets", "tickets"]
    assert plural_word(5, "ru", one="день", other="дня") == "дня"   # no `many`: other
    with pytest.raises(ValueError):
        plural_word(1, "en", single="x")


def test_the_russian_digest_says_1_zayavka_2_zayavki_5_zayavok(ctx):
    composer = Composer(ctx.settings.templates_dir)
    sample = sample_context(ctx.settings)
    for n, word in ((1, "заявка"), (2, "заявки"), (5, "заявок"), (21, "заявка"), (14, "заявок")):
        context = {**sample, "digest": {**sample["digest"], "total": n, "waiting_days": n}}
        rendered = composer.render("digest", "ru", context)
        assert rendered.subject.endswith(f": {n} {word}"), rendered.subject
        assert f"Требуют внимания: {n} {word}." in rendered.text
        days = {1: "ДНЯ", 21: "ДНЯ"}.get(n, "ДНЕЙ")
        assert f"ЖДУТ ОТВЕТА КЛИЕНТА ДОЛЬШЕ {n} {days}" in rendered.text
        en = composer.render("digest", "en", context)
        assert en.subject.endswith(f": {n} {'ticket' if n == 1 else 'tickets'} to look at")


def test_report_periods_from_the_calendar(ctx):
    """When a scheduled report is due and which period it covers (services/schedules.py)."""
    moscow = ctx.settings.calendars["moscow"]
    eight = datetime.min.time().replace(hour=8)

    def period(every: str, at: datetime, on: int = 0):
        p = report_period(every, on, eight, moscow, at)
        return p and (p.label, p.start.date().isoformat(), p.end.date().isoformat())
    # Weekly on Monday: from 08:00 Monday, the week before; late in the week, still that one.
    assert period("week", msk(2026, 12, 7, 7, 59)) is None
    assert period("week", msk(2026, 12, 7, 8, 0)) == ("2026-W49", "2026-11-30", "2026-12-07")
    assert period("week", msk(2026, 12, 10, 15, 0)) == ("2026-W49", "2026-11-30", "2026-12-07")
    # On Friday: the 7 days before Friday.
    assert period("week", msk(2026, 12, 11, 9, 0), on=4) == ("2026-W49", "2026-12-04",
                                                             "2026-12-11")
    # Monday 2 November is a working day; Wednesday 4 November (a holiday) shifts nothing here;
    # a week whose Monday is a holiday (4 January 2027, New Year holidays to the 8th) with no
    # business day at all that week goes on the Monday itself.
    assert period("week", msk(2027, 1, 4, 8, 0)) == ("2026-W53", "2026-12-28", "2027-01-04")
    # Monthly: from the first business day of the month (1 December 2026 is a Tuesday).
    assert period("month", msk(2026, 12, 1, 8, 0)) == ("2026-11", "2026-11-01", "2026-12-01")
    # ... and January 2027's first business day is the 11th.
    assert period("month", msk(2027, 1, 8, 9, 0)) is None
    assert period("month", msk(2027, 1, 11, 8, 0)) == ("2026-12", "2026-12-01", "2027-01-01")
    # Daily: each business day, the days since the previous business day.
    assert period("day", msk(2026, 12, 8, 8, 0)) == ("2026-12-07", "2026-12-07", "2026-12-08")
    assert period("day", msk(2026, 12, 7, 8, 0)) == ("2026-12-04", "2026-12-04", "2026-12-07")
    assert period("day", msk(2026, 12, 6, 12, 0)) is None                       # Sunday
    assert period("day", msk(2026, 11, 5, 8, 0)) == ("2026-11-03", "2026-11-03", "2026-11-05")


# -- configuration --------------------------------------------------------------------------------
CONFIG_ROOT = Path(__file__).resolve().parents[2] / "config"


def load_with(tmp_path: Path, yaml_text: str):
    """The example config with `yaml_text` in place of its `digests:` and `reports:` example."""
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG_ROOT, cfg)
    main = cfg / "maildesk.yaml"
    text_ = main.read_text(encoding="utf-8")
    start, end = text_.index("digests:\n"), text_.index("autoreply:\n")
    text_ = text_.replace(text_[start:text_.index("\n", text_.index("reports: []")) + 1],
                          yaml_text, 1)
    assert text_.index("autoreply:\n") < end + len(yaml_text)
    main.write_text(text_, encoding="utf-8")
    return load_settings(main)


def test_digests_and_reports_are_read_from_maildesk_yaml(tmp_path):
    s = load_with(tmp_path, "digests:\n  at: 8:30\n  lines: [line2]\n"
                  "reports:\n  - to: [Boss@Example.com]\n    on: fri\n    at: \"07:05\"\n"
                  "    calendar: standard\n  - {to: [a@example.com], every: month}\n")
    assert s.digests == Digests(enabled=True, at=time(8, 30), waiting_days=3, lines=("line2",))
    assert s.reports == (
        ReportMailing(to=("boss@example.com",), every="week", on=4, at=time(7, 5),
                      calendar="moscow"),
        ReportMailing(to=("a@example.com",), every="month", on=0, at=time(8, 0)))
    assert load_with(tmp_path / "2", "# none\n").digests == Digests(enabled=False)


def test_mistakes_in_digests_and_reports_name_file_line_and_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_with(tmp_path, "digests:\n  lines: [line1, line7]\n"
                  "reports:\n  - to: [boss@example.com]\n    every: month\n    on: monday\n"
                  "  - to: [boss@example.com]\n    calendar: berlin\n")
    problems = [str(p).split("config/", 1)[1] for p in err.value.problems]
    base = CONFIG_ROOT.joinpath("maildesk.yaml").read_text().splitlines().index("digests:") + 1
    assert problems == [
        f"maildesk.yaml:{base + 1}:18: digests.lines[1]: unknown line 'line7' (lines.yaml has: "
        "line1, line2, line3, vendor)",
        f"maildesk.yaml:{base + 5}:9: reports[0].on: `on` is the weekday of a weekly report; a "
        "report every month has none",
        f"maildesk.yaml:{base + 7}:15: reports[1].calendar: unknown calendar 'berlin' (sla.yaml "
        "has calendars: always, moscow)"]
    with pytest.raises(ConfigError) as err:
        load_with(tmp_path / "2", "digests:\n  at: \"25:00\"\n  often: true\n"
                  "reports:\n  - to: []\n    every: fortnight\n")
    assert [(p.line - base, p.key) for p in err.value.problems] == [
        (2, "digests.often"), (1, "digests.at"), (5, "reports[0].every"), (4, "reports[0].to")]
