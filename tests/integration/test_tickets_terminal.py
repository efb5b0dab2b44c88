"""`tickets show` and `tickets list` as an agent reads them at a terminal (issue 20): the
ticket at a glance with its deadlines in the SLA calendar's zone and how far off they are,
the client's other tickets, messages and history, times to the minute; the list's filters
(requester, assignee, unassigned, overdue, since) alone and combined, in text and JSON. On
SQLite and PostgreSQL, with tickets made by mail through the processor on a frozen clock and
the command run as a user runs it (its clock frozen too: MAILDESK_CLOCK_FILE)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import text as sql

from desk import Desk, msk
from maildesk.db.models import TicketStatus
from maildesk.services import ticket_text, tickets
from maildesk.services.timefmt import minute, plural, relative, size, span
from test_agents import client_mail

IVAN = "ivan@shop.example.ru"          # client_mail's sender: Иван Петров
ANNA = "anna@customer.example"
# Monday 30 November 2026, 12:10 in Moscow: MD-1000's resolution (P3: five working days from
# Monday 23 November 10:00) was due at 10:00.
NOW = msk(2026, 11, 30, 12, 10)
NO_SECONDS = re.compile(r"\d\d:\d\d:\d\d|\.\d{6}|\+00:00|\dT\d")


class Terminal:
    """The desk on its FixedClock, and the command run against it at the same moment."""

    def __init__(self, desk: Desk, cli, clock_file):
        self.desk, self._cli, self.clock_file = desk, cli, clock_file

    def run(self, *args: str) -> str:
        self.clock_file.write_text(self.desk.clock.now().isoformat())
        proc = self._cli(*args)
        assert proc.returncode == 0, (args, proc.stderr.decode())
        assert proc.stderr == b"", proc.stderr.decode()
        return proc.stdout.decode()

    def fails(self, *args: str) -> tuple[int, str]:
        self.clock_file.write_text(self.desk.clock.now().isoformat())
        proc = self._cli(*args)
        return proc.returncode, proc.stderr.decode()

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json"))

    def numbers(self, *args: str) -> list[int]:
        """The tickets `tickets list ARGS` lists, in JSON and in text (both the same)."""
        rows = self.json("tickets", "list", *args)
        listed = [int(m) for m in re.findall(r"^MD-(\d+)\s", self.run("tickets", "list", *args),
                                             re.M)]
        assert listed == [r["number"] for r in rows], args
        return listed


@pytest.fixture
def terminal(config_set, cli, monkeypatch, tmp_path):
    clock_file = tmp_path / "clock"
    monkeypatch.setenv("MAILDESK_CLOCK_FILE", str(clock_file))
    desk = Desk(config_set.path, msk(2026, 11, 23, 10, 0))
    yield Terminal(desk, cli, clock_file)
    desk.close()


@pytest.fixture
def week(terminal):
    """A week of a desk, seen on Monday 30 November 12:10 (Moscow):

    - MD-1000 Ivan, Mon 10:00, a photo attached; Alice assigns it to herself and answers at
      12:00 (first response met), Ivan writes again at 13:00: open, resolution overdue;
    - MD-1001 Ivan, Mon 10:30, never answered: new, first response overdue;
    - MD-1002 Anna, Mon 11:00; Boris takes it and asks for a photo at 12:30: pending;
    - MD-1003 Anna, Mon 11:30; Alice closes it at 12:45: closed;
    - MD-1004 Anna's reply to the closed MD-1003, Tue 24 November 10:00: a new ticket linked
      to MD-1003, never answered: new, first response overdue, unassigned.
    """
    d = terminal.desk
    d.receive(client_mail("Printer in shop 5 does not print",
                          "It prints nothing at all.\n\n-- \nИван Петров\nShop 5",
                          attachment=("photo.jpg", b"x" * 12800)))
    d.at(msk(2026, 11, 23, 10, 30))
    d.client_writes("Scanner", "The scanner reads nothing.", sender=IVAN)
    d.at(msk(2026, 11, 23, 11, 0))
    d.client_writes("Label printer", "Labels come out blank.", sender=f"Anna <{ANNA}>")
    d.at(msk(2026, 11, 23, 11, 30))
    d.client_writes("Invoice copy", "Please send a copy of invoice 77.", sender=ANNA)
    d.at(msk(2026, 11, 23, 12, 0))
    d.agent_replies(1000, "#assign me\n#tag printers\nWe are looking at it.")
    d.at(msk(2026, 11, 23, 12, 30))
    d.agent_replies(1002, "#assign me\n#pending\nPlease send a photo of a label.",
                    agent="boris@example.com")
    d.at(msk(2026, 11, 23, 12, 45))
    d.agent_replies(1003, "#close\nThe copy is attached.")
    d.at(msk(2026, 11, 23, 13, 0))
    d.client_replies(1000, "Still broken, the display says E05.")
    d.at(msk(2026, 11, 24, 10, 0))
    d.client_replies(1003, "The copy is of invoice 76, not 77.")
    d.at(NOW)
    assert d.ticket(1004).linked_ticket_id == d.ticket(1003).id
    return terminal


# -- tickets show -------------------------------------------------------------------------------
def test_show_gives_the_ticket_at_a_glance(week):
    out = week.run("tickets", "show", "MD-1000")
    assert not NO_SECONDS.search(out), "times to the minute, in the calendar's zone"
    top = out.split("\n\nOther tickets")[0].splitlines()
    assert top[:2] == ["MD-1000  Printer in shop 5 does not print", ""]
    assert top[2:-1] == [
        "status          open",
        "line            line1 (Line 1 / Первая линия)",
        "priority        P3",
        "category        -",
        "tags            printers",
        "assignee        alice@example.com",
        f"requester       Иван Петров <{IVAN}>",
        "created         2026-11-23 10:00, last activity 2026-11-23 13:00",
        "first response  2026-11-23 18:00, met: answered 2026-11-23 12:00",
        "resolution      2026-11-30 10:00, overdue by 2 h 10 min",
        "times in        Europe/Moscow (the default SLA policy)"]
    assert top[-1].startswith("reply address   support+1000-")    # with the ticket's token
    # The client's other ticket, then the messages, then the history, in that order.
    others = out.index("Other tickets of this client (1 ticket):\n"
                       "  MD-1001      new       2026-11-23 10:30  Scanner\n")
    messages = out.index("Messages (5 messages):")
    history = out.index("History (")
    assert others < messages < history
    # The client's mail: its new text (the signature left out), the attachment's name and size.
    assert (f"#1  2026-11-23 10:00  in   client  Иван Петров <{IVAN}>\n"
            "    Subject: Printer in shop 5 does not print\n"
            "    It prints nothing at all.\n"
            "    [… 4 more lines; --full shows the whole text]\n"
            "    [attachment] photo.jpg (image/jpeg, 12.5 KB)\n") in out
    # The acknowledgement (our template: its start), Alice's mail, the relay, Ivan's follow-up.
    assert re.search(r"#2  2026-11-23 10:00  out  system  Example Support <support@example\.com> "
                     rf"to {IVAN}  \[autoreply\]\n    Subject: \[MD-1000\] Printer", out)
    assert "2026-11-23 12:00  in   agent   alice@example.com  [token]" in out
    assert "    We are looking at it." in out
    assert "2026-11-23 13:00  in   client  ivan@shop.example.ru  [token]" in out
    assert "    Still broken, the display says E05." in out
    # The history: when, what, who, in words.
    for entry in ("2026-11-23 10:00  created              ivan@shop.example.ru         "
                  "opened by a new mail",
                  "2026-11-23 10:00  autoreply            maildesk                     "
                  "acknowledgement sent (en)",
                  "2026-11-23 12:00  assigned             alice@example.com            "
                  "- → alice@example.com",
                  "2026-11-23 12:00  tagged               alice@example.com            + printers",
                  "2026-11-23 12:00  status               alice@example.com            new → open",
                  "2026-11-23 12:00  first_response       alice@example.com            "
                  "first response given",
                  "2026-11-23 13:00  message              ivan@shop.example.ru         "
                  "client mail (token)"):
        assert entry in out, entry


def test_show_says_what_is_overdue_paused_closed_and_linked(week):
    scanner = week.run("tickets", "show", "1001")
    assert "first response  2026-11-24 09:30, overdue by 6 d 2 h" in scanner
    assert "resolution      2026-11-30 10:30, overdue by 1 h 40 min" in scanner
    assert "assignee        - (unassigned)" in scanner
    assert "Other tickets of this client (1 ticket):\n  MD-1000      open" in scanner

    pending = week.run("tickets", "show", "1002")
    assert ("status          pending (waiting for the client; SLA clock paused since "
            "2026-11-23 12:30)") in pending
    assert "first response  2026-11-24 10:00, met: answered 2026-11-23 12:30" in pending
    assert re.search(r"resolution      2026-11-30 11:00, clock paused since 2026-11-23 12:30 "
                     r"\(pending\): moves on when the client answers", pending)
    assert "overdue" not in pending.split("Messages (")[0]
    assert "2026-11-23 12:30  status               boris@example.com            new → pending" \
        in pending

    closed = week.run("tickets", "show", "1003")
    assert "status          closed" in closed
    assert "first response  2026-11-24 10:30, met: answered 2026-11-23 12:45" in closed
    assert "resolution      2026-11-30 11:30, met: resolved 2026-11-23 12:45" in closed

    linked = week.run("tickets", "show", "MD-1004")
    assert "linked ticket   MD-1003 (closed) Invoice copy" in linked
    assert "first response  2026-11-24 18:00, overdue by 5 d 18 h" in linked
    assert ("Other tickets of this client (2 tickets):\n"
            "  MD-1003      closed    2026-11-23 11:30  Invoice copy\n"
            "  MD-1002      pending   2026-11-23 11:00  Label printer\n") in linked
    assert "linked to MD-1003" in linked          # the history's `linked` event
    assert not NO_SECONDS.search(linked + scanner + pending + closed)


def test_show_json_keeps_its_keys_and_adds_the_new_ones(week):
    data = week.json("tickets", "show", "1000")
    # Every key of before is there, unchanged in meaning.
    assert set(data) >= {
        "number", "tag", "subject", "status", "priority", "line", "category", "language",
        "requester", "created_at", "updated_at", "last_activity_at", "resolved_at",
        "closed_at", "message_count", "tags", "assignee", "sla_policy",
        "first_response_due_at", "resolution_due_at", "first_responded_at",
        "next_response_due_at", "breached_at", "rating", "reply_address", "participants",
        "messages", "linked_ticket", "requester_tickets"}
    assert data["first_response_due_at"] == "2026-11-23T15:00:00Z"     # still UTC with Z
    assert data["requester_tickets"][0].items() >= {
        "number": 1001, "subject": "Scanner", "status": "new"}.items()
    assert data["linked_ticket"] is None and data["message_count"] == 5
    # The new ones.
    assert data["line_name"] == "Line 1 / Первая линия"
    assert data["time_zone"] == "Europe/Moscow"
    assert data["as_of"] == "2026-11-30T09:10:00Z"
    assert data["overdue"] is True
    assert data["deadlines"] == {
        "first_response": {"due_at": "2026-11-23T15:00:00Z", "done_at": "2026-11-23T09:00:00Z",
                           "state": "met"},
        "resolution": {"due_at": "2026-11-30T07:00:00Z", "done_at": None, "state": "overdue"},
        "next_response": {"due_at": None, "done_at": None, "state": "none"}}
    assert data["clock_paused_since"] is None and data["linked"] is None
    assert data["requester_tickets"] == [{"number": 1001, "tag": "MD-1001", "subject": "Scanner",
                                          "status": "new",
                                          "created_at": "2026-11-23T07:30:00Z"}]
    assert data["requester_ticket_count"] == 1
    kinds = [e["kind"] for e in data["events"]]
    assert kinds[0] == "created" and "first_response" in kinds
    assigned = next(e for e in data["events"] if e["kind"] == "assigned")
    assert assigned.items() >= {"at": "2026-11-23T09:00:00Z", "actor": "alice@example.com",
                                "summary": "- → alice@example.com"}.items()
    assert assigned["data"]["to"] == "alice@example.com"

    linked = week.json("tickets", "show", "1004")
    assert linked["linked_ticket"] == 1003
    assert linked["linked"] == {"number": 1003, "tag": "MD-1003", "subject": "Invoice copy",
                                "status": "closed"}
    pending = week.json("tickets", "show", "1002")
    assert pending["clock_paused_since"] == "2026-11-23T09:30:00Z"
    assert pending["deadlines"]["resolution"]["state"] == "paused"
    assert pending["overdue"] is False
    # `overdue` of show is `--overdue` of list, ticket by ticket.
    overdue = set(week.numbers("--overdue"))
    for number in range(1000, 1005):
        assert week.json("tickets", "show", str(number))["overdue"] is (number in overdue)


def test_show_full_and_a_deadline_still_ahead(terminal):
    d = terminal.desk
    long_text = "\n".join(f"line {i} of the log" for i in range(1, 41))
    d.client_writes("Printer error log", long_text, sender=IVAN)
    d.at(msk(2026, 11, 23, 15, 0))
    out = terminal.run("tickets", "show", "1000")
    assert "first response  2026-11-23 18:00, in 3 h" in out
    assert "resolution      2026-11-30 10:00, in 6 d 19 h" in out
    assert "Other tickets of this client: none" in out
    assert "Messages (2 messages):" in out
    assert "    line 15 of the log\n    [… 25 more lines" in out
    assert "line 16 of the log" not in out
    full = terminal.run("tickets", "show", "1000", "--full")
    assert "    line 40 of the log" in full and "more lines" not in full
    assert terminal.fails("tickets", "show", "MD-9999") == (1, "no ticket MD-9999\n")
    assert terminal.fails("tickets", "show", "MD-x")[0] == 2


def test_show_text_of_rarer_states(week):
    """Deadlines met late, a follow-up's answer overdue, a breach, a long history: the text
    printed from the JSON shape as the service would give it."""
    data = week.json("tickets", "show", "1000")
    data["deadlines"]["first_response"] = {"due_at": "2026-11-23T15:00:00Z",
                                           "done_at": "2026-11-23T16:05:00Z", "state": "late"}
    data["deadlines"]["next_response"] = {"due_at": "2026-11-30T08:00:00Z", "done_at": None,
                                          "state": "overdue"}
    data["deadlines"]["resolution"] = {"due_at": "2026-11-30T15:00:00Z", "done_at": None,
                                       "state": "running"}
    data["breached_at"] = "2026-11-23T15:00:01.250000Z"
    data["assignee_name"] = "Alice Smith"
    data["events"] = data["events"] * 4
    out = ticket_text.ticket_text(data)
    assert "first response  2026-11-23 18:00, missed: answered 2026-11-23 19:05, 1 h 5 min late" \
        in out
    assert "resolution      2026-11-30 18:00, in 5 h 50 min" in out
    assert "next response   2026-11-30 11:00, overdue by 1 h 10 min" in out
    assert "SLA breached    2026-11-23 18:00" in out
    assert "assignee        Alice Smith <alice@example.com>" in out
    assert "History (48 events, the latest 30: --full shows all):" in out
    assert len(out.split("History (")[1].splitlines()) == 31
    full = ticket_text.ticket_text(data, full=True)
    assert "History (48 events):" in full and len(full.split("History (")[1].splitlines()) == 49
    assert not NO_SECONDS.search(out)


# -- tickets list -------------------------------------------------------------------------------
def test_list_filters_each_alone(week):
    assert week.numbers() == [1004, 1003, 1002, 1001, 1000]
    assert week.numbers("--requester", IVAN) == [1001, 1000]
    assert week.numbers("--requester", "IVAN@Shop.Example.RU") == [1001, 1000]
    assert week.numbers("--requester", ANNA) == [1004, 1003, 1002]
    assert week.numbers("--requester", "nobody@example.org") == []
    assert week.numbers("--assignee", "alice@example.com") == [1000]
    assert week.numbers("--assignee", "<Boris@example.com>") == [1002]
    assert week.numbers("--unassigned") == [1004, 1003, 1001]
    # Running and past a deadline not met: not the pending one, not the closed one.
    assert week.numbers("--overdue") == [1004, 1001, 1000]
    # Created on or after: a date is midnight in the report's zone, an ISO time without an
    # offset is read there too, one with an offset as it says.
    assert week.numbers("--since", "2026-11-24") == [1004]
    assert week.numbers("--since", "2026-11-23T10:30") == [1004, 1003, 1002, 1001]
    assert week.numbers("--since", "2026-11-23T07:31:00+00:00") == [1004, 1003, 1002]
    assert week.numbers("--since", "2026-11-25") == []


def test_list_filters_combine(week):
    assert week.numbers("--overdue", "--requester", ANNA) == [1004]
    assert week.numbers("--overdue", "--unassigned") == [1004, 1001]
    assert week.numbers("--overdue", "--assignee", "alice@example.com") == [1000]
    assert week.numbers("--overdue", "--status", "new", "--requester", IVAN) == [1001]
    assert week.numbers("--since", "2026-11-24", "--requester", IVAN) == []
    assert week.numbers("--since", "2026-11-23", "--requester", ANNA, "--unassigned") == [1004,
                                                                                          1003]
    assert week.numbers("--line", "line1", "--overdue", "--limit", "2") == [1004, 1001]
    assert week.numbers("--status", "pending", "--assignee", "boris@example.com") == [1002]
    assert week.numbers("--overdue", "--since", "2026-11-23T11:00") == [1004]


def test_list_text_counts_and_times(week):
    out = week.run("tickets", "list", "--requester", IVAN)
    assert not NO_SECONDS.search(out)
    rows = out.splitlines()
    assert rows[0].split() == ["TICKET", "STATUS", "LINE", "PRIO", "MSGS", "CREATED",
                               "ASSIGNEE", "REQUESTER", "SUBJECT"]
    assert rows[1].split() == ["MD-1001", "new", "line1", "P3", "2", "2026-11-23", "10:30", "-",
                               IVAN, "Scanner"]
    assert rows[2].split()[:9] == ["MD-1000", "open", "line1", "P3", "5", "2026-11-23", "10:00",
                                   "alice@example.com", IVAN]
    assert rows[3] == "2 tickets (times in Europe/Moscow)"
    assert week.run("tickets", "list", "--assignee", "alice@example.com").splitlines()[-1] == \
        "1 ticket (times in Europe/Moscow)"
    assert week.run("tickets", "list", "--limit", "3").splitlines()[-1] == \
        "3 tickets, the newest 3: --limit 0 lists all (times in Europe/Moscow)"
    assert week.run("tickets", "list", "--since", "2026-12-01") == "no tickets\n"
    assert week.json("tickets", "list", "--since", "2026-12-01") == []
    # The JSON rows keep their shape.
    (row,) = week.json("tickets", "list", "--assignee", "alice@example.com")
    assert row["assignee"] == "alice@example.com" and row["message_count"] == 5
    assert row["created_at"] == "2026-11-23T07:00:00Z"


def test_list_refuses_what_it_cannot_read(week):
    code, err = week.fails("tickets", "list", "--since", "last tuesday")
    assert code == 2 and "--since: not a date or ISO time: 'last tuesday'" in err
    code, err = week.fails("tickets", "list", "--assignee", "alice@example.com", "--unassigned")
    assert code == 2 and "exclude each other" in err


def test_list_reads_its_filters_from_indexes(ctx):
    """Requester, overdue (its status test), since and the message counts each run on an
    index (on PostgreSQL with sequential scans priced out: the tables are nearly empty)."""
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    expected = {"requester": ({"requester": IVAN}, "ix_ticket_requester"),
                "overdue": ({"overdue_at": now}, "ix_ticket_status_number"),
                "since": ({"since": now}, "ix_ticket_created_at"),
                "status": ({"status": TicketStatus.NEW}, "ix_ticket_status_number")}
    dialect = ctx.engine.dialect
    with ctx.engine.connect() as conn:
        if dialect.name == "postgresql":
            conn.execute(sql("SET enable_seqscan = off"))
        for name, (filters, index) in expected.items():
            query = tickets.list_query(**filters).limit(100)
            statement = str(query.compile(dialect=dialect,
                                          compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
            plan = "\n".join(str(r[-1]) for r in conn.execute(sql(explain + statement)))
            assert index in plan, (name, plan)
            assert "ix_message_ticket_id" in plan, (name, plan)
            assert "SCAN ticket\n" not in plan + "\n" and "Seq Scan on ticket" not in plan, plan


# -- the pieces -----------------------------------------------------------------------------------
def test_times_spans_sizes_and_plurals():
    from zoneinfo import ZoneInfo

    moscow = ZoneInfo("Europe/Moscow")
    at = datetime(2026, 12, 4, 7, 15, 42, 123456, tzinfo=timezone.utc)
    assert minute(at, moscow) == "2026-12-04 10:15"
    assert minute("2026-12-04T07:15:42.123456Z", moscow) == "2026-12-04 10:15"
    assert minute(None, moscow) == "-"
    assert [span(s) for s in (0, 59, 60, 3600, 7800, 86400, 86400 + 7 * 3600 + 60)] == [
        "< 1 min", "< 1 min", "1 min", "1 h", "2 h 10 min", "1 d", "1 d 7 h"]
    assert relative(at, at.replace(hour=9, minute=25)) == "overdue by 2 h 10 min"
    assert relative(at.replace(hour=10, minute=15), at) == "in 3 h"
    assert [size(n) for n in (0, 1023, 12800, 3 * 1024 * 1024)] == [
        "0 B", "1023 B", "12.5 KB", "3.0 MB"]
    assert [plural(n, "ticket") for n in (0, 1, 2, 21)] == [
        "0 tickets", "1 ticket", "2 tickets", "21 tickets"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == \
        "3 entries"


def test_history_words_for_every_kind_of_event():
    from zoneinfo import ZoneInfo

    moscow = ZoneInfo("Europe/Moscow")

    def say(kind: str, **data) -> str:
        return ticket_text.describe_event(kind, data, moscow, "MD", {7: 1007})

    assert say("status", **{"from": "open", "to": "resolved", "reason": "solved by the client"}) \
        == "open → resolved: solved by the client"
    assert say("escalated", **{"from": "line1", "to": "line2", "reason": "OLA exceeded"}) == \
        "line line1 → line2: OLA exceeded"
    assert say("linked", ticket_id=7, reason="after-closed") == "linked to MD-1007"
    assert say("routed", rules=["key clients"], line="line1", priority="P2") == \
        "rules 'key clients' → line line1, P2"
    assert say("sla_breach", deadline="first_response", due="2026-11-23T15:00:00+00:00",
               line="line1") == "first response (due 2026-11-23 18:00), line line1"
    assert say("rated", rating=5, comment="Fast!") == "rated 5/5: Fast!"
    assert say("command_rejected", errors=["#assign x: x is not an agent"],
               commands=["#assign x"]) == "#assign x: x is not an agent"
    assert say("something_new", count=3, message_id=9, cause="x") == "count=3"
