"""One pass over a message's MIME tree: the readable text, the attachments, notes. Pure.

Part paths follow IMAP BODY section numbers: "1" is the body of a single-part message, "2.1"
the first child of the second part of a multipart. A file unpacked from a winmail.dat at part
"2" gets "2:1", "2:2"... (the container's path, a colon, its index inside the container).
The walk is bounded (parts, nesting, text and HTML sizes); what was cut goes into `defects`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email.message import Message

from maildesk.pipeline import charsets, headers, rawparts
from maildesk.pipeline.html import html_to_text, meta_charset
from maildesk.pipeline.mimepart import (clean_text, generated_bytes, inner_subject,
                                        part_content_type, part_disposition, part_param,
                                        payload_bytes, safe_filename)
from maildesk.pipeline.parsed import AttachmentInfo
from maildesk.pipeline.tnef import unpack_tnef

MAX_PARTS = 1000               # MIME parts walked; the rest is skipped (and noted)
MAX_DEPTH = 30                 # multipart nesting walked
MAX_TEXT_CHARS = 1_000_000     # body text kept
MAX_HTML_CHARS = 2_000_000     # HTML given to the converter

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

@dataclass
class MimeWalk:
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
            plain = [clean_text(html_to_text(self._capped_html(t)))
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
        ctype = part_content_type(part)
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
        disposition = part_disposition(part)
        data = payload_bytes(part)
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
            return [("plain", clean_text(text))]
        self._note_crypto(part, ctype)
        self._add(filename, ctype, data, name, inline=disposition == "inline")
        return []

    def _note_crypto(self, part: Message, ctype: str) -> None:
        """An S/MIME or PGP part that cannot be shown: a notice stands for an empty body."""
        if ctype in _SMIME_TYPES:
            smime_type = part_param(part, "smime-type").lower()
            if smime_type == "signed-data":
                self.crypto = self.crypto or "signed"
            elif smime_type not in ("certs-only", "compressed-data"):
                self.crypto = "encrypted"
        elif ctype == "application/pgp-encrypted":
            self.crypto = "encrypted"

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
            filename=safe_filename(filename) or f"part-{name}{_EXTENSIONS.get(ctype, '.bin')}",
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
            data = generated_bytes(part)
        filename = None
        if ctype in ("message/rfc822", "message/global"):  # named after what the mail is about
            subject = inner_subject(part)
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
            safe = safe_filename(headers.one_line(inner_name)) or f"part-{name}-{i}.bin"
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
            self.fallback_segments.append(("plain", clean_text(content.text)))
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
