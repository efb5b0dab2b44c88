"""Every real-world mail of ../shared/corpus through the pipeline: a ticket entry or quarantine
with a reason; nothing crashes, nothing is lost."""

from __future__ import annotations

import email
import email.parser
import email.policy
import re
from collections import Counter
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from conftest import CORPUS, corpus_files
from helpers import cli_json, outbox_rows
from maildesk.db.models import Channel, Inbound, InboundStatus, Message
from maildesk.store.raw import Arrival, store_arrivals

CYRILLIC = re.compile(r"[А-Яа-яЁё]{3,}")


def russian_files() -> set[str]:
    """Corpus mails whose text an independent stdlib decode shows to be Russian, plus the one
    with no charset at all (which only a guess can read)."""
    out = {"rt/emails/russian-subject-no-content-type"}
    for row in (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        path, _, note = row.partition("\t")
        if re.search(r"koi8-r|windows-1251|cp1251|Russian", note, re.I) and stdlib_cyrillic(path):
            out.add(path)
    return out


def corpus_categories() -> dict[str, str]:
    rows = (CORPUS / "index.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return {r.split("\t")[0]: r.split("\t")[1] for r in rows}


def has_list_id(path: str) -> bool:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        (CORPUS / path).read_bytes())
    return headers.get("List-Id") is not None


def stdlib_cyrillic(path: str) -> bool:
    msg = email.message_from_bytes((CORPUS / path).read_bytes(), policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_maintype() != "text" or part.get_filename():
            continue
        charset = part.get_content_charset()
        if charset not in ("koi8-r", "windows-1251", "cp1251", "utf-8"):
            continue
        try:
            text = (part.get_payload(decode=True) or b"").decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
        if CYRILLIC.search(text):
            return True
    return False


@pytest.mark.corpus
def test_every_corpus_mail_ends_as_ticket_entry_or_quarantine(ctx, processor, cli):
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus is absent")
    now = datetime.now(timezone.utc)
    ids: dict[int, str] = {}
    with ctx.make_session.begin() as s:
        for start in range(0, len(files), 200):
            chunk = files[start:start + 200]
            arrivals = [Arrival(data=f.read_bytes(), channel=Channel.PIPE, received_at=now,
                                rcpt_to=("support@example.com",), source=f"corpus:{f.name}")
                        for f in chunk]
            for inbound_id, f in zip(store_arrivals(s, arrivals), chunk):
                ids[inbound_id] = str(f.relative_to(CORPUS))
    outcomes = processor.drain()
    with ctx.make_session() as s:
        rows = s.execute(select(Inbound.id, Inbound.status, Inbound.reason)).all()
        messages = dict(s.execute(select(Message.inbound_id, Message.body_text)).all())
    statuses = Counter(r.status.value for r in rows)
    reasons = Counter((r.reason or "").splitlines()[0][:80] for r in rows
                      if r.status is InboundStatus.QUARANTINED)
    print(f"\ncorpus: {len(files)} mails -> {dict(statuses)}")
    for reason, n in reasons.most_common():
        print(f"  quarantined x{n}: {reason}")
    assert len(rows) == len(files)                     # nothing lost
    assert statuses["pending"] == 0                    # nothing stuck
    assert not [o for o in outcomes if o.status == "retry"]  # no crash in any stage
    for r in rows:
        if r.status is InboundStatus.QUARANTINED:
            assert r.reason and "Traceback" not in r.reason, ids[r.id]
        elif r.status is InboundStatus.DONE:
            assert r.id in messages, ids[r.id]
        elif r.status is InboundStatus.IGNORED:  # rules.yaml: list mail is kept, not a ticket
            assert r.reason and "ignore" in r.reason and has_list_id(ids[r.id]), ids[r.id]
            assert r.id not in messages, ids[r.id]
    assert statuses["done"] + statuses["duplicate"] > 0.9 * len(files)

    # No autoreply to a bounce, an auto-reply or a list mail (RFC 3834), through the pipeline.
    robots = {path for path, category in corpus_categories().items()
              if category in ("bounce-dsn", "autoreply")}
    acked = {o.ticket_id for o in outbox_rows(ctx, "autoreply")}  # not the line notifications
    with ctx.make_session() as s:
        ticket_of = dict(s.execute(select(Message.inbound_id, Message.ticket_id)
                                   .where(Message.inbound_id.is_not(None))).all())
    answered = {ids[i] for i, t in ticket_of.items() if t in acked}
    wrongly = sorted(p for p in answered if p in robots or has_list_id(p))
    assert robots and not wrongly, wrongly
    print(f"  autoreplies: {len(acked)}; none to the {len(robots)} bounces and auto-replies "
          "nor to list mail")

    # Russian mail (cp1251, koi8-r, undeclared) reads as Russian, in `tickets show` too.
    russian = {i for i, path in ids.items() if path in russian_files()}
    print(f"  Russian mails checked for readable Cyrillic text: {len(russian)}")
    assert len(russian) >= 5
    unreadable = [ids[i] for i in russian if i in messages and not CYRILLIC.search(messages[i])]
    assert not unreadable, unreadable
    with ctx.make_session() as s:
        some = s.scalar(select(Message).where(Message.inbound_id.in_(russian)).limit(1))
        number = some.ticket.number
    shown = cli_json(cli, "tickets", "show", str(number))
    assert any(CYRILLIC.search(m["text"]) for m in shown["messages"])
