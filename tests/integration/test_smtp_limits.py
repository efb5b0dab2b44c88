"""The listener's limits as a client on the open internet meets them (PRODUCT.md §8): sessions
per IP and in total, recipients, junk commands, errors, idle time, slow DATA, smuggling, long
lines, postmaster@, token probing, and a daemon out of file descriptors.

The limits do not depend on the database, so these run on SQLite only. Per-IP tests bind their
client sockets to loopback aliases (127.0.0.0/8 is all loopback on Linux).
"""

from __future__ import annotations

import asyncio
import os
import resource
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select as sql_select

from helpers import SUPPORT, count, send_smtp, ticket_count, wait_for
from mails import mail
from maildesk.db.models import Inbound
from maildesk.probes import TokenProbeGuard

EXE = str(Path(sys.executable).parent / "maildesk")
TOKEN_ADDRESS = "support+1042-abcdefgh@example.com"


@pytest.fixture
def db_url(tmp_path, sqlite_template):
    """SQLite only (overrides the conftest's two backends)."""
    path = tmp_path / "maildesk.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def smtp_config(request, config_set):
    """Indirectly parametrized: the `smtp:` settings a test needs, written before the listener."""
    config_set.write(smtp=getattr(request, "param", {}))
    return config_set


class Client:
    """A raw SMTP client: a command, its reply; it sees the server hang up."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def reply(self) -> tuple[int, str]:
        """The next reply (every line of it); (0, '') once the server has closed."""
        lines = []
        while True:
            try:
                line = self.file.readline()
            except ConnectionResetError:
                line = b""
            if not line:
                return (0, "") if not lines else (int(lines[-1][:3]), b"".join(lines).decode())
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines).decode()

    def cmd(self, line: str) -> tuple[int, str]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed(self) -> bool:
        return self.reply() == (0, "")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def envelope(self, rcpt: str = SUPPORT) -> None:
        assert self.cmd("EHLO client.example")[0] == 250
        assert self.cmd("MAIL FROM:<client@customer.example>")[0] == 250
        assert self.cmd(f"RCPT TO:<{rcpt}>")[0] == 250


def crlf(raw: bytes) -> bytes:
    """A mail as it goes on the wire: CRLF line ends (mails.mail() writes LF)."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def connect(port: int, source: str = "127.0.0.1") -> Client:
    client = Client(port, source)
    code, text = client.reply()
    assert code == 220, text
    return client


def stored(ctx) -> list[Inbound]:
    with ctx.make_session() as s:
        rows = list(s.scalars(sql_select(Inbound).order_by(Inbound.id)))
        for row in rows:
            _ = row.raw.data  # load before the session closes
        return rows


# -- sessions ----------------------------------------------------------------------------------
def test_over_the_per_ip_cap_the_excess_get_421_and_the_first_still_deliver(smtp_listener, ctx):
    cap = ctx.settings.smtp.max_sessions_per_ip
    first = [smtplib.SMTP(smtp_listener.host, smtp_listener.port, timeout=30) for _ in range(cap)]
    excess = [Client(smtp_listener.port) for _ in range(10)]
    for client in excess:
        code, text = client.reply()
        assert code == 421 and "4.7.0" in text and "127.0.0.1" in text, text
        assert client.closed()
        client.close()
    other = connect(smtp_listener.port, source="127.0.0.2")  # another address is not capped
    assert other.cmd("QUIT")[0] == 221
    for i, smtp in enumerate(first):
        assert smtp.sendmail("client@customer.example", [SUPPORT], mail(subject=f"n{i}")) == {}
        smtp.quit()
    assert count(ctx, Inbound) == cap
    again = connect(smtp_listener.port)  # the slots came free
    again.close()


@pytest.mark.parametrize("smtp_config", [{"max_sessions": 7, "max_sessions_per_ip": 2,
                                          "relays": ["127.0.0.3", "127.0.8.0/24"]}], indirect=True)
def test_relays_skip_the_per_ip_cap_but_not_the_total(smtp_config, smtp_listener, ctx):
    relay = [connect(smtp_listener.port, source="127.0.0.3") for _ in range(4)]
    client = [connect(smtp_listener.port, source="127.0.0.2") for _ in range(2)]
    refused = Client(smtp_listener.port, source="127.0.0.2")  # 2 from it already: per-IP cap
    code, text = refused.reply()
    assert code == 421 and "4.7.0" in text and "from 127.0.0.2" in text, text
    relay.append(connect(smtp_listener.port, source="127.0.0.3"))  # the 5th from the relay
    beyond = Client(smtp_listener.port, source="127.0.0.3")  # 7 open in total: the total cap
    code, text = beyond.reply()
    assert code == 421 and "too many connections" in text and "from" not in text, text
    for c in (refused, beyond):
        assert c.closed()
        c.close()
    relay[0].envelope()
    assert relay[0].cmd("DATA")[0] == 354
    relay[0].send(crlf(mail(subject="through the relay")) + b".\r\n")
    assert relay[0].reply()[0] == 250
    for c in relay + client:
        c.close()
    assert count(ctx, Inbound) == 1


@pytest.mark.parametrize("smtp_config", [{"max_sessions": 10, "overload_fraction": 0.5,
                                          "overload_idle_timeout": "1s"}], indirect=True)
def test_under_overload_the_short_idle_timeout_applies(smtp_config, smtp_listener):
    calm = [connect(smtp_listener.port, source=f"127.0.0.{i + 2}") for i in range(5)]
    loaded = connect(smtp_listener.port, source="127.0.0.9")  # 6 of 10 open: over half
    code, text = loaded.reply()  # nothing sent: closed after overload_idle_timeout, not 300 s
    assert code == 421 and "4.4.2" in text, text
    assert loaded.closed()
    assert calm[0].cmd("NOOP")[0] == 250
    for c in calm + [loaded]:
        c.close()


# -- recipients --------------------------------------------------------------------------------
def test_1000_recipients_get_452_past_the_limit_and_the_mail_goes_to_the_accepted(
        smtp_listener, ctx, processor):
    rcpts = [f"support+r{i}@example.com" for i in range(1000)]
    with smtplib.SMTP(smtp_listener.host, smtp_listener.port, timeout=60) as smtp:
        refused = smtp.sendmail("client@customer.example", rcpts, mail(subject="to many"))
    limit = ctx.settings.smtp.max_recipients
    assert sorted(refused) == sorted(rcpts[limit:])
    assert {code for code, _ in refused.values()} == {452}
    assert all(b"4.5.3" in text for _, text in refused.values())
    (row,) = stored(ctx)
    assert row.rcpt_to == rcpts[:limit]
    processor.drain()
    assert ticket_count(ctx) == 1


# -- junk and errors ---------------------------------------------------------------------------
def test_200_noops_get_421_and_the_connection_closes(smtp_listener, ctx):
    client = connect(smtp_listener.port)
    assert client.cmd("EHLO client.example")[0] == 250
    codes = []
    for _ in range(200):
        code, text = client.cmd("NOOP")
        codes.append(code)
        if code != 250:
            break
    junk = ctx.settings.smtp.max_junk_commands
    assert codes == [250] * junk + [421], codes
    assert "4.7.0" in text and "junk" in text
    assert client.closed()
    client.close()


def test_other_junk_counts_too_and_a_stored_message_forgives_it(smtp_listener, ctx):
    junk = ctx.settings.smtp.max_junk_commands
    client = connect(smtp_listener.port)
    client.envelope()  # the first EHLO is no junk
    for command in ["RSET", "VRFY <support@example.com>", "HELP", "EHLO again.example",
                    "NOOP", "EXPN list"][:junk - 1]:
        assert client.cmd(command)[0] in (250, 252, 502)
    client.envelope()  # its EHLO is the last junk command allowed
    assert client.cmd("DATA")[0] == 354
    client.send(crlf(mail()) + b".\r\n")
    assert client.reply()[0] == 250
    for _ in range(ctx.settings.smtp.max_junk_commands):  # a fresh allowance
        assert client.cmd("NOOP")[0] == 250
    assert client.cmd("NOOP")[0] == 421
    client.close()


def test_errors_past_the_limit_get_421(smtp_listener, ctx):
    client = connect(smtp_listener.port)
    assert client.cmd("EHLO client.example")[0] == 250
    assert client.cmd("MAIL FROM:<spammer@evil.example>")[0] == 250
    for i in range(ctx.settings.smtp.max_errors):
        assert client.cmd(f"RCPT TO:<user{i}@victim.example>")[0] == 550
    code, text = client.reply()  # said right after the last error allowed
    assert code == 421 and "4.7.0" in text and "errors" in text, text
    assert client.closed()
    client.close()


# -- idle time and slow DATA -------------------------------------------------------------------
@pytest.mark.parametrize("smtp_config", [{"idle_timeout": "1s"}], indirect=True)
def test_an_idle_session_is_closed_after_the_timeout(smtp_config, smtp_listener):
    client = connect(smtp_listener.port)
    assert client.cmd("EHLO client.example")[0] == 250
    code, text = client.reply()  # we say nothing more
    assert code == 421 and "4.4.2" in text, text
    assert client.closed()
    client.close()


@pytest.mark.parametrize("smtp_config", [{"idle_timeout": "1s", "min_data_rate": 500}],
                         indirect=True)
def test_data_slower_than_the_minimum_rate_is_cut(smtp_config, smtp_listener, ctx):
    client = connect(smtp_listener.port)
    client.envelope()
    assert client.cmd("DATA")[0] == 354
    client.send(b"Subject: slow\r\n\r\n")
    cut = False
    for _ in range(600):  # a byte every 0.1 s buys 2 ms: far below 500 bytes/s
        readable, _, _ = select.select([client.sock], [], [], 0.1)
        if readable:
            cut = True
            break
        client.send(b"x")
    assert cut, "the server kept a slow DATA open for a minute"
    code, text = client.reply()
    assert code == 421 and "4.4.2" in text, text
    assert client.closed()
    client.close()
    assert count(ctx, Inbound) == 0


@pytest.mark.parametrize("smtp_config", [{"idle_timeout": "3s", "min_data_rate": 500}],
                         indirect=True)
def test_data_at_a_fair_rate_may_last_longer_than_the_idle_timeout(smtp_config, smtp_listener,
                                                                   ctx):
    client = connect(smtp_listener.port)
    client.envelope()
    assert client.cmd("DATA")[0] == 354
    client.send(b"Subject: steady\r\n\r\n")
    for _ in range(50):  # 1,000 bytes every 0.1 s, 5 s in all: each line buys 2 s
        readable, _, _ = select.select([client.sock], [], [], 0.1)
        assert not readable, client.reply()
        client.send(b"y" * 998 + b"\r\n")
    client.send(b".\r\n")
    assert client.reply()[0] == 250
    client.close()
    assert count(ctx, Inbound) == 1


def test_clients_that_hang_up_right_after_the_dot_do_not_stop_intake(smtp_listener, ctx):
    """Their sessions end while the message is being committed: the commit goes on (a resend
    is a duplicate the pipeline knows), and the writer keeps serving everyone else."""
    for i in range(20):
        client = connect(smtp_listener.port)
        client.envelope()
        assert client.cmd("DATA")[0] == 354
        client.send(crlf(mail(subject=f"gone {i}")) + b".\r\n")
        client.sock.shutdown(socket.SHUT_RDWR)
        client.close()
    assert send_smtp(smtp_listener.host, smtp_listener.port, mail(subject="after them")) == {}


# -- what DATA may contain ---------------------------------------------------------------------
@pytest.mark.parametrize("separator", [b"\n.\n", b"\n.\r\n", b"\r\n.\n"],
                         ids=["LF.LF", "LF.CRLF", "CRLF.LF"])
def test_smuggled_second_message_stays_inside_the_first(smtp_listener, ctx, separator):
    client = connect(smtp_listener.port)
    client.envelope()
    assert client.cmd("DATA")[0] == 354
    smuggled = (b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
                b"From: ceo@example.com\r\nSubject: smuggled\r\n\r\nwire the money\r\n")
    client.send(b"From: client@customer.example\r\nSubject: one\r\n\r\nfirst body" + separator
                + smuggled + b".\r\n" + b"QUIT\r\n")
    assert client.reply()[0] == 250   # one message...
    assert client.reply()[0] == 221   # ...and the next reply is the one to QUIT
    client.close()
    (row,) = stored(ctx)
    assert b"first body" in row.raw.data and b"Subject: smuggled" in row.raw.data
    assert b"MAIL FROM:<ceo@example.com>" in row.raw.data


@pytest.mark.parametrize("length", [5_000, 200_000])
def test_a_long_line_is_accepted_and_stored_byte_for_byte(smtp_listener, ctx, length):
    raw = (b"From: client@customer.example\r\nTo: support@example.com\r\nSubject: long line\r\n"
           b"\r\n" + b"<p>" + b"x" * length + b"</p>\r\n.a line with a leading dot\r\n"
           + b".\r\n".join([b"end"] * 2) + b"\r\n")
    assert send_smtp(smtp_listener.host, smtp_listener.port, raw) == {}
    (row,) = stored(ctx)
    assert row.raw.data == raw


@pytest.mark.parametrize("filler", [0, 995, 996, 997, 998, 999, 1000, 1001, 5_000, 65_536],
                         ids=lambda n: f"{n}-byte-line")
def test_dot_stuffed_lines_come_out_unstuffed_wherever_the_reads_split_them(
        smtp_listener, ctx, filler):
    """DATA is read in runs up to the next ".CRLF" (and in pieces of the read buffer's size
    when a run is longer): the lines as sent, one leading dot fewer where the client stuffed
    one, wherever a run or a piece ends, and the message ends only at CRLF.CRLF."""
    head = b"From: client@customer.example\r\nSubject: dots\r\n\r\n"
    wire = (head + b"x" * filler + b"\r\n..\r\n...\r\n..leading\r\nend.\r\nmid.dle\r\n"
            b"a\n.\r\nb\r.\r\n.\r.\r\n..\r\n")
    client = connect(smtp_listener.port)
    client.envelope()
    assert client.cmd("DATA")[0] == 354
    client.send(wire + b".\r\nQUIT\r\n")
    assert client.reply()[0] == 250
    assert client.reply()[0] == 221
    client.close()
    (row,) = stored(ctx)
    assert row.raw.data == (head + b"x" * filler + b"\r\n.\r\n..\r\n.leading\r\nend.\r\n"
                            b"mid.dle\r\na\n.\r\nb\r.\r\n\r.\r\n.\r\n")


def test_an_empty_message_is_answered_and_the_session_goes_on(smtp_listener, ctx):
    client = connect(smtp_listener.port)
    client.envelope()
    assert client.cmd("DATA")[0] == 354
    client.send(b".\r\n")
    assert client.reply()[0] in (250, 550, 554)
    assert client.cmd("QUIT")[0] == 221
    client.close()


def test_long_command_lines_are_still_refused(smtp_listener):
    client = connect(smtp_listener.port)
    assert client.cmd("EHLO client.example")[0] == 250
    code, text = client.cmd("NOOP " + "x" * 600)
    assert code == 500, text
    code, text = client.cmd("NOOP " + "x" * 100_000)
    assert code == 500, text
    assert client.cmd("QUIT")[0] == 221
    client.close()


# -- addresses ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rcpt", ["postmaster@example.com", "PostMaster@Example.COM",
                                  "postmaster"])
def test_postmaster_of_a_support_domain_is_accepted(smtp_listener, ctx, rcpt):
    assert send_smtp(smtp_listener.host, smtp_listener.port, mail(to=rcpt), rcpt=[rcpt]) == {}
    (row,) = stored(ctx)
    assert row.rcpt_to == [rcpt]


def test_token_addresses_are_refused_to_a_prober_and_support_still_taken(smtp_listener, ctx):
    guard = TokenProbeGuard(threshold=1)
    smtp_listener.handler.probes = guard
    guard.record_failure("127.0.0.2")
    prober = connect(smtp_listener.port, source="127.0.0.2")
    assert prober.cmd("EHLO prober.example")[0] == 250
    assert prober.cmd("MAIL FROM:<p@prober.example>")[0] == 250
    code, text = prober.cmd(f"RCPT TO:<{TOKEN_ADDRESS}>")
    assert code == 550 and "5.7.1" in text, text
    assert prober.cmd(f"RCPT TO:<{SUPPORT}>")[0] == 250
    prober.close()
    honest = connect(smtp_listener.port)
    honest.envelope(rcpt=TOKEN_ADDRESS)
    honest.close()


# -- the daemon out of file descriptors --------------------------------------------------------
class Conn:
    def __init__(self, reader=None, writer=None, greeting: str = "no connection"):
        self.reader, self.writer, self.greeting = reader, writer, greeting

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _connect(port: int, timeout: float) -> Conn:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                                timeout)
    except (OSError, asyncio.TimeoutError):
        return Conn()
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError):
        line = b""
    return Conn(reader, writer, line[:3].decode() or "no greeting")


async def _deliver(conn: Conn) -> bytes:
    """One message over a session that is already open; the reply to its DATA."""
    last = b""
    for line in (b"EHLO flood.example", b"MAIL FROM:<client@customer.example>",
                 f"RCPT TO:<{SUPPORT}>".encode(), b"DATA"):
        conn.writer.write(line + b"\r\n")
        last = await asyncio.wait_for(conn.reader.readline(), 60)
        while last[3:4] == b"-":
            last = await asyncio.wait_for(conn.reader.readline(), 60)
    conn.writer.write(crlf(mail(subject="during the flood")) + b".\r\n")
    return await asyncio.wait_for(conn.reader.readline(), 60)


async def _flood(port: int, n: int) -> tuple[Counter, bytes]:
    """Open `n` connections at once and hold them; deliver a message over one that was served;
    then close them all. What greeted them, and the reply to that message."""
    conns = await asyncio.gather(*(_connect(port, 10.0) for _ in range(n)))
    served = [c for c in conns if c.greeting == "220"]
    reply = await _deliver(served[0]) if served else b""
    for c in conns:
        c.close()
    await asyncio.sleep(0)
    return Counter(c.greeting for c in conns), reply


def _try_send(port: int) -> bool:
    try:
        return send_smtp("127.0.0.1", port, mail(subject="after the flood")) == {}
    except (smtplib.SMTPException, OSError):
        return False


@pytest.fixture
def many_descriptors():
    """The flood's own sockets need descriptors in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start_daemon(config_set, log: Path, nofile: int | None = None) -> subprocess.Popen:
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log, "wb") as err:
        proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve", "--only",
                                 "smtp,process"], stdout=subprocess.PIPE, stderr=err,
                                preexec_fn=limit)
    line = proc.stdout.readline().decode()
    assert "maildesk serving" in line, log.read_text()
    return proc


def stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_daemon_with_few_descriptors_stops_below_the_limit_and_serves_again(
        config_set, tmp_path, many_descriptors):
    config_set.write(smtp={"max_sessions": 1000, "max_sessions_per_ip": 1000})
    port = config_set.data["smtp"]["port"]
    log = tmp_path / "serve.log"
    proc = start_daemon(config_set, log, nofile=256)
    try:
        greetings, reply = asyncio.run(_flood(port, 400))
        assert reply.startswith(b"250"), (reply, greetings)  # open sessions go on
        assert greetings["220"] <= 256 - 64 and greetings["421"] > 0, greetings
        assert wait_for(lambda: _try_send(port), "a message delivered after the flood")
    finally:
        stop_daemon(proc)
    text = log.read_text(errors="replace")
    assert log.stat().st_size < 1_000_000
    assert text.count("smtp.max_sessions 1000 lowered to 192") == 1, text[-3000:]
    assert "socket.accept() out of system resource" not in text
    assert "Exception in callback" not in text  # nor asyncio's retries after the listener closed


@pytest.mark.slow
def test_a_daemon_that_runs_out_of_descriptors_logs_little_and_serves_again(
        config_set, tmp_path, many_descriptors):
    config_set.write(smtp={"max_sessions": 1000, "max_sessions_per_ip": 1000})
    port = config_set.data["smtp"]["port"]
    log = tmp_path / "serve.log"
    proc = start_daemon(config_set, log)
    try:
        # Lower the limit under the running daemon: its session budget was made for more, so
        # accept() itself runs out (as when something else eats the descriptors).
        in_use = len(os.listdir(f"/proc/{proc.pid}/fd"))
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (in_use + 40, in_use + 40))
        greetings, reply = asyncio.run(_flood(port, 400))
        assert reply.startswith(b"250"), (reply, greetings)  # open sessions go on
        assert 0 < greetings["220"] < 400, greetings
        assert wait_for(lambda: _try_send(port), "a message delivered after the flood")
    finally:
        stop_daemon(proc)
    text = log.read_text(errors="replace")
    assert log.stat().st_size < 1_000_000
    assert "SMTP accept() failed: Too many open files (EMFILE)" in text, text[-3000:]
    assert "socket.accept() out of system resource" not in text
    assert "Exception in callback" not in text  # nor asyncio's retries after the listener closed


def _rcpt_code(port: int, rcpt: str) -> int:
    client = connect(port)
    try:
        assert client.cmd("EHLO client.example")[0] == 250
        assert client.cmd("MAIL FROM:<client@customer.example>")[0] == 250
        return client.cmd(f"RCPT TO:<{rcpt}>")[0]
    finally:
        client.close()


def test_the_daemon_refuses_token_addresses_to_an_ip_whose_tokens_failed(config_set, tmp_path):
    """`serve` shares one guard: the processor counts a token that matches no ticket, the
    listener then refuses token RCPTs from that IP."""
    config_set.write(security={"token_failures_per_hour": 1})
    port = config_set.data["smtp"]["port"]
    proc = start_daemon(config_set, tmp_path / "serve.log")
    try:
        assert _rcpt_code(port, TOKEN_ADDRESS) == 250
        send_smtp("127.0.0.1", port, mail(to=TOKEN_ADDRESS), rcpt=[TOKEN_ADDRESS])
        wait_for(lambda: _rcpt_code(port, TOKEN_ADDRESS) == 550, "the guard to block the IP")
        assert _rcpt_code(port, SUPPORT) == 250
    finally:
        stop_daemon(proc)
