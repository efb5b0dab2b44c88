"""IMAP intake: mailbox -> acknowledged (stored and flagged) -> tickets, against a real Dovecot.

A Dovecot on loopback (tests/dovecot.py starts it in a temp dir) gets N generated mails (the
seeded corpus of common.py: new requests, replies, header-less replies, forwards, resends; CRLF)
appended to a fresh folder per run, untimed. Then, in the same run:

  maildesk   the poller (`ImapService`, one watcher, batch_size 100, after_store: seen) and the
             processor thread, as `serve --only imap,process` runs them, on a fresh SQLite
             database. `acknowledged` = N / time until the watcher's first pass is over (every
             message stored, committed and flagged \\Seen); `tickets` = N / time until no
             message is left pending (tickets made, autoreplies queued).
  baseline   bare imapclient: select the folder, `UID FETCH` BODY.PEEK[] in batches of 100,
             and parse every message with the standard library (email.message_from_bytes with
             policy.default, get_content() of every text part: pipeline.py's parse-only pass).

Targets: acknowledged / baseline >= 0.6, tickets / baseline >= 0.5. Runs alternate between the
two sides; medians are reported.

IDLE latency: with the poller IDLE on INBOX (poll interval one hour, so only IDLE can bring
mail in time) and the processor running, 100 single messages are APPENDed one after another;
latency = APPEND sent -> its ticket committed (seen by polling the database every 5 ms).

    .venv/bin/python benchmarks/imap_ingest.py [--quick] [--json out.json] [--messages N]
                                               [--repeat R] [--profile]

Exit status 0 unless the benchmark itself breaks.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from common import ROOT, Timer, generate_corpus, percentile, verdict, write_config_set, write_json
from pipeline import parse_only

sys.path.insert(0, str(ROOT / "tests"))
from dovecot import Dovecot  # noqa: E402  (the test suite's Dovecot runner)

TARGET_ACK = 0.6
TARGET_TICKETS = 0.5
BATCH = 100


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def configure(workdir: Path, dovecot: Dovecot, folder: str) -> Path:
    """A config set on a fresh SQLite database with one IMAP account watching `folder`."""
    path = write_config_set(workdir / "config", f"sqlite:///{workdir / 'maildesk.db'}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["imap"] = {"accounts": [{
        "name": "bench", "host": "127.0.0.1", "port": dovecot.port, "security": "none",
        "username": dovecot.user, "password": {"file": str(workdir / "imap-password")},
        "folders": [folder], "import_existing": "all", "after_store": "seen",
        "poll_interval": "1h", "batch_size": BATCH}]}
    (workdir / "imap-password").write_text(dovecot.password)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def start_maildesk(config: Path):  # type: ignore[no-untyped-def]
    """The poller and the processor threads of `serve`, on `config`."""
    from maildesk.app import Context, ProcessorThread, upgrade_database
    from maildesk.config import load_settings
    from maildesk.ingress.imap_service import ImapService

    upgrade_database(load_settings(config))
    ctx = Context.load(config)
    processor = ProcessorThread(ctx)
    imap = ImapService(ctx.settings.imap_accounts, ctx.make_session, ctx.clock,
                       max_size=ctx.settings.smtp.max_message_size, on_stored=processor.stored,
                       intake=processor.intake)
    return ctx, processor, imap


def pending(db: Path) -> int:
    """Messages not yet processed, read without taking SQLite's write lock (maildesk's own
    sessions begin IMMEDIATE; polling through them every few ms would slow what we measure)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM inbound WHERE status = 'pending'").fetchone()[0]
    finally:
        con.close()


def run_maildesk(dovecot: Dovecot, folder: str, n: int, workdir: Path,
                 profile: bool = False) -> dict:
    from sqlalchemy import func, select

    from maildesk.db.models import Inbound, Ticket

    ctx, processor, imap = start_maildesk(configure(workdir, dovecot, folder))
    watcher = imap.watchers[0]
    profiler = cProfile.Profile() if profile else None
    try:
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        processor.start()
        imap.start()
        while watcher.passes < 1:
            time.sleep(0.002)
        acked = time.perf_counter() - t0
        while pending(workdir / "maildesk.db"):
            time.sleep(0.005)
        ticketed = time.perf_counter() - t0
        if profiler:
            profiler.disable()
    finally:
        imap.stop()
        processor.stop()
    with ctx.make_session() as s:
        stored = s.scalar(select(func.count()).select_from(Inbound)) or 0
        tickets = s.scalar(select(func.count()).select_from(Ticket)) or 0
    ctx.close()
    flags = dovecot.flags(folder)
    seen = sum(1 for f in flags.values() if b"\\Seen" in f)
    text = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(30)
        text = out.getvalue()
    return {"ack_s": acked, "tickets_s": ticketed, "ack_rate": n / acked,
            "tickets_rate": n / ticketed, "stored": stored, "flagged_seen": seen,
            "tickets": tickets, "profile": text}


def run_baseline(dovecot: Dovecot, folder: str, n: int) -> dict:
    from imapclient import IMAPClient

    with Timer() as t:
        client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=60)
        client.login(dovecot.user, dovecot.password)
        client.select_folder(folder, readonly=True)
        uids = sorted(client.search(["ALL"]))
        got = 0
        for i in range(0, len(uids), BATCH):
            chunk = uids[i:i + BATCH]
            fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            raws = [bytes(v[b"BODY[]"]) for v in fetched.values()]
            parse_only(raws)
            got += len(raws)
        client.logout()
    return {"seconds": t.seconds, "rate": got / t.seconds, "fetched": got}


def throughput(args: argparse.Namespace, dovecot: Dovecot, tmp: Path) -> dict:
    n = args.messages
    mails = [crlf(m.raw) for m in generate_corpus(n, seed=args.seed)]
    sizes = sorted(len(m) for m in mails)
    print(f"\n(1) throughput: N={n} generated mails (median {percentile(sizes, 50) / 1e3:.1f} KB, "
          f"max {sizes[-1] / 1e3:.0f} KB), {args.repeat} alternating run(s) per side")
    md_runs: list[dict] = []
    base_runs: list[dict] = []
    for r in range(args.repeat):
        folder = f"bench{r}"
        with Timer() as t:
            dovecot.append_many(folder, mails)
        print(f"  [run {r + 1}: {n} mails appended to {folder} in {t.seconds:.1f} s, untimed]")
        order = ("maildesk", "baseline") if r % 2 == 0 else ("baseline", "maildesk")
        for who in order:
            if who == "baseline":
                base_runs.append(run_baseline(dovecot, folder, n))
            else:
                work = tmp / f"md{r}"
                md_runs.append(run_maildesk(dovecot, folder, n, work))
                shutil.rmtree(work, ignore_errors=True)
    ack = statistics.median(x["ack_rate"] for x in md_runs)
    tickets = statistics.median(x["tickets_rate"] for x in md_runs)
    base = statistics.median(x["rate"] for x in base_runs)
    ok = all(x["stored"] + 0 <= n and x["flagged_seen"] == n for x in md_runs)
    print(f"  {'':44}{'msg/s':>9}   runs")
    print(f"  {'maildesk mailbox -> acknowledged (stored+flagged)':44}{ack:9.1f}   "
          + ", ".join(f"{x['ack_rate']:.0f}" for x in md_runs))
    print(f"  {'maildesk mailbox -> tickets':44}{tickets:9.1f}   "
          + ", ".join(f"{x['tickets_rate']:.0f}" for x in md_runs))
    print(f"  {'baseline imapclient batched fetch + parse':44}{base:9.1f}   "
          + ", ".join(f"{x['rate']:.0f}" for x in base_runs))
    for x in md_runs:
        print(f"    maildesk run: {x['stored']} stored (resends of the same bytes are stored once), "
              f"{x['flagged_seen']}/{n} flagged \\Seen, {x['tickets']} tickets")
    if not ok:
        print("  warning: not every message was flagged \\Seen")
    r_ack, r_tickets = ack / base, tickets / base
    print(f"  ratio acknowledged/baseline: {r_ack:.2f}   target >= {TARGET_ACK}  "
          f"{verdict(r_ack, TARGET_ACK)}")
    print(f"  ratio tickets/baseline:      {r_tickets:.2f}   target >= {TARGET_TICKETS}  "
          f"{verdict(r_tickets, TARGET_TICKETS)}")
    profile = ""
    if args.profile:
        folder = "benchprofile"
        dovecot.append_many(folder, mails)
        profile = run_maildesk(dovecot, folder, n, tmp / "profile", profile=True)["profile"]
        print("\n  cProfile of one more maildesk run (main thread only):\n"
              + "\n".join("    " + line for line in profile.splitlines()))
    return {"messages": n, "ack_rate": round(ack, 1), "tickets_rate": round(tickets, 1),
            "baseline_rate": round(base, 1), "ratio_ack": round(r_ack, 3),
            "ratio_tickets": round(r_tickets, 3), "target_ack": TARGET_ACK,
            "target_tickets": TARGET_TICKETS, "verdict_ack": verdict(r_ack, TARGET_ACK),
            "verdict_tickets": verdict(r_tickets, TARGET_TICKETS),
            "maildesk_runs": [{k: v for k, v in x.items() if k != "profile"} for x in md_runs],
            "baseline_runs": base_runs}


def idle_latency(args: argparse.Namespace, dovecot: Dovecot, tmp: Path) -> dict:
    n = args.appends
    print(f"\n(2) IDLE latency: {n} single APPENDs to INBOX, each awaited until its ticket exists")
    mails = [crlf(m.raw) for m in generate_corpus(n * 3, seed=args.seed + 1)
             if m.kind == "new"][:n]
    work = tmp / "idle"
    ctx, processor, imap = start_maildesk(configure(work, dovecot, "INBOX"))
    watcher = imap.watchers[0]
    latencies: list[float] = []
    client = dovecot.client()
    try:
        processor.start()
        imap.start()
        while watcher.passes < 1:
            time.sleep(0.01)

        def tickets() -> int:
            con = sqlite3.connect(f"file:{work / 'maildesk.db'}?mode=ro", uri=True, timeout=30)
            try:
                return con.execute("SELECT count(*) FROM ticket").fetchone()[0]
            finally:
                con.close()

        have = tickets()
        for raw in mails:
            t0 = time.perf_counter()
            client.append("INBOX", raw)
            deadline = t0 + 60
            while tickets() <= have:
                if time.perf_counter() > deadline:
                    raise SystemExit("a message appended did not become a ticket within 60 s")
                time.sleep(0.005)
            latencies.append((time.perf_counter() - t0) * 1000)
            have += 1
    finally:
        client.logout()
        imap.stop()
        processor.stop()
        ctx.close()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"  APPEND -> ticket: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies):.0f} ms "
          f"({len(latencies)} messages; the poller used IDLE, poll interval 1 h)")
    return {"appends": len(latencies), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
            "max_ms": round(max(latencies), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small run, under a minute")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--messages", type=int, help="mails per throughput run (default 2000)")
    ap.add_argument("--repeat", type=int, help="runs per side (default 3, quick 1)")
    ap.add_argument("--appends", type=int, help="single appends for the latency (default 100)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    args.messages = args.messages or (300 if args.quick else 2000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.appends = args.appends or (20 if args.quick else 100)
    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-imap-"))
    dovecot = Dovecot(tmp / "dovecot")
    try:
        dovecot.start()
        report = {"benchmark": "imap_ingest", "quick": args.quick,
                  "throughput": throughput(args, dovecot, tmp),
                  "idle_latency": idle_latency(args, dovecot, tmp)}
    finally:
        dovecot.close()
        shutil.rmtree(tmp, ignore_errors=True)
    t = report["throughput"]
    print(f"\nimap_ingest: acknowledged {t['ack_rate']} msg/s, tickets {t['tickets_rate']} msg/s, "
          f"baseline {t['baseline_rate']} msg/s: ratios {t['ratio_ack']:.2f} "
          f"(target >= {TARGET_ACK} {t['verdict_ack']}), {t['ratio_tickets']:.2f} "
          f"(target >= {TARGET_TICKETS} {t['verdict_tickets']}); IDLE APPEND->ticket "
          f"p50/p99 {report['idle_latency']['p50_ms']:.0f}/{report['idle_latency']['p99_ms']:.0f} ms")
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
