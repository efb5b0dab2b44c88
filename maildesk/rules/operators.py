"""The operators of a field test (`subject: {contains: ...}`), one small compile function each,
by family: presence (exists), text matching (contains, regex), addresses (domain; equals and in
on an address field) and value sets (equals and in on any other field).

Each returns a Compiled: the predicate, and where the operator allows, its triggers (see
maildesk.rules.ruleset). The predicates read the field through `values`, or straight from the
facts for the fields the index knows (addresses, subject and body, language), as the index
does."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from maildesk.rules.facts import ADDRESS_FIELDS, MailFacts, domains_of
from maildesk.rules.literals import literal_sets, pick
from maildesk.rules.predicates import ALWAYS, Compiled, Trigger

OPERATORS = ("contains", "equals", "regex", "domain", "exists", "in")
INDEXED_TEXTS = ("subject", "body")     # the fields with a `contains` automaton

# The predicate of a regex first checks, with `in`, the literals of at least 2 characters and at
# most 4 spellings (say '0x' in `code\s+0x[0-9a-f]+`): a scan of the text for a substring costs
# far less than a search that fails at every position.
_PREFILTER_MIN, _PREFILTER_SPELLINGS = 2, 4

Path = tuple[Any, ...]
Values = Callable[[MailFacts], tuple[str, ...]]


class Operands(Protocol):
    """What the operators need of the compiler: reporting a mistake, reading an argument."""

    def fail(self, path: Path, message: str) -> Compiled: ...

    def strings(self, arg: Any, path: Path, what: str) -> list[str] | None: ...

    def list_file(self, spec: dict[str, Any], path: Path) -> list[str] | None: ...


@dataclass(frozen=True)
class Field:
    """The field an operator tests: its name, and how to read its values from the facts."""

    name: str
    values: Values      # in their original case

    @property
    def is_address(self) -> bool:
        return self.name in ADDRESS_FIELDS


def compile_operator(c: Operands, fld: Field, op: str, arg: Any, path: Path) -> Compiled:
    """One operator (already known to be one of OPERATORS) with its argument."""
    on_arg = _ON_ARGUMENT.get(op)
    if on_arg is not None:
        return on_arg(c, fld, arg, path)
    if op == "in" and isinstance(arg, dict):
        items = c.list_file(arg, path)
    else:
        items = c.strings(arg, path, op)
    if items is None:
        return ALWAYS
    return _ON_STRINGS[op](c, fld, [x.strip().lower() for x in items], path)


# -- presence -----------------------------------------------------------------------------------

def _exists(c: Operands, fld: Field, arg: Any, path: Path) -> Compiled:
    if not isinstance(arg, bool):
        return c.fail(path, "exists takes true or false")
    values = fld.values
    # present and not empty: an empty subject or header value does not exist
    return Compiled(lambda facts: any(v.strip() for v in values(facts)) == arg, None)


# -- text matching ------------------------------------------------------------------------------

def _contains(c: Operands, fld: Field, lowered: list[str], path: Path) -> Compiled:
    words = [w for w in lowered if w]
    if len(words) < len(lowered):
        return c.fail(path, "contains takes non-empty strings")
    name = fld.name
    if name in INDEXED_TEXTS:
        def text_pred(facts: MailFacts, ws: tuple[str, ...] = tuple(words),
                      n: str = name) -> bool:
            text = facts.lowered(n)[0]
            return any(w in text for w in ws)
        return Compiled(text_pred, frozenset(("contains", name, w) for w in words), True)
    values = fld.values
    return Compiled(lambda facts: any(w in v.lower() for v in values(facts) for w in words), None)


def _regex(c: Operands, fld: Field, arg: Any, path: Path) -> Compiled:
    patterns = c.strings(arg, path, "regex")
    if patterns is None:
        return ALWAYS
    try:
        # Each on its own: joined with '|', a later pattern's (?i) is an error (and would not be
        # its own).
        rxs = tuple(re.compile(p) for p in patterns)
    except re.error as exc:
        return c.fail(path, f"not a valid regular expression: {exc}")
    if fld.name in INDEXED_TEXTS:
        return _indexed_regex(fld.name, patterns, rxs)
    values = fld.values
    return Compiled(lambda facts: any(rx.search(v) for rx in rxs for v in values(facts)), None)


def _indexed_regex(name: str, patterns: list[str], rxs: tuple[re.Pattern[str], ...]) -> Compiled:
    """A regex on a field with a `contains` automaton: the regex's literals are its triggers,
    and the predicate tests the few short ones with `in` before it searches."""
    found = [literal_sets(p) for p in patterns]
    picked = [pick(f) for f in found]
    triggers: frozenset[Trigger] | None = None
    if all(picked):      # any of the patterns: each must have its trigger words
        triggers = frozenset(("contains", name, w) for ws in picked for w in ws or ())
    checks = tuple((rx, tuple(tuple(sorted(ws)) for ws in f
                              if len(ws) <= _PREFILTER_SPELLINGS
                              and min(map(len, ws)) >= _PREFILTER_MIN))
                   for rx, f in zip(rxs, found))

    def regex_pred(facts: MailFacts, n: str = name) -> bool:
        low = facts.lowered(n)[0]
        return any(all(any(w in low for w in ws) for ws in needed)
                   and rx.search(facts.texts(n)[0]) for rx, needed in checks)
    return Compiled(regex_pred, triggers)


# -- addresses ----------------------------------------------------------------------------------

def _domain(c: Operands, fld: Field, lowered: list[str], path: Path) -> Compiled:
    if not fld.is_address:
        return c.fail(path, "domain applies to from, to, cc and recipient")
    name = fld.name
    domains = frozenset(d.lstrip("@.") for d in lowered)

    def domain_pred(facts: MailFacts, n: str = name) -> bool:
        return any(d in domains for a in facts.addresses(n) for d in domains_of(a))
    return Compiled(domain_pred, frozenset(("domain", name, d) for d in domains), True)


def _address_in(name: str, lowered: list[str]) -> Compiled:
    """An address field equal to one of these: an entry without '@' is a domain."""
    exact = frozenset(x for x in lowered if "@" in x.lstrip("@"))
    domains = frozenset(x.lstrip("@.") for x in lowered if "@" not in x.lstrip("@"))

    def address_pred(facts: MailFacts, n: str = name) -> bool:
        return any(a in exact or any(d in domains for d in domains_of(a))
                   for a in facts.addresses(n))
    return Compiled(address_pred, frozenset(
        {("addr", name, a) for a in exact} | {("domain", name, d) for d in domains}), True)


# -- value sets: equals and in (in also reads list files) -----------------------------------------

def _equals(c: Operands, fld: Field, lowered: list[str], path: Path) -> Compiled:
    if not fld.is_address:
        return _one_of(fld, lowered)
    if any("@" not in x.lstrip("@") for x in lowered):
        return c.fail(path, "equals on an address field takes full addresses; "
                            "use domain for a domain")
    return _address_in(fld.name, lowered)     # full addresses only: no domain part


def _in(c: Operands, fld: Field, lowered: list[str], path: Path) -> Compiled:
    return _address_in(fld.name, lowered) if fld.is_address else _one_of(fld, lowered)


def _one_of(fld: Field, lowered: list[str]) -> Compiled:
    wanted = frozenset(lowered)
    if fld.name == "language":
        return Compiled(lambda facts: (facts.language or "").lower() in wanted,
                        frozenset(("language", w) for w in wanted), True)
    values = fld.values
    return Compiled(lambda facts: any(v.strip().lower() in wanted for v in values(facts)), None)


# Operators that read their argument themselves (a flag; patterns to compile).
_ON_ARGUMENT: dict[str, Callable[[Operands, Field, Any, Path], Compiled]] = {
    "exists": _exists,
    "regex": _regex,
}
# Operators on strings: the argument's (or for `in`, a list file's), stripped and lower-cased.
_ON_STRINGS: dict[str, Callable[[Operands, Field, list[str], Path], Compiled]] = {
    "contains": _contains,
    "domain": _domain,
    "equals": _equals,
    "in": _in,
}
