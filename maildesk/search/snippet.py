"""Snippets: a short piece of the original text around the first words a query matched, those
words located, so that the caller marks them as it likes (bold at a terminal, `[[`...`]]` in
plain text, offsets in JSON). Pure: works on strings with maildesk.analyzer.

A word matches when one of its stems is a query term (the analyzer decides, as for the index:
`принтера` matches the term of `принтер`). The snippet starts a little before the first
matching word (at a word boundary), runs to about WIDTH characters, has its whitespace
collapsed to single spaces and `…` where it was cut. Text without any matching word gives its
beginning, unmarked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from maildesk.analyzer import tokens

WIDTH = 160        # characters of snippet, about
BEFORE = 40        # of them before the first matching word, about
ELLIPSIS = "…"
# How far into a text the first match is looked for (the index reads no further either).
SCAN = 100_000
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Snippet:
    text: str
    spans: tuple[tuple[int, int], ...] = ()     # [start, end) of each matching word in `text`

    def marked(self, open: str = "[[", close: str = "]]") -> str:
        """The text with each matching word between `open` and `close`."""
        out, at = [], 0
        for start, end in self.spans:
            out += [self.text[at:start], open, self.text[start:end], close]
            at = end
        out.append(self.text[at:])
        return "".join(out)

    @property
    def words(self) -> list[str]:
        return [self.text[s:e] for s, e in self.spans]


@lru_cache(maxsize=256)
def _prefixes(terms: frozenset[str]) -> re.Pattern[str]:
    """What the words of `terms` start with, lower-cased: a stem is a prefix of the word it
    comes from (Russian always; English but for `y` -> `i`, contractions of `not` and a few
    irregular words)."""
    prefixes = sorted({t[:-1] if len(t) > 2 and t.endswith("i") else t for t in terms},
                      key=len, reverse=True)
    alternatives = list(map(re.escape, prefixes))
    if "not" in terms:                       # doesn't, can't, cannot (maildesk.analyzer)
        alternatives.append(r"[^\W_]+n['’ʼ]t\b|cannot")
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alternatives) + ")")


def _matching(text: str, terms: frozenset[str], start: int = 0,
              end: int | None = None) -> Iterator[tuple[int, int]]:
    """Where the words of `text[start:end]` matching `terms` stand. Only the words a stem
    starts are analysed; when lower-casing moved the offsets (a rare letter), every word is."""
    end = len(text) if end is None else end
    lowered = text[start:end].lower().replace("ё", "е")
    if len(lowered) != end - start:
        yield from ((s, e) for s, e, stems in tokens(text, start, end)
                    if terms.intersection(stems))
        return
    for found in _prefixes(terms).finditer(lowered):
        for s, e, stems in tokens(text, start + found.start(), end):
            if terms.intersection(stems):
                yield s, e
            break       # only the word the stem starts


def _first_match(text: str, terms: frozenset[str]) -> tuple[int, int] | None:
    """Where the first word of `text` matching `terms` stands (in the first SCAN characters)."""
    return next(_matching(text, terms, 0, min(len(text), SCAN)), None)


def _cut_before(flat: str, pos: int, before: int, *, cut: bool) -> tuple[int, bool]:
    """Where the snippet starts: up to `before` characters ahead of the match, at a word."""
    if pos <= before:
        return 0, cut
    start = pos - before
    space = flat.find(" ", start, pos)
    return (space + 1 if space >= 0 else start), True


def _cut_after(flat: str, pos: int, start: int, width: int, *, cut: bool) -> tuple[int, bool]:
    """Where the snippet ends: at most `width` characters from its start, at a word."""
    if len(flat) - start <= width:
        return len(flat), cut
    space = flat.rfind(" ", pos + 1, start + width)
    return (space if space > 0 else start + width), True


def make_snippet(text: str, terms: Iterable[str], *, width: int = WIDTH,
                 before: int = BEFORE) -> Snippet:
    """The piece of `text` around its first word matching `terms`, with the matching words
    of the piece located."""
    wanted = frozenset(terms)
    match = _first_match(text, wanted) if wanted and text else None
    at = match[0] if match else 0
    # Whitespace is collapsed on a stretch around the match, then the snippet cut from it.
    low, high = max(0, at - 4 * before), at + 4 * width
    lead = _SPACE.sub(" ", text[low:at])
    flat = lead + _SPACE.sub(" ", text[at:high])
    pos = len(lead)                                   # the match, in `flat`
    start, cut_start = _cut_before(flat, pos, before, cut=low > 0)
    end, cut_end = _cut_after(flat, pos, start, width, cut=high < len(text))
    while start < end and flat[start] == " ":
        start += 1
    while end > start and flat[end - 1] == " ":
        end -= 1
    prefix = ELLIPSIS if cut_start and start < end else ""
    shift = len(prefix) - start
    spans = tuple((s + shift, e + shift) for s, e in _matching(flat, wanted, start, end)) \
        if match else ()
    return Snippet(prefix + flat[start:end] + (ELLIPSIS if cut_end else ""), spans)


def matches(text: str, terms: Iterable[str]) -> bool:
    """Whether any word of `text` matches `terms`."""
    wanted = frozenset(terms)
    return bool(wanted and text) and _first_match(text, wanted) is not None


__all__ = ["BEFORE", "ELLIPSIS", "Snippet", "WIDTH", "make_snippet", "matches"]
