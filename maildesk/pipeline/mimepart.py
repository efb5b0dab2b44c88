"""Reading one MIME part of a compat32 tree without raising. Pure.

Hostile headers make the stdlib's accessors raise (a control byte, a broken parameter, an
unknown charset name): each reader here returns a safe default instead. Also the cleaning of
what a part gives: its text, its file name.
"""

from __future__ import annotations

import binascii
import io
import re
from email.generator import BytesGenerator
from email.message import Message
from email.policy import compat32

from maildesk.pipeline import headers

MAX_FILENAME_CHARS = 200

_BODY_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BARE_CR = re.compile("\r(?!\n)")
_UNSAFE_FILENAME = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')


def part_content_type(part: Message) -> str:
    try:  # a control byte in the header would reach the attachment's content_type column
        return headers.one_line(part.get_content_type())[:255]
    except Exception:
        return "application/octet-stream"


def part_disposition(part: Message) -> str:
    try:
        return part.get_content_disposition() or ""
    except Exception:
        return ""


def part_param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    return value if isinstance(value, str) else ""


def payload_bytes(part: Message) -> bytes:
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


def generated_bytes(part: Message) -> bytes:
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


def inner_subject(part: Message) -> str | None:
    payload = part.get_payload()
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], Message):
        return None
    for key, value in payload[0].raw_items():
        if key.lower() == "subject":
            subject = headers.decode_value(headers.raw_bytes(value), None)
            return headers.cap(subject, 150)[0] or None
    return None


def safe_filename(name: str | None) -> str | None:
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


def clean_text(text: str) -> str:
    """Unix line ends, no control characters but tab and newline, no lone surrogates."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _BODY_CONTROL.sub("", text)
    return _SURROGATE.sub("\ufffd", text)
