"""One decision (issue 18): the daemon's pipeline and `rules test` call the same decide() on the
same facts, so for every mail they agree on the ticket decision, line, priority, deadlines and
"autoreply or why not". Run over the whole corpus and a generated threaded corpus, each mail
first dry-run on the database as it stands, then processed."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import SUPPORT
from mails import mail
from maildesk.clock import FixedClock
from maildesk.db.models import Channel, Outbox, Ticket, TicketEvent
from maildesk.process.dryrun import dry_run
from maildesk.process.run import Processor
from maildesk.store.raw import Arrival, store_one

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 12, 3, 10, 30, tzinfo=timezone.utc)
_STATUS = {"quarantine": "quarantined", "duplicate": "duplicate", "ignore": "ignored"}


def _iso(value: datetime | None, zone) -> str | None:
    return value.astimezone(zone).isoformat("T", "seconds") if value else None


def _what_the_pipeline_did(ctx, outcome, zone) -> dict:
    with ctx.make_session() as s:
        if outcome.status != "done":
            return {"outcome": outcome.status}
        ticket = s.scalar(select(Ticket).where(Ticket.number == outcome.ticket_number))
        events = s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
                           .order_by(TicketEvent.id)).all()
        acked = s.scalar(select(Outbox.id).where(Outbox.ticket_id == ticket.id,
                                                 Outbox.kind == "autoreply")) is not None
        suppressed = [e.data.get("reason") for e in events if e.kind == "autoreply_suppressed"]
        return {"outcome": "done", "ticket": ticket.number, "line": ticket.line,
                "priority": ticket.priority,
                "first_response": _iso(ticket.first_response_due_at, zone),
                "resolution": _iso(ticket.resolution_due_at, zone),
                "autoreply": "yes" if acked else (suppressed[0] if suppressed else None)}


def _compare(name: str, said: dict, did: dict) -> list[str]:
    """Differences between the dry run's word and the pipeline's deed, for one mail."""
    d = said["decision"]
    outcome = d["outcome"]
    if outcome in _STATUS:
        return [] if did["outcome"] == _STATUS[outcome] else [f"{name}: said {outcome}, did {did}"]
    if did["outcome"] != "done":
        return [f"{name}: said {outcome}, did {did['outcome']}"]
    if outcome == "bounce":
        return []
    problems = []
    if d["ticket"] is not None and d["ticket"] != did["ticket"] and outcome != "new ticket":
        problems.append(f"{name}: said ticket {d['ticket']}, joined {did['ticket']}")
    if outcome == "new ticket":
        if d["ticket"] is not None:
            problems.append(f"{name}: a new ticket names ticket {d['ticket']}")
        deadlines = said.get("deadlines") or {}
        expect = {"line": said["line"], "priority": said["priority"],
                  "first_response": deadlines.get("first_response"),
                  "resolution": deadlines.get("resolution"),
                  "autoreply": "yes" if said["autoreply"] else d["autoreply"]}
        got = {k: did[k] for k in expect}
        if expect != got:
            problems.append(f"{name}: said {expect}, did {got}")
    else:
        if (said["line"], said["priority"]) != (did["line"], did["priority"]):
            problems.append(f"{name}: said line/priority {said['line']}/{said['priority']}, "
                            f"ticket has {did['line']}/{did['priority']}")
    return problems


def _run(ctx, mails: list[tuple[str, bytes, str | None]]) -> tuple[list[str], dict[str, int]]:
    """Dry-run then process each (name, raw, mail_from); return the disagreements."""
    zone = next(iter(ctx.settings.calendars.values())).zone
    p = Processor(ctx.settings, ctx.make_session, FixedClock(AT))
    problems: list[str] = []
    seen: dict[str, int] = {}
    try:
        for name, raw, mail_from in mails:
            with ctx.read_session() as session:
                said = dry_run(raw, ctx.settings, AT, rcpt=(SUPPORT,), session=session,
                               mail_from=mail_from)
            said = json.loads(json.dumps(said, default=str))  # as `rules test --json` prints it
            inbound = store_one(ctx.make_session, Arrival(
                data=raw, channel=Channel.PIPE, received_at=AT, mail_from=mail_from,
                rcpt_to=(SUPPORT,)))
            (outcome,) = [o for o in p.run_batch(limit=1, only=[inbound])]
            problems += _compare(name, said, _what_the_pipeline_did(ctx, outcome, zone))
            key = said["decision"]["outcome"]
            seen[key] = seen.get(key, 0) + 1
    finally:
        p.close()
    return problems, seen


def test_the_mailer_daemon_case(ctx):
    """The dry run of a mail from MAILER-DAEMON promises no autoreply, as the daemon sends none."""
    raw = mail(sender="Mail Delivery System <MAILER-DAEMON@mx.example.net>",
               subject="Undelivered Mail Returned to Sender", body="gone")
    with ctx.read_session() as session:
        said = dry_run(raw, ctx.settings, AT, session=session, mail_from="")
    assert said["autoreply"] is None and said["decision"]["autoreply"] == "empty return path"
    problems, seen = _run(ctx, [("mailer-daemon", raw, "")])
    assert problems == [] and seen == {"new ticket": 1}


def test_generated_threads_get_the_same_decision_from_both(ctx):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import generate_corpus
    corpus = generate_corpus(120, seed=7, start=AT)
    problems, seen = _run(ctx, [(f"{m.kind} {i}", m.raw, m.mail_from)
                                for i, m in enumerate(corpus)])
    assert problems == [], "\n".join(problems[:20])
    assert seen.get("joins ticket", 0) > 30 and seen.get("new ticket", 0) > 30


@pytest.mark.corpus
def test_every_corpus_mail_gets_the_same_decision_from_both(ctx, db_url):
    from conftest import CORPUS
    index = CORPUS / "index.tsv"
    if not index.exists():
        pytest.skip("../shared/corpus is absent")
    rows = [r.split("\t") for r in index.read_text(encoding="utf-8").splitlines()[1:]]
    if db_url.startswith("postgresql"):
        rows = rows[::7]  # the whole corpus runs on SQLite; PostgreSQL checks a sample
    problems, seen = _run(ctx, [(r[0], (CORPUS / r[0]).read_bytes(), None) for r in rows])
    assert problems == [], "\n".join(problems[:20])
    print(f"\n{len(rows)} corpus mails, the same decision from both: {seen}")
