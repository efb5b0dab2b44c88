"""Load a YAML file keeping the place of every key, and validate it against its JSON Schema.

PyYAML composes the node tree once; we build the plain data and a map from key path to line
and column from the same nodes, so every error can say `file:line:column: key.path: what was
expected`, in words ("a duration such as 30m, 4h, 2d"), not as the schema's regular expression.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from maildesk.config.errors import ConfigError, ConfigProblem
from maildesk.durations import DURATION_FORM

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedYaml:
    """The data of one YAML file and the place of each key path in it: `lines` and `columns`
    of the key (of the item, in a list); `values`, the (line, column) of a scalar value."""

    path: Path
    data: Any
    lines: dict[KeyPath, int]
    columns: dict[KeyPath, int] = field(default_factory=dict)
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of `key_path`, or of its nearest ancestor that has one."""
        return self.place_of(key_path, at_key=True)[0]

    def place_of(self, key_path: KeyPath, *, at_key: bool = False) -> tuple[int | None, int | None]:
        """(line, column) of `key_path`: of its value when that is a scalar (unless `at_key`),
        else of its key; of its nearest ancestor when it has no place of its own (a key that is
        missing)."""
        path = tuple(key_path)
        if not at_key and path in self.values:
            return self.values[path]
        while path:
            if path in self.lines:
                return self.lines[path], self.columns.get(path)
            path = path[:-1]
        return self.lines.get((), None), self.columns.get(())

    def problem(self, key_path: KeyPath, message: str, *, at_key: bool = False) -> ConfigProblem:
        line, column = self.place_of(key_path, at_key=at_key)
        return ConfigProblem(str(self.path), line, dotted(key_path), message, column)


def dotted(key_path: KeyPath) -> str:
    out = ""
    for part in key_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Loader(yaml.SafeLoader):
    """Safe loader; YAML 1.1's yes/no/on/off booleans stay as written in the files we own."""


@dataclass
class _Places:
    lines: dict[KeyPath, int] = field(default_factory=dict)
    columns: dict[KeyPath, int] = field(default_factory=dict)
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def key(self, path: KeyPath, mark: yaml.Mark) -> None:
        self.lines[path] = mark.line + 1
        self.columns[path] = mark.column + 1


def _walk(node: yaml.Node, loader: _Loader, path: KeyPath, places: _Places, file: str) -> Any:
    if path not in places.lines:
        places.key(path, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, bool):   # `on:`, `yes:`: keys as written, not YAML 1.1 booleans
                key = key_node.value
            elif not isinstance(key, (str, int)):
                key = str(key)
            mark = key_node.start_mark
            if key in out:
                raise ConfigError([ConfigProblem(file, mark.line + 1, dotted(path + (key,)),
                                                 "duplicate key", mark.column + 1)])
            places.key(path + (key,), mark)
            out[key] = _walk(value_node, loader, path + (key,), places, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loader, path + (i,), places, file) for i, item in enumerate(node.value)]
    places.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path) -> LoadedYaml:
    """Read and parse one YAML file; syntax errors become a ConfigError with line and column."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(file, None, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read: {exc.strerror}")]) from None
    loader = _Loader(text)
    places = _Places()
    try:
        node = loader.get_single_node()
        data = {} if node is None else _walk(node, loader, (), places, file)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([syntax_problem(file, text, exc)]) from None
    finally:
        loader.dispose()
    return LoadedYaml(path, data, places.lines, places.columns, places.values)


# Where PyYAML's own context mark is the place to look: the start of what was left open.
_OPENED_AT_CONTEXT = ("while scanning a quoted scalar", "while scanning a simple key",
                      "while parsing a flow", "while scanning a block scalar",
                      "while scanning an anchor", "while scanning an alias",
                      "while scanning a tag", "while scanning a directive")


def syntax_problem(file: str, text: str, exc: yaml.MarkedYAMLError) -> ConfigProblem:
    """Where a YAML syntax error really is. PyYAML marks where it noticed the problem, which
    for a quote left open is where the *next* quote happens to be, often many lines further
    down: the value then reads as if it ran on to there. Point at the opening instead."""
    mark = exc.problem_mark or exc.context_mark
    message = f"YAML syntax: {exc.problem}"
    if exc.context_mark is not None and (exc.context or "").startswith(_OPENED_AT_CONTEXT):
        mark = exc.context_mark
        if exc.context.startswith("while scanning a quoted scalar"):
            message = f"YAML syntax: a quoted value starts here and is never closed ({exc.problem})"
    elif exc.problem_mark is not None:
        opened = _runaway_quote(text, exc.problem_mark)
        if opened is not None:
            mark = opened.start_mark
            message = (f"YAML syntax: a quoted value starts here and runs on to line "
                       f"{opened.end_mark.line + 1}: is its closing quote missing? "
                       f"({exc.problem})")
    if exc.problem and "'\\t'" in exc.problem:
        message += " (YAML indents with spaces, not tabs)"
    elif exc.problem and exc.problem.startswith("expected <block end>") and message.endswith("'"):
        message += " (is this line indented like the lines around it?)"
    if mark is None:
        return ConfigProblem(file, None, "", message)
    return ConfigProblem(file, mark.line + 1, "", message, mark.column + 1)


def _runaway_quote(text: str, problem: yaml.Mark) -> yaml.ScalarToken | None:
    """The quoted scalar spanning several lines that ends right before `problem`, if any."""
    last = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= problem.index:
                break
            last = token
    except yaml.YAMLError:
        pass
    if (isinstance(last, yaml.ScalarToken) and last.style in ('"', "'")
            and last.end_mark.line > last.start_mark.line):
        return last
    return None


def schema_dir() -> Path:
    return Path(str(resources.files("maildesk") / "skeleton" / "config" / "schema"))


def load_schema(name: str) -> dict[str, Any]:
    with open(schema_dir() / f"{name}.schema.json", encoding="utf-8") as fh:
        return json.load(fh)


# The schemas' patterns, in words: what a person should write instead.
EXPECTED_FORMS = {
    r"^[0-9]+(\.[0-9]+)?\s*(s|m|h|d|w)$": DURATION_FORM,
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": "an email address such as support@example.com",
    r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$": 'a time of day such as "09:00" (quoted)',
    r"^([01][0-9]|2[0-4]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$":
        'a span of the day such as "09:00-18:00"',
    r"^([1-9]|[1-9][0-9])(\.[0-9]+)?%$": "a share such as 80%",
    r"^(none|all|since [0-9]{4}-[0-9]{2}-[0-9]{2})$": "none, all or since YYYY-MM-DD",
    r"^(sqlite|postgresql)(\+[a-z0-9]+)?://":
        "a URL such as sqlite:///../var/maildesk.db or postgresql://maildesk@127.0.0.1/maildesk",
    r"^[A-Za-z0-9.-]+$": "a domain name such as example.com",
    r"^[A-Za-z0-9_-]+$": "letters, digits, - and _",
    r"^[A-Za-z0-9_.-]{1,64}$": "up to 64 letters, digits, ., - and _",
    r"^[A-Za-z][A-Za-z0-9]{0,15}$": "a letter, then up to 15 letters or digits, such as MD",
    r"^[a-z]{2}$": "a two-letter language code such as en",
    r"^https?://": "an http:// or https:// URL",
    r"^[a-z0-9][a-z0-9-]*$": "lower-case letters, digits and -",
}


def _expected_form(pattern: str) -> str:
    return EXPECTED_FORMS.get(pattern, f"the form {pattern}")


def _describe(error: jsonschema.ValidationError) -> str:
    """A short sentence saying what was expected, for the common validator kinds."""
    v = error.validator
    if v == "required":
        return error.message.replace("is a required property", "is required")
    if v == "additionalProperties":
        return f"unknown key ({error.message.split('(')[-1].rstrip(')')})"
    if v == "type":
        return f"expected {error.validator_value}, got {error.instance!r}"
    if v == "enum":
        allowed = ", ".join(repr(x) for x in error.validator_value)
        return f"expected one of {allowed}, got {error.instance!r}"
    if v == "pattern":
        return f"expected {_expected_form(error.validator_value)}, got {error.instance!r}"
    if v in {"minimum", "maximum", "exclusiveMinimum", "minItems", "minLength", "minProperties"}:
        return error.message
    if v in {"oneOf", "anyOf"}:
        return _describe_alternatives(error)
    return error.message


def _describe_alternatives(error: jsonschema.ValidationError) -> str:
    """oneOf/anyOf: what the form of the right type said (a string that is no duration: the
    duration's form), else the list of forms."""
    fitting = [e for e in error.context or () if e.validator not in {"type", "const", "enum"}
               and not e.relative_path]
    if fitting:
        return _describe(fitting[0])
    forms = []
    for e in error.context or ():
        if e.validator == "type":
            forms.append(str(e.validator_value))
        elif e.validator in {"const", "enum"}:
            values = e.validator_value if e.validator == "enum" else [e.validator_value]
            forms.extend(repr(x) for x in values)
    if forms:
        return f"expected {' or '.join(dict.fromkeys(forms))}, got {error.instance!r}"
    return f"expected exactly one of the allowed forms, got {error.instance!r}"


def validate(loaded: LoadedYaml, schema_name: str) -> None:
    """Check `loaded` against config/schema/<schema_name>.schema.json; raise every problem."""
    schema = load_schema(schema_name)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    problems = []
    for error in sorted(validator.iter_errors(loaded.data), key=lambda e: list(map(str, e.path))):
        path = tuple(error.path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
            if extra:
                known = ", ".join(error.schema.get("properties", {}))
                for key in extra:
                    problems.append(loaded.problem(path + (key,), f"unknown key; expected one "
                                                   f"of: {known}" if known else "unknown key",
                                                   at_key=True))
                continue
        problems.append(loaded.problem(path, _describe(error),
                                       at_key=error.validator == "required"))
    if problems:
        raise ConfigError(problems)
