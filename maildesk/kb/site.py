"""`maildesk kb build`: the PUBLIC articles as a static, self-contained HTML site.

Pure: build_site returns the pages (relative path -> HTML); the service writes them.

    index.html                    the languages
    <lang>/index.html             the articles, the tags, a search box (inline JSON index)
    <lang>/<slug>.html            an article with its tags, related articles and translations
    <lang>/tags/<tag>.html        the articles with one tag

Nothing is fetched from anywhere: styles and the search script are inline, no web fonts, and
each page's Content-Security-Policy forbids loading anything. Links between pages are
relative, so the folder works from a file:// URL, a web server's subfolder or an archive.
Markdown is rendered by markdown-it-py (CommonMark and tables; raw HTML in an article is shown
as text) and sanitised with nh3. A link to another article is written `[text](slug.md)`; it
becomes a link to that article's page, or plain text when the article is not published.
Images are shown as their alt text (the site carries no files besides its pages).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from maildesk.kb.model import Article, KnowledgeBase
from maildesk.kb.plain import markdown_text, sentences, shorten

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")

ALLOWED_TAGS = {"a", "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em",
                "code", "pre", "blockquote", "hr", "br", "table", "thead", "tbody", "tr", "th",
                "td", "del", "s"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_ARTICLE_LINK = re.compile(r"^(?:\./)?([a-z0-9][a-z0-9-]*)(?:\.md|\.html)?(#[\w-]*)?$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "de": "Deutsch", "fr": "Français",
                  "es": "Español", "it": "Italiano", "uk": "Українська", "pl": "Polski",
                  "kk": "Қазақ тілі", "be": "Беларуская", "pt": "Português", "nl": "Nederlands",
                  "tr": "Türkçe", "zh": "中文", "ja": "日本語"}
UI = {
    "en": {"help": "Help", "search": "Search", "placeholder": "Search the articles…",
           "articles": "Articles", "tags": "Topics", "related": "Related articles",
           "translations": "In other languages", "tagged": "Articles on “{tag}”",
           "no_results": "No article matches your search.", "all": "All articles",
           "languages": "Languages", "empty": "No articles yet.", "results": "Results"},
    "ru": {"help": "Помощь", "search": "Поиск", "placeholder": "Поиск по статьям…",
           "articles": "Статьи", "tags": "Темы", "related": "Похожие статьи",
           "translations": "На других языках", "tagged": "Статьи по теме «{tag}»",
           "no_results": "Ничего не найдено.", "all": "Все статьи",
           "languages": "Языки", "empty": "Статей пока нет.", "results": "Найдено"},
}

STYLE = """
:root{color-scheme:light;--fg:#1d2430;--muted:#5b6573;--line:#d9dee5;--accent:#1a5fb4}
*{box-sizing:border-box}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif;
color:var(--fg);background:#fff}
header,main,footer{max-width:48rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem;border-bottom:1px solid var(--line)}
header nav{display:flex;gap:1rem;flex-wrap:wrap;padding-bottom:.6rem;font-size:.95rem}
footer{color:var(--muted);font-size:.85rem;padding:2rem 1rem}
a{color:var(--accent)}
h1{font-size:1.7rem;line-height:1.25;margin:1.2rem 0 .6rem}
h2{font-size:1.25rem;margin:1.6rem 0 .5rem}
.tags{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4rem}
.tags a{display:inline-block;padding:.05rem .55rem;border:1px solid var(--line);
border-radius:1rem;text-decoration:none;font-size:.85rem}
.articles{list-style:none;padding:0}
.articles li{padding:.55rem 0;border-bottom:1px solid var(--line)}
.articles p{margin:.15rem 0 0;color:var(--muted);font-size:.92rem}
.search input{width:100%;font:inherit;padding:.5rem .7rem;border:1px solid #aab3bf;
border-radius:.35rem}
pre{background:#f4f6f8;padding:.7rem;overflow-x:auto}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
table{border-collapse:collapse}th,td{border:1px solid var(--line);padding:.3rem .5rem}
blockquote{margin:0;padding-left:1rem;border-left:3px solid var(--line);color:var(--muted)}
"""

SEARCH_SCRIPT = """
(function () {
  var box = document.getElementById("kb-search"), input = document.getElementById("kb-q");
  var list = document.getElementById("kb-all"), out = document.getElementById("kb-results");
  var none = document.getElementById("kb-none");
  var data = JSON.parse(document.getElementById("kb-index").textContent);
  function norm(s) { return s.toLowerCase().replace(/ё/g, "е"); }
  function stem(w) { return w.length > 5 ? w.slice(0, Math.max(5, Math.ceil(w.length * 0.7))) : w; }
  data.forEach(function (d) { d.T = norm(d.title); d.K = norm(d.keywords); d.X = norm(d.text); });
  box.hidden = false;
  input.addEventListener("input", function () {
    var words = norm(input.value).split(/[^\\p{L}\\p{N}]+/u).filter(Boolean).map(stem);
    while (out.firstChild) out.removeChild(out.firstChild);
    if (!words.length) { out.hidden = true; none.hidden = true; list.hidden = false; return; }
    var hits = [];
    data.forEach(function (d) {
      var score = 0, found = 0;
      words.forEach(function (w) {
        var s = (d.T.indexOf(w) >= 0 ? 3 : 0) + (d.K.indexOf(w) >= 0 ? 3 : 0) +
                (d.X.indexOf(w) >= 0 ? 1 : 0);
        if (s) { found += 1; score += s; }
      });
      if (found) hits.push({found: found, score: score, d: d});
    });
    hits.sort(function (a, b) { return b.found - a.found || b.score - a.score ||
                                       a.d.title.localeCompare(b.d.title); });
    hits.slice(0, 20).forEach(function (h) {
      var li = document.createElement("li"), a = document.createElement("a");
      a.href = h.d.url; a.textContent = h.d.title; li.appendChild(a);
      if (h.d.snippet) { var p = document.createElement("p"); p.textContent = h.d.snippet;
                         li.appendChild(p); }
      out.appendChild(li);
    });
    list.hidden = true; out.hidden = !hits.length; none.hidden = !!hits.length;
  });
})();
"""


@dataclass(frozen=True)
class Site:
    pages: dict[str, str]          # relative path (with /) -> HTML
    articles: int                  # public articles published
    languages: tuple[str, ...]


def build_site(kb: KnowledgeBase, *, title: str = "") -> Site:
    """The site of the public articles of `kb`; `title` names the site (the instance)."""
    builder = _Builder(kb, title)
    return builder.build()


class _Builder:
    def __init__(self, kb: KnowledgeBase, title: str):
        self.kb = kb
        self.title = title
        self.public = {key: a for key, a in kb.articles.items() if a.public}
        self.languages = tuple(sorted({lang for _, lang in self.public}))
        self.md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def build(self) -> Site:
        pages = {"index.html": self.home()}
        for lang in self.languages:
            articles = sorted((a for (_, l), a in self.public.items() if l == lang),
                              key=lambda a: (a.title.casefold(), a.slug))
            pages[f"{lang}/index.html"] = self.language_index(lang, articles)
            for article in articles:
                pages[f"{lang}/{article.slug}.html"] = self.article_page(article)
            for tag, tagged in self.by_tag(articles).items():
                pages[f"{lang}/tags/{tag}.html"] = self.tag_page(lang, tag, tagged)
        return Site(pages, len(self.public), self.languages)

    # -- pages ---------------------------------------------------------------------------------
    def home(self) -> str:
        lang = self.kb.default_language if self.kb.default_language in self.languages else (
            self.languages[0] if self.languages else "en")
        ui = _ui(lang)
        if not self.languages:
            body = f"<p>{escape(ui['empty'])}</p>"
        else:
            items = "".join(
                f'<li><a href="{lang}/index.html" hreflang="{lang}" lang="{lang}">'
                f'{escape(LANGUAGE_NAMES.get(lang, lang))}</a> ({self.count(lang)})</li>'
                for lang in self.languages)
            body = f'<h2>{escape(ui["languages"])}</h2><ul class="articles">{items}</ul>'
        heading = self.title or ui["help"]
        return _page(lang, heading, f"<h1>{escape(heading)}</h1>{body}", "", nav="")

    def count(self, lang: str) -> int:
        return sum(1 for _, l in self.public if l == lang)

    def language_index(self, lang: str, articles: list[Article]) -> str:
        ui = _ui(lang)
        items = "".join(self.article_item(a, "") for a in articles)
        tags = self.by_tag(articles)
        tag_links = "".join(f'<li><a href="tags/{_href(tag)}.html">{escape(tag)}</a> '
                            f'({len(tagged)})</li>' for tag, tagged in tags.items())
        index = [{"url": f"{a.slug}.html", "title": a.title,
                  "keywords": " ".join((*a.keywords, *a.tags)),
                  "text": " ".join(sentences(markdown_text(a.body))),
                  "snippet": _summary(a)} for a in articles]
        search = (
            f'<div class="search" id="kb-search" hidden><label for="kb-q">'
            f'{escape(ui["search"])}</label> <input id="kb-q" type="search" autocomplete="off" '
            f'placeholder="{escape(ui["placeholder"])}">'
            f'<ul class="articles" id="kb-results" hidden aria-label="{escape(ui["results"])}">'
            f'</ul><p id="kb-none" hidden>{escape(ui["no_results"])}</p></div>')
        body = (f'<h1>{escape(self.title or ui["help"])}</h1>{search}'
                f'<section id="kb-all"><h2>{escape(ui["articles"])}</h2>'
                f'<ul class="articles">{items or "<li>" + escape(ui["empty"]) + "</li>"}</ul>'
                + (f'<h2>{escape(ui["tags"])}</h2><ul class="tags">{tag_links}</ul>'
                   if tag_links else "")
                + "</section>"
                + f'<script type="application/json" id="kb-index">{_json(index)}</script>'
                + f"<script>{SEARCH_SCRIPT}</script>")
        return _page(lang, self.title or ui["help"], body, "../")

    def article_page(self, article: Article) -> str:
        lang = article.language
        ui = _ui(lang)
        tags = "".join(f'<li><a href="tags/{_href(t)}.html">{escape(t)}</a></li>'
                       for t in article.tags)
        related = "".join(f'<li><a href="{href}">{escape(a.title)}</a></li>'
                          for a, href in self.related(article))
        translations = "".join(
            f'<li><a href="../{other.language}/{other.slug}.html" hreflang="{other.language}" '
            f'lang="{other.language}">{escape(other.title)}</a> '
            f'({escape(LANGUAGE_NAMES.get(other.language, other.language))})</li>'
            for other in self.translations(article))
        body = (f"<article><h1>{escape(article.title)}</h1>"
                + (f'<ul class="tags">{tags}</ul>' if tags else "")
                + self.render(article) + "</article>"
                + (f'<h2>{escape(ui["related"])}</h2><ul>{related}</ul>' if related else "")
                + (f'<h2>{escape(ui["translations"])}</h2><ul>{translations}</ul>'
                   if translations else ""))
        return _page(lang, f"{article.title} — {self.title or ui['help']}", body, "../")

    def tag_page(self, lang: str, tag: str, articles: list[Article]) -> str:
        ui = _ui(lang)
        heading = ui["tagged"].format(tag=tag)
        items = "".join(self.article_item(a, "../") for a in articles)
        body = f'<h1>{escape(heading)}</h1><ul class="articles">{items}</ul>'
        return _page(lang, f"{heading} — {self.title or ui['help']}", body, "../../")

    def article_item(self, article: Article, up: str) -> str:
        summary = _summary(article)
        return (f'<li><a href="{up}{article.slug}.html">{escape(article.title)}</a>'
                + (f"<p>{escape(summary)}</p>" if summary else "") + "</li>")

    # -- links ---------------------------------------------------------------------------------
    @staticmethod
    def by_tag(articles: list[Article]) -> dict[str, list[Article]]:
        out: dict[str, list[Article]] = {}
        for a in articles:
            for tag in a.tags:
                out.setdefault(tag, []).append(a)
        return dict(sorted(out.items()))

    def target(self, slug: str, lang: str) -> tuple[Article, str] | None:
        """The published page of `slug` for a page in `lang`: that language's, else the
        default language's, else any; None when the slug is not published."""
        for l in (lang, self.kb.default_language, *self.languages):
            a = self.public.get((slug, l))
            if a is not None:
                return a, (f"{slug}.html" if l == lang else f"../{l}/{slug}.html")
        return None

    def related(self, article: Article) -> list[tuple[Article, str]]:
        return [t for t in (self.target(s, article.language) for s in article.related) if t]

    def translations(self, article: Article) -> list[Article]:
        return [a for (s, l), a in sorted(self.public.items())
                if s == article.slug and l != article.language]

    # -- Markdown ------------------------------------------------------------------------------
    def render(self, article: Article) -> str:
        tokens = self.md.parse(article.body)
        for token in tokens:
            if token.children:
                token.children = self._inline(token.children, article.language)
        html = self.md.renderer.render(tokens, self.md.options, {})
        return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                         url_schemes={"http", "https", "mailto"},
                         link_rel="noopener noreferrer")

    def _inline(self, children: list[Token], lang: str) -> list[Token]:
        """Links to articles point at their pages; a relative link that is not a published
        article, and every image, becomes its text."""
        out: list[Token] = []
        dropped: list[bool] = []          # per open link: was it dropped?
        for tok in children:
            if tok.type == "image":
                out.append(_text(tok.content or str(tok.attrs.get("alt") or "")))
            elif tok.type == "link_open":
                href = str(tok.attrs.get("href", ""))
                keep, new = self._link(href, lang)
                dropped.append(not keep)
                if keep:
                    tok.attrs["href"] = new
                    out.append(tok)
            elif tok.type == "link_close":
                if not (dropped and dropped.pop()):
                    out.append(tok)
            else:
                out.append(tok)
        return out

    def _link(self, href: str, lang: str) -> tuple[bool, str]:
        if href.startswith("#") or _SCHEME.match(href):
            return True, href                 # an anchor; http(s), mailto (nh3 drops others)
        m = _ARTICLE_LINK.match(href)
        target = self.target(m.group(1), lang) if m else None
        if target is None:
            return False, ""
        return True, target[1] + (m.group(2) or "")


def _text(content: str) -> Token:
    tok = Token("text", "", 0)
    tok.content = content
    return tok


def _ui(lang: str) -> dict[str, str]:
    return UI.get(lang.split("-")[0], UI["en"])


def _href(name: str) -> str:
    return quote(name, safe="")


def _summary(article: Article) -> str:
    parts = sentences(markdown_text(article.body))
    return shorten(parts[0], 160) if parts else ""


def _json(data: object) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(lang: str, title: str, body: str, up: str, nav: str | None = None) -> str:
    """A whole page; `up` leads from the page's folder to the site's root."""
    ui = _ui(lang)
    if nav is None:
        nav = (f'<a href="{up}index.html">{escape(ui["languages"])}</a>'
               f'<a href="{up}{lang}/index.html">{escape(ui["all"])}</a>')
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{escape(lang)}"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><header><nav>{nav}</nav></header><main>{body}</main>"
        f"<footer>maildesk</footer></body></html>\n")
