"""Raw header values -> clean one-line text, message ids, addresses and dates.

Pure. Works on the raw bytes of a value (as the parser stored them), never on the email
package's own header objects, whose decoding raises on broken input. Every value that leaves
this module is one line without control characters, so it cannot inject headers downstream.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import decode_params, getaddresses, parsedate_to_datetime, unquote

from maildesk.pipeline import charsets

MAX_VALUE_CHARS = 4096          # a decoded value longer than this is cut
MAX_RAW_VALUE_BYTES = 64 * 1024  # cut before decoding, so a 200 KiB header stays cheap
MAX_ADDRESS_CHARS = 32 * 1024   # of one address header: a few hundred recipients
MAX_IDS = 200                    # References kept: the first (thread root) and the newest

_UNFOLD = re.compile(rb"\r\n(?=[ \t])|\n(?=[ \t])|\r(?=[ \t])")
# One replacement space for a run of control characters (with the blanks around it). Patterns
# here run on hostile input: a run may only start where the previous character cannot belong
# to it, and quantifiers are possessive or bounded, so no pattern goes quadratic.
_CONTROL_RUN = re.compile(
    "(?<! ) *+[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff][\x00-\x20\x7f-\x9f\u2028\u2029\ud800-\udfff]*")
_ENCODED_WORD = re.compile(r"=\?([^?\s*]{1,60})(?:\*[^?\s]{0,20})?\?([QqBb])\?(.{0,1000}?)\?=")
_SURROGATES = re.compile("[\ud800-\udfff]")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_BRACKETED_ID = re.compile(r"<\s*([^<>\s\x00-\x1f\x7f]{1,998})\s*>")
_COMMENT = re.compile(r"\([^()]*\)")
_BLANKS = re.compile(r"\s+")
_SPACED_COLON = re.compile(r"(?<!\s)\s*+:\s*")
_LOOSE_TOKEN = re.compile(r"[^\s<>,;\"'()\[\]\x00-\x1f\x7f]{1,998}")
_ANGLE_ADDRESS = re.compile(r"<([^<>\s@]{1,256}@[^<>\s]{1,256})>")
_BARE_ADDRESS = re.compile(r'(?<![^\s<>,;:"()])[^\s<>,;:"()@]{1,256}@[^\s<>,;:"()@]{1,256}')
# `Name <a@b>`, `"Name" <a@b>`, `<a@b>` or `a@b` alone: no need for the slow general parser.
_SIMPLE_MAILBOX = re.compile(
    r'\s*(?:"([^"\\]*)"\s*|([^"<>,;:@()\\\[\]]*))<([^<>\s,;:"()\\\[\]]+)>\s*'
    r'|\s*([^<>\s,;:"()\\\[\]]+@[^<>\s,;:"()\\\[\]]+)\s*')
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")
_LANGUAGE_TAG = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")


def raw_bytes(value: object) -> bytes:
    """The original bytes of a value the compat32 parser stored (8-bit bytes as surrogates)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def unfold(raw: bytes) -> bytes:
    return _UNFOLD.sub(b"", raw)


def one_line(text: str) -> str:
    """Control characters (CR, LF, TAB, NUL, C1, lone surrogates) become single spaces."""
    if text.isprintable():  # the common case, checked in C
        return text.strip()
    return _CONTROL_RUN.sub(" ", text).strip()


def cap(text: str, limit: int = MAX_VALUE_CHARS) -> tuple[str, bool]:
    return (text[:limit].rstrip(), True) if len(text) > limit else (text, False)


def header_fallback_codec(raw_values: list[bytes], hint: Callable[[], str | None]) -> str | None:
    """One charset for all raw 8-bit header values that are not UTF-8, guessed from them all.

    A client that sends raw 8-bit headers uses one charset for all of them, usually the body's;
    guessing from every value at once sees more letters than one short subject does.
    """
    legacy = [v for v in raw_values if not v.isascii() and _utf8(unfold(v)) is None]
    if not legacy:
        return None
    sample = b" ".join(legacy)[:16384]
    codec = charsets.codec_for(hint())
    if codec is not None and codec != "ascii":
        text = sample.decode(codec, "replace")
        if text.count("\ufffd") <= len(text) // 50:  # the body's charset fits, a few slips aside
            if not (codec == "cp1252" and charsets.looks_non_latin(sample)):
                return codec
    guessed = charsets.guess(sample, "header").charset
    # Header text around the 8-bit bytes is ASCII; a detector's UTF-16 or EBCDIC cannot be right.
    return guessed if charsets.ascii_compatible(guessed) else "cp1252"


def _utf8(raw: bytes) -> str | None:
    return charsets.try_utf8(raw) or charsets.mostly_utf8(raw)


def to_text(raw: bytes, fallback_codec: str | None) -> str:
    """Raw 8-bit value -> str: UTF-8 (RFC 6532) first, else the message's header charset."""
    raw = unfold(raw)
    if raw.isascii():
        return raw.decode("ascii")
    text = _utf8(raw)
    if text is not None:
        return text
    if fallback_codec is None:
        return charsets.decode_header_bytes(raw, None).text
    return raw.decode(fallback_codec, "replace")


def decode_words(text: str, notes: list[str] | None = None) -> str:
    """Decode RFC 2047 encoded words, forgiving the usual breakage.

    Whitespace between adjacent encoded words is dropped; adjacent words in one charset are
    joined as bytes before decoding (encoders split multi-byte characters across words); bad
    base64 padding is repaired; an unknown or wrong charset is guessed.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # charset and bytes of the words so far
    pos = 0
    for m in _ENCODED_WORD.finditer(text):
        between = text[pos:m.start()]
        data = _word_bytes(m.group(2), m.group(3))
        if data is None:  # undecodable: keep it as it was written
            continue
        label = m.group(1).lower()
        if pending is not None and not between.strip():
            if pending[0] == label:
                pending[1].extend(data)
            else:
                out.append(_decode_word(pending, notes))
                pending = (label, bytearray(data))
        else:
            if pending is not None:
                out.append(_decode_word(pending, notes))
            out.append(between)
            pending = (label, bytearray(data))
        pos = m.end()
    if pending is not None:
        out.append(_decode_word(pending, notes))
    out.append(text[pos:])
    return "".join(out)


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    try:
        data = payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return None
    try:
        if encoding in "Qq":
            return binascii.a2b_qp(data, header=True)
        data = _B64_JUNK.sub(b"", data)
        if len(data) % 4 == 1:  # a stray character: no base64 length leaves one over
            data = data[:-1]
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def _decode_word(pending: tuple[str, bytearray], notes: list[str] | None) -> str:
    label, data = pending
    codec = charsets.codec_for(label)
    if codec is not None and codec != "ascii":
        text = charsets.try_decode(bytes(data), codec)
        if text is not None:
            return text
    decoded = charsets.decode_bytes(bytes(data), label)
    if decoded.note and notes is not None:
        notes.append(f"header {decoded.note}")
    return decoded.text


def decode_value(raw: bytes, fallback_codec: str | None,
                 notes: list[str] | None = None) -> str:
    """A header value, fully decoded, one line (not yet capped)."""
    if len(raw) > MAX_RAW_VALUE_BYTES:
        raw = raw[:MAX_RAW_VALUE_BYTES]
    if raw.isascii() and b"=?" not in raw:  # most headers: folding becomes one space below
        return one_line(raw.decode("ascii"))
    return one_line(decode_words(to_text(raw, fallback_codec), notes))


def param(raw_value: str, name: str, fallback_codec: str | None) -> str | None:
    """A MIME parameter (`filename`, `name`) from a raw header value, fully decoded.

    RFC 2231 (continuations, charset'lang'%XX), RFC 2047 words inside quotes (not allowed,
    written by Outlook and Gmail) and raw 8-bit bytes are all handled. The stdlib getter would
    turn raw 8-bit bytes into replacement characters before we could see them.
    """
    pairs: list[tuple[str, str]] = []
    for piece in _split_params(raw_value)[1:]:
        key, sep, value = piece.partition("=")
        if sep:
            pairs.append((key.strip().lower(), value.strip()))
    if not any(key == name or key.startswith(name + "*") for key, _ in pairs):
        return None
    try:
        decoded = decode_params([("", "")] + pairs)[1:]
    except Exception:  # odd continuation numbering and the like
        return None
    for key, value in decoded:
        if key != name:
            continue
        if isinstance(value, tuple):  # RFC 2231 extended value: bytes in a named charset
            charset, _language, text = value
            data = bytes(unquote(text), "raw-unicode-escape")
            return one_line(charsets.decode_bytes(data, charset or None).text)
        text = unquote(value)
        if _SURROGATES.search(text):
            text = to_text(text.encode("utf-8", "surrogateescape"), fallback_codec)
        return one_line(decode_words(text))
    return None


def _split_params(value: str) -> list[str]:
    """`a; b="x;y"; c` -> ["a", 'b="x;y"', "c"]: semicolons inside quotes do not split."""
    if '"' not in value:
        return value.split(";")
    pieces: list[str] = []
    start = 0
    quoted = False
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            pieces.append(value[start:i])
            start = i + 1
        i += 1
    pieces.append(value[start:])
    return pieces


# --- message ids -------------------------------------------------------------------------

def extract_ids(text: str) -> list[str]:
    """Message ids in order, without brackets; bare `x@y` tokens when nothing is bracketed."""
    ids = _BRACKETED_ID.findall(text)
    if not ids and "<" in text:  # obsolete syntax: comments and blanks inside the brackets
        ids = _BRACKETED_ID.findall(_BLANKS.sub("", _COMMENT.sub("", text)))
    if not ids:
        ids = [t for t in _LOOSE_TOKEN.findall(text) if "@" in t.strip("@")]
    return ids


def extract_message_id(text: str) -> str | None:
    """The first id; a lone bracket-less token is accepted as the id (some mailers omit <>)."""
    ids = extract_ids(text)
    if ids:
        return ids[0]
    tokens = _LOOSE_TOKEN.findall(text)
    return tokens[0] if len(tokens) == 1 else None


def cap_ids(ids: list[str]) -> tuple[list[str], bool]:
    """Keep the thread root and the newest ids when a References header is absurdly long."""
    if len(ids) <= MAX_IDS:
        return ids, False
    return ids[:1] + ids[-(MAX_IDS - 1):], True


# --- addresses ----------------------------------------------------------------------------

def parse_addresses(text: str, fallback_codec: str | None = None,
                    notes: list[str] | None = None) -> list[tuple[str, str]]:
    """(name, address) pairs of an address header (8-bit decoded, encoded words not yet).

    Splitting happens before RFC 2047 decoding, so a decoded comma or quote in a name cannot
    split it. When broken quoting makes getaddresses lose addresses, a plain scan takes over.
    """
    text = one_line(text[:MAX_ADDRESS_CHARS])
    if not text:
        return []
    # An encoded word may hide `,` `:` `<` `@` (decoded later); the address parser must see an
    # opaque atom instead, so each word is swapped for a placeholder and swapped back after.
    words: list[str] = []
    if "=?" in text:
        text = _hide_encoded_words(text, words)
    result: list[tuple[str, str]] = []
    for name, address in _mailbox_pairs(text, notes):
        if words:
            name = _restore_words(name, words)
            address = _restore_words(address, words)
        name = one_line(decode_words(name, notes)).strip("\"' ")
        address = one_line(address).strip("<> ").lower()
        if name or address:
            result.append((cap(name, 256)[0], cap(address, 320)[0]))
    return result


def _hide_encoded_words(text: str, words: list[str]) -> str:
    """Each encoded word swapped for a placeholder holding its index in `words`."""
    def stash(m: re.Match[str]) -> str:
        words.append(m.group(0))
        return f"\ue000{len(words) - 1}\ue001"
    return _ENCODED_WORD.sub(stash, text)


def _restore_words(value: str, words: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda m: words[int(m.group(1))], value)


def _mailbox_pairs(text: str, notes: list[str] | None) -> list[tuple[str, str]]:
    """(name, address) pairs as written: one plain mailbox by a quick pattern, else by
    getaddresses, else by a scan when broken quoting made getaddresses lose addresses."""
    simple = _SIMPLE_MAILBOX.fullmatch(text)
    if simple is not None:
        pairs = [(simple.group(1) or simple.group(2) or "", simple.group(3) or simple.group(4))]
    else:
        try:
            pairs = getaddresses([text])
        except Exception:  # getaddresses is not hardened against every input in every version
            pairs = []
    found = sum(1 for _, a in pairs if "@" in a)
    if found < text.count("@") and found < len(scanned := _scan_addresses(text)):
        pairs = scanned
        if notes is not None:
            notes.append("address: broken quoting, addresses found by scanning")
    return pairs


def _scan_addresses(text: str) -> list[tuple[str, str]]:
    """`<a@b>` with the words before it as the name, and bare `a@b`: for broken quoting."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    for m in _ANGLE_ADDRESS.finditer(text):
        before = text[pos:m.start()]
        cut = max(before.rfind(","), before.rfind(";"))
        pairs.extend(("", bare) for bare in _BARE_ADDRESS.findall(before[:cut + 1]))
        pairs.append((before[cut + 1:].strip(" \"'")[-256:], m.group(1)))
        pos = m.end()
    pairs.extend(("", bare) for bare in _BARE_ADDRESS.findall(text[pos:]))
    return pairs


# --- dates and languages --------------------------------------------------------------------

def parse_date(text: str) -> datetime | None:
    """RFC 5322 date -> aware UTC datetime; None for anything unreadable (never raises)."""
    if not text.strip():
        return None
    value = _parse_date(text)
    if value is None and "(" in text:  # obsolete syntax: `09(comment):  55  :  06`
        value = _parse_date(_SPACED_COLON.sub(":", _COMMENT.sub("", text)))
    if value is None:
        return None
    try:
        if value.tzinfo is None:  # "-0000": the zone is unknown, the time is UTC
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _parse_date(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def first_language(text: str) -> str | None:
    """First tag of Content-Language, lower-case (`ru`, `en-us`); None if absent or junk."""
    first = text.split(",")[0].strip().lower()
    return first if _LANGUAGE_TAG.fullmatch(first) else None
