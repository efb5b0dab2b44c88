"""The outbox transports against real endpoints: a Maildir on disk and an aiosmtpd smarthost on
loopback (STARTTLS or implicit TLS with a trustme CA, AUTH, scripted 4xx/5xx replies)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from maildesk.config.model import Outbound, SmarthostSettings
from maildesk.outbound.maildir import MaildirTransport
from maildesk.outbound.smtp import SmtpTransport
from maildesk.outbound.registry import make_transport
from maildesk.outbound.transport import (DeliveryResult, PermanentDeliveryError,
                                         TemporaryDeliveryError)

USER, PASSWORD = "maildesk", "s3cret-pass"
SENDER = "support@example.com"
CLIENT, OTHER = "client@customer.example", "other@customer.example"


def message(subject: str = "Re: [MD-1000] Printer", body: str = "We are on it.") -> bytes:
    return (f"From: Support <{SENDER}>\r\nTo: {CLIENT}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(subject + body))}@example.com>\r\n"
            f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            f"\r\n{body}\r\n").encode("utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- Maildir --------------------------------------------------------------------------------------
def test_maildir_writes_one_file_per_message_atomically(tmp_path: Path):
    maildir = tmp_path / "outbox-maildir"
    transport = MaildirTransport(maildir)
    assert all((maildir / sub).is_dir() for sub in ("cur", "new", "tmp"))
    first, second = message(body="first"), message(body="второй")

    r1 = transport.deliver(SENDER, [CLIENT, OTHER], first)
    r2 = transport.deliver("", [CLIENT], second)
    transport.close()

    assert r1 == DeliveryResult(accepted=(CLIENT, OTHER))
    assert r2.accepted == (CLIENT,) and not r2.refused
    files = sorted((maildir / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert len(files) == 2
    assert list((maildir / "tmp").iterdir()) == []
    contents = {p.read_bytes() for p in files}
    (one,) = [c for c in contents if c.endswith(first)]
    (two,) = [c for c in contents if c.endswith(second)]
    assert one.startswith(f"Return-Path: <{SENDER}>\r\n".encode())
    assert f"X-Maildesk-Envelope-To: {CLIENT}, {OTHER}\r\n".encode() in one[:-len(first)]
    assert two.startswith(b"Return-Path: <>\r\n")
    assert len({p.name for p in files}) == 2


def test_a_maildir_moved_away_is_made_again_for_the_next_mail(tmp_path: Path):
    import shutil

    maildir = tmp_path / "md"
    transport = MaildirTransport(maildir)
    transport.deliver(SENDER, [CLIENT], message(body="before"))
    shutil.rmtree(maildir)   # an admin rotates or removes it while the daemon runs
    assert transport.deliver(SENDER, [CLIENT], message(body="after")).accepted == (CLIENT,)
    (only,) = (maildir / "new").iterdir()
    assert only.read_bytes().endswith(message(body="after"))


def test_maildir_refuses_line_breaks_in_the_envelope(tmp_path: Path):
    transport = MaildirTransport(tmp_path / "md")
    with pytest.raises(PermanentDeliveryError):
        transport.deliver(SENDER, ["a@x.example\r\nBcc: victim@y.example"], message())
    assert list((tmp_path / "md" / "new").iterdir()) == []


def test_make_transport_picks_the_configured_one(tmp_path: Path):
    maildir = make_transport(Outbound(transport="maildir", maildir=tmp_path / "md"))
    assert isinstance(maildir, MaildirTransport)
    smtp = make_transport(Outbound(transport="smtp", smtp=SmarthostSettings(host="127.0.0.1")))
    assert isinstance(smtp, SmtpTransport)
    smtp.close()


# -- the smarthost --------------------------------------------------------------------------
@dataclass
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: tuple
    tls: bool


@dataclass
class Sink:
    """aiosmtpd handler: records envelopes; answers scripted replies when told to."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    hang_up_at_mail: int = 0     # drop this many sessions at MAIL FROM, without a reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.hang_up_at_mail:
            self.hang_up_at_mail -= 1
            server._original_transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
            server.transport.abort()
            return "421 4.3.2 going away"   # never reaches the client
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                      envelope.original_content, session.peer,
                                      session.ssl is not None))
        return "250 2.0.0 Queued"


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


class SinkController(Controller):
    """A Controller that remembers its sessions, so that stopping it closes them (as a real
    server's shutdown does) instead of leaving the sockets to the garbage collector."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self):
        smtpd = super().factory()
        self.sessions.append(smtpd)
        return smtpd

    def stop(self, no_assert: bool = False):
        async def hang_up():
            for smtpd in self.sessions:
                transport = getattr(smtpd, "_original_transport", None) or smtpd.transport
                if transport is None or transport.is_closing():
                    continue
                sock = transport.get_extra_info("socket")
                if sock is not None and sock.fileno() >= 0:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        asyncio.run_coroutine_threadsafe(hang_up(), self.loop).result(timeout=30)
        super().stop(no_assert)


@dataclass
class Smarthost:
    port: int
    sink: Sink
    kwargs: dict
    controller: SinkController | None = None

    def start(self) -> None:
        self.controller = SinkController(self.sink, hostname="127.0.0.1", port=self.port,
                                         **self.kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def settings(self, security: str = "starttls", username: str | None = USER,
                 password: str | None = PASSWORD) -> SmarthostSettings:
        return SmarthostSettings(host="127.0.0.1", port=self.port, security=security,
                                 username=username, password=password)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def start_smarthost() -> Iterator:
    started: list[Smarthost] = []

    def start(**kwargs) -> Smarthost:
        host = Smarthost(port=free_port(), sink=Sink(), kwargs=kwargs)
        host.start()
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def smarthost(start_smarthost, server_tls) -> Smarthost:
    """The usual smarthost on the submission model: STARTTLS required, then AUTH required."""
    return start_smarthost(tls_context=server_tls, require_starttls=True,
                           authenticator=authenticate, auth_required=True, auth_require_tls=True)


@pytest.fixture
def transports(client_tls) -> Iterator:
    made: list[SmtpTransport] = []

    def make(settings: SmarthostSettings, **kwargs) -> SmtpTransport:
        kwargs.setdefault("ssl_context", client_tls)
        t = SmtpTransport(settings, timeout=30, local_hostname="maildesk.test", **kwargs)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_starttls_and_auth_deliver_the_exact_bytes(smarthost, transports):
    raw = message(body="Здравствуйте! Заявка MD-1000 принята.\r\n.a line starting with a dot")
    result = transports(smarthost.settings()).deliver(SENDER, [CLIENT], raw)
    assert result == DeliveryResult(accepted=(CLIENT,))
    (got,) = smarthost.sink.received
    assert (got.mail_from, got.rcpt_tos, got.data) == (SENDER, (CLIENT,), raw)
    assert got.tls


def test_wrong_password_is_permanent(smarthost, transports):
    transport = transports(smarthost.settings(password="wrong"))
    with pytest.raises(PermanentDeliveryError) as err:
        transport.deliver(SENDER, [CLIENT], message())
    assert err.value.code == 535 and "535" in err.value.reason
    assert smarthost.sink.received == []


def test_clear_text_to_a_starttls_only_smarthost_is_refused_with_530(smarthost, transports):
    transport = transports(smarthost.settings(security="none", username=None, password=None))
    with pytest.raises(PermanentDeliveryError) as err:
        transport.deliver(SENDER, [CLIENT], message())
    assert err.value.code == 530
    assert "530" in err.value.reason and "STARTTLS" in err.value.reason
    assert smarthost.sink.received == []


def test_login_without_tls_is_refused_before_any_password_is_sent(smarthost, transports):
    transport = transports(smarthost.settings(security="none"))
    with pytest.raises(PermanentDeliveryError) as err:
        transport.deliver(SENDER, [CLIENT], message())
    assert "AUTH" in err.value.reason


def test_starttls_not_offered_is_temporary_and_nothing_goes_in_clear(start_smarthost, transports):
    plain = start_smarthost()
    with pytest.raises(TemporaryDeliveryError) as err:
        transport = transports(plain.settings(security="starttls", username=None))
        transport.deliver(SENDER, [CLIENT], message())
    assert "STARTTLS" in err.value.reason
    assert plain.sink.received == []


def test_untrusted_certificate_is_temporary(smarthost, transports):
    transport = transports(smarthost.settings(), ssl_context=ssl.create_default_context())
    with pytest.raises(TemporaryDeliveryError) as err:
        transport.deliver(SENDER, [CLIENT], message())
    assert "certificate" in err.value.reason
    assert smarthost.sink.received == []


def test_smarthost_down_is_temporary(transports):
    port = free_port()   # nothing listens there
    settings = SmarthostSettings(host="127.0.0.1", port=port, security="starttls")
    with pytest.raises(TemporaryDeliveryError) as err:
        transports(settings).deliver(SENDER, [CLIENT], message())
    assert f"127.0.0.1:{port}" in err.value.reason


def test_451_on_data_is_temporary(smarthost, transports):
    smarthost.sink.data_reply = "451 4.3.0 Try again later"
    transport = transports(smarthost.settings())
    with pytest.raises(TemporaryDeliveryError) as err:
        transport.deliver(SENDER, [CLIENT], message())
    assert err.value.code == 451 and "451" in err.value.reason
    smarthost.sink.data_reply = None
    assert transport.deliver(SENDER, [CLIENT], message()).accepted == (CLIENT,)


def test_554_on_data_is_permanent(smarthost, transports):
    smarthost.sink.data_reply = "554 5.6.0 Message refused"
    with pytest.raises(PermanentDeliveryError) as err:
        transports(smarthost.settings()).deliver(SENDER, [CLIENT], message())
    assert err.value.code == 554


def test_550_for_one_of_two_recipients(smarthost, transports):
    smarthost.sink.rcpt_replies[OTHER] = "550 5.1.1 No such user"
    raw = message()
    result = transports(smarthost.settings()).deliver(SENDER, [CLIENT, OTHER], raw)
    assert result.accepted == (CLIENT,)
    assert result.refused == {OTHER: "550 5.1.1 No such user"}
    assert result.deferred == {}
    (got,) = smarthost.sink.received
    assert got.rcpt_tos == (CLIENT,) and got.data == raw


def test_451_for_one_recipient_defers_only_that_one(smarthost, transports):
    smarthost.sink.rcpt_replies[OTHER] = "451 4.2.0 Mailbox busy"
    result = transports(smarthost.settings()).deliver(SENDER, [CLIENT, OTHER], message())
    assert result.accepted == (CLIENT,)
    assert result.refused == {} and result.deferred == {OTHER: "451 4.2.0 Mailbox busy"}


def test_every_recipient_refused(smarthost, transports):
    transport = transports(smarthost.settings())
    smarthost.sink.rcpt_replies.update({CLIENT: "550 5.1.1 No such user",
                                        OTHER: "550 5.1.1 No such user"})
    with pytest.raises(PermanentDeliveryError) as err:
        transport.deliver(SENDER, [CLIENT, OTHER], message())
    assert set(err.value.refused) == {CLIENT, OTHER}
    smarthost.sink.rcpt_replies[OTHER] = "451 4.2.0 Mailbox busy"
    with pytest.raises(TemporaryDeliveryError):
        transport.deliver(SENDER, [CLIENT, OTHER], message())
    assert smarthost.sink.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_implicit_tls(start_smarthost, server_tls, transports):
    # aiosmtpd only sees STARTTLS as "TLS" for auth_require_tls, so on an implicit-TLS listener
    # AUTH has to be allowed explicitly; the whole session is encrypted anyway.
    tls = start_smarthost(ssl_context=server_tls, authenticator=authenticate,
                          auth_required=True, auth_require_tls=False)
    raw = message()
    result = transports(tls.settings(security="tls")).deliver(SENDER, [CLIENT], raw)
    assert result.accepted == (CLIENT,)
    (got,) = tls.sink.received
    assert got.data == raw


def test_non_ascii_address_goes_with_smtputf8(smarthost, transports):
    rcpt = "клиент@пример.example"
    result = transports(smarthost.settings()).deliver(SENDER, [rcpt], message())
    assert result.accepted == (rcpt,)
    assert smarthost.sink.received[0].rcpt_tos == (rcpt,)


def test_connection_is_reused_and_reopened_after_the_server_dropped_it(smarthost, transports):
    transport = transports(smarthost.settings())
    transport.deliver(SENDER, [CLIENT], message(body="one"))
    transport.deliver(SENDER, [CLIENT], message(body="two"))
    first, second = smarthost.sink.received
    assert first.peer == second.peer          # one connection for both

    smarthost.restart()                       # the server goes away, and comes back
    transport.deliver(SENDER, [CLIENT], message(body="three"))
    third = smarthost.sink.received[2]
    assert third.peer != first.peer and third.data == message(body="three")
    transport.deliver(SENDER, [CLIENT], message(body="four"))
    assert smarthost.sink.received[3].peer == third.peer


def test_a_connection_dropped_mid_transaction_is_retried_once_on_a_new_one(smarthost, transports):
    transport = transports(smarthost.settings())
    transport.deliver(SENDER, [CLIENT], message(body="one"))
    smarthost.sink.hang_up_at_mail = 1        # RSET still answers, then the session dies
    transport.deliver(SENDER, [CLIENT], message(body="two"))
    first, second = smarthost.sink.received
    assert first.peer != second.peer and second.data == message(body="two")


def test_a_fresh_connection_dropped_is_temporary(smarthost, transports):
    smarthost.sink.hang_up_at_mail = 1
    with pytest.raises(TemporaryDeliveryError) as err:
        transports(smarthost.settings()).deliver(SENDER, [CLIENT], message())
    assert "closed the connection" in err.value.reason
    assert smarthost.sink.received == []
