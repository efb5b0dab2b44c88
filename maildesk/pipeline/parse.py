"""Raw bytes -> ParsedMessage (readable text, decoded headers, attachments) or Unparseable.

Pure: no I/O, no clock. Never raises on any input bytes; whatever cannot be read becomes a
defect note or, when nothing usable is left, an Unparseable with the reason.

The stdlib parser runs with the compat32 policy: it only splits, never interprets, so broken
headers cannot make it raise, and it is several times faster than the modern policy. Header
values are decoded here (headers.py), text parts through charsets.py, HTML through html.py.

Part paths follow IMAP BODY section numbers: "1" is the body of a single-part message, "2.1"
the first child of the second part of a multipart. A file unpacked from a winmail.dat at part
"2" gets "2:1", "2:2"... (the container's path, a colon, its index inside the container).
The work is bounded (parts, nesting, text and HTML sizes); what was cut is listed in `defects`.
"""

from __future__ import annotations

import binascii
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from maildesk.pipeline import charsets, headers, rawparts
from maildesk.pipeline.html import html_to_text, meta_charset
from maildesk.pipeline.tnef import unpack_tnef


@dataclass(frozen=True)
class Address:
    """A mailbox: display name (decoded) and address (lower-cased entirely; '' if none)."""

    name: str
    address: str


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int
    sha256: str
    part: str  # MIME part path such as "1.2", to re-extract it from the raw message
    inline: bool = False  # Content-Disposition: inline (a signature logo, a pasted picture)


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None            # without angle brackets
    in_reply_to: tuple[str, ...]      # message ids, without angle brackets
    references: tuple[str, ...]       # in header order (oldest first)
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str                      # decoded, control characters removed, one line
    date: datetime | None             # aware, UTC
    text: str                         # the readable body (text/plain, or HTML converted)
    has_html: bool
    attachments: tuple[AttachmentInfo, ...]
    headers: tuple[tuple[str, str], ...]  # every header, decoded, in order (values one line)
    content_language: str | None
    content_hash: str                 # sha256 hex of the content that identifies a duplicate
    defects: tuple[str, ...]          # what was wrong but got repaired, for the audit trail
    # The attachments' bytes, in the order of `attachments`, for forwarding them to a line
    # mailbox or relaying an agent's files; empty when together above MAX_FORWARD_BYTES.
    attachment_data: tuple[bytes, ...] = ()

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), decoded; None when absent."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None


@dataclass(frozen=True)
class Unparseable:
    """Raw bytes that cannot be made into a ticket; the reason is shown in `quarantine list`."""

    reason: str


MAX_PARTS = 1000               # MIME parts walked; the rest is skipped (and noted)
MAX_DEPTH = 30                 # multipart nesting walked
MAX_BOUNDARIES = 64            # more declared boundaries: do not let the parser build the tree
MAX_HEADERS = 500              # headers kept in ParsedMessage.headers
MAX_TEXT_CHARS = 1_000_000     # body text kept
MAX_HTML_CHARS = 2_000_000     # HTML given to the converter
MAX_DEFECTS = 100
MAX_FILENAME_CHARS = 200
MAX_FORWARD_BYTES = 20 * 1024 * 1024   # attachments kept in ParsedMessage.attachment_data

_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file: an Outlook .msg
_MBOX_FROM_LINE = re.compile(rb"From (?![ \t]*:)[^\r\n]*(?:\r\n|\r|\n)")
_LEADING_BLANK_LINES = re.compile(rb"(?:[ \t]*(?:\r\n|\r|\n))+")
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_SPACED_HEADER_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.M)
_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")
# Names that make a line certainly a header, so the junk line before it is header junk too.
_COMMON_HEADER = re.compile(
    rb"(?i)(?:received|from|to|cc|date|subject|message-id|mime-version|content-[a-z-]+|"
    rb"return-path|delivered-to|reply-to|references|in-reply-to|sender|x-[a-z0-9-]+|"
    rb"dkim-signature|authentication-results|list-[a-z-]+)[ \t]*:")
_BODY_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BARE_CR = re.compile("\r(?!\n)")
_UNSAFE_FILENAME = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')

_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "text/csv": ".csv",
    "text/rfc822-headers": ".txt", "message/rfc822": ".eml", "message/global": ".eml",
    "message/delivery-status": ".txt", "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt", "application/pdf": ".pdf", "image/png": ".png",
    "image/jpeg": ".jpg", "image/gif": ".gif", "application/zip": ".zip",
    "application/pkcs7-signature": ".p7s", "application/x-pkcs7-signature": ".p7s",
    "application/pkcs7-mime": ".p7m", "application/x-pkcs7-mime": ".p7m",
    "application/pgp-signature": ".asc", "application/pgp-encrypted": ".asc",
    "application/pgp-keys": ".asc", "application/ms-tnef": ".dat",
}
_TYPES_BY_EXTENSION = {
    ".pdf": "application/pdf", ".txt": "text/plain", ".htm": "text/html", ".html": "text/html",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
    ".zip": "application/zip", ".eml": "message/rfc822", ".ics": "text/calendar",
    ".csv": "text/csv", ".rtf": "application/rtf", ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
_SMIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_ENCRYPTED_NOTICE = ("[This message is encrypted and cannot be shown here. "
                     "The encrypted content is attached.]")
_SIGNED_NOTICE = ("[This message is S/MIME signed in a form that cannot be shown here. "
                  "The signed content is attached.]")
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
    data = _strip_envelope(raw)
    # A NUL or other control byte inside a header value does not make a mail binary: the raw
    # bytes are kept as they are, and the decoded values (headers.one_line) show a space.
    if not _HEADER_LINE.match(data):
        return Unparseable("This is not an Internet mail message: it does not start with "
                           "mail headers.")

    defects: list[str] = []
    data, msg, structured = _parse_tree(data, defects)
    head_end = rawparts.body_start(data, 0, len(data))
    raw_headers = [(headers.raw_bytes(k).decode("ascii", "replace"), headers.raw_bytes(v))
                   for k, v in msg.raw_items()]
    if not raw_headers:
        return Unparseable("This is not an Internet mail message: it has no mail headers.")
    fallback = headers.header_fallback_codec([v for _, v in raw_headers],
                                             lambda: _charset_hint(msg))
    if fallback is not None:
        defects.append(f"charset: raw 8-bit headers read as {fallback}")
    fields = _Fields(raw_headers, fallback, defects)

    sender = fields.sender()
    if sender is None:
        # The envelope sender (MAIL FROM), which parsing does not see, may still name one:
        # plan.sender_of takes it; one with neither is quarantined (plan.missing_sender).
        defects.append("header from: none; no From, Sender, Reply-To or Return-Path "
                       "names a sender")

    walk = _Walk(data, msg, defects, fallback, payloads={})
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


def _strip_envelope(raw: bytes) -> bytes:
    """Drop an mbox "From " line and blank lines before the headers."""
    m = _MBOX_FROM_LINE.match(raw)
    data = raw[m.end():] if m else raw
    m = _LEADING_BLANK_LINES.match(data)
    return data[m.end():] if m else data


def _parse_tree(data: bytes, defects: list[str]) -> tuple[bytes, Message, bool]:
    """The bytes parsed and their compat32 tree, and whether its parts were separated.

    The stdlib parser's time grows with lines x nesting depth, and it recurses once per
    level, so a message declaring very many boundaries is parsed headers-only, the body then
    being one text. A header block that the parser cut short at a junk line is repaired.
    """
    parser = BytesParser(policy=compat32)
    boundaries = data.lower().count(b"boundary")
    headers_only = boundaries > MAX_BOUNDARIES
    if headers_only:
        defects.append(f"mime: {boundaries} boundaries (limit {MAX_BOUNDARIES}); "
                       "the parts were not separated")
    try:
        msg = parser.parsebytes(data, headersonly=headers_only)
    except Exception as exc:  # RecursionError on absurd nesting, or a parser bug
        defects.append(f"mime: structure unreadable ({type(exc).__name__}); "
                       "the parts were not separated")
        return data, parser.parsebytes(data, headersonly=True), False
    if any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in msg.defects):
        repaired = _repair_header_block(data)
        if repaired is not None:
            try:
                again = parser.parsebytes(repaired, headersonly=headers_only)
            except Exception:
                again = None
            if again is not None and len(again) > len(msg):
                defects.append("header: junk lines in the header block repaired")
                return repaired, again, not headers_only
    return data, msg, not headers_only


def _repair_header_block(data: bytes) -> bytes | None:
    """Obsolete `Name  :` spacing removed, junk lines before a real header made continuations.

    Old and broken mailers write `Subject  : x` (RFC 5322 obs-syntax) or leave a stray line
    among the headers; the stdlib parser then takes everything after it for the body.
    """
    end = rawparts.body_start(data, 0, len(data))
    block = _SPACED_HEADER_NAME.sub(rb"\1:", data[:end])
    lines = [m.group(0) for m in _LINES.finditer(block) if m.group(0)]
    changed = block != data[:end]
    for i in range(1, len(lines)):
        line = lines[i]
        if line[:1] in (b" ", b"\t") or _HEADER_LINE.match(line) or not line.strip():
            continue
        j = i + 1
        while j < len(lines) and lines[j][:1] in (b" ", b"\t"):  # skip its continuations
            j += 1
        if j < len(lines) and _COMMON_HEADER.match(lines[j]):
            lines[i] = b" " + line
            changed = True
    return b"".join(lines) + data[end:] if changed else None


def _charset_hint(msg: Message) -> str | None:
    """The first charset a text part declares: clients write raw headers in the same one."""
    stack = [msg]
    seen = 0
    while stack and seen < 50:
        part = stack.pop(0)
        seen += 1
        try:
            if part.is_multipart():
                if part.get_content_maintype() == "multipart":
                    stack.extend(p for p in part.get_payload() if isinstance(p, Message))
                continue
            charset = part.get_content_charset()
        except Exception:
            continue
        if charset and charsets.codec_for(charset) not in (None, "ascii"):
            return charset
    return None


class _Fields:
    """The top-level header fields, decoded on demand."""

    def __init__(self, raw_headers: list[tuple[str, bytes]], fallback: str | None,
                 defects: list[str]) -> None:
        self.raw = raw_headers
        self.fallback = fallback
        self.defects = defects
        self._addresses: dict[str, list[Address]] = {}
        self._decoded: dict[int, tuple[str, bool]] = {}  # id(raw value) -> (text, was cut)
        self._by_name: dict[str, list[bytes]] = {}
        for key, value in raw_headers:
            self._by_name.setdefault(key.lower(), []).append(value)

    def first(self, name: str) -> bytes | None:
        values = self._by_name.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[bytes]:
        return self._by_name.get(name, [])

    def text(self, name: str) -> str:
        """The value with 8-bit bytes decoded, encoded words left alone, one line."""
        value = self.first(name)
        if value is None:
            return ""
        return headers.one_line(headers.to_text(value[:headers.MAX_RAW_VALUE_BYTES],
                                                self.fallback))

    def decoded(self, value: bytes) -> tuple[str, bool]:
        """A value fully decoded and capped (cached: Subject is also in the header list)."""
        key = id(value)
        if key not in self._decoded:
            self._decoded[key] = headers.cap(headers.decode_value(value, self.fallback,
                                                                  self.defects))
        return self._decoded[key]

    def subject(self) -> str:
        value = self.first("subject")
        return "" if value is None else self.decoded(value)[0]

    def message_id(self) -> str | None:
        return headers.extract_message_id(self.text("message-id"))

    def ids(self, name: str) -> list[str]:
        ids, cut = headers.cap_ids(headers.extract_ids(self.text(name)))
        if cut:
            self.defects.append(f"header {name}: more than {headers.MAX_IDS} ids, "
                                "the middle ones dropped")
        return ids

    def addresses(self, name: str) -> list[Address]:
        if name in self._addresses:
            return self._addresses[name]
        found: list[Address] = []
        for value in self.all(name):
            text = headers.to_text(value[:headers.MAX_RAW_VALUE_BYTES], self.fallback)
            for display, address in headers.parse_addresses(text, self.fallback,
                                                            self.defects):
                found.append(Address(display, address))
        self._addresses[name] = found[:1000]
        return self._addresses[name]

    def sender(self) -> Address | None:
        """From; when it holds no address, Sender, Reply-To or Return-Path (noted).

        A bounce's `From: MAILER-DAEMON <>` or `From: <>` (the null sender) is a sender too:
        the mail is readable and the loop and bounce checks need it. None only when no such
        header says anything.
        """
        from_named = next(iter(self.addresses("from")), None)
        for name in ("from", "sender", "reply-to", "return-path"):
            candidates = [a for a in self.addresses(name) if a.address]
            if candidates:
                found = next((a for a in candidates if "@" in a.address), candidates[0])
                if name != "from":
                    self.defects.append(f"header from: no address, the sender is "
                                        f"taken from {name.title()}")
                    if from_named is not None:
                        found = Address(from_named.name, found.address)
                return found
        if from_named is not None:
            return from_named
        if any(b"<>" in b"".join(value.split()) for name in ("from", "sender", "return-path")
               for value in self.all(name)):
            self.defects.append("header from: the null sender <>")
            return Address("", "")
        return None

    def decoded_headers(self) -> tuple[tuple[str, str], ...]:
        result: list[tuple[str, str]] = []
        for key, value in self.raw[:MAX_HEADERS]:
            decoded, cut = self.decoded(value)
            name = headers.one_line(key)[:200]
            if cut:
                self.defects.append(f"header {name}: value cut to {headers.MAX_VALUE_CHARS} "
                                    "characters")
            result.append((name, decoded))
        if len(self.raw) > MAX_HEADERS:
            self.defects.append(f"headers: {len(self.raw)} headers, only the first "
                                f"{MAX_HEADERS} kept")
        return tuple(result)


@dataclass
class _Walk:
    """One pass over the MIME tree: text segments out, attachments and notes collected."""

    data: bytes
    root: Message
    defects: list[str]
    fallback: str | None               # charset of raw 8-bit header bytes (file names)
    attachments: list[AttachmentInfo] = field(default_factory=list)
    parts: int = 0
    has_html: bool = False
    crypto: str | None = None          # "encrypted" or "signed" (S/MIME opaque)
    fallback_segments: list[tuple[str, str]] = field(default_factory=list)  # TNEF bodies
    payloads: dict[str, bytes] | None = None   # part -> bytes, when asked for (forwarding)

    def body(self, structured: bool) -> tuple[str, bool]:
        """The readable text of the whole message and whether it had an HTML body."""
        if structured:
            segments = self._walk(self.root, (), 0)
        else:
            segments = self._leaf(self.root, (), "text/plain")
        text = self._assemble(segments) or self._assemble(self.fallback_segments)
        if not text and self.crypto == "encrypted":
            text = _ENCRYPTED_NOTICE
        elif not text and self.crypto == "signed":
            text = _SIGNED_NOTICE
        if len(text) > MAX_TEXT_CHARS:
            text = text[:MAX_TEXT_CHARS]
            self.defects.append(f"body: text cut to {MAX_TEXT_CHARS} characters")
        return text, self.has_html

    def _assemble(self, segments: list[tuple[str, str]]) -> str:
        """Plain segments joined when there are any; else the HTML ones converted."""
        plain = [t for kind, t in segments if kind == "plain" and t.strip()]
        if not plain:
            plain = [_clean_text(html_to_text(self._capped_html(t)))
                     for kind, t in segments if kind == "html" and t.strip()]
        return "\n\n".join(t.strip("\n") for t in plain if t.strip())

    def _capped_html(self, markup: str) -> str:
        if len(markup) > MAX_HTML_CHARS:
            self.defects.append(f"body: HTML cut to {MAX_HTML_CHARS} characters")
            return markup[:MAX_HTML_CHARS]
        return markup

    def _walk(self, part: Message, path: tuple[int, ...], depth: int) -> list[tuple[str, str]]:
        self.parts += 1
        if self.parts > MAX_PARTS:
            if self.parts == MAX_PARTS + 1:
                self.defects.append(f"mime: more than {MAX_PARTS} parts, the rest skipped")
            return []
        self._note_defects(part, path)
        ctype = _content_type(part)
        if not part.is_multipart():
            return self._leaf(part, path, ctype)
        if not ctype.startswith("multipart/"):  # message/rfc822, delivery-status: kept whole
            self._add_message_part(part, path, ctype)
            return []
        if depth >= MAX_DEPTH:
            self.defects.append(f"mime: nested deeper than {MAX_DEPTH} levels at part "
                                f"{_path_name(path)}, inner parts skipped")
            return []
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype == "multipart/encrypted":
            self.crypto = "encrypted"
        options = [self._walk(child, path + (i,), depth + 1) for i, child in enumerate(children)]
        if ctype == "multipart/alternative":
            return _choose_alternative(options)
        return [segment for option in options for segment in option]

    def _leaf(self, part: Message, path: tuple[int, ...], ctype: str) -> list[tuple[str, str]]:
        name = _path_name(path)
        if ctype.startswith("multipart/"):  # no usable boundary: its text is the body
            ctype = "text/plain"
        filename = self._filename(part)
        disposition = _disposition(part)
        data = _payload_bytes(part)
        if ctype in _TNEF_TYPES or (filename or "").lower() == "winmail.dat":
            self._add_tnef(part, name, ctype, filename, data)
            return []
        first = not any(path)
        attached = disposition == "attachment" or (
            bool(filename) and disposition != "inline" and not first)
        if ctype in ("text/plain", "text/html") and not attached:
            text = self._decode_text(part, data, name, ctype == "text/html")
            if ctype == "text/html":
                self.has_html = True
                return [("html", text)]
            return [("plain", _clean_text(text))]
        if ctype in _SMIME_TYPES:
            smime_type = _param(part, "smime-type").lower()
            if smime_type == "signed-data":
                self.crypto = self.crypto or "signed"
            elif smime_type not in ("certs-only", "compressed-data"):
                self.crypto = "encrypted"
        elif ctype == "application/pgp-encrypted":
            self.crypto = "encrypted"
        self._add(filename, ctype, data, name, inline=disposition == "inline")
        return []

    def _decode_text(self, part: Message, data: bytes, name: str, is_html: bool) -> str:
        limit = 2 * MAX_HTML_CHARS if is_html else 4 * MAX_TEXT_CHARS  # bytes; UTF-8 is wider
        if len(data) > limit:
            data = data[:limit]
            self.defects.append(f"body: part {name} cut to {limit} bytes before decoding")
        try:
            declared = part.get_content_charset()
        except Exception:
            declared = None
        if is_html and declared is None and not data.isascii():
            declared = meta_charset(data)
        decoded = charsets.decode_bytes(data, declared)
        if decoded.note:
            self.defects.append(f"{decoded.note} (part {name})")
        return decoded.text

    def _filename(self, part: Message) -> str | None:
        """`filename` of Content-Disposition, else `name` of Content-Type, decoded."""
        raw = {key.lower(): value for key, value in reversed(list(part.raw_items()))
               if isinstance(value, str)}
        for header, name in (("content-disposition", "filename"), ("content-type", "name")):
            value = raw.get(header)
            if value:
                found = headers.param(value[:headers.MAX_RAW_VALUE_BYTES], name, self.fallback)
                if found:
                    return found
        return None

    def _add(self, filename: str | None, ctype: str, data: bytes, name: str,
             inline: bool = False) -> None:
        if self.payloads is not None:
            self.payloads[name] = data
        self.attachments.append(AttachmentInfo(
            filename=_safe_filename(filename) or f"part-{name}{_EXTENSIONS.get(ctype, '.bin')}",
            content_type=ctype[:255],
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            part=name,
            inline=inline,
        ))

    def _add_message_part(self, part: Message, path: tuple[int, ...], ctype: str) -> None:
        """A whole message/* part as one attachment, its bytes as received."""
        region = rawparts.locate_body(self.data, self.root, path)
        if region is not None:
            data = self.data[region[0]:region[1]]
        else:
            data = _generate(part)
        filename = None
        if ctype in ("message/rfc822", "message/global"):  # named after what the mail is about
            subject = _inner_subject(part)
            filename = f"{subject}.eml" if subject else None
        self._add(filename or self._filename(part), ctype, data, _path_name(path))

    def _add_tnef(self, part: Message, name: str, ctype: str, filename: str | None,
                  data: bytes) -> None:
        content = unpack_tnef(data) if data else None
        if content is None or not content.files:  # keep the container: nothing is lost
            if content is None:
                self.defects.append(f"tnef: winmail.dat at part {name} could not be unpacked")
            self._add(filename or "winmail.dat", ctype, data, name)
            if content is None:
                return
        for i, (inner_name, blob) in enumerate(content.files, start=1):
            safe = _safe_filename(headers.one_line(inner_name)) or f"part-{name}-{i}.bin"
            ext = safe[safe.rfind("."):].lower() if "." in safe else ""
            if self.payloads is not None:
                self.payloads[f"{name}:{i}"] = blob
            self.attachments.append(AttachmentInfo(
                filename=safe,
                content_type=_TYPES_BY_EXTENSION.get(ext, "application/octet-stream"),
                size=len(blob),
                sha256=hashlib.sha256(blob).hexdigest(),
                part=f"{name}:{i}",
            ))
        if content.text:
            self.fallback_segments.append(("plain", _clean_text(content.text)))
        elif content.html:
            self.fallback_segments.append(("html", content.html))

    def _note_defects(self, part: Message, path: tuple[int, ...]) -> None:
        for defect in getattr(part, "defects", ())[:10]:
            self.defects.append(f"mime: {type(defect).__name__} (part {_path_name(path)})")


def _choose_alternative(options: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """The plain-text alternative if it has text, else the richest HTML one, else any."""
    for option in options:
        if any(kind == "plain" and text.strip() for kind, text in option):
            return option
    for option in reversed(options):
        if any(kind == "html" and text.strip() for kind, text in option):
            return option
    return next((option for option in options if option), [])


def _path_name(path: tuple[int, ...]) -> str:
    return ".".join(str(i + 1) for i in path) or "1"


def _content_type(part: Message) -> str:
    try:  # a control byte in the header would reach the attachment's content_type column
        return headers.one_line(part.get_content_type())[:255]
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message) -> str:
    try:
        return part.get_content_disposition() or ""
    except Exception:
        return ""


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    return value if isinstance(value, str) else ""


def _payload_bytes(part: Message) -> bytes:
    """The decoded payload (base64, quoted-printable, uuencode) of a leaf part."""
    # The stored text (8-bit bytes as surrogates); get_payload() without decode would re-decode
    # it lossily with the declared charset, and can raise on a hostile charset name.
    stored = getattr(part, "_payload", None)
    if isinstance(stored, str) and _BARE_CR.search(stored):
        # Classic Mac line ends: the stdlib's quoted-printable decoder stops at "=\r".
        try:
            cte = str(part.get("content-transfer-encoding", "")).strip().lower()
        except Exception:
            cte = ""
        if cte == "quoted-printable":
            lf = stored.replace("\r\n", "\n").replace("\r", "\n")
            return binascii.a2b_qp(lf.encode("utf-8", "surrogateescape"))
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    if isinstance(stored, str):
        return stored.encode("utf-8", "surrogateescape")
    return b""


def _generate(part: Message) -> bytes:
    """Bytes of a message/* part re-generated from the tree (when the raw split disagrees)."""
    payload = part.get_payload()
    buffer = io.BytesIO()
    try:
        generator = BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0, policy=compat32)
        for index, inner in enumerate(payload if isinstance(payload, list) else []):
            if index:
                buffer.write(b"\n")
            generator.flatten(inner, linesep="\n")
    except Exception:  # deep nesting (RecursionError) or odd contents
        return b""
    return buffer.getvalue()


def _inner_subject(part: Message) -> str | None:
    payload = part.get_payload()
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], Message):
        return None
    for key, value in payload[0].raw_items():
        if key.lower() == "subject":
            subject = headers.decode_value(headers.raw_bytes(value), None)
            return headers.cap(subject, 150)[0] or None
    return None


def _safe_filename(name: str | None) -> str | None:
    """A file name without path components, control or shell-hostile characters."""
    if not name:
        return None
    name = headers.one_line(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    if not name:
        return None
    if len(name) > MAX_FILENAME_CHARS:
        dot = name.rfind(".")
        ext = name[dot:] if 0 < dot and len(name) - dot <= 16 else ""
        name = name[:MAX_FILENAME_CHARS - len(ext)] + ext
    return name


def _clean_text(text: str) -> str:
    """Unix line ends, no control characters but tab and newline, no lone surrogates."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _BODY_CONTROL.sub("", text)
    return _SURROGATE.sub("\ufffd", text)


def _content_hash(fields: _Fields, body: bytes) -> str:
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
