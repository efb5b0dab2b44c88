"""Compiling rules.yaml into a RuleSet: conditions into predicates with their triggers (the
field operators are in maildesk.rules.operators), `set` values checked against what the other
files name, and every mistake reported with its key path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maildesk.rules.facts import FIELDS, MailFacts
from maildesk.rules.operators import OPERATORS, Field, Values, compile_operator
from maildesk.rules.predicates import ALWAYS, Compiled, all_of, any_of
from maildesk.rules.ruleset import Rule, RuleSet
from maildesk.sla.calendar import WorkCalendar

if TYPE_CHECKING:
    # Only for annotations: importing maildesk.config here runs its __init__, which imports
    # config.model, which imports this module half-initialised (ImportError when the rules
    # are imported first, as in their tests or `rules test`).
    from maildesk.config.errors import ConfigProblem

Problem = Callable[[tuple[Any, ...], str], "ConfigProblem"]   # (key path, message) -> problem

SETTABLE = ("line", "priority", "category", "tags", "assignee", "language", "sla_policy")
ACTIONS = ("ignore", "quarantine", "autoreply", "no_autoreply")


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
        return ALWAYS

    # A condition mapping: several keys = all of them.
    def condition(self, node: Any, path: tuple[Any, ...]) -> Compiled:
        if not isinstance(node, dict) or not node:
            return self.fail(path, "a condition is a mapping such as {subject: {contains: ...}}, "
                                   "{all: [...]}, {any: [...]} or {not: {...}}")
        parts = [self.key(k, v, (*path, k)) for k, v in node.items()]
        return parts[0] if len(parts) == 1 else all_of(parts)

    def key(self, key: str, value: Any, path: tuple[Any, ...]) -> Compiled:
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                return self.fail(path, f"{key} takes a non-empty list of conditions")
            parts = [self.condition(v, (*path, i)) for i, v in enumerate(value)]
            return all_of(parts) if key == "all" else any_of(parts)
        if key == "not":
            inner = self.condition(value, path)
            return Compiled(lambda facts, p=inner.pred: not p(facts), None)
        if key == "header":
            if not isinstance(value, dict) or not value:
                return self.fail(path, "header takes a mapping {Header-Name: {operator: value}}")
            return all_of([self.header(name, test, (*path, name))
                           for name, test in value.items()])
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
            return ALWAYS

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
            return ALWAYS

        def values(facts: MailFacts, n: str = name) -> tuple[str, ...]:
            return facts.texts(n)
        return self.combine(name, values, ops, path)

    def combine(self, name: str, values: Values, ops: dict[str, Any],
                path: tuple[Any, ...]) -> Compiled:
        fld = Field(name, values)
        parts = [compile_operator(self, fld, op, arg, (*path, op)) for op, arg in ops.items()]
        return parts[0] if len(parts) == 1 else all_of(parts)

    # -- operator arguments -----------------------------------------------------------------
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

    # -- a whole rule ---------------------------------------------------------------------
    def values(self, node: Any, path: tuple[Any, ...]) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.fail(path, "set takes a mapping of " + ", ".join(SETTABLE))
            return {}
        out: dict[str, Any] = {}
        for key, value in node.items():
            mistake = self.value_mistake(key, value)
            if mistake is not None:
                self.fail((*path, key), mistake)
            elif key == "tags":
                out[key] = tuple(str(t) for t in (value if isinstance(value, list) else [value]))
            else:
                out[key] = str(value).lower() if key == "assignee" else value
        return out

    def value_mistake(self, key: str, value: Any) -> str | None:
        """Why `set` cannot take this key and value (None: it can)."""
        known = self.known
        if key not in SETTABLE:
            return f"unknown key; set takes {', '.join(SETTABLE)}"
        if key == "line" and known.lines and value not in known.lines:
            return f"unknown line {value!r} (lines.yaml has: {', '.join(sorted(known.lines))})"
        if key == "sla_policy" and value not in known.policies:
            return (f"unknown SLA policy {value!r} (sla.yaml has: "
                    f"{', '.join(sorted(known.policies)) or 'none'})")
        if key == "assignee" and str(value).lower() not in known.agents:
            return f"{value!r} is not an agent of any line in lines.yaml"
        return None

    def rule(self, i: int, node: dict[str, Any]) -> Rule:
        path = ("rules", i)
        compiled = self.condition(node["match"], (*path, "match")) if "match" in node else ALWAYS
        action = node.get("action")
        if node.get("template") and action != "autoreply":
            self.fail((*path, "template"), "template goes with action: autoreply")
        return Rule(index=i, name=str(node.get("name", f"rule {i + 1}")), predicate=compiled.pred,
                    triggers=compiled.triggers, values=self.values(node.get("set"), (*path, "set")),
                    action=action, template=node.get("template"), stop=bool(node.get("stop")),
                    proven=compiled.exact)


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
