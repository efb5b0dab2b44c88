"""The SMTP listener: accept mail for our addresses only, and say 250 only once it is stored."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from maildesk.addresses import is_support_address, parse_reply_token
from maildesk.clock import Clock
from maildesk.config.model import Settings, SmtpListener
from maildesk.db.models import Channel
from maildesk.ingress.limits import (DataDeadline, LogThrottle, Refusal, SessionBudget,
                                     SessionTable, client_ip, fd_session_cap)
from maildesk.probes import TokenProbeGuard
from maildesk.store.raw import Arrival, GroupCommitWriter

if TYPE_CHECKING:
    from maildesk.monitor.metrics import Metrics

log = logging.getLogger(__name__)

# Every reply this listener gives, in one place.
OK = "250 2.1.5 OK"
ACCEPTED = "250 2.0.0 OK: message stored"
NO_SUCH_ADDRESS = "550 5.1.1 <{}>: no such support address here (relaying denied)"
STORAGE_FAILED = "451 4.3.0 The message could not be stored; please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
BAD_SENDER = "553 5.1.7 The sender address contains control characters"
SENDER_OK = "250 2.1.0 OK"
TOKEN_PROBING = ("550 5.7.1 <{}>: reply-token addresses are refused from your address "
                 "(too many failed token lookups)")
INTERNAL_ERROR = "451 4.3.0 Internal error; please try again later"
# Limits (ingress/limits.py): the server hangs up after these; {host} is the instance domain.
TOO_MANY_SESSIONS = "421 4.7.0 {host} Error: too many connections; try again later"
TOO_MANY_FROM_IP = "421 4.7.0 {host} Error: too many connections from {ip}"
TOO_MANY_JUNK = "421 4.7.0 {host} Error: too many junk commands"
TOO_MANY_ERRORS = "421 4.7.0 {host} Error: too many errors"
TIMEOUT = "421 4.4.2 {host} Error: timeout exceeded"
DATA_TOO_LARGE = "552 5.3.4 Error: message too large"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"


class SupportHandler:
    """aiosmtpd handler: RCPT filtering, durable DATA."""

    def __init__(self, settings: Callable[[], Settings], writer: GroupCommitWriter, clock: Clock,
                 authenticate: Callable[[str | None, str | None, str, bytes], str | None]
                 | None = None, *, probes: TokenProbeGuard | None = None,
                 metrics: Metrics | None = None):
        self._settings = settings
        # Mails received (MAIL), accepted (250 after DATA), refused by reply code: counted by
        # LimitedSMTP and handle_DATA (monitor/metrics.py).
        self.metrics = metrics
        self._writer = writer
        # Failed reply-token lookups per client IP (maildesk/probes.py): past its threshold a
        # reply-token RCPT from that IP gets 550; plain support addresses are still taken.
        self.probes = probes
        # maildesk's own SPF/DKIM/DMARC check (ingress/authcheck.py): (peer IP, HELO, MAIL
        # FROM, bytes) -> an Authentication-Results value kept beside the mail, or None.
        self._authenticate = authenticate
        self._clock = clock
        self.in_flight = 0
        self.closing = False

    def limits(self) -> SmtpListener:
        """The listener's limits as configured now (a SIGHUP may have changed them)."""
        return self._settings().smtp

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        # A NUL or line break in the return path would reach the database (PostgreSQL refuses
        # NUL: the sender would get 451 for ever) and the headers we write.
        if any(ord(c) < 32 or ord(c) == 127 for c in address):
            return BAD_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        settings = self._settings()
        if len(envelope.rcpt_tos) >= settings.smtp.max_recipients:
            return TOO_MANY_RECIPIENTS  # RFC 5321 §4.5.3.1.10: the client sends the rest later
        support = frozenset(settings.support_addresses)
        if not is_support_address(address, support):  # also postmaster@ (RFC 5321 §4.5.1)
            log.info("refused RCPT %r from %s", address[:100], session.peer)
            return NO_SUCH_ADDRESS.format(address)
        if (self.probes is not None and parse_reply_token(address, support) is not None
                and self.probes.blocked(client_ip(session.peer))):
            log.info("refused reply-token RCPT from %s (token probing)", client_ip(session.peer))
            return TOKEN_PROBING.format(address)
        envelope.rcpt_tos.append(address)
        return OK

    async def handle_exception(self, error: Exception) -> str:
        """A bug in a command's handling costs one reply, never the daemon, and tells the
        client nothing about the inside."""
        log.warning("SMTP command failed: %s: %s", type(error).__name__, str(error)[:200])
        log.debug("SMTP command failure", exc_info=error)
        return INTERNAL_ERROR

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.closing:
            return SHUTTING_DOWN
        data = envelope.original_content
        if data is None:
            data = envelope.content if isinstance(envelope.content, bytes) else b""
        # "" is the null reverse path (MAIL FROM:<>): bounces and auto-replies; never answered.
        mail_from = "" if envelope.mail_from in (None, "", "<>") else envelope.mail_from
        arrival = Arrival(data=bytes(data), channel=Channel.SMTP, received_at=self._clock.now(),
                          mail_from=mail_from, rcpt_to=tuple(envelope.rcpt_tos),
                          source=f"smtp:{client_ip(session.peer) or '?'}")
        self.in_flight += 1
        try:
            if self._authenticate is not None:
                arrival = replace(arrival, auth_results=await self._auth_results(
                    session, mail_from, arrival.data))
            inbound_id = await _uncancelled(self._writer.submit(arrival))
        except Exception as exc:
            log.warning("451 for a message from %s: %s", mail_from, exc)
            return STORAGE_FAILED
        finally:
            self.in_flight -= 1
        log.info("stored inbound %s (%d bytes) from %s", inbound_id, len(data), mail_from,
                 extra={"inbound_id": inbound_id})
        if self.metrics is not None:
            self.metrics.mail_accepted("smtp")
        return ACCEPTED

    async def _auth_results(self, session: Session, mail_from: str, data: bytes) -> str | None:
        """The own authenticity check, in a worker thread (it waits on DNS); a failure of the
        check costs the mail nothing: it is stored without a result."""
        assert self._authenticate is not None
        peer = session.peer[0] if session.peer else None
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, self._authenticate, peer, session.host_name, mail_from, data)
        except Exception as exc:
            log.warning("authenticity check of a message from %s (%s) failed: %s: %s",
                        mail_from, peer, type(exc).__name__, exc)
            return None


async def _uncancelled(stored: concurrent.futures.Future[int]) -> int:
    """Wait for the writer's commit. A client that hangs up meanwhile cancels the wait, never
    the commit: a cancelled writer future would stop the writer thread for everyone. What it
    stored then is a duplicate when the client sends it again (the pipeline knows those)."""
    waiting = asyncio.wrap_future(stored)
    waiting.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "unretrieved"
    return await asyncio.shield(waiting)


# Commands that move no mail (Postfix's junk commands; ETRN and other unknown ones already cost
# an error each); a HELO/EHLO after the first counts too.
JUNK_COMMANDS = ("NOOP", "RSET", "VRFY", "EXPN", "HELP", "ETRN")
GREETINGS = ("HELO", "EHLO")
# The read buffer: a command line longer than this is read in pieces and refused (500) like any
# over 512 bytes; a DATA line of any length is taken in pieces, up to the message size.
READ_LIMIT = 64 * 1024


class LimitedSMTP(SMTP):
    """aiosmtpd's session with the listener's limits: sessions in total and per client IP, junk
    commands, errors, idle time by load and the DATA rate (bookkeeping in ingress/limits.py).
    DATA ends only at CRLF.CRLF and keeps lines of any length byte for byte. Built on aiosmtpd
    1.4.x internals (`_handle_client`, `_reset_timeout`, `_timeout_cb`): setup.cfg pins them."""

    def __init__(self, handler: SupportHandler, sessions: SessionTable, limits: SmtpListener, *,
                 hostname: str, throttle: LogThrottle):
        # aiosmtpd sizes its StreamReader from this attribute (read in SMTP.__init__).
        self.line_length_limit = min(READ_LIMIT, limits.max_message_size)
        super().__init__(handler, data_size_limit=limits.max_message_size, enable_SMTPUTF8=True,
                         decode_data=False, hostname=hostname, ident="maildesk ESMTP",
                         timeout=limits.idle_timeout)
        self._sessions = sessions
        self._limits = limits
        self._throttle = throttle
        self._ip: str | None = None
        self._admitted = False
        self._budget = SessionBudget(limits.max_junk_commands, limits.max_errors,
                                     limits.recipient_overshoot_limit)
        self._deadline: DataDeadline | None = None
        for name in (*JUNK_COMMANDS, *GREETINGS):
            if name in self._smtp_methods:
                self._smtp_methods[name] = self._counted(name, self._smtp_methods[name])
        self._metrics = handler.metrics
        if self._metrics is not None:
            self._smtp_methods["MAIL"] = self._received(self._smtp_methods["MAIL"])

    # -- sessions ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:  # after STARTTLS: the same session goes on
            super().connection_made(transport)
            return
        self._ip = client_ip(transport.get_extra_info("peername"))
        refusal = self._sessions.admit(self._ip, self._limits)
        if refusal is None:
            self._admitted = True
            super().connection_made(transport)
            return
        reply = TOO_MANY_SESSIONS if refusal is Refusal.TOO_MANY_SESSIONS else TOO_MANY_FROM_IP
        self._count_refusal(reply)
        line = reply.format(host=self.hostname, ip=self._ip).encode() + b"\r\n"
        transport.write(line)  # type: ignore[attr-defined]
        transport.close()
        self._throttle.log(refusal.name, logging.INFO, "SMTP connection from %s refused: %s "
                           "(%d open)", self._ip, refusal.value, self._sessions.active)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:  # refused at once: aiosmtpd's session never started
            asyncio.StreamReaderProtocol.connection_lost(self, error)
            return
        self._admitted = False
        try:
            self._sessions.release(self._ip)
        finally:
            super().connection_lost(error)

    def _hang_up(self, reply: str, why: str) -> None:
        """Say `reply` (a 421), close, and end the session's task."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._count_refusal(reply)
            line = reply.format(host=self.hostname).encode() + b"\r\n"
            transport.write(line)  # type: ignore[attr-defined]
            transport.close()
        self._throttle.log(why, logging.INFO, "SMTP session from %s closed: %s", self._ip, why)
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    # -- idle time ---------------------------------------------------------------------------
    def _idle_timeout(self) -> float:
        if self._sessions.overloaded(self._limits):
            return min(self._limits.overload_idle_timeout, self._limits.idle_timeout)
        return self._limits.idle_timeout

    def _reset_timeout(self, duration: float | None = None) -> None:
        super()._reset_timeout(duration or self._idle_timeout())

    def _timeout_cb(self) -> None:
        if self.transport is None:
            return
        if self._deadline is not None:  # DATA: the client has earned more time by sending
            left = self._deadline.left(self.loop.time())
            if left > 0:
                self._timeout_handle = self.loop.call_later(left, self._timeout_cb)
                return
        self._hang_up(TIMEOUT, "timeout")

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            self._deadline.received(len(data), self.loop.time())
        super().data_received(data)

    # -- junk and errors ---------------------------------------------------------------------
    def _counted(self, name: str, method: Callable[[str], Any]) -> Callable[[str], Any]:
        async def counted(arg: str) -> None:
            first_greeting = name in GREETINGS and (self.session is None
                                                    or self.session.host_name is None)
            if not first_greeting and self._budget.junk_command():
                self._hang_up(TOO_MANY_JUNK, "too many junk commands")
                await asyncio.sleep(0)  # the cancellation ends the session here
                return
            await method(arg)
        counted.__dict__.update(getattr(method, "__dict__", {}))  # aiosmtpd's HELP reads these
        return counted

    # -- metrics -----------------------------------------------------------------------------
    def _received(self, method: Callable[[str], Any]) -> Callable[[str], Any]:
        """MAIL, counted: a mail transaction begun (whatever becomes of it)."""
        metrics = self._metrics
        assert metrics is not None

        async def counted(arg: str) -> None:
            metrics.mail_received("smtp")
            await method(arg)
        counted.__dict__.update(getattr(method, "__dict__", {}))
        return counted

    def _count_refusal(self, reply: str) -> None:
        if self._metrics is not None:
            self._metrics.smtp_refused(reply)

    async def push(self, status: Any) -> None:
        await super().push(status)
        text = status if isinstance(status, str) else bytes(status).decode("ascii", "replace")
        if text[:1] in ("4", "5"):
            self._count_refusal(text)
        if text[:1] in ("4", "5") and self._budget.error_reply(
                overshoot=text.startswith(TOO_MANY_RECIPIENTS[:9])):
            self._hang_up(TOO_MANY_ERRORS, "too many errors")
            await asyncio.sleep(0)

    # -- DATA --------------------------------------------------------------------------------
    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(NEED_RCPT)
            return
        if arg:
            await self.push(DATA_SYNTAX)
            return
        await self.push(START_DATA)
        self._deadline = DataDeadline(self.loop.time(), self._idle_timeout(),
                                      self._limits.min_data_rate)
        self._reset_timeout(self._deadline.timeout)
        try:
            data, too_large = await self._read_data()
        finally:
            self._deadline = None
        self._reset_timeout(self._limits.idle_timeout)  # storing is our time, not the client's
        if too_large:
            self._set_post_data_state()
            await self.push(DATA_TOO_LARGE)
            return
        self.envelope.content = self.envelope.original_content = data
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        if isinstance(status, str) and status.startswith("2"):
            self._budget.message_stored()
        await self.push(status if isinstance(status, str) else ACCEPTED)
        self._reset_timeout()  # the client's turn again, at the idle time the load allows

    async def _read_data(self) -> tuple[bytes, bool]:
        """The message up to CRLF.CRLF, dot-unstuffed (RFC 5321 §4.5.2), otherwise byte for byte.
        A bare LF or CR never ends a line here, so no second message can be smuggled in. Past
        the size limit it reads on to the end keeping nothing, and says so (then 552).

        Read in runs up to the next ".CRLF", not line by line: a line-at-a-time read cost more
        interpreter time per mail than the rest of the SMTP session. A run ends the message
        when the bytes before its ".CRLF" are a CRLF (the data starts at a line start)."""
        reader = self._reader
        limit = self.data_size_limit
        runs: list[bytes] = []
        size = 0
        too_large = False
        before = b"\r\n"  # the last bytes read (at first: a line start, as after 354)
        while True:
            try:
                run = await reader.readuntil(b".\r\n")
                complete = True
            except asyncio.LimitOverrunError as exc:
                run = await reader.read(exc.consumed)
                complete = False
            if complete and (before + run).endswith(b"\r\n.\r\n"):
                run = run[:-3]           # the end-of-data line is not part of the message
                size += len(run)
                if too_large or (limit and size > limit):
                    return b"", True
                runs.append(run)
                return _unstuff(b"".join(runs)), False
            size += len(run)
            before = (before + run)[-4:]
            if too_large or (limit and size > limit):
                too_large = True
                runs.clear()
            else:
                runs.append(run)


def _unstuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: the first dot of every line that starts with one goes (lines end with
    CRLF only, as above)."""
    data = data.replace(b"\r\n.", b"\r\n")
    return data[1:] if data[:1] == b"." else data


def make_smtp_factory(handler: SupportHandler, settings: Settings, *,
                      sessions: SessionTable | None = None) -> Callable[[], SMTP]:
    """The protocol factory for `loop.create_server`: a LimitedSMTP per connection, with the
    limits configured when it connects, all counted in one SessionTable (by default capped to
    what the file-descriptor limit allows, minus `smtp.fd_reserve`)."""
    if sessions is None:
        sessions = SessionTable(fd_session_cap(settings.smtp.fd_reserve), log=log)
        sessions.max_sessions(settings.smtp)  # warns now if the descriptors lower it
    throttle = LogThrottle(log)

    def factory() -> SMTP:
        return LimitedSMTP(handler, sessions, handler.limits(), hostname=settings.domain,
                           throttle=throttle)
    return factory
