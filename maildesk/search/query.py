"""Searching tickets: the query's stems against the index (search_entry), on either engine.

Every word of the query must match (AND) within one entry: a ticket's subject, or a mail with
its subject. Words are matched as maildesk.analyzer reads them on both sides, so `принтер`
finds `принтера` and `printers` finds `printer`, and a negation is a word like the others
(`не печатает` needs the `не`). Entries are ranked by the engine, bm25 on SQLite (FTS5),
ts_rank on PostgreSQL (normalised by the log of the length, as bm25 favours short entries
too). A ticket ranks by its best entry and comes once, with the snippet of its best matching
mail: the mail of its best entry, or when its subject ranked best, its first mail holding
every word (else the subject itself, e.g. when only internal notes matched and they are left
out). Ties go to the newer ticket. The two engines find the same tickets; their scores differ
in scale, and so may the order of close scores.

How: the engine's own top-k of the matching entries (k = 4 x limit, at least 50) is all that
is ranked and sorted, as a bare full-text query would; the entries are grouped per ticket
here. When those k entries name fewer than `limit` tickets and there are more matches, k
grows (x 8) until they do or every match is in: the best entry of every ticket among the top
`limit` is then among the top k, so the result is the same as grouping every match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import TextClause, bindparam
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from maildesk.analyzer import terms as query_terms
from maildesk.db.models import TicketStatus
from maildesk.search.snippet import Snippet, make_snippet

DEFAULT_LIMIT = 20
_FIRST_K, _MIN_K, _GROW = 4, 50, 8


@dataclass(frozen=True)
class TicketHit:
    number: int
    subject: str
    status: TicketStatus
    requester: str
    score: float                 # the engine's relevance, higher is better (not comparable
                                 # between SQLite and PostgreSQL)
    snippet: str                 # plain text around the first matching words
    highlights: tuple[tuple[int, int], ...] = ()   # [start, end) of the matching words in it
    message_id: int | None = None                  # the mail the snippet is from (None: subject)

    def marked(self, open: str = "[[", close: str = "]]") -> str:
        """The snippet with the matching words between `open` and `close`."""
        return Snippet(self.snippet, self.highlights).marked(open, close)


# The engine's best :k entries holding every term: (ticket_id, message_id, score), best first.
# Without filters SQLite ranks in FTS5 alone and looks up only the k entries.
_ENTRIES = {
    "sqlite": """
        SELECT e.ticket_id, e.message_id, c.score
        FROM (SELECT rowid AS id, -rank AS score FROM search_fts
              WHERE search_fts MATCH :match ORDER BY rank LIMIT :k) AS c
        JOIN search_entry AS e ON e.id = c.id
        ORDER BY c.score DESC""",
    "sqlite+filters": """
        SELECT e.ticket_id, e.message_id, -search_fts.rank AS score
        FROM search_fts JOIN search_entry AS e ON e.id = search_fts.rowid{join}
        WHERE search_fts MATCH :match{where}
        ORDER BY search_fts.rank LIMIT :k""",
    "postgresql": """
        SELECT e.ticket_id, e.message_id, ts_rank(e.tsv, q.q, 1) AS score
        FROM search_entry AS e
             CROSS JOIN plainto_tsquery('simple'::regconfig, :match) AS q(q){join}
        WHERE e.tsv @@ q.q{where}
        ORDER BY score DESC LIMIT :k""",
}
_TICKETS = sql_text("SELECT id, number, subject, status, requester FROM ticket "
                    "WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
_MAILS = sql_text("SELECT id, subject, body_text FROM message "
                  "WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
_MAIL_STEMS = sql_text("SELECT ticket_id, message_id, stems, internal FROM search_entry "
                       "WHERE ticket_id IN :ids AND message_id IS NOT NULL "
                       "ORDER BY message_id").bindparams(bindparam("ids", expanding=True))


def match_expression(dialect: str, terms: Sequence[str]) -> str:
    """The engine's query for entries holding every one of `terms` (stems)."""
    if dialect == "sqlite":   # FTS5: quoted strings, implicitly ANDed
        return " ".join('"' + t.replace('"', '""') + '"' for t in terms)
    return " ".join(terms)    # plainto_tsquery ANDs the words


def entries_statement(dialect: str, *, status: bool = False, requester: bool = False,
                      internal: bool = True) -> str:
    """The SQL of the engine's top :k entries for :match, with the filters asked for."""
    join, where = "", ""
    if status or requester:
        join = "\n        JOIN ticket AS f ON f.id = e.ticket_id"
        where += "\n          AND f.status = :status" if status else ""
        where += "\n          AND f.requester = :requester" if requester else ""
    if not internal:
        where += "\n          AND NOT e.internal"
    if dialect == "sqlite" and where:
        dialect = "sqlite+filters"
    try:
        return _ENTRIES[dialect].format(join=join, where=where)
    except KeyError:
        raise NotImplementedError(f"search on {dialect}") from None


def search_tickets(session: Session, text: str, *, status: TicketStatus | str | None = None,
                   requester: str | None = None, limit: int = DEFAULT_LIMIT,
                   internal: bool = True) -> list[TicketHit]:
    """The tickets matching every word of `text`, best first, at most `limit`; only those
    in `status` and of `requester` (an address, any letter case) when given. `internal=False`
    leaves internal notes out (a search a client could see). A query of function words only
    finds nothing."""
    terms = query_terms(text)
    if not terms or limit < 1:
        return []
    dialect = session.get_bind().dialect.name
    params: dict[str, object] = {"match": match_expression(dialect, terms)}
    if status is not None:
        params["status"] = TicketStatus(status).value
    if requester is not None:
        params["requester"] = requester.strip().lower()
    statement = sql_text(entries_statement(dialect, status=status is not None,
                                           requester=requester is not None, internal=internal))
    best = _best_entries(session, statement, params, limit)
    if not best:
        return []
    tickets = {r.id: r for r in session.execute(_TICKETS, {"ids": list(best)})}
    mails = {t: m for t, (_, m) in best.items() if m is not None}
    by_subject = [t for t, (_, m) in best.items() if m is None]
    if by_subject:
        mails.update(_first_matching_mails(session, by_subject, set(terms), internal))
    texts = {r.id: (r.subject, r.body_text) for r in session.execute(
        _MAILS, {"ids": list(mails.values())})} if mails else {}
    hits = []
    for ticket_id, (score, _) in best.items():
        t, mail = tickets[ticket_id], mails.get(ticket_id)
        snippet = _snippet(texts.get(mail), t.subject, terms)
        hits.append(TicketHit(number=t.number, subject=t.subject, status=TicketStatus(t.status),
                              requester=t.requester, score=float(score), snippet=snippet.text,
                              highlights=snippet.spans, message_id=mail))
    return hits


def _best_entries(session: Session, statement: TextClause, params: dict[str, object],
                  limit: int) -> dict[int, tuple[float, int | None]]:
    """The best `limit` tickets, best first: ticket id -> (score, mail of its best entry)."""
    k = max(_FIRST_K * limit, _MIN_K)
    while True:
        rows = session.execute(statement, {**params, "k": k}).all()
        best: dict[int, tuple[float, int | None]] = {}
        for ticket_id, message_id, score in rows:
            if ticket_id not in best:
                best[ticket_id] = (score, message_id)
        if len(best) >= limit or len(rows) < k:
            ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[0]))[:limit]
            return dict(ranked)
        k *= _GROW


def _first_matching_mails(session: Session, ticket_ids: list[int], terms: set[str],
                          internal: bool) -> dict[int, int]:
    """For tickets whose subject ranked best: their first mail holding every term."""
    first: dict[int, int] = {}
    for ticket_id, message_id, stems, is_internal in session.execute(
            _MAIL_STEMS, {"ids": ticket_ids}):
        if ticket_id not in first and (internal or not is_internal) \
                and terms.issubset(stems.split()):
            first[ticket_id] = message_id
    return first


def _snippet(mail: tuple[str, str] | None, ticket_subject: str, terms: list[str]) -> Snippet:
    """From the mail's text where its words match, else from its subject, else from the
    ticket's subject (no mail)."""
    if mail is None:
        return make_snippet(ticket_subject, terms)
    subject, body = mail
    snippet = make_snippet(body or "", terms)
    if snippet.spans:
        return snippet
    by_subject = make_snippet(subject or "", terms)
    return by_subject if by_subject.spans or not snippet.text else snippet


__all__ = ["DEFAULT_LIMIT", "TicketHit", "entries_statement", "match_expression",
           "search_tickets"]
