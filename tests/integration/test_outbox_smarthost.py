"""The outbox against a real smarthost (aiosmtpd, STARTTLS with a test CA, AUTH): mail waits
while it is down, retries with backoff, and goes out exactly once when it is back."""

from __future__ import annotations

import email
from datetime import timedelta

import pytest
from sqlalchemy import select

from helpers import cli_outbox, deliver, outbox_count, outbox_rows
from mails import mail
from maildesk.clock import FixedClock
from maildesk.db.models import Outbox
from maildesk.outbound.outbox import OutboxDeliverer
from maildesk.outbound.registry import make_transport
from test_transports import (PASSWORD, USER, authenticate, ca, server_tls,  # noqa: F401
                             start_smarthost)


@pytest.fixture
def smarthost(start_smarthost, server_tls):  # noqa: F811
    return start_smarthost(tls_context=server_tls, require_starttls=True,
                           authenticator=authenticate, auth_required=True, auth_require_tls=True)


@pytest.fixture
def smtp_config(config_set, smarthost, ca, tmp_path, monkeypatch):  # noqa: F811
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("MD_TEST_SMARTHOST_PASSWORD", PASSWORD)
    config_set.write(outbound={"transport": "smtp", "give_up_after": "2d", "smtp": {
        "host": "127.0.0.1", "port": smarthost.port, "security": "starttls", "username": USER,
        "password": {"env": "MD_TEST_SMARTHOST_PASSWORD"}, "ca_file": str(ca_file)}})
    return config_set


def statuses(ctx, kind: str | None = None) -> list[str]:
    """Of every outbox row, or of one kind (a new ticket queues an "autoreply" to the client
    and a "notification" to its line)."""
    return [o.status.value for o in outbox_rows(ctx, kind)]


def test_mail_waits_while_the_smarthost_is_down_and_goes_out_once(smtp_config, smarthost, ctx,
                                                                  processor):
    smarthost.stop()
    for i in range(5):
        deliver(ctx, processor, mail(sender=f"c{i}@customer.example", subject=f"down {i}"))
    assert len(outbox_rows(ctx, "autoreply")) == 5
    queued = outbox_count(ctx)  # the acknowledgements and the line notifications: all wait
    clock = FixedClock(ctx.clock.now() + timedelta(seconds=1))
    deliverer = OutboxDeliverer(ctx.make_session, make_transport(ctx.settings.outbound), clock)
    try:
        assert {o.status for o in deliverer.run_once()} == {"retry"}
        assert deliverer.run_once() == []          # backoff: nothing is due yet
        clock.advance(minutes=1)
        assert [o.status for o in deliverer.run_once()] == ["retry"] * queued
        with ctx.make_session() as s:
            rows = s.scalars(select(Outbox)).all()
            assert all(r.attempts == 2 and r.last_error for r in rows)
            assert all(r.next_attempt_at == clock.now() + timedelta(minutes=2) for r in rows)
        smarthost.start()
        clock.advance(minutes=2)
        assert [o.status for o in deliverer.run_once()] == ["sent"] * queued
        assert deliverer.drain() == []
    finally:
        deliverer.transport.close()
    # Each mail went out exactly once: every client's acknowledgement, every notification.
    got = sorted(r.rcpt_tos for r in smarthost.sink.received)
    assert got == sorted([(f"c{i}@customer.example",) for i in range(5)]
                         + [(o.recipients[0],) for o in outbox_rows(ctx, "notification")])
    assert sorted(o.recipients[0] for o in outbox_rows(ctx, "autoreply")) == \
        [f"c{i}@customer.example" for i in range(5)]
    assert all(r.tls for r in smarthost.sink.received)
    assert all(r.mail_from.startswith("support+bounce-") for r in smarthost.sink.received)
    assert statuses(ctx, "autoreply") == ["sent"] * 5
    assert statuses(ctx) == ["sent"] * queued
    # Two failed attempts later, each mail carries the Message-ID its row was queued with.
    sent_ids = sorted(email.message_from_bytes(r.data)["Message-ID"].strip("<>")
                      for r in smarthost.sink.received)
    assert sent_ids == sorted(o.message_id for o in outbox_rows(ctx))


def test_retries_stop_at_the_give_up_time(smtp_config, smarthost, ctx, processor, cli):
    smarthost.stop()
    deliver(ctx, processor, mail(sender="c@customer.example", subject="never"))
    clock = FixedClock(ctx.clock.now() + timedelta(seconds=1))
    deliverer = OutboxDeliverer(ctx.make_session, make_transport(ctx.settings.outbound), clock)
    try:
        attempts = 0
        while statuses(ctx, "autoreply") == ["queued"]:
            deliverer.run_once()
            attempts += 1
            clock.advance(hours=1)
            assert attempts < 100
        assert statuses(ctx, "autoreply") == ["failed"]
        assert statuses(ctx) == ["failed", "failed"]  # the line notification gave up alike
        assert attempts > 40  # hourly retries over two days
    finally:
        deliverer.transport.close()
    (row,) = cli_outbox(cli, kind="autoreply")
    assert row["status"] == "failed" and row["last_error"]
    assert cli("outbox", "retry", str(row["id"])).returncode == 0
    smarthost.start()
    assert cli("outbox", "deliver", check=True).stdout.decode().strip() == "1 sent"
    (got,) = smarthost.sink.received  # only the retried one
    assert got.rcpt_tos == ("c@customer.example",)
    assert statuses(ctx, "autoreply") == ["sent"] and statuses(ctx, "notification") == ["failed"]


def test_a_permanent_refusal_fails_at_once(smtp_config, smarthost, ctx, processor):
    smarthost.sink.rcpt_replies["bad@customer.example"] = "550 5.1.1 no such user"
    deliver(ctx, processor, mail(sender="bad@customer.example", subject="x"))
    deliverer = OutboxDeliverer(ctx.make_session, make_transport(ctx.settings.outbound),
                                FixedClock(ctx.clock.now() + timedelta(seconds=1)))
    (ack,) = outbox_rows(ctx, "autoreply")
    try:
        outcomes = {o.outbox_id: o for o in deliverer.run_once()}
    finally:
        deliverer.transport.close()
    assert len(outcomes) == outbox_count(ctx)
    outcome = outcomes[ack.id]
    assert outcome.status == "failed" and "550" in outcome.detail
    assert statuses(ctx, "autoreply") == ["failed"]
    assert statuses(ctx, "notification") == ["sent"]  # the refusal was the client's address's
