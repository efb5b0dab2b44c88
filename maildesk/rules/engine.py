"""Routing rules (rules.yaml): compiled once at load, evaluated per new ticket. Pure.

Every rule becomes a predicate (a tree of small closures) and, where its conditions allow, a
set of *triggers*: literal facts without which it cannot match (a keyword in the subject, the
sender's domain, an exact address, a language, a header's presence). Evaluation looks up the
message's own facts in an index (dict lookups, and one Aho-Corasick pass per text field for all
`contains` keywords of all rules) and runs only the predicates of rules that can match, in rule
order, plus the few rules that have no trigger (a lone `not`, `exists: false`, a regex without
a literal it must contain). So a set of a thousand customer or keyword rules costs a few lookups
more than a set of ten, and the result is the same as trying every rule in order (tests check
both ways agree).

A regex on subject or body gets `contains` triggers too: the literal text every match must
contain, read off the parsed pattern (`_regex_literals`), lower-cased as the automaton sees the
text (so `(?i)(ИНН|INN) ?[0-9]{10}` is tried only on a body containing 'инн' or 'inn').

Semantics (README "Routing rules"): rules are tried in order; each matching rule overlays its
`set` (tags accumulate); `stop: true` ends the evaluation after that rule; `action: ignore` or
`quarantine` ends it at once; `default.set` fills what no matching rule set.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ahocorasick

from maildesk.sla.calendar import WorkCalendar

if TYPE_CHECKING:
    # Only for annotations: importing maildesk.config here runs its __init__, which imports
    # config.model, which imports this module half-initialised (ImportError when the rules
    # are imported first, as in their tests or `maildesk.rules.dryrun`).
    from maildesk.config.errors import ConfigProblem

Problem = Callable[[tuple[Any, ...], str], "ConfigProblem"]   # (key path, message) -> problem
Pred = Callable[["MailFacts"], bool]
Trigger = tuple[str, ...]

ADDRESS_FIELDS = ("from", "to", "cc", "recipient")
TEXT_FIELDS = ("subject", "body", "language")
LIST_FIELDS = ("attachment", "attachment_type")
FIELDS = (*ADDRESS_FIELDS, *TEXT_FIELDS, *LIST_FIELDS, "header", "business_hours")
OPERATORS = ("contains", "equals", "regex", "domain", "exists", "in")
SETTABLE = ("line", "priority", "category", "tags", "assignee", "language", "sla_policy")
ACTIONS = ("ignore", "quarantine", "autoreply", "no_autoreply")


@dataclass
class MailFacts:
    """What rules may look at, for one message. Derived views are computed on first use."""

    sender: str
    sender_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    envelope_to: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[tuple[str, str], ...] = ()   # (filename, content type)
    language: str | None = None
    at: datetime | None = None

    @cached_property
    def subject_lower(self) -> str:
        return self.subject.lower()

    @cached_property
    def body_lower(self) -> str:
        return self.body.lower()

    @cached_property
    def header_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in self.headers:
            out.setdefault(name.lower(), []).append(value)
        return out

    def addresses(self, name: str) -> tuple[str, ...]:
        if name == "from":
            return (self.sender,) if self.sender else ()
        if name == "to":
            return self.to
        if name == "cc":
            return self.cc
        return tuple(dict.fromkeys((*self.envelope_to, *self.to, *self.cc)))

    def texts(self, name: str) -> tuple[str, ...]:
        """Values of a field for contains/equals/regex, in their original case."""
        if name == "from":
            # The address alone (for `regex: "^noreply@"`), and with the display name
            # (`contains: "Иван"`).
            if not self.sender:
                return ()
            return (self.sender, f"{self.sender_name} <{self.sender}>") if self.sender_name \
                else (self.sender,)
        if name in ("to", "cc", "recipient"):
            return self.addresses(name)
        if name == "subject":
            return (self.subject,)
        if name == "body":
            return (self.body,)
        if name == "language":
            return (self.language,) if self.language else ()
        if name == "attachment":
            return tuple(f for f, _ in self.attachments if f)
        if name == "attachment_type":
            return tuple(t for _, t in self.attachments)
        raise KeyError(name)

    def lowered(self, name: str) -> tuple[str, ...]:
        if name == "subject":
            return (self.subject_lower,)
        if name == "body":
            return (self.body_lower,)
        return tuple(v.lower() for v in self.texts(name))


def _domains(address: str) -> list[str]:
    """`a@x.y.example.com` -> ['x.y.example.com', 'y.example.com', 'example.com', 'com']."""
    domain = address.rpartition("@")[2].lower()
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))] if domain else []


@dataclass(frozen=True)
class Routing:
    """What the rules decided for one message."""

    matched: tuple[str, ...] = ()
    line: str | None = None
    priority: str | None = None
    category: str | None = None
    assignee: str | None = None
    language: str | None = None
    sla_policy: str | None = None
    tags: tuple[str, ...] = ()
    action: str | None = None          # ignore | quarantine
    action_rule: str | None = None
    autoreply: bool = True
    template: str | None = None        # autoreply template name, default "autoreply"


@dataclass(frozen=True)
class Rule:
    index: int
    name: str
    predicate: Pred
    triggers: frozenset[Trigger] | None     # None: no trigger, always tried
    values: Mapping[str, Any]
    action: str | None
    template: str | None
    stop: bool
    proven: bool = False    # any one trigger proves the match: the predicate need not run


@dataclass(frozen=True)
class Compiled:
    pred: Pred
    triggers: frozenset[Trigger] | None
    exact: bool = False     # the triggers are sufficient as well as necessary


_ALWAYS = Compiled(lambda facts: True, None)


@dataclass
class RuleSet:
    rules: tuple[Rule, ...]
    default: Mapping[str, Any]
    _always: tuple[int, ...] = ()
    _index: dict[Trigger, tuple[int, ...]] = field(default_factory=dict)
    _automata: dict[str, Any] = field(default_factory=dict)   # field -> Aho-Corasick automaton
    _headers: tuple[str, ...] = ()        # header names some trigger asks about
    _proven: frozenset[int] = frozenset()  # rules that match whenever they are candidates

    def __post_init__(self) -> None:
        always: list[int] = []
        index: dict[Trigger, list[int]] = {}
        words: dict[str, dict[str, list[int]]] = {}
        headers: set[str] = set()
        for rule in self.rules:
            if rule.triggers is None:
                always.append(rule.index)
                continue
            for trig in rule.triggers:
                if trig[0] == "contains":
                    words.setdefault(trig[1], {}).setdefault(trig[2], []).append(rule.index)
                else:
                    index.setdefault(trig, []).append(rule.index)
                    if trig[0] == "header":
                        headers.add(trig[1])
        self._always = tuple(always)
        self._proven = frozenset(r.index for r in self.rules if r.proven and r.triggers is not None)
        self._index = {k: tuple(v) for k, v in index.items()}
        self._headers = tuple(sorted(headers))
        for name, table in words.items():
            automaton = ahocorasick.Automaton()
            for word, rules in table.items():
                automaton.add_word(word, tuple(rules))
            automaton.make_automaton()
            self._automata[name] = automaton

    def __len__(self) -> int:
        return len(self.rules)

    def candidates(self, facts: MailFacts) -> list[int]:
        """Indexes of the rules that can match these facts, in rule order."""
        found = set(self._always)
        index = self._index
        for name in ADDRESS_FIELDS:
            for address in facts.addresses(name):
                found.update(index.get(("addr", name, address), ()))
                for domain in _domains(address):
                    found.update(index.get(("domain", name, domain), ()))
        # As the predicate does, an unknown language is '' (which `equals: ""` matches).
        found.update(index.get(("language", (facts.language or "").lower()), ()))
        if self._headers:
            present = facts.header_map
            for name in self._headers:
                if name in present:
                    found.update(index[("header", name)])
        for name, automaton in self._automata.items():
            for text in facts.lowered(name):
                for _, rules in automaton.iter(text):
                    found.update(rules)
        return sorted(found)

    def evaluate(self, facts: MailFacts, *, exhaustive: bool = False) -> Routing:
        """Apply the rules to a message. `exhaustive` tries every rule (for tests)."""
        order = range(len(self.rules)) if exhaustive else self.candidates(facts)
        proven = frozenset() if exhaustive else self._proven
        values: dict[str, Any] = {}
        tags: list[str] = []
        matched: list[str] = []
        action = action_rule = template = None
        autoreply = True
        for i in order:
            rule = self.rules[i]
            if i not in proven and not rule.predicate(facts):
                continue
            matched.append(rule.name)
            for key, value in rule.values.items():
                if key == "tags":
                    tags.extend(t for t in value if t not in tags)
                else:
                    values[key] = value
            if rule.action in ("ignore", "quarantine"):
                action, action_rule = rule.action, rule.name
                break
            if rule.action == "no_autoreply":
                autoreply = False
            elif rule.action == "autoreply":
                autoreply = True
                template = rule.template or template
            if rule.stop:
                break
        for key, value in self.default.items():
            if key == "tags":
                if not tags:
                    tags.extend(value)
            else:
                values.setdefault(key, value)
        return Routing(matched=tuple(matched), tags=tuple(tags), action=action,
                       action_rule=action_rule, autoreply=autoreply, template=template,
                       **{k: values.get(k) for k in ("line", "priority", "category", "assignee",
                                                     "language", "sla_policy")})


# -- compiling --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Known:
    """What rules may name, for checking them at load."""

    lines: frozenset[str] = frozenset()
    policies: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    calendars: Mapping[str, WorkCalendar] = field(default_factory=dict)
    default_calendar: str | None = None
    base_dir: Path = Path(".")


class _Compiler:
    def __init__(self, known: Known, problem: Problem):
        self.known = known
        self.problem = problem
        self.errors: list[ConfigProblem] = []

    def fail(self, path: tuple[Any, ...], message: str) -> Compiled:
        self.errors.append(self.problem(path, message))
        return _ALWAYS

    # A condition mapping: several keys = all of them.
    def condition(self, node: Any, path: tuple[Any, ...]) -> Compiled:
        if not isinstance(node, dict) or not node:
            return self.fail(path, "a condition is a mapping such as {subject: {contains: ...}}, "
                                   "{all: [...]}, {any: [...]} or {not: {...}}")
        parts = [self.key(k, v, (*path, k)) for k, v in node.items()]
        return parts[0] if len(parts) == 1 else _all(parts)

    def key(self, key: str, value: Any, path: tuple[Any, ...]) -> Compiled:
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                return self.fail(path, f"{key} takes a non-empty list of conditions")
            parts = [self.condition(v, (*path, i)) for i, v in enumerate(value)]
            return _all(parts) if key == "all" else _any(parts)
        if key == "not":
            inner = self.condition(value, path)
            return Compiled(lambda facts, p=inner.pred: not p(facts), None)
        if key == "header":
            if not isinstance(value, dict) or not value:
                return self.fail(path, "header takes a mapping {Header-Name: {operator: value}}")
            return _all([self.header(name, test, (*path, name)) for name, test in value.items()])
        if key == "business_hours":
            return self.business_hours(value, path)
        if key not in FIELDS:
            return self.fail(path, f"unknown condition {key!r}; expected one of "
                                   f"{', '.join(('all', 'any', 'not', *FIELDS))}")
        return self.field_test(key, value, path)

    def business_hours(self, value: Any, path: tuple[Any, ...]) -> Compiled:
        name, within = self.known.default_calendar, value
        if isinstance(value, dict):
            name, within = value.get("calendar", name), value.get("within", True)
        if not isinstance(within, bool):
            return self.fail(path, "business_hours takes true, false or {calendar: NAME, within: "
                                   "true|false}")
        calendar = self.known.calendars.get(name) if name else None
        if calendar is None:
            known = ", ".join(sorted(self.known.calendars)) or "none"
            return self.fail(path, f"unknown calendar {name!r} (sla.yaml has: {known})")

        def pred(facts: MailFacts, cal: WorkCalendar = calendar, want: bool = within) -> bool:
            return facts.at is not None and cal.is_working(facts.at) == want
        return Compiled(pred, None)

    def header(self, name: str, test: Any, path: tuple[Any, ...]) -> Compiled:
        lname = str(name).lower()
        ops = self.operators(test, path)
        if ops is None:
            return _ALWAYS

        def values(facts: MailFacts) -> tuple[str, ...]:
            return tuple(facts.header_map.get(lname, ()))
        compiled = self.combine("header", values, ops, path)
        if ops.get("exists") is True:
            return Compiled(compiled.pred, frozenset({("header", lname)}))
        return compiled

    def operators(self, test: Any, path: tuple[Any, ...]) -> dict[str, Any] | None:
        if not isinstance(test, dict) or not test:
            self.fail(path, "a field test is a mapping {operator: value}; operators: "
                            + ", ".join(OPERATORS))
            return None
        bad = [op for op in test if op not in OPERATORS]
        if bad:
            self.fail((*path, bad[0]), f"unknown operator {bad[0]!r}; expected one of "
                                       + ", ".join(OPERATORS))
            return None
        return test

    def field_test(self, name: str, test: Any, path: tuple[Any, ...]) -> Compiled:
        ops = self.operators(test, path)
        if ops is None:
            return _ALWAYS

        def values(facts: MailFacts, n: str = name) -> tuple[str, ...]:
            return facts.texts(n)
        return self.combine(name, values, ops, path)

    def combine(self, name: str, values: Callable[[MailFacts], tuple[str, ...]],
                ops: dict[str, Any], path: tuple[Any, ...]) -> Compiled:
        parts = [self.operator(name, values, op, arg, (*path, op)) for op, arg in ops.items()]
        return parts[0] if len(parts) == 1 else _all(parts)

    def strings(self, arg: Any, path: tuple[Any, ...], what: str) -> list[str] | None:
        items = arg if isinstance(arg, list) else [arg]
        if not items or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                                for x in items):
            self.fail(path, f"{what} takes a string or a list of strings")
            return None
        return [str(x) for x in items]

    def list_file(self, spec: dict[str, Any], path: tuple[Any, ...]) -> list[str] | None:
        file = spec.get("file")
        if not isinstance(file, str) or set(spec) != {"file"}:
            self.fail(path, "in takes a list of values or {file: PATH}")
            return None
        p = Path(file) if Path(file).is_absolute() else self.known.base_dir / file
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            self.fail(path, f"cannot read list file {p}: {exc.strerror or exc}")
            return None
        return [s for line in text.splitlines() if (s := line.split("#", 1)[0].strip())]

    def operator(self, name: str, values: Callable[[MailFacts], tuple[str, ...]], op: str,
                 arg: Any, path: tuple[Any, ...]) -> Compiled:
        is_address = name in ADDRESS_FIELDS
        if op == "exists":
            if not isinstance(arg, bool):
                return self.fail(path, "exists takes true or false")
            # present and not empty: an empty subject or header value does not exist
            return Compiled(lambda facts: any(v.strip() for v in values(facts)) == arg, None)
        if op == "regex":
            patterns = self.strings(arg, path, "regex")
            if patterns is None:
                return _ALWAYS
            try:
                # Each on its own: joined with '|', a later pattern's (?i) is an error (and
                # would not be its own).
                rxs = tuple(re.compile(p) for p in patterns)
            except re.error as exc:
                return self.fail(path, f"not a valid regular expression: {exc}")
            if name not in ("subject", "body"):
                return Compiled(lambda facts: any(rx.search(v) for rx in rxs
                                                  for v in values(facts)), None)
            # The fields with a `contains` automaton: the regex's literals are its triggers, and
            # the predicate tests the few short ones with `in` before it searches.
            found = [_literal_sets(p) for p in patterns]
            picked = [_pick(f) for f in found]
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
        if op == "in" and isinstance(arg, dict):
            items = self.list_file(arg, path)
        else:
            items = self.strings(arg, path, op)
        if items is None:
            return _ALWAYS
        lowered = [x.strip().lower() for x in items]
        if op == "contains":
            words = [w for w in lowered if w]
            if len(words) < len(lowered):
                return self.fail(path, "contains takes non-empty strings")
            if name in ("subject", "body"):
                def text_pred(facts: MailFacts, ws: tuple[str, ...] = tuple(words),
                              n: str = name) -> bool:
                    text = facts.lowered(n)[0]
                    return any(w in text for w in ws)
                return Compiled(text_pred, frozenset(("contains", name, w) for w in words), True)
            return Compiled(lambda facts: any(w in v.lower() for v in values(facts)
                                              for w in words), None)
        if op == "domain":
            if not is_address:
                return self.fail(path, "domain applies to from, to, cc and recipient")
            domains = frozenset(d.lstrip("@.") for d in lowered)

            def domain_pred(facts: MailFacts, n: str = name) -> bool:
                return any(d in domains for a in facts.addresses(n) for d in _domains(a))
            return Compiled(domain_pred, frozenset(("domain", name, d) for d in domains), True)
        # equals, in: the same test (in also reads list files; for addresses, an entry without
        # '@' is a domain)
        if is_address:
            exact = frozenset(x for x in lowered if "@" in x.lstrip("@"))
            domains = frozenset(x.lstrip("@.") for x in lowered
                                if op == "in" and "@" not in x.lstrip("@"))
            if op == "equals" and any("@" not in x.lstrip("@") for x in lowered):
                return self.fail(path, "equals on an address field takes full addresses; "
                                       "use domain for a domain")

            def address_pred(facts: MailFacts, n: str = name) -> bool:
                return any(a in exact or any(d in domains for d in _domains(a))
                           for a in facts.addresses(n))
            return Compiled(address_pred, frozenset(
                {("addr", name, a) for a in exact} | {("domain", name, d) for d in domains}), True)
        wanted = frozenset(lowered)
        if name == "language":
            return Compiled(lambda facts: (facts.language or "").lower() in wanted,
                            frozenset(("language", w) for w in wanted), True)
        return Compiled(lambda facts: any(v.strip().lower() in wanted for v in values(facts)),
                        None)

    # -- a whole rule ---------------------------------------------------------------------
    def values(self, node: Any, path: tuple[Any, ...]) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.fail(path, "set takes a mapping of " + ", ".join(SETTABLE))
            return {}
        out: dict[str, Any] = {}
        for key, value in node.items():
            at = (*path, key)
            if key not in SETTABLE:
                self.fail(at, f"unknown key; set takes {', '.join(SETTABLE)}")
            elif key == "line" and self.known.lines and value not in self.known.lines:
                self.fail(at, f"unknown line {value!r} (lines.yaml has: "
                              f"{', '.join(sorted(self.known.lines))})")
            elif key == "sla_policy" and value not in self.known.policies:
                self.fail(at, f"unknown SLA policy {value!r} (sla.yaml has: "
                              f"{', '.join(sorted(self.known.policies)) or 'none'})")
            elif key == "assignee" and str(value).lower() not in self.known.agents:
                self.fail(at, f"{value!r} is not an agent of any line in lines.yaml")
            elif key == "tags":
                out[key] = tuple(str(t) for t in (value if isinstance(value, list) else [value]))
            else:
                out[key] = str(value).lower() if key == "assignee" else value
        return out

    def rule(self, i: int, node: dict[str, Any]) -> Rule:
        path = ("rules", i)
        compiled = self.condition(node["match"], (*path, "match")) if "match" in node else _ALWAYS
        action = node.get("action")
        if node.get("template") and action != "autoreply":
            self.fail((*path, "template"), "template goes with action: autoreply")
        return Rule(index=i, name=str(node.get("name", f"rule {i + 1}")), predicate=compiled.pred,
                    triggers=compiled.triggers, values=self.values(node.get("set"), (*path, "set")),
                    action=action, template=node.get("template"), stop=bool(node.get("stop")),
                    proven=compiled.exact)


def _all(parts: list[Compiled]) -> Compiled:
    if len(parts) == 1:     # `all: [x]`: x itself (exact if x is)
        return parts[0]
    preds = tuple(p.pred for p in parts)
    # Any one child's triggers are necessary for the whole: take the narrowest.
    indexed = [p.triggers for p in parts if p.triggers is not None]
    triggers = min(indexed, key=len) if indexed else None
    if len(preds) == 2:
        a, b = preds
        return Compiled(lambda facts: a(facts) and b(facts), triggers)
    return Compiled(lambda facts: all(p(facts) for p in preds), triggers)


def _any(parts: list[Compiled]) -> Compiled:
    preds = tuple(p.pred for p in parts)
    triggers: frozenset[Trigger] | None = None
    if all(p.triggers is not None for p in parts):
        triggers = frozenset().union(*(p.triggers for p in parts))  # type: ignore[arg-type]
    # Exact if every part is: the trigger that put the rule among the candidates proves its part.
    return Compiled(lambda facts: any(p(facts) for p in preds), triggers,
                    triggers is not None and all(p.exact for p in parts))


# -- the literals a regex cannot match without --------------------------------------------------
#
# `_regex_literals(pattern)` gives strings of which every match of the pattern contains at least
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
# The predicate itself first checks, with `in`, the literals of at least 2 characters and at most
# 4 spellings (say '0x' in `code\s+0x[0-9a-f]+`): a scan of the text for a substring costs far
# less than a search that fails at every position.
_PREFILTER_MIN, _PREFILTER_SPELLINGS = 2, 4
_FULL_LOWER = {"i": ("i\u0307",), "σ": ("ς",)}   # 'İ'.lower(); 'Σ' at the end of a word


def _lowered_forms(code: int, icase: bool) -> frozenset[str]:
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

    def walk(self, items: Any, icase: bool) -> None:
        for op, av in items:
            if op is _C.LITERAL:
                forms = _lowered_forms(av, icase)
                if self.variants * len(forms) > _MAX_VARIANTS:
                    self.flush()
                self.run.append(forms)
                self.variants *= len(forms)
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


def _pick(found: list[frozenset[str]]) -> frozenset[str] | None:
    """The most selective set: the longest shortest string, then the fewest strings; None if
    none is at least _MIN_LITERAL long."""
    good = [f for f in found if min(map(len, f)) >= _MIN_LITERAL]
    return max(good, key=lambda f: (min(map(len, f)), -len(f)), default=None)


def _best(items: Any, icase: bool) -> frozenset[str] | None:
    return _pick(_necessary(items, icase))


def _literal_sets(pattern: str) -> list[frozenset[str]]:
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


def _regex_literals(pattern: str) -> frozenset[str] | None:
    """The trigger words of a regex: lowered strings of which every match contains one (None:
    nothing proven, or nothing long enough to be worth a trigger)."""
    return _pick(_literal_sets(pattern))


def compile_rules(data: dict[str, Any], known: Known,
                  problem: Problem) -> tuple[RuleSet, list[ConfigProblem]]:
    """Compile rules.yaml (already checked against its schema). Every mistake found is
    returned, made by `problem` (which knows the file and the line of each key)."""
    compiler = _Compiler(known, problem)
    rules = tuple(compiler.rule(i, node) for i, node in enumerate(data.get("rules") or []))
    names: dict[str, int] = {}
    for rule in rules:
        if rule.name in names:
            compiler.fail(("rules", rule.index, "name"),
                          f"duplicate rule name (also rule {names[rule.name] + 1})")
        names.setdefault(rule.name, rule.index)
    default = compiler.values((data.get("default") or {}).get("set"), ("default", "set"))
    return RuleSet(rules=rules, default=default), compiler.errors


def iter_templates(ruleset: RuleSet) -> Iterable[tuple[int, str]]:
    """(rule index, template name) of every autoreply template the rules name."""
    for rule in ruleset.rules:
        if rule.template:
            yield rule.index, rule.template
