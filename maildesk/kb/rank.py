"""Ranking articles for a text: BM25F over maildesk.analyzer's stems, in memory.

Pure. The index is built once per KnowledgeBase (on the first search) and kept as long as the
KnowledgeBase lives; a reload makes a new KnowledgeBase and so a new index.

Each article has four fields, weighted: the title and the keywords (3), the tags (2), the body
with the macro's text (1). A term's frequency is summed over the fields by weight, each
normalised by the field's length against the field's average (BM25F), then saturated:
tf / (k1 + tf). An article's **score** is the idf-weighted share of the query's terms it
matches, each counted by that saturation:

    score = sum(idf(t) * tf(t) / (k1 + tf(t))) / sum(idf(t))     over the query's terms t

(the denominator capped at the weight of CAP_WORDS words no article has: see search), so it
lies in [0, 1) whatever the size of the KB or the length of the query, and can be held
against a fixed threshold: a query word once in an average title counts about 0.7, once in an
average body about 0.45, in the title, keywords and body together above 0.9; a query word the
article lacks counts 0, and rare words weigh more than common ones.
"""

from __future__ import annotations

import heapq
import math
import threading
import weakref
from collections import Counter
from dataclasses import dataclass

from maildesk.analyzer import analyze, terms
from maildesk.kb.model import Article, KnowledgeBase
from maildesk.kb.plain import macro_text, markdown_text, sentences, shorten

# The score's denominator: at most the idf weight of this many words that no article has.
CAP_WORDS = 5.0

K1 = 1.2
# field: (weight, b)
FIELDS = {"title": (3.0, 0.5), "keywords": (3.0, 0.3), "tags": (2.0, 0.3), "body": (1.0, 0.75)}
SNIPPET_CHARS = 200


@dataclass(frozen=True)
class ArticleHit:
    slug: str
    language: str
    title: str
    score: float         # in [0, 1): see the module's docstring
    snippet: str         # the body's sentence that matches best (plain text)


@dataclass
class _Doc:
    article: Article
    text: str            # plain text of the body (for the snippet)


class RankIndex:
    """Postings term -> [(document, weighted, length-normalised tf)] and the idf of terms."""

    def __init__(self, kb: KnowledgeBase):
        self.docs: list[_Doc] = []
        field_terms: list[dict[str, Counter[str]]] = []
        lengths = dict.fromkeys(FIELDS, 0)
        for article in kb.articles.values():
            text = markdown_text(article.body)
            body = text + ("\n" + macro_text(article.macro) if article.macro else "")
            fields = {"title": analyze(article.title),
                      "keywords": analyze(" ".join(article.keywords)),
                      "tags": analyze(" ".join(article.tags)),
                      "body": analyze(body)}
            field_terms.append({name: Counter(stems) for name, stems in fields.items()})
            for name, stems in fields.items():
                lengths[name] += len(stems)
            self.docs.append(_Doc(article, text))
        n = len(self.docs)
        average = {name: (total / n if n else 0.0) or 1.0 for name, total in lengths.items()}
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for i, counters in enumerate(field_terms):
            weighted: Counter[str] = Counter()
            for name, counter in counters.items():
                weight, b = FIELDS[name]
                length = sum(counter.values())
                norm = 1.0 - b + b * length / average[name]
                for term, tf in counter.items():
                    weighted[term] += weight * tf / norm
            for term, tf in weighted.items():
                self.postings.setdefault(term, []).append((i, tf))
        self.n = n

    def idf(self, term: str) -> float:
        df = len(self.postings.get(term, ()))
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def search(self, text: str, *, language: str | None, limit: int, public_only: bool
               ) -> list[ArticleHit]:
        query = terms(text)
        if not query or limit <= 0:
            return []
        weights = {t: self.idf(t) for t in query}
        # A long mail is mostly words no article has (greetings, names, places): counted in
        # full they would sink every score with the mail's length. The denominator stops at
        # the weight of CAP_WORDS such words, so a short query scores as before and a long
        # mail about an article still scores like one (benchmarks/suggest.py).
        total = min(sum(weights.values()), CAP_WORDS * self.idf(""))
        if total <= 0:
            return []
        scores: dict[int, float] = {}
        for term, idf in weights.items():
            for i, tf in self.postings.get(term, ()):
                scores[i] = scores.get(i, 0.0) + idf * tf / (K1 + tf)
        docs = self.docs

        def allowed(i: int) -> bool:
            a = docs[i].article
            return (language is None or a.language == language) and \
                (not public_only or a.public)

        best = heapq.nsmallest(limit, ((-s, docs[i].article.slug, docs[i].article.language, i)
                                       for i, s in scores.items() if allowed(i)))
        return [self._hit(docs[i], min(-neg / total, 0.9999), set(query))
                for neg, _, _, i in best]

    @staticmethod
    def _hit(doc: _Doc, score: float, query: set[str]) -> ArticleHit:
        a = doc.article
        return ArticleHit(a.slug, a.language, a.title, round(score, 4),
                          snippet(doc.text, query))


def snippet(text: str, query: set[str], limit: int = SNIPPET_CHARS) -> str:
    """The sentence of `text` with the most query terms (the first such), else the first."""
    parts = sentences(text)
    if not parts:
        return ""
    best, best_hits = parts[0], 0
    for part in parts:
        hits = len(query.intersection(analyze(part)))
        if hits > best_hits:
            best, best_hits = part, hits
    return shorten(best, limit)


_INDEXES: dict[int, RankIndex] = {}
_LOCK = threading.Lock()


def rank_index(kb: KnowledgeBase) -> RankIndex:
    """The index of `kb`, built on first use and dropped when `kb` is."""
    key = id(kb)
    index = _INDEXES.get(key)
    if index is None:
        index = RankIndex(kb)
        with _LOCK:
            if key not in _INDEXES:
                _INDEXES[key] = index
                weakref.finalize(kb, _INDEXES.pop, key, None)
            index = _INDEXES[key]
    return index


def search_articles(kb: KnowledgeBase, text: str, *, language: str | None = None,
                    limit: int = 10, public_only: bool = False) -> list[ArticleHit]:
    """The articles that best match `text`, best first, at most `limit`; only those in
    `language` when given, only public ones with `public_only`. Scores are in [0, 1)."""
    return rank_index(kb).search(text, language=language, limit=limit, public_only=public_only)
