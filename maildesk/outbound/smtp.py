"""Deliver outgoing mail to the SMTP smarthost (plain, STARTTLS or implicit TLS, with AUTH).

One connection is kept open between deliveries (checked with RSET after a pause); when the
server has dropped it, the transport reconnects once. SMTP outcomes become DeliveryResult or
Temporary/PermanentDeliveryError, so the outbox knows whether to retry, and for whom.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Sequence

from maildesk.config.model import SmarthostSettings
from maildesk.outbound.transport import (DeliveryError, DeliveryResult, PermanentDeliveryError,
                                         TemporaryDeliveryError)

SECURITY_MODES = ("none", "starttls", "tls")
REPLY_OK = 250
IDLE_PROBE_SECONDS = 10.0  # a connection idle longer than this is probed with RSET


class _Disconnected(Exception):
    """The server closed the connection under us (maybe an idle reused one)."""


def _text(reply: bytes | str) -> str:
    """An SMTP reply for a log line or an error reason (display only)."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())


def _is_permanent(code: int) -> bool:
    return 500 <= code <= 599


def _error_for(code: int, reason: str, **kw) -> DeliveryError:
    """5xx is final; 4xx and anything unexpected (smtplib's -1) is worth another try."""
    cls = PermanentDeliveryError if _is_permanent(code) else TemporaryDeliveryError
    return cls(reason, code=code, **kw)


def _headers_are_ascii(message: bytes) -> bool:
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    return (message if end < 0 else message[:end]).isascii()


def _outcome(recipients: tuple[str, ...],
             refused: dict[str, tuple[int, bytes]]) -> DeliveryResult:
    """sendmail's answer when some recipient was accepted: the refused ones, for good (5xx)
    or for now."""
    permanent: dict[str, str] = {}
    deferred: dict[str, str] = {}
    for rcpt, (code, text) in refused.items():
        (permanent if _is_permanent(code) else deferred)[rcpt] = f"{code} {_text(text)}"
    accepted = tuple(r for r in recipients if r not in refused)
    return DeliveryResult(accepted=accepted, refused=permanent, deferred=deferred)


class SmtpTransport:
    """smtplib to `settings.host`; see the module docstring. Safe to share between threads."""

    def __init__(self, settings: SmarthostSettings, *, timeout: float = 30,
                 ssl_context: ssl.SSLContext | None = None, local_hostname: str | None = None):
        if settings.security not in SECURITY_MODES:
            raise ValueError(f"unknown smarthost security {settings.security!r} "
                             f"(known: {', '.join(SECURITY_MODES)})")
        self.settings = settings
        self.timeout = timeout
        self.local_hostname = local_hostname
        if ssl_context is None and settings.security != "none":
            ssl_context = ssl.create_default_context()
        self.ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None
        self._last_used = float("-inf")
        self._lock = threading.Lock()

    @property
    def _where(self) -> str:
        return f"smarthost {self.settings.host}:{self.settings.port}"

    # -- delivery ----------------------------------------------------------------------------
    def deliver(self, envelope_from: str, recipients: Sequence[str],
                message: bytes) -> DeliveryResult:
        recipients = tuple(recipients)
        if not recipients:
            raise PermanentDeliveryError("no recipients")
        with self._lock:
            reused = self._reusable()
            while True:
                if not reused:
                    self._conn = self._open()
                try:
                    result = self._send(self._conn, envelope_from, recipients, message)
                    self._last_used = time.monotonic()
                    return result
                except _Disconnected as exc:
                    self._drop()
                    if not reused:
                        raise self._closed_under_us(exc) from None
                # The kept-open connection had gone stale: one fresh attempt.
                reused = False

    def _closed_under_us(self, exc: _Disconnected) -> TemporaryDeliveryError:
        return TemporaryDeliveryError(f"{self._where} closed the connection: {exc}")

    def _send(self, conn: smtplib.SMTP, envelope_from: str, recipients: tuple[str, ...],
              message: bytes) -> DeliveryResult:
        options = self._mail_options(conn, envelope_from, recipients, message)
        try:
            refused = conn.sendmail(envelope_from, list(recipients), message, mail_options=options)
        except smtplib.SMTPServerDisconnected as exc:
            raise _Disconnected(str(exc) or "connection closed") from exc
        except OSError as exc:  # smtplib's own exceptions are OSErrors too
            raise self._sending_error(exc, envelope_from) from None
        return _outcome(recipients, refused)

    def _sending_error(self, exc: OSError, envelope_from: str) -> DeliveryError:
        """What a failed MAIL/RCPT/DATA exchange means for the outbox (most specific first:
        the smtplib exceptions are subclasses of one another)."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return self._every_recipient_refused(exc)
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return self._sender_refused(exc, envelope_from)
        if isinstance(exc, smtplib.SMTPDataError):
            return _error_for(exc.smtp_code, f"{self._where} refused the message at DATA: "
                                             f"{exc.smtp_code} {_text(exc.smtp_error)}")
        if isinstance(exc, smtplib.SMTPResponseException):
            return _error_for(exc.smtp_code, f"{self._where} answered {exc.smtp_code} "
                                             f"{_text(exc.smtp_error)}")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentDeliveryError(f"{self._where}: {exc}")
        # No SMTP reply to go by: the connection's state is unknown, do not reuse it.
        self._drop()
        if isinstance(exc, smtplib.SMTPException):
            return TemporaryDeliveryError(f"{self._where}: {exc}")
        return TemporaryDeliveryError(f"connection to {self._where} failed while sending: "
                                      f"{exc.strerror or exc}")

    def _every_recipient_refused(self, exc: smtplib.SMTPRecipientsRefused) -> DeliveryError:
        """Final when every refusal is (5xx); else the whole message is retried later."""
        replies = {rcpt: f"{code} {_text(text)}" for rcpt, (code, text) in exc.recipients.items()}
        listing = "; ".join(f"{rcpt}: {reply}" for rcpt, reply in replies.items())
        if all(_is_permanent(code) for code, _ in exc.recipients.values()):
            return PermanentDeliveryError(f"{self._where} refused every recipient: {listing}",
                                          refused=replies)
        return TemporaryDeliveryError(f"{self._where} refused every recipient, some for now: "
                                      f"{listing}", refused=replies)

    def _sender_refused(self, exc: smtplib.SMTPSenderRefused,
                        envelope_from: str) -> DeliveryError:
        reason = (f"{self._where} refused MAIL FROM:<{envelope_from}>: "
                  f"{exc.smtp_code} {_text(exc.smtp_error)}")
        if exc.smtp_code == 530:
            reason += (" (the smarthost wants STARTTLS or AUTH first: "
                       "check outbound.smtp security/username)")
        return _error_for(exc.smtp_code, reason)

    def _mail_options(self, conn: smtplib.SMTP, envelope_from: str, recipients: tuple[str, ...],
                      message: bytes) -> list[str]:
        options = []
        envelope_ascii = all(a.isascii() for a in (envelope_from, *recipients))
        if not envelope_ascii or not _headers_are_ascii(message):
            if conn.has_extn("smtputf8"):
                options.append("SMTPUTF8")
            elif not envelope_ascii:
                raise PermanentDeliveryError(f"{self._where} does not support SMTPUTF8, needed for "
                                             f"a non-ASCII envelope address")
        if not message.isascii() and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        return options

    # -- the connection ----------------------------------------------------------------------
    def _reusable(self) -> bool:
        """Is the kept-open connection still there? Within a burst it is trusted (a stale one
        still gets one fresh retry); after a pause RSET must answer 250. Drop it if not."""
        if self._conn is None:
            return False
        if time.monotonic() - self._last_used < IDLE_PROBE_SECONDS:
            return True
        try:
            code, _ = self._conn.rset()
        except (smtplib.SMTPException, OSError):
            code = -1
        if code == REPLY_OK:
            return True
        self._drop()
        return False

    def _network_error(self, exc: OSError, context: str) -> TemporaryDeliveryError:
        """Words for a failed connection or TLS handshake; always worth retrying."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TemporaryDeliveryError(f"TLS certificate of {self._where} not trusted: "
                                          f"{exc.verify_message or exc}")
        if isinstance(exc, ssl.SSLError):
            return TemporaryDeliveryError(f"TLS handshake with {self._where} failed: {exc}")
        return TemporaryDeliveryError(f"{context}: {exc.strerror or exc}")

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=self.local_hostname, timeout=self.timeout,
                    context=self.ssl_context)
            else:
                conn = smtplib.SMTP(s.host, s.port, local_hostname=self.local_hostname,
                                    timeout=self.timeout)
        except smtplib.SMTPConnectError as exc:
            raise TemporaryDeliveryError(f"{self._where} greeted with {exc.smtp_code} "
                                         f"{_text(exc.smtp_error)}", code=exc.smtp_code) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise TemporaryDeliveryError(f"{self._where} closed the connection before its "
                                         f"greeting: {exc}") from None
        except OSError as exc:  # TLS errors are OSErrors too
            raise self._network_error(exc, f"cannot connect to {self._where}") from None
        try:
            self._handshake(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _handshake(self, conn: smtplib.SMTP) -> None:
        """EHLO, STARTTLS when asked for (never falling back to clear text), then AUTH."""
        self._greet(conn)
        if self.settings.username:
            self._login(conn, self.settings.username)

    def _greet(self, conn: smtplib.SMTP) -> None:
        """EHLO, and STARTTLS with a second EHLO when the settings ask for it."""
        try:
            conn.ehlo_or_helo_if_needed()
            if self.settings.security == "starttls":
                self._starttls(conn)
        except smtplib.SMTPHeloError as exc:
            raise TemporaryDeliveryError(f"{self._where} refused EHLO/HELO: {exc.smtp_code} "
                                         f"{_text(exc.smtp_error)}", code=exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            raise TemporaryDeliveryError(f"{self._where} refused STARTTLS: {exc.smtp_code} "
                                         f"{_text(exc.smtp_error)}", code=exc.smtp_code) from None
        except smtplib.SMTPException as exc:
            raise TemporaryDeliveryError(f"{self._where}: {exc}") from None
        except OSError as exc:
            raise self._network_error(exc, f"connection to {self._where} failed") from None

    def _starttls(self, conn: smtplib.SMTP) -> None:
        if not conn.has_extn("starttls"):
            raise TemporaryDeliveryError(
                f"{self._where} does not offer STARTTLS (security: starttls); "
                f"not sending in clear text")
        conn.starttls(context=self.ssl_context)
        conn.ehlo()

    def _login(self, conn: smtplib.SMTP, username: str) -> None:
        """AUTH: a 5xx refusal or a server without AUTH is final; 4xx or a lost connection
        is worth a retry."""
        s = self.settings
        try:
            conn.login(username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise _error_for(exc.smtp_code, f"{self._where} rejected the login of {username!r}: "
                                            f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError:
            raise PermanentDeliveryError(
                f"{self._where} does not offer AUTH on this connection (security: {s.security}); "
                f"cannot log in as {username!r}") from None
        except smtplib.SMTPServerDisconnected as exc:
            raise TemporaryDeliveryError(f"{self._where} closed the connection during AUTH: "
                                         f"{exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise _error_for(exc.smtp_code, f"{self._where} refused AUTH: {exc.smtp_code} "
                                            f"{_text(exc.smtp_error)}") from None
        except smtplib.SMTPException as exc:
            # "No suitable authentication method found": no retry will change that.
            raise PermanentDeliveryError(f"{self._where}: {exc}") from None
        except OSError as exc:
            raise TemporaryDeliveryError(f"connection to {self._where} failed during AUTH: "
                                         f"{exc.strerror or exc}") from None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        """QUIT and close the kept-open connection, if any."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                conn.close()
