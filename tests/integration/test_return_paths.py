"""Signed, expiring return paths (PRODUCT.md §8): a bounce counts only when its tag is ours and
the mail is a real failure report about that mail's recipient; everything else is ordinary
mail and changes nothing."""

from __future__ import annotations

import email
import email.policy
import hashlib
import secrets
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from helpers import deliver, outbox_rows, store, ticket_count
from mails import mail
from maildesk import addresses
from maildesk.app import Context
from maildesk.clock import FixedClock
from maildesk.config.secrets import rotate_secret_file
from maildesk.db.models import Inbound, Outbox, Ticket, TicketEvent
from maildesk.process.run import Processor


def dsn(return_path: str, recipient: str, *, action: str = "failed", status: str = "5.1.1",
        message_id: str | None = None) -> bytes:
    return (b"From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
            b"To: " + return_path.encode() + b"\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\n"
            b"Message-ID: <" + (message_id or secrets.token_hex(8)).encode() + b"@mx.customer.example>\r\n"
            b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nuser unknown\r\n"
            b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.customer.example\r\n\r\n"
            b"Final-Recipient: rfc822; " + recipient.encode() + b"\r\n"
            b"Action: " + action.encode() + b"\r\nStatus: " + status.encode() + b"\r\n\r\n"
            b"--b--\r\n")


def new_ticket(ctx, processor, client: str) -> tuple[Ticket, Outbox]:
    t = deliver(ctx, processor, mail(sender=client, subject=f"help {secrets.token_hex(3)}"))
    (ack,) = [o for o in outbox_rows(ctx, "autoreply") if o.ticket_id == t.id]
    return t, ack


def state(ctx, outbox_id: int, ticket_id: int) -> tuple[str, datetime | None, list[str]]:
    with ctx.make_session() as s:
        o = s.get(Outbox, outbox_id)
        kinds = [e.kind for e in s.scalars(select(TicketEvent).where(
            TicketEvent.ticket_id == ticket_id))]
        return o.status.value, o.bounced_at, kinds


def test_return_paths_are_signed_and_short_enough(ctx, processor):
    t, ack = new_ticket(ctx, processor, "jane@customer.example")
    local = ack.envelope_from.partition("@")[0]
    assert len(local) <= 64 and local.startswith("support+bounce-")
    tag = addresses.parse_bounce(ack.envelope_from, frozenset(ctx.settings.support_addresses))
    assert tag is not None and tag.outbox_id == ack.id and tag.legacy is None
    # The tag is not derived from anything an outsider sees: not from the Message-ID.
    assert hashlib.sha256(ack.message_id.encode()).hexdigest()[:16] not in ack.envelope_from


def test_a_genuine_dsn_marks_failure_and_mutes_the_address(ctx, processor):
    t, ack = new_ticket(ctx, processor, "gone@customer.example")
    store(ctx, dsn(ack.envelope_from, "gone@customer.example"), mail_from="",
          rcpt=(ack.envelope_from,))
    processor.drain()
    status, bounced_at, kinds = state(ctx, ack.id, t.id)
    assert status == "failed" and bounced_at is not None and kinds[-1] == "bounce"
    again = deliver(ctx, processor, mail(sender="gone@customer.example", subject="again"))
    assert not [o for o in outbox_rows(ctx, "autoreply") if o.ticket_id == again.id]


def forged_paths(ctx, ack: Outbox, other: Outbox) -> dict[str, str]:
    """Return paths an attacker could make, for the mail `ack`."""
    local, _, domain = ack.envelope_from.partition("+")[0], None, \
        ack.envelope_from.partition("@")[2]
    old_way = hashlib.sha256(ack.message_id.encode()).hexdigest()[:16]
    mine = addresses.parse_bounce(ack.envelope_from, frozenset(ctx.settings.support_addresses))
    other_tag = addresses.parse_bounce(other.envelope_from,
                                       frozenset(ctx.settings.support_addresses))
    return {
        "made the old way": f"{local}+bounce-{old_way}@{domain}",
        "random": f"{local}+bounce-{ack.id}-{mine.day}-{secrets.token_hex(9)[:18]}@{domain}",
        "another row's tag with this id": f"{local}+bounce-{ack.id}-{other_tag.day}-"
                                          f"{other_tag.key_id}{other_tag.mac}@{domain}",
        "this row's tag with another id": f"{local}+bounce-{other.id}-{mine.day}-"
                                          f"{mine.key_id}{mine.mac}@{domain}",
        "a later day": f"{local}+bounce-{ack.id}-{mine.day + 1}-{mine.key_id}{mine.mac}@{domain}",
    }


@pytest.mark.parametrize("kind", ["made the old way", "random", "another row's tag with this id",
                                  "this row's tag with another id", "a later day"])
def test_a_forged_bounce_changes_nothing(ctx, processor, kind):
    t, ack = new_ticket(ctx, processor, "victim@customer.example")
    _, other = new_ticket(ctx, processor, "someone@customer.example")
    path = forged_paths(ctx, ack, other)[kind]
    before = state(ctx, ack.id, t.id)
    inbound = store(ctx, dsn(path, "victim@customer.example"), mail_from="", rcpt=(path,))
    processor.drain()
    assert state(ctx, ack.id, t.id) == before  # not failed, no note on the victim's ticket
    with ctx.make_session() as s:
        row = s.get(Inbound, inbound)
        assert "bounce of outgoing mail" not in (row.reason or "")
    # Ordinary mail to support: it made a ticket of its own (no autoreply: it is a robot's).
    assert ticket_count(ctx) == 3
    # And the victim is not muted: a new request is acknowledged.
    again = deliver(ctx, processor, mail(sender="victim@customer.example", subject="new"))
    assert [o for o in outbox_rows(ctx, "autoreply") if o.ticket_id == again.id]


def test_an_expired_tag_is_ordinary_mail(ctx, processor):
    t, ack = new_ticket(ctx, processor, "late@customer.example")
    later = Processor(ctx.settings, ctx.make_session,
                      FixedClock(datetime.now(timezone.utc) + timedelta(days=22)))
    try:
        store(ctx, dsn(ack.envelope_from, "late@customer.example"), mail_from="",
              rcpt=(ack.envelope_from,))
        later.drain()
    finally:
        later.close()
    status, bounced_at, kinds = state(ctx, ack.id, t.id)
    assert status == "queued" and bounced_at is None and "bounce" not in kinds


def test_rotating_the_key_keeps_existing_tags_valid(config_set, ctx, processor):
    t, ack = new_ticket(ctx, processor, "rot@customer.example")
    assert rotate_secret_file(ctx.settings.security.secret_file) == 2
    rotated = Context.load(config_set.path)
    p = Processor(rotated.settings, rotated.make_session, rotated.clock)
    try:
        t2 = deliver(rotated, p, mail(sender="rot2@customer.example", subject="after rotation"))
        (ack2,) = [o for o in outbox_rows(rotated, "autoreply") if o.ticket_id == t2.id]
        support = frozenset(ctx.settings.support_addresses)
        assert addresses.parse_bounce(ack2.envelope_from, support).key_id != \
            addresses.parse_bounce(ack.envelope_from, support).key_id
        for row, client in ((ack, "rot@customer.example"), (ack2, "rot2@customer.example")):
            store(rotated, dsn(row.envelope_from, client), mail_from="", rcpt=(row.envelope_from,))
        p.drain()
    finally:
        p.close()
        rotated.close()
    assert state(ctx, ack.id, t.id)[0] == "failed"
    assert state(ctx, ack2.id, t2.id)[0] == "failed"


def test_mail_queued_before_signing_keeps_its_tag_until_it_expires(ctx, processor):
    t, ack = new_ticket(ctx, processor, "old@customer.example")
    legacy = hashlib.sha256(ack.message_id.encode()).hexdigest()[:16]
    with ctx.make_session.begin() as s:  # as migration 0008 left a row queued before it
        row = s.get(Outbox, ack.id)
        row.bounce_tag = legacy
        row.envelope_from = f"support+bounce-{legacy}@example.com"
    path = f"support+bounce-{legacy}@example.com"
    later = Processor(ctx.settings, ctx.make_session,
                      FixedClock(datetime.now(timezone.utc) + timedelta(days=22)))
    try:
        store(ctx, dsn(path, "old@customer.example"), mail_from="", rcpt=(path,))
        later.drain()  # expired: ordinary mail
    finally:
        later.close()
    assert state(ctx, ack.id, t.id)[0] == "queued"
    store(ctx, dsn(path, "old@customer.example"), mail_from="", rcpt=(path,))
    processor.drain()  # within its validity: honoured
    assert state(ctx, ack.id, t.id)[0] == "failed"


@pytest.mark.parametrize("what", ["out-of-office", "human", "delayed", "other recipient"])
def test_a_verified_tag_marks_failure_only_for_a_failure_report(ctx, processor, what):
    t, ack = new_ticket(ctx, processor, "away@customer.example")
    path = ack.envelope_from
    if what == "out-of-office":
        raw = mail(sender="away@customer.example", to=path, subject="Out of office: help",
                   body="I am away until Monday.", extra={"Auto-Submitted": "auto-replied"})
        mail_from = ""
    elif what == "human":
        raw = mail(sender="Someone <someone@customer.example>", to=path, subject="Re: help",
                   body="Why did I get this?")
        mail_from = "someone@customer.example"
    elif what == "delayed":
        raw, mail_from = dsn(path, "away@customer.example", action="delayed", status="4.4.1"), ""
    else:
        raw, mail_from = dsn(path, "elsewhere@customer.example"), ""
    store(ctx, raw, mail_from=mail_from, rcpt=(path,))
    processor.drain()
    status, bounced_at, kinds = state(ctx, ack.id, t.id)
    assert status == "queued" and bounced_at is None and "bounce" not in kinds
    assert kinds[-1] == "delivery_notice"  # kept on the ticket for the agents, nothing more
    again = deliver(ctx, processor, mail(sender="away@customer.example", subject="new"))
    assert [o for o in outbox_rows(ctx, "autoreply") if o.ticket_id == again.id]  # not muted


# Corpus bounces whose failed recipient neither RFC 3464 fields nor flufl.bounce's detectors
# find: the recipient their text names (read by hand), or None for a report naming nobody.
_NAMED_BY_TEXT = {
    "lhost-dragonfly-13.eml": "kijitora@df.example.jp",
    "lhost-activehunter-01.eml": "kijitora@example.org",
    "lhost-kddi-01.eml": "kijitora@ezweb.ne.jp",
    "lhost-opensmtpd-01.eml": "apdugoaidugoaidugoaeiudggadi@gmail.com",   # CR line ends
    "lhost-zoho-04.eml": "kijitora@6kaku.example.co.jp",   # a "Delay" notice
    "msg_05.txt": None,                                    # a report that names no recipient
}
_NOT_FAILURES = {"dsn_07.txt",            # Action: delayed
                 "lhost-exim-38.eml",     # Warning: message ... delayed 24 hours
                 "lhost-zoho-04.eml",     # Mail Delivery Status Notification (Delay)
                 "msg_05.txt"}            # "Yadda yadda": names nobody


def _corpus_recipient(path) -> str:
    """The recipient a corpus bounce reports on (what our mail's recipient would have been)."""
    if path.name in _NAMED_BY_TEXT:
        return _NAMED_BY_TEXT[path.name] or f"nobody-{secrets.token_hex(3)}@customer.example"
    from flufl.bounce import all_failures
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload():
                value = block.get("Final-Recipient") or ""
                address = value.partition(";")[2].strip().strip("<>")
                if "@" in address and not address.startswith("@"):
                    return address.lower()
    temporary, permanent = all_failures(msg)
    found = sorted(permanent) or sorted(temporary)
    assert found, f"{path.name}: no recipient found; add it to _NAMED_BY_TEXT"
    return found[0].decode().lower()


def test_corpus_bounces_sent_to_our_return_path_fail_their_mail(ctx, processor):
    """Every bounce format in the corpus finds the mail it returns, and fails it when it reports
    a permanent failure for that mail's recipient."""
    from conftest import CORPUS
    index = CORPUS / "index.tsv"
    if not index.exists():
        pytest.skip("../shared/corpus is absent")
    bounces = [CORPUS / r.split("\t")[0] for r in index.read_text(encoding="utf-8").splitlines()[1:]
               if r.split("\t")[1] == "bounce-dsn"][::25]
    acks = []
    for i, path in enumerate(bounces):
        recipient = _corpus_recipient(path)
        t = deliver(ctx, processor, mail(sender=recipient, subject=f"request {i}"))
        (ack,) = [o for o in outbox_rows(ctx, "autoreply") if o.ticket_id == t.id]
        acks.append(ack)
    for path, ack in zip(bounces, acks):
        store(ctx, path.read_bytes(), mail_from="", rcpt=(ack.envelope_from,))
    processor.drain()
    with ctx.make_session() as s:
        got = {p.name: s.get(Outbox, a.id).status.value for p, a in zip(bounces, acks)}
        assert got == {p.name: "queued" if p.name in _NOT_FAILURES else "failed"
                       for p in bounces}
        assert all(s.get(Outbox, a.id).last_error.startswith("bounced: ")
                   for p, a in zip(bounces, acks) if p.name not in _NOT_FAILURES)
        assert s.scalar(select(Ticket.id).order_by(Ticket.id.desc()).limit(1)) is not None
    assert ticket_count(ctx) == len(bounces)  # no bounce opened a ticket of its own
    print(f"\n{len(bounces)} corpus bounces matched their outgoing mail, "
          f"{len(bounces) - len(_NOT_FAILURES)} failed it")


def test_the_key_file_is_private(ctx):
    path = ctx.settings.security.secret_file
    assert path.exists() and path.stat().st_mode & 0o077 == 0
    assert path.read_text() and "maildesk.key" not in repr(ctx.settings.signing_keys)
