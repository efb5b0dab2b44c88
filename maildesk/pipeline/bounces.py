"""Bounces of our own mail. Pure: is this a report that our mail to `recipient` failed, and
what does it say.

Outgoing mail leaves with a signed return path (addresses.py), so a bounce names the exact mail
it returns whatever the reporting MTA's format. The signature proves the mail is about our
mail; it does not prove the mail is a failure report: an out-of-office, a "delayed" notice or
a person writing to the return path reach the same address. A failure is counted only when
the report says that delivery to that mail's recipient failed for good:
1. an RFC 3464 delivery-status part that lists the recipient with `Action: failed` (or a 5.x.x
   status and no action);
2. else GNU Mailman's detectors (flufl.bounce: some forty MTA formats) list the recipient
   among the permanent failures;
3. else a robot's non-delivery notice (null return path or MAILER-DAEMON) whose body names the
   recipient, and which is neither a delay warning nor an automatic reply.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message as EmailMessage

from maildesk.pipeline.headers import one_line
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.subject import strip_prefixes

_STATUS = re.compile(r"^\s*Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.I | re.M)
_DIAG = re.compile(r"^\s*Diagnostic-Code:\s*(.+)$", re.I | re.M)
_ADDRESS_FIELD = re.compile(r"^[^;]*;\s*<?([^<>\s]+@[^<>\s]+?)>?\s*$")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ROBOT = re.compile(r"^(mailer[-_.]?daemon|post[-_.]?master)(@|$)", re.I)
_NOT_FINAL = re.compile(
    r"\b(delay(ed)?|warning|still (being )?tr(y|ied)|will (keep )?retry|out of (the )?office|"
    r"auto(matic)?[ -]?(reply|response|antwort)|abwesen|vacation|verz[öo]gert|"
    r"задерж|автоответ|отпуск)", re.I)


@dataclass(frozen=True)
class DeliveryReport:
    """What a mail to a return path says about our mail to one recipient."""

    failed: bool       # delivery failed for good: mark the outgoing mail failed
    summary: str       # one line for the ticket
    why: str           # how it was judged (kept in the log and on the event)


def _walk(raw: bytes) -> EmailMessage | None:
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # a broken report is judged by its text alone
        return None


def _dsn_blocks(msg: EmailMessage | None) -> list[EmailMessage]:
    """The per-message and per-recipient field blocks of every delivery-status part."""
    if msg is None:
        return []
    blocks: list[EmailMessage] = []
    for part in msg.walk():
        if part.get_content_type() in _DSN_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list):  # the email package parses it into header blocks
                blocks.extend(p for p in payload if isinstance(p, EmailMessage))
            elif isinstance(payload, str):
                for chunk in re.split(r"\r?\n\s*\r?\n", payload):
                    blocks.append(email.message_from_string(chunk.strip() + "\n"))
    return blocks


def _delivery_status_text(msg: EmailMessage | None) -> str:
    return "\n".join(str(b) for b in _dsn_blocks(msg))


def _field_address(value: str | None) -> str | None:
    m = _ADDRESS_FIELD.match((value or "").strip())
    return m.group(1).lower() if m else None


def _judge_dsn(blocks: list[EmailMessage], recipient: str) -> tuple[bool, str] | None:
    """(failed, why) from RFC 3464 recipient blocks; None when no block names an address."""
    named = False
    for block in blocks:
        addresses = {_field_address(block.get("Final-Recipient")),
                     _field_address(block.get("Original-Recipient"))} - {None}
        if not addresses:
            continue
        named = True
        if recipient not in addresses:
            continue
        action = (block.get("Action") or "").strip().lower()
        status = (block.get("Status") or "").strip()
        if action == "failed" or (not action and status.startswith("5")):
            return True, f"delivery-status: {recipient} {action or 'status ' + status}"
        return False, f"delivery-status: {recipient} {action or 'status ' + status} (not a failure)"
    return (False, "delivery-status names other recipients") if named else None


def _judge_flufl(msg: EmailMessage | None, recipient: str) -> tuple[bool, str] | None:
    if msg is None:
        return None
    try:
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(msg)
    except Exception:  # a detector that trips over odd mail: judged by the fallback
        return None
    found = {a.decode("utf-8", "replace").lower() for a in (*temporary, *permanent)}
    if not found:
        return None
    if recipient in {a.decode("utf-8", "replace").lower() for a in permanent}:
        return True, f"bounce detector: {recipient} failed permanently"
    if recipient in found:
        return False, f"bounce detector: {recipient} failed temporarily (not a failure)"
    return False, "bounce detector: names other recipients"


def _body(raw: bytes) -> bytes:
    """Everything after the header block (CRLF, LF or old Mac CR line ends)."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n"), raw.find(b"\r\r")) if i >= 0]
    return raw[min(ends):] if ends else b""


def judge_report(message: ParsedMessage, raw: bytes, mail_from: str | None,
                 recipient: str) -> DeliveryReport:
    """Whether `message`, sent to the signed return path of our mail to `recipient`, reports
    that this delivery failed for good (see the module docstring)."""
    recipient = recipient.strip().lower()
    msg = _walk(raw)
    summary = bounce_summary(message, raw)
    for judge in (lambda: _judge_dsn(_dsn_blocks(msg), recipient),
                  lambda: _judge_flufl(msg, recipient)):
        verdict = judge()
        if verdict is not None:
            return DeliveryReport(verdict[0], summary, verdict[1])
    sender = message.from_.address.lower() if message.from_ else ""
    robot = mail_from == "" or bool(_ROBOT.match(sender))
    if not robot:
        return DeliveryReport(False, summary, "not from a mail system (a person or a program "
                                              "wrote to the return path)")
    if sender == recipient:
        return DeliveryReport(False, summary, "sent by the recipient: an automatic reply")
    subject = strip_prefixes(message.subject)[0]
    if _NOT_FINAL.search(subject):
        return DeliveryReport(False, summary, f"a delay warning or automatic reply ({subject[:60]})")
    if recipient.encode() not in _body(raw).lower():
        return DeliveryReport(False, summary, "the report does not name the recipient")
    return DeliveryReport(True, summary, "a mail system's notice naming the recipient")


def bounce_summary(message: ParsedMessage, raw: bytes) -> str:
    """One line for the ticket: the DSN status and diagnostic when given, else the subject."""
    text = f"{_delivery_status_text(_walk(raw))}\n{message.text}"
    status = _STATUS.search(text)
    diag = _DIAG.search(text)
    parts = [p for p in (status and f"status {status.group(1)}",
                         diag and diag.group(1).strip()[:200]) if p]
    return one_line("; ".join(parts) or (message.subject or "bounce"))[:200]
