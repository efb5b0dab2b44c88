"""No backscatter (PRODUCT.md §8): a forged sender gets no automatic mail, the ticket is made all
the same and says why; caps per domain and in total. Real listener, real DNS on loopback."""

from __future__ import annotations

import base64
import signal
import smtplib
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, select

from desk import events
from dnszone import DnsServer, Zone
from helpers import outbox_rows, send_smtp, ticket_count
from mails import mail
from maildesk.config.model import load_settings
from maildesk.db.models import Channel, Inbound, InboundStatus
from maildesk.store.raw import Arrival, store_one

CLIENT = "client@customer.example"
RELAY_ID = "mx.example.com"
EXE = str(Path(sys.executable).parent / "maildesk")


def configure(config_set, ctx, processor, **changes) -> None:
    """Change maildesk.yaml and put the new settings into the running pieces (as SIGHUP does)."""
    config_set.write(**changes)
    ctx.settings = processor.settings = load_settings(config_set.path)


def trusting(config_set, ctx, processor, *, policy="block-fail", relays=("127.0.0.1",),
             **more) -> None:
    configure(config_set, ctx, processor, authenticity={
        "policy": policy, "trusted_authserv_ids": [RELAY_ID], "trusted_relays": list(relays),
        "spam_header": {"name": "X-Spam-Flag", "match": "(?i)^yes"}, **more})


def with_headers(*headers: str, sender: str = CLIENT, subject: str = "Printer broken") -> bytes:
    """A client's mail as the relay hands it on: its headers on top, the client's below."""
    top = "".join(f"{h}\n" for h in headers).encode()
    return top + mail(sender=f"Client <{sender}>", subject=subject)


def autoreplies(ctx) -> list:
    return outbox_rows(ctx, "autoreply")


def suppressed(ctx) -> list[str]:
    return [e.data["reason"] for e in events(ctx, "autoreply_suppressed")]


def inbound_rows(ctx) -> list[Inbound]:
    with ctx.make_session() as s:
        return list(s.scalars(select(Inbound).order_by(Inbound.id)))


# -- the trusted relay's Authentication-Results ------------------------------------------------

@pytest.mark.parametrize("headers, reason", [
    (("Authentication-Results: mx.example.com; spf=fail smtp.mailfrom=customer.example",),
     "spf=fail"),
    (("Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=bulk.example;"
      " dmarc=fail (p=reject) header.from=customer.example",), "dmarc=fail"),
    (("X-Spam-Flag: YES",
      "Authentication-Results: mx.example.com; dmarc=pass header.from=customer.example"),
     "spam verdict X-Spam-Flag: YES"),
])
def test_a_fail_or_spam_verdict_of_the_trusted_relay_makes_a_ticket_and_no_autoreply(
        config_set, ctx, processor, smtp_listener, headers, reason):
    trusting(config_set, ctx, processor)
    send_smtp(smtp_listener.host, smtp_listener.port, with_headers(*headers))
    processor.drain()
    assert ticket_count(ctx) == 1
    assert autoreplies(ctx) == []
    (why,) = suppressed(ctx)
    assert why.startswith("authenticity (block-fail)") and reason in why
    assert [r.kind for r in outbox_rows(ctx)] == ["notification"]   # the line still hears


@pytest.mark.parametrize("case", ["untrusted authserv-id", "untrusted relay IP"])
def test_the_same_header_from_an_untrusted_source_is_ignored(config_set, ctx, processor,
                                                             smtp_listener, case):
    if case == "untrusted authserv-id":
        trusting(config_set, ctx, processor)
        header = "Authentication-Results: mx.evil.example; dmarc=fail header.from=customer.example"
    else:
        trusting(config_set, ctx, processor, relays=["192.0.2.10"])
        header = "Authentication-Results: mx.example.com; dmarc=fail header.from=customer.example"
    send_smtp(smtp_listener.host, smtp_listener.port, with_headers(header, "X-Spam-Flag: YES")
              if case == "untrusted relay IP" else with_headers(header))
    processor.drain()
    (row,) = autoreplies(ctx)
    assert row.recipients == [CLIENT] and suppressed(ctx) == []


def test_only_the_topmost_authentication_results_is_read(config_set, ctx, processor,
                                                         smtp_listener):
    """The sender's own forged "pass" below the relay's header, or below a header of another
    server on top, is never believed."""
    trusting(config_set, ctx, processor, policy="require-pass")
    forged = "Authentication-Results: mx.example.com; dmarc=pass header.from=customer.example"
    send_smtp(smtp_listener.host, smtp_listener.port, with_headers(
        "Authentication-Results: mx.example.com; spf=softfail smtp.mailfrom=customer.example",
        "Received: from attacker", forged, subject="one"))
    send_smtp(smtp_listener.host, smtp_listener.port, with_headers(
        "Authentication-Results: spamfilter.example; spf=none", forged, subject="two"))
    processor.drain()
    assert ticket_count(ctx) == 2 and autoreplies(ctx) == []
    assert all(w.startswith("authenticity (require-pass): no authenticated sender")
               for w in suppressed(ctx)) and len(suppressed(ctx)) == 2
    send_smtp(smtp_listener.host, smtp_listener.port, with_headers(forged, subject="three"))
    processor.drain()
    (row,) = autoreplies(ctx)
    assert row.recipients == [CLIENT]


def test_require_pass_without_any_result_sends_nothing(config_set, ctx, processor,
                                                       smtp_listener):
    trusting(config_set, ctx, processor, policy="require-pass")
    send_smtp(smtp_listener.host, smtp_listener.port, mail(sender=f"Client <{CLIENT}>"))
    processor.drain()
    assert ticket_count(ctx) == 1 and autoreplies(ctx) == []
    (why,) = suppressed(ctx)
    assert "no trusted Authentication-Results" in why


def test_pipe_and_imap_mail_trust_the_mailboxs_mta_by_its_authserv_id(config_set, ctx,
                                                                      processor):
    trusting(config_set, ctx, processor, relays=[])
    now = datetime.now(timezone.utc)
    for source, sender, header in (
            (None, "a@customer.example",
             "Authentication-Results: mx.example.com; dmarc=fail header.from=customer.example"),
            ("imap:support/INBOX", "b@customer.example",
             "Authentication-Results: mx.example.com; spf=fail smtp.mailfrom=customer.example"),
            ("imap:support/INBOX", "c@customer.example",
             "Authentication-Results: mx.evil.example; spf=fail smtp.mailfrom=customer.example")):
        store_one(ctx.make_session, Arrival(
            data=with_headers(header, sender=sender), channel=Channel.PIPE if source is None
            else Channel.IMAP, received_at=now, mail_from=sender,
            rcpt_to=("support@example.com",), source=source))
    processor.drain()
    assert ticket_count(ctx) == 3
    assert [r.recipients for r in autoreplies(ctx)] == [["c@customer.example"]]
    assert len(suppressed(ctx)) == 2


# -- caps ---------------------------------------------------------------------------------------

def test_per_domain_and_total_caps(config_set, ctx, processor):
    configure(config_set, ctx, processor, autoreply={"max_per_domain_per_hour": 2,
                                                     "max_per_hour": 3})
    now = datetime.now(timezone.utc)
    senders = ["a@one.example", "b@one.example", "c@One.example", "x@two.example",
               "y@three.example"]
    for sender in senders:
        store_one(ctx.make_session, Arrival(
            data=mail(sender=sender, subject=f"from {sender}"), channel=Channel.PIPE,
            received_at=now, mail_from=sender, rcpt_to=("support@example.com",)))
        processor.drain()
    assert ticket_count(ctx) == 5
    rows = autoreplies(ctx)
    assert [r.recipients for r in rows] == [["a@one.example"], ["b@one.example"],
                                            ["x@two.example"]]
    assert {r.recipient_domain for r in rows} == {"one.example", "two.example"}
    domain_cap, total_cap = suppressed(ctx)
    assert "too many autoreplies to one.example in the last hour" in domain_cap
    assert "too many autoreplies in the last hour" in total_cap


# -- maildesk's own check on the listener -----------------------------------------------------

@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, str]:
    """(private key PEM, the `p=` of its DNS record)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


@pytest.fixture
def zone(dkim_key):
    """customer.example's SPF (only 127.0.0.1 may send), DKIM key and DMARC policy."""
    z = Zone(txt={"customer.example": ["v=spf1 ip4:127.0.0.1 -all"],
                  "sel._domainkey.customer.example": [f"v=DKIM1; k=rsa; p={dkim_key[1]}"],
                  "_dmarc.customer.example": ["v=DMARC1; p=reject"],
                  "elsewhere.example": ["v=spf1 ip4:192.0.2.0/24 -all"]})
    with DnsServer(z) as server:
        z.port = server.port  # type: ignore[attr-defined]
        yield z


@pytest.fixture
def checking_listener(ctx):
    """The real listener with the own check wired as `serve` wires it."""
    from conftest import running_listener
    from maildesk.ingress.authcheck import make_authenticator

    with running_listener(ctx, authenticate=make_authenticator(lambda: ctx.settings)) as lst:
        yield lst.host, lst.port


def own_check(config_set, ctx, processor, zone, *, policy="require-pass", timeout="5s"):
    configure(config_set, ctx, processor, authenticity={
        "policy": policy, "trusted_authserv_ids": [], "trusted_relays": [],
        "own_check": {"enabled": True, "nameserver": "127.0.0.1", "port": zone.port,
                      "timeout": timeout, "authserv_id": "mail.example.com"}})


def signed(pem: bytes, *, sender: str = CLIENT, subject: str = "Printer broken") -> bytes:
    raw = mail(sender=f"Client <{sender}>", subject=subject).replace(b"\n", b"\r\n")
    return dkim.sign(raw, b"sel", b"customer.example", pem,
                     include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + raw


def send(listener, raw: bytes, *, mail_from: str) -> None:
    with smtplib.SMTP(*listener, timeout=30, local_hostname="mx.customer.example") as smtp:
        smtp.sendmail(mail_from, ["support@example.com"], raw)


def test_own_check_pass_gets_the_autoreply(config_set, ctx, processor, zone, dkim_key,
                                           checking_listener):
    own_check(config_set, ctx, processor, zone)
    send(checking_listener, signed(dkim_key[0]), mail_from=CLIENT)
    processor.drain()
    (inbound,) = inbound_rows(ctx)
    assert inbound.auth_results == (
        "mail.example.com; spf=pass smtp.mailfrom=customer.example; dkim=pass "
        "header.d=customer.example header.i=@customer.example header.s=sel; "
        "dmarc=pass header.from=customer.example")
    (row,) = autoreplies(ctx)
    assert row.recipients == [CLIENT] and suppressed(ctx) == []
    # Every question went to the loopback server: SPF, the DKIM key, the DMARC policy.
    assert {q for q in zone.asked} >= {("customer.example", "TXT"),
                                       ("sel._domainkey.customer.example", "TXT"),
                                       ("_dmarc.customer.example", "TXT")}


def test_own_check_fail_gets_a_ticket_and_no_autoreply(config_set, ctx, processor, zone,
                                                       dkim_key, checking_listener):
    """A forged From: customer.example, sent from an address its SPF does not allow, with a
    signature that no longer matches: even block-fail sends nothing."""
    own_check(config_set, ctx, processor, zone, policy="block-fail")
    forged = signed(dkim_key[0]).replace(b"the printer is broken", b"please pay invoice 77")
    send(checking_listener, forged, mail_from="billing@elsewhere.example")
    processor.drain()
    (inbound,) = inbound_rows(ctx)
    assert "spf=fail smtp.mailfrom=elsewhere.example" in inbound.auth_results
    assert "dkim=fail header.d=customer.example" in inbound.auth_results
    assert "dmarc=fail header.from=customer.example" in inbound.auth_results
    assert ticket_count(ctx) == 1 and autoreplies(ctx) == []
    (why,) = suppressed(ctx)
    assert why.startswith("authenticity (block-fail): the sender failed authentication: "
                          "dmarc=fail") and "own check" in why


def test_a_dead_resolver_costs_the_sender_no_more_than_the_timeout(config_set, ctx, processor,
                                                                   zone, dkim_key,
                                                                   checking_listener):
    own_check(config_set, ctx, processor, zone, timeout="1s")
    zone.silent = True
    started = time.monotonic()
    send(checking_listener, signed(dkim_key[0]), mail_from=CLIENT)
    assert time.monotonic() - started < 5
    processor.drain()
    (inbound,) = inbound_rows(ctx)
    assert inbound.status is InboundStatus.DONE
    assert "spf=temperror" in inbound.auth_results and "dmarc=temperror" in inbound.auth_results
    assert ticket_count(ctx) == 1 and autoreplies(ctx) == []     # require-pass: no pass


def test_serve_runs_the_own_check_on_its_listener(config_set, zone, dkim_key, tmp_path):
    config_set.write(authenticity={
        "policy": "require-pass",
        "own_check": {"enabled": True, "nameserver": "127.0.0.1", "port": zone.port}})
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve",
                                 "--only", "smtp"], stdout=subprocess.PIPE, stderr=err)
    try:
        assert "maildesk serving" in proc.stdout.readline().decode(), log.read_text()
        send(("127.0.0.1", config_set.data["smtp"]["port"]), signed(dkim_key[0]),
             mail_from=CLIENT)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    engine = create_engine(load_settings(config_set.path).database.url)
    try:
        with engine.connect() as conn:
            (results,) = conn.execute(select(Inbound.auth_results)).scalars().all()
    finally:
        engine.dispose()
    assert results.startswith("example.com; spf=pass") and "dmarc=pass" in results


# -- `maildesk check` -----------------------------------------------------------------------------

def test_check_warns_of_a_public_listener_without_require_pass(config_set, cli):
    config_set.write(smtp={"host": "0.0.0.0"})
    proc = cli("check")
    assert proc.returncode == 0
    assert b"WARNING:" in proc.stderr and b"require-pass" in proc.stderr
    config_set.write(authenticity={"policy": "require-pass"})
    proc = cli("check")
    assert proc.returncode == 0 and b"WARNING" not in proc.stderr
    config_set.write(smtp={"host": "127.0.0.1"}, authenticity={"policy": "off"})
    assert b"WARNING" not in cli("check").stderr
