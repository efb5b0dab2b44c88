"""The knowledge base commands: list, show, search, build the static site. Plain data out.

They work on the KnowledgeBase that load_settings read (Settings.kb), so they see exactly what
the daemon sees; they need no database.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maildesk.config import Settings
from maildesk.kb.model import Article, KnowledgeBase
from maildesk.kb.rank import search_articles
from maildesk.kb.site import build_site
from maildesk.services.errors import BadRequest, NotFound


def _check_language(kb: KnowledgeBase, language: str | None) -> None:
    if language is not None and language not in kb.languages():
        known = ", ".join(kb.languages()) or "none"
        raise BadRequest(f"no articles in language {language!r} (the KB has: {known})")


def article_row(article: Article) -> dict[str, Any]:
    """An article without its body: what `kb list --json` gives for each."""
    return {"slug": article.slug, "language": article.language, "title": article.title,
            "audience": article.audience, "tags": list(article.tags),
            "keywords": list(article.keywords), "related": list(article.related),
            "macro": article.macro is not None, "commands": list(article.commands),
            "path": str(article.path)}


def list_articles(settings: Settings, language: str | None = None) -> list[dict[str, Any]]:
    """Every article (of one language), by slug then language."""
    kb = settings.kb
    _check_language(kb, language)
    return [article_row(a) for (_, lang), a in sorted(kb.articles.items())
            if language is None or lang == language]


def show_article(settings: Settings, slug: str, language: str | None = None
                 ) -> dict[str, Any]:
    """One article, with its body and macro; in `language`, else the default language's,
    else any language's version. Raises NotFound."""
    kb = settings.kb
    article = kb.get(slug, language)
    if article is None:
        raise NotFound(f"no article {slug!r}" + (f" (known: {', '.join(kb.slugs())})"
                                                 if len(kb) else f": the KB in {kb.directory} "
                                                 "is empty"))
    row = article_row(article)
    row.update(body=article.body, macro_text=article.macro,
               languages=sorted(lang for s, lang in kb.articles if s == article.slug))
    return row


def search(settings: Settings, query: str, language: str | None = None, limit: int = 10,
           public_only: bool = False) -> list[dict[str, Any]]:
    """The best matching articles, best first: slug, language, title, score (0..1), snippet,
    and audience."""
    kb = settings.kb
    _check_language(kb, language)
    if not query.strip():
        raise BadRequest("give some words to search for")
    hits = search_articles(kb, query, language=language, limit=limit, public_only=public_only)
    out = []
    for hit in hits:
        row = asdict(hit)
        row["audience"] = kb.articles[(hit.slug, hit.language)].audience
        out.append(row)
    return out


@dataclass(frozen=True)
class BuiltSite:
    output: Path
    pages: int
    articles: int
    languages: tuple[str, ...]

    @property
    def index(self) -> Path:
        return self.output / "index.html"


def build(settings: Settings, output: Path) -> BuiltSite:
    """Write the static site of the public articles under `output` (made if missing; pages
    already there are replaced, other files left alone)."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise BadRequest(f"{output} is not a directory")
    site = build_site(settings.kb, title=settings.instance_name)
    for rel, html in site.pages.items():
        _write_atomically(output / rel, html)
    return BuiltSite(output, len(site.pages), site.articles, site.languages)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
