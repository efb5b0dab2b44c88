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

The parts, one module each (this one only gathers what the rest of maildesk imports):
  facts       MailFacts, what rules may look at in one message, and the field names
  predicates  a compiled condition (predicate and triggers) and `all`/`any` of them
  operators   the field operators, one compile function each, by family
  literals    the literals a regex cannot match without (its triggers)
  compiler    rules.yaml -> RuleSet, with every mistake and its key path
  ruleset     the trigger index and the evaluation in rule order
"""

from __future__ import annotations

from maildesk.rules.compiler import ACTIONS, SETTABLE, Known, Problem, compile_rules
from maildesk.rules.facts import ADDRESS_FIELDS, FIELDS, LIST_FIELDS, TEXT_FIELDS, MailFacts
from maildesk.rules.literals import literal_sets as _literal_sets
from maildesk.rules.literals import lowered_forms as _lowered_forms
from maildesk.rules.literals import regex_literals as _regex_literals
from maildesk.rules.operators import OPERATORS
from maildesk.rules.predicates import Compiled, Pred, Trigger
from maildesk.rules.ruleset import Routing, Rule, RuleSet, iter_templates

__all__ = [
    "ACTIONS", "ADDRESS_FIELDS", "FIELDS", "LIST_FIELDS", "OPERATORS", "SETTABLE", "TEXT_FIELDS",
    "Compiled", "Known", "MailFacts", "Pred", "Problem", "Routing", "Rule", "RuleSet", "Trigger",
    "compile_rules", "iter_templates",
    # for the tests of the regex literals
    "_literal_sets", "_lowered_forms", "_regex_literals",
]
