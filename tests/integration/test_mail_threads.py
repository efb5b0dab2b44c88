"""The mail people read, as their mail clients thread it (issue 20).

Every mail about one ticket to one line mailbox is one conversation: the same root in
In-Reply-To and References and one subject (Thunderbird threads by References, Gmail by
subject and References), different tickets never share a root. Message-IDs are random: a
rebuilt database (a new instance, a restore) never sends an id a mail client has seen."""

from __future__ import annotations

import shutil
from datetime import timedelta
from email.message import EmailMessage

import pytest

from desk import LINE1, LINE2, MONDAY, Desk, edit_lines, mail
from helpers import outbox_rows

from maildesk.store.raw import Arrival, store_one
from maildesk.db.models import Channel


@pytest.fixture
def make_desk(config_set):
    desks: list[Desk] = []

    def make(start=MONDAY) -> Desk:
        desks.append(Desk(config_set.path, start))
        return desks[-1]
    yield make
    for d in desks:
        d.close()


def ids(header: str | None) -> list[str]:
    return (header or "").split()


def test_a_lines_mails_about_each_ticket_form_one_thread(config_set, make_desk):
    """Three tickets through their lives: new, the client writes again, a deadline warning,
    an escalation (line 1 to line 2), the agents' commands on line 2, the resolution."""
    edit_lines(config_set, line1={"ola": None})
    desk = make_desk()
    subjects = ["Printer in shop 5 does not print", "Принтер в магазине 7 не печатает",
                "Scanner in shop 9 does not scan"]
    numbers = [desk.client_writes(s, "Since this morning it does nothing at all.").number
               for s in subjects]
    for n in numbers:
        desk.client_replies(n, "It still does nothing, please hurry.")
    desk.at(MONDAY + timedelta(hours=6, minutes=30))   # 80% of the 8 business hours
    assert desk.fire() > 0
    for n in numbers:
        desk.agent_replies(n, "#escalate line2\n\nDriver problem, line 2 please.")
        desk.agent_replies(n, "#priority P2", agent="carol@example.com")
        desk.agent_replies(n, "#resolve\n\nThe driver is reinstalled.", agent="carol@example.com")

    line1, line2 = desk.mailbox(LINE1), desk.mailbox(LINE2)
    roots: dict[tuple[str, str], str] = {}
    for box, mails in (("line1", line1), ("line2", line2)):
        by_ticket: dict[str, list[EmailMessage]] = {}
        for m in mails:
            tag = m["Subject"].split("]")[0] + "]"
            by_ticket.setdefault(tag, []).append(m)
        assert len(by_ticket) == 3, (box, [m["Subject"] for m in mails])
        for tag, thread in by_ticket.items():
            root = ids(thread[0]["In-Reply-To"])
            assert len(root) == 1, thread[0]["In-Reply-To"]
            for m in thread:
                # Each names the root, as a reply to it: one conversation in any client.
                assert ids(m["In-Reply-To"]) == root and ids(m["References"])[0] == root[0]
                assert m["Message-ID"].strip("<>") != root[0].strip("<>")
            assert len({m["Subject"] for m in thread}) == 1, [m["Subject"] for m in thread]
            roots[(box, tag)] = root[0]
            if box == "line2":   # the thread ends with who resolved it and what they wrote
                last = thread[-1].get_body(("plain",)).get_content()
                assert last.splitlines()[1].startswith("Resolved by carol@example.com")
                assert "The driver is reinstalled." in last
    # line 1 saw new, follow-up and warning of each ticket; line 2 the escalation at least.
    assert len(line1) >= 9 and len(line2) >= 3
    assert len(set(roots.values())) == len(roots) == 6   # no root shared by tickets or lines


# The rebuild copies an empty SQLite file back; the ids do not depend on the backend.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_rebuilt_database_never_repeats_a_message_id(config_set, db_url, tmp_path):
    """Two instances from empty (the same numbers, the same mails) over 1,000 mails each."""
    path = db_url.removeprefix("sqlite:///")
    empty = tmp_path / "empty.db"
    shutil.copyfile(path, empty)
    seen: list[set[str]] = []
    for instance in range(2):
        shutil.copyfile(empty, path)
        desk = Desk(config_set.path, MONDAY)
        try:
            for i in range(1000):
                sender = f"client{i}@shop{i % 50}.example"
                store_one(desk.ctx.make_session, Arrival(
                    data=mail(sender, "support@example.com", f"Printer {i} does not print",
                              "It prints nothing.", desk.clock.now()),
                    channel=Channel.PIPE, received_at=desk.clock.now(), mail_from=sender,
                    rcpt_to=("support@example.com",)))
            desk.processor.drain()
            rows = outbox_rows(desk.ctx)
        finally:
            desk.close()
        assert len(rows) >= 1000
        mine = {r.message_id for r in rows}
        assert len(mine) == len(rows)
        seen.append(mine)
    assert not seen[0] & seen[1]
