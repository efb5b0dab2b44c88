"""A client's rating (1-5) in a reply to the resolution notice. Pure.

The notice asks for a number from 1 to 5 by reply. A reply whose new text starts with such a
number ("5", "5!", "4 - спасибо", "Оценка: 4", "4/5", "4 из 5", "Rating: 3") and says little
more is a rating: it is stored and the ticket stays resolved (a comment goes to the line). A
longer reply, or a sentence that merely starts with a number ("3 кассы не работают"), is the
client writing again: the ticket reopens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maildesk.pipeline.reply import new_text

MAX_COMMENT = 300   # characters: more than that is a message, not a rating with a word
_RATING = re.compile(
    r"^(?:(?:оценка|моя оценка|rating|score)\s*[:\-–—]?\s*)?"
    r"([1-5])(?:\s*(?:/|из|of|out of)\s*5)?"
    r"(?!\d)(?![.,:/]\d)\s*([!.)]*\s*[-–—,:;]?)\s*(.*)$",
    re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Rating:
    score: int
    comment: str


def parse_rating(body: str) -> Rating | None:
    text = new_text(body).text.strip()
    m = _RATING.match(text)
    if m is None:
        return None
    separator, comment = m.group(2).strip(), " ".join(m.group(3).split())
    if len(comment) > MAX_COMMENT:
        return None
    if comment and not separator and "\n" not in m.group(0)[:m.start(3)] \
            and len(comment.split()) > 3:
        return None   # "3 кассы снова не работают": a sentence about three tills, not a rating
    return Rating(int(m.group(1)), comment)
