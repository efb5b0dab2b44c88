"""Full-text search (issue 19) on a real SQLite and a real PostgreSQL: word forms in Russian and
English, negations, filters, the index written in the processing transaction, the back-fill
of migration 0010, the CLI. Every test runs on both backends with the same expectations, and
one compares both engines with a reference computed in Python from the analyzer."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import func, select, update

from helpers import deliver, send_smtp, store
from mails import mail
from maildesk.analyzer import analyze, terms
from maildesk.app import alembic_config
from maildesk.db.models import Message, SearchEntry, Ticket, TicketStatus
from maildesk.search import search_tickets
from maildesk.services import search as search_service
from maildesk.services.errors import BadRequest

ANNA = "Анна Иванова <anna@shop.example.ru>"
BOB = "Bob Smith <bob@store.example.com>"


def numbers(ctx, query: str, **kw) -> list[int]:
    with ctx.read_session() as session:
        return [h.number for h in search_tickets(session, query, **kw)]


def hits(ctx, query: str, **kw):
    with ctx.read_session() as session:
        return search_tickets(session, query, **kw)


@pytest.fixture
def desk(ctx, processor):
    """Six tickets, MD-1000..MD-1005."""
    for sender, subject, body in (
            (ANNA, "Принтер не печатает", "Добрый день! Принтер в кассе №2 не печатает чеки."),
            (ANNA, "Замена картриджа", "Нужен картридж для принтера HP в торговом зале."),
            (BOB, "Label printers", "Both label printers at the warehouse print blank labels."),
            (BOB, "Scanner", "The barcode scanner reads every second code. The printer is fine."),
            (ANNA, "Полосы на чеках", "Принтеры печатают, но с полосами, чеки плохо читаются."),
            (BOB, "Portal login", "We cannot log in to the customer portal since Monday.")):
        deliver(ctx, processor, mail(sender=sender, subject=subject, body=body))
    return ctx


# -- word forms, negations ----------------------------------------------------------------------
def test_russian_word_forms_meet(desk):
    assert set(numbers(desk, "принтер")) == {1000, 1001, 1004}   # принтер, принтера, принтеры
    assert set(numbers(desk, "ПРИНТЕРОВ")) == {1000, 1001, 1004}
    assert numbers(desk, "картриджи") == [1001]


def test_english_word_forms_meet(desk):
    assert set(numbers(desk, "printers")) == {1002, 1003}         # printers, printer
    assert set(numbers(desk, "printer")) == {1002, 1003}
    assert numbers(desk, "logging") == [1005]                      # log
    assert numbers(desk, "scanners reading") == [1003]


def test_a_negation_is_a_word_of_the_query(desk):
    # "не печатает" needs the "не": the mail that prints (with stripes) is not a match.
    assert numbers(desk, "не печатает") == [1000]
    assert set(numbers(desk, "печатает")) == {1000, 1004}
    assert numbers(desk, "принтер печатает полосы") == [1004]
    assert numbers(desk, "cannot log in") == [1005]
    assert numbers(desk, "not log") == [1005]                      # cannot = can not
    assert numbers(desk, "nothing here at all") == []


def test_the_subject_and_repeated_words_rank_first(desk):
    assert numbers(desk, "printer") == [1002, 1003]        # in the subject, twice in the text
    assert numbers(desk, "чеки")[:1] == [1004]             # "чеках" in the subject, text too
    assert numbers(desk, "принтер")[-1] == 1001            # only "принтера" in the text


def test_every_word_must_match_in_the_subject_or_a_mail(desk):
    # The subject says "Принтер", the text "картридж": one mail holds both.
    assert numbers(desk, "картридж HP принтер") == [1001]
    assert numbers(desk, "картридж сканер") == []


def test_filters_by_status_and_requester(desk):
    with desk.make_session.begin() as session:
        session.execute(update(Ticket).where(Ticket.number == 1004)
                        .values(status=TicketStatus.CLOSED))
    assert set(numbers(desk, "принтер", status="new")) == {1000, 1001}
    assert numbers(desk, "принтер", status=TicketStatus.CLOSED) == [1004]
    assert set(numbers(desk, "printer", requester="BOB@store.example.com")) == {1002, 1003}
    assert numbers(desk, "printer", requester="anna@shop.example.ru") == []
    assert numbers(desk, "принтер", requester="anna@shop.example.ru", status="closed") == [1004]
    assert len(numbers(desk, "принтер", limit=2)) == 2


def test_hits_carry_the_ticket_and_a_snippet_of_the_best_mail(desk):
    (hit,) = hits(desk, "картриджи")
    assert (hit.number, hit.subject, hit.status, hit.requester) == (
        1001, "Замена картриджа", TicketStatus.NEW, "anna@shop.example.ru")
    assert hit.score > 0 and hit.message_id is not None
    assert hit.marked() == "Нужен [[картридж]] для принтера HP в торговом зале."
    assert hit.snippet == "Нужен картридж для принтера HP в торговом зале."
    assert [hit.snippet[s:e] for s, e in hit.highlights] == ["картридж"]
    (hit,) = hits(desk, "не печатает")
    assert hit.marked() == "Добрый день! Принтер в кассе №2 [[не]] [[печатает]] чеки."


def test_a_reply_joins_its_ticket_in_the_index(desk, processor):
    with desk.make_session() as s:
        first = s.scalar(select(Message.message_id).join(Ticket)
                         .where(Ticket.number == 1005, Message.direction == "in"))
    deliver(desk, processor, mail(sender=BOB, subject="Re: Portal login", in_reply_to=first,
                                  references=[first], body="Still broken: error 503 in Chrome."))
    (hit,) = hits(desk, "chrome")
    assert hit.number == 1005 and "[[Chrome]]" in hit.marked()
    assert numbers(desk, "portal") == [1005]                      # one hit per ticket


def test_a_ticket_with_many_matching_mails_does_not_crowd_out_the_others(desk, processor,
                                                                          monkeypatch):
    """The engine ranks only its top k entries; when they name too few tickets, k grows."""
    import maildesk.search.query as query

    with desk.make_session() as s:
        first = s.scalar(select(Message.message_id).join(Ticket)
                         .where(Ticket.number == 1002, Message.direction == "in"))
    for i in range(4):
        deliver(desk, processor, mail(sender=BOB, subject="Re: Label printers",
                                      in_reply_to=first, references=[first],
                                      body=f"Printer, printer, printer! Try {i}."))
    monkeypatch.setattr(query, "_FIRST_K", 1)
    monkeypatch.setattr(query, "_MIN_K", 2)
    assert numbers(desk, "printer", limit=2) == [1002, 1003]
    assert numbers(desk, "printer", limit=1) == [1002]
    assert numbers(desk, "printer", limit=5) == [1002, 1003]


# -- the same results on both engines -------------------------------------------------------------
CORPUS = [
    ("Касса не печатает чеки", "С утра касса №3 не печатает чеки, ошибка ФН."),
    ("Касса печатает пустые чеки", "Касса печатает, но чеки пустые. Лента новая."),
    ("Receipt printer not printing", "Our receipt printer doesn't print since the update."),
    ("Printers at till 4", "Both printers print fine, the scanner does not scan."),
    ("Ошибка фискального накопителя", "Ошибка ФН на кассе, чеки не уходят в ОФД."),
    ("Весы не передают вес", "После замены кабеля весы не передают вес в кассу."),
    ("Re: Весы", "Весы передают вес, спасибо, можно закрывать."),
    ("Без чеков", "Касса работает без чеков третий день."),
    ("Ёлка в магазине", "Гирлянда на ёлке не горит, это не срочно."),
    ("Card terminal", "The card terminal shows connection lost; no payments without it."),
]
QUERIES = ["касса", "кассы не печатают", "чек", "не", "без чеков", "printer", "not printing",
           "printers scanner", "весы передают", "не передают", "елка", "ёлки", "ФН",
           "no payments", "connection lost terminal", "ошибка кассы"]


def test_both_engines_find_what_the_analyzer_says(ctx, processor):
    """The tickets found are those where one entry (the subject, or a mail with its subject)
    holds every stem of the query, computed here in Python from the analyzer alone."""
    for i, (subject, body) in enumerate(CORPUS):
        deliver(ctx, processor, mail(sender=f"client{i}@customer.example", subject=subject,
                                     body=body))
    for query in QUERIES:
        wanted = set(terms(query))
        expected = {1000 + i for i, (subject, body) in enumerate(CORPUS)
                    if wanted <= set(analyze(subject))
                    or wanted <= set(analyze(subject + " " + body))}
        assert set(numbers(ctx, query, limit=100)) == expected, query


# -- written with the data, in the processing transaction ------------------------------------------
def test_a_mail_from_the_listener_is_found_right_after_processing(ctx, smtp_listener, processor):
    raw = mail(sender=BOB, subject="Terminal offline", body="The card terminals went offline.")
    send_smtp(smtp_listener.host, smtp_listener.port, raw.replace(b"\n", b"\r\n"),
              sender="bob@store.example.com")
    assert numbers(ctx, "terminal") == []                          # stored, not processed yet
    processor.drain()
    assert numbers(ctx, "terminals offline") == [1000]
    with ctx.make_session() as s:
        rows = s.execute(select(SearchEntry.kind, SearchEntry.message_id.is_(None),
                                SearchEntry.internal).order_by(SearchEntry.id)).all()
    assert rows == [("subject", True, False), ("message", False, False)]


def test_a_failed_message_leaves_nothing_in_the_index(ctx, processor, monkeypatch):
    import maildesk.effects.apply as apply

    def broken(*args, **kw):
        raise RuntimeError("boom after the mail was recorded")
    monkeypatch.setattr(apply, "apply_effects", broken)
    store(ctx, mail(subject="Printer jammed", body="Paper jam in the printer."))
    processor.drain()
    with ctx.make_session() as s:
        assert s.scalar(select(func.count()).select_from(SearchEntry)) == 0
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0
    monkeypatch.undo()
    processor.drain()
    # PostgreSQL draws ticket numbers in a transaction of their own: the failed tries used 1000
    # (the batch) and 1001 (the mail on its own, when the batch ran again carefully).
    first = 1002 if ctx.engine.dialect.name == "postgresql" else 1000
    assert numbers(ctx, "jammed printer") == [first]
    with ctx.make_session() as s:
        assert s.scalar(select(func.count()).select_from(SearchEntry)) == 2


def _agent_note(ctx, processor, smtp_listener) -> None:
    """A client's cash-register mail (routed to line 2), then line 2's internal #note on it."""
    import email
    from email import policy
    from pathlib import Path

    from maildesk.outbound.outbox import OutboxDeliverer
    from maildesk.outbound.registry import make_transport

    client = mail(sender="Иван <ivan@shop.example.ru>", subject="Не работает касса",
                  body="Касса №3 не печатает чеки с утра.")
    send_smtp(smtp_listener.host, smtp_listener.port, client.replace(b"\n", b"\r\n"),
              sender="ivan@shop.example.ru")
    processor.drain()
    deliverer = OutboxDeliverer(ctx.make_session, make_transport(ctx.settings.outbound), ctx.clock)
    try:
        deliverer.drain()
    finally:
        deliverer.transport.close()
    folder = Path(ctx.settings.outbound.maildir) / "new"
    notes = [m for m in (email.message_from_bytes(p.read_bytes(), policy=policy.default)
                         for p in folder.iterdir())
             if "line2@example.com" in m["X-Maildesk-Envelope-To"]]
    notification = notes[0]
    reply = EmailMessage()
    reply["From"] = "Carol <carol@example.com>"
    reply["To"] = notification["Reply-To"].addresses[0].addr_spec
    reply["Subject"] = "RE: " + notification["Subject"]
    reply["Message-ID"] = make_msgid(domain="example.com")
    reply["In-Reply-To"] = notification["Message-ID"]
    reply["References"] = notification["Message-ID"]
    reply["Date"] = format_datetime(datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc))
    reply.set_content("#note\nКлиент звонил, просит ускорить. Драйвер ККТ переустановлен.")
    send_smtp(smtp_listener.host, smtp_listener.port,
              reply.as_bytes().replace(b"\n", b"\r\n"), sender="carol@example.com",
              rcpt=[reply["To"]])
    processor.drain()


def test_internal_notes_are_indexed_and_flagged(ctx, processor, smtp_listener):
    _agent_note(ctx, processor, smtp_listener)
    with ctx.make_session() as s:
        flags = s.execute(select(SearchEntry.kind, SearchEntry.internal)
                          .order_by(SearchEntry.id)).all()
    assert flags == [("subject", False), ("message", False), ("message", True)]
    (hit,) = hits(ctx, "драйвер")                       # agents find the note
    assert hit.number == 1000 and "[[Драйвер]]" in hit.marked()
    assert numbers(ctx, "драйвер", internal=False) == []          # a client-facing search does not
    assert numbers(ctx, "касса", internal=False) == [1000]


# -- migration 0010 back-fills ---------------------------------------------------------------------
def test_the_migration_backfills_tickets_and_mails(desk):
    url = desk.settings.database.url
    with desk.make_session() as s:
        before = s.execute(select(SearchEntry.kind, SearchEntry.ticket_id, SearchEntry.message_id,
                                  SearchEntry.internal, SearchEntry.stems)
                           .order_by(SearchEntry.ticket_id, SearchEntry.message_id)).all()
    desk.engine.dispose()
    command.downgrade(alembic_config(url), "0009")
    command.upgrade(alembic_config(url), "head")
    with desk.make_session() as s:
        after = s.execute(select(SearchEntry.kind, SearchEntry.ticket_id, SearchEntry.message_id,
                                 SearchEntry.internal, SearchEntry.stems)
                          .order_by(SearchEntry.ticket_id, SearchEntry.message_id)).all()
    assert sorted(after, key=repr) == sorted(before, key=repr) and len(after) == 12
    assert set(numbers(desk, "принтер")) == {1000, 1001, 1004}
    command.check(alembic_config(url))


# -- the service and the command -------------------------------------------------------------------
def test_the_service_returns_the_json_shape_and_refuses_an_empty_query(desk):
    (row,) = search_service.search_tickets(desk, "картриджи")
    assert row == {"number": 1001, "tag": "MD-1001", "subject": "Замена картриджа",
                   "status": "new", "requester": "anna@shop.example.ru", "score": row["score"],
                   "message_id": row["message_id"],
                   "snippet": "Нужен картридж для принтера HP в торговом зале.",
                   "highlights": [[6, 14]]}
    assert search_service.marked(row) == "Нужен [[картридж]] для принтера HP в торговом зале."
    with pytest.raises(BadRequest, match="nothing to search for"):
        search_service.search_tickets(desk, "the and и")
    with pytest.raises(BadRequest, match="--limit"):
        search_service.search_tickets(desk, "принтер", limit=0)


def test_cli_search_prints_hits_json_and_no_match(desk, cli):
    out = cli("tickets", "search", "не", "печатает", check=True).stdout.decode()
    assert out.splitlines() == [
        "MD-1000      new       anna@shop.example.ru             Принтер не печатает",
        "    Добрый день! Принтер в кассе №2 [[не]] [[печатает]] чеки."]
    rows = json.loads(cli("tickets", "search", "printers", "--json", "--requester",
                          "bob@store.example.com", "--limit", "5", check=True).stdout)
    assert {r["tag"] for r in rows} == {"MD-1002", "MD-1003"}
    assert all(r["snippet"][s:e].lower().startswith("printer") for r in rows
               for s, e in r["highlights"])
    none = cli("tickets", "search", "кофемашина", "--status", "closed")
    assert (none.returncode, none.stdout.decode()) == (0, "no match\n")
    assert json.loads(cli("tickets", "search", "кофемашина", "--json").stdout) == []
    bad = cli("tickets", "search", "the")
    assert bad.returncode == 2 and "nothing to search for" in bad.stderr.decode()
