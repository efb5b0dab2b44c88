"""The SMTP listener as a client's MTA sees it: reply codes, durability, no open relay."""

from __future__ import annotations

import smtplib
import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, text

from helpers import (SUPPORT, RawMessage, count, inbound_statuses, send_smtp, ticket_count)
from mails import mail
from maildesk.db.models import Inbound


def test_mail_to_support_becomes_a_numbered_ticket(smtp_listener, processor, cli):
    raw = mail(subject="Принтер не печатает", body="Добрый день! Принтер не печатает чеки.")
    assert send_smtp(smtp_listener.host, smtp_listener.port, raw) == {}
    processor.drain()
    listing = cli("tickets", "list", check=True).stdout.decode()
    assert "MD-1000" in listing and "Принтер не печатает" in listing
    shown = cli("tickets", "show", "MD-1000", check=True).stdout.decode()
    assert "Добрый день! Принтер не печатает чеки." in shown


def test_plus_detail_and_case_variants_are_accepted(smtp_listener, ctx):
    raw = mail()
    refused = send_smtp(smtp_listener.host, smtp_listener.port, raw,
                        rcpt=["Support+billing@Example.COM", "support+1000-abcdef@example.com"])
    assert refused == {}
    assert count(ctx, Inbound) == 1


@pytest.mark.parametrize("rcpt", ["someone@example.com", "support@evil.example",
                                  "support@example.com.evil.example", "line9@example.com",
                                  "postmaster@evil.example"])
def test_foreign_recipient_gets_550_and_nothing_is_stored(smtp_listener, ctx, rcpt):
    with smtplib.SMTP(smtp_listener.host, smtp_listener.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("spammer@evil.example")
        code, reply = smtp.rcpt(rcpt)
    assert code == 550, reply
    assert count(ctx, Inbound) == 0


def test_mixed_recipients_only_ours_are_taken(smtp_listener, ctx):
    with smtplib.SMTP(smtp_listener.host, smtp_listener.port, timeout=30) as smtp:
        refused = smtp.sendmail("c@customer.example", [SUPPORT, "victim@other.example"], mail())
    assert refused == {"victim@other.example": (550, refused["victim@other.example"][1])}
    with ctx.make_session() as s:
        (row,) = s.query(Inbound).all()
        assert row.rcpt_to == [SUPPORT]


@pytest.fixture
def small_limit(config_set):
    config_set.write(smtp={"max_message_size": 4096})


def test_oversize_message_gets_552(small_limit, smtp_listener, ctx):
    big = mail(body="x" * 10_000)
    with pytest.raises(smtplib.SMTPResponseException) as err:
        send_smtp(smtp_listener.host, smtp_listener.port, big)
    assert err.value.smtp_code == 552
    assert count(ctx, Inbound) == 0
    assert send_smtp(smtp_listener.host, smtp_listener.port, mail(body="short")) == {}
    assert count(ctx, Inbound) == 1


class DatabaseLock:
    """Hold the database so that no one else can write (SQLite: readers pass) or use the
    `tables` in a way `mode` excludes (PostgreSQL; by default no one inserts arrivals)."""

    def __init__(self, url: str, tables: tuple[str, ...] = ("raw_message", "inbound"),
                 mode: str = "ACCESS EXCLUSIVE"):
        self.url, self.tables, self.mode = url, tables, mode

    def __enter__(self):
        if self.url.startswith("sqlite"):
            self.conn = sqlite3.connect(self.url.split("///", 1)[1], isolation_level=None)
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            self.engine = create_engine(self.url)
            self.conn = self.engine.connect()
            self.conn.execute(text(f"LOCK TABLE {', '.join(self.tables)} IN {self.mode} MODE"))
        return self

    def __exit__(self, *exc):
        if self.url.startswith("sqlite"):
            self.conn.execute("ROLLBACK")
            self.conn.close()
        else:
            self.conn.rollback()
            self.conn.close()
            self.engine.dispose()


def test_unwritable_database_gets_451_and_nothing_half_stored(smtp_listener, ctx):
    raw = mail(subject="during the outage")
    with DatabaseLock(ctx.settings.database.url):
        with pytest.raises(smtplib.SMTPDataError) as err:
            send_smtp(smtp_listener.host, smtp_listener.port, raw)
        assert err.value.smtp_code == 451
    assert count(ctx, Inbound) == 0 and count(ctx, RawMessage) == 0
    # The sender's MTA retries: now it is stored once.
    assert send_smtp(smtp_listener.host, smtp_listener.port, raw) == {}
    assert count(ctx, Inbound) == 1 and count(ctx, RawMessage) == 1


def test_same_message_twice_makes_one_entry(smtp_listener, ctx, processor):
    raw = mail(message_id="<dup-1@customer.example>", subject="Twice")
    send_smtp(smtp_listener.host, smtp_listener.port, raw)
    # The second copy comes through another relay: an extra Received header in front.
    relayed = b"Received: from relay.customer.example by mx; Mon, 23 Nov 2026 10:00:05 +0000\r\n" + raw
    send_smtp(smtp_listener.host, smtp_listener.port, relayed)
    send_smtp(smtp_listener.host, smtp_listener.port, raw)
    processor.drain()
    assert ticket_count(ctx) == 1
    assert sorted(inbound_statuses(ctx)) == ["done", "duplicate", "duplicate"]
    assert count(ctx, RawMessage) == 2  # every distinct byte string is kept for the audit


def test_concurrent_sessions_are_all_stored(smtp_listener, ctx, processor):
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            with smtplib.SMTP(smtp_listener.host, smtp_listener.port, timeout=60) as smtp:
                for i in range(10):
                    smtp.sendmail(f"c{n}@customer.example", [SUPPORT],
                                  mail(sender=f"c{n}@customer.example", subject=f"request {n}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert count(ctx, Inbound) == 80
    processor.drain()
    assert ticket_count(ctx) == 80
