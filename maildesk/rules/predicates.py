"""A compiled condition: its predicate, the triggers it cannot match without, and how
conditions combine (`all`, `any`) with their triggers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from maildesk.rules.facts import MailFacts

Pred = Callable[[MailFacts], bool]
Trigger = tuple[str, ...]


@dataclass(frozen=True)
class Compiled:
    pred: Pred
    triggers: frozenset[Trigger] | None
    exact: bool = False     # the triggers are sufficient as well as necessary


ALWAYS = Compiled(lambda facts: True, None)


def all_of(parts: list[Compiled]) -> Compiled:
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


def any_of(parts: list[Compiled]) -> Compiled:
    preds = tuple(p.pred for p in parts)
    triggers: frozenset[Trigger] | None = None
    if all(p.triggers is not None for p in parts):
        triggers = frozenset().union(*(p.triggers for p in parts))  # type: ignore[arg-type]
    # Exact if every part is: the trigger that put the rule among the candidates proves its part.
    return Compiled(lambda facts: any(p(facts) for p in preds), triggers,
                    triggers is not None and all(p.exact for p in parts))
