"""Reply tokens nobody can guess (PRODUCT.md §8): 128-bit tokens, one token per message, token
probing quarantined and counted against its source; postmaster@ is a support address."""

from __future__ import annotations

import secrets
import smtplib
from datetime import datetime, timezone
from email.message import EmailMessage

from sqlalchemy import select

from helpers import deliver, inbound_statuses, store, ticket_count
from mails import mail
from maildesk import addresses
from maildesk.db.models import Channel, Inbound, Ticket
from maildesk.process.run import Processor
from maildesk.probes import TokenProbeGuard
from maildesk.store.raw import Arrival, store_one
from maildesk.views import reply_address


def from_ip(ctx, raw: bytes, ip: str, rcpt: tuple[str, ...] = ("support@example.com",)) -> int:
    return store_one(ctx.make_session, Arrival(
        data=raw, channel=Channel.SMTP, received_at=datetime.now(timezone.utc),
        mail_from="mallory@attacker.example", rcpt_to=rcpt, source=f"smtp:{ip}"))


def test_new_tickets_get_128_bit_tokens_in_short_enough_addresses(ctx, processor):
    t = deliver(ctx, processor, mail(sender="jane@customer.example"))
    assert len(t.reply_token) == addresses.TOKEN_LENGTH
    local = reply_address(t).partition("@")[0]
    assert len(local) <= 64
    reply = deliver(ctx, processor, mail(sender="jane@customer.example", subject="other words",
                                         to=reply_address(t)), rcpt=(reply_address(t),))
    assert reply.id == t.id


def test_a_ticket_made_before_keeps_its_short_token(ctx, processor):
    t = deliver(ctx, processor, mail(sender="old@customer.example"))
    with ctx.make_session.begin() as s:
        s.get(Ticket, t.id).reply_token = "k7f3qa"  # as tickets made before migration 0008
    address = f"support+{t.number}-k7f3qa@example.com"
    reply = deliver(ctx, processor, mail(sender="old@customer.example", subject="x", to=address),
                    rcpt=(address,))
    assert reply.id == t.id
    wrong = f"support+{t.number}-k7f3qb@example.com"
    other = deliver(ctx, processor, mail(sender="old@customer.example", subject="y", to=wrong),
                    rcpt=(wrong,))
    assert other.id != t.id


def test_one_mail_with_5000_guessed_tokens_joins_nothing_and_is_quarantined(ctx):
    guard = TokenProbeGuard(threshold=20)
    p = Processor(ctx.settings, ctx.make_session, ctx.clock, probes=guard)
    try:
        victim = deliver(ctx, p, mail(sender="victim@customer.example"))
        entries = len(victim.messages)
        guesses = [f"support+{victim.number}-{addresses.new_token()}@example.com"
                   for _ in range(4999)] + [reply_address(victim)]  # one of them is right
        msg = EmailMessage()
        msg["From"] = "mallory@attacker.example"
        msg["To"] = ", ".join(guesses)
        msg["Subject"] = "hello"
        msg["Message-ID"] = "<probe@attacker.example>"
        msg.set_content("guess")
        inbound = from_ip(ctx, msg.as_bytes(), "127.0.0.9")
        p.drain()
    finally:
        p.close()
    with ctx.make_session() as s:
        row = s.get(Inbound, inbound)
        assert row.status.value == "quarantined" and row.reason.startswith("token probing")
        assert len(s.get(Ticket, victim.id).messages) == entries  # nothing joined the victim's
    assert ticket_count(ctx) == 1
    assert guard.blocked("127.0.0.9") and not guard.blocked("127.0.0.10")


def test_only_the_first_token_is_tried_and_failures_count_per_ip(ctx):
    guard = TokenProbeGuard(threshold=3)
    p = Processor(ctx.settings, ctx.make_session, ctx.clock, probes=guard)
    try:
        t = deliver(ctx, p, mail(sender="jane@customer.example"))
        wrong = f"support+{t.number}-{addresses.new_token()}@example.com"
        # The envelope names a wrong token first: the right one in To is never looked at.
        inbound = from_ip(ctx, mail(sender="jane@customer.example", subject="zz",
                                    to=reply_address(t)), "127.0.0.7", rcpt=(wrong,))
        p.drain()
        with ctx.make_session() as s:
            msg_ticket = s.scalar(select(Inbound).where(Inbound.id == inbound))
            assert msg_ticket.status.value == "done"
        assert ticket_count(ctx) == 2 and guard.failures("127.0.0.7") == 1
        for _ in range(2):
            from_ip(ctx, mail(sender="jane@customer.example", subject=secrets.token_hex(4)),
                    "127.0.0.7", rcpt=(f"support+{t.number}-{addresses.new_token()}@example.com",))
        p.drain()
    finally:
        p.close()
    assert guard.blocked("127.0.0.7") and guard.failures("127.0.0.8") == 0


def test_postmaster_mail_becomes_a_ticket_on_the_configured_line(ctx, processor):
    assert ctx.settings.postmaster_line == "line1"
    store(ctx, mail(sender="admin@isp.example", to="postmaster@example.com",
                    subject="Abuse report"), rcpt=("postmaster@example.com",))
    processor.drain()
    assert inbound_statuses(ctx) == ["done"]
    with ctx.make_session() as s:
        (t,) = s.scalars(select(Ticket)).all()
        assert t.line == "line1" and t.subject == "Abuse report"


def test_after_the_threshold_an_ip_gets_550_for_token_addresses_and_others_do_not(
        smtp_listener, ctx):
    """Wrong tokens sent through the listener from 127.0.0.2 are counted by the processor; past
    the threshold the listener refuses that IP's token RCPTs, and only those."""
    guard = TokenProbeGuard(threshold=3)
    smtp_listener.handler.probes = guard
    p = Processor(ctx.settings, ctx.make_session, ctx.clock, probes=guard)
    try:
        t = deliver(ctx, p, mail(sender="jane@customer.example"))
        right = reply_address(t)

        def send(source: str, rcpt: str) -> tuple[int, bytes]:
            with smtplib.SMTP(smtp_listener.host, smtp_listener.port, timeout=30,
                              source_address=(source, 0)) as smtp:
                smtp.ehlo()
                smtp.mail("mallory@attacker.example")
                code, reply = smtp.rcpt(rcpt)
                if code == 250:
                    smtp.data(mail(sender="mallory@attacker.example", subject=secrets.token_hex(4),
                                   to=rcpt))
                return code, reply

        for _ in range(3):
            guess = f"support+{t.number}-{addresses.new_token()}@example.com"
            assert send("127.0.0.2", guess)[0] == 250  # below the threshold: taken, then counted
            p.drain()
        assert guard.blocked("127.0.0.2")
        code, reply = send("127.0.0.2", right)
        assert code == 550 and b"5.7.1" in reply  # even the right token: the IP is refused
        assert send("127.0.0.2", "support@example.com")[0] == 250  # plain support still taken
        assert send("127.0.0.3", right)[0] == 250  # another IP is unaffected
        p.drain()
    finally:
        p.close()
    with ctx.make_session() as s:
        assert len([m for m in s.get(Ticket, t.id).messages if m.direction.value == "in"]) == 2


def test_a_batch_run_again_after_a_failure_counts_a_wrong_token_once(ctx, monkeypatch):
    """A batch runs without a savepoint per mail; when one fails, the batch is rolled back and
    run again, each mail on its own. What the first run decided about the mails before the
    failing one is not kept: a wrong token is counted against the IP once, not twice."""
    from maildesk.effects import apply as applying

    guard = TokenProbeGuard(threshold=20)
    p = Processor(ctx.settings, ctx.make_session, ctx.clock, probes=guard)
    try:
        t = deliver(ctx, p, mail(sender="jane@customer.example"))
        wrong = f"support+{t.number}-{addresses.new_token()}@example.com"
        probing = from_ip(ctx, mail(sender="jane@customer.example", subject="zz"), "127.0.0.7",
                          rcpt=(wrong,))
        failing = from_ip(ctx, mail(sender="bob@customer.example", subject="broken"),
                          "127.0.0.8")
        later = from_ip(ctx, mail(sender="ann@customer.example", subject="fine"), "127.0.0.8")
        real = applying.apply_plan

        def apply_or_fail(session, plan, inbound, **kw):  # type: ignore[no-untyped-def]
            if inbound.id == failing:
                raise OSError("disk full")
            return real(session, plan, inbound, **kw)

        monkeypatch.setattr("maildesk.process.run.apply_plan", apply_or_fail)
        outcomes = {o.inbound_id: o.status for o in p.run_batch(limit=10)}
    finally:
        p.close()
    assert outcomes == {probing: "done", failing: "retry", later: "done"}
    assert guard.failures("127.0.0.7") == 1
    assert ticket_count(ctx) == 3   # jane's first, her mail to a wrong token, ann's
    with ctx.make_session() as s:
        row = s.get(Inbound, failing)
        assert row.status.value == "pending" and row.attempts == 1 and "disk full" in row.reason
