"""Full-text search: query latency on a database of 1,000,000 tickets, and what indexing costs
the processing of mail.

(1) Query latency. A database (a SQLite file in a temp dir, or with `--db-url` scratch
PostgreSQL databases maildesk_bench_<pid>_* created through that URL and dropped at the end),
migrated with `maildesk.app.upgrade_database`, is loaded in bulk with T tickets (1,000,000;
50,000 with `--quick`; `--tickets`): pipeline.py's seed (one participant and one client mail of
2-5 support sentences per ticket, Russian 60% / English, two years of history) plus their
search index as maildesk writes it (maildesk.search.index: a subject entry and a mail entry
per ticket, the stems made by maildesk.analyzer; 2T rows). On SQLite the FTS5 table is filled
by its `rebuild` and `optimize` after the load, as migration 0010 does (the insert trigger is
dropped during the load and put back); on PostgreSQL the GIN index is rebuilt after the COPY
with the other indexes, then VACUUM ANALYZE. Queries: 1-, 2- and 3-word queries in Russian and English (10 each, common and rare
words, negations), each run through a read-only Session:

  figure:   `search_tickets(session, q)` (maildesk.search.query): all words, ranked, one hit
            per ticket with the ticket's number, subject, status and requester, and the
            snippet of its best mail computed in Python (20 hits);
  baseline: the bare FTS query on the same index through the same Session, the engine's own
            top 20 entries: `SELECT rowid, rank FROM search_fts WHERE search_fts MATCH :q
            ORDER BY rank LIMIT 20` on SQLite, `SELECT id, ts_rank(tsv, q, 1) AS r FROM
            search_entry, plainto_tsquery('simple', :q) AS q WHERE tsv @@ q ORDER BY r DESC
            LIMIT 20` on PostgreSQL.

One untimed pass first (caches warm), then R rounds (10; 3 with `--quick`) over all queries,
figure and baseline back to back for each query, which goes first alternating. p50/p95/p99 in
ms per query class over its queries x rounds. Target: **figure p95 / baseline p95 <= 1.5** for
each class. Also printed: the matches per query (entries the bare query ranks).

(2) Processing with indexing on vs off. pipeline.py's drain (`Processor.drain()` over N stored
generated mails, 2000; 300 with `--quick`) on copies of the seeded database (so each mail is
indexed into an index of 2T entries), indexing on (as shipped) and off (maildesk.effects.record's
`index_message` replaced by a no-op in this process: no search_entry row, no FTS5 insert),
interleaved, 3 runs each (2 with `--quick`), medians. Target: **on / off >= 0.85**.

    .venv/bin/python benchmarks/search.py [--quick] [--json out.json] [--db-url URL]
                                          [--tickets T] [--messages N] [--rounds R]
                                          [--repeat R] [--seed S] [--skip-processing] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import ROOT, Timer, bulk_load_postgres, bulk_load_sqlite, generate_corpus, \
    percentile, write_json
from pipeline import (MESSAGE_COLS, PARTICIPANT_COLS, TICKET_COLS, PostgresDatabases,
                      SqliteDatabases, run_pipeline, seed_rows)

TARGET_LATENCY = 1.5       # figure p95 / bare FTS p95, at most, per query class
TARGET_THROUGHPUT = 0.85   # processing rate with indexing / without, at least
LIMIT = 20
ENTRY_COLS = ("id", "kind", "ticket_id", "message_id", "internal", "stems")

QUERIES = {
    1: ["принтер", "касса", "чеки", "накопителя", "весы", "printer", "scanner", "firmware",
        "обращение", "инженера"],
    2: ["не печатает", "ошибка связи", "терминал оплаты", "receipt printer", "card terminal",
        "не отвечает", "личный кабинет", "password wrong", "магазин 1234", "case 777"],
    3: ["касса не печатает", "принтер этикеток печатает", "ошибка фискального накопителя",
        "card terminal connection", "barcode scanner code", "не приходят отчёты",
        "сканер штрихкодов читает", "report before audit", "engineer visit request",
        "не можем войти"],
}

BARE = {
    "sqlite": "SELECT rowid, rank FROM search_fts WHERE search_fts MATCH :match "
              "ORDER BY rank LIMIT :limit",
    "postgresql": "SELECT e.id, ts_rank(e.tsv, q.q, 1) AS r "
                  "FROM search_entry AS e, plainto_tsquery('simple'::regconfig, :match) AS q(q) "
                  "WHERE e.tsv @@ q.q ORDER BY r DESC LIMIT :limit",
}
COUNT = {
    "sqlite": "SELECT count(*) FROM search_fts WHERE search_fts MATCH :match",
    "postgresql": "SELECT count(*) FROM search_entry "
                  "WHERE tsv @@ plainto_tsquery('simple'::regconfig, :match)",
}


# -- seeding ------------------------------------------------------------------------------------
def seed_chunks(count: int, seed: int, first_number: int, *,
                sqlite_times: bool) -> Iterator[tuple[list, list, list, list]]:
    """pipeline.py's tickets, participants and mails, with their search entries as
    maildesk.search.index writes them (subject entry, then the mail's: its subject and text)."""
    from maildesk.search.index import MESSAGE, SUBJECT, stems

    bodies: dict[str, str] = {}
    for tickets, participants, messages in seed_rows(count, seed, first_number,
                                                      sqlite_times=sqlite_times):
        entries = []
        for ticket, message in zip(tickets, messages):
            tid, subject, mid, body = ticket[0], ticket[3], message[0], message[14]
            subject_stems = stems(subject)
            body_stems = bodies.get(body)
            if body_stems is None:
                body_stems = bodies[body] = stems(body)
            both = " ".join(s for s in (subject_stems, body_stems) if s)
            entries.append((2 * tid - 1, SUBJECT, tid, None, False, subject_stems))
            entries.append((2 * tid, MESSAGE, tid, mid, False, both))
        yield tickets, participants, messages, entries


def seed(dbs: SqliteDatabases | PostgresDatabases, name: str, count: int, seed_: int,
         first_number: int) -> None:
    tables = [("ticket", TICKET_COLS), ("participant", PARTICIPANT_COLS),
              ("message", MESSAGE_COLS), ("search_entry", ENTRY_COLS)]
    counters = {"ticket": first_number + count - 1}
    if isinstance(dbs, SqliteDatabases):
        path = dbs.tmp / f"{name}.db"
        con = sqlite3.connect(path)
        trigger = con.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                              "AND name = 'search_entry_ai'").fetchone()[0]
        con.execute("DROP TRIGGER search_entry_ai")
        con.commit()
        con.close()
        bulk_load_sqlite(path, tables, seed_chunks(count, seed_, first_number, sqlite_times=True),
                         counters=counters)
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA synchronous=OFF")
        con.execute("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
        con.execute("INSERT INTO search_fts(search_fts) VALUES ('optimize')")
        con.execute(trigger)
        con.close()
    else:
        bulk_load_postgres(dbs.url(name), tables,
                           seed_chunks(count, seed_, first_number, sqlite_times=False),
                           counters=counters)


# -- (1) latency ----------------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000, out


def latencies(ctx, rounds: int) -> dict:
    """Per query class: the figure's and the baseline's samples (ms), and per query its hits
    and matches."""
    from sqlalchemy import text

    from maildesk.analyzer import terms
    from maildesk.search.query import match_expression, search_tickets

    with ctx.read_session() as session:
        dialect = session.get_bind().dialect.name
        bare, count = text(BARE[dialect]), text(COUNT[dialect])

        def figure(q: str) -> Callable[[], object]:
            return lambda: search_tickets(session, q, limit=LIMIT)

        def baseline(q: str) -> Callable[[], object]:
            match = match_expression(dialect, terms(q))
            return lambda: session.execute(bare, {"match": match, "limit": LIMIT}).all()

        info = {}
        for words, queries in QUERIES.items():           # untimed: caches warm, sizes known
            for q in queries:
                hits = figure(q)()
                figure(q)()
                baseline(q)()
                matches = session.execute(count, {"match": match_expression(
                    dialect, terms(q))}).scalar()
                info[q] = {"hits": len(hits), "matches": matches}
        samples = {w: {"figure": [], "baseline": []} for w in QUERIES}
        for r in range(rounds):
            for words, queries in QUERIES.items():
                for i, q in enumerate(queries):
                    pair = [("figure", figure(q)), ("baseline", baseline(q))]
                    if (r + i) % 2:
                        pair.reverse()
                    for label, fn in pair:
                        ms, _ = timed(fn)
                        samples[words][label].append(ms)
                        info[q].setdefault(label, []).append(ms)
            print(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{w}-word p50 {statistics.median(s['figure']):.1f} / "
                f"{statistics.median(s['baseline']):.1f} ms" for w, s in samples.items()),
                flush=True)
    return {"samples": samples, "queries": info}


def summarize(samples: list[float]) -> dict:
    return {f"p{p}": round(percentile(samples, p), 3) for p in (50, 95, 99)}


# -- (2) processing ------------------------------------------------------------------------------
def processing(dbs, template: str, tmp: Path, n: int, repeat: int, seed_: int) -> dict:
    import maildesk.effects.record as record

    mails = generate_corpus(n, seed_)
    shipped = record.index_message
    runs: dict[str, list] = {"on": [], "off": []}
    warm = dbs.clone(template, "warm_up")
    run_pipeline("warm-up", warm, generate_corpus(60, seed_ + 1), tmp / "warm-up")
    dbs.drop("warm_up")
    try:
        for r in range(repeat):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            for label in order:
                record.index_message = shipped if label == "on" else (lambda *a, **kw: None)
                name = f"run_{label}_{r}"
                runs[label].append(run_pipeline(label, dbs.clone(template, name), mails,
                                                tmp / name))
                dbs.drop(name)
            print(f"  run {r + 1}/{repeat}: indexing on {runs['on'][-1].rate:.1f} msg/s, "
                  f"off {runs['off'][-1].rate:.1f} msg/s", flush=True)
    finally:
        record.index_message = shipped
    return runs


def latency_report(lat: dict, name: str, tickets: int, rounds: int) -> dict:
    """Print (1) and return its part of the JSON report."""
    print(f"\n{name}, {tickets:,} tickets ({2 * tickets:,} index entries), {rounds} rounds; "
          f"latency in ms, search_tickets (figure) vs the bare FTS query (baseline), top {LIMIT}:")
    classes = {}
    for words, s in lat["samples"].items():
        fig, base = summarize(s["figure"]), summarize(s["baseline"])
        ratio = fig["p95"] / base["p95"] if base["p95"] else float("inf")
        ok = "PASS" if ratio <= TARGET_LATENCY else "MISS"
        print(f"  {words}-word  figure   p50 {fig['p50']:8.2f}  p95 {fig['p95']:8.2f}  "
              f"p99 {fig['p99']:8.2f}")
        print(f"          baseline p50 {base['p50']:8.2f}  p95 {base['p95']:8.2f}  "
              f"p99 {base['p99']:8.2f}   p95 ratio {ratio:.2f}  target <= {TARGET_LATENCY}  {ok}")
        classes[f"{words}_word"] = {
            "figure": {"what": "search_tickets ms", **fig},
            "baseline": {"what": f"bare FTS top-{LIMIT} ms", **base},
            "ratio": round(ratio, 3), "target": {"ratio_max": TARGET_LATENCY}, "verdict": ok}
    print("  per query (matching entries, hits, median ms figure / baseline):")
    for q, info in lat["queries"].items():
        print(f"    {q!r:40} {info['matches']:>9,} {info['hits']:>3}  "
              f"{statistics.median(info['figure']):8.2f} / "
              f"{statistics.median(info['baseline']):8.2f}")
    queries = {q: {"matches": i["matches"], "hits": i["hits"],
                   "figure_ms_median": round(statistics.median(i["figure"]), 3),
                   "baseline_ms_median": round(statistics.median(i["baseline"]), 3)}
               for q, i in lat["queries"].items()}
    verdict = "PASS" if all(c["verdict"] == "PASS" for c in classes.values()) else "MISS"
    return {"classes": classes, "queries": queries, "verdict": verdict}


def processing_report(runs: dict, n: int, tickets: int, repeat: int) -> dict:
    """Print (2) and return its part of the JSON report."""
    on = statistics.median(r.rate for r in runs["on"])
    off = statistics.median(r.rate for r in runs["off"])
    ratio = on / off
    ok = "PASS" if ratio >= TARGET_THROUGHPUT else "MISS"
    print(f"\nprocessing, N={n} mails into the {tickets:,}-ticket database, median of {repeat}:")
    for label, rate in (("on", on), ("off", off)):
        print(f"  indexing {label:<3}  {rate:8.1f} msg/s   runs "
              + ", ".join(f"{r.rate:.1f}" for r in runs[label]))
    print(f"  ratio on/off {ratio:.2f}  target >= {TARGET_THROUGHPUT}  {ok}")
    return {"messages": n, "repeat": repeat,
            "figure": {"what": "msg/s with indexing (median)", "value": round(on, 1),
                       "runs": [round(r.rate, 1) for r in runs["on"]]},
            "baseline": {"what": "msg/s without indexing (median)", "value": round(off, 1),
                         "runs": [round(r.rate, 1) for r in runs["off"]]},
            "ratio": round(ratio, 3), "target": {"ratio_min": TARGET_THROUGHPUT},
            "verdict": ok, "on_run": runs["on"][0].summary()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small run: 50,000 tickets, 3 rounds, N=300 mails, 2 runs")
    ap.add_argument("--json", metavar="FILE", help="write figures, baselines, ratios, targets")
    ap.add_argument("--db-url", help="run on PostgreSQL: an admin URL such as "
                    "postgresql://postgres@127.0.0.1:5432/test (scratch databases are created)")
    ap.add_argument("--tickets", type=int, help="seeded tickets (default 1,000,000)")
    ap.add_argument("-n", "--messages", type=int, help="mails processed per run in (2)")
    ap.add_argument("--rounds", type=int, help="timed rounds over all queries in (1)")
    ap.add_argument("--repeat", type=int, help="runs of each side in (2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-processing", action="store_true", help="only (1)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite files)")
    args = ap.parse_args()
    tickets = args.tickets if args.tickets is not None else (50_000 if args.quick else 1_000_000)
    rounds = args.rounds or (3 if args.quick else 10)
    n = args.messages or (300 if args.quick else 2000)
    repeat = args.repeat or (2 if args.quick else 3)

    from maildesk.app import Context
    from maildesk.config import load_settings
    from common import write_config_set

    first_number = load_settings(ROOT / "config" / "maildesk.yaml").first_ticket_number
    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-search-"))
    dbs = PostgresDatabases(args.db_url, tmp) if args.db_url else SqliteDatabases(tmp)
    report: dict = {"benchmark": "search", "quick": args.quick, "database": dbs.name,
                    "seeded_tickets": tickets, "index_entries": 2 * tickets, "seed": args.seed,
                    "rounds": rounds}
    try:
        with Timer() as seeding:
            dbs.create("seeded")
            seed(dbs, "seeded", tickets, args.seed, first_number)
        report["seed_seconds"] = round(seeding.seconds, 1)
        print(f"database: {dbs.name}; seeded {tickets:,} tickets with their index "
              f"({2 * tickets:,} entries) in {seeding.seconds:.1f} s; "
              f"{dbs.size('seeded') / 1e6:.0f} MB", flush=True)
        ctx = Context.load(write_config_set(tmp / "query", dbs.url("seeded")))
        try:
            lat = latencies(ctx, rounds)
        finally:
            ctx.close()
        report.update(latency_report(lat, dbs.name, tickets, rounds))
        if not args.skip_processing:
            runs = processing(dbs, "seeded", tmp, n, repeat, args.seed)
            report["processing"] = processing_report(runs, n, tickets, repeat)
    finally:
        dbs.cleanup()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if args.json:        # what was measured, even when a later part broke
            write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
