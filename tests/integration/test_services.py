"""The services behind the commands (maildesk/services/), called directly on a real database:
what they return, and the refusals the command line turns into exit codes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from helpers import store
from mails import mail
from maildesk.db.models import Inbound, InboundStatus, Outbox, OutboxStatus, Ticket, TicketStatus
from maildesk.services import outbox, quarantine, reports, setup, text, ticket_text, tickets
from maildesk.services.errors import BadRequest, NotFound, Refused

ANNA = "Анна <anna@customer.example>"
BOB = "Bob <bob@customer.example>"


@pytest.fixture
def three_tickets(ctx, processor) -> None:
    """MD-1000 and MD-1002 of Anna, MD-1001 of Bob; MD-1001 closed and moved to line2."""
    for sender, subject in ((ANNA, "Printer"), (BOB, "Scanner"), (ANNA, "Printer again")):
        store(ctx, mail(sender=sender, subject=subject))
        processor.drain()
    with ctx.make_session.begin() as session:
        session.execute(update(Ticket).where(Ticket.number == 1001)
                        .values(status=TicketStatus.CLOSED, line="line2"))


def test_list_tickets_newest_first_with_filters(ctx, three_tickets):
    rows = tickets.list_tickets(ctx)
    assert [r["number"] for r in rows] == [1002, 1001, 1000]
    assert all(r["message_count"] == 2 for r in rows)  # the client's mail and the autoreply
    closed = tickets.list_tickets(ctx, status=TicketStatus.CLOSED)
    assert [(r["tag"], r["status"], r["subject"]) for r in closed] == [
        ("MD-1001", "closed", "Scanner")]
    assert [r["number"] for r in tickets.list_tickets(ctx, line="line1")] == [1002, 1000]
    assert tickets.list_tickets(ctx, status=TicketStatus.NEW, line="line2") == []
    assert [r["number"] for r in tickets.list_tickets(ctx, limit=1)] == [1002]
    assert len(tickets.list_tickets(ctx, limit=0)) == 3


def test_show_ticket_names_the_requesters_other_tickets(ctx, three_tickets):
    data = tickets.show_ticket(ctx, "[MD-1000]")
    assert data["number"] == 1000 and data["linked_ticket"] is None
    assert [{k: t[k] for k in ("number", "subject", "status", "tag")}
            for t in data["requester_tickets"]] == [
        {"number": 1002, "subject": "Printer again", "status": "new", "tag": "MD-1002"}]
    assert data["requester_ticket_count"] == 1
    assert [m["direction"] for m in data["messages"]] == ["in", "out"]
    assert ticket_text.ticket_text(data).splitlines()[:4] == [
        "MD-1000  Printer", "", "status          new",
        "line            line1 (Line 1 / Первая линия)"]
    assert tickets.show_ticket(ctx, "1001")["requester_tickets"] == []


def test_show_ticket_refuses_a_bad_or_unknown_number(ctx, three_tickets):
    with pytest.raises(BadRequest, match="not a ticket number: MD-x"):
        tickets.show_ticket(ctx, "MD-x")
    with pytest.raises(NotFound, match="no ticket MD-9999"):
        tickets.show_ticket(ctx, "MD-9999")


def test_outbox_list_and_retry(ctx, three_tickets):
    rows = outbox.list_outbox(ctx)
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert {r["status"] for r in rows} == {"queued"}
    assert outbox.list_outbox(ctx, status=OutboxStatus.SENT) == []
    first = rows[-1]["id"]
    with ctx.make_session.begin() as session:
        session.execute(update(Outbox).where(Outbox.id == first).values(status=OutboxStatus.SENT))
    assert [r["id"] for r in outbox.list_outbox(ctx, status=OutboxStatus.SENT)] == [first]
    with pytest.raises(Refused, match=f"outbox entry {first} was sent already"):
        outbox.retry(ctx, first)
    with pytest.raises(NotFound, match="no outbox entry 999"):
        outbox.retry(ctx, 999)
    outbox.retry(ctx, rows[0]["id"])  # a queued one: due now
    with ctx.make_session() as session:
        due = session.scalar(select(Outbox.next_attempt_at).where(Outbox.id == rows[0]["id"]))
    assert due <= datetime.now(timezone.utc)


def test_quarantine_requeue_and_reprocess(ctx, processor):
    with pytest.raises(NotFound, match="quarantine is empty"):
        quarantine.requeue(ctx)
    bad = store(ctx, b"Subject: nobody sent this\r\n\r\nno sender at all\r\n")
    processor.drain()
    (row,) = quarantine.list_quarantined(ctx)
    assert row["id"] == bad and "no sender" in row["reason"]
    with pytest.raises(NotFound, match="no quarantined message 999"):
        quarantine.requeue(ctx, 999)
    assert quarantine.requeue(ctx, bad) == [bad]
    with ctx.make_session() as session:
        assert session.get(Inbound, bad).status is InboundStatus.PENDING
    (outcome,) = quarantine.reprocess(ctx, [bad])
    assert outcome.status == "quarantined"
    assert text.retried_line(outcome).startswith(f"{bad}: quarantined: The message has no sender")


def test_report_period_parses_dates_in_the_report_zone(ctx):
    period = reports.report_period(ctx, "2026-11-01", "2026-11-30")
    assert period.start.isoformat() == "2026-11-01T00:00:00+03:00"
    assert period.end.isoformat() == "2026-12-01T00:00:00+03:00"  # the whole last day
    default = reports.report_period(ctx, None, None)
    assert default.end == default.now and default.end - default.start == timedelta(days=30)
    with pytest.raises(BadRequest, match="not a date or ISO time: 'soon'"):
        reports.report_period(ctx, "soon", None)
    with pytest.raises(BadRequest, match="is not before --until"):
        reports.report_period(ctx, "2026-12-01", "2026-11-01")


def test_check_config_lists_problems_instead_of_raising(config_set):
    assert setup.check_config(config_set.path).errors == []
    rules = config_set.dir / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("priority: P1", "priority: P9"),
                     encoding="utf-8")
    result = setup.check_config(config_set.path)
    assert result.checked == [] and len(result.errors) == 1
    assert "rules[0].set.priority: expected one of" in result.errors[0]
