"""The new text of a reply: what its writer typed, without the quote and the signature. Pure.

The recognising is mail-parser-reply's: its compiled per-language regexes for reply headers
(Outlook "From:/Sent:" blocks, "On … wrote:", "-----Original Message-----"), signatures ("-- ",
"Sent from my …", sign-offs) and disclaimers, in a dozen languages. It has no Russian, so we
register a table for it in the library's own format: Outlook's "От:/Отправлено:/Кому:/Тема:"
and "-----Исходное сообщение-----", Thunderbird's "23.11.2026 13:05, Имя пишет:", Apple's and
Mail.ru's "… написал(а):", Gmail's "пн, 23 нояб. 2026 г. в 13:05, Имя <адрес>:", Mail.ru's
"Понедельник, 23 ноября 2026, 13:05 +03:00 от Имя <адрес>:", Yandex's "23.11.2026, 13:05,
"Имя" <адрес>:", "Отправлено с iPhone" and "С уважением".

What we do around the regexes (the library's own EmailMessage.read() is not used):

* Our notifications start with MARKER. An unquoted marker line ends the new text (an Outlook
  reply quotes without "> "); a "> "-quoted one marks its quote block as the quoted
  notification.
* Quotes. The first "> " block that is history (an attribution such as "On … wrote:" above
  it, the marker inside it, or nothing but blank lines above it) ends the text on top. When
  nothing but a greeting ("Hi,") was written on top, the writer bottom-posted (Thunderbird's
  default) or answered inline: the unquoted text below the quotes is the new text, the "> "
  lines in between are dropped. Quoted lines are never relayed: a quote of our notification
  carries the ticket's history, internal notes included.
* Text stops at the first reply header (there is no "skip a header at the top" as in the
  library: what follows a header is history); at the first signature; at a line of 30+
  underscores (Outlook's separator, mailing-list footers); at a disclaimer only when it is the
  last thing (the library removes disclaimers from anywhere, sentences of an agent included).
* A sign-off phrase ("Thanks,", "С уважением") ends the text only when the rest of its line is
  empty or a name: "Thank you, the payment arrived." is the writer's sentence, not a signature.
* The regexes see each line stripped and cut to MAX_LINE characters (their nested quantifiers
  are slow on huge lines); the result is made of the original lines, so an agent's
  indentation reaches the client unchanged.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from mailparser_reply import constants
from mailparser_reply.parser import EmailMessage

MARKER = "##- reply above this line / пишите ответ выше этой строки -##"
_MARKER_CORE = re.compile(r"##-\s*reply above this line", re.IGNORECASE)

_Q = constants.QUOTED_MATCH_INCLUDE
_RU_MONTH = r"(?:янв|фев|мар|апр|мая|май|июн|июл|авг|сен|окт|ноя|дек)[а-яё]*\.?"
_RU_WROTE = r"(?:пишет|писал|писала|писал\(а\)|написал|написала|написал\(а\))"
_RU_FIELD = r"(?:Отправлено|Кому|Копия|Тема|Дата)"


def _ru_field(name: str) -> str:
    """One Outlook header line, as the library writes its from_header."""
    return r"(?:^|\n|\n" + _Q + r")[* ]*" + name + r":[ *]*(?:\s{,2}).*"


_RU_FROM = _ru_field("От")
_RU_OTHER = _ru_field(_RU_FIELD)

RUSSIAN = {
    "wrote_header": (
        r"^(" + _Q + r"(?:"
        # Thunderbird: "23.11.2026 13:05, Example Support пишет:"; Apple: "…, Имя <адрес>
        # написал(а):". The line names a date or an address; without one ("Вот что он
        # пишет:") it is a header only right above a "> " quote.
        r"(?=[^\n]*[\d@])[^\n]{0,200}?\b" + _RU_WROTE + r"\s*:"
        r"|[^\n]{0,200}?\b" + _RU_WROTE + r"\s*:(?=[ \t]*\n(?:[ \t]*\n)*[ \t]*>)"
        # Gmail: "пн, 23 нояб. 2026 г. в 13:05, Example Support <support@example.com>:"
        # Mail.ru: "Понедельник, 23 ноября 2026, 13:05 +03:00 от Example Support <…>:"
        r"|[^\n]{0,40}?\d{1,2}\s" + _RU_MONTH + r"\s\d{4}(?:\sг\.)?,?\s(?:в\s)?\d{1,2}:\d{2}"
        r"[^\n]{0,200}?:"
        # Yandex: '23.11.2026, 13:05, "Example Support" <support@example.com>:'
        r"|\d{1,2}\.\d{1,2}\.\d{2,4},?\s\d{1,2}:\d{2},?\s[^\n]{0,200}?<[^<>\s]+@[^<>\s]+>:"
        # Outlook's Russian separators
        r"|-{5,} ?(?:Исходное сообщение|Пересылаемое сообщение) ?-{5,}"
        r"))\s*$"),
    # Two or more Outlook header lines, one of them "От:" (so an agent's "Тема: …\nДата: …"
    # is text), then one more line as the library allows.
    "from_header": (r"((?:" + _RU_OTHER + r"){1,4}" + _RU_FROM + r"(?:" + _RU_OTHER + r"){0,5}"
                    r"(?:\n.*){,1}|" + _RU_FROM + r"(?:" + _RU_OTHER + r"){1,5}(?:\n.*){,1})"),
    "disclaimers": [r"(?:Конфиденциально|Внимание|Предупреждение):"],
    "signatures": [r"С уважением", r"С наилучшими пожеланиями", r"Всего (?:доброго|хорошего)",
                   r"Best regards", r"Kind regards"],
    # The library's pattern wants more words after this one ("Sent from my" + " iPhone"):
    # "Отправлено с" + " iPhone", with a device-ish word next.
    "sent_from": r"Отправлено (?:с|из)(?= (?:моего|моей|мобильного|мобильной|iPhone|iPad|"
                 r"Android|Samsung|Xiaomi|Huawei|Почты|приложения)\b)|"
                 r"Sent from my|Get Outlook for",
}
# Our own key: a Russian table the library may ship one day is used as well, not replaced.
_RU = "maildesk-ru"
constants.MAIL_LANGUAGES[_RU] = RUSSIAN

# Every human language the library knows, Russian first (most of our mail); not its "david".
LANGUAGES = [_RU, *(lang for lang in constants.MAIL_LANGUAGES if lang not in (_RU, "david"))]

MAX_LINE = 1000                    # characters of a line the regexes see
MAX_SCAN = 100_000                 # characters of a stretch of text they see; the rest is kept
MAX_SCAN_LINES = 5_000             # lines of it (after blank runs are made one)
MAX_BLOCKS = 100                   # quote blocks looked at for the quoted history

_PROBE = EmailMessage(text="", languages=list(LANGUAGES), keep_hyphen_lists=True)
_HEADER = _PROBE.HEADER_REGEX
_DISCLAIMER = _PROBE.DISCLAIMERS_REGEX
_TAIL = r"(.|\s)*)"                # "…to the end of the text": we only need where it starts
_SIGNATURE = (re.compile(_PROBE.SIGNATURE_REGEX.pattern[:-len(_TAIL)] + ")",
                         _PROBE.SIGNATURE_REGEX.flags)
              if _PROBE.SIGNATURE_REGEX.pattern.endswith(_TAIL) else _PROBE.SIGNATURE_REGEX)
_SIGNOFF = re.compile(r"^" + _Q + r"(?:" + "|".join(
    p for lang in LANGUAGES for p in constants.MAIL_LANGUAGES[lang].get("signatures", ())) + r")",
    re.IGNORECASE)                   # the sign-off phrases of the signature regex, alone
_DASH_SIG = re.compile(r"^" + _Q + r"[-_]{2}$")
_UNDERSCORES = re.compile(r"^[ \t]*_{30,}[ \t]*$")
_LONG_RULE = re.compile(r"^ ?[-_]{32,}")          # the library's OUTLOOK_MAIL_SEPARATOR line
_RULE = re.compile(r"^[ \t]*[-_=~*]{2,}[ \t]*$")  # a separator line left at the end
_ATTRIBUTION = re.compile(r"\d{1,2}:\d{2}|@")      # a time or an address: "…, 13:05, Имя <…>:"
_TIME = re.compile(r"\d{1,2}:\d{2}")
_COMMAND = re.compile(r"^[ \t*]*#[^\W\d_]")         # a command line (pipeline/commands.py)
_GREETING = 40                                      # a line this short ending "," or "!"
_SCAN = 8                                           # lines above a quote read for its header


@dataclass(frozen=True)
class ReplyText:
    text: str            # the new text, original formatting kept, signature and quote cut
    cut: bool            # whether anything (quote, signature, marker) was cut


def new_text(body: str) -> ReplyText:
    """The new text of a reply's readable body."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    lines = body.split("\n")
    marker = next((i for i, line in enumerate(lines)
                   if _has_marker(line) and not _quoted(line)), None)
    if marker is not None:
        lines = lines[:marker]
    try:
        kept = _writer_lines(lines)
    except (re.error, RecursionError, IndexError):    # the library's regexes on odd input
        kept = lines
    last = len(kept)
    while last and (not kept[last - 1].strip() or _RULE.match(kept[last - 1])):
        last -= 1
    first = 0
    while first < last and not kept[first].strip():
        first += 1
    text = "\n".join(kept[first:last]).rstrip()
    return ReplyText(text=text, cut=text != body.strip("\n").rstrip())


def _quoted(line: str) -> bool:
    return line.lstrip(" \t").startswith(">")


def _has_marker(line: str) -> bool:
    return "##-" in line and _MARKER_CORE.search(line) is not None


# -- quotes -------------------------------------------------------------------------------------

def _writer_lines(lines: list[str]) -> list[str]:
    """The lines the writer typed: above the first quoted history, or below it."""
    for start, end in _candidate_blocks(lines):
        attribution = _attribution(lines, start, end)
        if attribution is not None:
            break
    else:
        return _prefix(lines)
    top_lines = lines[:attribution]
    top = _prefix(top_lines)
    if not _greeting_only(top) or _HEADER.search(_shadow_text(top_lines)[0]):
        return top                   # top-posted; or the history began above, unquoted
    below = _prefix(_unquoted_after(lines, end))
    if not any(line.strip() for line in below):
        return top
    if not any(line.strip() for line in top):
        return below
    while not top[-1].strip():
        top = top[:-1]
    return [*top, "", *below]


def _candidate_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """The quote blocks that may be the quoted history: the first MAX_BLOCKS, and the one
    holding our marker."""
    blocks = _quote_blocks(lines)
    candidates = blocks[:MAX_BLOCKS]
    marked = next((b for b in blocks[MAX_BLOCKS:]
                   if any(_has_marker(q) for q in lines[b[0]:b[1]])), None)
    return candidates + [marked] if marked else candidates


def _quote_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """Runs of "> " lines (blank lines inside them included): (first, after last)."""
    blocks: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        if not _quoted(lines[i]):
            i += 1
            continue
        start = last = i
        while i < len(lines) and (_quoted(lines[i]) or not lines[i].strip()):
            if lines[i].strip():
                last = i
            i += 1
        blocks.append((start, last + 1))
    return blocks


def _attribution(lines: list[str], start: int, end: int) -> int | None:
    """Where the header of the quote block lines[start:end] begins, if the block is quoted
    history: "On … wrote:" (any language the regexes know, or any line ending in ":" that
    names a time or an address), our marker inside it, or nothing but blank lines above."""
    above = start - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0:
        return start
    first = above
    while first > 0 and above - first < _SCAN - 1 and lines[first - 1].strip():
        first -= 1
    text, offsets, rows, _complete = _shadow_text(lines[first:above + 1])
    if not rows:
        return None
    begin = _header_begin(text, offsets)
    if begin is not None:
        return first + rows[bisect_right(offsets, begin) - 1]
    return _attribution_line(lines, above, any(_has_marker(q) for q in lines[start:end]),
                             start)


def _header_begin(text: str, offsets: list[int]) -> int | None:
    """Where in `text` a reply header that reaches its last line begins (blank lines before
    it skipped)."""
    for m in _HEADER.finditer(text):
        if m.end() >= offsets[-1]:
            begin = m.start()
            while begin < len(text) and text[begin] == "\n":
                begin += 1
            return begin
    return None


def _attribution_line(lines: list[str], above: int, marked: bool, start: int) -> int | None:
    """The line `above` a quote block (or the one before it, when wrapped) as an attribution
    the regexes do not know: it ends in ":" and names a time or an address, or the block holds
    our marker; else the block itself when marked."""
    line = lines[above].rstrip()
    if line.endswith(":") and (_ATTRIBUTION.search(line) or marked):
        # Gmail wraps a long one: "пн, 23 нояб. 2026 г. в 13:05, Example Support\n<…>:"
        if above > 0 and not _TIME.search(line) and _TIME.search(lines[above - 1]):
            return above - 1
        return above
    return start if marked else None


def _greeting_only(top: list[str]) -> bool:
    """Nothing above the quote but command lines (`#resolve`) and one short greeting ("Hi,",
    "Здравствуйте!"): the writer's text is below it."""
    written = [line.strip() for line in top if line.strip() and not _COMMAND.match(line)]
    return not written or (len(written) == 1 and len(written[0]) <= _GREETING
                           and written[0].endswith((",", "!")))


def _unquoted_after(lines: list[str], end: int) -> list[str]:
    """The lines after a quote block, each further quote block replaced by one blank line."""
    out: list[str] = []
    after_quote = True
    for line in lines[end:]:
        if _quoted(line):
            while out and not out[-1].strip():
                out.pop()
            if out:
                out.append("")
            after_quote = True
        elif line.strip() or not after_quote:
            out.append(line)
            after_quote = False
    return out


# -- one stretch of text, through the library's regexes -------------------------------------

def _shadow_text(lines: list[str]) -> tuple[str, list[int], list[int], bool]:
    """What the regexes see, where each of its lines starts, which original line each is, and
    whether it is all of them. Each line is stripped and cut to MAX_LINE; a run of blank lines
    is one (the signature regex's leading \\s* is quadratic in a run of them); the library's
    32-dash or underscore separator is shortened so that it is not a signature; the text stops
    after MAX_SCAN characters or MAX_SCAN_LINES lines."""
    shadow: list[str] = []
    rows: list[int] = []
    size = 0
    for row, line in enumerate(lines):
        s = line.strip()[:MAX_LINE]
        if not s and shadow and not shadow[-1]:
            continue
        if _LONG_RULE.match(s):
            s = _LONG_RULE.sub("---", s)
        if size + len(s) > MAX_SCAN or len(shadow) == MAX_SCAN_LINES:
            return "\n".join(shadow), _offsets(shadow), rows, False
        shadow.append(s)
        rows.append(row)
        size += len(s) + 1
    return "\n".join(shadow), _offsets(shadow), rows, True


def _offsets(shadow: list[str]) -> list[int]:
    offsets = []
    at = 0
    for s in shadow:
        offsets.append(at)
        at += len(s) + 1
    return offsets


def _prefix(lines: list[str]) -> list[str]:
    """The original lines (the last one maybe cut) before the first header, signature,
    underscore separator or trailing disclaimer."""
    lines = next((lines[:i] for i, line in enumerate(lines)
                  if "_" * 30 in line and _UNDERSCORES.match(line)), lines)
    text, offsets, rows, complete = _shadow_text(lines)
    if not rows:
        return lines if not complete else []
    end = len(text)
    header = _HEADER.search(text)
    if header:
        end = header.start()
    end = _signature_at(text[:end])
    end = _disclaimer_at(text[:end])
    if end >= len(text):
        return lines                 # nothing to cut (in what the regexes read)
    k = bisect_right(offsets, end) - 1
    col = end - offsets[k]
    shadow_len = (offsets[k + 1] - 1 if k + 1 < len(offsets) else len(text)) - offsets[k]
    row = rows[k]
    if col >= shadow_len:
        return lines[:row + 1]
    kept = lines[:row]
    if col > 0:
        original = lines[row]
        lead = len(original) - len(original.lstrip())
        kept.append(original[:lead + col].rstrip())
    return kept


def _signature_at(text: str) -> int:
    """Where the signature begins (len(text) when there is none)."""
    # The library never takes the first line for a sign-off; but a reply that starts with
    # "С уважением,\nCarol" is a signature above the quote and nothing else (Outlook puts
    # the signature there when the writer types nothing).
    body = text.lstrip("\n")
    first = body.split("\n", 1)[0].strip()
    signoff = _SIGNOFF.match(first)
    if signoff is not None and _name_only(first[signoff.end():]):
        return len(text) - len(body)
    pos = 0
    while True:
        m = _SIGNATURE.search(text, pos)
        if m is None:
            return len(text)
        begin = m.start() + len(m.group()) - len(m.group().lstrip())
        line_end = text.find("\n", begin)
        line = text[begin:line_end if line_end >= 0 else len(text)]
        signoff = _SIGNOFF.match(line)
        if signoff is None or _DASH_SIG.match(line) or _name_only(line[signoff.end():]):
            return min(begin, len(text))
        if line_end < 0:
            return len(text)
        pos = line_end + 1       # "Thanks, I checked the logs." is text: look further


def _name_only(rest: str) -> bool:
    """After a sign-off phrase: nothing, or a name ("Carol", "Carol, Line 2", "Иванов И.И.").
    Not a word the phrase only began ("Tak" of "Take", "/\\w+" of "/var/log")."""
    if rest and not (rest[0].isspace() or rest[0] in ",.!:;"):
        return False
    words = rest.strip(" \t,.!:;-–—").split()
    return len(words) <= 4 and all(not w[0].isalpha() or w[0].isupper() for w in words)


def _disclaimer_at(text: str) -> int:
    """Where a disclaimer that ends the text begins (len(text) when there is none)."""
    for m in _DISCLAIMER.finditer(text):
        if not text[m.end():].strip():
            begin = m.start()
            if begin < len(text) and text[begin] in "\n\r.!?":
                begin += 1
            return begin
    return len(text)
