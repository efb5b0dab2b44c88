"""Outbound delivery: the outbox's delivery rate, and accept-to-autoreply latency under load.

(1) Delivery rate. N client mails (new requests, each from its own sender) are stored and
    `Processor.drain()` runs once, untimed, leaving N queued autoreplies in the outbox of a
    template SQLite database. Each run copies the template and times `OutboxDeliverer.drain()`
    delivering them through `SmtpTransport` (one kept-open connection, security: none) to a
    local aiosmtpd sink subprocess whose handler only counts and answers 250. Baseline in the
    same run: plain `smtplib.SMTP(...).sendmail()` of the same N messages (same envelopes, same
    bytes, read from the outbox) over one connection to a fresh sink of the same kind.
    Target: maildesk rate / smtplib rate >= 0.7. The sink must have received exactly N each time.
(2) Accept-to-autoreply latency. `maildesk serve` (smtp, process, outbound; SQLite) delivers to a
    sink subprocess that records, for each DATA, time.time() on arrival and the In-Reply-To of
    the autoreply. Client mails go to maildesk's listener at 20, 50 and 100 mails/s for ~10 s
    each (~3 s with --quick) from paced sender threads (open-loop schedule, one connection
    each). Latency = arrival of the autoreply at the sink - the moment maildesk's 250 for the
    client mail came back (matched by Message-ID = In-Reply-To). p50/p99 per load, the achieved
    rate, and how many autoreplies arrived (all of them must, within a bounded wait).

Never fails on a figure: exit status 0 unless the benchmark itself breaks.

    .venv/bin/python benchmarks/outbox.py [--quick] [--json out.json] [--profile]
    .venv/bin/python benchmarks/outbox.py --sink --port 2526 [--record]   (the sink, used by (1)/(2))
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import shutil
import smtplib
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from common import (store_pending, ServerProcess, serve_sink, Mail, Timer, free_port, generate_corpus, maildesk_command, percentile,
                    run_clients, smtp_client, verdict, write_config_set, write_json)

TARGET_RATIO = 0.7            # OutboxDeliverer.drain() rate / plain smtplib rate
LOADS = (20, 50, 100)         # offered client mails per second for (2)
_IRT = re.compile(rb"(?im)^In-Reply-To:\s*<([^>]+)>")


# -- the sink (a subprocess: python outbox.py --sink --port P [--record]) ---------------------
def sink_main(port: int, record: bool) -> None:
    """aiosmtpd with the same SMTP class and options as sqlite_sink.py; handle_DATA counts and
    answers 250 (nothing on disk). With --record it also prints `<time.time()> <In-Reply-To>`
    per message on stdout (flushed), for the latency measurement. SIGTERM prints the count."""
    import asyncio


    class Handler:
        count = 0

        async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
            now = time.time()
            self.count += 1
            if record:
                data = envelope.original_content or b""
                end = data.find(b"\r\n\r\n")
                m = _IRT.search(data[:end if end >= 0 else len(data)])
                irt = m.group(1).decode("ascii", "replace") if m else "-"
                sys.stdout.write(f"D {now:.6f} {irt}\n")
                sys.stdout.flush()
            return "250 2.0.0 OK"

    async def run() -> None:
        handler = Handler()
        await serve_sink(handler, port)
        print(f"received {handler.count}", flush=True)

    asyncio.run(run())


class Sink(ServerProcess):
    def __init__(self, workdir: Path, record: bool = False, name: str = "sink"):
        self.port = free_port()
        super().__init__(name, [sys.executable, str(Path(__file__).resolve()), "--sink",
                                "--port", str(self.port), *(["--record"] if record else [])],
                         "sink serving", workdir)

    def records(self) -> list[tuple[float, str]]:
        out = []
        for line in self.out.read_text(errors="replace").splitlines():
            if line.startswith("D "):
                _, t, irt = line.split(" ", 2)
                out.append((float(t), irt))
        return out

    def received(self) -> int:
        """After stop(): the count the sink printed."""
        m = re.search(r"received (\d+)", self.out.read_text(errors="replace"))
        return int(m.group(1)) if m else -1


# -- client mails -------------------------------------------------------------------------------
def client_mails(count: int, seed: int) -> list[Mail]:
    """`count` new requests from the seeded corpus, each made distinct: its own sender address
    (so the autoreply limit per sender never applies) and its own Message-ID (so no dedupe),
    cycling over the corpus' new requests when more are needed."""
    base = [m for m in generate_corpus(min(2 * count + 40, 1000), seed) if m.kind == "new"]
    out = []
    for i in range(count):
        b = base[i % len(base)]
        local, _, domain = b.mail_from.rpartition("@")
        addr = f"{local}.u{i}@{domain}"
        mid = f"u{i}.{b.message_id}"
        raw = (b.raw.replace(b.mail_from.encode(), addr.encode())
               .replace(f"<{b.message_id}>".encode(), f"<{mid}>".encode()))
        out.append(Mail(raw, addr, b.rcpt_to, b.received_at, "new", mid))
    return out


def set_outbound(config: Path, sink_port: int) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["outbound"].update(transport="smtp",
                            smtp={"host": "127.0.0.1", "port": sink_port, "security": "none"})
    # The load is a burst of distinct senders of a few domains: the backscatter caps would
    # stop the very autoreplies whose latency is measured.
    data.setdefault("autoreply", {}).update(max_per_hour=1_000_000,
                                            max_per_domain_per_hour=1_000_000)
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def copy_db(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")


# -- (1) delivery rate -------------------------------------------------------------------------
@dataclass
class RateRun:
    who: str
    messages: int
    seconds: float
    received: int
    outcomes: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        return {"who": self.who, "messages": self.messages, "seconds": round(self.seconds, 3),
                "rate_msg_s": round(self.rate, 1), "sink_received": self.received,
                "outcomes": self.outcomes}


def build_template(mails: list[Mail], workdir: Path) -> tuple[Path, list[tuple[str, list, bytes]]]:
    """Store the mails, Processor.drain() once (untimed): a database with queued autoreplies.
    Returns its path and the queued (envelope_from, recipients, data) in id order."""
    from maildesk.app import Context, upgrade_database
    from maildesk.config import load_settings
    from maildesk.db.models import Outbox, OutboxStatus
    from maildesk.process.run import Processor
    from sqlalchemy import select

    db = workdir / "template.db"
    config = write_config_set(workdir / "config", f"sqlite:///{db}")
    upgrade_database(load_settings(config))
    ctx = Context.load(config)
    try:
        store_pending(ctx, mails)
        processor = Processor(ctx.settings, ctx.make_session, ctx.clock)
        try:
            outcomes = processor.drain()
        finally:
            processor.close()
        with ctx.make_session() as session:
            rows = session.execute(select(Outbox.envelope_from, Outbox.recipients, Outbox.data)
                                   .where(Outbox.status == OutboxStatus.QUEUED)
                                   .order_by(Outbox.id)).all()
        print(f"  template: {len(mails)} client mails processed "
              f"({dict(Counter(o.status for o in outcomes))}), {len(rows)} autoreplies queued")
    finally:
        ctx.close()
    return db, [(f, list(r), bytes(d)) for f, r, d in rows]


def run_deliverer(template: Path, n: int, workdir: Path,
                  profile: bool = False) -> tuple[RateRun, str]:
    from sqlalchemy import func, select

    from maildesk.app import Context
    from maildesk.db.models import Outbox, OutboxStatus
    from maildesk.outbound.outbox import OutboxDeliverer
    from maildesk.outbound.registry import make_transport

    db = workdir / "maildesk.db"
    copy_db(template, db)
    sink = Sink(workdir)
    text = ""
    try:
        config = write_config_set(workdir / "config", f"sqlite:///{db}")
        set_outbound(config, sink.port)
        ctx = Context.load(config)
        try:
            transport = make_transport(ctx.settings.outbound, ctx.settings.domain)
            deliverer = OutboxDeliverer(ctx.make_session, transport, ctx.clock)
            profiler = cProfile.Profile() if profile else None
            with Timer() as t:
                if profiler:
                    profiler.enable()
                outcomes = deliverer.drain()
                if profiler:
                    profiler.disable()
            transport.close()
            with ctx.make_session() as session:
                sent = session.scalar(select(func.count()).select_from(Outbox)
                                      .where(Outbox.status == OutboxStatus.SENT))
            if profiler:
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out).strip_dirs()
                stats.sort_stats("cumulative").print_stats(25)
                stats.sort_stats("tottime").print_stats(20)
                text = out.getvalue()
        finally:
            ctx.close()
    finally:
        sink.stop()
    result = RateRun("maildesk", len(outcomes), t.seconds, sink.received(),
                     {**Counter(o.status for o in outcomes), "rows_sent": sent})
    return result, text


def run_smtplib(messages: list[tuple[str, list, bytes]], workdir: Path) -> RateRun:
    sink = Sink(workdir)
    try:
        with Timer() as t:
            smtp = smtplib.SMTP("127.0.0.1", sink.port, timeout=60)
            for mail_from, rcpts, data in messages:
                smtp.sendmail(mail_from, rcpts, data)
        smtp.quit()
    finally:
        sink.stop()
    return RateRun("smtplib", len(messages), t.seconds, sink.received())


def delivery_rate(args: argparse.Namespace, tmp: Path) -> dict:
    n, repeat = args.n_rate, args.repeat_rate
    print(f"\n(1) delivery rate: N={n} autoreplies, {repeat} interleaved run(s) each")
    with Timer() as t:
        mails = client_mails(n, args.seed)
        template, messages = build_template(mails, tmp / "template")
    sizes = sorted(len(d) for _, _, d in messages)
    print(f"  autoreply size p10 {percentile(sizes, 10) / 1e3:.1f} KB, median "
          f"{percentile(sizes, 50) / 1e3:.1f} KB, max {sizes[-1] / 1e3:.1f} KB; "
          f"{sum(sizes) / 1e6:.1f} MB in all  [prepared in {t.seconds:.1f} s, untimed]")
    md_runs: list[RateRun] = []
    base_runs: list[RateRun] = []
    for r in range(repeat):
        order = ("maildesk", "smtplib") if r % 2 == 0 else ("smtplib", "maildesk")
        for who in order:
            workdir = tmp / f"rate-{who}-{r}"
            if who == "maildesk":
                md_runs.append(run_deliverer(template, len(messages), workdir)[0])
            else:
                base_runs.append(run_smtplib(messages, workdir))
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    m = len(messages)
    md_rate = statistics.median(r.rate for r in md_runs)
    base_rate = statistics.median(r.rate for r in base_runs)
    ratio = md_rate / base_rate if base_rate else 0.0
    print(f"  {'':34}{'rate msg/s':>11}   sink received (must be {m} each run)   runs")
    for label, runs, rate in (("maildesk OutboxDeliverer.drain()", md_runs, md_rate),
                              ("plain smtplib sendmail()", base_runs, base_rate)):
        got = "/".join(str(x.received) for x in runs)
        ok = all(x.received == m for x in runs) and all(
            x.outcomes.get("rows_sent", m) == m for x in runs)
        print(f"  {label:34}{rate:11.1f}   {got:>18} {'ok' if ok else 'MISMATCH':9}"
              f"          {', '.join(f'{x.rate:.0f}' for x in runs)}")
    for x in md_runs:
        if x.outcomes.get("sent") != m or x.outcomes.get("rows_sent") != m:
            print(f"  warning: maildesk run outcomes {x.outcomes} (expected {m} sent)")
    print(f"  ratio maildesk/smtplib: {ratio:.2f}   target >= {TARGET_RATIO}  "
          f"{verdict(ratio, TARGET_RATIO)}")
    profile = ""
    if args.profile:
        _, profile = run_deliverer(template, m, tmp / "rate-profile", profile=True)
        print("\n  cProfile of one more OutboxDeliverer.drain():\n"
              + "\n".join("    " + line for line in profile.splitlines()))
    return {"messages": m, "autoreply_bytes_median": percentile(sizes, 50),
            "maildesk": {"rate_msg_s": round(md_rate, 1), "runs": [x.summary() for x in md_runs]},
            "smtplib": {"rate_msg_s": round(base_rate, 1),
                        "runs": [x.summary() for x in base_runs]},
            "ratio": round(ratio, 3), "target": TARGET_RATIO,
            "verdict": verdict(ratio, TARGET_RATIO), "profile": profile or None}


# -- (2) accept-to-autoreply latency -----------------------------------------------------------
@dataclass
class Sent:
    message_id: str
    scheduled: float
    started: float
    accepted: float       # time.time() when maildesk's 250 came back


def paced_send(port: int, mails: list[Mail], rate: float, senders: int
               ) -> tuple[list[Sent], float, int]:
    """Open loop: mail i is due at t0 + i/rate; `senders` threads (one connection each) take
    every senders-th mail, sleep until it is due and send it (at once if already late).
    Returns what was accepted, t0 and the error count."""
    shares = [list(range(i, len(mails), senders)) for i in range(senders)]
    done: list[list[Sent]] = [[] for _ in range(senders)]
    errors = [0] * senders
    start: list[float] = []

    def send(k: int, smtp: smtplib.SMTP) -> smtplib.SMTP:
        t0 = start[0]
        for i in shares[k]:
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            mail = mails[i]
            t_start = time.time()
            try:
                smtp.sendmail(mail.mail_from, list(mail.rcpt_to), mail.raw)
            except smtplib.SMTPException as exc:
                errors[k] += 1
                if errors[k] <= 3:
                    print(f"  sender {k}: {type(exc).__name__}: {exc}", file=sys.stderr)
                if isinstance(exc, smtplib.SMTPServerDisconnected):
                    break
                continue
            done[k].append(Sent(mail.message_id, due, t_start, time.time()))
        return smtp

    run_clients(senders, lambda _k: smtp_client(port), send, "paced",
                on_start=lambda: start.append(time.time() + 0.1))
    return [s for d in done for s in d], start[0], sum(errors)


def _epoch(text: str | None) -> float | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def outbox_times(db: Path) -> dict[str, tuple[float, int]]:
    """In-Reply-To of each autoreply -> (outbox.created_at: when the processor queued it, inside
    its batch transaction; the ticket number), from the database."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT o.data, o.created_at, t.number FROM outbox o "
                           "JOIN ticket t ON t.id = o.ticket_id "
                           "WHERE o.kind = 'autoreply'").fetchall()
    finally:
        con.close()
    out = {}
    for data, created, number in rows:
        m = _IRT.search(bytes(data))
        if m:
            out[m.group(1).decode()] = (_epoch(created), number)
    return out


_DONE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO maildesk: inbound \d+: done "
                   r"ticket (\d+)", re.M)


def committed_times(log: Path) -> dict[int, float]:
    """Ticket number -> when the processor logged it done: right after its batch committed
    (log timestamps have millisecond precision, local time)."""
    out = {}
    for when, number in _DONE.findall(log.read_text(errors="replace")):
        out[int(number)] = datetime.strptime(when, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return out


def ms(values: list[float], p: float) -> float:
    return round(percentile(values, p) * 1e3, 1) if values else float("nan")


def run_load(rate: int, mails: list[Mail], warm: Mail, template: Path, args: argparse.Namespace,
             workdir: Path) -> dict:
    db = workdir / "maildesk.db"
    copy_db(template, db)
    sink = Sink(workdir, record=True)
    port = free_port()
    config = write_config_set(workdir / "config", f"sqlite:///{db}", smtp_port=port)
    set_outbound(config, sink.port)
    md = None
    try:
        md = ServerProcess("maildesk", [*maildesk_command(), "--config", str(config), "serve"],
                  "maildesk serving", workdir)
        # One warm-up mail, answered before the clock runs: the parse child is started and the
        # outbound connection opened, as in a daemon that has been up for a while.
        paced_send(port, [warm], 1.0, 1)
        deadline = time.monotonic() + 30
        while not sink.records() and time.monotonic() < deadline:
            time.sleep(0.05)
        sent, t0, errors = paced_send(port, mails, rate, args.senders)
        last_accept = max((s.accepted for s in sent), default=t0)
        want = {s.message_id for s in sent}
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            if want <= {irt for _, irt in sink.records()}:
                break
            time.sleep(0.1)
        waited = time.time() - last_accept
    finally:
        if md is not None:
            md.stop()
        sink.stop()
    arrivals = {}
    for t, irt in sink.records():
        arrivals.setdefault(irt, t)
    stages = outbox_times(db)
    committed = committed_times(md.err) if md else {}
    lat, to_queue, to_commit, to_sink = [], [], [], []
    for s in sent:
        arrived = arrivals.get(s.message_id)
        if arrived is not None:
            lat.append(arrived - s.accepted)
        queued, number = stages.get(s.message_id, (None, None))
        done = committed.get(number) if number is not None else None
        if queued is not None:
            to_queue.append(queued - s.accepted)
            if done is not None:
                to_commit.append(done - queued)
        if done is not None and arrived is not None:
            to_sink.append(arrived - done)
    accept = [s.accepted - s.started for s in sent]
    lag = [s.started - s.scheduled for s in sent]
    span = last_accept - t0
    res = {
        "offered_msg_s": rate, "mails": len(mails), "accepted": len(sent), "errors": errors,
        "achieved_msg_s": round(len(sent) / span, 1) if span > 0 else 0.0,
        "max_send_lag_ms": round(max(lag, default=0) * 1e3, 1),
        "accept_p50_ms": ms(accept, 50), "accept_p99_ms": ms(accept, 99),
        "autoreplies_arrived": sum(1 for s in sent if s.message_id in arrivals),
        "sink_received_total": len(arrivals),
        "latency_p50_ms": ms(lat, 50), "latency_p99_ms": ms(lat, 99),
        "latency_max_ms": round(max(lat, default=float("nan")) * 1e3, 1),
        "to_queued_p50_ms": ms(to_queue, 50), "to_queued_p99_ms": ms(to_queue, 99),
        "queued_to_committed_p50_ms": ms(to_commit, 50),
        "queued_to_committed_p99_ms": ms(to_commit, 99),
        "committed_to_sink_p50_ms": ms(to_sink, 50), "committed_to_sink_p99_ms": ms(to_sink, 99),
        "waited_after_last_250_s": round(waited, 1),
    }
    if res["autoreplies_arrived"] < len(sent):
        print(f"  warning: {len(sent) - res['autoreplies_arrived']} autoreplies missing after "
              f"{args.wait:.0f} s; maildesk log tail:\n{md.tail(10) if md else ''}")
    return res


def latency(args: argparse.Namespace, tmp: Path) -> dict:
    from maildesk.app import upgrade_database
    from maildesk.config import load_settings

    loads = [int(x) for x in args.loads.split(",")]
    counts = {r: max(1, round(r * args.duration)) for r in loads}
    print(f"\n(2) accept-to-autoreply latency: maildesk serve (smtp, process, outbound; SQLite) "
          f"-> sink; ~{args.duration:g} s per load, {args.senders} paced sender connections, "
          f"stragglers awaited up to {args.wait:g} s")
    mails = client_mails(max(counts.values()) + 1, args.seed + 1)
    warm, mails = mails[-1], mails[:-1]
    template = tmp / "lat-template" / "migrated.db"
    upgrade_database(load_settings(write_config_set(tmp / "lat-template",
                                                    f"sqlite:///{template}")))
    results = {}
    for r in loads:
        workdir = tmp / f"lat-{r}"
        results[str(r)] = run_load(r, mails[:counts[r]], warm, template, args, workdir)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"  {'offered':>8}{'achieved':>9}{'mails':>7}{'arrived':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}  {'250->queued':>14}{'->committed':>15}{'->at sink':>15}"
          f"{'accept ms':>15}")
    print(f"  {'':>8}{'':>9}{'':>7}{'':>9}{'':>9}{'':>9}{'':>9}  "
          + f"{'p50 /   p99':>14}" * 4)
    for r in loads:
        x = results[str(r)]
        ok = "ok" if x["autoreplies_arrived"] == x["accepted"] else "MISSING"
        print(f"  {r:>6}/s{x['achieved_msg_s']:>7.1f}/s{x['mails']:>7}"
              f"{x['autoreplies_arrived']:>6} {ok:<3}{x['latency_p50_ms']:>8.0f}"
              f"{x['latency_p99_ms']:>9.0f}{x['latency_max_ms']:>9.0f}"
              f"  {x['to_queued_p50_ms']:>7.0f} /{x['to_queued_p99_ms']:>6.0f}"
              f"{x['queued_to_committed_p50_ms']:>8.0f} /{x['queued_to_committed_p99_ms']:>6.0f}"
              f"{x['committed_to_sink_p50_ms']:>8.0f} /{x['committed_to_sink_p99_ms']:>6.0f}"
              f"{x['accept_p50_ms']:>8.1f} /{x['accept_p99_ms']:>6.1f}"
              + (f"   {x['errors']} refused (451)" if x["errors"] else ""))
    return results


# -- main ---------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small run: N=200, ~3 s per load (default N=2000, ~10 s per load)")
    ap.add_argument("--json", metavar="FILE", help="write figures, baseline, ratio, target as JSON")
    ap.add_argument("-n", "--messages", type=int, help="autoreplies for (1) (overrides --quick)")
    ap.add_argument("--repeat", type=int, help="interleaved runs of (1) per side "
                    "(default 3, or 2 with --quick); the median rate is reported")
    ap.add_argument("--loads", default=",".join(map(str, LOADS)), help="offered mails/s for (2)")
    ap.add_argument("--duration", type=float, help="seconds per load (default 10, quick 3)")
    ap.add_argument("--senders", type=int, default=4, help="paced sender connections for (2)")
    ap.add_argument("--wait", type=float, help="bound on the wait for straggling autoreplies "
                    "after the last 250 (default 60 s, quick 20 s)")
    ap.add_argument("--only", choices=("rate", "latency"), help="run one part only")
    ap.add_argument("--profile", action="store_true", help="cProfile one more drain of (1)")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    ap.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--record", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sink:
        sink_main(args.port, args.record)
        return 0
    args.n_rate = args.messages or (200 if args.quick else 2000)
    args.repeat_rate = args.repeat or (3 if args.quick else 5)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.wait = args.wait or (20.0 if args.quick else 60.0)

    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-outbox-"))
    rate = lat = None
    try:
        if args.only in (None, "rate"):
            rate = delivery_rate(args, tmp)
        if args.only in (None, "latency"):
            lat = latency(args, tmp)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    if rate:
        print(f"outbox: delivery {rate['maildesk']['rate_msg_s']} msg/s, smtplib "
              f"{rate['smtplib']['rate_msg_s']} msg/s: ratio {rate['ratio']:.2f}  "
              f"target >= {TARGET_RATIO}  {rate['verdict']}")
    if lat:
        print("outbox: accept-to-autoreply p50/p99 ms " + ", ".join(
            f"{k}/s {v['latency_p50_ms']:.0f}/{v['latency_p99_ms']:.0f} "
            f"({v['autoreplies_arrived']}/{v['mails']})" for k, v in lat.items())
            + "  (no target set)")
    if args.json:
        report = {"benchmark": "outbox", "quick": args.quick, "seed": args.seed,
                  "delivery": rate, "latency": lat,
                  "latency_params": {"duration_s": args.duration, "senders": args.senders,
                                     "wait_bound_s": args.wait}}
        if rate:
            report.update(
                figure={"what": "OutboxDeliverer.drain() msg/s (median)",
                        "value": rate["maildesk"]["rate_msg_s"]},
                baseline={"what": "smtplib sendmail() msg/s, one connection (median)",
                          "value": rate["smtplib"]["rate_msg_s"]},
                ratio=rate["ratio"], target={"ratio_min": TARGET_RATIO},
                verdict=rate["verdict"])
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
