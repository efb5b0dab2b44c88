"""Build test mails as bytes, the way real clients write them."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone


def mail(*, sender: str = "Client <client@customer.example>", to: str = "support@example.com",
         subject: str = "Printer does not print", body: str = "Hello, the printer is broken.",
         message_id: str | None = None, in_reply_to: str | None = None,
         references: list[str] | None = None, charset: str = "utf-8",
         date: datetime | None = None, extra: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc))
    msg["Message-ID"] = message_id or make_msgid(domain="customer.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for k, v in (extra or {}).items():
        msg[k] = v
    msg.set_content(body, charset=charset)
    return msg.as_bytes()
