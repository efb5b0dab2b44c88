"""Split an article into its YAML front matter and Markdown body, and read the YAML keeping the
file's line (and column) of every key and value, so each problem can point at file:line.

Pure: no maildesk imports. (The config loader has its own line-keeping reader; the knowledge
base sits below config and reads Markdown files, not whole YAML files.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]
FENCE = "---"
# libyaml when PyYAML has it (ten times faster; the same nodes, marks and errors).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FrontMatterError(Exception):
    """The file has no usable front matter; `line`/`column` are the file's, 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 key: KeyPath = ()):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.key = key


@dataclass(frozen=True)
class Split:
    """The front matter text (from file line `yaml_line`) and the body (from `body_line`)."""

    yaml_text: str
    yaml_line: int
    body: str
    body_line: int


def split(text: str) -> Split:
    """Cut `---` / YAML / `---` / body; raise FrontMatterError when the fences are missing."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != FENCE:
        raise FrontMatterError("no front matter: an article starts with a `---` line, then "
                               "YAML (title: ...), then another `---` line", 1)
    for i in range(1, len(lines)):
        if lines[i].rstrip() in (FENCE, "..."):
            return Split("".join(lines[1:i]), 2, "".join(lines[i + 1:]), i + 2)
    raise FrontMatterError("the front matter has no closing `---` line", 1)


@dataclass(frozen=True)
class FrontMatter:
    """The YAML's data, and for each key path the line and column in the file (1-based) and
    the style of a scalar value (`|`, `>`, a quote, or None for plain)."""

    data: Any
    lines: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[KeyPath, tuple[int, int, str | None]] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The line and column of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), (None, None))

    def value_start(self, path: KeyPath) -> int | None:
        """The file line where the text of a scalar value starts: the line after `key: |`
        for a block scalar, else the line the value is on."""
        if path not in self.values:
            return None
        line, _, style = self.values[path]
        return line + 1 if style in ("|", ">") else line


def parse(yaml_text: str, first_line: int) -> FrontMatter:
    """The YAML of the front matter, its lines shifted to the file's (`first_line` is the
    file line of the YAML's first line). Raise FrontMatterError on a syntax error or a
    duplicate key."""
    loader = _Loader(yaml_text)
    try:
        node = loader.get_single_node()
        fm = FrontMatter({})
        if node is not None:
            data = _walk(node, loader, (), fm, first_line - 1)
            fm = FrontMatter(data, fm.lines, fm.values)
        return fm
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + first_line if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "cannot be read"
        raise FrontMatterError(f"YAML syntax: {problem}", line, column) from None
    finally:
        loader.dispose()


def _walk(node: yaml.Node, loader: Any, path: KeyPath, fm: FrontMatter,
          shift: int) -> Any:
    where = (node.start_mark.line + 1 + shift, node.start_mark.column + 1)
    fm.lines.setdefault(path, where)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                key = str(key)
            key_at = (key_node.start_mark.line + 1 + shift, key_node.start_mark.column + 1)
            if key in out:
                raise FrontMatterError("duplicate key", *key_at, key=path + (key,))
            fm.lines[path + (key,)] = key_at
            out[key] = _walk(value_node, loader, path + (key,), fm, shift)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loader, path + (i,), fm, shift) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.ScalarNode):
        fm.values[path] = (*where, node.style)
    return loader.construct_object(node, deep=True)


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
