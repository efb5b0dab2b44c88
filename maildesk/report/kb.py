"""The knowledge-base figures of `maildesk report` (README: "KPI report"), per article.

Three kinds of ticket events say how the knowledge base is used:

- `kb_suggested` {language, articles: [slug, ...]}: the acknowledgement named articles;
- `kb_inserted` {kind: "macro" | "kb", slug, language}: an agent put a canned answer or an
  article in a reply;
- `kb_solved` {slug, language}: the client's "this solved it" for one suggested article
  resolved the ticket (at the client's mail's arrival).

A solve counts as **held** only when the client has not written again (`reopened`) within
`hold` after it and `hold` has passed by `now`; a solve younger than that is **pending**, one
followed by a reopening within `hold` **reopened**: silence for a day is no success yet.

Every figure is of the events whose `at` is in [since, until), each kind read through
ix_ticket_event_kind_at (one range, not every event of the period). Suggestions and
insertions are counted per slug in SQL (up to one suggestion per new ticket: too many to
decode one by one in Python); the solves, one per solved ticket, come to Python with their
ticket and time, and the reopenings are read only for those tickets (ticket_id IN (...), in
chunks, through ix_ticket_event_ticket_id).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, literal_column, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from maildesk.db.models import TicketEvent
from maildesk.domain import EventKind

HOLD = timedelta(days=7)
CHUNK = 500          # ticket ids per IN (...) (SQLite's old limit is 999 variables)


def kb_figures(session: Session, *, since: datetime, until: datetime, now: datetime,
               hold: timedelta = HOLD,
               titles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The knowledge-base section of the report: `{hold_s, totals, articles}` (README).
    `titles` gives an article's title by slug; a slug not in it is shown as itself."""
    period = (TicketEvent.at >= since, TicketEvent.at < until)
    figures: dict[str, dict[str, int]] = {}

    def article(slug: Any) -> dict[str, int] | None:
        if not isinstance(slug, str) or not slug:
            return None
        return figures.setdefault(slug, dict.fromkeys(_FIGURES, 0))

    per_slug, suggested_tickets = _suggested(session, period)
    for slug, tickets in per_slug:
        if (a := article(slug)) is not None:
            a["suggested"] += tickets
    for slug, kind, count in _inserted(session, period):
        if (a := article(slug)) is not None:
            a["inserted"] += count
            a["inserted_macro" if kind == "macro" else "inserted_kb"] += count
    solves = [(ticket_id, at, slug) for ticket_id, at, slug in session.execute(
        select(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.data["slug"].as_string())
        .where(TicketEvent.kind == EventKind.KB_SOLVED.value, *period))
        if article(slug) is not None]
    reopenings = _reopenings(session, [(t, at) for t, at, _ in solves], hold, now)
    for ticket_id, at, slug in solves:
        a = figures[slug]
        a["solved"] += 1
        a[_outcome(at, reopenings.get(ticket_id, ()), hold, now)] += 1

    titles = titles or {}
    articles = sorted(({"slug": slug, "title": titles.get(slug) or slug, **f,
                        "self_service": _share(f["held"], f["suggested"])}
                       for slug, f in figures.items()),
                      key=lambda a: (-(a["suggested"] + a["inserted"]), a["slug"]))
    totals: dict[str, Any] = {"tickets_suggested": suggested_tickets,
                              "suggestions": sum(f["suggested"] for f in figures.values())}
    totals.update({key: sum(f[key] for f in figures.values()) for key in _FIGURES[1:]})
    totals["tickets_solved"] = len({ticket_id for ticket_id, _, _ in solves})
    totals["self_service"] = _share(totals["held"], suggested_tickets)
    return {"hold_s": int(hold.total_seconds()), "totals": totals, "articles": articles}


_FIGURES = ("suggested", "inserted", "inserted_macro", "inserted_kb", "solved", "held",
            "reopened", "pending")


def _suggested(session: Session,
               period: tuple[ColumnElement[bool], ...]) -> tuple[list[tuple[Any, int]], int]:
    """Per slug, the tickets whose suggestions in the period name it (each ticket once), and
    the tickets that got any suggestion. The lists are unnested in SQL (json_each on SQLite,
    json_array_elements_text on PostgreSQL): a busy month holds tens of thousands of
    suggestions, counted in the database far faster than decoded row by row in Python."""
    if session.get_bind().dialect.name == "postgresql":
        is_list = func.json_typeof(TicketEvent.data["articles"]) == "array"
        slugs = func.json_array_elements_text(TicketEvent.data["articles"]).table_valued("value")
    else:
        is_list = func.json_type(TicketEvent.data, "$.articles") == "array"
        slugs = func.json_each(TicketEvent.data, "$.articles").table_valued("value")
    named = (select(slugs.c.value.label("slug"), TicketEvent.ticket_id)
             .select_from(TicketEvent).join(slugs, true())
             .where(TicketEvent.kind == EventKind.KB_SUGGESTED.value, is_list, *period)
             .subquery())
    per_slug = session.execute(select(named.c.slug, func.count(distinct(named.c.ticket_id)))
                               .group_by(named.c.slug)).all()
    tickets = session.scalar(select(func.count(distinct(named.c.ticket_id)))) or 0
    return [(slug, n) for slug, n in per_slug], tickets


def _inserted(session: Session,
              period: tuple[ColumnElement[bool], ...]) -> list[tuple[Any, Any, int]]:
    """(slug, kind, insertions) of the period's kb_inserted events."""
    slug, kind = TicketEvent.data["slug"].as_string(), TicketEvent.data["kind"].as_string()
    # Grouped by the labels (an expression with a bound JSON path is a new parameter each
    # time it is written, which PostgreSQL would not match with the SELECT's); not by "kind",
    # which names the event's column there.
    rows = session.execute(select(slug.label("i_slug"), kind.label("i_kind"), func.count())
                           .where(TicketEvent.kind == EventKind.KB_INSERTED.value, *period)
                           .group_by(literal_column("i_slug"), literal_column("i_kind")))
    return [(s, k, n) for s, k, n in rows]


def _reopenings(session: Session, solves: list[tuple[int, datetime]], hold: timedelta,
                now: datetime) -> dict[int, list[datetime]]:
    """When each solved ticket was reopened, between its first solve and `hold` after its
    last (and not after `now`)."""
    if not solves:
        return {}
    first = min(at for _, at in solves)
    last = min(max(at for _, at in solves) + hold, now)
    found: dict[int, list[datetime]] = {}
    for chunk in _chunks(sorted({ticket_id for ticket_id, _ in solves}), CHUNK):
        for ticket_id, at in session.execute(
                select(TicketEvent.ticket_id, TicketEvent.at)
                .where(TicketEvent.kind == EventKind.REOPENED.value,
                       TicketEvent.ticket_id.in_(chunk),
                       TicketEvent.at > first, TicketEvent.at <= last)
                # SQLite without statistics would read every reopening of the span through
                # ix_ticket_event_kind_at once per chunk; a few rows per ticket id instead.
                .with_hint(TicketEvent, "INDEXED BY ix_ticket_event_ticket_id", "sqlite")):
            found.setdefault(ticket_id, []).append(at)
    return found


def _outcome(solved_at: datetime, reopened: Iterable[datetime], hold: timedelta,
             now: datetime) -> str:
    """held, reopened or pending: what became of one solve."""
    if any(solved_at < at <= min(solved_at + hold, now) for at in reopened):
        return "reopened"
    return "held" if solved_at + hold <= now else "pending"


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
