"""KPI report: `build_report` over two years of 1,000,000 tickets against one hand-written
aggregate query over the same rows.

A database is seeded with seed.py's code (its docstring says what is written: tickets with
their KPI facts, answers, events, participants): 1,000,000 tickets (50,000 with `--quick`)
created over the two years before 2026-12-01T00:00Z, in a SQLite file in a temp dir, or with
`--db-url ADMIN_URL` in a scratch PostgreSQL database maildesk_bench_report_<pid> created
through that URL and dropped at the end; or `--reuse` names an already-seeded one (a SQLite
path or a database URL; `--end` must then be the end it was seeded with). Settings come from a
temp copy of config/ pointed at the database (migrated with maildesk.app.upgrade_database).

For each grouping B in none, line, agent, category, priority, over the whole history (since =
end - 2 years, until = end, now = end):

  figure:   `maildesk.report.kpi.build_report(session, settings, since=, until=, by=B, now=)`
            as `maildesk report` runs it: `with read_session() as session:`, a session of
            maildesk.db.session's make_read_sessionmaker (make_sessionmaker where there is
            none) on make_engine(settings.database): on SQLite BEGIN DEFERRED, on PostgreSQL
            a READ ONLY transaction. Timed from opening the session to closing it, the result
            dict built.
  baseline: ONE hand-written aggregate over the same table, period and grouping, on the bare
            DBAPI cursor of the same engine (`engine.raw_connection()`, taken outside the
            clock), execute + fetchall:
                SELECT <key>, COUNT(*), SUM(CASE WHEN status IN ('resolved','closed') ...),
                       AVG(first_response_bs), AVG(first_response_s), SUM(breached ...),
                       AVG(handling_s), SUM(reopened ...), AVG(rating), COUNT(rating)
                FROM ticket WHERE created_at >= :since AND created_at < :until GROUP BY <key>
            (key: line / category / priority, for agent COALESCE(assignee, resolved_by,
            first_response_by); for none no GROUP BY).

Both warm: one untimed run of each first (statement caches, the OS page cache); then R rounds
(5; 3 with `--quick`), each timing every grouping's figure and baseline back to back, the order
alternating, so a busy neighbour on the machine hits both alike; medians are reported, every
run printed. Target per grouping: figure / baseline <= 3. Also printed: how build_report's time
splits over its steps (from one `progress` call to the next, the last up to its return;
the step names are kpi.py's; median over the runs), which kpi.py was measured (sha256,
commit), and an untimed check that the report and the baseline agree (tickets,
resolved, breached, ratings and mean first response per group). `--profile` adds a cProfile of
one build_report per grouping; `--plans` the query plans of its statements (EXPLAIN QUERY
PLAN / EXPLAIN ANALYZE). Exit status 0 unless the benchmark itself breaks.

    .venv/bin/python benchmarks/report.py [--quick] [--json out.json] [--db-url ADMIN_URL]
                                          [--tickets N] [--reuse PATH_OR_URL] [--repeat R]
                                          [--end ISO] [--seed S] [--profile] [--plans] [--keep]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ScratchDatabase, Stamps, Timer, statements_sent, write_json
from seed import DEFAULT_END, describe, migrate, orm_check, period, seed_database

TARGET = 3.0       # build_report / the hand-written aggregate, at most
BYS: tuple[str | None, ...] = (None, "line", "agent", "category", "priority")
KEYS = {"line": "line", "agent": "COALESCE(assignee, resolved_by, first_response_by)",
        "category": "category", "priority": "priority"}


def kpi_version() -> dict[str, Any]:
    """Which build_report was measured: its file's sha256 and the checked-out commit."""
    import hashlib
    import subprocess

    from maildesk.report import kpi

    path = Path(kpi.__file__)
    try:
        commit = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10,
                                check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(path.parent), "status", "--porcelain", "--",
                                path.name], capture_output=True, text=True,
                               timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            "commit": commit, "modified": bool(dirty)}


def baseline_sql(by: str | None, placeholder: str) -> str:
    aggregates = ("COUNT(*), SUM(CASE WHEN status IN ('resolved','closed') THEN 1 ELSE 0 END), "
                  "AVG(first_response_bs), AVG(first_response_s), "
                  "SUM(CASE WHEN breached_at IS NOT NULL THEN 1 ELSE 0 END), AVG(handling_s), "
                  "SUM(CASE WHEN reopen_count > 0 THEN 1 ELSE 0 END), AVG(rating), COUNT(rating), "
                  # The SLA met and late counts the report has too (issue 20).
                  "SUM(CASE WHEN first_responded_at <= first_response_due_at THEN 1 ELSE 0 END), "
                  "SUM(CASE WHEN first_responded_at > first_response_due_at THEN 1 ELSE 0 END), "
                  "SUM(CASE WHEN status IN ('resolved','closed') AND COALESCE(resolved_at, "
                  "closed_at) <= resolution_due_at THEN 1 ELSE 0 END), "
                  "SUM(CASE WHEN status IN ('resolved','closed') AND COALESCE(resolved_at, "
                  "closed_at) > resolution_due_at THEN 1 ELSE 0 END)")
    where = f"created_at >= {placeholder} AND created_at < {placeholder}"
    if by is None:
        return f"SELECT {aggregates} FROM ticket WHERE {where}"
    return (f"SELECT {KEYS[by]} AS k, {aggregates} FROM ticket WHERE {where} "
            f"GROUP BY {KEYS[by]}")


def name_of(by: str | None) -> str:
    return by or "none"


@dataclass
class Runs:
    report: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)   # progress step -> runs


class Bench:
    """The two measured things against one database."""

    def __init__(self, settings: Any, since: datetime, until: datetime, now: datetime):
        from maildesk.db import session as sessions
        from maildesk.report.kpi import build_report

        self.settings = settings
        self.build_report = build_report
        self.engine = sessions.make_engine(settings.database)
        # As `maildesk report` opens it: a read-only session where maildesk has them.
        maker = getattr(sessions, "make_read_sessionmaker", sessions.make_sessionmaker)
        self.session_kind = maker.__name__
        self.make_session = maker(self.engine)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.since, self.until, self.now = since, until, now
        if self.sqlite:   # the columns' text form (what SQLAlchemy binds for UTCDateTime)
            stamps = Stamps(sqlite=True)
            self.params: tuple[Any, ...] = (stamps.dt(since), stamps.dt(until))
        else:
            self.params = (since, until)
        self.placeholder = "?" if self.sqlite else "%s"

    def report(self, by: str | None, steps: dict[str, list[float]] | None = None
               ) -> tuple[float, dict[str, Any]]:
        marks: list[tuple[str, float]] = []

        def progress(step: str) -> None:
            marks.append((step, time.perf_counter()))

        t0 = time.perf_counter()
        with self.make_session() as session:
            result = self.build_report(session, self.settings, since=self.since,
                                       until=self.until, by=by, now=self.now, progress=progress)
        seconds = time.perf_counter() - t0
        if steps is not None:
            ends = [t for _, t in marks[1:]] + [t0 + seconds]
            for (step, start), stop in zip(marks, ends):
                steps.setdefault(step, []).append(stop - start)
        return seconds, result

    def baseline(self, by: str | None) -> tuple[float, list[tuple]]:
        sql = baseline_sql(by, self.placeholder)
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            t0 = time.perf_counter()
            cur.execute(sql, self.params)
            rows = cur.fetchall()
            seconds = time.perf_counter() - t0
            cur.close()
            if not self.sqlite:
                conn.rollback()
            return seconds, rows
        finally:
            conn.close()

    def statements(self, by: str | None) -> list[tuple[str, Any]]:
        """The SQL statements one build_report sends, as the driver sees them."""
        with statements_sent(self.engine) as seen:
            self.report(by)
        return seen

    def plans(self, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        """The query plan of each SELECT, in one transaction where the other statements (SET
        LOCAL ...) run as build_report sends them, so that they apply."""
        conn = self.engine.raw_connection()
        out = []
        try:
            cur = conn.cursor()
            for statement, parameters in statements:
                if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    cur.execute(statement, parameters)
                    continue
                if self.sqlite:
                    cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                    lines = [str(row[-1]) for row in cur.fetchall()]
                else:
                    cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                    lines = [row[0] for row in cur.fetchall()]
                out.append({"statement": statement, "plan": lines})
            conn.rollback()
            return out
        finally:
            conn.close()

    def close(self) -> None:
        self.engine.dispose()


def agreement(by: str | None, report: dict[str, Any], rows: list[tuple]) -> list[str]:
    """Where the report and the baseline disagree (tickets, resolved, breached, ratings, mean
    first response per group)."""
    from maildesk.report.kpi import NONE_KEY

    problems = []
    if by is None:
        kpis = {NONE_KEY: report["totals"]}
        rows = [(NONE_KEY, *rows[0])]
    else:
        kpis = {g["key"]: g["kpi"] for g in report["groups"]}
    for (k, count, resolved, fr_bs, fr_s, breached, _handling, _reopened, _rating, ratings,
         fr_met, fr_late, res_met, res_late) in rows:
        key = NONE_KEY if k is None or k == "" else str(k)
        kpi = kpis.get(key)
        if kpi is None:
            problems.append(f"{key}: not in the report")
            continue
        sla = kpi["sla_met"]
        want = (count, resolved, breached, ratings, fr_met or 0, fr_late or 0, res_met or 0,
                res_late or 0)
        got = (kpi["tickets"], kpi["resolved"], kpi["breached"], kpi["csat"]["ratings"],
               sla["first_response"]["met"], sla["first_response"]["late"],
               sla["resolution"]["met"], sla["resolution"]["late"])
        if want != got:
            problems.append(f"{key}: tickets/resolved/breached/ratings/SLA met and late {got} "
                            f"vs {want}")
        for label, mean, value in (("business", fr_bs, kpi["first_response"]["mean_business_s"]),
                                   ("calendar", fr_s, kpi["first_response"]["mean_calendar_s"])):
            if (mean is None) != (value is None) or (
                    mean is not None and abs(float(mean) - value) > 0.051):
                problems.append(f"{key}: mean first response ({label}) {value} vs {mean}")
    extra = set(kpis) - {NONE_KEY if r[0] in (None, "") else str(r[0]) for r in rows}
    if extra:
        problems.append(f"groups only in the report: {sorted(extra)}")
    return problems


def profile_text(profiler: cProfile.Profile, lines: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    return "   runs " + ", ".join(fmt.format(v) for v in values) if len(values) > 1 else ""


def verdict_max(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def prepare(args: argparse.Namespace, tmp: Path, tickets: int, end: datetime
            ) -> tuple[ScratchDatabase, Any, dict[str, Any]]:
    """The database (seeded here unless --reuse), its settings and what the seeding did."""
    if args.reuse:
        url = args.reuse if "://" in args.reuse else f"sqlite:///{Path(args.reuse).resolve()}"
        db = ScratchDatabase(url)
        settings = migrate(url, tmp / "config")
        from sqlalchemy import text

        from maildesk.db.session import make_engine
        engine = make_engine(settings.database)
        with engine.connect() as conn:
            count = conn.execute(text("SELECT COUNT(*) FROM ticket")).scalar_one()
        engine.dispose()
        print(f"reusing {db.name} database {url}: {count:,} tickets", flush=True)
        return db, settings, {"reused": url, "tickets": count}
    if args.db_url:
        db = ScratchDatabase.scratch_postgres(args.db_url, f"maildesk_bench_report_{os.getpid()}")
    else:
        db = ScratchDatabase(f"sqlite:///{tmp / 'report.db'}")
    try:
        with Timer() as t_migrate:
            settings = migrate(db.url, tmp / "config")
        print(f"seeding {db.name} (migrated in {t_migrate.seconds:.1f} s): {tickets:,} tickets",
              flush=True)
        result = seed_database(db, settings, tickets=tickets, seed=args.seed, end=end)
        print(describe(result), flush=True)
        problems = orm_check(db.url, result.last_number)
        if problems:
            raise SystemExit("seeded database fails the ORM check:\n  " + "\n  ".join(problems))
    except BaseException:
        if not args.keep:
            db.cleanup()
        raise
    return db, settings, {
        "tickets": tickets, "rows": result.rows, "seconds": round(result.seconds, 1),
        "rows_per_second": round(result.load.total_rows / result.seconds),
        "insert_seconds": round(result.load.insert_seconds, 1),
        "index_seconds": round(result.load.index_seconds, 1),
        "finish_seconds": round(result.load.finish_seconds, 1), "db_bytes": result.db_bytes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (under a minute): 50,000 "
                    "tickets, 3 rounds")
    ap.add_argument("--json", metavar="FILE", help="write figures, baseline, ratio, target as JSON")
    ap.add_argument("--db-url", help="on PostgreSQL: an admin URL such as "
                    "postgresql://postgres@127.0.0.1:5432/test (a scratch database is created "
                    "and dropped)")
    ap.add_argument("--tickets", type=int, help="tickets to seed (overrides --quick)")
    ap.add_argument("--reuse", metavar="PATH_OR_URL", help="an already-seeded database: a SQLite "
                    "file or a database URL (not dropped)")
    ap.add_argument("--repeat", type=int, help="rounds (default 5, or 3 with --quick); medians "
                    "are reported")
    ap.add_argument("--end", default=DEFAULT_END.isoformat(), help="end of the seeded history "
                    "and of the report's period (default 2026-12-01T00:00Z)")
    ap.add_argument("--seed", type=int, default=1, help="seed-data seed")
    ap.add_argument("--profile", action="store_true", help="cProfile one build_report per "
                    "grouping")
    ap.add_argument("--plans", action="store_true", help="the query plans of build_report's "
                    "statements and of the baseline")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite file, config)"
                    " or the scratch PostgreSQL database")
    args = ap.parse_args()
    tickets = args.tickets if args.tickets is not None else (50_000 if args.quick else 1_000_000)
    repeat = args.repeat or (3 if args.quick else 5)
    end = datetime.fromisoformat(args.end.replace("Z", "+00:00"))
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    since, until = period(end, 2)

    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-report-"))
    db: ScratchDatabase | None = None
    bench: Bench | None = None
    try:
        db, settings, seeding = prepare(args, tmp, tickets, end)
        tickets = seeding["tickets"]
        bench = Bench(settings, since, until, end)
        version = kpi_version()
        print(f"build_report of {version['file']} (sha256 {version['sha256']}, commit "
              f"{version['commit'] or '?'}{', modified' if version['modified'] else ''})")
        print(f"period {since.isoformat()} .. {until.isoformat()} (now = until); "
              f"{repeat} round(s) after one warm-up run of each; sessions from "
              f"{bench.session_kind}", flush=True)

        # Warm-up and the untimed agreement check.
        checks: dict[str, list[str]] = {}
        for by in BYS:
            _, report = bench.report(by)
            _, rows = bench.baseline(by)
            checks[name_of(by)] = agreement(by, report, rows)
        runs = {name_of(by): Runs() for by in BYS}
        for r in range(repeat):
            line = []
            for by in BYS:
                run = runs[name_of(by)]
                first_report = r % 2 == 0
                for which in (("report", "baseline") if first_report else
                              ("baseline", "report")):
                    if which == "report":
                        run.report.append(bench.report(by, run.steps)[0])
                    else:
                        run.baseline.append(bench.baseline(by)[0])
                line.append(f"{name_of(by)} {run.report[-1]:.3f}/{run.baseline[-1]:.3f} s")
            print(f"  round {r + 1}/{repeat} (report/baseline): " + ", ".join(line), flush=True)

        plans: dict[str, Any] = {}
        if args.plans:
            for by in BYS:
                plans[name_of(by)] = bench.plans(bench.statements(by))
                baseline = bench.plans([(baseline_sql(by, bench.placeholder), bench.params)])
                plans[name_of(by)].append({**baseline[0], "baseline": True})
        profiles: dict[str, str] = {}
        if args.profile:
            for by in BYS:
                profiler = cProfile.Profile()
                profiler.enable()
                bench.report(by)
                profiler.disable()
                profiles[name_of(by)] = profile_text(profiler)

        # -- report ------------------------------------------------------------------------
        size = db.size()
        print(f"\nKPI report on {db.name}: {tickets:,} tickets created over 2 years, "
              f"{size / 1e6:,.0f} MB; median of {repeat} round(s)")
        results = []
        for by in BYS:
            name = name_of(by)
            run = runs[name]
            fig, base = statistics.median(run.report), statistics.median(run.baseline)
            ratio = fig / base
            verdict = verdict_max(ratio, TARGET)
            steps = {s: statistics.median(v) for s, v in run.steps.items() if v}
            print(f"by {name}:")
            print(f"  figure   build_report(by={by!r}) through a Session:      {fig:8.3f} s"
                  f"{spread(run.report)}")
            print(f"  baseline one aggregate SELECT on the DBAPI cursor:      {base:8.3f} s"
                  f"{spread(run.baseline)}")
            print(f"  ratio: {ratio:.2f}  target <= {TARGET:g}  {verdict}")
            print("  (info) build_report's steps: " + ", ".join(
                f"{s} {v:.3f} s" for s, v in steps.items()))
            problems = checks[name]
            print("  (info) check: " + ("report and baseline agree (tickets, resolved, "
                                        "breached, ratings, mean first response per group)"
                                        if not problems else "DISAGREE: " + "; ".join(problems[:5])))
            results.append({
                "name": f"build_report by {name} vs one aggregate query",
                "figure": {"what": f"s, build_report(by={by!r}) over 2 years through a Session "
                                   f"(median)", "value": round(fig, 4)},
                "baseline": {"what": "s, one hand-written aggregate SELECT over ticket, same "
                                     "period and grouping, DBAPI cursor (median)",
                             "value": round(base, 4)},
                "ratio": round(ratio, 3), "target": {"ratio_max": TARGET}, "verdict": verdict,
                "runs": {"report": [round(x, 4) for x in run.report],
                         "baseline": [round(x, 4) for x in run.baseline]},
                "steps_median_s": {s: round(v, 4) for s, v in steps.items()},
                "check": problems or "agree"})
        for name, items in plans.items():
            print(f"\nplans, by {name}:")
            for item in items:
                what = "baseline" if item.get("baseline") else "build_report"
                print(f"  [{what}] " + " ".join(item["statement"].split())[:400])
                for line in item["plan"]:
                    print(f"    | {line}")
        for name, text in profiles.items():
            print(f"\ncProfile of one build_report, by {name}:\n")
            print(text)
        overall = "PASS" if all(r["verdict"] == "PASS" for r in results) else "MISS"
        print(f"\noverall: {overall}")
        if tickets < 1_000_000:
            print(f"(the target is set for 1,000,000 tickets; with {tickets:,} the per-day counts, "
                  "one index range for each day of the two years whatever the number of tickets, "
                  "weigh more against the one aggregate)")
        if args.json:
            write_json(args.json, {
                "benchmark": "report", "database": db.name, "tickets": tickets,
                "quick": args.quick, "repeat": repeat, "seed": args.seed,
                "period": {"since": since.isoformat(), "until": until.isoformat(),
                           "now": end.isoformat()},
                "db_bytes": size, "seeding": seeding, "kpi": version, "results": results,
                "plans": plans or None, "verdict": overall})
        return 0
    finally:
        if bench is not None:
            bench.close()
        if db is not None and not args.keep and not args.reuse:
            db.cleanup()
        if args.keep:
            print(f"kept {tmp}" + (f" and database {db.url}" if db is not None and not db.sqlite
                                   else ""))
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
