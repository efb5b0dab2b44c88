"""SLA: what a business-time deadline costs 1 hour, 1 week and 1 year ahead, and the timer
sweep's query on a database of 1,000,000 open tickets with their pending timers.

(1) Deadlines. `WorkCalendar.add(start, duration)` (what `Target.due` calls for a business-time
target) on config/sla.yaml's "moscow" calendar (Europe/Moscow, Mon-Fri 09:00-18:00, RU public
holidays and moved working Saturdays), from S seeded random start instants spread over
2026-2027, for 1 hour, 1 week (`5d` = 45 business hours) and 1 year (`250d` = 250 working days
of 9 h = 2250 business hours). Warm: every year table the runs need is built before the clock
runs; each pass over the starts goes in chunks of 500, every chunk timed for each horizon in
turn (the order rotates), so a busy neighbour on the machine hits all three alike. Figure:
µs per call for 1 year; baseline: µs per call for 1 hour, same run. Target: 1y / 1h <= 20.
The cold costs are printed too: the very first call in the process (the holidays package
computes the years' holidays), a year table built on a fresh calendar, and the first call per
horizon on a fresh calendar. Untimed check: `between(s, add(s, d)) == d` for every start and
horizon. `between(s, add(s, d))` is timed for information.

(2) Timer sweep. A database (a SQLite file in a temp dir, or with `--db-url` a scratch
PostgreSQL database maildesk_bench_sla_<pid> created through that URL and dropped at the end),
migrated with `maildesk.app.upgrade_database`, holding T open tickets (1,000,000; 50,000 with
`--quick`) with their pending timers (first_response warning + breach, resolution warning +
breach and, on lines with an OLA, the OLA move: about 4.75 per ticket), loaded in bulk
(executemany / COPY, secondary indexes and, on PostgreSQL, foreign keys dropped during the load
and rebuilt after; PostgreSQL gets VACUUM ANALYZE as autovacuum would; SQLite no ANALYZE, as
maildesk runs none). At the sweep time (Wed 2027-03-17 11:30 Moscow) D = 200 timers are due,
all fallen due within the last hour (an hour's outage of the timer process): they belong to
tickets whose rows and timers come from the real `schedule()` of the loaded settings, so
firing them does what the daemon would (warnings, breaches, escalations, rearming); the other
tickets' timers fall due over the 60 days after it. Measured, each sample in its own
transaction (BEGIN outside the clock, rolled back after, so every sample sees the same due set):

  (a) figure: what fire_due runs to find the due timers, `due_timers(session, now, 200)` of
      maildesk.effects.timers (the due timers' ids and tickets, through the Session); baseline:
      the hand-written `SELECT id FROM ticket_timer WHERE state = 'pending' AND
      due_at <= :now ORDER BY due_at LIMIT 200` through the same Session
      (`session.execute(text(...)).all()`). Target: figure / baseline <= 2. For information
      both statements are also run on the bare DBAPI cursor (the SQL alone, no SQLAlchemy),
      and on PostgreSQL the bare SELECT with FOR UPDATE SKIP LOCKED and the due SELECT followed
      by the per-ticket `FOR UPDATE SKIP LOCKED` that fire_due takes before firing each timer,
      to show what row locks cost. The plans (EXPLAIN QUERY PLAN / EXPLAIN (ANALYZE, BUFFERS))
      are printed once with whether ix_ticket_timer_state_due is used and whether a sort is needed.
  (b) information: one full `fire_due(session, settings, composer, now, limit=200)` sweep
      plus the final flush (what the commit would write; the commit itself is not timed: it
      is rolled back), per fired timer. It includes composing and queueing the line
      notifications (template rendering, MIME building), the events and the rearming.

Settings are loaded from a temp copy of config/ pointed at the database, so the lines,
policies and templates are the project's. Exit status 0 unless the benchmark itself breaks.

    .venv/bin/python benchmarks/sla.py [--quick] [--json out.json] [--db-url URL] [--seed S]
                                       [--repeat R] [--samples Q] [--tickets T] [--due D]
                                       [--skip-sweep] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from random import Random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from common import (DOMAINS, EN_FIRST, EN_LAST, EN_SENTENCES, EN_TOPICS, ROOT, RU_FIRST, RU_LAST,
                    RU_SENTENCES, RU_TOPICS, SUPPORT, TRANSLIT, Stamps, Timer, bulk_load_postgres,
                    bulk_load_sqlite, message_id_for, statements_sent, write_config_set,
                    write_json)

TARGET_DEADLINE = 20.0     # µs per 1-year deadline / µs per 1-hour deadline, at most
TARGET_SWEEP = 2.0         # maildesk's sweep query / bare indexed SELECT, at most
CHUNK_STARTS = 500         # starts timed for one horizon, then for the next
LOAD_CHUNK = 50_000        # tickets per executemany / COPY batch
SWEEP_LIMIT = 200          # fire_due's default batch (maildesk.app.TIMER_BATCH)
# The sweep time: a Wednesday, 11:30 in Moscow, in working hours, no holiday near.
NOW = datetime(2027, 3, 17, 8, 30, tzinfo=timezone.utc)
OUTAGE = timedelta(hours=1)          # the due timers fell due within this long before NOW
BULK_CREATED = timedelta(days=60)    # the other tickets were created over this long before NOW
BULK_AHEAD = timedelta(days=60)      # ... and their timers fall due over this long after NOW
CALENDAR = "moscow"
HORIZONS = (("1h", "1h"), ("1w", "5d"), ("1y", "250d"))   # label, business duration as written
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def verdict_max(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def profile_text(profiler: cProfile.Profile, lines: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(lines)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(lines // 2)
    return out.getvalue()


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return "   runs " + ", ".join(fmt.format(v) for v in values) if len(values) > 1 else ""


# == (1) deadlines ================================================================================
@dataclass
class DeadlineResult:
    durations: dict[str, timedelta]
    add_us: dict[str, list[float]]          # per run
    between_us: dict[str, list[float]]
    cold: dict[str, Any]
    mismatches: list[str]
    starts: int
    profile: str = ""


def random_starts(rng: Random, count: int) -> list[datetime]:
    lo = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    hi = datetime(2028, 1, 1, tzinfo=timezone.utc).timestamp()
    return [datetime.fromtimestamp(int(rng.uniform(lo, hi)), timezone.utc)
            .replace(microsecond=rng.randrange(1_000_000)) for _ in range(count)]


def deadline_benchmark(spec: dict[str, Any], starts: list[datetime], repeat: int, cold_k: int,
                       profile: bool) -> DeadlineResult:
    from maildesk.sla.calendar import calendar_from_config
    from maildesk.sla.policy import business_duration

    # Cold, first: nothing in this process has asked the holidays package for a year yet.
    cold: dict[str, Any] = {}
    fresh = calendar_from_config(CALENDAR, spec)
    durations = {label: business_duration(text, fresh) for label, text in HORIZONS}
    t0 = time.perf_counter()
    fresh.add(starts[0], durations["1y"])
    cold["process_first_1y_ms"] = (time.perf_counter() - t0) * 1e3
    cold["process_first_years"] = sorted(fresh._years)
    builds = []
    for k in range(cold_k):
        cal = calendar_from_config(CALENDAR, spec)
        t0 = time.perf_counter()
        cal._year(2026 + k % 2)
        builds.append((time.perf_counter() - t0) * 1e3)
    cold["year_table_ms"] = statistics.median(builds)
    for label in durations:
        firsts = []
        for k in range(cold_k):
            cal = calendar_from_config(CALENDAR, spec)
            s = starts[(k * 7919) % len(starts)]
            t0 = time.perf_counter()
            cal.add(s, durations[label])
            firsts.append((time.perf_counter() - t0) * 1e6)
        cold[f"first_call_{label}_us"] = statistics.median(firsts)

    # Warm: one untimed pass builds every year table the runs need, and checks the arithmetic.
    cal = calendar_from_config(CALENDAR, spec)
    mismatches = []
    dues: dict[str, list[datetime]] = {}
    for label, d in durations.items():
        dues[label] = [cal.add(s, d) for s in starts]
        for s, due in zip(starts, dues[label]):
            got = cal.between(s, due)
            if got != d and len(mismatches) < 20:
                mismatches.append(f"{label} from {s.isoformat()}: add -> {due.isoformat()}, "
                                  f"between -> {got} (expected {d})")
    add_us: dict[str, list[float]] = {label: [] for label in durations}
    between_us: dict[str, list[float]] = {label: [] for label in durations}
    labels = list(durations)
    add, between = cal.add, cal.between
    for r in range(repeat):
        spent = dict.fromkeys(labels, 0.0)
        spent_between = dict.fromkeys(labels, 0.0)
        for c, i in enumerate(range(0, len(starts), CHUNK_STARTS)):
            chunk = starts[i:i + CHUNK_STARTS]
            order = labels[c % 3:] + labels[:c % 3]
            for label in order:
                d = durations[label]
                t0 = time.perf_counter()
                for s in chunk:
                    add(s, d)
                spent[label] += time.perf_counter() - t0
            for label in order:
                pairs = list(zip(chunk, dues[label][i:i + CHUNK_STARTS]))
                t0 = time.perf_counter()
                for s, e in pairs:
                    between(s, e)
                spent_between[label] += time.perf_counter() - t0
        for label in labels:
            add_us[label].append(spent[label] / len(starts) * 1e6)
            between_us[label].append(spent_between[label] / len(starts) * 1e6)
        print(f"  deadlines run {r + 1}/{repeat}: add " + ", ".join(
            f"{label} {add_us[label][-1]:.1f} µs" for label in labels)
            + f" (1y/1h {add_us['1y'][-1] / add_us['1h'][-1]:.2f}); between "
            + ", ".join(f"{label} {between_us[label][-1]:.1f} µs" for label in labels), flush=True)
    prof = ""
    if profile:
        profiler = cProfile.Profile()
        d = durations["1y"]
        profiler.enable()
        for s in starts:
            add(s, d)
        profiler.disable()
        prof = profile_text(profiler, 20)
    return DeadlineResult(durations, add_us, between_us, cold, mismatches, len(starts), prof)


# == (2) the timer sweep: seed data ===============================================================
TICKET_COLS = ("id", "number", "reply_token", "subject", "subject_key", "status", "priority",
               "line", "language", "requester", "requester_name", "mailbox", "created_at",
               "updated_at", "last_activity_at", "first_response_due_at", "resolution_due_at",
               "sla_policy", "line_entered_at", "first_responded_at")
TIMER_COLS = ("id", "ticket_id", "kind", "stage", "due_at", "state", "data", "created_at")
PARTICIPANT_COLS = ("id", "ticket_id", "address", "name", "role")
MESSAGE_COLS = ("id", "ticket_id", "direction", "role", "message_id", "from_address",
                "from_name", "to", "cc", "subject", "sent_at", "received_at", "body_text",
                "has_html", "thread_reason", "internal", "defects")
TABLES = ("ticket", "ticket_timer", "participant", "message")
COLS = (TICKET_COLS, TIMER_COLS, PARTICIPANT_COLS, MESSAGE_COLS)
PRIORITIES = ("P1", "P2", "P3", "P3", "P4")
LINES = ("line1", "line1", "line1", "line2", "line3")


@dataclass
class DueTicket:
    created: datetime
    priority: str
    line: str
    status: str
    answered: datetime | None
    first_response: datetime | None
    resolution: datetime | None
    timers: list[Any]          # TimerSpec
    due: list[Any]             # the TimerSpecs due at NOW


@dataclass
class Plan:
    tickets: int
    due_count: int
    due_tickets: dict[int, DueTicket]        # index (id - 1) -> ticket
    due_kinds: Counter = field(default_factory=Counter)
    tries: int = 0


def plan_due(settings: Any, tickets: int, due: int, rng: Random) -> Plan:
    """Tickets whose timers (from the real schedule) make exactly `due` timers due at NOW,
    every one of them fallen due within OUTAGE; placed among the bulk tickets by creation."""
    from maildesk.db.models import TicketStatus
    from maildesk.sla.schedule import SlaState, schedule

    lines = {line.id: line for line in settings.lines}
    span = BULK_CREATED.total_seconds()
    t0 = NOW - BULK_CREATED
    plan = Plan(tickets, 0, {})
    while plan.due_count < due:
        plan.tries += 1
        if plan.tries > 1_000_000:
            raise SystemExit(f"could not place {due} due timers (placed {plan.due_count})")
        created = (NOW - timedelta(seconds=rng.uniform(600, 14 * 86400))).replace(
            microsecond=rng.randrange(1_000_000))
        priority, line = rng.choice(PRIORITIES), rng.choice(LINES)
        status = TicketStatus.NEW if rng.random() < 0.4 else TicketStatus.OPEN
        # Most tickets older than a day have had their first answer.
        answered = (created + timedelta(seconds=rng.uniform(300, 7200))
                    if NOW - created > timedelta(days=1) and rng.random() < 0.8 else None)
        state = SlaState(status=TicketStatus.OPEN if answered else status, priority=priority,
                         policy="standard", line=line, created_at=created,
                         line_entered_at=created, first_responded_at=answered)
        sched = schedule(state, policies=settings.sla_policies, lines=lines,
                         close_after=settings.close_after)
        fallen = [t for t in sched.timers if t.due_at <= NOW]
        if (not fallen or min(t.due_at for t in fallen) <= NOW - OUTAGE
                or plan.due_count + len(fallen) > due):
            continue
        index = min(tickets - 1, max(0, int((created - t0).total_seconds() / span * tickets)))
        while index in plan.due_tickets:
            index = (index + 1) % tickets
        plan.due_tickets[index] = DueTicket(created, priority, line, state.status.value,
                                            answered, sched.first_response, sched.resolution,
                                            list(sched.timers), fallen)
        plan.due_count += len(fallen)
        plan.due_kinds.update(f"{t.kind} {t.stage}" for t in fallen)
    return plan


def seed_rows(plan: Plan, seed: int, first_number: int, stamps: Stamps
              ) -> Iterator[tuple[list, list, list, list]]:
    """Chunks of (ticket, ticket_timer, participant, message) rows: `plan.tickets` open tickets
    created over BULK_CREATED before NOW, numbered in creation order; the bulk tickets' timers
    fall due over BULK_AHEAD after NOW, the planned tickets' are their real schedule. The
    planned tickets also get their client as participant and the client's mail as message
    (what the line notification shows as history)."""
    rng = Random(seed)
    rand = rng.random
    count = plan.tickets
    now_s = int((NOW - _EPOCH).total_seconds())
    t0 = now_s - int(BULK_CREATED.total_seconds())
    span = BULK_CREATED.total_seconds()
    ahead = BULK_AHEAD.total_seconds()
    people: list[tuple[str, str, str]] = []
    for i in range(max(100, count // 5)):      # about five tickets per client
        if rand() < 0.6:
            first, last = rng.choice(RU_FIRST), rng.choice(RU_LAST)
            local = f"{first.lower().translate(TRANSLIT)}.{last.lower().translate(TRANSLIT)}.{i}"
            people.append((f"{local}@{rng.choice(DOMAINS)}", f"{first} {last}", "ru"))
        else:
            first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
            people.append((f"{first}.{last}.{i}@{rng.choice(DOMAINS)}".lower(),
                           f"{first} {last}", "en"))
    topics = {"ru": RU_TOPICS, "en": EN_TOPICS}
    sentences = {"ru": RU_SENTENCES, "en": EN_SENTENCES}
    ola = {"line1": True, "line2": True, "line3": False}
    tickets: list[tuple] = []
    timers: list[tuple] = []
    participants: list[tuple] = []
    messages: list[tuple] = []
    timer_id = extra_id = 0
    sec, iso = stamps.sec, stamps.iso
    for i in range(count):
        tid = i + 1
        address, name, lang = people[int(rand() * len(people))]
        topic = topics[lang][int(rand() * len(topics[lang]))]
        store = int(rand() * 5000) + 1
        subject = (f"{topic}, магазин {store}, обращение {i}" if lang == "ru"
                   else f"{topic} (store {store}, case {i})")
        token = f"{rng.getrandbits(24):06x}"
        planned = plan.due_tickets.get(i)
        if planned is None:
            created = t0 + int(span * i / count + rand() * 60)
            created_ts = sec(created)
            priority, line = PRIORITIES[int(rand() * 5)], LINES[int(rand() * 5)]
            status = "new" if rand() < 0.4 else "open"
            frw = now_s + 60 + int(rand() * ahead * 0.5)
            frb = frw + 600 + int(rand() * 2 * 86400)
            rsw = frb + int(rand() * 5 * 86400)
            rsb = rsw + 600 + int(rand() * 5 * 86400)
            tickets.append((tid, first_number + i, token, subject, subject.casefold(), status,
                            priority, line, lang, address, name, SUPPORT, created_ts, created_ts,
                            created_ts, sec(frb), sec(rsb), "standard", created_ts, None))
            for kind, w, b in (("first_response", frw, frb), ("resolution", rsw, rsb)):
                timer_id += 1
                timers.append((timer_id, tid, kind, "warning", sec(w), "pending",
                               f'{{"deadline": "{kind}", "due": "{iso(b)}", "share": 0.8, '
                               f'"key": ""}}', created_ts))
                timer_id += 1
                timers.append((timer_id, tid, kind, "breach", sec(b), "pending",
                               f'{{"deadline": "{kind}", "due": "{iso(b)}", "key": ""}}',
                               created_ts))
            if ola[line]:
                timer_id += 1
                timers.append((timer_id, tid, "ola", "due",
                               sec(now_s + 60 + int(rand() * ahead * 0.2)), "pending",
                               f'{{"line": "{line}", "key": "{line}@{iso(created)}"}}',
                               created_ts))
        else:
            created_ts = stamps.dt(planned.created)
            tickets.append((tid, first_number + i, token, subject, subject.casefold(),
                            planned.status, planned.priority, planned.line, lang, address, name,
                            SUPPORT, created_ts, created_ts, created_ts,
                            stamps.dt(planned.first_response), stamps.dt(planned.resolution),
                            "standard", created_ts, stamps.dt(planned.answered)))
            for spec in planned.timers:
                timer_id += 1
                timers.append((timer_id, tid, spec.kind, spec.stage, stamps.dt(spec.due_at),
                               "pending", json.dumps({**spec.data, "key": spec.key}),
                               created_ts))
            extra_id += 1
            participants.append((extra_id, tid, address, name, "client"))
            body = "\n".join(rng.choice(sentences[lang]) for _ in range(rng.randint(2, 6)))
            messages.append((extra_id, tid, "in", "client",
                             message_id_for(rng, address.rpartition("@")[2]), address, name,
                             f'["{SUPPORT}"]', "[]", subject, created_ts, created_ts, body,
                             False, "new", False, "[]"))
        if len(tickets) == LOAD_CHUNK:
            yield tickets, timers, participants, messages
            tickets, timers, participants, messages = [], [], [], []
    if tickets:
        yield tickets, timers, participants, messages


def load_sqlite(path: Path, rows: Iterator[tuple[list, ...]], counter: int) -> int:
    """common.bulk_load_sqlite: one transaction, executemany per chunk, synchronous=OFF, the
    secondary indexes dropped during the load and rebuilt after (same names and definitions);
    left in WAL mode. Returns the timers loaded."""
    return bulk_load_sqlite(path, list(zip(TABLES, COLS)), rows,
                            counters={"ticket": counter}).rows["ticket_timer"]


def load_postgres(conninfo: str, rows: Iterator[tuple[list, ...]], counter: int) -> int:
    """common.bulk_load_postgres: COPY with the secondary indexes and foreign keys of the
    loaded tables dropped and rebuilt (same names and definitions), the id sequences moved past
    the loaded ids, the counter set, then VACUUM ANALYZE (as autovacuum would)."""
    return bulk_load_postgres(conninfo, list(zip(TABLES, COLS)), rows,
                              counters={"ticket": counter}).rows["ticket_timer"]


# == (2) the timer sweep: databases ===============================================================
class SqliteDb:
    name = "SQLite"

    def __init__(self, tmp: Path):
        self.path = tmp / "sla.db"
        self.url = f"sqlite:///{self.path}"

    def load(self, rows: Iterator[tuple[list, ...]], counter: int) -> int:
        return load_sqlite(self.path, rows, counter)

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

    def cleanup(self) -> None:
        pass


class PostgresDb:
    name = "PostgreSQL"

    def __init__(self, admin_url: str):
        import psycopg

        self.psycopg = psycopg
        parts = urlsplit(admin_url.replace("postgresql+psycopg://", "postgresql://")
                         .replace("postgres://", "postgresql://"))
        self.admin = urlunsplit(parts)
        self.dbname = f"maildesk_bench_sla_{os.getpid()}"
        self.url = urlunsplit(parts._replace(path="/" + self.dbname))
        self.created = False

    def _admin(self, sql: str) -> None:
        with self.psycopg.connect(self.admin, autocommit=True) as con:
            con.execute(sql)

    def create(self) -> None:
        self._admin(f'CREATE DATABASE "{self.dbname}"')
        self.created = True

    def load(self, rows: Iterator[tuple[list, ...]], counter: int) -> int:
        return load_postgres(self.url, rows, counter)

    def size(self) -> int:
        with self.psycopg.connect(self.admin) as con:
            return con.execute("SELECT pg_database_size(%s)", (self.dbname,)).fetchone()[0]

    def cleanup(self) -> None:
        if self.created:
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                self.created = False
            except Exception as exc:  # report it; the run's figures stand
                print(f"warning: could not drop {self.dbname}: {exc}", file=sys.stderr)


# == (2) the timer sweep: measurements ============================================================
BARE = ("SELECT id FROM ticket_timer WHERE state = 'pending' AND due_at <= :now "
        "ORDER BY due_at LIMIT 200")
BARE_LOCKED = BARE + " FOR UPDATE SKIP LOCKED"


@dataclass
class SweepResult:
    db: str
    tickets: int
    timers: int
    due: int
    due_kinds: dict[str, int]
    load_seconds: float
    db_bytes: int
    samples: dict[str, list[float]]       # ms per sample, all runs
    per_run: dict[str, list[float]]       # median ms per run
    sweep_ms: list[float]
    sweep_cpu_ms: list[float]
    fired: list[int]
    outcome: dict[str, int]
    statements: dict[str, int]
    plans: dict[str, dict[str, Any]]
    checks: list[str]
    profile: str = ""


class Sweep:
    """The measured statements against one loaded database."""

    def __init__(self, settings: Any):
        from sqlalchemy import bindparam, text

        from maildesk.db.models import UTCDateTime
        from maildesk.db.session import make_engine, make_sessionmaker
        from maildesk.outbound.compose import Composer

        self.settings = settings
        self.engine = make_engine(settings.database)
        self.make_session = make_sessionmaker(self.engine)
        self.composer = Composer(settings.templates_dir)
        self.postgres = self.engine.dialect.name == "postgresql"
        self.bare = text(BARE).bindparams(bindparam("now", type_=UTCDateTime()))
        self.bare_locked = text(BARE_LOCKED).bindparams(bindparam("now", type_=UTCDateTime()))
        # The statements as the driver sees them, for the bare-cursor runs and the plans.
        self.sql: dict[str, list[tuple[str, Any]]] = {}
        for name, run in (("query", self._query), ("bare", self._bare), ("ids", self._ids),
                          ("bare_locked", self._bare_locked)):
            if name == "bare_locked" and not self.postgres:
                continue
            with statements_sent(self.engine) as seen:
                self.sample(run)
            # The statements of the run (two for the sweep on PostgreSQL: due, then locks).
            self.sql[name] = [s for s in seen if "ticket" in s[0]]

    # -- what is timed --------------------------------------------------------------------
    def _query(self, session: Any) -> list[Any]:
        from maildesk.effects.timers import due_timers

        return due_timers(session, NOW, SWEEP_LIMIT)

    def _ids(self, session: Any) -> list[Any]:
        # On PostgreSQL the due query itself locks the tickets (fire_due's claim).
        return self._query(session)

    def _bare(self, session: Any) -> list[Any]:
        return session.execute(self.bare, {"now": NOW}).all()

    def _bare_locked(self, session: Any) -> list[Any]:
        return session.execute(self.bare_locked, {"now": NOW}).all()

    def _fire(self, session: Any) -> int:
        from maildesk.effects.timers import fire_due

        fired = fire_due(session, self.settings, self.composer, NOW, limit=SWEEP_LIMIT)
        session.flush()   # what the commit would still write
        return fired

    def sample(self, fn: Callable[[Any], Any],
               after: Callable[[Any, Any], None] | None = None) -> tuple[float, Any]:
        """Seconds `fn(session)` takes in a fresh transaction (begun outside the clock: BEGIN
        IMMEDIATE on SQLite, as maildesk's sessions do), rolled back after; the process's CPU
        seconds in `self.cpu`."""
        session = self.make_session()
        try:
            session.begin()
            session.connection()
            c0 = time.process_time()
            t0 = time.perf_counter()
            result = fn(session)
            seconds = time.perf_counter() - t0
            self.cpu = time.process_time() - c0
            if after is not None:
                after(session, result)
            return seconds, result
        finally:
            session.rollback()
            session.close()

    def raw_sample(self, name: str) -> tuple[float, list[Any]]:
        """The same statement(s) on the bare DBAPI cursor, in a transaction opened before."""
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if not self.postgres else "SELECT 1")
            if self.postgres:
                cur.fetchall()
            t0 = time.perf_counter()
            for statement, parameters in self.sql[name]:
                cur.execute(statement, parameters)
                rows = cur.fetchall()
            seconds = time.perf_counter() - t0
            if self.postgres:
                conn.rollback()
            else:
                cur.execute("ROLLBACK")
            return seconds, rows
        finally:
            conn.close()

    # -- what is printed once -------------------------------------------------------------
    def plan(self, name: str) -> dict[str, Any]:
        statement, parameters = self.sql[name][0]
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            if self.postgres:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                lines = [row[0] for row in cur.fetchall()]
                conn.rollback()
                nodes = [line.strip().lstrip("->").strip() for line in lines]
                full_sort = any(re.match(r"Sort\s+\(", n) for n in nodes)
                incremental = any(n.startswith("Incremental Sort") for n in nodes)
                sort = "full sort" if full_sort else ("incremental sort (presorted by the "
                                                      "index)" if incremental else "none")
                uses = (any(re.match(r"(Index Scan|Index Only Scan|Bitmap Index Scan) "
                                     r"(using|on) ix_ticket_timer_state_due", n) for n in nodes)
                        and not any("Seq Scan" in n for n in nodes))
            else:
                cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                lines = [row[-1] for row in cur.fetchall()]
                sort = "temp b-tree" if any("TEMP B-TREE" in x for x in lines) else "none"
                uses = any(re.match(r"SEARCH ticket_timer USING (COVERING )?INDEX "
                                    r"ix_ticket_timer_state_due ", x) for x in lines)
        finally:
            conn.close()
        return {"statement": statement, "plan": lines, "uses_index": uses, "sort": sort}

    def count_statements(self, fn: Callable[[Any], Any]) -> tuple[Counter, Any]:
        """One untimed `fn` with its SQL statements counted by kind, then `_outcome`."""
        counter: Counter = Counter()

        def counted(session: Any) -> Any:
            with statements_sent(self.engine) as seen:
                result = fn(session)
            counter.update(statement.lstrip().split(None, 1)[0].upper() for statement, _ in seen)
            return result
        _, result = self.sample(counted, self._outcome)
        return counter, result

    def _outcome(self, session: Any, fired: int) -> None:
        from sqlalchemy import func, select

        from maildesk.db.models import Outbox, TicketEvent, TicketTimer, TimerState

        self.last_outcome = {f"event {kind}": n for kind, n in session.execute(
            select(TicketEvent.kind, func.count()).where(TicketEvent.at == NOW)
            .group_by(TicketEvent.kind))}
        self.last_outcome["outbox rows queued"] = session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.created_at == NOW))
        self.last_outcome["timers armed"] = session.scalar(
            select(func.count()).select_from(TicketTimer).where(TicketTimer.created_at == NOW))
        self.last_outcome["timers cancelled"] = session.scalar(
            select(func.count()).select_from(TicketTimer)
            .where(TicketTimer.state == TimerState.CANCELLED))

    def close(self) -> None:
        self.engine.dispose()


def sweep_benchmark(args: argparse.Namespace, tmp: Path, tickets: int, repeat: int,
                    samples: int) -> SweepResult:
    from maildesk.app import upgrade_database
    from maildesk.config.model import load_settings

    db: SqliteDb | PostgresDb = PostgresDb(args.db_url) if args.db_url else SqliteDb(tmp)
    sweep: Sweep | None = None
    try:
        if isinstance(db, PostgresDb):
            db.create()
        settings = load_settings(write_config_set(tmp / "config", db.url))
        upgrade_database(settings)
        stamps = Stamps(sqlite=isinstance(db, SqliteDb))
        with Timer() as t_plan:
            plan = plan_due(settings, tickets, args.due, Random(args.seed + 1))
        print(f"due set: {plan.due_count} timers on {len(plan.due_tickets)} tickets from their "
              f"real schedule ({plan.tries} tries, {t_plan.seconds:.1f} s): "
              + ", ".join(f"{k} {v}" for k, v in sorted(plan.due_kinds.items())), flush=True)
        with Timer() as t_load:
            timers = db.load(seed_rows(plan, args.seed, settings.first_ticket_number, stamps),
                             settings.first_ticket_number + tickets - 1)
        size = db.size()
        print(f"database: {db.name}; loaded {tickets:,} open tickets, {timers:,} pending timers "
              f"in {t_load.seconds:.1f} s; {size / 1e6:.0f} MB", flush=True)

        sweep = Sweep(settings)
        checks = []
        _, found = sweep.sample(sweep._query)
        _, bare_ids = sweep.sample(lambda session: [row[0] for row in sweep._bare(session)])
        same = set(found) == set(bare_ids)
        checks.append(f"sweep query finds {len(found)} due timers, the bare SELECT {len(bare_ids)}"
                      f"; same rows: {'yes' if same else 'NO'}")
        if len(found) != plan.due_count:
            checks.append(f"WARNING: expected {plan.due_count} due timers")
        plans = {name: sweep.plan(name) for name in sweep.sql}
        for name, p in plans.items():
            if name == "ids":
                continue
            print(f"plan of the {'sweep query' if name == 'query' else name.replace('_', ' ')}"
                  f" ({'EXPLAIN (ANALYZE, BUFFERS)' if sweep.postgres else 'EXPLAIN QUERY PLAN'}"
                  f"): uses ix_ticket_timer_state_due: {'yes' if p['uses_index'] else 'NO'}; "
                  f"sort: {p['sort']}")
            if name == "query":
                print("    " + p["statement"].replace("\n", " "))
            for line in p["plan"]:
                print(f"    | {line}")

        # Warm-up (statement caches, the composer's templates, the OS page cache), untimed;
        # it also counts the statements of one sweep and what it did.
        for _ in range(5):
            sweep.sample(sweep._query)
            sweep.sample(sweep._bare)
        statements, fired_warm = sweep.count_statements(sweep._fire)
        outcome = dict(sweep.last_outcome)
        print(f"warm-up sweep: fired {fired_warm}; " + ", ".join(
            f"{k} {v}" for k, v in sorted(outcome.items())) + "; SQL statements " + ", ".join(
            f"{k} {v}" for k, v in statements.most_common()), flush=True)

        kinds = ["query", "bare", "raw_query", "raw_bare", "ids"] + (
            ["bare_locked", "raw_bare_locked"] if sweep.postgres else [])
        runners: dict[str, Callable[[], float]] = {
            "query": lambda: sweep.sample(sweep._query)[0],
            "bare": lambda: sweep.sample(sweep._bare)[0],
            "raw_query": lambda: sweep.raw_sample("query")[0],
            "raw_bare": lambda: sweep.raw_sample("bare")[0],
            "ids": lambda: sweep.sample(sweep._ids)[0],
            "bare_locked": lambda: sweep.sample(sweep._bare_locked)[0],
            "raw_bare_locked": lambda: sweep.raw_sample("bare_locked")[0],
        }
        all_samples: dict[str, list[float]] = {k: [] for k in kinds}
        per_run: dict[str, list[float]] = {k: [] for k in kinds}
        sweep_ms: list[float] = []
        sweep_cpu_ms: list[float] = []
        fired: list[int] = []
        for r in range(repeat):
            run: dict[str, list[float]] = {k: [] for k in kinds}
            for q in range(samples):
                order = kinds if q % 2 == 0 else kinds[::-1]
                for k in order:
                    run[k].append(runners[k]() * 1e3)
            for k in kinds:
                all_samples[k].extend(run[k])
                per_run[k].append(statistics.median(run[k]))
            seconds, n = sweep.sample(sweep._fire)
            sweep_ms.append(seconds * 1e3)
            sweep_cpu_ms.append(sweep.cpu * 1e3)
            fired.append(n)
            print(f"  sweep run {r + 1}/{repeat}: sweep query {per_run['query'][-1]:.3f} ms, "
                  f"bare SELECT {per_run['bare'][-1]:.3f} ms (ratio "
                  f"{per_run['query'][-1] / per_run['bare'][-1]:.2f}); SQL alone "
                  f"{per_run['raw_query'][-1]:.3f} / {per_run['raw_bare'][-1]:.3f} ms; "
                  f"fire_due {seconds * 1e3:.0f} ms for {n} timers "
                  f"({seconds * 1e3 / max(n, 1):.2f} ms/timer, CPU of this process "
                  f"{sweep.cpu * 1e3 / max(n, 1):.2f} ms/timer)", flush=True)
        prof = ""
        if args.profile:
            profiler = cProfile.Profile()

            def profiled(session: Any) -> int:
                profiler.enable()
                try:
                    return sweep._fire(session)
                finally:
                    profiler.disable()
            sweep.sample(profiled)
            prof = "cProfile of one fire_due sweep (+ flush):\n\n" + profile_text(profiler, 35)
            profiler = cProfile.Profile()

            def queries(session: Any) -> None:
                profiler.enable()
                for _ in range(50):
                    sweep._query(session)
                profiler.disable()
            sweep.sample(queries)
            prof += ("\ncProfile of the sweep query as fire_due runs it, 50 times in one "
                     "transaction:\n\n" + profile_text(profiler, 25))
        return SweepResult(db.name, tickets, timers, plan.due_count, dict(plan.due_kinds),
                           t_load.seconds, size, all_samples, per_run, sweep_ms, sweep_cpu_ms,
                           fired, outcome,
                           dict(statements), plans, checks, prof)
    finally:
        if sweep is not None:
            sweep.close()
        db.cleanup()


# == main ==========================================================================================
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small run (under a minute): 2,000 starts, 50,000 tickets")
    ap.add_argument("--json", metavar="FILE", help="write figures, baseline, ratio, target as JSON")
    ap.add_argument("--db-url", help="sweep on PostgreSQL: an admin URL such as "
                    "postgresql://postgres@127.0.0.1:5432/test (a scratch database is created "
                    "and dropped)")
    ap.add_argument("--tickets", type=int, help="open tickets (overrides --quick)")
    ap.add_argument("--due", type=int, default=SWEEP_LIMIT, help="timers due at the sweep time")
    ap.add_argument("--starts", type=int, help="deadline start instants (overrides --quick)")
    ap.add_argument("--repeat", type=int, help="interleaved runs of each measurement "
                    "(default 5, or 3 with --quick); medians are reported")
    ap.add_argument("--samples", type=int, help="samples of each sweep query per run "
                    "(default 30, or 15 with --quick)")
    ap.add_argument("--seed", type=int, default=1, help="start instants and seed-data seed")
    ap.add_argument("--skip-sweep", action="store_true", help="only the deadlines")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the 1-year deadlines, a fire_due sweep and the sweep query")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite file, config)")
    args = ap.parse_args()
    tickets = args.tickets if args.tickets is not None else (50_000 if args.quick else 1_000_000)
    n_starts = args.starts or (2000 if args.quick else 20_000)
    repeat = args.repeat or (3 if args.quick else 5)
    samples = args.samples or (15 if args.quick else 30)

    import maildesk.sla.calendar

    cal_file = Path(maildesk.sla.calendar.__file__)
    print(f"calendar: {cal_file}; config/sla.yaml calendar {CALENDAR!r}")
    spec = yaml.safe_load((ROOT / "config" / "sla.yaml").read_text(encoding="utf-8"))[
        "calendars"][CALENDAR]
    starts = random_starts(Random(args.seed), n_starts)
    dl = deadline_benchmark(spec, starts, repeat, 10 if args.quick else 20, args.profile)
    med_add = {k: statistics.median(v) for k, v in dl.add_us.items()}
    med_between = {k: statistics.median(v) for k, v in dl.between_us.items()}
    dl_ratio = med_add["1y"] / med_add["1h"]
    dl_verdict = verdict_max(dl_ratio, TARGET_DEADLINE)
    if dl.mismatches:
        dl_verdict = "MISS"

    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-sla-"))
    sw: SweepResult | None = None
    try:
        if not args.skip_sweep:
            sw = sweep_benchmark(args, tmp, tickets, repeat, samples)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- report --------------------------------------------------------------------------------
    print(f"\n(1) deadlines on {CALENDAR!r}: WorkCalendar.add from {dl.starts:,} starts over "
          f"2026-2027, median of {repeat} interleaved run(s), warm year tables")
    for label, text in HORIZONS:
        role = "baseline" if label == "1h" else "figure  " if label == "1y" else "        "
        hours = dl.durations[label].total_seconds() / 3600
        what = f"{label} ahead ({text} = {hours:g} h of business time):"
        print(f"{role} {what:<40} {med_add[label]:7.2f} µs/call{spread(dl.add_us[label])}")
    print(f"ratio 1y/1h: {dl_ratio:.2f}  target <= {TARGET_DEADLINE:g}  {dl_verdict}"
          + (f"  (add/between DISAGREE on {len(dl.mismatches)}+ starts)" if dl.mismatches else ""))
    print(f"(info) 1w/1h: {med_add['1w'] / med_add['1h']:.2f}; between(start, deadline): "
          + ", ".join(f"{k} {v:.2f} µs" for k, v in med_between.items()))
    c = dl.cold
    print(f"(info) cold: first call in the process (1y; the holidays package computes years "
          f"{c['process_first_years']}) {c['process_first_1y_ms']:.1f} ms; one year table on a "
          f"fresh calendar {c['year_table_ms']:.2f} ms; first call on a fresh calendar: "
          + ", ".join(f"{k} {c[f'first_call_{k}_us'] / 1e3:.2f} ms" for k, _ in HORIZONS))
    if dl.mismatches:
        for line in dl.mismatches[:10]:
            print(f"    {line}")
    else:
        print(f"(info) check: between(s, add(s, d)) == d for all {dl.starts:,} starts and the "
              f"three horizons")

    sweep_ratio = sweep_verdict = None
    if sw is not None:
        med = {k: statistics.median(v) for k, v in sw.samples.items()}
        sweep_ratio = med["query"] / med["bare"]
        uses = sw.plans["query"]["uses_index"] and sw.plans["bare"]["uses_index"]
        sweep_verdict = verdict_max(sweep_ratio, TARGET_SWEEP)
        n_samples = len(sw.samples["query"])
        print(f"\n(2) timer sweep on {sw.db}: {sw.tickets:,} open tickets, {sw.timers:,} pending "
              f"timers, {sw.due} due at {NOW:%Y-%m-%d %H:%M} UTC; {n_samples} samples of each "
              f"({repeat} runs), median; each in its own transaction, rolled back")
        for line in sw.checks:
            print(f"    {line}")
        print(f"plans: ix_ticket_timer_state_due used by the sweep query: "
              f"{'yes' if sw.plans['query']['uses_index'] else 'NO'} (sort: "
              f"{sw.plans['query']['sort']}), by the bare SELECT: "
              f"{'yes' if sw.plans['bare']['uses_index'] else 'NO'} (sort: "
              f"{sw.plans['bare']['sort']})")
        print(f"figure   sweep query (fire_due's due_timers(), {SWEEP_LIMIT} timers): "
              f"{med['query']:.3f} ms{spread(sw.per_run['query'], '{:.3f}')}")
        print(f"baseline bare indexed SELECT id ... LIMIT 200 (same Session):        "
              f"{med['bare']:.3f} ms{spread(sw.per_run['bare'], '{:.3f}')}")
        print(f"ratio: {sweep_ratio:.2f}  target <= {TARGET_SWEEP:g}  {sweep_verdict}"
              + ("" if uses else "  (a plan does NOT use ix_ticket_timer_state_due)"))
        raw_ratio = med["raw_query"] / med["raw_bare"]
        print(f"(info) the SQL alone, bare DBAPI cursor: sweep query {med['raw_query']:.3f} ms, "
              f"bare SELECT {med['raw_bare']:.3f} ms, ratio {raw_ratio:.2f}; so SQLAlchemy/ORM "
              f"(compile cache, ORM entities from {SWEEP_LIMIT} rows) adds "
              f"{med['query'] - med['raw_query']:.3f} ms to the sweep query and "
              f"{med['bare'] - med['raw_bare']:.3f} ms to the bare SELECT")
        if "bare_locked" in med:
            print(f"(info) bare SELECT with FOR UPDATE SKIP LOCKED: {med['bare_locked']:.3f} ms "
                  f"through the Session, {med['raw_bare_locked']:.3f} ms on the cursor (the sweep "
                  f"query locks the due timers' tickets the same way: its claim)")
        fired = statistics.median(sw.fired)
        sweep_med = statistics.median(sw.sweep_ms)
        cpu_med = statistics.median(sw.sweep_cpu_ms)
        print(f"(info) full fire_due sweep + flush (commit not timed), {repeat} sweeps: "
              f"{sweep_med:.0f} ms for {fired:.0f} timers = {sweep_med / max(fired, 1):.2f} ms "
              f"per fired timer (CPU of this process {cpu_med / max(fired, 1):.2f} ms)"
              f"{spread(sw.sweep_ms, '{:.0f}')}; includes composing and queueing "
              f"the line notifications (templates, MIME), events and rearming")
        print("(info) one sweep did: " + ", ".join(f"{k} {v}" for k, v in
                                                    sorted(sw.outcome.items()))
              + "; SQL statements " + ", ".join(f"{k} {v}" for k, v in
                                                sorted(sw.statements.items(), key=lambda x: -x[1]))
              + f" ({sum(sw.statements.values()) / max(fired, 1):.1f} per timer)")
    if dl.profile:
        print("\ncProfile of WorkCalendar.add, 1 year ahead, over the starts:\n")
        print(dl.profile)
    if sw is not None and sw.profile:
        print("\n" + sw.profile)

    if args.json:
        results = [{
            "name": "deadline: 1 year vs 1 hour of business time",
            "figure": {"what": "µs per WorkCalendar.add, 1 year (250d) ahead, warm (median)",
                       "value": round(med_add["1y"], 3)},
            "baseline": {"what": "µs per WorkCalendar.add, 1 hour ahead, warm (median)",
                         "value": round(med_add["1h"], 3)},
            "ratio": round(dl_ratio, 3), "target": {"ratio_max": TARGET_DEADLINE},
            "verdict": dl_verdict}]
        report: dict[str, Any] = {
            "benchmark": "sla", "quick": args.quick, "seed": args.seed, "repeat": repeat,
            "calendar": {"file": str(cal_file), "name": CALENDAR, "spec": spec},
            "deadlines": {
                "starts": dl.starts,
                "durations_hours": {k: v.total_seconds() / 3600 for k, v in dl.durations.items()},
                "add_us": {k: [round(x, 3) for x in v] for k, v in dl.add_us.items()},
                "between_us": {k: [round(x, 3) for x in v] for k, v in dl.between_us.items()},
                "median_add_us": {k: round(v, 3) for k, v in med_add.items()},
                "median_between_us": {k: round(v, 3) for k, v in med_between.items()},
                "cold": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in c.items()},
                "mismatches": dl.mismatches,
            },
        }
        if sw is not None:
            med = {k: statistics.median(v) for k, v in sw.samples.items()}
            report["sweep"] = {
                "database": sw.db, "tickets": sw.tickets, "timers": sw.timers, "due": sw.due,
                "due_kinds": sw.due_kinds, "now": NOW.isoformat(),
                "load_seconds": round(sw.load_seconds, 1), "db_bytes": sw.db_bytes,
                "median_ms": {k: round(v, 4) for k, v in med.items()},
                "per_run_median_ms": {k: [round(x, 4) for x in v] for k, v in sw.per_run.items()},
                "samples_ms": {k: [round(x, 4) for x in v] for k, v in sw.samples.items()},
                "fire_due_ms": [round(x, 1) for x in sw.sweep_ms],
                "fire_due_cpu_ms": [round(x, 1) for x in sw.sweep_cpu_ms], "fired": sw.fired,
                "fire_due_ms_per_timer": round(statistics.median(sw.sweep_ms)
                                               / max(statistics.median(sw.fired), 1), 3),
                "sweep_outcome": sw.outcome, "sweep_statements": sw.statements,
                "plans": sw.plans, "checks": sw.checks,
            }
            results.append({
                "name": "timer sweep query vs bare indexed SELECT",
                "figure": {"what": "ms, fire_due's due_timers() via the Session (median)",
                           "value": round(med["query"], 4)},
                "baseline": {"what": "ms, SELECT id ... LIMIT 200 via the Session (median)",
                             "value": round(med["bare"], 4)},
                "ratio": round(sweep_ratio or 0, 3), "target": {"ratio_max": TARGET_SWEEP},
                "verdict": sweep_verdict})
        report["results"] = results
        report["verdict"] = "PASS" if all(r["verdict"] == "PASS" for r in results) else "MISS"
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
