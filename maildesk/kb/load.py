"""load_kb: read `kb/<lang>/<slug>.md` into a KnowledgeBase, with every problem found.

Each problem names the file, the line (and the column when known) and what is wrong: a name
that is not a slug or a language code, two slugs that differ only by letter case, front matter
that is missing, not YAML or not of the schema (config/schema/kb-article.schema.json),
`related` naming a slug that does not exist, a macro that does not compile, reads a variable
outside the documented context or does not render with sample data, a command that is not
`#word [args]`. The config loader turns them into ConfigProblems, so `maildesk check` and a
reload report them with the other files' mistakes. A missing directory is an empty KB.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from maildesk.kb import frontmatter
from maildesk.kb.frontmatter import FrontMatterError, KeyPath, dotted
from maildesk.kb.macros import check_macro
from maildesk.kb.model import Article, KnowledgeBase

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
LANGUAGE = re.compile(r"^([a-z]{2})(?:-[a-z0-9]{2,8})?$")
SCHEMA = "kb-article"

# ISO 639-1: the language folders a KB may have (a region may follow: pt-br).
LANGUAGES = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy
da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu
hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb
lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om
or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw
ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
""".split())


@dataclass(frozen=True)
class KbProblem:
    """One thing wrong in the knowledge base: where (file, line, column) and what."""

    path: Path
    line: int | None
    message: str
    column: int | None = None
    key: str = ""               # the front matter key, e.g. related[1]

    def __str__(self) -> str:
        where = str(self.path)
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}:{f' {self.key}:' if self.key else ''} {self.message}"


def load_kb(directory: Path, default_language: str = "en"
            ) -> tuple[KnowledgeBase, list[KbProblem]]:
    """Every article under `directory` and every problem found; the KB holds the articles
    that could be read (a caller refuses the whole set while there are problems)."""
    directory = Path(directory)
    if not directory.exists():
        return KnowledgeBase(default_language=default_language, directory=directory), []
    problems: list[KbProblem] = []
    if not directory.is_dir():
        return (KnowledgeBase(default_language=default_language, directory=directory),
                [KbProblem(directory, None, "not a directory (paths.kb names the folder that "
                                            "holds <lang>/<slug>.md)")])
    articles: dict[tuple[str, str], Article] = {}
    for entry in _entries(directory):
        if not entry.is_dir():
            problems.append(KbProblem(entry, None, "articles go in a language folder: "
                                                   f"{directory}/<lang>/<slug>.md"))
            continue
        language = _language(entry, problems)
        for article in _read_folder(entry, language, problems):
            articles[(article.slug, article.language)] = article
    kb = KnowledgeBase(articles=dict(sorted(articles.items())), default_language=default_language,
                       directory=directory)
    problems.extend(_related_problems(kb))
    return kb, problems


def _entries(directory: Path) -> list[Path]:
    """A folder's entries, without hidden files and editors' backups."""
    return sorted(p for p in directory.iterdir()
                  if not p.name.startswith(".") and not p.name.endswith("~"))


def _language(folder: Path, problems: list[KbProblem]) -> str:
    name = folder.name
    m = LANGUAGE.match(name)
    if not m:
        problems.append(KbProblem(folder, None, f"language folder {name!r} is not a language "
                                                "code: lower-case, such as en, ru or pt-br"))
        return name.lower()
    if m.group(1) not in LANGUAGES:
        problems.append(KbProblem(folder, None, f"unknown language {name!r} (an ISO 639-1 "
                                                "code such as en, ru, de)"))
    return name


def _read_folder(folder: Path, language: str, problems: list[KbProblem]) -> list[Article]:
    out = []
    seen: dict[str, Path] = {}
    for path in _entries(folder):
        if path.is_dir():
            problems.append(KbProblem(path, None, "a language folder holds <slug>.md files, "
                                                  "not folders"))
            continue
        if path.suffix.lower() != ".md":
            problems.append(KbProblem(path, 1, "not an article: articles are <slug>.md files"))
            continue
        slug = path.stem
        if not SLUG.match(slug) or path.suffix != ".md":
            problems.append(KbProblem(path, 1, f"file name {path.name!r}: a slug is lower-case "
                                               "letters, digits and '-' (a-z, 0-9), then .md"))
            slug = slug.lower()
        if slug in seen:
            problems.append(KbProblem(path, 1, f"duplicate slug {slug!r} in {language}: "
                                               f"{seen[slug].name} has it too (slugs are "
                                               "compared without letter case)"))
            continue
        seen[slug] = path
        article = read_article(path, slug, language, problems)
        if article is not None:
            out.append(article)
    return out


def read_article(path: Path, slug: str, language: str, problems: list[KbProblem]
                 ) -> Article | None:
    """One article; None (and its problems added) when it cannot be read as one."""
    def problem(message: str, line: int | None = 1, column: int | None = None,
                key: KeyPath = ()) -> None:
        problems.append(KbProblem(path, line, message, column, dotted(key)))

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problem(f"not UTF-8 text ({exc.reason})", None)
        return None
    except OSError as exc:
        problem(f"cannot read: {exc.strerror}", None)
        return None
    try:
        parts = frontmatter.split(text)
        fm = frontmatter.parse(parts.yaml_text, parts.yaml_line)
    except FrontMatterError as exc:
        problem(exc.message, exc.line, exc.column, exc.key)
        return None
    schema_problems = _schema_problems(fm.data)
    for key, message in schema_problems:
        problem(message, fm.line_of(key)[0], key=key)
    data = fm.data if isinstance(fm.data, dict) else {}
    macro = data.get("macro")
    macro_line = fm.value_start(("macro",)) if isinstance(macro, str) else None
    if isinstance(macro, str):
        for line, message in check_macro(macro):
            problem(message, (macro_line or 1) + line - 1, key=("macro",))
    if schema_problems:
        return None
    return Article(slug=slug, language=language, title=data["title"].strip(),
                   body=parts.body, path=path, body_line=parts.body_line,
                   tags=tuple(data.get("tags", ())), audience=data.get("audience", "public"),
                   keywords=tuple(data.get("keywords", ())),
                   related=tuple(data.get("related", ())), macro=macro, macro_line=macro_line,
                   commands=tuple(data.get("commands", ())),
                   related_lines=tuple(fm.line_of(("related", i))[0] or 1
                                       for i in range(len(data.get("related", ())))))


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    path = resources.files("maildesk") / "skeleton" / "config" / "schema" / f"{SCHEMA}.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _schema_problems(data: Any) -> list[tuple[KeyPath, str]]:
    out: list[tuple[KeyPath, str]] = []
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path)))
    for error in errors:
        path = tuple(error.path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = ", ".join(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in error.schema.get("properties", {}):
                    out.append((path + (key,), f"unknown key; expected one of: {known}"))
            continue
        out.append((path, _describe(error, path)))
    return out


def _describe(error: jsonschema.ValidationError, path: KeyPath) -> str:
    v = error.validator
    if v == "required":
        return error.message.replace("is a required property", "is required")
    if v == "type":
        expected = "a mapping (key: value lines)" if error.validator_value == "object" \
            else error.validator_value
        return f"expected {expected}, got {error.instance!r}"
    if v == "enum":
        allowed = ", ".join(repr(x) for x in error.validator_value)
        return f"expected one of {allowed}, got {error.instance!r}"
    if v == "pattern" and path[:1] == ("commands",):
        return (f"{error.instance!r} is not a command: #word, or #word and its arguments "
                "(\"#pending\", \"#tag printer\")")
    if v == "pattern" and path[:1] == ("related",):
        return f"{error.instance!r} is not a slug (lower-case a-z, 0-9 and '-')"
    if v == "pattern" and path[:1] == ("tags",):
        return f"tag {error.instance!r}: one word, no spaces, '#', ',' or '/'"
    if v == "minLength" or (v == "pattern" and path[:1] == ("title",)):
        return "must not be empty"
    return error.message


def _related_problems(kb: KnowledgeBase) -> list[KbProblem]:
    slugs = set(kb.slugs())
    out = []
    for article in kb.articles.values():
        for i, (slug, line) in enumerate(zip(article.related, article.related_lines)):
            if slug == article.slug:
                out.append(KbProblem(article.path, line, "an article is not related to "
                                                         "itself", key=f"related[{i}]"))
            elif slug not in slugs:
                out.append(KbProblem(article.path, line, f"no article {slug!r} (no "
                                                         f"<lang>/{slug}.md in the KB)",
                                     key=f"related[{i}]"))
    return out
