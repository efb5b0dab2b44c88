"""Configuration errors that point at a file, a line, a column and a key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in one file: where it is and what was expected.

    str() is one line, `file:line:column: key: message`, the form editors and terminals turn
    into a link to the place (line and column are left out where unknown)."""

    file: str
    line: int | None
    key: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigError(Exception):
    """Raised when a configuration file cannot be used; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@contextmanager
def gather_problems(problems: list[ConfigProblem]) -> Iterator[None]:
    """Add the problems of a ConfigError raised in the block to `problems` and go on, so one
    load reports what is wrong in every file and section together."""
    try:
        yield
    except ConfigError as exc:
        problems.extend(exc.problems)
