"""Raw message bytes -> the stdlib compat32 tree, with a broken header block repaired. Pure.

The parse is bounded (a message declaring too many boundaries is read headers-only), and a
header block that the stdlib parser cut short at a junk line or an obsolete `Name  :` header
is repaired and parsed again. What was done goes into the caller's defect notes.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from maildesk.pipeline import rawparts

MAX_BOUNDARIES = 64            # more declared boundaries: do not let the parser build the tree

_MBOX_FROM_LINE = re.compile(rb"From (?![ \t]*:)[^\r\n]*(?:\r\n|\r|\n)")
_LEADING_BLANK_LINES = re.compile(rb"(?:[ \t]*(?:\r\n|\r|\n))+")
HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_SPACED_HEADER_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.M)
_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")
# Names that make a line certainly a header, so the junk line before it is header junk too.
_COMMON_HEADER = re.compile(
    rb"(?i)(?:received|from|to|cc|date|subject|message-id|mime-version|content-[a-z-]+|"
    rb"return-path|delivered-to|reply-to|references|in-reply-to|sender|x-[a-z0-9-]+|"
    rb"dkim-signature|authentication-results|list-[a-z-]+)[ \t]*:")


def strip_envelope(raw: bytes) -> bytes:
    """Drop an mbox "From " line and blank lines before the headers."""
    m = _MBOX_FROM_LINE.match(raw)
    data = raw[m.end():] if m else raw
    m = _LEADING_BLANK_LINES.match(data)
    return data[m.end():] if m else data


def parse_tree(data: bytes, defects: list[str]) -> tuple[bytes, Message, bool]:
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
        repaired = repair_header_block(data)
        if repaired is not None:
            try:
                again = parser.parsebytes(repaired, headersonly=headers_only)
            except Exception:
                again = None
            if again is not None and len(again) > len(msg):
                defects.append("header: junk lines in the header block repaired")
                return repaired, again, not headers_only
    return data, msg, not headers_only


def repair_header_block(data: bytes) -> bytes | None:
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
        if line[:1] in (b" ", b"\t") or HEADER_LINE.match(line) or not line.strip():
            continue
        j = i + 1
        while j < len(lines) and lines[j][:1] in (b" ", b"\t"):  # skip its continuations
            j += 1
        if j < len(lines) and _COMMON_HEADER.match(lines[j]):
            lines[i] = b" " + line
            changed = True
    return b"".join(lines) + data[end:] if changed else None
