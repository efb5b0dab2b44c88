"""A mail whose processing fails after its rows were written (effects/events.py writes a
mail's ticket and rows by Core at its end) leaves nothing behind: its savepoint undoes them,
and the next mail of the same batch sees the ticket as the database has it, not as the failed
mail left it in memory (issue 22)."""

from __future__ import annotations

import pytest

from desk import CLIENT, MONDAY, Desk, mail
from maildesk.db.models import Channel
from maildesk.effects.events import Gathered
from maildesk.store.raw import Arrival, store_one


@pytest.fixture
def desk(config_set):
    d = Desk(config_set.path, MONDAY)
    yield d
    d.close()


def _store(desk: Desk, raw: bytes, *, mail_from: str, rcpt: str) -> int:
    return store_one(desk.ctx.make_session, Arrival(data=raw, channel=Channel.PIPE,
                                                    received_at=desk.clock.now(),
                                                    mail_from=mail_from, rcpt_to=(rcpt,)))


def test_a_mail_that_fails_after_writing_leaves_its_ticket_as_it_was(desk, monkeypatch):
    opened = desk.client_writes("Printer in shop 5 does not print", "Nothing comes out.")
    t = desk.ticket(opened.number)
    agents = f"support+{t.number}-{t.agent_token}@example.com"
    client = f"support+{t.number}-{t.reply_token}@example.com"
    # One batch: the agent resolves the ticket (and that mail fails once its rows are out),
    # then the client writes again.
    failing = _store(desk, mail("alice@example.com", agents, f"RE: [MD-{t.number}] {t.subject}",
                                "#resolve\nReplaced the cartridge.", desk.clock.now()),
                     mail_from="alice@example.com", rcpt=agents)
    _store(desk, mail(CLIENT, client, f"Re: [MD-{t.number}] {t.subject}",
                      "Still nothing, by the way.", desk.clock.now()),
           mail_from=CLIENT, rcpt=client)
    write = Gathered.write

    def write_then_fail(self: Gathered, session) -> None:  # type: ignore[no-untyped-def]
        doomed = any(row["b_id"] == failing for row in self.inbound)
        write(self, session)
        if doomed:
            raise OSError("disk full")

    monkeypatch.setattr(Gathered, "write", write_then_fail)
    outcomes = desk.processor.run_batch(limit=10)

    assert [o.status for o in outcomes] == ["retry", "done"]
    after = desk.ticket(t.number)
    assert after.status.value == t.status.value          # never resolved, so not reopened
    assert after.resolved_at is None and (after.reopen_count or 0) == 0
    assert desk.events("reopened", t.number) == []
    assert desk.events("status", t.number) == []
    monkeypatch.undo()
    assert [o.status for o in desk.processor.drain()] == ["done"]   # the agent's mail, again
    assert desk.ticket(t.number).status.value == "resolved"
