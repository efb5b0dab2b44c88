"""Canned answers (an article's `macro`): Jinja2 text rendered in a sandbox with StrictUndefined,
so a missing value is an error to the agent, never a blank to the client.

The context a macro may use is fixed and documented (README, "Knowledge base and canned
answers"); `check_macro` compiles a macro, checks every name it reads against that context and
renders it once with sample data, and returns (line in the macro, message) for each problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

# Top-level name -> the attributes it has (None: a plain value).
MACRO_CONTEXT: dict[str, tuple[str, ...] | None] = {
    "ticket": ("number", "subject", "priority", "line", "status"),
    "tag": None,                # "[MD-1042]"
    "client_name": None,
    "client_address": None,
    "agent_name": None,
    "instance": None,           # instance.name of maildesk.yaml
    "deadlines": ("first_response", "resolution"),   # datetimes (or None): `| datetime`
}
# Filters beyond Jinja2's own; the renderer passes the real ones (outbound's `datetime`).
MACRO_FILTERS = ("datetime", "by_time", "on_time", "zone")


def documented_names() -> list[str]:
    """`ticket.number`, ..., `deadlines.resolution`: what the README lists."""
    out = []
    for name, attrs in MACRO_CONTEXT.items():
        out.extend(f"{name}.{a}" for a in attrs) if attrs else out.append(name)
    return out


def macro_environment(filters: Mapping[str, Callable[..., Any]] | None = None
                      ) -> SandboxedEnvironment:
    """The sandbox every macro is compiled and rendered in (plain text: no autoescape)."""
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                               keep_trailing_newline=True)
    for name in MACRO_FILTERS:
        env.filters[name] = (filters or {}).get(name, _plain_datetime)
    return env


def _plain_datetime(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M %Z").strip() if isinstance(value, datetime) else \
        str(value)


def sample_context() -> dict[str, Any]:
    """Sample data every macro must render with (`maildesk check`)."""
    when = datetime(2026, 12, 1, 12, 0, tzinfo=timezone(timedelta(hours=3)))
    return {
        "ticket": {"number": 1042, "subject": "Касса не печатает чеки", "priority": "P1",
                   "line": "line2", "status": "open"},
        "tag": "[MD-1042]",
        "client_name": "Иван Петров",
        "client_address": "ivan@customer.example",
        "agent_name": "Carol",
        "instance": "Example Support",
        "deadlines": {"first_response": when, "resolution": when + timedelta(days=1)},
    }


def compile_macro(source: str, env: SandboxedEnvironment | None = None) -> Template:
    """The compiled template; raises jinja2.TemplateError."""
    return (env or macro_environment()).from_string(source)


def render_macro(source: str, context: Mapping[str, Any],
                 filters: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """Render a macro with the ticket's data; raises jinja2.TemplateError (UndefinedError for a
    missing value) so the caller tells the agent rather than mailing a gap to the client."""
    return compile_macro(source, macro_environment(filters)).render(**context)


def check_macro(source: str) -> list[tuple[int, str]]:
    """(line within the macro, message) for each problem: syntax, names outside the documented
    context, and errors rendering it with sample data. (Remembered per text: a reload checks
    only the macros that changed.)"""
    return list(_check(source))


@lru_cache(maxsize=4096)
def _check(source: str) -> tuple[tuple[int, str], ...]:
    env = _check_environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return ((exc.lineno or 1, f"template syntax: {exc.message}"),)
    try:      # code generation finds an unknown filter or test (TemplateAssertionError)
        problems = _name_problems(ast)
        template = env.from_string(ast)
    except TemplateSyntaxError as exc:
        return ((exc.lineno or 1, f"template: {exc.message}"),)
    if problems:
        return tuple(problems)
    try:
        template.render(**sample_context())
    except TemplateError as exc:
        return ((_template_line(exc), f"does not render with sample data: {exc}"),)
    except Exception as exc:  # noqa: BLE001 - a macro's own arithmetic/type mistake
        return ((_template_line(exc), f"does not render with sample data: "
                                      f"{type(exc).__name__}: {exc}"),)
    return ()


@lru_cache(maxsize=1)
def _check_environment() -> SandboxedEnvironment:
    return macro_environment()


def _name_problems(ast: nodes.Template) -> list[tuple[int, str]]:
    known = ", ".join(documented_names())
    problems = []
    undeclared = meta.find_undeclared_variables(ast)
    for name in sorted(undeclared - MACRO_CONTEXT.keys()):
        line = min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), default=1)
        problems.append((line, f"unknown variable {name!r} (a macro may use: {known})"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not (isinstance(base, nodes.Name) and base.name in undeclared):
            continue
        attrs = MACRO_CONTEXT.get(base.name)
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attr = node.arg.value
        else:
            continue
        if attrs is None or attr not in attrs:
            problems.append((node.lineno, f"unknown variable {base.name}.{attr} "
                                          f"(a macro may use: {known})"))
    return sorted(set(problems))


def _template_line(exc: BaseException) -> int:
    """The template line a rendering error happened on (Jinja2 rewrites the traceback so the
    template's frames carry its lines), else 1."""
    line = 1
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
