"""Raw bytes -> ParsedMessage (readable text, decoded headers, attachments) or Unparseable.

Pure: no I/O, no clock. Never raises on any input bytes; whatever cannot be read becomes a
defect note or, when nothing usable is left, an Unparseable with the reason.

The stdlib parser runs with the compat32 policy: it only splits, never interprets, so broken
headers cannot make it raise, and it is several times faster than the modern policy. Header
values are decoded here (headers.py), text parts through charsets.py, HTML through html.py.

This module puts the stages together; each lives in its own module:

* headerblock.py: the bytes -> the compat32 tree (bounded), a broken header block repaired;
* fields.py: the top-level header fields (ids, addresses, subject, the sender), decoded;
* walk.py: the MIME tree walked for the text and the attachments (winmail.dat unpacked),
  mimepart.py reading each part without raising;
* parsed.py: the result types, re-exported here: import them from maildesk.pipeline.parse.

Part paths (AttachmentInfo.part) follow IMAP BODY section numbers (walk.py says how). The work
is bounded (parts, nesting, text and HTML sizes); what was cut is listed in `defects`.
"""

from __future__ import annotations

import hashlib

from maildesk.pipeline import headers, rawparts
from maildesk.pipeline.fields import HeaderFields, charset_hint
from maildesk.pipeline.headerblock import HEADER_LINE, parse_tree, strip_envelope
from maildesk.pipeline.parsed import Address, AttachmentInfo, ParsedMessage, Unparseable
from maildesk.pipeline.walk import MimeWalk

__all__ = ["Address", "AttachmentInfo", "MAX_FORWARD_BYTES", "ParsedMessage", "Unparseable",
           "parse_message"]

MAX_DEFECTS = 100
MAX_FORWARD_BYTES = 20 * 1024 * 1024   # attachments kept in ParsedMessage.attachment_data

_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file: an Outlook .msg
_INTERNAL_ERROR = "The message could not be parsed"


def parse_message(raw: bytes) -> ParsedMessage | Unparseable:
    """Parse raw message bytes; never raises."""
    try:
        return _parse(raw)
    except Exception as exc:  # a bug here must quarantine one mail, not stop the queue
        return Unparseable(f"{_INTERNAL_ERROR} (internal error {type(exc).__name__}); "
                           "it is stored and can be retried after an upgrade.")


def _parse(raw: bytes) -> ParsedMessage | Unparseable:
    if not raw or not raw.strip():
        return Unparseable("The message is empty.")
    if raw.startswith(_CFB_MAGIC):
        return Unparseable("This is an Outlook .msg file (binary), not an Internet mail "
                           "message; ask the sender to forward the mail itself.")
    data = strip_envelope(raw)
    # A NUL or other control byte inside a header value does not make a mail binary: the raw
    # bytes are kept as they are, and the decoded values (headers.one_line) show a space.
    if not HEADER_LINE.match(data):
        return Unparseable("This is not an Internet mail message: it does not start with "
                           "mail headers.")

    defects: list[str] = []
    data, msg, structured = parse_tree(data, defects)
    head_end = rawparts.body_start(data, 0, len(data))
    raw_headers = [(headers.raw_bytes(k).decode("ascii", "replace"), headers.raw_bytes(v))
                   for k, v in msg.raw_items()]
    if not raw_headers:
        return Unparseable("This is not an Internet mail message: it has no mail headers.")
    fallback = headers.header_fallback_codec([v for _, v in raw_headers],
                                             lambda: charset_hint(msg))
    if fallback is not None:
        defects.append(f"charset: raw 8-bit headers read as {fallback}")
    fields = HeaderFields(raw_headers, fallback, defects)

    sender = fields.sender()
    if sender is None:
        # The envelope sender (MAIL FROM), which parsing does not see, may still name one:
        # plan.sender_of takes it; one with neither is quarantined (plan.missing_sender).
        defects.append("header from: none; no From, Sender, Reply-To or Return-Path "
                       "names a sender")

    walk = MimeWalk(data, msg, defects, fallback, payloads={})
    text, has_html = walk.body(structured)
    payloads = walk.payloads or {}
    forward = tuple(payloads.get(a.part, b"") for a in walk.attachments)
    if sum(map(len, forward)) > MAX_FORWARD_BYTES:
        forward = ()

    return ParsedMessage(
        message_id=fields.message_id(),
        in_reply_to=tuple(fields.ids("in-reply-to")),
        references=tuple(fields.ids("references")),
        from_=sender,
        reply_to=tuple(fields.addresses("reply-to")),
        to=tuple(fields.addresses("to")),
        cc=tuple(fields.addresses("cc")),
        subject=fields.subject(),
        date=headers.parse_date(fields.text("date")),
        text=text,
        has_html=has_html,
        attachments=tuple(walk.attachments),
        headers=fields.decoded_headers(),
        content_language=headers.first_language(fields.text("content-language")),
        content_hash=_content_hash(fields, data[head_end:]),
        defects=_tidy_defects(defects),
        attachment_data=forward,
    )


def _content_hash(fields: HeaderFields, body: bytes) -> str:
    """sha256 of what two deliveries of one message share.

    Message-ID, From, Date and Subject as written (whitespace folded) and the body with line
    ends normalised and trailing blanks dropped: trace headers (Received, Return-Path,
    Delivered-To) and CRLF vs LF differ between an SMTP and an IMAP copy, these do not.
    """
    digest = hashlib.sha256()
    for name in ("message-id", "from", "date", "subject"):
        value = fields.first(name) or b""
        digest.update(name.encode() + b":" + b" ".join(value.split()) + b"\n")
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b" \n" in body or b"\t\n" in body:  # split and strip: linear, unlike a regex here
        body = b"\n".join(line.rstrip(b" \t") for line in body.split(b"\n"))
    digest.update(b"\n" + body.rstrip())
    return digest.hexdigest()


def _tidy_defects(defects: list[str]) -> tuple[str, ...]:
    """One line each, no repeats, a bounded list."""
    seen: dict[str, None] = {}
    for defect in defects:
        seen.setdefault(headers.cap(headers.one_line(defect), 300)[0], None)
        if len(seen) >= MAX_DEFECTS:
            break
    return tuple(seen)
