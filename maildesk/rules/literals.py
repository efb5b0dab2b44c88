"""The literals a regex cannot match without: the `contains` triggers of a regex on subject or
body, lower-cased as the automaton sees the text (so `(?i)(ИНН|INN) ?[0-9]{10}` is tried only on
a body containing 'инн' or 'inn')."""

from __future__ import annotations

import itertools
from typing import Any

# `regex_literals(pattern)` gives strings of which every match of the pattern contains at least
# one, written as they appear in the *lower-cased* text the `contains` automaton scans, or None
# when it can prove nothing useful. It reads the pattern as `re` parses it (re._parser, Python
# 3.11+): runs of LITERAL in a concatenation (groups flattened into it), a group repeated at least
# once, and an alternation when every branch has literals of its own (the union). Classes, `.`,
# optional or `*` parts, backreferences, lookarounds, conditionals and anything unknown break a
# run and contribute nothing.
#
# Case. The text is lowered with str.lower(), which lowers character by character (full mapping)
# except 'Σ', which becomes 'ς' at the end of a word and 'σ' elsewhere. A character the pattern
# must match exactly (case-sensitive, or uncased) therefore appears in the lowered text as its
# lower(), 'Σ' as either sigma. Under IGNORECASE, `re` matches a text character t against a cased
# literal c when t's simple lowercase is c's or one of c's extra case equivalents (re's
# _EXTRA_CASES: 'ı' for 'i', 'ſ' for 's', 'ᲂ' for 'о', 'ᲄ'/'ᲅ' for 'т', ...), and str.lower()
# writes that simple lowercase, except for 'İ' (full: 'i' + U+0307) and 'Σ' (context). So each
# literal character stands for a small set of lowered forms and a run for their product (`(?i)код`
# -> 'код', 'кᲂд', 'коᲁ', 'кᲂᲁ'), kept to at most _MAX_VARIANTS strings. tests/unit/rules check
# these assumptions against every character of Unicode planes 0 and 1 (all the cased ones).

try:
    import _sre
    import re._parser as _sre_parse
    from re._compiler import _EXTRA_CASES

    _IGNORECASE, _LOCALE = _sre_parse.SRE_FLAG_IGNORECASE, _sre_parse.SRE_FLAG_LOCALE
    _C = _sre_parse   # the opcode constants (LITERAL, SUBPATTERN, ...) are re-exported there
    _REPEATS = (_C.MAX_REPEAT, _C.MIN_REPEAT, _C.POSSESSIVE_REPEAT)
except (ImportError, AttributeError):      # another Python: regexes simply get no trigger
    _sre_parse = None  # type: ignore[assignment]

# A literal shorter than this is no trigger: two letters ('re', '0x', 'на') occur in most mails,
# so the rule would be tried almost always anyway, and the automaton would report every one of
# their many occurrences in a long body (each a Python-level step of the scan).
_MIN_LITERAL = 3
_MAX_VARIANTS = 64           # lowered spellings of one literal (products of case variants)
_FULL_LOWER = {"i": ("i\u0307",), "σ": ("ς",)}   # 'İ'.lower(); 'Σ' at the end of a word


def lowered_forms(code: int, icase: bool) -> frozenset[str]:
    """How a text character the pattern character `code` matches looks once lowered."""
    ch = chr(code)
    if not icase or not _sre.unicode_iscased(code):
        # Matched exactly. (An uncased character lowers to itself; 'İ' to two characters.)
        return frozenset({"σ", "ς"}) if ch == "Σ" else frozenset({ch.lower()})
    lo = _sre.unicode_tolower(code)
    forms: set[str] = set()
    for x in (lo, *_EXTRA_CASES.get(lo, ())):
        forms.add(chr(x))
        forms.update(_FULL_LOWER.get(chr(x), ()))
    return frozenset(forms)


class _Literals:
    """Walks one concatenation, collecting the literal sets every match must contain one of."""

    def __init__(self) -> None:
        self.run: list[frozenset[str]] = []     # forms of each character of the current run
        self.variants = 1
        self.found: list[frozenset[str]] = []

    def flush(self) -> None:
        if self.run:
            self.found.append(frozenset("".join(p) for p in itertools.product(*self.run)))
            self.run, self.variants = [], 1

    def add(self, forms: frozenset[str]) -> None:
        """One more character of the current run; past _MAX_VARIANTS spellings, a new run."""
        if self.variants * len(forms) > _MAX_VARIANTS:
            self.flush()
        self.run.append(forms)
        self.variants *= len(forms)

    def walk(self, items: Any, icase: bool) -> None:
        for op, av in items:
            if op is _C.LITERAL:
                self.add(lowered_forms(av, icase))
            elif op is _C.SUBPATTERN:        # a group: its contents are part of the sequence
                _group, add, remove, sub = av
                if (add | remove) & _LOCALE:
                    self.flush()
                    continue
                self.walk(sub, bool((icase or add & _IGNORECASE) and not remove & _IGNORECASE))
            elif op is _C.ATOMIC_GROUP:
                self.walk(av, icase)
            elif op is _C.BRANCH:            # each branch needs its own, any one of them will do
                self.flush()
                branches = [_best(b, icase) for b in av[1]]
                if all(branches):
                    self.found.append(frozenset().union(*branches))   # type: ignore[arg-type]
            elif op in _REPEATS:             # at least once: what the repeated part needs
                self.flush()
                low, _high, sub = av
                if low >= 1 and (needed := _best(sub, icase)):
                    self.found.append(needed)
            else:          # a class, '.', an anchor, a lookaround, a backreference...: unknown
                self.flush()


def _necessary(items: Any, icase: bool) -> list[frozenset[str]]:
    """Every literal set the concatenation `items` found: a match contains one of each."""
    walker = _Literals()
    walker.walk(items, icase)
    walker.flush()
    return walker.found


def pick(found: list[frozenset[str]]) -> frozenset[str] | None:
    """The most selective set: the longest shortest string, then the fewest strings; None if
    none is at least _MIN_LITERAL long."""
    good = [f for f in found if min(map(len, f)) >= _MIN_LITERAL]
    return max(good, key=lambda f: (min(map(len, f)), -len(f)), default=None)


def _best(items: Any, icase: bool) -> frozenset[str] | None:
    return pick(_necessary(items, icase))


def literal_sets(pattern: str) -> list[frozenset[str]]:
    """Lowered literal sets of which every match of `pattern` contains one string of each
    (empty: nothing proven)."""
    if _sre_parse is None:
        return []
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:     # noqa: BLE001 - it compiled; a parser quirk only costs the trigger
        return []
    flags = parsed.state.flags
    if flags & _LOCALE:
        return []
    return _necessary(parsed, bool(flags & _IGNORECASE))


def regex_literals(pattern: str) -> frozenset[str] | None:
    """The trigger words of a regex: lowered strings of which every match contains one (None:
    nothing proven, or nothing long enough to be worth a trigger)."""
    return pick(literal_sets(pattern))
