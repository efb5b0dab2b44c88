"""End to end: the whole daemon (`maildesk serve`, the example configuration) on a generated
corpus, over SMTP and from a Dovecot mailbox, beside the floors measured in the same run; on
PostgreSQL also 1, 2 and 4 daemons on one database and the lateness of 10,000 timers due at once.

(a) SMTP. N mails (2000; 300 with --quick) of common.generate_corpus (threads, Russian in
    cp1251/koi8-r/utf-8, HTML, attachments) go from 8 smtplib clients (threads, one connection
    each) to `maildesk --config <cfg> serve` (a subprocess: listener, processor, outbound to the
    Maildir, timers; SQLite after `db upgrade`). Every thread of the corpus goes to one client,
    in corpus order, so each reply is sent after the mail it answers was accepted (a 4xx
    answer is counted and the mail sent again after 1 s, as an MTA would). Printed:
    time to all accepted (clients connected -> last 250, p50/p99 accept latency), to all
    ticketed (no inbound row pending), to all autoreplies delivered (every autoreply row of
    the outbox sent, i.e. in the Maildir) and to the outbox empty, by polling the database
    (read-only, every 0.2 s). Floor: benchmarks/sqlite_sink.py (aiosmtpd, one SQLite commit
    per mail) with the same clients and corpus, and the IMAP floor of (b) on the same corpus;
    each run interleaved with the daemon's (the machine's speed drifts within minutes).
    Targets: accepted rate / sink rate >= 0.7; ticketed rate / IMAP floor rate >= 0.5.
(b) IMAP. A private Dovecot (tests/dovecot.py). The daemon meets the empty folder once (first
    contact: what is there then is backlog and gets no autoreply), is stopped, the corpus is
    APPENDed, and `serve` is started again: from its ready line to all stored, all flagged
    \\Seen (the folder's acknowledged UID is the last), all ticketed, all autoreplies
    delivered. Floor: imapclient, UID FETCH BODY.PEEK[] in batches of 100 of the same folder,
    each mail parsed with the standard library (email.policy.default, get_content() of every
    text part: imap_ingest.py's floor) and inserted into SQLite with one commit per mail (WAL,
    synchronous=FULL). Target: ticketed rate / floor rate >= 0.6.
(c) PostgreSQL (--db-url): on a scratch database maildesk_e2e_<pid> (made again for each
    configuration, dropped after), 1, 2 and 4 `serve` daemons (one config directory, one
    SMTP port each; the clients spread over them); the ticketed rate of each and the ratio
    2 / 1 (target >= 1.6 with >= 4 free cores; on fewer, >= 1.0). Then, the daemons idle,
    T tickets (10,000; 1,000 with --quick) are inserted with the timers of their real
    schedule (policy incidents, P1, line1) whose first-response warning falls due at one
    moment a few seconds ahead; lateness = fired_at - due_at per timer (p50/p99/max), timers
    fired twice (more than one warning or stale event per ticket), warnings skipped (the
    timer_stale events of warnings) that one daemon sent. Target: p99 with 2 and 4 daemons
    <= 1.2 x one daemon's; 0 fired twice; 0 skipped warnings one daemon sent.

Correctness, each run: inbound rows stored vs mails sent, every corpus Message-ID made into
exactly one message row (lost / doubled), every thread of the corpus on one ticket (and no
ticket holding two threads), autoreplies queued vs delivered (outbox and Maildir), no
Message-ID twice in the Maildir.

    .venv/bin/python benchmarks/end_to_end.py [--quick] [--json FILE] [--db-url URL]
        [--messages N] [--timers T] [--daemons 1,2,4] [--repeat R] [--seed S] [--keep]

Exit status 0 unless the benchmark itself breaks: a missed target is printed, not an error.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import shutil
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from pathlib import Path
from random import Random
from typing import Any

import yaml

from common import (HERE, REPLY_PREFIXES, ROOT, SUPPORT, Mail, ScratchDatabase, ServerProcess,
                    Timer, describe_corpus, free_port, generate_corpus, maildesk_command,
                    percentile, run_clients, smtp_client, verdict, write_config_set, write_json)

sys.path.insert(0, str(ROOT / "tests"))
from dovecot import Dovecot  # noqa: E402  (the test suite's Dovecot runner)

TARGET_SMTP_ACCEPT = 0.7       # daemon accepted rate / sink rate
TARGET_SMTP_TICKETED = 0.5     # daemon SMTP ticketed rate / IMAP floor rate
TARGET_IMAP_TICKETED = 0.6     # daemon IMAP ticketed rate / IMAP floor rate
TARGET_SCALE_4CORES = 1.6      # 2 daemons / 1 daemon, ticketed rate, with >= 4 free cores
TARGET_SCALE_FEWER = 1.0       # ... on fewer free cores: not below one daemon
TARGET_LATENESS = 1.2          # timer lateness p99 with 2 or 4 daemons / one daemon's, at most
CLIENTS = 8
FETCH_BATCH = 100
POLL = 0.2                     # seconds between database polls
# ... and when a milestone is near (NEAR mails or fewer to go, about a batch of the
# processor's): 0.2 s steps were 3.5 % of a 5.7 s run, more than some differences measured;
# a few dozen quick polls in the last second load nothing.
POLL_NEAR, NEAR = 0.02, 250
STALL = 180.0                  # no progress for this long: the run is given up (and said so)
LIFTED_CAP = 100_000
MAX_TRIES = 10                 # a mail answered 4xx is sent again, up to this many tries in all
RETRY_AFTER = 1.0              # seconds between them


def verdict_max(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot (Linux's /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


SETTLE_IDLE = 0.85    # share of the CPUs idle over SETTLE_WINDOW that counts as settled
SETTLE_WINDOW = 0.5
SETTLE_MAX = 30.0


def settle() -> float:
    """Before a timed run: the previous run's leftovers finish first (its dirty pages, the
    checkpoint PostgreSQL makes after DROP DATABASE, daemons exiting, the floor's files
    removed), so that no configuration is timed on the tail of another. Without it the runs of
    part (c) that followed 4 daemons or a timer phase started on a busy machine (load 4-5 on
    2 CPUs) and the others did not. Returns the seconds waited (SETTLE_MAX at most)."""
    t0 = time.monotonic()
    os.sync()
    while time.monotonic() - t0 < SETTLE_MAX:
        before = _cpu_times()
        time.sleep(SETTLE_WINDOW)
        after = _cpu_times()
        if before is None or after is None:
            break
        total = after[1] - before[1]
        if total <= 0 or (after[0] - before[0]) / total >= SETTLE_IDLE:
            break
    return time.monotonic() - t0


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def mid(value: str | None) -> str:
    return (value or "").strip().strip("<>").strip()


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


# == the corpus' threads ==========================================================================
@dataclass
class Corpus:
    mails: list[Mail]
    thread: list[int]                 # per mail: its thread (forwards: the thread they forward)
    checked: list[bool]               # per mail: part of the thread check (not a forward)
    mids: set[str]                    # distinct Message-IDs
    unresolved: int = 0               # subject replies / forwards whose thread was not found
    shards: list[list[int]] = field(default_factory=list)

    @property
    def threads(self) -> int:
        return len(set(self.thread))


def _strip_prefix(subject: str, prefixes: tuple[str, ...]) -> str | None:
    for p in prefixes:
        if subject.startswith(p):
            return subject[len(p):]
    return None


def build_corpus(n: int, seed: int, clients: int) -> Corpus:
    """The corpus with each mail's thread, read from the bytes as a mail client would: a new
    request opens a thread, a reply joins the thread of its In-Reply-To, a header-less reply the
    latest thread of the same sender and subject, a forward the latest thread of its subject,
    a resend that of its Message-ID. Threads are dealt to the clients (the least loaded first),
    so the mails of a thread go in corpus order over one connection."""
    mails = generate_corpus(n, seed)
    parser = BytesHeaderParser(policy=email.policy.default)
    by_mid: dict[str, int] = {}
    in_check: dict[str, bool] = {}
    by_subject: dict[str, list[int]] = defaultdict(list)
    person: list[str] = []
    thread: list[int] = []
    checked: list[bool] = []
    unresolved = 0
    replies = tuple(dict.fromkeys(REPLY_PREFIXES))
    for m in mails:
        head = parser.parsebytes(m.raw)
        subject = str(head.get("Subject", ""))
        t: int | None = None
        if m.kind == "new":
            t = len(person)
            person.append(m.mail_from)
            by_subject[subject].append(t)
        elif m.kind == "reply":
            t = by_mid.get(mid(head.get("In-Reply-To")))
        elif m.kind == "subject-reply":
            base = _strip_prefix(subject, replies)
            cands = [c for c in by_subject.get(base or "", []) if person[c] == m.mail_from]
            t = cands[-1] if cands else None
        elif m.kind == "forward":
            cands = by_subject.get(_strip_prefix(subject, ("Fwd: ",)) or "", [])
            t = cands[-1] if cands else None
        elif m.kind == "resend":
            t = by_mid.get(m.message_id)
        if t is None:  # cannot tell: a thread of its own, left out of the check
            unresolved += 1
            t = len(person)
            person.append(m.mail_from)
            checked.append(False)
        elif m.kind == "resend":   # as checked as what it repeats (a forward: not)
            checked.append(in_check[m.message_id])
        else:
            checked.append(m.kind != "forward")
        by_mid.setdefault(m.message_id, t)
        in_check.setdefault(m.message_id, checked[-1])
        thread.append(t)
    corpus = Corpus(mails, thread, checked, {m.message_id for m in mails}, unresolved)
    sizes: dict[int, int] = Counter(thread)
    load = [0] * clients
    owner: dict[int, int] = {}
    for t in sorted(sizes, key=lambda t: (-sizes[t], t)):
        c = min(range(clients), key=lambda i: (load[i], i))
        owner[t] = c
        load[c] += sizes[t]
    corpus.shards = [[i for i in range(len(mails)) if owner[thread[i]] == c]
                     for c in range(clients)]
    return corpus


# == SMTP clients =================================================================================
@dataclass
class SendResult:
    sent: int
    errors: int
    t0: float                # perf_counter when every client was connected
    t_end: float             # perf_counter of the last 250
    latencies: list[float]    # first try -> 250, retries after a 4xx included
    deferred: int = 0          # 4xx answers (each followed by a retry of the same mail)

    @property
    def seconds(self) -> float:
        return self.t_end - self.t0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def send_shards(corpus: Corpus, ports: list[int], name: str,
                on_start: Callable[[float], None] | None = None) -> SendResult:
    """One thread and connection per shard (client c to ports[c % len(ports)]), each sending
    its mails in corpus order; the clock runs from all connected to the last 250."""
    k = len(corpus.shards)
    latencies: list[list[float]] = [[] for _ in range(k)]
    errors = [0] * k
    deferred = [0] * k
    finished = [0.0] * k
    started: list[float] = []

    def go() -> None:
        started.append(time.perf_counter())
        if on_start:
            on_start(started[0])

    def send(c: int, smtp: smtplib.SMTP) -> smtplib.SMTP:
        own = latencies[c]
        disconnected = False
        for i in corpus.shards[c]:
            mail = corpus.mails[i]
            t = time.perf_counter()
            for attempt in range(1, MAX_TRIES + 1):
                try:
                    smtp.sendmail(mail.mail_from, list(mail.rcpt_to), mail.raw)
                except smtplib.SMTPException as exc:
                    code = getattr(exc, "smtp_code", 0)
                    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
                        code = min(r[0] for r in exc.recipients.values())
                    if 400 <= code < 500 and attempt < MAX_TRIES:
                        # As an MTA would (sooner): the same mail again, after a pause.
                        deferred[c] += 1
                        if deferred[c] <= 2:
                            print(f"  {name} client {c}: {code} {exc}; sent again in "
                                  f"{RETRY_AFTER:g} s", file=sys.stderr)
                        time.sleep(RETRY_AFTER)
                        continue
                    errors[c] += 1
                    if errors[c] <= 3:
                        print(f"  {name} client {c}: {type(exc).__name__}: {exc}",
                              file=sys.stderr)
                    disconnected = isinstance(exc, smtplib.SMTPServerDisconnected)
                    break
                own.append(time.perf_counter() - t)
                break
            if disconnected:
                break
        finished[c] = time.perf_counter()
        return smtp

    run_clients(k, lambda c: smtp_client(ports[c % len(ports)], timeout=300), send, name,
                on_start=go)
    lat = [x for own in latencies for x in own]
    return SendResult(len(lat), sum(errors), started[0], max(finished), lat, sum(deferred))


# == the database, read while the daemon works ====================================================
PROGRESS_SQL = """
SELECT (SELECT count(*) FROM inbound),
       (SELECT count(*) FROM inbound WHERE status = 'pending'),
       (SELECT count(*) FROM outbox WHERE kind = 'autoreply'),
       (SELECT count(*) FROM outbox WHERE kind = 'autoreply' AND status = 'queued'),
       (SELECT count(*) FROM outbox WHERE status = 'queued'),
       (SELECT coalesce(max(acked_uid), 0) FROM imap_folder)
"""
PROGRESS_KEYS = ("stored", "pending", "autoreplies", "autoreplies_queued", "outbox_queued",
                 "acked_uid")


class Db:
    """A connection for reading what the daemon wrote: SQLite read-only (short busy timeout,
    never the write lock), or psycopg in autocommit. `rows(sql, params)` with `?` placeholders."""

    def __init__(self, url: str):
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            path = url.split(":///", 1)[1]
            self.con: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5,
                                            isolation_level=None, check_same_thread=False)
        else:
            import psycopg

            self.con = psycopg.connect(ScratchDatabase(url).conninfo, autocommit=True)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        return list(self.con.execute(sql, params).fetchall())

    def one(self, sql: str, params: tuple = ()) -> tuple:
        return self.rows(sql, params)[0]

    def close(self) -> None:
        self.con.close()


class Watch:
    """Polls the database every POLL seconds (POLL_NEAR when `near` says a milestone not yet
    seen is close) in a thread and notes when each milestone was first seen (perf_counter)."""

    def __init__(self, url: str, milestones: dict[str, Callable[[dict[str, int]], bool]],
                 near: Callable[[dict[str, int], set[str]], bool] | None = None):
        self.url = url
        self.milestones = milestones
        self.near = near
        self.seen: dict[str, float] = {}
        self.last: dict[str, int] = {}
        self.changed = time.perf_counter()
        self.series: list[tuple[float, dict[str, int]]] = []   # (perf_counter, values) on change
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def _run(self) -> None:
        db = Db(self.url)
        try:
            while not self._stop.is_set():
                try:
                    values = dict(zip(PROGRESS_KEYS, db.one(PROGRESS_SQL)))
                except Exception as exc:  # locked for a moment (SQLite): next tick
                    self.error = f"{type(exc).__name__}: {exc}"
                    self._stop.wait(POLL)
                    continue
                now = time.perf_counter()
                if values != self.last:
                    self.last, self.changed = values, now
                    self.series.append((now, values))
                for name, reached in self.milestones.items():
                    if name not in self.seen and reached(values):
                        self.seen[name] = now
                if len(self.seen) == len(self.milestones):
                    return
                close = self.near is not None and self.near(values, set(self.seen))
                self._stop.wait(POLL_NEAR if close else POLL)
        finally:
            db.close()

    def wait(self, deadline: float) -> str:
        """'done', 'stalled' (no change for STALL s) or 'timeout'."""
        while self._thread.is_alive():
            now = time.perf_counter()
            if now - self.changed > STALL:
                self.stop()
                return "stalled"
            if now > deadline:
                self.stop()
                return "timeout"
            self._thread.join(POLL)
        return "done" if len(self.seen) == len(self.milestones) else "stopped"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def since(self, name: str, t0: float) -> float | None:
        return self.seen[name] - t0 if name in self.seen else None

    def ticketed_by(self, t: float) -> int:
        """Mails processed (stored, no longer pending) as of the last poll at or before `t`."""
        done = 0
        for when, v in self.series:
            if when > t:
                break
            done = v["stored"] - v["pending"]
        return done


def mail_milestones(expected: dict[str, int], last_uid: int | None = None
                    ) -> dict[str, Callable[[dict[str, int]], bool]]:
    """`expected["n"]`: the inbound rows to wait for (set to the mails accepted once the
    clients are done)."""
    def stored(v: dict[str, int]) -> bool:
        return v["stored"] >= expected["n"]

    def ticketed(v: dict[str, int]) -> bool:
        return stored(v) and v["pending"] == 0

    ms: dict[str, Callable[[dict[str, int]], bool]] = {
        "stored": stored, "ticketed": ticketed,
        "autoreplies": lambda v: ticketed(v) and v["autoreplies_queued"] == 0,
        "outbox": lambda v: ticketed(v) and v["outbox_queued"] == 0}
    if last_uid is not None:
        ms["flagged"] = lambda v: v["acked_uid"] >= last_uid
    return ms


def mail_near(expected: dict[str, int]) -> Callable[[dict[str, int], set[str]], bool]:
    """Is the next mail milestone NEAR mails away or closer (poll finely)?"""
    def near(v: dict[str, int], seen: set[str]) -> bool:
        if "stored" not in seen:
            return v["stored"] >= expected["n"] - NEAR
        if "ticketed" not in seen:
            return v["pending"] <= NEAR
        return v["outbox_queued"] <= NEAR or v["autoreplies_queued"] <= NEAR
    return near


# == what the run left behind =====================================================================
def _data(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}


def maildir_ids(maildirs: list[Path]) -> Counter:
    ids: Counter = Counter()
    parser = BytesHeaderParser(policy=email.policy.compat32)
    for md in maildirs:
        for sub in ("new", "cur"):
            d = md / sub
            if not d.is_dir():
                continue
            for f in d.iterdir():
                with open(f, "rb") as fh:
                    head = fh.read(16384).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
                ids[mid(parser.parsebytes(head).get("Message-ID"))] += 1
    return ids


def check_run(url: str, corpus: Corpus, expected_inbound: int, maildirs: list[Path]) -> dict:
    """Lost / doubled mail, thread integrity, autoreplies queued vs delivered, Maildir."""
    db = Db(url)
    try:
        statuses = dict(db.rows("SELECT status, count(*) FROM inbound GROUP BY status"))
        stored = sum(statuses.values())
        rows = db.rows("SELECT message_id, ticket_id, thread_reason, inbound_id FROM message "
                       "WHERE direction = 'in' AND inbound_id IS NOT NULL")
        tickets = db.one("SELECT count(*) FROM ticket")[0]
        outbox = {f"{k} {s}": c for k, s, c in
                  db.rows("SELECT kind, status, count(*) FROM outbox GROUP BY kind, status")}
        auto_ids = {mid(r[0]) for r in
                    db.rows("SELECT message_id FROM outbox WHERE kind = 'autoreply'")}
        auto_twice = db.one("SELECT count(*) FROM (SELECT ticket_id FROM outbox "
                            "WHERE kind = 'autoreply' GROUP BY ticket_id "
                            "HAVING count(*) > 1) x")[0]
        suppressed = Counter(_data(d).get("reason", "?").split(" (")[0] for (d,) in db.rows(
            "SELECT data FROM ticket_event WHERE kind = 'autoreply_suppressed'"))
        quarantined = Counter((r or "?").splitlines()[0][:80] for (r,) in db.rows(
            "SELECT reason FROM inbound WHERE status = 'quarantined'"))
        reasons = dict(db.rows("SELECT thread_reason, count(*) FROM message "
                               "WHERE direction = 'in' AND inbound_id IS NOT NULL "
                               "GROUP BY thread_reason"))
    finally:
        db.close()
    per_mid: dict[str, list[int]] = defaultdict(list)
    how: dict[str, tuple[str, int]] = {}
    for message_id, ticket_id, reason, inbound_id in rows:
        per_mid[mid(message_id)].append(ticket_id)
        how[mid(message_id)] = (reason, inbound_id)
    lost = sorted(m for m in corpus.mids if m not in per_mid)
    doubled = sorted(m for m in corpus.mids if len(per_mid.get(m, ())) > 1)
    thread_tickets: dict[int, set[int]] = defaultdict(set)
    ticket_threads: dict[int, set[int]] = defaultdict(set)
    for i, m in enumerate(corpus.mails):
        if not corpus.checked[i] or m.message_id not in per_mid:
            continue
        for ticket in per_mid[m.message_id]:
            thread_tickets[corpus.thread[i]].add(ticket)
            ticket_threads[ticket].add(corpus.thread[i])
    split = sum(1 for s in thread_tickets.values() if len(s) > 1)
    # A few split threads mail by mail: corpus index, kind, inbound id, ticket, thread reason.
    split_examples = [[(i, m.kind, how.get(m.message_id, ("?", 0))[1], per_mid[m.message_id],
                        how.get(m.message_id, ("?", 0))[0])
                       for i, m in enumerate(corpus.mails)
                       if corpus.thread[i] == t and corpus.checked[i] and m.message_id in per_mid]
                      for t, s in thread_tickets.items() if len(s) > 1][:3]
    merged = sum(1 for s in ticket_threads.values() if len(s) > 1)
    in_maildir = maildir_ids(maildirs)
    auto_delivered = sum(1 for m in auto_ids if in_maildir.get(m))
    twice_in_maildir = sum(c - 1 for c in in_maildir.values() if c > 1)
    queued = sum(c for k, c in outbox.items() if k.startswith("autoreply"))
    ok = (stored == expected_inbound and not lost and not doubled and split == 0 and merged == 0
          and auto_delivered == queued and twice_in_maildir == 0 and auto_twice == 0)
    return {"inbound_expected": expected_inbound, "inbound_stored": stored,
            "inbound_status": statuses, "message_ids": len(corpus.mids), "lost": len(lost),
            "doubled": len(doubled), "lost_examples": lost[:3], "doubled_examples": doubled[:3],
            "threads_checked": len(thread_tickets), "threads_split": split,
            "split_examples": split_examples,
            "tickets_merging_threads": merged, "tickets": tickets, "thread_reasons": reasons,
            "outbox": outbox, "autoreplies_queued": queued,
            "autoreplies_in_maildir": auto_delivered, "autoreplies_twice_per_ticket": auto_twice,
            "maildir_files": sum(in_maildir.values()), "maildir_ids_twice": twice_in_maildir,
            "autoreplies_suppressed": dict(suppressed), "quarantined": dict(quarantined),
            "ok": ok}


def print_check(c: dict, indent: str = "    ") -> None:
    st = ", ".join(f"{k} {v}" for k, v in sorted(c["inbound_status"].items()))
    print(f"{indent}inbound rows {c['inbound_stored']} of {c['inbound_expected']} expected "
          f"({st}); Message-IDs {c['message_ids']}: lost {c['lost']}, doubled {c['doubled']}"
          + (f" e.g. {c['lost_examples'] + c['doubled_examples']}"
             if c['lost'] or c['doubled'] else ""))
    print(f"{indent}threads {c['threads_checked']}: split over >1 ticket {c['threads_split']}, "
          f"tickets holding >1 thread {c['tickets_merging_threads']}; tickets {c['tickets']}; "
          "thread reasons " + ", ".join(f"{k} {v}" for k, v in
                                        sorted(c["thread_reasons"].items(), key=lambda kv: -kv[1])))
    sup = sum(c["autoreplies_suppressed"].values())
    print(f"{indent}autoreplies queued {c['autoreplies_queued']}, in the Maildir "
          f"{c['autoreplies_in_maildir']}, twice for a ticket {c['autoreplies_twice_per_ticket']}"
          f"; suppressed {sup}"
          + (" (" + "; ".join(f"{k}: {v}" for k, v in c["autoreplies_suppressed"].items()) + ")"
             if sup else "")
          + f"; Maildir {c['maildir_files']} files, Message-ID twice {c['maildir_ids_twice']}")
    for ex in c.get("split_examples", []):
        print(f"{indent}split thread (corpus index, kind, inbound id, ticket ids, reason): "
              + ", ".join(f"({i} {k} in#{ib} t{'/'.join(map(str, ts))} {r})"
                          for i, k, ib, ts, r in ex))
    if c["quarantined"]:
        print(f"{indent}quarantined: " + "; ".join(f"{k} ({v})"
                                                    for k, v in c["quarantined"].items()))
    print(f"{indent}correctness: {'ok' if c['ok'] else 'NOT OK'}")


# == configuration and daemons ====================================================================
def configure(workdir: Path, db_url: str, *, shipped_caps: bool, timer_interval: str | None = None,
              imap: dict | None = None) -> Path:
    """The example configuration (write_config_set: config/ copied, var and the outbound
    Maildir in the temp dir), with the hourly autoreply caps lifted unless `shipped_caps`."""
    path = write_config_set(workdir / "config", db_url)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not shipped_caps:
        data["autoreply"].update(max_per_hour=LIFTED_CAP, max_per_domain_per_hour=LIFTED_CAP)
    if timer_interval:
        data.setdefault("timers", {})["interval"] = timer_interval
    if imap:
        data["imap"] = {"accounts": [imap]}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def with_port(config: Path, name: str, port: int) -> Path:
    """A copy of `config` in the same directory (same var dir, key, Maildir) with its own SMTP
    port, and its metrics on a port of their own (as an admin watching several daemons)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["smtp"]["port"] = port
    data.setdefault("metrics", {})["listen"] = f"127.0.0.1:{free_port()}"
    path = config.parent / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def deferred_count(config: Path) -> int | None:
    """maildesk_mail_deferred_total of the daemon on `config` (None: no metrics listener)."""
    listen = (yaml.safe_load(config.read_text(encoding="utf-8")).get("metrics") or {}).get(
        "listen")
    if not listen:
        return None
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(int(float(line.split()[-1])) for line in text.splitlines()
               if line.startswith("maildesk_mail_deferred_total"))


def smtp_port(config: Path) -> int:
    return int(yaml.safe_load(config.read_text(encoding="utf-8"))["smtp"]["port"])


def maildir_of(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text(encoding="utf-8"))["outbound"]["maildir"])


def db_upgrade(config: Path) -> None:
    r = subprocess.run([*maildesk_command(), "--config", str(config), "db", "upgrade"],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"maildesk db upgrade failed:\n{r.stdout}\n{r.stderr}")


def start_daemon(config: Path, name: str, workdir: Path) -> tuple[ServerProcess, float]:
    """`maildesk --config <config> serve`; returns it and how long it took to be ready."""
    t = time.perf_counter()
    proc = ServerProcess(name, [*maildesk_command(), "--config", str(config), "serve"],
                         "maildesk serving", workdir)
    return proc, time.perf_counter() - t


def log_problems(proc: ServerProcess) -> list[str]:
    """WARNING / ERROR / Traceback lines of a daemon's log (said after the run)."""
    text = proc.err.read_text(errors="replace") if proc.err.exists() else ""
    out: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if " WARNING " in line or " ERROR " in line:
            out.append(f"{proc.name}: {line}")
        elif line.startswith("Traceback"):  # the exception it ends with
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j][:4]
                                      .isdigit()):
                j += 1
            block = lines[i + 1:j]
            last_frame = max((k for k, x in enumerate(block) if x.startswith(" ")), default=-1)
            end = " / ".join(x.strip() for x in block[last_frame + 1:] if x.strip()) or line
            out.append(f"{proc.name}:   -> {end}")
    return out


def print_log(lines: list[str], indent: str = "    ", first: int = 6) -> None:
    if lines:
        print(f"{indent}daemon logs: {len(lines)} WARNING/ERROR line(s)"
              + (f", the first {first}" if len(lines) > first else "") + ":")
        for line in lines[:first]:
            print(f"{indent}  {line[:220]}")


def stop_all(procs: list[ServerProcess]) -> None:
    for p in procs:
        try:
            p.stop()
        except Exception as exc:  # go on stopping the others; kill by pid as a last resort
            print(f"  warning: stopping {p.name}: {exc}", file=sys.stderr)
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()


# == (a) SMTP =====================================================================================
def run_sink(corpus: Corpus, workdir: Path) -> dict:
    db = workdir / "sink.db"
    port = free_port()
    server = ServerProcess("sink", [sys.executable, str(HERE / "sqlite_sink.py"), "--port",
                                    str(port), "--db", str(db)], "sink serving", workdir)
    try:
        settle()
        res = send_shards(corpus, [port], "sink")
    finally:
        server.stop()
    con = sqlite3.connect(db)
    try:
        stored = con.execute("SELECT count(*) FROM mail").fetchone()[0]
    finally:
        con.close()
    return {"rate": res.rate, "seconds": res.seconds, "sent": res.sent, "errors": res.errors,
            "deferred": res.deferred,
            "stored": stored, "p50_ms": percentile(res.latencies, 50) * 1e3,
            "p99_ms": percentile(res.latencies, 99) * 1e3}


def run_mail_daemons(corpus: Corpus, configs: list[Path], db_url: str, workdir: Path,
                     deadline_s: float, label: str) -> dict:
    """Start a daemon per config (one after the other: the first makes nothing the others
    need, `db upgrade` already made the key), send the corpus, watch the database until every
    mail is ticketed and the outbox is empty; stop them; check what they left."""
    n = len(corpus.mails)
    procs: list[ServerProcess] = []
    expect = {"n": n}
    watch = Watch(db_url, mail_milestones(expect), mail_near(expect))
    try:
        startup = []
        for i, cfg in enumerate(configs):
            p, s = start_daemon(cfg, f"{label}-d{i + 1}", workdir)
            procs.append(p)
            startup.append(s)
        settled = settle()
        watch.start()
        res = send_shards(corpus, [smtp_port(c) for c in configs], label)
        expect["n"] = res.sent   # a mail refused for good (5xx, 4xx ten times) is not stored
        state = watch.wait(res.t0 + deadline_s)
        counts = [deferred_count(c) for c in configs]
        deferred_mail = sum(counts) if None not in counts else None  # type: ignore[arg-type]
    finally:
        if watch._thread.is_alive():
            watch.stop()
        stop_all(procs)
    t0 = res.t0
    out = {"daemons": len(configs), "startup_s": [round(s, 2) for s in startup],
           "settled_s": round(settled, 1),
           "accepted_s": res.seconds, "accepted_rate": res.rate, "sent": res.sent,
           "errors": res.errors, "deferred": res.deferred, "deferred_mail": deferred_mail,
           "p50_ms": percentile(res.latencies, 50) * 1e3,
           "p99_ms": percentile(res.latencies, 99) * 1e3, "state": state,
           "stored_s": watch.since("stored", t0), "ticketed_s": watch.since("ticketed", t0),
           "autoreplies_s": watch.since("autoreplies", t0), "outbox_s": watch.since("outbox", t0),
           "last_seen": watch.last}
    out["ticketed_rate"] = n / out["ticketed_s"] if out["ticketed_s"] else 0.0
    # Per phase: what processing got done while the clients sent, and its rate after.
    during = watch.ticketed_by(res.t_end)
    out["ticketed_while_sending"] = during
    after = (out["ticketed_s"] - res.seconds) if out["ticketed_s"] else None
    out["rate_after_sending"] = (res.sent - during) / after if after and after > 0 else None
    out["check"] = check_run(db_url, corpus, res.sent, [maildir_of(configs[0])])
    out["log_errors"] = [line for p in procs for line in log_problems(p)]
    return out


def print_mail_run(r: dict, indent: str = "    ") -> None:
    print(f"{indent}accepted {r['sent']} in {r['accepted_s']:.1f} s = {r['accepted_rate']:.1f} "
          f"mails/s (accept p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; 4xx answered "
          f"and sent again {r['deferred']}, refused {r['errors']}); all ticketed "
          f"{fmt_s(r['ticketed_s'])} = {r['ticketed_rate']:.1f} mails/s; autoreplies delivered "
          f"{fmt_s(r['autoreplies_s'])}; outbox empty {fmt_s(r['outbox_s'])}"
          + (f"; processed while the clients sent {r['ticketed_while_sending']}, after "
             f"{r['rate_after_sending']:.1f} mails/s" if r.get("rate_after_sending") else "")
          + (f"; mails deferred between daemons {r['deferred_mail']}"
             if r.get("deferred_mail") is not None and r["daemons"] > 1 else "")
          + (f"; waited {r['settled_s']:.1f} s for a quiet machine first"
             if r.get("settled_s", 0) >= 1 else "")
          + ("" if r["state"] == "done" else f"  [{r['state'].upper()}: {r['last_seen']}]"))
    print_log(r.get("log_errors", []), indent)


def smtp_part(args: argparse.Namespace, corpus: Corpus, tmp: Path, dovecot: Dovecot) -> dict:
    """The daemon's runs interleaved with its two floors' (the sink for accepting, the IMAP
    floor for ticketing, read from `dovecot`'s folder "floor"), so that each ratio compares
    figures of the same minutes: this machine's speed drifts twofold within minutes."""
    n = len(corpus.mails)
    print(f"\n(a) SMTP: {n} mails, {CLIENTS} clients (threads dealt to clients: "
          f"{', '.join(str(len(s)) for s in corpus.shards)} mails), {args.repeat} run(s) per side")
    runs: list[dict] = []
    sinks: list[dict] = []
    floors: list[dict] = []
    for r in range(args.repeat):
        order = ("daemon", "sink", "floor") if r % 2 == 0 else ("floor", "sink", "daemon")
        for who in order:
            work = tmp / f"smtp-{who}-{r}"
            if who == "floor":
                f = imap_floor(dovecot, "floor", work)
                floors.append(f)
                print(f"  IMAP floor run {r + 1}: {f['rate']:.1f} mails/s ({f['seconds']:.1f} s)",
                      flush=True)
            elif who == "sink":
                s = run_sink(corpus, work)
                sinks.append(s)
                print(f"  sink run {r + 1}: {s['rate']:.1f} mails/s ({s['seconds']:.1f} s, p50 "
                      f"{s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, 4xx {s['deferred']}), "
                      f"{s['stored']} rows of {n}", flush=True)
            else:
                cfg = configure(work, f"sqlite:///{work / 'maildesk.db'}",
                                shipped_caps=args.shipped_caps)
                db_upgrade(cfg)
                res = run_mail_daemons(corpus, [cfg], f"sqlite:///{work / 'maildesk.db'}", work,
                                       args.deadline, "smtp")
                runs.append(res)
                print(f"  maildesk serve run {r + 1} (started in {res['startup_s'][0]:.1f} s):")
                print_mail_run(res)
                print_check(res["check"])
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    return {"runs": runs, "sink_runs": sinks,
            "accepted_rate": statistics.median(x["accepted_rate"] for x in runs),
            "ticketed_rate": statistics.median(x["ticketed_rate"] for x in runs),
            "autoreplies_s": _median_or_none(x["autoreplies_s"] for x in runs),
            "ticketed_s": _median_or_none(x["ticketed_s"] for x in runs),
            "accepted_s": statistics.median(x["accepted_s"] for x in runs),
            "p50_ms": statistics.median(x["p50_ms"] for x in runs),
            "p99_ms": statistics.median(x["p99_ms"] for x in runs),
            "sink_rate": statistics.median(x["rate"] for x in sinks),
            "floor_rate": statistics.median(x["rate"] for x in floors), "floor_runs": floors,
            "sink_p50_ms": statistics.median(x["p50_ms"] for x in sinks),
            "sink_p99_ms": statistics.median(x["p99_ms"] for x in sinks),
            "ok": all(x["check"]["ok"] and x["state"] == "done" for x in runs)
            and all(s["stored"] == n for s in sinks),
            "deferred": sum(x["deferred"] for x in runs)}


def _median_or_none(values: Any) -> float | None:
    vals = list(values)
    return None if any(v is None for v in vals) else statistics.median(vals)


# == (b) IMAP =====================================================================================
def imap_floor(dovecot: Dovecot, folder: str, workdir: Path) -> dict:
    """imapclient batched fetch + stdlib parse + one SQLite commit per mail."""
    from imapclient import IMAPClient

    workdir.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(workdir / "floor.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE mail (id INTEGER PRIMARY KEY, uid INTEGER, message_id TEXT, "
                "subject TEXT, text TEXT, data BLOB NOT NULL)")
    settle()
    got = 0
    try:
        with Timer() as t:
            client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=60)
            client.login(dovecot.user, dovecot.password)
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search(["ALL"]))
            for i in range(0, len(uids), FETCH_BATCH):
                fetched = client.fetch(uids[i:i + FETCH_BATCH], ["BODY.PEEK[]"])
                for uid in sorted(fetched):
                    raw = bytes(fetched[uid][b"BODY[]"])
                    msg = email.message_from_bytes(raw, policy=email.policy.default)
                    texts = []
                    for part in msg.walk():
                        if part.get_content_maintype() == "text":
                            try:
                                texts.append(part.get_content())
                            except Exception:
                                pass
                    con.execute("BEGIN IMMEDIATE")
                    con.execute("INSERT INTO mail (uid, message_id, subject, text, data) "
                                "VALUES (?, ?, ?, ?, ?)",
                                (uid, str(msg.get("Message-ID", "")), str(msg.get("Subject", "")),
                                 texts[0] if texts else "", raw))
                    con.execute("COMMIT")
                    got += 1
            client.logout()
    finally:
        con.close()
    return {"seconds": t.seconds, "rate": got / t.seconds, "fetched": got}


def run_imap_daemon(corpus: Corpus, raws: list[bytes], dovecot: Dovecot, folder: str,
                    workdir: Path, args: argparse.Namespace) -> dict:
    db_url = f"sqlite:///{workdir / 'maildesk.db'}"
    (workdir / "imap-password").parent.mkdir(parents=True, exist_ok=True)
    (workdir / "imap-password").write_text(dovecot.password)
    account = {"name": "bench", "host": "127.0.0.1", "port": dovecot.port, "security": "none",
               "username": dovecot.user, "password": {"file": str(workdir / "imap-password")},
               "folders": [folder], "after_store": "seen"}
    cfg = configure(workdir, db_url, shipped_caps=args.shipped_caps, imap=account)
    db_upgrade(cfg)
    dovecot.create_folder(folder)
    # First contact with the empty folder, so that the corpus is new mail, not backlog.
    first, _ = start_daemon(cfg, "imap-first", workdir)
    try:
        db = Db(db_url)
        try:
            deadline = time.monotonic() + 60
            while not db.one("SELECT count(*) FROM imap_folder")[0]:
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not make first contact with the folder:\n"
                                     + first.tail())
                time.sleep(0.1)
        finally:
            db.close()
    finally:
        first.stop()
    with Timer() as ta:
        dovecot.append_many(folder, raws)
    uids = dovecot.uids(folder)
    expected = len(set(raws))      # the same bytes twice in one folder are stored once
    print(f"  [{len(uids)} mails APPENDed to {folder} in {ta.seconds:.1f} s, untimed; "
          f"{expected} distinct]", flush=True)
    watch = Watch(db_url, mail_milestones({"n": expected}, uids[-1]), mail_near({"n": expected}))
    procs: list[ServerProcess] = []
    settle()
    t_start = time.perf_counter()
    try:
        proc, startup = start_daemon(cfg, "imap", workdir)
        procs.append(proc)
        t0 = time.perf_counter()
        watch.start()
        state = watch.wait(t0 + args.deadline)
    finally:
        if watch._thread.is_alive():
            watch.stop()
        stop_all(procs)
    flags = dovecot.flags(folder)
    seen = sum(1 for f in flags.values() if b"\\Seen" in f)
    out = {"startup_s": startup, "state": state, "stored_s": watch.since("stored", t0),
           "flagged_s": watch.since("flagged", t0), "ticketed_s": watch.since("ticketed", t0),
           "autoreplies_s": watch.since("autoreplies", t0), "outbox_s": watch.since("outbox", t0),
           "ticketed_from_start_s": watch.since("ticketed", t_start), "flagged_seen": seen,
           "in_folder": len(uids), "last_seen": watch.last}
    n = len(raws)
    out["ticketed_rate"] = n / out["ticketed_s"] if out["ticketed_s"] else 0.0
    out["stored_rate"] = n / out["stored_s"] if out["stored_s"] else 0.0
    out["check"] = check_run(db_url, corpus, expected, [maildir_of(cfg)])
    out["check"]["flagged_seen"] = seen
    out["check"]["ok"] = out["check"]["ok"] and seen == len(uids)
    out["log_errors"] = [line for p in procs for line in log_problems(p)]
    return out


def imap_part(args: argparse.Namespace, corpus: Corpus, tmp: Path, dovecot: Dovecot) -> dict:
    raws = [crlf(m.raw) for m in corpus.mails]
    n = len(raws)
    print(f"\n(b) IMAP: {n} mails in a private Dovecot, {args.repeat} run(s) per side")
    runs: list[dict] = []
    floors: list[dict] = []
    for r in range(args.repeat):
        folder = f"e2e{r}"
        work = tmp / f"imap-{r}"
        # The daemon's run appends the corpus; the floor reads the same folder (read-only,
        # BODY.PEEK: flags do not matter to it) after, or a copy before.
        if r % 2 == 0:
            res = run_imap_daemon(corpus, raws, dovecot, folder, work, args)
            f = imap_floor(dovecot, folder, work / "floor")
        else:
            dovecot.append_many(f"floor{r}", raws)
            f = imap_floor(dovecot, f"floor{r}", work / "floor")
            res = run_imap_daemon(corpus, raws, dovecot, folder, work, args)
        runs.append(res)
        floors.append(f)
        print(f"  maildesk serve run {r + 1} (ready {res['startup_s']:.1f} s after exec; times "
              f"from its ready line): all stored {fmt_s(res['stored_s'])}, all flagged \\Seen "
              f"{fmt_s(res['flagged_s'])}, all ticketed {fmt_s(res['ticketed_s'])} = "
              f"{res['ticketed_rate']:.1f} mails/s, autoreplies delivered "
              f"{fmt_s(res['autoreplies_s'])}, outbox empty {fmt_s(res['outbox_s'])}"
              + ("" if res["state"] == "done" else f"  [{res['state'].upper()}: "
                                                   f"{res['last_seen']}]"))
        print_log(res["log_errors"])
        print_check(res["check"])
        print(f"  floor run {r + 1}: imapclient fetch (batches of {FETCH_BATCH}) + stdlib parse + "
              f"one SQLite commit per mail: {f['fetched']} in {f['seconds']:.1f} s = "
              f"{f['rate']:.1f} mails/s", flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"runs": runs, "floor_runs": floors,
            "ticketed_rate": statistics.median(x["ticketed_rate"] for x in runs),
            "ticketed_s": _median_or_none(x["ticketed_s"] for x in runs),
            "stored_s": _median_or_none(x["stored_s"] for x in runs),
            "flagged_s": _median_or_none(x["flagged_s"] for x in runs),
            "autoreplies_s": _median_or_none(x["autoreplies_s"] for x in runs),
            "floor_rate": statistics.median(x["rate"] for x in floors),
            "ok": all(x["check"]["ok"] and x["state"] == "done" for x in runs)}


# == (c) PostgreSQL: several daemons, timers ======================================================
TICKET_COLS = ("id", "number", "reply_token", "subject", "subject_key", "status", "priority",
               "line", "language", "requester", "requester_name", "mailbox", "created_at",
               "updated_at", "last_activity_at", "first_response_due_at", "resolution_due_at",
               "sla_policy", "line_entered_at")
TIMER_COLS = ("ticket_id", "kind", "stage", "due_at", "state", "data", "created_at")
PARTICIPANT_COLS = ("ticket_id", "address", "name", "role")
MESSAGE_COLS = ("ticket_id", "direction", "role", "message_id", "from_address", "from_name",
                "to", "cc", "subject", "sent_at", "received_at", "body_text", "has_html",
                "thread_reason", "internal", "defects")
TIMER_POLICY, TIMER_PRIORITY, TIMER_LINE = "incidents", "P1", "line1"


def insert_due_timers(conninfo: str, config: Path, count: int, lead: float, seed: int
                      ) -> tuple[datetime, list[int], float]:
    """`count` open tickets (policy incidents, P1, line1; their client as participant and
    first mail) with the pending timers of their real schedule, created so that the
    first-response warning falls due at T0 = now + `lead` s for all of them (nothing else due
    before T0 + 12 min). Returns T0, the ticket ids and the seconds the insert took."""
    import psycopg

    from maildesk.config import load_settings
    from maildesk.domain import TicketStatus
    from maildesk.sla.schedule import SlaState, schedule

    settings = load_settings(config)
    lines = {line.id: line for line in settings.lines}

    def plan(created: datetime):  # type: ignore[no-untyped-def]
        st = SlaState(status=TicketStatus.NEW, priority=TIMER_PRIORITY, policy=TIMER_POLICY,
                      line=TIMER_LINE, created_at=created, line_entered_at=created)
        return schedule(st, policies=settings.sla_policies, lines=lines,
                        close_after=settings.close_after)

    t_start = time.perf_counter()
    t0 = (datetime.now(timezone.utc) + timedelta(seconds=lead)).replace(microsecond=0)
    probe = plan(t0)
    warn = next(t for t in probe.timers if t.kind == "first_response" and t.stage == "warning")
    created = t0 - (warn.due_at - t0)
    sched = plan(created)
    due_now = [t for t in sched.timers if t.due_at <= t0]
    if len(due_now) != 1 or due_now[0].stage != "warning" or due_now[0].due_at != t0:
        raise SystemExit(f"unexpected schedule for the timer tickets: {sched.timers}")
    rng = Random(seed)
    with psycopg.connect(conninfo) as con:
        ids = [r[0] for r in con.execute(
            "SELECT nextval(pg_get_serial_sequence('ticket', 'id')) FROM generate_series(1, %s)",
            (count,))]
        base = 10_000_000 + con.execute("SELECT coalesce(max(number), 0) FROM ticket").fetchone()[0]
        with con.cursor() as cur:
            with cur.copy(f"COPY ticket ({', '.join(TICKET_COLS)}) FROM STDIN") as copy:
                for i, tid in enumerate(ids):
                    subject = f"Касса не печатает чеки, магазин {i}"
                    copy.write_row((tid, base + i, f"{rng.getrandbits(40):010x}", subject,
                                    subject.casefold(), "new", TIMER_PRIORITY, TIMER_LINE, "ru",
                                    f"client{i}@shop-kazan.ru", f"Клиент {i}", SUPPORT, created,
                                    created, created, sched.first_response, sched.resolution,
                                    TIMER_POLICY, created))
            with cur.copy(f"COPY ticket_timer ({', '.join(TIMER_COLS)}) FROM STDIN") as copy:
                for tid in ids:
                    for spec in sched.timers:
                        copy.write_row((tid, spec.kind, spec.stage, spec.due_at, "pending",
                                        json.dumps({**spec.data, "key": spec.key}), created))
            with cur.copy(f"COPY participant ({', '.join(PARTICIPANT_COLS)}) FROM STDIN") as copy:
                for i, tid in enumerate(ids):
                    copy.write_row((tid, f"client{i}@shop-kazan.ru", f"Клиент {i}", "client"))
            cols = ", ".join(f'"{c}"' for c in MESSAGE_COLS)
            with cur.copy(f"COPY message ({cols}) FROM STDIN") as copy:
                for i, tid in enumerate(ids):
                    copy.write_row((tid, "in", "client", f"timer-{i}-{rng.getrandbits(48):x}"
                                    "@shop-kazan.ru", f"client{i}@shop-kazan.ru", f"Клиент {i}",
                                    json.dumps([SUPPORT]), "[]",
                                    f"Касса не печатает чеки, магазин {i}", created, created,
                                    "Добрый день! Касса не печатает чеки, просим помочь.",
                                    False, "new", False, "[]"))
        con.commit()
    return t0, ids, time.perf_counter() - t_start


def run_timers(conninfo: str, config: Path, count: int, args: argparse.Namespace) -> dict:
    """Insert the due timers while the daemons idle; poll until every warning timer has fired
    (noting when each was first seen fired); then lateness, doubles and skips."""
    import psycopg

    lead = 5.0 if count <= 2000 else 10.0
    t0, ids, took = insert_due_timers(conninfo, config, count, lead, args.seed)
    left = (t0 - datetime.now(timezone.utc)).total_seconds()
    note = "" if left > 0 else f" (the insert ended {-left:.1f} s after T0: lateness includes it)"
    print(f"    {count} tickets with their timers inserted in {took:.1f} s; warnings due at "
          f"{t0:%H:%M:%S} UTC, {max(left, 0):.1f} s later{note}", flush=True)
    seen_at: dict[int, float] = {}
    deadline = time.monotonic() + args.deadline
    state = "done"
    with psycopg.connect(conninfo, autocommit=True) as con:
        while len(seen_at) < count:
            rows = con.execute(
                "SELECT id FROM ticket_timer WHERE ticket_id = ANY(%s) AND kind = "
                "'first_response' AND stage = 'warning' AND state <> 'pending'", (ids,)).fetchall()
            now = datetime.now(timezone.utc)
            for (timer_id,) in rows:
                seen_at.setdefault(timer_id, (now - t0).total_seconds())
            if len(seen_at) >= count:
                break
            if time.monotonic() > deadline:
                state = "timeout"
                break
            time.sleep(POLL)
        timers = con.execute(
            "SELECT id, ticket_id, due_at, fired_at, state FROM ticket_timer WHERE ticket_id = "
            "ANY(%s) AND kind = 'first_response' AND stage = 'warning'", (ids,)).fetchall()
        events = con.execute(
            "SELECT ticket_id, kind, data FROM ticket_event WHERE ticket_id = ANY(%s) AND kind "
            "IN ('sla_warning', 'timer_stale', 'timer_failed')", (ids,)).fetchall()
        notes = con.execute(
            "SELECT count(*), count(DISTINCT ticket_id) FROM outbox WHERE ticket_id = ANY(%s) "
            "AND kind = 'notification'", (ids,)).fetchone()
    index = {tid: i for i, tid in enumerate(ids)}
    late = [(fired - due).total_seconds() for _, _, due, fired, st in timers
            if st == "fired" and fired is not None]
    observed = list(seen_at.values())
    per_ticket: Counter = Counter()
    skipped: set[int] = set()
    failed = 0
    for ticket_id, kind, data in events:
        d = _data(data)
        if kind == "timer_failed":
            failed += 1
            continue
        if kind == "timer_stale" and d.get("stage") != "warning":
            continue
        per_ticket[ticket_id] += 1
        if kind == "timer_stale":
            skipped.add(index[ticket_id])
    fired_twice = sum(1 for c in per_ticket.values() if c > 1)
    warning_timers_per_ticket = Counter(t[1] for t in timers)
    fired_twice += sum(1 for c in warning_timers_per_ticket.values() if c > 1)
    return {"count": count, "state": state, "insert_s": round(took, 2),
            "fired": len(late), "p50_s": percentile(late, 50), "p99_s": percentile(late, 99),
            "max_s": max(late) if late else float("nan"),
            "observed_p50_s": percentile(observed, 50), "observed_p99_s": percentile(observed, 99),
            "observed_max_s": max(observed) if observed else float("nan"),
            "fired_twice": fired_twice, "failed": failed, "warnings_skipped": len(skipped),
            "skipped_ordinals": sorted(skipped), "notifications": notes[0],
            "notified_tickets": notes[1]}


def _pg_run(args: argparse.Namespace, corpus: Corpus, tmp: Path, name: str, k: int, r: int,
            timers: bool) -> dict:
    """`k` daemons on a new database: the corpus over SMTP, then (`timers`) the due timers."""
    db = ScratchDatabase.scratch_postgres(args.db_url, name)
    work = tmp / f"pg-{k}-{r}"
    try:
        base = configure(work, db.url, shipped_caps=args.shipped_caps,
                         timer_interval=args.timer_interval)
        db_upgrade(base)
        configs = [with_port(base, f"maildesk-d{i + 1}.yaml", free_port()) for i in range(k)]
        print(f"  {k} daemon(s), run {r + 1}:", flush=True)
        res = run_mail_daemons(corpus, configs, db.url, work, args.deadline, f"pg{k}")
        print_mail_run(res)
        print_check(res["check"])
        if timers:
            res["timers"] = _pg_timers(args, db, base, configs, k, work)
        return res
    finally:
        db.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _pg_timers(args: argparse.Namespace, db: ScratchDatabase, base: Path, configs: list[Path],
               k: int, work: Path) -> dict:
    """The daemons again (idle now), the due timers inserted under them; their lateness."""
    procs: list[ServerProcess] = []
    try:
        for i, cfg in enumerate(configs):
            procs.append(start_daemon(cfg, f"pg{k}-timers-d{i + 1}", work)[0])
        time.sleep(1.0)   # each has made its first sweep (arming) by now
        settle()
        t = run_timers(db.conninfo, base, args.timers, args)
    finally:
        stop_all(procs)
    t["log_errors"] = [line for p in procs for line in log_problems(p)]
    print(f"    timers: {t['fired']} of {t['count']} warnings fired; lateness fired_at - "
          f"due_at p50 {t['p50_s']:.2f} s, p99 {t['p99_s']:.2f} s, max {t['max_s']:.2f} s "
          f"(seen committed: p50 {t['observed_p50_s']:.2f}, p99 "
          f"{t['observed_p99_s']:.2f} s); fired twice {t['fired_twice']}, failed "
          f"{t['failed']}, warnings skipped {t['warnings_skipped']}; line notifications "
          f"{t['notifications']} for {t['notified_tickets']} tickets"
          + ("" if t["state"] == "done" else f"  [{t['state'].upper()}]"), flush=True)
    print_log(t["log_errors"])
    return t


def _pg_summary(runs: list[dict]) -> dict:
    """A daemon count's runs: their medians, the timers of the run that had them, every
    run's check (the summary's check is ok only when all were)."""
    out = {"runs": runs, "daemons": runs[0]["daemons"],
           "timers": next(r["timers"] for r in runs if "timers" in r),
           "state": "done" if all(r["state"] == "done" for r in runs) else "not done",
           "check": {"ok": all(r["check"]["ok"] for r in runs)}}
    for key in ("accepted_rate", "ticketed_rate"):
        out[key] = statistics.median(r[key] for r in runs)
    return out


def pg_part(args: argparse.Namespace, corpus: Corpus, tmp: Path) -> dict:
    cpus = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    load1 = os.getloadavg()[0]
    free = usable - load1
    target = TARGET_SCALE_4CORES if free >= 4 else TARGET_SCALE_FEWER
    n = len(corpus.mails)
    print(f"\n(c) PostgreSQL: {', '.join(str(k) for k in args.daemons)} daemon(s) on one "
          f"database; os.cpu_count() {cpus}, usable {usable}, load average {load1:.2f} -> about "
          f"{max(free, 0):.1f} cores free: target 2 / 1 daemons >= {target}"
          + ("" if free >= 4 else " (fewer than 4 free cores: not below one daemon)"))
    print(f"    {n} mails over SMTP per configuration, {args.repeat} run(s) each, interleaved; "
          f"then {args.timers} timers due at once (in the last run); "
          f"timers.interval {args.timer_interval}")
    name = f"maildesk_e2e_{os.getpid()}"
    # The mail runs of each daemon count, interleaved (1, 2, 4, then 4, 2, 1 ...) like the runs
    # of (a) and (b), their medians compared: one run of each, minutes apart, made the 2 / 1
    # ratio follow the machine's drift (0.83-1.13 on the same code). Timers once per count, in
    # its last run.
    runs: dict[int, list[dict]] = {k: [] for k in args.daemons}
    for r in range(args.repeat):
        for k in (args.daemons if r % 2 == 0 else list(reversed(args.daemons))):
            runs[k].append(_pg_run(args, corpus, tmp, name, k, r,
                                   timers=r == args.repeat - 1))
    results: dict[str, dict] = {str(k): _pg_summary(rs) for k, rs in runs.items()}
    out: dict[str, Any] = {"cpus": cpus, "usable_cpus": usable, "load_average": round(load1, 2),
                           "free_cores": round(max(free, 0), 1), "scale_target": target,
                           "configs": results}
    one = results.get("1")
    if one:
        base_rate = one["ticketed_rate"]
        base_p99 = one["timers"]["p99_s"]
        skipped_one = set(one["timers"]["skipped_ordinals"])
        for k, r in results.items():
            r["ratio_ticketed"] = r["ticketed_rate"] / base_rate if base_rate else 0.0
            r["ratio_p99"] = (r["timers"]["p99_s"] / base_p99 if base_p99 > 0 else float("nan"))
            r["timers"]["skipped_beyond_one"] = len(set(r["timers"]["skipped_ordinals"])
                                                    - skipped_one)
        print(f"\n  {'daemons':>8}{'accepted/s':>12}{'ticketed/s':>12}{'x one':>7}"
              f"{'timer p50':>11}{'p99':>8}{'x one':>7}{'twice':>7}{'skipped':>9}  correct")
        for k, r in results.items():
            t = r["timers"]
            print(f"  {k:>8}{r['accepted_rate']:12.1f}{r['ticketed_rate']:12.1f}"
                  f"{r['ratio_ticketed']:7.2f}{t['p50_s']:10.2f}s{t['p99_s']:7.2f}s"
                  f"{r['ratio_p99']:7.2f}{t['fired_twice']:7d}{t['skipped_beyond_one']:9d}  "
                  f"{'ok' if r['check']['ok'] else 'NOT OK'}")
    return out


# == main =========================================================================================
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a small run: 300 mails, 1,000 timers (default 2,000 and 10,000)")
    ap.add_argument("--json", metavar="FILE", help="write figures, floors, ratios, targets")
    ap.add_argument("--db-url", help="also run part (c) on PostgreSQL through this admin URL, "
                    "e.g. postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--messages", type=int, help="mails per run")
    ap.add_argument("--timers", type=int, help="timers due at once (part c)")
    ap.add_argument("--daemons", default="1,2,4", help="daemon counts for part (c)")
    ap.add_argument("--timer-interval", default="1s",
                    help="timers.interval for part (c) (the example says 30s; 1s so the "
                    "lateness is the sweep's, not the poll's phase)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per side in (a) and (b), per daemon count in (c)")
    ap.add_argument("--shipped-caps", action="store_true",
                    help="keep autoreply.max_per_hour 100 / max_per_domain_per_hour 20")
    ap.add_argument("--deadline", type=float, default=1800.0,
                    help="seconds a daemon run may take at most")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: smtp,imap")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    n = args.messages or (300 if args.quick else 2000)
    args.timers = args.timers or (1000 if args.quick else 10_000)
    args.daemons = [int(k) for k in args.daemons.split(",") if k.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    load0 = os.getloadavg()
    with Timer() as t:
        corpus = build_corpus(n, args.seed, CLIENTS)
    print(f"corpus (seed {args.seed}): {describe_corpus(corpus.mails)}  "
          f"[generated in {t.seconds:.1f} s]")
    print(f"  {corpus.threads} threads ({sum(corpus.checked)} mails in the thread check, "
          f"{corpus.unresolved} whose thread could not be told); example configuration"
          + ("" if args.shipped_caps else
             f" with autoreply.max_per_hour and max_per_domain_per_hour {LIFTED_CAP:,} (the "
             "corpus packs a day of mail into a minute)")
          + f"; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} on "
          f"{os.cpu_count()} CPUs")
    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-e2e-"))
    report: dict[str, Any] = {"benchmark": "end_to_end", "quick": args.quick, "messages": n,
                              "seed": args.seed, "corpus": describe_corpus(corpus.mails),
                              "threads": corpus.threads, "clients": CLIENTS,
                              "shipped_caps": args.shipped_caps,
                              "load_average_start": [round(x, 2) for x in load0]}
    targets: list[dict] = []
    dovecot: Dovecot | None = None
    try:
        if "imap" not in skip or "smtp" not in skip:
            dovecot = Dovecot(tmp / "dovecot")
            dovecot.start()
        if "smtp" not in skip:
            assert dovecot is not None
            # The SMTP target's IMAP floor, measured beside the SMTP runs (smtp_part).
            dovecot.append_many("floor", [crlf(m.raw) for m in corpus.mails])
            report["smtp"] = smtp_part(args, corpus, tmp, dovecot)
        if "imap" not in skip:
            assert dovecot is not None
            report["imap"] = imap_part(args, corpus, tmp, dovecot)
        if dovecot is not None:
            dovecot.close()
            dovecot = None
        if args.db_url:
            report["postgres"] = pg_part(args, corpus, tmp)
    finally:
        if dovecot is not None:
            dovecot.close()
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- verdicts ---------------------------------------------------------------------------
    def target(name: str, figure: float, baseline: float | None, ratio: float, goal: float,
               what: str, at_most: bool = False) -> None:
        v = (verdict_max if at_most else verdict)(ratio, goal)
        targets.append({"target": name, "what": what, "figure": round(figure, 3),
                        "baseline": None if baseline is None else round(baseline, 3),
                        "ratio": round(ratio, 3), "goal": f"{'<=' if at_most else '>='} {goal}",
                        "verdict": v})

    floor = report.get("imap", {}).get("floor_rate")
    if "smtp" in report:
        s = report["smtp"]
        target("smtp_accepted", s["accepted_rate"], s["sink_rate"],
               s["accepted_rate"] / s["sink_rate"], TARGET_SMTP_ACCEPT,
               "SMTP accepted mails/s with processing running / bare aiosmtpd+SQLite sink")
        target("smtp_ticketed", s["ticketed_rate"], s["floor_rate"],
               s["ticketed_rate"] / s["floor_rate"], TARGET_SMTP_TICKETED,
               "SMTP all-ticketed mails/s / IMAP floor mails/s, floor runs beside the SMTP runs")
        target("smtp_correct", float(s["ok"]), None, float(s["ok"]), 1.0,
               "SMTP: nothing lost or doubled, one ticket per thread, autoreplies delivered once")
    if "runs" in report.get("imap", {}):
        i = report["imap"]
        target("imap_ticketed", i["ticketed_rate"], floor, i["ticketed_rate"] / floor,
               TARGET_IMAP_TICKETED, "IMAP all-ticketed mails/s / IMAP floor mails/s")
        target("imap_correct", float(i["ok"]), None, float(i["ok"]), 1.0,
               "IMAP: nothing lost or doubled, one ticket per thread, all flagged, autoreplies")
    pg = report.get("postgres")
    if pg and "1" in pg["configs"]:
        c = pg["configs"]
        if "2" in c:
            target("pg_scale_2", c["2"]["ticketed_rate"], c["1"]["ticketed_rate"],
                   c["2"]["ratio_ticketed"], pg["scale_target"],
                   f"PostgreSQL ticketed mails/s, 2 daemons / 1 ({pg['free_cores']} cores free)")
        for k in ("2", "4"):
            if k in c:
                target(f"pg_timer_p99_{k}", c[k]["timers"]["p99_s"], c["1"]["timers"]["p99_s"],
                       c[k]["ratio_p99"], TARGET_LATENESS,
                       f"timer lateness p99, {k} daemons / 1", at_most=True)
        twice = sum(r["timers"]["fired_twice"] for r in c.values())
        beyond = sum(r["timers"]["skipped_beyond_one"] for r in c.values())
        target("pg_timers_twice", twice, None, twice, 0, "timers fired twice (all configs)",
               at_most=True)
        target("pg_warnings_skipped", beyond, None, beyond, 0,
               "warnings skipped that one daemon sent (all configs)", at_most=True)
        ok = all(r["check"]["ok"] and r["state"] == "done" for r in c.values())
        target("pg_correct", float(ok), None, float(ok), 1.0,
               "PostgreSQL: nothing lost or doubled, one ticket per thread, every config")

    load1 = os.getloadavg()
    print(f"\nend_to_end ({n} mails, load average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} "
          f"on {os.cpu_count()} CPUs):")
    if "smtp" in report:
        s = report["smtp"]
        print(f"  SMTP: all accepted {s['accepted_s']:.1f} s ({s['accepted_rate']:.1f}/s, p50 "
              f"{s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms), all ticketed "
              f"{fmt_s(s['ticketed_s'])} ({s['ticketed_rate']:.1f}/s), all autoreplies "
              f"delivered {fmt_s(s['autoreplies_s'])}; floors: sink {s['sink_rate']:.1f}/s (p50 "
              f"{s['sink_p50_ms']:.1f} ms, p99 {s['sink_p99_ms']:.1f} ms), IMAP "
              f"{s['floor_rate']:.1f}/s (runs beside these)")
    if "runs" in report.get("imap", {}):
        i = report["imap"]
        print(f"  IMAP: all stored {fmt_s(i['stored_s'])}, flagged {fmt_s(i['flagged_s'])}, "
              f"all ticketed {fmt_s(i['ticketed_s'])} ({i['ticketed_rate']:.1f}/s), all "
              f"autoreplies delivered {fmt_s(i['autoreplies_s'])}")
    if floor:
        print(f"  IMAP floor (imapclient batched fetch + stdlib parse + one SQLite commit per "
              f"mail): {floor:.1f}/s")
    for tg in targets:
        base = "" if tg["baseline"] is None else f" vs {tg['baseline']}"
        print(f"  {tg['target']:20} {tg['figure']}{base}: {tg['ratio']}  target {tg['goal']}  "
              f"{tg['verdict']}   ({tg['what']})")
    if args.json:
        report["targets"] = targets
        report["load_average_end"] = [round(x, 2) for x in load1]
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
