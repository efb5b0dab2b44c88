"""One text analyzer for every search: the index (SQLite FTS5 and PostgreSQL alike), the
knowledge-base suggestions and `#search`. Pure; imports nothing of maildesk.

Words are cut at anything that is not a letter or digit, lower-cased (`ё` read as `е`, the text
NFKC-normalised first, so decomposed `й`, full-width or superscript characters read as the
plain ones), and reduced to their Snowball stem by their own script: Cyrillic words with the
Russian stemmer, Latin ones with the English stemmer, so a mixed mail ("не печатает HP LaserJet
printers") is analysed word by word and `принтера`, `принтеры` and `принтер` meet, as do
`printers` and `printer`. The engines only ever see stems (letters and digits, one space
between), so both give the same results. Common function words are dropped, but never
negations (`не`, `нет`, `ни`, `not`, `no`, `without`, `без`): "не печатает" and "печатает" are
different complaints. English contractions keep their negation (`doesn't` -> `does not`,
`can't` and `cannot` -> `can not`); other clitics (`printer's`, `we're`) lose the part after
the apostrophe. Words longer than MAX_WORD characters (hashes, base64, URLs cut to pieces)
are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple

import Stemmer

# A word: letters and digits, possibly joined by apostrophes (don't, printer's, o'neil).
_WORD = re.compile(r"[^\W_]+(?:['’ʼ][^\W_]+)*")
_CYRILLIC = re.compile(r"[а-я]")
# Longer tokens are hashes, base64 or URLs cut to pieces: nobody searches for them.
MAX_WORD = 40

NEGATIONS = frozenset({"не", "нет", "ни", "без", "not", "no", "never", "without", "nor"})

_RU_STOP = frozenset("""
и в во на с со к ко о об обо от до по за из изо у для а но да или либо же ли бы то это этот
эта эти тот та те так как что чтобы чем при про над под перед после через между я мы ты вы
он она оно они меня мне мной нас нам нами тебя тебе вас вам вами его ему им ним нему её ее ей
ней их ими мой моя моё мое мои наш наша наше наши ваш ваша ваше ваши свой своя своё свое свои
себя себе был была было были быть есть уже ещё еще вот тут там где когда если также тоже
""".replace("ё", "е").split()) - NEGATIONS
_EN_STOP = frozenset("""
a an the and or but if then else of to in on at by for with from into onto over under about
as is are was were be been being am it its this that these those there here i me my we us our
you your he him his she her they them their do does did have has had will would shall should
can could may might must so than too very just also which who whom what when where how
""".split()) - NEGATIONS
STOP_WORDS = _RU_STOP | _EN_STOP

# `n't` contractions whose first part is not a word of its own, and words that are two.
_CONTRACTED = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}
_COMPOUND = {"cannot": ("can", "not")}
# What follows an apostrophe and says nothing on its own: printer's, we're, I'll, I've, I'd, I'm.
_CLITICS = frozenset({"s", "re", "ll", "ve", "d", "m", "t"})


@lru_cache(maxsize=None)
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(language)


def _normal(text: str) -> str:
    """Lower case, `ё` as `е`, typographic apostrophes as `'`; NFKC first unless ASCII."""
    if not text.isascii():   # (NFKC would make `№3` the word `no3`)
        text = unicodedata.normalize("NFKC", text.replace("№", " ")).replace("’", "'") \
            .replace("ʼ", "'")
    return text.lower().replace("ё", "е")


def _pieces(word: str) -> list[str]:
    """A word written with apostrophes as the words it stands for."""
    if word.endswith("n't") and len(word) > 3:
        base = word[:-3]
        return [_CONTRACTED.get(base, base), "not"]
    first, *rest = word.split("'")
    return [first, *(p for p in rest if p not in _CLITICS)]


def _split(found: list[str]) -> list[str]:
    out: list[str] = []
    for w in found:
        if "'" in w:
            out.extend(p for p in _pieces(w) if len(p) <= MAX_WORD)
        elif w in _COMPOUND:
            out.extend(_COMPOUND[w])
        elif len(w) <= MAX_WORD:
            out.append(w)
    return out


def words(text: str) -> list[str]:
    """The words of `text` as written, lower-cased, `ё` as `е` (contractions spelled out)."""
    return _split(_WORD.findall(_normal(text)))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The stem of one lower-cased word, by its script."""
    if _CYRILLIC.search(word):
        return _stemmer("russian").stemWord(word)
    if word.isascii() and word.isalpha():
        return _stemmer("english").stemWord(word)
    return word   # digits, codes, other scripts: as they are


def analyze(text: str) -> list[str]:
    """The stems of `text` in order, function words left out (negations kept)."""
    stop = STOP_WORDS
    return [stem(w) for w in words(text) if w not in stop]


# Characters of one text that are indexed for search (migration 0010 back-fills with the same
# bound): a pasted log or a base64 blob says nothing more.
MAX_INDEXED = 100_000


class Analysed(NamedTuple):
    """What the parse child works out of a mail beside parsing it (pipeline/isolate.py), for
    the subject and text it was worked out from: their search stems and the language the
    mail reads in (pipeline/routing.py detect_language)."""

    subject: str
    text: str
    stems: str
    language: str

    def of(self, subject: str, text: str) -> Analysed | None:
        """Itself when it was worked out from this subject and text, else None."""
        return self if self.subject == subject and self.text == text else None


def index_stems(*texts: str | None) -> str:
    """The stems of `texts`, in order, space-joined: what the search engines index."""
    return " ".join([s for t in texts if t for s in analyze(t[:MAX_INDEXED])])


def terms(query: str) -> list[str]:
    """A query's distinct stems, in the order written."""
    return list(dict.fromkeys(analyze(query)))


def tokens(text: str, start: int = 0,
           end: int | None = None) -> Iterator[tuple[int, int, list[str]]]:
    """The words of `text[start:end]` where they stand: (start, end, their stems) in the
    original string, as `analyze` reads them (a function word has no stems; `doesn't` has
    ["not"]). For marking the words a query matched in the original text."""
    stop = STOP_WORDS
    for m in _WORD.finditer(text, start, len(text) if end is None else end):
        found = m.group()
        w = found.lower().replace("ё", "е")
        if w.isalnum() and len(w) == len(found) \
                and (found.isascii() or unicodedata.is_normalized("NFKC", found)):
            stems = [] if w in stop or len(w) > MAX_WORD else [stem(w)]   # one plain word
        else:
            stems = [stem(w) for w in words(found) if w not in stop]
        yield m.start(), m.end(), stems


__all__ = ["MAX_WORD", "NEGATIONS", "STOP_WORDS", "analyze", "stem", "terms", "tokens", "words"]
