"""Macros (the sandbox, the documented context) and the static site's pages (pure)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from maildesk.kb.load import load_kb
from maildesk.kb.macros import check_macro, documented_names, render_macro, sample_context
from maildesk.kb.model import Article, KnowledgeBase
from maildesk.kb.site import CSP, build_site

ROOT = Path(__file__).resolve().parents[3]


def test_documented_names():
    assert documented_names() == [
        "ticket.number", "ticket.subject", "ticket.priority", "ticket.line", "ticket.status",
        "tag", "client_name", "client_address", "agent_name", "instance",
        "deadlines.first_response", "deadlines.resolution"]


def test_render_is_strict_and_sandboxed():
    ctx = sample_context()
    assert render_macro("Hi {{ client_name }} {{ tag }}", ctx) == "Hi Иван Петров [MD-1042]"
    with pytest.raises(UndefinedError):
        render_macro("Hi {{ client_name }}", {})
    with pytest.raises(SecurityError):
        render_macro("{{ ''.__class__.__mro__ }}", ctx)
    out = render_macro("{{ deadlines.resolution | datetime }}", ctx,
                       filters={"datetime": lambda v: v.strftime("%d.%m.%Y")})
    assert out == "02.12.2026"


def test_check_macro_lines():
    assert check_macro("Hello {{ client_name }}\n{{ ticket.subject }}\n") == []
    assert check_macro("a\nb\n{{ nope }}") == [
        (3, "unknown variable 'nope' (a macro may use: " + ", ".join(documented_names())
         + ")")]
    ((line, message),) = check_macro("a\n{% for x in %}\n")
    assert line == 2 and message.startswith("template syntax:")


def article(slug: str, lang: str, body: str, **kw) -> Article:
    return Article(slug=slug, language=lang, title=kw.pop("title", slug.title()), body=body,
                   path=Path(f"{lang}/{slug}.md"), **kw)


def test_site_pages_and_links():
    kb = KnowledgeBase({
        ("a", "en"): article("a", "en", "See [b](b.md), [secret](secret.md), [gone](gone.md), "
                             "[web](https://example.com/x) and [top](#top).\n\n"
                             "<script>alert(1)</script> ![a picture](http://x/y.png)\n",
                             tags=("printer", "тег"), related=("b", "secret")),
        ("b", "en"): article("b", "en", "B.", title="Bee </script>"),
        ("b", "ru"): article("b", "ru", "Бэ."),
        ("secret", "en"): article("secret", "en", "Agents only.", audience="internal"),
    })
    site = build_site(kb, title="Desk")
    assert set(site.pages) == {"index.html", "en/index.html", "en/a.html", "en/b.html",
                               "en/tags/printer.html", "en/tags/тег.html", "ru/index.html",
                               "ru/b.html"}
    assert (site.articles, site.languages) == (3, ("en", "ru"))
    a = site.pages["en/a.html"]
    assert '<a href="b.html"' in a and "secret.html" not in a and "gone.html" not in a
    assert "[secret]" not in a and "secret" in a and "gone" in a      # unlinked, text kept
    assert 'href="https://example.com/x"' in a and 'href="#top"' in a
    assert "<script>alert" not in a and "&lt;script&gt;alert(1)&lt;/script&gt;" in a
    assert "<img" not in a and "a picture" in a
    assert 'href="tags/%D1%82%D0%B5%D0%B3.html"' in a
    assert f'content="{CSP}"' in a and '<html lang="en">' in a
    ru_b = site.pages["ru/b.html"]
    assert 'href="../en/b.html"' in ru_b and '<html lang="ru">' in ru_b
    index = site.pages["en/index.html"]
    data = re.search(r'<script type="application/json" id="kb-index">(.*?)</script>', index,
                     re.DOTALL).group(1)
    assert "</script>" not in data
    assert {d["url"] for d in json.loads(data)} == {"a.html", "b.html"}


def test_example_site_holds_only_public_articles():
    kb, _ = load_kb(ROOT / "config" / "kb", "en")
    site = build_site(kb)
    assert not any("kkt-fiscal-drive" in name or "kkt-fiscal-drive" in html
                   for name, html in site.pages.items())
    assert site.articles == 6
    assert "Касса не печатает чек" in site.pages["ru/cash-register-receipts.html"]
    for name, html in site.pages.items():
        assert not re.search(r'(?:src|href)="(?:https?:)?//', html), name
