"""The article ranker: BM25F over the analyzer's stems, Russian and English word forms."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from maildesk.kb.load import load_kb
from maildesk.kb.model import Article, KnowledgeBase
from maildesk.kb.rank import ArticleHit, rank_index, search_articles

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    kb, problems = load_kb(ROOT / "config" / "kb", "en")
    assert problems == []
    return kb


def article(slug: str, title: str, body: str = "", *, language: str = "en",
            keywords: tuple[str, ...] = (), tags: tuple[str, ...] = (),
            audience: str = "public") -> Article:
    return Article(slug=slug, language=language, title=title, body=body,
                   path=Path(f"{language}/{slug}.md"), keywords=keywords, tags=tags,
                   audience=audience)


def make_kb(*articles: Article) -> KnowledgeBase:
    return KnowledgeBase({(a.slug, a.language): a for a in articles})


def test_russian_inflected_forms_find_the_printer_article(kb):
    hits = search_articles(kb, "принтеры не печатают")
    assert hits[0].slug == "printer-not-printing" and hits[0].language == "ru"
    assert isinstance(hits[0], ArticleHit) and hits[0].title == "Принтер не печатает"
    assert "принтер" in hits[0].snippet
    assert search_articles(kb, "не печатает принтера", language="ru")[0].slug == \
        "printer-not-printing"


def test_english_queries(kb):
    hits = search_articles(kb, "password")
    assert [h.slug for h in hits][:1] == ["password-reset"] and hits[0].language == "en"
    assert search_articles(kb, "I forgot my passwords and cannot login")[0].slug == \
        "password-reset"
    assert search_articles(kb, "printers printing", language="en")[0].slug == \
        "printer-not-printing"
    assert search_articles(kb, "receipts are not printed")[0].slug == "cash-register-receipts"


def test_cash_register_in_russian(kb):
    hits = search_articles(kb, "касса не печатает чек", language="ru", public_only=True)
    assert hits[0].slug == "cash-register-receipts"
    assert all(h.language == "ru" for h in hits)
    assert "kkt-fiscal-drive" not in {h.slug for h in hits}


def test_public_only_and_language(kb):
    internal = search_articles(kb, "фискальный накопитель")
    assert internal[0].slug == "kkt-fiscal-drive"
    public = search_articles(kb, "фискальный накопитель", public_only=True)
    assert "kkt-fiscal-drive" not in {h.slug for h in public}
    assert {h.language for h in search_articles(kb, "printer", language="en")} == {"en"}


def test_scores_are_normalised_and_ordered(kb):
    for query in ("принтеры не печатают", "password", "касса", "printer paper jam queue"):
        hits = search_articles(kb, query)
        assert hits, query
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0 < s < 1 for s in scores), (query, scores)
    # a strong match scores high, an unrelated query matches nothing or little
    assert search_articles(kb, "password reset")[0].score > 0.8
    assert search_articles(kb, "принтеры не печатают")[0].score > 0.8
    assert all(h.score < 0.3 for h in search_articles(kb, "holiday schedule of the canteen"))


def test_no_terms_no_hits(kb):
    assert search_articles(kb, "") == []
    assert search_articles(kb, "the of и в") == []         # function words only
    assert search_articles(kb, "printer", limit=0) == []
    assert search_articles(KnowledgeBase(), "printer") == []


def test_field_weights_title_and_keywords_above_tags_above_body():
    kb = make_kb(
        article("in-title", "Scanner", "Nothing else here."),
        article("in-keywords", "Something", "Nothing else here.", keywords=("scanner",)),
        article("in-tags", "Other thing", "Nothing else here.", tags=("scanner",)),
        article("in-body", "Different", "The scanner is mentioned here."),
        article("absent", "Unrelated", "Nothing at all."),
    )
    hits = search_articles(kb, "scanner")
    order = [h.slug for h in hits]
    assert set(order[:2]) == {"in-title", "in-keywords"}
    assert order[2:] == ["in-tags", "in-body"]
    assert hits[-1].score < hits[0].score


def test_rare_words_weigh_more_than_common_ones():
    kb = make_kb(*[article(f"a{i}", f"Printer model {i}", "A printer.") for i in range(20)],
                 article("toner", "Printer toner", "Toner is empty."))
    assert search_articles(kb, "printer toner")[0].slug == "toner"


def test_snippet_is_the_best_matching_sentence():
    kb = make_kb(article("x", "Printer", "First sentence is general. Then the toner runs out "
                                         "and the page is blank. Last one."))
    (hit,) = search_articles(kb, "toner")
    assert hit.snippet == "Then the toner runs out and the page is blank."


def test_the_index_is_built_once_per_knowledge_base(kb):
    assert rank_index(kb) is rank_index(kb)
    other = load_kb(ROOT / "config" / "kb", "en")[0]
    assert rank_index(other) is not rank_index(kb)


VOCAB_EN = ("invoice payment delivery order account login network router wifi email "
            "calendar scanner monitor keyboard mouse license update install backup server "
            "report export import contract refund discount warehouse barcode label shipment "
            "courier tracking vpn certificate browser phone tablet camera").split()
VOCAB_RU = ("счёт оплата доставка заказ вход сеть роутер почта календарь сканер монитор "
            "клавиатура лицензия обновление установка копия сервер отчёт выгрузка договор "
            "возврат скидка склад штрихкод этикетка отгрузка курьер трекинг сертификат "
            "браузер телефон планшет камера").split()


def synthetic_kb(n: int = 1000) -> KnowledgeBase:
    rng = random.Random(19)
    articles = []
    for i in range(n):
        ru = i % 2 == 1
        vocab = VOCAB_RU if ru else VOCAB_EN
        words = rng.sample(vocab, 4)
        body = " ".join(rng.choice(vocab) for _ in range(rng.randint(80, 250)))
        articles.append(article(f"article-{i}", " ".join(words[:3]).capitalize(),
                                body + ".", language="ru" if ru else "en",
                                keywords=tuple(rng.sample(vocab, 3)), tags=(words[3],),
                                audience="internal" if i % 10 == 0 else "public"))
    articles.append(article("printer-ink", "Printer is out of ink",
                            "When the printer prints faint pages, replace the ink cartridge.",
                            keywords=("ink cartridge", "faint print")))
    articles.append(article("printer-ink", "Принтер печатает бледно", language="ru",
                            body="Если принтер печатает бледные страницы, замените картридж.",
                            keywords=("картридж", "бледная печать")))
    return make_kb(*articles)


def test_a_thousand_articles(capsys):
    kb = synthetic_kb()
    assert len(kb) == 1002
    t0 = time.perf_counter()
    rank_index(kb)
    build = time.perf_counter() - t0

    queries = ["printer prints faint pages", "принтеры печатают бледно", "invoice payment refund",
               "доставка заказа курьером", "vpn certificate browser update", "картриджи",
               "router wifi network login email server backup"]
    assert search_articles(kb, queries[0])[0].slug == "printer-ink"
    hits = search_articles(kb, queries[1])
    assert (hits[0].slug, hits[0].language) == ("printer-ink", "ru")
    assert search_articles(kb, queries[5])[0].slug == "printer-ink"
    many = search_articles(kb, queries[2], limit=25, language="en", public_only=True)
    assert len(many) == 25 and all(h.language == "en" for h in many)
    assert all(not h.slug.endswith("0") or h.slug == "printer-ink" for h in many)  # i % 10

    runs = 20
    t0 = time.perf_counter()
    for _ in range(runs):
        for q in queries:
            search_articles(kb, q)
    per_query = (time.perf_counter() - t0) / (runs * len(queries))
    with capsys.disabled():
        print(f"\nkb ranker, {len(kb)} articles: index built in {build * 1000:.0f} ms, "
              f"{per_query * 1000:.2f} ms per query (mean of {runs * len(queries)})")
