"""How SmtpTransport words SMTP failures, against a fake connection: 5xx final, 4xx and
broken connections worth a retry, STARTTLS never skipped."""

from __future__ import annotations

import smtplib

import pytest

from maildesk.config.model import SmarthostSettings
from maildesk.outbound.smtp import SmtpTransport
from maildesk.outbound.transport import (DeliveryResult, PermanentDeliveryError,
                                         TemporaryDeliveryError)

WHERE = "smarthost mx.example:25"


class FakeConn:
    def __init__(self, sendmail=None, extensions=(), login=None) -> None:
        self._sendmail, self._extensions, self._login = sendmail, set(extensions), login
        self.closed = False

    def has_extn(self, name: str) -> bool:
        return name in self._extensions

    def sendmail(self, sender, recipients, message, mail_options=()):
        if isinstance(self._sendmail, BaseException):
            raise self._sendmail
        return self._sendmail or {}

    def ehlo_or_helo_if_needed(self) -> None:
        pass

    def login(self, user: str, password: str) -> None:
        if self._login is not None:
            raise self._login

    def close(self) -> None:
        self.closed = True


def transport(security: str = "none", username: str | None = None) -> SmtpTransport:
    return SmtpTransport(SmarthostSettings(host="mx.example", port=25, security=security,
                                           username=username))


def send(outcome) -> DeliveryResult:
    t = transport()
    conn = FakeConn(sendmail=outcome)
    t._conn = conn
    return t._send(conn, "desk@example.com", ("a@x.example", "b@x.example"), b"S: x\r\n\r\nb")


def test_refused_recipients_split_into_final_and_deferred() -> None:
    result = send({"a@x.example": (550, b"no such  user"), "b@x.example": (451, b"later")})
    assert result == DeliveryResult(accepted=(), refused={"a@x.example": "550 no such user"},
                                    deferred={"b@x.example": "451 later"})


def test_every_recipient_refused_for_good_is_permanent_else_temporary() -> None:
    with pytest.raises(PermanentDeliveryError) as final:
        send(smtplib.SMTPRecipientsRefused({"a@x.example": (550, b"no"),
                                            "b@x.example": (553, b"bad")}))
    assert final.value.refused == {"a@x.example": "550 no", "b@x.example": "553 bad"}
    with pytest.raises(TemporaryDeliveryError, match="refused every recipient, some for now"):
        send(smtplib.SMTPRecipientsRefused({"a@x.example": (550, b"no"),
                                            "b@x.example": (451, b"later")}))


def test_sender_refused_530_says_what_to_check() -> None:
    with pytest.raises(PermanentDeliveryError) as exc:
        send(smtplib.SMTPSenderRefused(530, b"auth first", "desk@example.com"))
    assert str(exc.value) == (f"{WHERE} refused MAIL FROM:<desk@example.com>: 530 auth first "
                              "(the smarthost wants STARTTLS or AUTH first: "
                              "check outbound.smtp security/username)")


@pytest.mark.parametrize("error, kind, words", [
    (smtplib.SMTPDataError(554, b"spam"), PermanentDeliveryError,
     f"{WHERE} refused the message at DATA: 554 spam"),
    (smtplib.SMTPDataError(452, b"full"), TemporaryDeliveryError,
     f"{WHERE} refused the message at DATA: 452 full"),
    (smtplib.SMTPResponseException(421, b"bye"), TemporaryDeliveryError,
     f"{WHERE} answered 421 bye"),
    (smtplib.SMTPNotSupportedError("no SMTPUTF8"), PermanentDeliveryError, f"{WHERE}: no SMTPUTF8"),
    (smtplib.SMTPException("odd"), TemporaryDeliveryError, f"{WHERE}: odd"),
    (OSError(104, "Connection reset"), TemporaryDeliveryError,
     f"connection to {WHERE} failed while sending: Connection reset"),
])
def test_send_failures(error, kind, words) -> None:
    with pytest.raises(kind) as exc:
        send(error)
    assert str(exc.value) == words


def test_a_failure_without_an_smtp_reply_drops_the_connection() -> None:
    t = transport()
    conn = FakeConn(sendmail=OSError("reset"))
    t._conn = conn
    with pytest.raises(TemporaryDeliveryError):
        t._send(conn, "desk@example.com", ("a@x.example",), b"S: x\r\n\r\nb")
    assert t._conn is None and conn.closed


def test_starttls_is_never_skipped() -> None:
    with pytest.raises(TemporaryDeliveryError, match="does not offer STARTTLS"):
        transport("starttls")._handshake(FakeConn())


@pytest.mark.parametrize("error, kind", [
    (smtplib.SMTPAuthenticationError(535, b"bad credentials"), PermanentDeliveryError),
    (smtplib.SMTPAuthenticationError(454, b"try later"), TemporaryDeliveryError),
    (smtplib.SMTPNotSupportedError(), PermanentDeliveryError),
    (smtplib.SMTPServerDisconnected("gone"), TemporaryDeliveryError),
    (smtplib.SMTPException("No suitable authentication method found."), PermanentDeliveryError),
    (OSError(111, "refused"), TemporaryDeliveryError),
])
def test_login_failures(error, kind) -> None:
    with pytest.raises(kind):
        transport(username="bob")._handshake(FakeConn(login=error))
