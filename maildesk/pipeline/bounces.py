"""Bounces of our own mail. Pure: find the outbox entry a bounce is about, and what it says.

Outgoing mail leaves with the return path `support+bounce-<tag>@domain` (VERP), so a bounce
names the exact mail it returns, whatever the reporting MTA's format (RFC 3464 or not).
"""

from __future__ import annotations

import email
import email.policy
import re

from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.thread import support_detail

_BOUNCE = re.compile(r"^bounce-(?P<tag>[0-9a-f]{16})$")
_STATUS = re.compile(r"^\s*Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.I | re.M)
_DIAG = re.compile(r"^\s*Diagnostic-Code:\s*(.+)$", re.I | re.M)


def bounce_tag(recipient: str, support_addresses: frozenset[str]) -> str | None:
    """The outbox tag of `support+bounce-<tag>@domain`, if that is what `recipient` is."""
    m = _BOUNCE.match(support_detail(recipient, support_addresses) or "")
    return m.group("tag") if m else None


def _delivery_status(raw: bytes) -> str:
    """The text of a message/delivery-status part (RFC 3464), '' when there is none."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        for part in msg.walk():
            if part.get_content_type() in ("message/delivery-status",
                                           "message/global-delivery-status"):
                payload = part.get_payload()
                if isinstance(payload, list):  # the email package parses it into header blocks
                    return "\n".join(str(p) for p in payload)
                return str(payload)
    except Exception:  # a broken report still bounces; the subject will do
        return ""
    return ""


def bounce_summary(message: ParsedMessage, raw: bytes) -> str:
    """One line for the ticket: the DSN status and diagnostic when given, else the subject."""
    text = f"{_delivery_status(raw)}\n{message.text}"
    status = _STATUS.search(text)
    diag = _DIAG.search(text)
    parts = [p for p in (status and f"status {status.group(1)}",
                         diag and diag.group(1).strip()[:200]) if p]
    return "; ".join(parts) or (message.subject or "bounce")[:200]
