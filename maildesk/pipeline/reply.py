"""The new text of a reply: what its writer typed above the quote and the signature. Pure.

The splitting itself is mail-parser-reply's (Outlook "From:/Sent:" blocks, "On … wrote:",
"-----Original Message-----", "Sent from my …", sign-offs, in a dozen languages). It has no
Russian, so we register a table for it in the library's own format: Outlook's
"От:/Отправлено:/Кому:/Тема:", Thunderbird's "… пишет:", Apple's and Mail.ru's
"… написал(а):", Gmail's "пн, 23 нояб. 2026 г. в 13:05, Имя <адрес>:", and "С уважением".

Our own notifications start with MARKER: whatever a mail client does with the quote, a line
holding the marker ends the new text first. The library trims every line; we cut the original
text at the same place, so an agent's indentation reaches the client unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailparser_reply import constants
from mailparser_reply.parser import EmailMessage

MARKER = "##- reply above this line / пишите ответ выше этой строки -##"
_MARKER_CORE = re.compile(r"##-\s*reply above this line", re.IGNORECASE)

_Q = constants.QUOTED_MATCH_INCLUDE
_RU_MONTH = r"(?:янв|фев|мар|апр|мая|май|июн|июл|авг|сен|окт|ноя|дек)[а-яё]*\.?"

RUSSIAN = {
    "wrote_header": (
        r"^(" + _Q + r"(?:"
        # Thunderbird: "23.11.2026 13:05, Example Support пишет:"
        r".{0,200}?\b(?:пишет|написал|написала|написал\(а\))\s*:"
        # Gmail: "пн, 23 нояб. 2026 г. в 13:05, Example Support <support@example.com>:"
        r"|.{0,40}?\d{1,2}\s" + _RU_MONTH + r"\s\d{4}\sг\.,?\s(?:в\s)?\d{1,2}:\d{2}.{0,200}?:"
        # Outlook's Russian separator
        r"|-{5,} ?(?:Исходное сообщение|Пересылаемое сообщение) ?-{5,}"
        r"))\s*$"),
    "from_header": (r"((?:(?:^|\n|\n" + _Q + r")[* ]*(?:От|Отправлено|Кому|Копия|Тема|Дата)"
                    r":[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})"),
    "disclaimers": [r"(?:Конфиденциально|Внимание|Предупреждение):"],
    "signatures": [r"С уважением", r"С наилучшими пожеланиями", r"Всего (?:доброго|хорошего)",
                   r"Best regards", r"Kind regards"],
    "sent_from": r"Отправлено (?:с|из) (?:моего|мобильного|iPhone|iPad|Android)|"
                 r"Отправлено из мобильной|Sent from my|Get Outlook for",
}
constants.MAIL_LANGUAGES.setdefault("ru", RUSSIAN)

# Every human language the library knows, Russian first (most of our mail); not its "david".
LANGUAGES = ["ru", *(lang for lang in constants.MAIL_LANGUAGES if lang not in ("ru", "david"))]


@dataclass(frozen=True)
class ReplyText:
    text: str            # the new text, original formatting kept, signature and quote cut
    cut: bool            # whether anything (quote, signature, marker) was cut


def new_text(body: str) -> ReplyText:
    """The new text of a reply's readable body."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    lines = body.split("\n")
    marker = next((i for i, line in enumerate(lines) if _MARKER_CORE.search(line)), None)
    if marker is not None:
        lines = lines[:marker]
    head = "\n".join(lines)
    try:
        parsed = EmailMessage(text=head, languages=list(LANGUAGES), keep_hyphen_lists=True)
        parsed.read()
        found = parsed.replies[0].body if parsed.replies else head
    except (re.error, RecursionError, IndexError):   # the library's regexes on odd input
        found = head
    text = _original_prefix(lines, found) if found.strip() != head.strip() else head
    text = text.strip("\n").rstrip()
    return ReplyText(text=text, cut=marker is not None or text != body.strip("\n").rstrip())


def _original_prefix(lines: list[str], found: str) -> str:
    """The original lines that the library's (trimmed) result consists of; the library's
    text when they do not line up (it cut something out of the middle)."""
    wanted = [line.strip() for line in found.split("\n") if line.strip()]
    taken = 0
    j = 0
    for i, line in enumerate(lines):
        if j == len(wanted):
            break
        stripped = line.strip()
        if not stripped:
            continue
        if stripped != wanted[j]:
            return found
        j += 1
        taken = i + 1
    return "\n".join(lines[:taken]) if j == len(wanted) else found
