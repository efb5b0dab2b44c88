"""The one text analyzer of every search (maildesk/analyzer.py), and the snippets that mark
the words it matched (maildesk/search/snippet.py): pure functions, no database."""

from __future__ import annotations

import unicodedata

import pytest

from maildesk.analyzer import MAX_WORD, analyze, stem, terms, tokens, words
from maildesk.search.snippet import ELLIPSIS, make_snippet, matches


@pytest.mark.parametrize("forms", [
    ["принтер", "принтера", "принтеры", "принтеров", "принтеру", "ПРИНТЕРОМ", "Принтерах"],
    ["печатает", "печатают", "печатать", "печатала"],
    ["касса", "кассы", "кассе", "кассу", "кассой"],
    ["чек", "чеки", "чеков", "чеками"],
    ["printer", "printers", "Printer's", "PRINTERS"],
    ["print", "prints", "printing", "printed"],
    ["connect", "connection", "connections", "connected"],
])
def test_inflected_forms_have_one_stem(forms):
    stems = {s for f in forms for s in analyze(f)}
    assert len(stems) == 1, stems


def test_yo_reads_as_ye():
    assert analyze("ёлка Ёлки") == analyze("елка Елки") == ["елк", "елк"]
    assert analyze("всё ещё её") == analyze("все еще ее")
    assert words("Щёлкнуть") == ["щелкнуть"]
    assert terms("ёлки") == terms("ЕЛКА")


@pytest.mark.parametrize("text, kept", [
    ("не печатает", ["не", "печата"]),
    ("нет связи", ["нет", "связ"]),
    ("ни одного чека", ["ни", "одн", "чек"]),
    ("без чеков", ["без", "чек"]),
    ("printer not printing", ["printer", "not", "print"]),
    ("no connection", ["no", "connect"]),
    ("never again", ["never", "again"]),
    ("works without a cable", ["work", "without", "cabl"]),
])
def test_negations_are_kept(text, kept):
    assert analyze(text) == kept


def test_contractions_keep_their_negation():
    assert analyze("it doesn't print") == ["not", "print"]
    assert analyze("It doesn’t print, we can't scan, it won't start, we cannot log in") == [
        "not", "print", "not", "scan", "not", "start", "not", "log"]
    assert analyze("the printer's tray, we're stuck, I'll call") == [
        "printer", "tray", "stuck", "call"]
    assert words("O'Neil") == ["o", "neil"]


def test_function_words_are_dropped_but_not_the_rest():
    assert analyze("Добрый день! У нас в магазине и на складе") == ["добр", "ден", "магазин",
                                                                   "склад"]
    assert analyze("The printer is in the hall and it is off") == ["printer", "hall", "off"]
    assert terms("the and и в") == []


def test_mixed_scripts_are_stemmed_word_by_word():
    assert analyze("Принтеры HP LaserJet printers не печатают") == [
        "принтер", "hp", "laserjet", "printer", "не", "печата"]
    assert analyze("Касса №3, ККТ Атол 30Ф, ошибка 0x0E") == [
        "касс", "3", "ккт", "атол", "30ф", "ошибк", "0x0e"]
    assert stem("hp2055") == "hp2055" and stem("2024") == "2024"
    assert stem("straße") == "straße"                 # other scripts and accents: as written


def test_long_tokens_are_dropped():
    blob = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3"
    assert words(f"see {blob} and {'а' * MAX_WORD}") == ["see", "and", "а" * MAX_WORD]
    assert analyze(f"hash {'f' * (MAX_WORD + 1)} printer") == ["hash", "printer"]


def test_text_is_normalised_first():
    decomposed = unicodedata.normalize("NFD", "йод ёлка")
    assert analyze(decomposed) == analyze("йод елка")
    assert analyze("ＰＲＩＮＴＥＲ x²") == ["printer", "x2"]


def test_stems_are_letters_and_digits_only():
    """What both engines tokenise alike: no punctuation, no spaces inside a stem."""
    text = ("Re: [MD-1042] Не печатает принтер! URL https://x.example/a_b?c=d e-mail a@b.ru "
            "don't o'neil 3.14 1,250.00 #tag C++ Привет,мир")
    for s in analyze(text):
        assert s and all(c.isalnum() for c in s), s


def test_terms_are_distinct_in_order():
    assert terms("принтер принтеры Принтера не печатает") == ["принтер", "не", "печата"]


def test_tokens_say_where_the_words_stand():
    text = "He doesn’t print; Принтеры!"
    assert [(text[s:e], stems) for s, e, stems in tokens(text)] == [
        ("He", []), ("doesn’t", ["not"]), ("print", ["print"]), ("Принтеры", ["принтер"])]
    assert [text[s:e] for s, e, _ in tokens(text, 11)] == ["print", "Принтеры"]


# -- snippets -----------------------------------------------------------------------------------
BODY = ("Добрый день!\n\nУ нас в магазине перестала печатать чеки касса номер два. После "
        "обновления программы не печатаются чеки, на экране ошибка связи с фискальным "
        "накопителем. Принтер этикеток печатает пустые листы, хотя лента заправлена правильно. "
        "Просим срочно помочь, очередь покупателей растёт, а терминал оплаты не отвечает.")


def test_a_snippet_marks_the_matching_words_around_the_first():
    s = make_snippet(BODY, terms("принтеры"))
    assert s.marked() == ("…ошибка связи с фискальным накопителем. [[Принтер]] этикеток "
                          "печатает пустые листы, хотя лента заправлена правильно. Просим "
                          "срочно помочь, очередь покупателей…")
    assert s.words == ["Принтер"] and len(s.text) <= 170


def test_a_snippet_from_the_start_collapses_whitespace():
    s = make_snippet(BODY, terms("добрый день"))
    assert s.marked().startswith("[[Добрый]] [[день]]! У нас в магазине")
    assert "\n" not in s.text and s.text.endswith(ELLIPSIS)
    assert make_snippet("Short text.", terms("text")).marked() == "Short [[text]]."


def test_a_snippet_marks_every_form_and_the_negation():
    s = make_snippet(BODY, terms("не печатает"))
    assert s.words == ["печатать", "не", "печатаются"]
    assert make_snippet("The printer doesn't print.", terms("not printing")).marked() == (
        "The printer [[doesn't]] [[print]].")
    assert make_snippet("We copy it daily", terms("copies")).words == ["copy"]   # copi


def test_a_text_without_a_match_gives_its_start_unmarked():
    s = make_snippet(BODY, terms("кофемашина"))
    assert s.spans == () and s.text.startswith("Добрый день! У нас")
    assert not matches(BODY, terms("кофемашина")) and matches(BODY, terms("кассы"))
    assert make_snippet("", terms("x")).text == ""
