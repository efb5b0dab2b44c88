"""A mail whose processing fails after its rows were written (effects/events.py writes a
mail's ticket and rows by Core at its end) leaves nothing behind: its savepoint undoes them,
and the next mail of the same batch sees the ticket as the database has it, not as the failed
mail left it in memory (issue 22)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from desk import CLIENT, MONDAY, Desk, mail
from maildesk.db.models import Channel, Inbound, InboundStatus, Ticket
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


def _refuse_subject(desk: Desk, subject: str) -> None:
    """The database itself refuses to store a mail with this subject (a trigger), so the
    failure comes from the server when the mail's rows go in, not from Python."""
    with desk.ctx.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON message "
                f"WHEN NEW.subject = '{subject}' BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.subject = '{subject}' THEN RAISE EXCEPTION 'refused by test'; END IF; "
                "RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON message "
                                 "FOR EACH ROW EXECUTE FUNCTION refuse()")


def test_a_mail_the_database_refuses_is_set_aside_and_the_rest_of_its_batch_is_done(desk):
    # On PostgreSQL a mail's rows go out together and the server's answer comes at the end
    # (effects/events.py): the refusal must still roll back that mail alone.
    _refuse_subject(desk, "Refused subject")
    first = _store(desk, mail(CLIENT, "support@example.com", "Scanner jams", "Page 2 jams.",
                              desk.clock.now()), mail_from=CLIENT, rcpt="support@example.com")
    refused = _store(desk, mail("bob@example.org", "support@example.com", "Refused subject",
                                "Anything.", desk.clock.now()),
                     mail_from="bob@example.org", rcpt="support@example.com")
    _store(desk, mail("carol@example.org", "support@example.com", "VPN drops", "Every hour.",
                      desk.clock.now()), mail_from="carol@example.org", rcpt="support@example.com")

    outcomes = desk.processor.run_batch(limit=10)

    assert [(o.inbound_id, o.status) for o in outcomes] == [
        (first, "done"), (refused, "retry"), (refused + 1, "done")]
    assert "refused by test" in (outcomes[1].reason or "")
    with desk.ctx.make_session() as s:
        subjects = sorted(t.subject for t in s.scalars(select(Ticket)))
        assert subjects == ["Scanner jams", "VPN drops"]
        assert s.get_one(Inbound, refused).status is InboundStatus.PENDING
    # The processor goes on: the next mail is processed as usual.
    _store(desk, mail(CLIENT, "support@example.com", "Monitor flickers", "Since Monday.",
                      desk.clock.now()), mail_from=CLIENT, rcpt="support@example.com")
    assert [o.status for o in desk.processor.run_batch(limit=10)] == ["retry", "done"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_mail_whose_rows_need_several_statements_is_recorded_whole(desk, monkeypatch):
    """PostgreSQL writes a mail's ticket and rows as one statement (db/onestatement.py) and
    splits it where the parameters would overflow: nothing is lost at the split."""
    from maildesk.db import onestatement
    from maildesk.db.models import Message, MessageReference, Outbox, TicketTimer

    monkeypatch.setattr(onestatement, "MAX_PARAMETERS", 40)
    monkeypatch.setattr(onestatement, "ROWS_PER_INSERT", 2)
    raw = mail(CLIENT, "support@example.com", "Printer in shop 5 does not print",
               "Nothing comes out.", desk.clock.now())
    refs = " ".join(f"<old-{i}@customer.example>" for i in range(7))
    raw = raw.replace(b"Subject:", b"References: " + refs.encode() + b"\nSubject:", 1)
    desk.receive(raw)
    with desk.ctx.make_session() as s:
        (ticket,) = s.scalars(select(Ticket)).all()
        (message,) = s.scalars(select(Message).where(Message.ticket_id == ticket.id,
                                                     Message.inbound_id.is_not(None))).all()
        referenced = s.scalars(select(MessageReference.referenced_id)
                               .where(MessageReference.message_id == message.id)).all()
        timers = s.scalars(select(TicketTimer).where(TicketTimer.ticket_id == ticket.id)).all()
        outgoing = s.scalars(select(Outbox.kind).where(Outbox.ticket_id == ticket.id)).all()
    assert sorted(referenced) == sorted(f"old-{i}@customer.example" for i in range(7))
    assert len(timers) >= 2 and sorted(outgoing) == ["autoreply", "notification"]
