"""Agents' commands: `#resolve`, `#escalate line3` ... on lines of their own at the top of the
new text of a reply. Pure: checks the grammar only; what a command may name (lines, agents)
is checked against the configuration in pipeline/agent.py.

The block ends at the first line that is not a command (blank lines in it are skipped). A line
that starts with `#` and a letter is a command, known or not, whatever follows the word: an
unknown or malformed one is an error rather than text, so a typo such as `#resolv` or
`#resolve.now` never reaches the client. Punctuation after the word is allowed (`#resolve.`,
`#note: client called`, `#priority:P2`). `#note` may carry the first line of the note after it
(`#note client called`); each `#note` line's text is kept, in order.

A ticket has one status, priority, assignee, category and line: two different values for one
of them (`#resolve` and `#pending`, `#priority P1` and `#priority P3`) are an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NO_ARGUMENT = ("resolve", "close", "pending", "open", "note")
OPTIONAL_ARGUMENT = ("escalate",)
REQUIRED_ARGUMENT = ("assign", "priority", "category", "tag")
COMMANDS = (*NO_ARGUMENT, *OPTIONAL_ARGUMENT, *REQUIRED_ARGUMENT)
STATUS = ("resolve", "close", "pending", "open")
SINGLE = ("priority", "assign", "category", "escalate")    # one value per ticket
PRIORITIES = ("P1", "P2", "P3", "P4")

_LINE = re.compile(r"^#([^\W\d_][\w-]*)(.*)$")
_REST = re.compile(r"^[.,;:!]*(?:[ \t\xa0]+(.*)|)$"    # "#resolve", "#resolve.", "#note: text"
                   r"|^[:=][ \t\xa0]*(.+)$")             # "#priority:P2", "#tag=vip"


@dataclass(frozen=True)
class Command:
    name: str
    arg: str | None


@dataclass(frozen=True)
class CommandBlock:
    commands: tuple[Command, ...] = ()
    errors: tuple[str, ...] = ()
    text: str = ""             # what follows the commands
    internal: bool = False     # #note: the text is for the team, never the client


def parse_commands(text: str) -> CommandBlock:
    """Split the leading command lines off a reply's new text."""
    lines = text.split("\n")
    found, end = _leading_commands(lines)
    commands: list[Command] = []
    errors: list[str] = []
    note_lines: list[str] = []
    for match in found:
        read = _read_command(match)
        if isinstance(read, str):
            errors.append(read)
        elif read.name == "note" and read.arg:
            note_lines.append(read.arg)     # the note's first line: text for the team
            commands.append(Command("note", None))
        else:
            commands.append(read)
    errors += _conflicts(commands)
    return CommandBlock(tuple(commands), tuple(errors), _following_text(lines[end:], note_lines),
                        internal=any(c.name == "note" for c in commands))


def _leading_commands(lines: list[str]) -> tuple[list[re.Match[str]], int]:
    """The command lines at the top (blank lines skipped), and where the text begins."""
    found: list[re.Match[str]] = []
    for i, raw in enumerate(lines):
        line = raw.strip().strip("\xa0*")   # Outlook's HTML-to-text may bold a line
        if not line:
            continue
        m = _LINE.match(line)
        if m is None:
            return found, i
        found.append(m)
    return found, len(lines)


def _read_command(m: re.Match[str]) -> Command | str:
    """One command line -> its command, or the error to tell the agent."""
    word, rest = m.group(1), m.group(2)
    name = word.lower()
    r = _REST.match(rest)
    if r is None:
        return (f"#{word}{rest}: not a command line; write #{word} and its argument after a "
                "space, or start the line with another character")
    arg = ((r.group(1) or r.group(2) or "").strip(" \t\xa0*")) or None
    error = _check(name, arg)
    if error:
        return error
    if name == "priority" and arg:
        arg = arg.upper()
    return Command(name, arg)


def _conflicts(commands: list[Command]) -> list[str]:
    """Two different values for what a ticket has one of."""
    errors = []
    statuses = [c.name for c in commands if c.name in STATUS]
    if len(set(statuses)) > 1:
        errors.append("conflicting commands: " + ", ".join(f"#{s}" for s in dict.fromkeys(statuses))
                      + " (give one status)")
    for single in SINGLE:
        values = list(dict.fromkeys(_value(c) for c in commands if c.name == single))
        if len(values) > 1:
            errors.append("conflicting commands: " + ", ".join(
                f"#{single}{' ' + v if v else ''}" for v in values) + f" (give one #{single})")
    return errors


def _following_text(lines: list[str], note_lines: list[str]) -> str:
    """The text after the commands, led by the first lines of the notes."""
    rest = "\n".join(lines).strip("\n")
    if note_lines:
        rest = "\n".join([*note_lines, rest] if rest else note_lines)
    return rest


def _value(command: Command) -> str:
    """A command's argument as compared for conflicts (`#assign Carol@x` is `#assign carol@x`)."""
    return (command.arg or "").lower() if command.name in ("assign", "category") else \
        command.arg or ""


_USAGE = {"assign": "#assign ADDRESS or #assign me", "priority": "#priority P1..P4",
          "category": "#category NAME", "tag": "#tag NAME"}
# Commands whose argument is one word, and what to say when it is more.
_ONE_WORD = {"escalate": "takes one line id (or none for the next line)",
             "assign": "takes one address (or me)"}


def _check(name: str, arg: str | None) -> str | None:
    if name not in COMMANDS:
        return (f"unknown command #{name}; known commands: "
                + " ".join(f"#{c}" for c in COMMANDS))
    if name in NO_ARGUMENT and arg and name != "note":
        return f"#{name} takes no argument (got {arg!r}); write your text on the next lines"
    if name in REQUIRED_ARGUMENT and not arg:
        return f"#{name} needs an argument: " + _USAGE[name]
    if name == "priority" and (arg or "").upper() not in PRIORITIES:
        return f"#priority {arg}: expected one of {', '.join(PRIORITIES)}"
    if name in _ONE_WORD and arg and len(arg.split()) > 1:
        return f"#{name} {arg}: {_ONE_WORD[name]}"
    return None
