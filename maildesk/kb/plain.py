"""An article's Markdown (and a macro's Jinja2) as plain text, for snippets and search."""

from __future__ import annotations

import re

_CODE_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]*)\]\[[^\]]*\]")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_LINE_MARK = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+|[-*_]{3,}\s*$)",
                        re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`+|~~)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
_JINJA = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_JINJA_VAR = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=\S)")
_SPACES = re.compile(r"[ \t\xa0]+")


def markdown_text(markdown: str) -> str:
    """The words of a Markdown text without its markup (good enough for snippets)."""
    text = _CODE_FENCE.sub("", markdown)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _LINE_MARK.sub("\n", text)      # a heading or list item is a paragraph of its own
    for _ in range(2):
        text = _EMPHASIS.sub(r"\2", text)
    return text


def macro_text(macro: str) -> str:
    """A macro's text without its Jinja2 statements and placeholders."""
    return _JINJA_VAR.sub(" ", _JINJA.sub(" ", macro))


def sentences(text: str) -> list[str]:
    """The sentences (and list items, lines of a paragraph) of a plain text, trimmed."""
    out = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = _SPACES.sub(" ", paragraph.replace("\n", " ")).strip()
        out.extend(part for part in _SENTENCE.split(paragraph) if part)
    return out


def shorten(text: str, limit: int = 200) -> str:
    """At most `limit` characters, cut at a word, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"
