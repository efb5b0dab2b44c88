"""HTML body -> readable plain text (inscriptis keeps the layout of tables and lists).

Pure. The input is capped by the caller; a document the converter chokes on falls back to
stripping the tags, so an HTML-only mail always has some text.
"""

from __future__ import annotations

import html as stdlib_html
import re

from inscriptis import get_text
from inscriptis.model.config import ParserConfig

# inscriptis walks the tree in Python (about 2 s per MB of markup); a larger document (rare in
# mail, never a hand-written one) is read by stripping its tags, which is linear and fast.
LAYOUT_LIMIT = 256 * 1024
_CONFIG = ParserConfig(display_links=False, display_images=False)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""",
                           re.I)
_INVISIBLE_START = re.compile(r"(?i)<(script|style|head)\b")
_INVISIBLE_END = {tag: re.compile(rf"(?i)</{tag}\s*>") for tag in ("script", "style", "head")}
_TAG = re.compile(r"<[^<>]*>")  # not `<[^>]*>`: a run of unclosed `<` would make it quadratic
_SOURCE_BREAKS = re.compile(r"(?<![ \t])[ \t]*+[\r\n]++[ \t]*+")
_BLOCK = re.compile(r"(?i)<\s*(?:br|/p|/div|/tr|/li|/h[1-6]|/table)\b[^<>]*>")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
# Centred layout tables come out indented by dozens of spaces; list nesting needs only a few.
_DEEP_INDENT = re.compile(r"(?m)^[ \t\u00a0]{8,}")


def meta_charset(data: bytes) -> str | None:
    """The charset an HTML document names in its <meta> (used when MIME names none)."""
    m = _META_CHARSET.search(data[:4096])
    return m.group(1).decode("ascii") if m else None


def html_to_text(markup: str) -> str:
    """Readable text of an HTML document, blank lines tidied."""
    markup = _drop_invisible(markup)  # never shown; inscriptis would still walk the CSS
    if len(markup) > LAYOUT_LIMIT:
        text = _strip_tags(markup)
    else:
        try:
            text = get_text(markup, _CONFIG)
        except Exception:  # lxml and inscriptis on hostile markup; tag stripping still reads
            text = _strip_tags(markup)
    text = "\n".join(line.rstrip(" \t\u00a0") for line in text.split("\n"))
    text = _DEEP_INDENT.sub("", text)
    return _MANY_BLANK_LINES.sub("\n\n", text).strip("\n")


def _drop_invisible(markup: str) -> str:
    """Remove <head>, <style> and <script> elements, in linear time even when unclosed."""
    out: list[str] = []
    pos = 0
    while True:
        start = _INVISIBLE_START.search(markup, pos)
        if start is None:
            break
        end = _INVISIBLE_END[start.group(1).lower()].search(markup, start.end())
        if end is None:  # unclosed: keep the rest as it is rather than rescan it per tag
            break
        out.append(markup[pos:start.start()])
        pos = end.end()
    if not out:
        return markup
    out.append(markup[pos:])
    return "".join(out)


def _drop_comments(markup: str) -> str:
    out: list[str] = []
    pos = 0
    while (start := markup.find("<!--", pos)) >= 0:
        end = markup.find("-->", start + 4)
        if end < 0:
            break
        out.append(markup[pos:start])
        pos = end + 3
    out.append(markup[pos:])
    return "".join(out)


def _strip_tags(markup: str) -> str:
    markup = _drop_comments(markup)
    markup = _SOURCE_BREAKS.sub(" ", markup)  # line breaks in HTML source are spaces
    markup = _BLOCK.sub("\n", markup)
    return stdlib_html.unescape(_TAG.sub("", markup))
