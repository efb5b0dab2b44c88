"""Canned answers and searches in an agent's reply. Pure.

`#macro NAME` and `#kb SLUG`, each on a line of its own anywhere in the new text, are replaced
by the answer from the knowledge base (kb/<lang>/<slug>.md): the article's macro rendered with
the ticket's data, or the article itself, in the ticket's language when there is a version in
it. `#search WORDS` lines are taken out: questions for the agent alone. Anything that cannot be
inserted exactly (an unknown name, an internal article, a variable the ticket has no value for,
a template error) is an error: nothing reaches the client and the agent is told what was wrong,
with the closest names. A blank or a literal `{{ placeholder }}` never goes out.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from maildesk.kb.model import Article, KnowledgeBase
from maildesk.outbound.when import FILTERS as WHEN_FILTERS

_INSERT = re.compile(r"^[ \t\xa0]*#(macro|kb)(?![\w-])[ \t\xa0:]*(\S*?)[ \t\xa0.,;!]*$",
                     re.IGNORECASE)
_SEARCH = re.compile(r"^[ \t\xa0]*#search(?![\w-])[ \t\xa0:]*(.*?)[ \t\xa0]*$", re.IGNORECASE)

_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False,
                            autoescape=False)
_ENV.filters.update(WHEN_FILTERS)   # the mail templates' date phrases: by_time, on_time ...


@dataclass(frozen=True)
class Inserted:
    kind: str        # macro | kb
    slug: str
    language: str


@dataclass(frozen=True)
class Expanded:
    text: str
    commands: tuple[str, ...] = ()        # carried by the inserted macros, in order
    inserted: tuple[Inserted, ...] = ()
    searches: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


def without_none(value: Any) -> Any:
    """The context with every None left out: a template asking for a value the ticket does
    not have fails (StrictUndefined) instead of writing "None" or a blank to the client."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    return value


def expand(text: str, kb: KnowledgeBase, *, language: str | None,
           context: dict[str, Any]) -> Expanded:
    """Replace the insert lines of `text`, take out its search lines (module docstring)."""
    lines: list[str] = []
    commands: list[str] = []
    inserted: list[Inserted] = []
    searches: list[str] = []
    errors: list[str] = []
    for line in text.split("\n"):
        search = _SEARCH.match(line)
        if search:
            if search.group(1):
                searches.append(search.group(1))
            else:
                errors.append("#search: say what to look for, e.g. #search printer not printing")
            continue
        insert = _INSERT.match(line)
        if not insert:
            lines.append(line)
            continue
        kind, slug = insert.group(1).lower(), insert.group(2).lower()
        found = _insert(kind, slug, kb, language, context)
        if isinstance(found, str):
            errors.append(found)
            continue
        article, rendered = found
        lines.append(rendered)
        inserted.append(Inserted(kind, article.slug, article.language))
        if kind == "macro":
            commands.extend(article.commands)
    return Expanded("\n".join(lines), tuple(commands), tuple(inserted), tuple(searches),
                    tuple(errors))


def _insert(kind: str, slug: str, kb: KnowledgeBase, language: str | None,
            context: dict[str, Any]) -> tuple[Article, str] | str:
    """The article and its text to insert, or why not."""
    if not slug:
        names = kb.macros() if kind == "macro" else kb.slugs()
        return f"#{kind}: say which one, e.g. #{kind} {names[0] if names else 'password-reset'}"
    article = kb.get(slug, language)
    if article is None or (kind == "macro" and article.macro is None):
        return _unknown(kind, slug, kb, article)
    if kind == "kb":
        if not article.public:
            return (f"#kb {slug}: the article is internal ({article.path}); it is not sent to "
                    "clients")
        return article, f"{article.title}\n\n{article.body.strip()}"
    return _render(article, context)


def _unknown(kind: str, slug: str, kb: KnowledgeBase, article: Article | None) -> str:
    names = kb.macros() if kind == "macro" else kb.slugs()
    if article is not None:   # an article without a macro
        return f"#macro {slug}: the article has no macro; #kb {slug} inserts the article itself"
    close = difflib.get_close_matches(slug, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else (
        f"; known: {', '.join(names[:10])}" if names else "; the knowledge base is empty")
    what = "macro" if kind == "macro" else "article"
    return f"#{kind} {slug}: no such {what} in the knowledge base{hint}"


def _render(article: Article, context: dict[str, Any]) -> tuple[Article, str] | str:
    assert article.macro is not None
    where = f"{article.path}:{article.macro_line or '?'}"
    try:
        text = _ENV.from_string(article.macro).render(
            {**without_none(context), "lang": article.language})
    except TemplateError as exc:
        return f"#macro {article.slug} ({where}): {exc}"
    return article, text.strip("\n")
