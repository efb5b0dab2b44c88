"""SMTP intake rate: maildesk's listener against a bare aiosmtpd + SQLite sink, measured together.

N seeded support messages go over loopback from K concurrent smtplib clients (threads, each with
its own persistent connection sending its share) to
  (a) `maildesk serve --only smtp` on a fresh SQLite database (WAL) in a temp dir, and
  (b) benchmarks/sqlite_sink.py: aiosmtpd whose handle_DATA commits each message to SQLite
      (WAL, synchronous=FULL, one commit per message in a worker thread), also a subprocess.
Prints messages/s and the p50/p99 accept latency (start of sendmail() to its 250) per K, the
ratio maildesk/sink, PASS/MISS against the target (ratio >= 0.7 at K=8), and the rows each
server stored. Never fails on a figure: exit status 0 unless the benchmark itself breaks.

    .venv/bin/python benchmarks/smtp_ingest.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (ServerProcess, HERE, Mail, Timer, describe_corpus, free_port, generate_corpus,
                    maildesk_command, percentile, run_clients, smtp_client, verdict,
                    write_config_set, write_json)

TARGET_RATIO = 0.7   # maildesk / sink at K=8
TARGET_K = 8


@dataclass
class RunResult:
    server: str
    clients: int
    sent: int
    errors: int
    seconds: float
    latencies: list[float]   # seconds, one per accepted message
    stored: int = -1

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, float | int | str]:
        return {"server": self.server, "clients": self.clients, "messages": self.sent,
                "errors": self.errors, "seconds": round(self.seconds, 3),
                "rate_msg_s": round(self.rate, 1),
                "p50_ms": round(percentile(self.latencies, 50) * 1e3, 2),
                "p99_ms": round(percentile(self.latencies, 99) * 1e3, 2),
                "stored_rows": self.stored}


# -- servers ----------------------------------------------------------------------------------
def count_rows(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


# -- clients ----------------------------------------------------------------------------------
def send_all(port: int, mails: list[Mail], clients: int, name: str) -> RunResult:
    """K threads, each with one persistent SMTP connection, send their share (every K-th mail);
    the clock runs from the moment all are connected until the last one is done."""
    shares = [mails[i::clients] for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    finished = [0.0] * clients
    started: list[float] = []

    def send(i: int, smtp: smtplib.SMTP) -> smtplib.SMTP:
        own = latencies[i]
        for mail in shares[i]:
            t0 = time.perf_counter()
            try:
                smtp.sendmail(mail.mail_from, list(mail.rcpt_to), mail.raw)
            except smtplib.SMTPException as exc:
                errors[i] += 1
                if errors[i] <= 3:
                    print(f"  {name} client {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
                if isinstance(exc, smtplib.SMTPServerDisconnected):
                    break
                continue
            own.append(time.perf_counter() - t0)
        finished[i] = time.perf_counter()
        return smtp

    run_clients(clients, lambda _i: smtp_client(port), send, name,
                on_start=lambda: started.append(time.perf_counter()))
    all_latencies = [x for own in latencies for x in own]
    return RunResult(name, clients, len(all_latencies), sum(errors),
                     max(finished) - started[0], all_latencies)


def run_maildesk(mails: list[Mail], clients: int, workdir: Path) -> RunResult:
    db = workdir / "maildesk.db"
    port = free_port()
    config = write_config_set(workdir / "config", f"sqlite:///{db}", smtp_port=port)
    cli = [*maildesk_command(), "--config", str(config)]
    subprocess.run([*cli, "db", "upgrade"], check=True, capture_output=True)
    server = ServerProcess("maildesk", [*cli, "serve", "--only", "smtp"], "maildesk serving", workdir)
    try:
        result = send_all(port, mails, clients, "maildesk")
    finally:
        server.stop()
    result.stored = count_rows(db, "inbound")
    return result


def run_sink(mails: list[Mail], clients: int, workdir: Path) -> RunResult:
    db = workdir / "sink.db"
    port = free_port()
    server = ServerProcess("sink", [sys.executable, str(HERE / "sqlite_sink.py"), "--port", str(port),
                             "--db", str(db)], "sink serving", workdir)
    try:
        result = send_all(port, mails, clients, "sink")
    finally:
        server.stop()
    result.stored = count_rows(db, "mail")
    return result


# -- report ----------------------------------------------------------------------------------
def combine(runs: list[RunResult]) -> dict:
    """Median rate over the repetitions; latency percentiles over every message of all of them."""
    lat = [x for r in runs for x in r.latencies]
    return {"rate_msg_s": round(statistics.median(r.rate for r in runs), 1),
            "rates_msg_s": [round(r.rate, 1) for r in runs],
            "p50_ms": round(percentile(lat, 50) * 1e3, 2),
            "p99_ms": round(percentile(lat, 99) * 1e3, 2),
            "errors": sum(r.errors for r in runs), "stored_rows": [r.stored for r in runs],
            "runs": [r.summary() for r in runs]}


def print_table(k: int, n: int, md: dict, sink: dict) -> float:
    ratio = md["rate_msg_s"] / sink["rate_msg_s"] if sink["rate_msg_s"] else 0.0
    reps = len(md["runs"])
    print(f"\nK={k} concurrent client{'s' if k > 1 else ''}, N={n} per run, {reps} run(s) "
          f"(rate: median; latency percentiles over all messages)")
    print(f"  {'':28}{'rate msg/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   stored rows")
    for r, label in ((md, "maildesk serve --only smtp"), (sink, "aiosmtpd+sqlite sink")):
        ok = all(x == n for x in r["stored_rows"])
        stored = "/".join(str(x) for x in r["stored_rows"])
        print(f"  {label:28}{r['rate_msg_s']:11.1f}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}"
              f"{r['errors']:8d}   {stored} of {n} {'ok' if ok else 'MISMATCH'}"
              + (f"   runs {', '.join(str(x) for x in r['rates_msg_s'])}" if reps > 1 else ""))
    line = f"  ratio maildesk/sink: {ratio:.2f}"
    if k == TARGET_K:
        line += f"   target >= {TARGET_RATIO}  {verdict(ratio, TARGET_RATIO)}"
    print(line)
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run: N=300 (default N=2000)")
    ap.add_argument("--json", metavar="FILE", help="write figures, baseline, ratio, target as JSON")
    ap.add_argument("-n", "--messages", type=int, help="messages per run (overrides --quick)")
    ap.add_argument("--clients", default=f"1,{TARGET_K}", help="comma-separated K values")
    ap.add_argument("--repeat", type=int, help="interleaved runs per server and K "
                    "(default 3, or 2 with --quick); the median rate is reported")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    args = ap.parse_args()
    n = args.messages or (300 if args.quick else 2000)
    repeat = args.repeat or (2 if args.quick else 3)
    ks = [int(k) for k in args.clients.split(",")]

    with Timer() as t:
        mails = generate_corpus(n, args.seed)
    print(f"corpus (seed {args.seed}): {describe_corpus(mails)}  [generated in {t.seconds:.1f} s]")
    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-smtp-"))
    results: dict[str, dict] = {}
    try:
        for k in ks:
            md_runs: list[RunResult] = []
            sink_runs: list[RunResult] = []
            for r in range(repeat):
                # Alternate who goes first, so drift and noisy neighbours hit both alike.
                order = ((run_maildesk, md_runs), (run_sink, sink_runs))
                for fn, runs in (order if r % 2 == 0 else order[::-1]):
                    workdir = tmp / f"{fn.__name__}-k{k}-{r}"
                    runs.append(fn(mails, k, workdir))
                    if not args.keep:
                        shutil.rmtree(workdir, ignore_errors=True)
            md, sink = combine(md_runs), combine(sink_runs)
            ratio = print_table(k, n, md, sink)
            results[str(k)] = {"maildesk": md, "sink": sink, "ratio": round(ratio, 3)}
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    key = str(TARGET_K) if str(TARGET_K) in results else str(ks[-1])
    res = results[key]
    ratio = res["ratio"]
    print(f"\nsmtp_ingest: maildesk {res['maildesk']['rate_msg_s']} msg/s, sink "
          f"{res['sink']['rate_msg_s']} msg/s at K={key}: ratio {ratio:.2f}  "
          f"target >= {TARGET_RATIO}  {verdict(ratio, TARGET_RATIO)}")
    if args.json:
        write_json(args.json, {
            "benchmark": "smtp_ingest", "quick": args.quick, "messages": n, "seed": args.seed,
            "repeat": repeat, "corpus": describe_corpus(mails), "results": results,
            "figure": {"what": f"maildesk msg/s at K={key} (median)",
                       "value": res["maildesk"]["rate_msg_s"],
                       "p50_ms": res["maildesk"]["p50_ms"], "p99_ms": res["maildesk"]["p99_ms"]},
            "baseline": {"what": f"aiosmtpd+sqlite sink msg/s at K={key} (median)",
                         "value": res["sink"]["rate_msg_s"],
                         "p50_ms": res["sink"]["p50_ms"], "p99_ms": res["sink"]["p99_ms"]},
            "ratio": ratio, "target": {"ratio_min": TARGET_RATIO, "clients": TARGET_K},
            "verdict": verdict(ratio, TARGET_RATIO),
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
