"""Bytes of a mail part or header -> text, trusting the declared charset only as far as it holds.

Pure. Order: the declared charset (through the superset Windows clients really mean), then
UTF-8, then a Russian-aware guess (KOI8-R vs CP1251 by letter frequencies, because short Russian
text defeats generic detectors), then charset-normalizer, then CP1252 with replacements. The
expensive steps run only when the cheap ones fail, so ASCII and well-labelled mail stay fast.
"""

from __future__ import annotations

import codecs
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from charset_normalizer import from_bytes

# Labels clients write and what they actually send: the Windows superset of the ISO set.
_SUPERSETS = {
    "iso8859-1": "cp1252", "latin-1": "cp1252", "iso8859-9": "cp1254",
    "gb2312": "gb18030", "gbk": "gb18030", "euc-kr": "cp949", "shift-jis": "cp932",
    "big5": "big5hkscs", "tis-620": "cp874", "iso8859-11": "cp874",
}
# Labels that mean "we do not know" (or name a codec that is not a text charset we accept).
_UNKNOWN = {
    "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "default", "none", "charset",
    "unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs", "oem",
}
# Codecs whose ASCII bytes do not mean ASCII characters (so the ASCII fast path is wrong).
_NOT_ASCII_COMPATIBLE = ("utf-16", "utf-32", "utf-7", "iso2022", "hz", "cp037", "cp273",
                         "cp424", "cp500", "cp875", "cp1026", "cp1140")
# One byte per character: any byte string decodes, so a wrong label shows only in the result.
_SINGLE_BYTE = ("cp125", "iso8859", "latin", "koi8", "mac-", "cp437", "cp85", "cp86",
                "cp874", "kz1048", "ptcp154", "hp-roman8", "cp1252", "ascii")
_CYRILLIC_CODECS = ("cp1251", "koi8-r", "koi8-u", "iso8859-5", "cp866", "mac-cyrillic")

_HIGH_BYTES = bytes(range(0x80, 0x100))
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SAMPLE = 16 * 1024          # bytes looked at when guessing: thousands of letters decide it
_DETECTOR_SAMPLE = 32 * 1024  # charset-normalizer is slow, give it less
_DETECTOR_MIN_HIGH = 64       # fewer 8-bit bytes than this in Latin text: not worth detecting

# Russian letter frequencies (per cent); the score is the mean log-frequency of the letters.
_RU_FREQ = {
    "о": 10.97, "е": 8.45, "а": 8.01, "и": 7.35, "н": 6.70, "т": 6.26, "с": 5.47, "р": 4.73,
    "в": 4.54, "л": 4.40, "к": 3.49, "м": 3.21, "д": 2.98, "п": 2.81, "у": 2.62, "я": 2.01,
    "ы": 1.90, "ь": 1.74, "г": 1.70, "з": 1.65, "б": 1.59, "ч": 1.44, "й": 1.21, "х": 0.97,
    "ж": 0.94, "ш": 0.73, "ю": 0.64, "ц": 0.48, "щ": 0.36, "э": 0.32, "ф": 0.26, "ъ": 0.04,
    "ё": 0.10, "і": 0.5, "ї": 0.2, "є": 0.2, "ґ": 0.05, "ў": 0.1,
}
_RU_WEIGHT = {c: math.log(f / 100) for c, f in _RU_FREQ.items()}
_RU_WEIGHT.update({c.upper(): w for c, w in list(_RU_WEIGHT.items())})
_RU_UPPER = frozenset(c.upper() for c in _RU_FREQ)
# Non-letters a real CP1251 text uses in its upper half; they neither help nor hurt.
_NEUTRAL = frozenset("«»—–№“”„…’‘•·\u00a0©®°±")
_CYRILLIC_MIN_SCORE = -3.9   # natural Russian scores about -3.0; mis-decoded text below -4.2


@dataclass(frozen=True)
class Decoded:
    text: str
    charset: str          # the codec actually used
    note: str | None      # why it is not the declared one (for the defects list), or None


@lru_cache(maxsize=256)
def codec_for(label: str | None) -> str | None:
    """The Python codec to use for a MIME charset label; None when unknown or not a charset."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if not name or len(name) > 40 or name in _UNKNOWN:
        return None
    for candidate in (name, name.removeprefix("x-"), name.replace("win-", "cp").replace(
            "windows-", "cp"), name.replace("_", "-")):
        try:
            canonical = codecs.lookup(candidate).name
        except (LookupError, ValueError):
            continue
        canonical = canonical.replace("_", "-")
        if canonical.replace("-", "_") in _UNKNOWN or canonical in _UNKNOWN:
            return None
        if not getattr(codecs.lookup(canonical), "_is_text_encoding", True):
            return None
        return _SUPERSETS.get(canonical, canonical)
    return None


def ascii_compatible(codec: str) -> bool:
    return not codec.startswith(_NOT_ASCII_COMPATIBLE)


def _single_byte(codec: str) -> bool:
    return codec.startswith(_SINGLE_BYTE)


def decode_bytes(data: bytes, declared: str | None) -> Decoded:
    """Decode a body part: the declared charset when it fits, else the best guess."""
    codec = codec_for(declared)
    if data.isascii() and (codec is None or ascii_compatible(codec)):
        if b"\x1b" in data and codec is None:
            jp = try_decode(data, "iso2022-jp-2")  # undeclared ISO-2022-JP is 7-bit with escapes
            if jp is not None:
                return Decoded(jp, "iso2022-jp-2", "charset: undeclared, ISO-2022-JP found")
        return Decoded(data.decode("ascii"), "ascii", None)
    if codec == "ascii":
        why = f"charset: declared {declared}, text is 8-bit"
    elif codec is not None:
        decoded = _decode_declared(data, codec, declared or codec)
        if decoded is not None:
            return decoded
        why = f"charset: text is not valid {declared}"
    elif declared and declared.strip().strip("\"'"):
        why = f"charset: unknown {declared.strip()[:40]!r}"
    else:
        why = "charset: undeclared 8-bit text"
    return guess(data, why)


def _decode_declared(data: bytes, codec: str, label: str) -> Decoded | None:
    """The declared charset's reading, corrected when it is clearly mislabelled; None if unusable."""
    if _single_byte(codec):
        # Legacy 8-bit text is almost never valid UTF-8 by accident: valid UTF-8 means UTF-8.
        utf8 = try_decode(data, "utf-8")
        if utf8 is not None:
            return Decoded(utf8, "utf-8", f"charset: declared {label}, text is utf-8")
        if codec == "cp1252" and looks_non_latin(data):
            cyrillic = _guess_cyrillic(data)
            if cyrillic is not None:
                return Decoded(cyrillic[1], cyrillic[0],
                               f"charset: declared {label}, text is {cyrillic[0]}")
        if codec in _CYRILLIC_CODECS:
            return _check_cyrillic(data, codec, label)
    text = try_decode(data, codec)
    if text is not None:
        return Decoded(text, codec, None)
    if codec == "cp1252":  # five bytes undefined in CP1252; ISO-8859-1 takes them all
        return Decoded(data.decode("latin-1"), "latin-1", None)
    if codec.startswith("iso2022-jp"):
        for variant in ("iso2022-jp-2", "iso2022-jp-ext"):
            text = try_decode(data, variant)
            if text is not None:
                return Decoded(text, variant, None)
    if not _single_byte(codec):
        # A few broken bytes in otherwise good UTF-8/GB18030/...: keep the label, mark the holes.
        text = data.decode(codec, "replace")
        bad = text.count("\ufffd")
        if bad <= max(4, len(text) // 200):
            return Decoded(text, codec, f"charset: {bad} invalid byte(s) in {label} replaced")
    return None


def _check_cyrillic(data: bytes, codec: str, label: str) -> Decoded:
    """A declared Cyrillic codec, unless another Cyrillic reading is far more plausible."""
    histogram = Counter(data[:_SAMPLE])
    best, best_score = _best_cyrillic(histogram)
    if best != codec and best_score >= _CYRILLIC_MIN_SCORE:
        declared_score = _cyrillic_score(histogram, codec) if codec in _BYTE_CLASSES else -99.0
        if best_score > declared_score + 0.8:
            return Decoded(data.decode(best, "replace"), best,
                           f"charset: declared {label}, text is {best}")
    return Decoded(data.decode(codec, "replace"), codec, None)


def decode_header_bytes(data: bytes, hint: str | None) -> Decoded:
    """Decode raw 8-bit header bytes: UTF-8 (RFC 6532), the hinted charset, else a guess."""
    if data.isascii():
        return Decoded(data.decode("ascii"), "ascii", None)
    text = try_utf8(data) or mostly_utf8(data)
    if text is not None:
        return Decoded(text, "utf-8", None)
    codec = codec_for(hint)
    if codec is not None and ascii_compatible(codec):
        text = try_decode(data, codec)
        if text is not None:
            return Decoded(text, codec, f"charset: raw 8-bit header read as {codec}")
    return guess(data, "charset: raw 8-bit header")


def guess(data: bytes, why: str) -> Decoded:
    """Best reading of bytes whose charset is unknown or wrong; the note says what was guessed."""
    text = try_decode(data, "utf-8")
    if text is not None:
        return Decoded(text, "utf-8", f"{why}, read as utf-8")
    text = mostly_utf8(data)
    if text is not None:
        return Decoded(text, "utf-8", f"{why}, read as utf-8 with invalid bytes replaced")
    non_latin = looks_non_latin(data)
    if non_latin:
        cyrillic = _guess_cyrillic(data)
        if cyrillic is not None:
            return Decoded(cyrillic[1], cyrillic[0], f"{why}, guessed {cyrillic[0]}")
    # Latin text with a few accents: too little signal for a detector (it answers Urdu for
    # "Grüße"), and CP1252 is by far the most common such charset.
    if non_latin or _high_count(data) >= _DETECTOR_MIN_HIGH:
        codec = _detect(data)
        if codec is not None:
            return Decoded(data.decode(codec, "replace"), codec, f"{why}, guessed {codec}")
    return Decoded(data.decode("cp1252", "replace"), "cp1252", f"{why}, read as cp1252")


def try_utf8(data: bytes) -> str | None:
    """Strict UTF-8, except that a character cut off at the very end (a header or file name
    truncated by its sender) becomes one replacement character."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[:exc.start].decode("utf-8") + "\ufffd"
        return None


def mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few stray bytes (a mangled header, a cut character): the replaced text,
    when the valid multi-byte characters clearly outnumber the bad bytes; else None."""
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if good >= 2 and bad * 4 <= good else None


def try_decode(data: bytes, codec: str) -> str | None:
    """Strict decoding, or None when the bytes are not that charset."""
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _high_count(data: bytes) -> int:
    sample = data[:_SAMPLE]
    return len(sample) - len(sample.translate(None, _HIGH_BYTES))


def looks_non_latin(data: bytes) -> bool:
    """Most letters are 8-bit: a non-Latin script, not Western text with a few accents."""
    sample = data[:_SAMPLE]
    high = _high_count(sample)
    letters = len(sample) - len(sample.translate(None, _ASCII_LETTERS))
    return high >= 2 and high >= 0.3 * (high + letters)


def _byte_classes(codec: str) -> tuple[tuple[float | None, bool, bool], ...]:
    """For each 8-bit byte in `codec`: (letter weight or None, upper-case letter, neutral)."""
    table = []
    for byte in range(0x80, 0x100):
        ch = bytes([byte]).decode(codec, "replace")
        table.append((_RU_WEIGHT.get(ch), ch in _RU_UPPER, ch in _NEUTRAL))
    return tuple(table)


_CYRILLIC_CANDIDATES = ("cp1251", "koi8-r", "iso8859-5", "cp866", "mac-cyrillic", "koi8-u")
_BYTE_CLASSES = {codec: _byte_classes(codec) for codec in _CYRILLIC_CANDIDATES}


def _cyrillic_score(histogram: Counter[int], codec: str) -> float:
    """Mean log-frequency of the Russian letters, minus penalties for junk and SHOUTING.

    Works on a byte histogram and a per-codec table, so scoring five codecs costs one pass.
    """
    classes = _BYTE_CLASSES[codec]
    letters = upper = other = 0
    total = 0.0
    for byte, n in histogram.items():
        if byte < 0x80:
            continue
        weight, is_upper, neutral = classes[byte - 0x80]
        if weight is not None:
            letters += n
            total += weight * n
            if is_upper:
                upper += n
        elif not neutral:
            other += n
    if not letters:
        return -99.0
    score = total / letters - 3.0 * other / (letters + other)
    if upper > letters / 2:  # KOI8-R read as CP1251 (and back) swaps the case of every letter
        score -= 0.5
    return score


def _guess_cyrillic(data: bytes) -> tuple[str, str, float] | None:
    """(codec, text, score) of the most Russian-looking reading, if any is plausible."""
    best = _best_cyrillic(Counter(data[:_SAMPLE]))
    if best[1] < _CYRILLIC_MIN_SCORE:
        return None
    return best[0], data.decode(best[0], "replace"), best[1]


def _best_cyrillic(histogram: Counter[int]) -> tuple[str, float]:
    scores = [(codec, _cyrillic_score(histogram, codec)) for codec in _CYRILLIC_CANDIDATES]
    return max(scores, key=lambda item: item[1])


def _detect(data: bytes) -> str | None:
    """charset-normalizer's answer on a sample, as a codec we can use; None if it has none."""
    try:
        match = from_bytes(data[:_DETECTOR_SAMPLE]).best()
    except Exception:  # the detector is third-party code fed hostile bytes
        return None
    if match is None:
        return None
    return codec_for(match.encoding)
