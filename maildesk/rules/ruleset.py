"""Compiled rules and their evaluation: the trigger index that picks the candidate rules of a
message, then the candidates' predicates in rule order, each match overlaying its `set`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from maildesk.rules.facts import ADDRESS_FIELDS, MailFacts, domains_of
from maildesk.rules.predicates import Pred, Trigger

ROUTING_KEYS = ("line", "priority", "category", "assignee", "language", "sla_policy")


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
                for domain in domains_of(address):
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
            _overlay(values, tags, rule.values)
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
        _fill_default(values, tags, self.default)
        return Routing(matched=tuple(matched), tags=tuple(tags), action=action,
                       action_rule=action_rule, autoreply=autoreply, template=template,
                       **{k: values.get(k) for k in ROUTING_KEYS})


def _overlay(values: dict[str, Any], tags: list[str], rule_values: Mapping[str, Any]) -> None:
    """A matching rule's `set`: its tags add to those so far, any other key replaces."""
    for key, value in rule_values.items():
        if key == "tags":
            tags.extend(t for t in value if t not in tags)
        else:
            values[key] = value


def _fill_default(values: dict[str, Any], tags: list[str], default: Mapping[str, Any]) -> None:
    """`default.set` fills what no matching rule set (its tags only when no rule gave any)."""
    for key, value in default.items():
        if key == "tags":
            if not tags:
                tags.extend(value)
        else:
            values.setdefault(key, value)


def iter_templates(ruleset: RuleSet) -> Iterable[tuple[int, str]]:
    """(rule index, template name) of every autoreply template the rules name."""
    for rule in ruleset.rules:
        if rule.template:
            yield rule.index, rule.template
