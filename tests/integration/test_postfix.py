"""Postfix in front of maildesk, for real (issue 21): a private Postfix from Debian's package
(tests/postfix.py: own config and queue, loopback ports) hands the support domain's mail over
by both hand-offs README's "Running in production" describes, with the same main.cf, master.cf
and map lines:

- Postfix as the MX relaying to `maildesk serve`'s listener: the mail becomes a ticket and the
  client gets the acknowledgement; reply addresses pass Postfix, unknown addresses do not, nor
  mail over Postfix's size limit, which sits just below maildesk's;
- Postfix piping to `maildesk ingest` as an unprivileged user (with and without a daemon):
  the mail becomes a ticket;
- `ingest` exiting 75 (a locked database, a broken configuration) makes Postfix keep the mail
  queued and try again: it arrives, once, after the fault clears; 65 makes Postfix return it;
- README shows the lines these tests run.

maildesk's files live in a directory of their own under /tmp, owned by the pipe user (pytest's
temporary directories are root's alone), on each database backend (SQLite only where the
backend makes no difference).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, func, select, text

from conftest import ROOT, free_port, need_server
from helpers import maildir_mails, wait_for
from mails import mail
from maildesk.db.models import Inbound, Ticket
from postfix import (PIPE_USER, Postfix, maildesk_for, missing, pipe_service, postfix_or_skip,
                     production_main_cf, recipient_map, size_limit_for, transport_map)

EXE = str(Path(sys.executable).parent / "maildesk")
DOMAIN = "example.com"
SUPPORT = f"support@{DOMAIN}"
CLIENT = "client@customer.example"
MAX_MESSAGE_SIZE = 1_000_000                          # smtp.max_message_size of the test desk
POSTFIX_SIZE_LIMIT = size_limit_for(MAX_MESSAGE_SIZE)  # Postfix's message_size_limit


# -- maildesk where the pipe user can reach it ---------------------------------------------------
@dataclass
class Desk:
    dir: Path
    config: Path
    var: Path
    data: dict
    db_url: str

    @property
    def port(self) -> int:
        return self.data["smtp"]["port"]

    @property
    def maildir(self) -> Path:
        return self.var / "outbox-maildir"

    def write(self, **sections: dict) -> None:
        for key, value in sections.items():
            self.data[key] = {**self.data.get(key, {}), **value}
        self.config.write_text(yaml.safe_dump(self.data, allow_unicode=True, sort_keys=False))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([EXE, "--config", str(self.config), *args], capture_output=True,
                              timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"maildesk {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout.decode()}\n{proc.stderr.decode()}")
        return proc

    def tickets(self) -> list[dict]:
        return json.loads(self.cli("tickets", "list", "--json").stdout)

    def ticket(self, number: int) -> dict:
        return json.loads(self.cli("tickets", "show", str(number), "--json").stdout)

    def count(self, model) -> int:  # type: ignore[no-untyped-def]
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return conn.scalar(select(func.count()).select_from(model))
        finally:
            engine.dispose()


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    """The example config set in a directory of its own under /tmp, its var/ (the SQLite
    database, the signing key) owned by the pipe user, as a production install would be."""
    if (why := missing()) is not None:
        need_server(f"Postfix ({why})")
    root = Path(tempfile.mkdtemp(prefix="maildesk-postfix-desk-"))
    try:
        yield _make_desk(root, db_url)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _make_desk(root: Path, db_url: str) -> Desk:
    os.chmod(root, 0o755)
    shutil.copytree(ROOT / "config", root / "config")
    shutil.copytree(ROOT / "templates", root / "templates")
    var = root / "var"
    var.mkdir()
    url = db_url
    if db_url.startswith("sqlite:///"):
        shutil.copyfile(db_url.removeprefix("sqlite:///"), var / "maildesk.db")
        url = f"sqlite:///{var / 'maildesk.db'}"
    path = root / "config" / "maildesk.yaml"
    d = Desk(root, path, var, yaml.safe_load(path.read_text()), url)
    d.write(database={"url": url, "lock_timeout_ms": 2000},
            smtp={"port": free_port(), "relays": ["127.0.0.1"],
                  "max_message_size": MAX_MESSAGE_SIZE},
            paths={"var": str(var), "templates": str(root / "templates")},
            outbound={"transport": "maildir", "maildir": str(var / "outbox-maildir")})
    d.cli("check")                       # makes the signing key
    user = pwd.getpwnam(PIPE_USER)
    for p in [var, *var.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid)
    return d


@pytest.fixture
def postfix(desk: Desk) -> Iterator[Callable[..., Postfix]]:
    """`postfix("relay" | "pipe")`: a started private Postfix handing example.com to the desk.
    Always stopped at the end; its log is printed (pytest shows it when the test failed)."""
    started: list[Postfix] = []

    def start(handoff: str, size_limit: int = POSTFIX_SIZE_LIMIT,
              no_process: bool = False) -> Postfix:
        kw: dict = ({"relay_to": ("127.0.0.1", desk.port)} if handoff == "relay"
                    else {"pipe": (maildesk_for(PIPE_USER, desk.dir), str(desk.config)),
                          "no_process": no_process})
        server = postfix_or_skip(domain=DOMAIN, addresses=desk.data["support_addresses"],
                                 message_size_limit=size_limit, **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        try:
            print(f"--- {server.maillog} ---\n{server.log_text()}")
        finally:
            server.close()


@pytest.fixture
def daemon(desk: Desk) -> Iterator[subprocess.Popen]:
    """`maildesk serve` on the desk (its listener on a loopback port)."""
    log = desk.dir / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([EXE, "--config", str(desk.config), "serve"],
                                stdout=subprocess.PIPE, stderr=err)
    try:
        line = proc.stdout.readline().decode()
        assert "maildesk serving" in line, log.read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def submit(server: Postfix, raw: bytes, rcpts: list[str] | None = None,
           sender: str = CLIENT) -> dict:
    """Hand a mail to Postfix's SMTP server as an MTA on the internet would."""
    with smtplib.SMTP(server.host, server.port, timeout=60) as smtp:
        smtp.ehlo("mta.customer.example")
        return smtp.sendmail(sender, rcpts or [SUPPORT], raw)


def waiting(server: Postfix, predicate, what: str,  # type: ignore[no-untyped-def]
            limit: float = 120.0):
    try:
        return wait_for(predicate, what, limit)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; queue: {server.queue()}\n{server.log_text()}") from None


# -- hand-off 1: Postfix as the MX, relaying to the listener -----------------------------------
def test_postfix_relays_the_support_domain_to_the_listener(desk, daemon, postfix):
    server = postfix("relay")
    refused = submit(server, mail(subject="Касса не печатает чеки", sender=f"Client <{CLIENT}>"),
                     [SUPPORT, f"nobody@{DOMAIN}"])
    # Postfix knows the support addresses (relay_recipient_maps): nobody@ is refused at RCPT,
    # by Postfix, so no bounce is ever made for it.
    assert list(refused) == [f"nobody@{DOMAIN}"]
    assert refused[f"nobody@{DOMAIN}"][0] == 550 and b"5.1.1" in refused[f"nobody@{DOMAIN}"][1]

    (row,) = waiting(server, desk.tickets, "the ticket")
    assert row["subject"] == "Касса не печатает чеки" and row["requester"]["address"] == CLIENT
    ack = waiting(server, lambda: maildir_mails(desk.maildir, to=CLIENT), "the acknowledgement")
    assert row["tag"] in ack[0]["Subject"]
    assert any(f"relay=127.0.0.1[127.0.0.1]:{desk.port}" in line for line in server.delivered())

    # The client answers to the ticket's reply address (support+<number>-<token>@): Postfix
    # lets it through as support@ (recipient_delimiter = +) and it joins the ticket.
    reply_to = desk.ticket(row["number"])["reply_address"]
    submit(server, mail(subject=f"Re: [{row['tag']}] Касса не печатает чеки",
                        sender=f"Client <{CLIENT}>", to=reply_to, body="Still broken."),
           [reply_to])
    waiting(server, lambda: desk.ticket(row["number"])["message_count"] >= 2, "the reply")
    assert len(desk.tickets()) == 1


SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # backend-blind


@SQLITE_ONLY
def test_postfix_refuses_what_maildesk_would_refuse_for_size(desk, daemon, postfix):
    """message_size_limit a little below smtp.max_message_size: mail Postfix takes fits
    maildesk, mail over it is refused at SMTP time by Postfix (no bounce from us)."""
    server = postfix("relay")
    fits = mail(subject="fits", body=("x" * 76 + "\n") * ((POSTFIX_SIZE_LIMIT - 20_000) // 77))
    submit(server, fits)
    waiting(server, lambda: len(desk.tickets()) == 1, "the ticket of the mail that fits")
    big = mail(subject="too big", body=("x" * 76 + "\n") * ((POSTFIX_SIZE_LIMIT + 1000) // 77))
    assert len(big) < MAX_MESSAGE_SIZE
    with pytest.raises(smtplib.SMTPException) as refused:
        submit(server, big)
    assert "552" in str(refused.value) and "5.3.4" in str(refused.value)
    assert server.queue() == [] and len(desk.tickets()) == 1


# -- hand-off 2: Postfix piping to `maildesk ingest` -------------------------------------------
@pytest.mark.parametrize("mode", ["ingest processes", "daemon processes"])
def test_postfix_pipes_to_ingest(desk, postfix, mode, request):
    """Without a daemon `ingest` processes the mail itself and `outbox deliver` (cron) sends
    the acknowledgement; with one, `ingest --no-process` only stores and the daemon does both."""
    with_daemon = mode == "daemon processes"
    if with_daemon:
        request.getfixturevalue("daemon")
    server = postfix("pipe", no_process=with_daemon)
    submit(server, mail(subject="Принтер не печатает", sender=f"Client <{CLIENT}>"))
    (row,) = waiting(server, desk.tickets, "the ticket")
    assert row["subject"] == "Принтер не печатает" and row["requester"]["address"] == CLIENT
    waiting(server, lambda: server.queue() == [], "an empty queue")
    assert any("relay=maildesk" in line for line in server.delivered())
    if not with_daemon:
        desk.cli("outbox", "deliver")
    (ack,) = waiting(server, lambda: maildir_mails(desk.maildir, to=CLIENT), "the acknowledgement")
    assert row["tag"] in ack["Subject"]
    (message,) = desk.ticket(row["number"])["messages"][:1]
    assert message["from"]["address"] == CLIENT


# -- what Postfix does with each exit code of `ingest` ------------------------------------------
def attempts(server: Postfix) -> list[str]:
    """The pipe's delivery attempts in Postfix's log: sent, deferred or bounced."""
    return re.findall(r"relay=maildesk, .*? status=(\w+)", server.log_text(10**7))


@contextmanager
def database_locked(desk: Desk) -> Iterator[None]:
    """Hold the write lock of the desk's database (SQLite) or of its intake tables
    (PostgreSQL), as a long migration or a stuck writer would."""
    if desk.db_url.startswith("sqlite"):
        conn = sqlite3.connect(desk.db_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(desk.db_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE raw_message, inbound IN EXCLUSIVE MODE"))
            yield
            conn.rollback()
    finally:
        engine.dispose()


@contextmanager
def config_broken(desk: Desk) -> Iterator[None]:
    """A typo in maildesk.yaml, as a hasty edit would leave it."""
    good = desk.config.read_text()
    assert good.count("lock_timeout_ms: 2000") == 1
    desk.config.write_text(good.replace("lock_timeout_ms: 2000", "lock_timeout_ms: soon"))
    try:
        yield
    finally:
        desk.config.write_text(good)


@contextmanager
def config_unreadable(desk: Desk) -> Iterator[None]:
    """maildesk.yaml not readable by the pipe user, as a deploy as root might leave it."""
    desk.config.chmod(0o600)
    try:
        yield
    finally:
        desk.config.chmod(0o644)


FAULTS = {
    "database locked": (database_locked, r"database is locked|lock timeout"),
    "configuration broken": (config_broken, r"maildesk\.yaml:\d+:\d+: database\.lock_timeout_ms"),
    "configuration unreadable": (config_unreadable, r"maildesk\.yaml"),
}


@pytest.mark.parametrize(("db_url", "fault"), [
    ("sqlite", "database locked"), ("postgresql", "database locked"),
    ("sqlite", "configuration broken"),
    ("sqlite", "configuration unreadable"),
], indirect=["db_url"])
def test_exit_75_from_ingest_makes_postfix_retry_until_it_clears(desk, postfix, fault):
    make_fault, output = FAULTS[fault]
    server = postfix("pipe")
    with make_fault(desk):
        submit(server, mail(subject="Arrives after the fault", sender=f"Client <{CLIENT}>"))
        first = waiting(server, lambda: attempts(server), "Postfix's first attempt")
        assert first[0] == "deferred", server.log_text()
        # Queued with the reason (between the fast retries it may be `active` again): pipe(8)
        # reads EX_TEMPFAIL as 4.3.0 "temporary failure" and quotes what ingest printed.
        (queued,) = waiting(server, lambda: [m for m in server.queue() if all(m.reasons)],
                            "the deferral reason in the queue")
        reason = queued.reasons[0]
        assert reason.startswith("temporary failure. Command output:"), reason
        assert re.search(output, reason), reason
        assert desk.count(Inbound) == 0 and desk.count(Ticket) == 0   # nothing half-stored
    # Postfix tries again by itself (here every few seconds; by default after 5 minutes, then
    # less often: `postqueue -f` asks it to try now).
    (row,) = waiting(server, desk.tickets, "the ticket after the fault cleared")
    assert row["subject"] == "Arrives after the fault"
    waiting(server, lambda: server.queue() == [], "an empty queue")
    assert attempts(server)[-1] == "sent" and "bounced" not in attempts(server)
    assert desk.count(Inbound) == 1 and len(desk.tickets()) == 1


@SQLITE_ONLY
def test_exit_65_from_ingest_makes_postfix_return_the_mail(desk, postfix):
    """Refused for good (here: over smtp.max_message_size, because this Postfix's limit was
    set above it, the mistake `size_limit_for` avoids): Postfix bounces it to the sender with
    maildesk's reason and never tries again."""
    server = postfix("pipe", size_limit=2 * MAX_MESSAGE_SIZE)
    big = mail(subject="too big for maildesk",
               body=("x" * 76 + "\n") * ((MAX_MESSAGE_SIZE + 10_000) // 77))
    submit(server, big)
    (status,) = waiting(server, lambda: attempts(server), "Postfix's attempt")
    assert status == "bounced"
    line = next(x for x in server.log_text(10**7).splitlines() if "relay=maildesk" in x)
    assert "dsn=5.6.0" in line and "smtp.max_message_size" in line, line
    assert desk.count(Inbound) == 0


# -- README shows what these tests run -----------------------------------------------------------
def test_readme_shows_the_postfix_lines_these_tests_run():
    """README's "Running in production" quotes main.cf, master.cf and the maps as
    tests/postfix.py writes them (with the production paths and the default limits)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if "## Running in production" not in readme:
        pytest.skip("README has no \"Running in production\" chapter yet")
    size = size_limit_for(26_214_400)   # smtp.max_message_size's default
    exe, config = "/usr/bin/maildesk", "/etc/maildesk/maildesk.yaml"   # contrib/systemd
    with_daemon = pipe_service(exe, config, "maildesk", no_process=True).splitlines()[-1]
    for snippet in [
        production_main_cf(DOMAIN, "relay", size),
        production_main_cf(DOMAIN, "pipe", size),
        transport_map(DOMAIN, "relay", ("127.0.0.1", 2525)),
        transport_map(DOMAIN, "pipe"),
        recipient_map([SUPPORT]),
        pipe_service(exe, config, "maildesk"),
        with_daemon + "\n",
    ]:
        assert snippet + "```\n" in readme, f"README does not end a block with:\n{snippet}"
