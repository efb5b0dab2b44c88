"""Load a YAML file keeping the line of every key, and validate it against its JSON Schema.

PyYAML composes the node tree once; we build the plain data and a map from key path to line from
the same nodes, so every error can say `file:line: key.path: what was expected`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from maildesk.config.errors import ConfigError, ConfigProblem

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedYaml:
    """The data of one YAML file and the line of each key path in it."""

    path: Path
    data: Any
    lines: dict[KeyPath, int]

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of `key_path`, or of its nearest ancestor that has one."""
        path = tuple(key_path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def problem(self, key_path: KeyPath, message: str) -> ConfigProblem:
        return ConfigProblem(str(self.path), self.line_of(key_path), dotted(key_path), message)


def dotted(key_path: KeyPath) -> str:
    out = ""
    for part in key_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Loader(yaml.SafeLoader):
    """Safe loader; YAML 1.1's yes/no/on/off booleans stay as written in the files we own."""


def _walk(node: yaml.Node, loader: _Loader, path: KeyPath, lines: dict[KeyPath, int],
          file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, bool):   # `on:`, `yes:`: keys as written, not YAML 1.1 booleans
                key = key_node.value
            elif not isinstance(key, (str, int)):
                key = str(key)
            if key in out:
                raise ConfigError([ConfigProblem(file, key_node.start_mark.line + 1,
                                                 dotted(path + (key,)), "duplicate key")])
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, loader, path + (key,), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loader, path + (i,), lines, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path) -> LoadedYaml:
    """Read and parse one YAML file; syntax errors become a ConfigError with the line."""
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
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        data = {} if node is None else _walk(node, loader, (), lines, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigProblem(file, line, "", f"YAML syntax: {exc.problem}")]) from None
    finally:
        loader.dispose()
    return LoadedYaml(path, data, lines)


def schema_dir() -> Path:
    return Path(str(resources.files("maildesk") / "skeleton" / "config" / "schema"))


def load_schema(name: str) -> dict[str, Any]:
    with open(schema_dir() / f"{name}.schema.json", encoding="utf-8") as fh:
        return json.load(fh)


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
        return f"{error.instance!r} does not have the expected form ({error.validator_value})"
    if v in {"minimum", "maximum", "exclusiveMinimum", "minItems", "minLength", "minProperties"}:
        return error.message
    if v == "oneOf":
        return f"expected exactly one of the allowed forms, got {error.instance!r}"
    return error.message


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
                                                   f"of: {known}" if known else "unknown key"))
                continue
        problems.append(loaded.problem(path, _describe(error)))
    if problems:
        raise ConfigError(problems)
