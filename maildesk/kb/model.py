"""What the knowledge base holds, as the loader (kb/load.py) reads it from the files.

`kb/<lang>/<slug>.md`: YAML front matter between `---` lines, then the article in Markdown.
One slug names one answer; each language version is its own file under its language folder,
so a translation is found by the slug, never by copying a name into N places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

AUDIENCES = ("public", "internal")


@dataclass(frozen=True)
class Article:
    slug: str
    language: str
    title: str
    body: str                          # Markdown, as written below the front matter
    path: Path
    body_line: int = 1                 # the file's line where `body` starts (for errors)
    tags: tuple[str, ...] = ()
    audience: str = "public"           # public: may be suggested to clients and published
    keywords: tuple[str, ...] = ()
    related: tuple[str, ...] = ()      # slugs
    macro: str | None = None           # a canned answer (Jinja2, sandboxed, strict)
    macro_line: int | None = None      # the file's line where the macro text starts
    commands: tuple[str, ...] = ()     # commands a macro carries: "#pending", "#tag printer"
    related_lines: tuple[int, ...] = field(default=(), compare=False)  # file line of each

    @property
    def public(self) -> bool:
        return self.audience == "public"


@dataclass(frozen=True)
class KnowledgeBase:
    """All articles, by (slug, language); `default_language` for a slug's fallback."""

    articles: dict[tuple[str, str], Article] = field(default_factory=dict)
    default_language: str = "en"
    directory: Path | None = None      # where it was read from (paths.kb)

    def get(self, slug: str, language: str | None = None) -> Article | None:
        """The slug in `language`, else in the default language, else in any language."""
        for lang in (language, self.default_language):
            if lang and (slug, lang) in self.articles:
                return self.articles[(slug, lang)]
        return next((a for (s, _), a in sorted(self.articles.items()) if s == slug), None)

    def slugs(self) -> list[str]:
        return sorted({slug for slug, _ in self.articles})

    def macros(self) -> list[str]:
        return sorted({slug for (slug, _), a in self.articles.items() if a.macro is not None})

    def languages(self) -> list[str]:
        return sorted({lang for _, lang in self.articles})

    def in_language(self, language: str) -> list[Article]:
        return [a for (_, lang), a in sorted(self.articles.items()) if lang == language]

    def __len__(self) -> int:
        return len(self.articles)


EMPTY = KnowledgeBase()
