"""`maildesk tickets search`: full-text search over tickets and their mails
(maildesk/search), as plain data in a stable JSON shape, and its text form.

Each hit: `number`, `tag` (MD-1042), `subject`, `status`, `requester`, `score` (the engine's
relevance, higher is better; bm25 on SQLite and ts_rank on PostgreSQL are not on one scale),
`message_id` (the mail the snippet is from; null: the ticket's subject), `snippet` (plain text:
about 160 characters of the original text around the first matching words, whitespace
collapsed, `…` where cut) and `highlights` (the matching words in the snippet, as
`[start, end)` character offsets into it). The text form marks the words with `[[`...`]]`, or
in bold at a terminal.
"""

from __future__ import annotations

from typing import Any

from maildesk.analyzer import terms
from maildesk.db.models import TicketStatus
from maildesk.pipeline.subject import format_tag
from maildesk.search.query import DEFAULT_LIMIT, TicketHit
from maildesk.search.query import search_tickets as _search
from maildesk.search.snippet import Snippet
from maildesk.services.context import Context
from maildesk.services.errors import BadRequest

MARKS = ("[[", "]]")
BOLD = ("\x1b[1m", "\x1b[22m")


def hit_view(hit: TicketHit, tag: str) -> dict[str, Any]:
    return {"number": hit.number, "tag": format_tag(tag, hit.number).strip("[]"),
            "subject": hit.subject, "status": hit.status.value, "requester": hit.requester,
            "score": round(hit.score, 6), "message_id": hit.message_id,
            "snippet": hit.snippet, "highlights": [list(h) for h in hit.highlights]}


def search_tickets(ctx: Context, query: str, *, status: TicketStatus | str | None = None,
                   requester: str | None = None, limit: int = DEFAULT_LIMIT,
                   internal: bool = True) -> list[dict[str, Any]]:
    """The tickets matching every word of `query`, best first (see maildesk/search/query.py).
    A query without a word to search for (empty, or function words only) or a limit below 1
    is a BadRequest; no match is an empty list."""
    if not terms(query):
        raise BadRequest(f"nothing to search for in {query!r}: no words, or only common ones "
                         "(the, и, ...)")
    if limit < 1:
        raise BadRequest(f"--limit must be at least 1, not {limit}")
    with ctx.read_session() as session:
        hits = _search(session, query, status=status, requester=requester, limit=limit,
                       internal=internal)
    return [hit_view(h, ctx.settings.ticket_tag) for h in hits]


def marked(row: dict[str, Any], marks: tuple[str, str] = MARKS) -> str:
    """A hit's snippet with its matching words between the two marks."""
    spans = tuple((start, end) for start, end in row["highlights"])
    return Snippet(row["snippet"], spans).marked(*marks)


def hit_lines(rows: list[dict[str, Any]], marks: tuple[str, str] = MARKS) -> list[str]:
    """The text form: per hit, the ticket and its subject, then the snippet indented."""
    lines = []
    for r in rows:
        lines.append(f"{r['tag']:<12} {r['status']:<9} {r['requester']:<32} {r['subject']}")
        if r["snippet"]:
            lines.append(f"    {marked(r, marks)}")
    return lines
