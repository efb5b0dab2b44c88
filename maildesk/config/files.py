"""The files maildesk.yaml names under `paths:`, and one loader for each of lines.yaml,
sla.yaml and rules.yaml.

Each loader adds what is wrong to the caller's `problems` and returns a stand-in (no lines, no
calendars, no rules), so one run of load_settings reports every file's mistakes together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package

from maildesk.config.errors import ConfigError, ConfigProblem, gather_problems
from maildesk.config.load import LoadedYaml, load_yaml, validate
from maildesk.config.settings import Agent, Line
from maildesk.config.values import resolve_path
from maildesk.durations import parse_duration
from maildesk.kb.load import load_kb
from maildesk.kb.model import KnowledgeBase
from maildesk.rules.engine import Known, RuleSet, compile_rules
from maildesk.sla.calendar import WorkCalendar, calendars_from_sla, default_calendar_name
from maildesk.sla.policy import SlaPolicies, policies_from_sla

# `paths:` in maildesk.yaml and the defaults, relative to the directory of maildesk.yaml.
_PATH_DEFAULTS = {"lines": "lines.yaml", "rules": "rules.yaml", "sla": "sla.yaml",
                  "templates": "../templates", "var": "../var", "kb": "kb"}


@dataclass(frozen=True)
class ConfigPaths:
    """The files and directories named under `paths:`, as absolute paths."""

    lines: Path
    rules: Path
    sla: Path
    templates: Path
    var: Path
    kb: Path

    @classmethod
    def of(cls, main: LoadedYaml) -> ConfigPaths:
        """The paths; the default for one that is not a string (a problem the schema reports)."""
        base = main.path.parent
        paths = main.data.get("paths") if isinstance(main.data, dict) else None
        paths = paths if isinstance(paths, dict) else {}
        return cls(**{name: resolve_path(base, value if isinstance(value := paths.get(name),
                                                                         str) else default)
                      for name, default in _PATH_DEFAULTS.items()})


def load_part(path: Path, schema: str) -> LoadedYaml:
    """One YAML file, checked against config/schema/<schema>.schema.json."""
    loaded = load_yaml(path)
    validate(loaded, schema)
    return loaded


def load_main(path: Path, problems: list[ConfigProblem]) -> LoadedYaml:
    """maildesk.yaml. A YAML syntax error raises at once (without the file there is nothing to
    go on); what does not fit its schema is added to `problems`, so that the files it names are
    read and checked in the same run."""
    loaded = load_yaml(path)
    with gather_problems(problems):
        validate(loaded, "maildesk")
    return loaded


def load_files(paths: ConfigPaths, problems: list[ConfigProblem]) -> dict[str, LoadedYaml]:
    """lines.yaml, rules.yaml and sla.yaml by their schema's name; one that cannot be read or
    does not fit its schema is left out and its problems added."""
    parts: dict[str, LoadedYaml] = {}
    for name, path in (("lines", paths.lines), ("rules", paths.rules), ("sla", paths.sla)):
        with gather_problems(problems):
            parts[name] = load_part(path, name)
    return parts


# lines.yaml


def lines_file(parts: dict[str, LoadedYaml], problems: list[ConfigProblem]) -> tuple[Line, ...]:
    """The support lines; none when lines.yaml has a problem."""
    lines: tuple[Line, ...] = ()
    if "lines" in parts:
        with gather_problems(problems):
            lines = lines_from(parts["lines"])
    return lines


def lines_from(loaded: LoadedYaml) -> tuple[Line, ...]:
    """The lines of lines.yaml; raises ConfigError for duplicate ids and unknown `next` lines."""
    out = []
    ids = set()
    problems = []
    for i, raw in enumerate(loaded.data.get("lines", [])):
        if raw["id"] in ids:
            problems.append(loaded.problem(("lines", i, "id"), f"duplicate line id {raw['id']!r}"))
        ids.add(raw["id"])
        out.append(_line(raw))
    for i, line in enumerate(out):
        if line.next and line.next not in ids:
            problems.append(loaded.problem(("lines", i, "next"), f"unknown line {line.next!r} "
                                           f"(known: {', '.join(sorted(ids))})"))
    if problems:
        raise ConfigError(problems)
    return tuple(out)


def _line(raw: dict[str, Any]) -> Line:
    return Line(id=raw["id"], name=raw.get("name", raw["id"]), mailbox=raw["mailbox"].lower(),
                agents=tuple(_agent(a) for a in raw.get("agents", [])), next=raw.get("next"),
                ola=parse_duration(raw["ola"]) if raw.get("ola") else None,
                ola_text=raw.get("ola"), sla_policy=raw.get("sla_policy"),
                lead=raw.get("lead"), external=raw.get("external", False),
                on_breach=raw.get("on_breach", "escalate" if raw.get("next") else "lead"))


def _agent(raw: str | dict[str, Any]) -> Agent:
    """An agent written as a bare address or as {address, name, aliases}."""
    if isinstance(raw, str):
        return Agent(address=raw.lower())
    return Agent(address=raw["address"].lower(), name=raw.get("name", ""),
                 aliases=tuple(x.lower() for x in raw.get("aliases", [])))


# sla.yaml


def sla_file(parts: dict[str, LoadedYaml], problems: list[ConfigProblem]
             ) -> tuple[dict[str, WorkCalendar], SlaPolicies]:
    """The work calendars and SLA policies; none when sla.yaml has a problem."""
    calendars: dict[str, WorkCalendar] = {}
    sla_policies = SlaPolicies()
    if "sla" in parts:
        with gather_problems(problems):
            check_sla(parts["sla"])
            calendars = calendars_from_sla(parts["sla"].data)
            sla_policies = policies_from_sla(parts["sla"].data, calendars)
    return calendars, sla_policies


def check_sla(loaded: LoadedYaml) -> None:
    """What the schema cannot say about sla.yaml: names that must exist, spans that must run
    forward, time zones and holiday countries that must be known."""
    problems = _policy_problems(loaded)
    for name, calendar in loaded.data.get("calendars", {}).items():
        problems.extend(_calendar_problems(loaded, name, calendar))
    if problems:
        raise ConfigError(problems)


def _policy_problems(loaded: LoadedYaml) -> list[ConfigProblem]:
    data = loaded.data
    problems = []
    for name, policy in data.get("policies", {}).items():
        if policy["calendar"] not in data.get("calendars", {}):
            problems.append(loaded.problem(("policies", name, "calendar"),
                                           f"unknown calendar {policy['calendar']!r}"))
    default = data.get("default_policy")
    if default and default not in data.get("policies", {}):
        problems.append(loaded.problem(("default_policy",), f"unknown policy {default!r}"))
    return problems


def _calendar_problems(loaded: LoadedYaml, name: str, calendar: dict[str, Any]
                       ) -> list[ConfigProblem]:
    problems = []
    hours = calendar.get("hours")
    if isinstance(hours, dict):
        problems.extend(_hours_problems(loaded, name, hours))
    try:
        ZoneInfo(calendar["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(loaded.problem(("calendars", name, "timezone"),
                                       f"unknown time zone {calendar['timezone']!r} "
                                       "(an IANA name such as Europe/Moscow)"))
    country = (calendar.get("holidays") or {}).get("country")
    if country and country.upper() not in holidays_package.list_supported_countries():
        problems.append(loaded.problem(("calendars", name, "holidays", "country"),
                                       f"the holidays package does not know country "
                                       f"{country!r} (ISO 3166 codes such as RU, DE)"))
    return problems


def _hours_problems(loaded: LoadedYaml, name: str, hours: dict[str, list[str] | None]
                    ) -> list[ConfigProblem]:
    problems = []
    if not any(hours.values()):
        problems.append(loaded.problem(("calendars", name, "hours"),
                                       "no working hours on any day (use `hours: "
                                       "always` for a 24/7 calendar)"))
    for day, spans in hours.items():
        for i, span in enumerate(spans or ()):
            # "HH:MM" strings compare as times do.
            start, _, end = span.partition("-")
            if start >= end or start > "24:00" or end > "24:00":
                problems.append(loaded.problem(
                    ("calendars", name, "hours", day, i),
                    f"{span!r}: a span runs from an earlier to a later time of the "
                    "same day, 00:00-24:00 at most"))
    return problems


# rules.yaml, and what lines.yaml names in sla.yaml


def rules_file(parts: dict[str, LoadedYaml], lines: tuple[Line, ...],
               calendars: dict[str, WorkCalendar], rules_dir: Path,
               problems: list[ConfigProblem]) -> RuleSet:
    """The compiled rules; none unless all three files loaded, since the rules name lines,
    SLA policies and calendars. A line's `sla_policy` is checked against sla.yaml here too."""
    if not {"lines", "rules", "sla"} <= parts.keys():
        return RuleSet((), {})
    sla_data = parts["sla"].data
    known = Known(lines=frozenset(line.id for line in lines),
                  policies=frozenset(sla_data.get("policies", {})),
                  agents=frozenset(a for line in lines for agent in line.agents
                                   for a in (agent.address, *agent.aliases)),
                  calendars=calendars, default_calendar=default_calendar_name(sla_data),
                  base_dir=rules_dir)
    ruleset, rule_problems = compile_rules(parts["rules"].data, known, parts["rules"].problem)
    problems.extend(rule_problems)
    for i, line in enumerate(lines):
        if line.sla_policy and line.sla_policy not in known.policies:
            problems.append(parts["lines"].problem(
                ("lines", i, "sla_policy"), f"unknown SLA policy {line.sla_policy!r} "
                f"(sla.yaml has: {', '.join(sorted(known.policies)) or 'none'})"))
    return ruleset


# kb/<lang>/<slug>.md


def kb_folder(directory: Path, default_language: str, problems: list[ConfigProblem]
              ) -> KnowledgeBase:
    """The knowledge base under `paths.kb` (missing: empty); its problems as ConfigProblems."""
    kb, kb_problems = load_kb(directory, default_language)
    for p in kb_problems:
        problems.append(ConfigProblem(str(p.path), p.line, p.key, p.message, p.column))
    return kb
