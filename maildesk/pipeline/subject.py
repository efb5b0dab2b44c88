"""Subject lines: reply/forward prefixes in many languages, the ticket tag, the comparison key.

Pure. The key is what threading compares: no prefixes, no tag, folded case and spaces, so
`RE: AW: Ответ: [MD-12] Принтер` and `принтер` meet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Outlook, Thunderbird, Gmail and mobile clients in the languages our users write.
REPLY_PREFIXES = (
    "re", "res", "aw", "antw", "antwort", "sv", "odp", "r", "rif", "ynt", "vá", "atb",
    "ответ", "отв", "на", "відп", "відповідь", "απ", "σχετ", "回复", "回覆", "答复",
)
# "vs" is Norwegian/Danish "videresendt" (forward); Finnish Outlook uses it for replies, but
# a forward only opens a linked ticket, so the safe reading is forward.
FORWARD_PREFIXES = (
    "fwd", "fw", "wg", "tr", "vb", "vs", "vl", "doorst", "rv", "enc", "pd", "i", "inoltro",
    "ilt", "továbbítás", "πρθ", "пересл", "переслано", "перес", "fwd_", "转发", "轉寄",
)

# The word may end in a dot: Outlook (ru), The Bat! and Mail.ru write "Отв.:", "Пересл.:", "Fwd.:".
_PREFIX = re.compile(
    r"^\s*(?P<word>[^\W\d_]{1,12}_?)\.?\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*", re.UNICODE)
_BRACKET_NOISE = re.compile(r"^\s*\[(?:ext|external|extern|внешн\w*|spam)\]\s*", re.I)
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class SubjectInfo:
    """What a subject says about threading."""

    is_reply: bool           # outermost prefix is a reply prefix (Re:, AW:, Ответ: ...)
    is_forward: bool         # outermost prefix is a forward prefix (Fwd:, WG:, Пересл: ...)
    tag_numbers: tuple[int, ...]  # ticket numbers named by our tag, in order of appearance
    key: str                 # comparison key: no prefixes, no tag, case and spaces folded
    clean: str               # the subject without our tags, spaces tidied (for a new ticket)


def tag_pattern(tag: str) -> re.Pattern[str]:
    """`[MD-1042]` (also `[MD 1042]`, `[MD#1042]`, any case) for the configured tag."""
    return re.compile(rf"\[\s*{re.escape(tag)}\s*[-#: ]?\s*(\d{{1,18}})\s*\]", re.I)


def format_tag(tag: str, number: int) -> str:
    return f"[{tag}-{number}]"


def strip_prefixes(subject: str) -> tuple[str, list[str]]:
    """Remove leading reply/forward prefixes; return the rest and the prefixes, outermost first."""
    found: list[str] = []
    rest = subject
    while True:
        noise = _BRACKET_NOISE.match(rest)
        if noise:
            rest = rest[noise.end():]
            continue
        m = _PREFIX.match(rest)
        if not m:
            break
        word = m.group("word").casefold()
        if word not in REPLY_PREFIXES and word not in FORWARD_PREFIXES:
            break
        found.append(word)
        rest = rest[m.end():]
    return rest, found


def analyse_subject(subject: str, tag: str) -> SubjectInfo:
    pattern = tag_pattern(tag)
    numbers = tuple(int(n) for n in pattern.findall(subject))
    without_tags = pattern.sub(" ", subject)
    clean = _WS.sub(" ", without_tags).strip()
    # Prefixes can sit on either side of a tag ("Re: [MD-1] Re: x"), so strip after removing it.
    rest, prefixes = strip_prefixes(clean)
    # A reply to a forward keeps more prefixes inside: strip all of them for the key.
    key = _WS.sub(" ", rest).strip().casefold()
    outer = prefixes[0] if prefixes else None
    return SubjectInfo(
        is_reply=outer in REPLY_PREFIXES and outer not in FORWARD_PREFIXES,
        is_forward=outer in FORWARD_PREFIXES,
        tag_numbers=numbers,
        key=key[:255],
        clean=clean,
    )


def subject_key(subject: str, tag: str) -> str:
    return analyse_subject(subject, tag).key
