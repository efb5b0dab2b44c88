"""Seed a maildesk database with a realistic two-year history of tickets, fast.

    .venv/bin/python benchmarks/seed.py --db-url URL [--create] [--tickets N] [--years Y]
                                        [--seed S] [--end ISO] [--messages]

URL is `sqlite:///path.db` or `postgresql://postgres@127.0.0.1:5432/dbname` (`--create` creates
that PostgreSQL database first). The schema is migrated with `maildesk.app.upgrade_database` on
settings from a temp copy of the project's config/ pointed at the database (lines, agents, SLA
policies, first ticket number and auto-close delay are the project's), then the rows are
bulk-loaded (common.bulk_load_sqlite / bulk_load_postgres: executemany or COPY, secondary
indexes and foreign keys dropped during the load and rebuilt, sequences moved, the `ticket`
counter set to the last number; PostgreSQL gets VACUUM ANALYZE). The database must be empty
(just migrated). Progress (rows/s) and the phases' times are printed.

What is written, as maildesk itself writes it (effects/apply.py, agent.py, lifecycle.py,
metrics.py, timers.py):

* `ticket`: N tickets (1,000,000) created over the Y years (2) before `--end` (default
  2026-12-01T00:00Z), numbered from `tickets.first_number` in creation order. Arrivals follow
  Moscow time: working days 09-18 heavy (a Monday bump, evenings and nights thin), weekends
  and RU holidays at about a fifth, and the volume grows by ~60% over the period. Clients:
  N/3 addresses, Russian (70%) or English, picked with a heavy tail (some write hundreds of
  times, most once or twice). Subject = topic of one of 9 categories ("Кассы", "Оплата картой",
  "Оборудование", "Отчёты", "Личный кабинет", "Выезд инженера", "Обновления", "Network",
  "Billing"; ~8% none) + store number; subject_key its casefold (no prefixes to strip).
  Priority P1/P2/P3/P4 (config/sla.yaml's names) 5/20/55/20%; policy `standard` (Moscow
  business hours), `incidents` (24/7) for a third of the P1/P2 tills and card payment tickets.
  first_line is line1 for 93% (line2 5%, line3 1.5%, vendor 0.5%); 25% escalate 1-3 times
  along lines.yaml's `next` chain (agent-driven, or by the OLA timer when before the first
  answer), so ~70% end on line1. One agent of lines.yaml per line handles a ticket.
  Life of a ticket, in SLA-clock time where an agent works (log-normal waits): first answer
  (2% are closed unanswered), 0-3 client follow-ups each answered, a pending spell for 25%
  (agent sets pending, the client's next mail resumes it), resolution (10% closed directly by
  the agent), reopening by the client within the auto-close delay for 8%, rating for 30% of
  the resolved ones (skewed to 4-5), auto-close `close_after_days` after the resolution. The
  whole life is generated and then cut at `--end`: recent tickets are new/open/pending/
  resolved, old ones closed. Deadlines (first_response_due_at, resolution_due_at) and the
  breach (`breached_at`, ~10%) come from the policy's targets with the pauses, as
  sla/schedule.py's due_after counts them; `pauses` as change_status keeps them (an open
  `[start, null]` after a resolution or while pending). next_response_since is set while a
  follow-up waits at `--end`; next_response_due_at stays NULL (no next_response targets).
  reply_token/agent_token: 6/10 chars of maildesk's token alphabet. tags `[]`. assignee (the
  first responder) for ~half.
  KPI facts (effects/metrics.py): first_line, first_response_by/_s/_bs, resolved_by,
  handling_s/_bs (creation to the latest resolution; kept on a reopened ticket),
  escalation_count, reopen_count. `_s` is calendar seconds; `_bs` is the SLA clock: business
  seconds of the policy's calendar with the pauses left out, computed EXACTLY (not
  approximated) from maildesk.sla.calendar's working spans (WorkCalendar.instants_on per local
  day, turned into integer prefix sums: BusinessClock below; checked against
  WorkCalendar.between on a sample at start-up).
* the answers to a waiting client (the first answer, and one per answered follow-up /
  reopening, each with its own wait; ~1.9 per ticket), as the migrated schema keeps them:
  summed on the ticket (response_count, response_s, response_bs: effects/metrics.py's
  record_response) and, where the schema has the table (an earlier form of migration 0006),
  one `ticket_response` row each (first=true for the first answer, waited_s/_bs, agent, line
  at the time).
* `ticket_event`: created, routed (when a rule matched), status (new->open, open->pending,
  pending->open, ->resolved/closed, auto-close with its reason), first_response, assigned,
  escalated, sla_breach, reopened, rated: ~6.5 per ticket, JSON `data` as maildesk writes it
  (without message ids), actor the address or NULL for timers.
* `participant`: the requester, role `client`, one per ticket.
* `message` only with `--messages` (a short body per client mail and agent answer, no
  raw_message, no inbound rows, no attachments); `raw_message`, `inbound`, `outbox` and
  `ticket_timer` (the open tickets' pending timers) are not written.

Ids are assigned in ticket order (a ticket's events and responses together), not globally in
time order. Timestamps are whole seconds. Everything comes from random.Random(seed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from random import Random
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (DOMAINS, EN_FIRST, EN_LAST, EN_SENTENCES, EN_TOPICS, RU_FIRST, RU_LAST,
                    RU_SENTENCES, RU_TOPICS, SUPPORT, TRANSLIT, LoadStats, ScratchDatabase,
                    Stamps, Timer, message_id_for, write_config_set)

DEFAULT_END = datetime(2026, 12, 1, tzinfo=timezone.utc)
CHUNK = 20_000                    # tickets per executemany / COPY batch
TOKEN_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"   # maildesk.effects.apply._TOKEN_ALPHABET
first_item = itemgetter(0)

TICKET_COLS = (
    "id", "number", "reply_token", "subject", "subject_key", "status", "priority", "line",
    "category", "language", "requester", "requester_name", "mailbox", "created_at",
    "updated_at", "last_activity_at", "resolved_at", "closed_at", "first_response_due_at",
    "resolution_due_at", "tags", "assignee", "sla_policy", "agent_token", "first_responded_at",
    "line_entered_at", "next_response_since", "next_response_due_at", "breached_at", "pauses",
    "rating", "rated_at", "first_line", "first_response_by", "first_response_s",
    "first_response_bs", "resolved_by", "handling_s", "handling_bs", "escalation_count",
    "reopen_count")
PARTICIPANT_COLS = ("id", "ticket_id", "address", "name", "role")
RESPONSE_SUM_COLS = ("response_count", "response_s", "response_bs")
RESPONSE_COLS = ("id", "ticket_id", "at", "agent", "line", "first", "waited_s", "waited_bs")
EVENT_COLS = ("id", "ticket_id", "at", "kind", "actor", "data")
MESSAGE_COLS = ("id", "ticket_id", "direction", "role", "message_id", "from_address",
                "from_name", "to", "cc", "subject", "sent_at", "received_at", "body_text",
                "has_html", "thread_reason", "internal", "defects")


@dataclass(frozen=True)
class Schema:
    """What the migrated schema has of the optional parts: the answers summed on the ticket
    (response_count/_s/_bs) and/or one ticket_response row per answer (an earlier form of
    migration 0006); `messages`: also write message rows."""

    response_sums: bool = True
    responses_table: bool = False
    messages: bool = False

    def tables(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The loaded tables, in the order of generate()'s chunks."""
        ticket = TICKET_COLS + (RESPONSE_SUM_COLS if self.response_sums else ())
        out = [("ticket", ticket), ("participant", PARTICIPANT_COLS),
               ("ticket_event", EVENT_COLS)]
        if self.responses_table:
            out.append(("ticket_response", RESPONSE_COLS))
        if self.messages:
            out.append(("message", MESSAGE_COLS))
        return tuple(out)


def schema_of(settings: Any, messages: bool = False) -> Schema:
    from sqlalchemy import inspect

    from maildesk.db.session import make_engine

    engine = make_engine(settings.database)
    try:
        found = inspect(engine)
        tables = set(found.get_table_names())
        columns = {c["name"] for c in found.get_columns("ticket")}
    finally:
        engine.dispose()
    return Schema(response_sums=set(RESPONSE_SUM_COLS) <= columns,
                  responses_table="ticket_response" in tables, messages=messages)

# category -> (Russian topics, English topics); None: no rule set a category.
CATEGORIES: dict[str | None, tuple[list[str], list[str]]] = {
    "Кассы": (["Не печатает чеки касса", "Касса зависает при закрытии смены",
               "Ошибка фискального накопителя"],
              ["Receipt printer not printing", "Register freezes on shift close"]),
    "Оплата картой": (["Не работает терминал оплаты", "Не проходит оплата картой"],
                      ["Card terminal connection lost", "Card payments declined"]),
    "Оборудование": (["Сканер не читает штрихкоды", "Весы не передают вес",
                      "Принтер этикеток печатает пустые листы"],
                     ["Barcode scanner problem", "Scale not sending weight",
                      "Label printer prints blank"]),
    "Отчёты": (["Не приходят отчёты о продажах", "Расхождение в отчёте за смену"],
               ["Sales reports missing", "End-of-day report mismatch"]),
    "Личный кабинет": (["Не могу войти в личный кабинет"], ["Cannot log in to the portal"]),
    "Выезд инженера": (["Просьба о выезде инженера"], ["Engineer visit request"]),
    "Обновления": (["Вопрос по обновлению прошивки"], ["Firmware update question"]),
    "Network": (["Нет связи с сервером", "Пропадает интернет на точке"],
                ["VPN tunnel down", "Store network outage"]),
    "Billing": (["Вопрос по счёту", "Нужны закрывающие документы"],
                ["Invoice question", "Payment not received"]),
    None: (RU_TOPICS, EN_TOPICS),
}
CATEGORY_WEIGHTS = {"Кассы": 24, "Оплата картой": 15, "Оборудование": 16, "Отчёты": 10,
                    "Личный кабинет": 8, "Выезд инженера": 5, "Обновления": 5, "Network": 5,
                    "Billing": 4, None: 8}
PRIORITY_WEIGHTS = {"P1": 5, "P2": 20, "P3": 55, "P4": 20}
FIRST_LINE_WEIGHTS = {"line1": 930, "line2": 50, "line3": 15, "vendor": 5}
# Medians of the log-normal waits, in seconds of the SLA clock (business time on `standard`).
FIRST_ANSWER = {"P1": 10 * 60, "P2": 35 * 60, "P3": 70 * 60, "P4": 150 * 60}
RESOLVE = {"P1": 45 * 60, "P2": 2 * 3600, "P3": 6 * 3600, "P4": 10 * 3600}
FOLLOW_UP_ANSWER = 40 * 60
FOLLOW_UP_GAP = 90 * 60           # calendar time from an answer to the client's next mail
PENDING_GAP = 20 * 3600           # ... when the agent set the ticket pending
SIGMA = 1.1
# Local-hour weights of arrivals on a working day (Moscow time); other days get REST times.
HOUR_WEIGHTS = (0.02, 0.015, 0.01, 0.01, 0.01, 0.02, 0.04, 0.08, 0.35, 0.9, 1.0, 1.0, 0.9, 0.75,
                0.9, 0.9, 0.8, 0.6, 0.35, 0.2, 0.14, 0.1, 0.06, 0.04)
REST = 0.2
WEEKDAY = (1.15, 1.0, 1.0, 1.0, 0.9, 1.0, 1.0)     # Monday's backlog, a lighter Friday
GROWTH = 0.6                                      # +60% from the first hour to the last


def dumps(data: dict[str, Any]) -> str:
    """JSON as SQLAlchemy's JSON type writes it (json.dumps with its defaults)."""
    return json.dumps(data)


# -- the SLA clock as integer prefix sums -----------------------------------------------------
class BusinessClock:
    """Working seconds of a WorkCalendar between whole-second instants, O(1)/O(log days).

    `prefix(t)` is the working time from the table's first local midnight to epoch second `t`,
    so `prefix(b) - prefix(a)` is `calendar.between(a, b)` in seconds, and `inverse(x)` is the
    earliest instant whose prefix is `x` (what `calendar.add` gives). Built from the calendar's
    own working spans (`instants_on`, with its holidays and moved working days) for each local
    day of [first, last]. With `calendar` None or 24/7 it is the identity (calendar time)."""

    def __init__(self, calendar: Any, first: date, last: date):
        self.always = calendar is None or calendar.always
        if self.always:
            return
        self.midnights: list[int] = []
        self.spans: list[tuple[tuple[int, int], ...]] = []
        self.cum = [0]
        day = first
        while day <= last:
            self.midnights.append(round(datetime(day.year, day.month, day.day,
                                                 tzinfo=calendar.zone).timestamp()))
            spans = tuple((round(a.timestamp()), round(b.timestamp()))
                          for a, b in calendar.instants_on(day))
            self.spans.append(spans)
            self.cum.append(self.cum[-1] + sum(b - a for a, b in spans))
            day += timedelta(days=1)
        self.midnights.append(round(datetime(day.year, day.month, day.day,
                                             tzinfo=calendar.zone).timestamp()))
        self.last = self.midnights[-1]

    def prefix(self, t: int) -> int:
        if self.always:
            return t
        if not self.midnights[0] <= t < self.last:
            raise ValueError(f"instant {t} outside the clock's table")
        d = bisect_right(self.midnights, t) - 1
        p = self.cum[d]
        for a, b in self.spans[d]:
            if t <= a:
                break
            p += (t if t < b else b) - a   # noqa: FURB136 (hot path)
        return p

    def inverse(self, x: int) -> int:
        if self.always:
            return x
        d = bisect_left(self.cum, x) - 1
        if d < 0 or d >= len(self.spans):
            raise ValueError(f"working second {x} outside the clock's table")
        rest = x - self.cum[d]
        for a, b in self.spans[d]:
            if rest <= b - a:
                return a + rest
            rest -= b - a
        raise AssertionError("prefix sums and spans disagree")  # pragma: no cover


def check_clock(clock: BusinessClock, calendar: Any, lo: int, hi: int, rng: Random,
                samples: int = 2000) -> int:
    """How many of `samples` random intervals disagree with WorkCalendar.between (want 0)."""
    bad = 0
    for _ in range(samples):
        a = rng.randrange(lo, hi)
        b = a + int(rng.expovariate(1 / 200_000))
        want = calendar.between(datetime.fromtimestamp(a, timezone.utc),
                                datetime.fromtimestamp(b, timezone.utc)).total_seconds()
        got = clock.prefix(b) - clock.prefix(a)
        x = clock.prefix(a) + rng.randrange(0, 200_000)
        if got != want or clock.prefix(clock.inverse(x)) != x:
            bad += 1
    return bad


# -- arrivals --------------------------------------------------------------------------------
def period(end: datetime, years: int) -> tuple[datetime, datetime]:
    """[end - years, end): the seeded history (and the report's whole period)."""
    try:
        start = end.replace(year=end.year - years)
    except ValueError:      # 29 February
        start = end.replace(year=end.year - years, day=28)
    return start, end


def arrival_times(n: int, start: datetime, end: datetime, calendar: Any,
                  rng: Random) -> Iterator[int]:
    """`n` creation instants (epoch seconds, non-decreasing) over [start, end): hourly weights
    of the local hour and day type (working day or not, from `calendar`), the weekday and a
    linear growth; stratified inverse-CDF sampling, so the counts follow the weights closely
    and come out in order."""
    zone = calendar.zone
    t0, t1 = int(start.timestamp()) // 3600 * 3600, int(end.timestamp())
    hours = list(range(t0, t1, 3600))
    working: dict[date, bool] = {}
    weights = []
    for k, h in enumerate(hours):
        local = datetime.fromtimestamp(h, zone)
        day = local.date()
        work = working.get(day)
        if work is None:
            work = working[day] = bool(calendar.spans_on(day))
        w = HOUR_WEIGHTS[local.hour] * WEEKDAY[local.weekday()] * (1.0 if work else REST)
        weights.append(w * (1.0 + GROWTH * k / len(hours)))
    total = math.fsum(weights)
    step = total / n
    k, below = 0, 0.0          # bin k covers [below, below + weights[k]) of the mass
    rand = rng.random
    start_s = int(start.timestamp())
    for i in range(n):
        p = (i + rand()) * step
        while k < len(weights) - 1 and below + weights[k] <= p:
            below += weights[k]
            k += 1
        t = hours[k] + int((p - below) / weights[k] * 3600)
        yield min(max(t, start_s), t1 - 1)


# -- the generator ---------------------------------------------------------------------------
@dataclass
class SeedFigures:
    tickets: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    breached: int = 0
    escalated: int = 0
    reopened: int = 0
    rated: int = 0
    on_line1: int = 0
    clients: int = 0


def _weighted(rng: Random, weights: dict[Any, float]) -> list[Any]:
    """A 1000-entry table to draw from with int(random() * 1000)."""
    keys = list(weights)
    total = sum(weights.values())
    table: list[Any] = []
    for key in keys:
        table.extend([key] * round(1000 * weights[key] / total))
    while len(table) < 1000:
        table.append(keys[-1])
    return table[:1000]


def generate(*, settings: Any, tickets: int, start: datetime, end: datetime, seed: int,
             stamps: Stamps, schema: Schema = Schema(), figures: SeedFigures | None = None,
             chunk: int = CHUNK) -> Iterator[tuple[list, ...]]:
    """Chunks of rows, one list per table of `schema.tables()`."""
    messages = schema.messages
    responses_table, response_sums = schema.responses_table, schema.response_sums
    rng = Random(seed)
    rand = rng.random
    lognorm = rng.lognormvariate
    getrandbits = rng.getrandbits
    figures = figures if figures is not None else SeedFigures()
    iso = stamps.iso
    # stamps.sec() by table look-up: the day's text and the second's text.
    d0 = int(start.timestamp()) // 86400 - 10
    day_text = [stamps.sec(d * 86400)[:11]
                for d in range(d0, int(end.timestamp()) // 86400 + 400)]
    clock_text = [stamps.sec(d0 * 86400 + k)[11:] for k in range(86400)]

    def sec(at: int) -> str:
        return day_text[at // 86400 - d0] + clock_text[at % 86400]
    end_s = int(end.timestamp())
    first_number = settings.first_ticket_number
    close_after = int(settings.close_after.total_seconds()) if settings.close_after else None

    # Lines, their agents and the escalation chain.
    lines = {line.id: line for line in settings.lines}
    agents = {line.id: [a.address for a in line.agents] or [line.mailbox]
              for line in settings.lines}
    chains: dict[str, list[str]] = {}
    for line_id in lines:
        chain, cur = [line_id], lines[line_id].next
        while cur and cur in lines and cur not in chain:
            chain.append(cur)
            cur = lines[cur].next
        chains[line_id] = chain

    agent_combos = {line_id: list(itertools.product(*(agents[x] for x in chain)))
                    for line_id, chain in chains.items()}

    # SLA clocks and targets (seconds) per policy.
    first_day = (start - timedelta(days=3)).date()
    last_day = (end + timedelta(days=400)).date()
    clocks: dict[str, BusinessClock] = {}
    targets: dict[str, dict[str, tuple[BusinessClock, int, BusinessClock, int]]] = {}
    for name, policy in settings.sla_policies.policies.items():
        clock = BusinessClock(policy.calendar, first_day, last_day)
        clocks[name] = clock
        identity = BusinessClock(None, first_day, last_day)
        targets[name] = {}
        for prio, kinds in policy.targets.items():
            fr, res = kinds["first_response"], kinds["resolution"]
            targets[name][prio] = (clock if fr.business else identity,
                                   int(fr.duration.total_seconds()),
                                   clock if res.business else identity,
                                   int(res.duration.total_seconds()))
    policy_names = list(clocks)
    default_policy = settings.sla_policies.default or policy_names[0]
    incidents = "incidents" if "incidents" in clocks else default_policy

    # Clients: N/3 of them, heavy-tailed reuse.
    people: list[tuple[str, str, str]] = []
    for i in range(max(50, tickets // 3)):
        if rand() < 0.7:
            first, last = RU_FIRST[int(rand() * len(RU_FIRST))], RU_LAST[int(rand() * len(RU_LAST))]
            local = f"{first.lower().translate(TRANSLIT)}.{last.lower().translate(TRANSLIT)}.{i}"
            people.append((f"{local}@{DOMAINS[int(rand() * len(DOMAINS))]}",
                           f"{first} {last}", "ru"))
        else:
            first, last = EN_FIRST[int(rand() * len(EN_FIRST))], EN_LAST[int(rand() * len(EN_LAST))]
            people.append((f"{first}.{last}.{i}@{DOMAINS[int(rand() * len(DOMAINS))]}".lower(),
                           f"{first} {last}", "en"))
    n_people = len(people)
    seen_clients: set[int] = set()

    cat_table = _weighted(rng, CATEGORY_WEIGHTS)
    prio_table = _weighted(rng, PRIORITY_WEIGHTS)
    line_table = _weighted(rng, {k: v for k, v in FIRST_LINE_WEIGHTS.items() if k in lines}
                           or {settings.lines[0].id: 1})
    mu_first = {p: math.log(v) for p, v in FIRST_ANSWER.items()}
    mu_resolve = {p: math.log(v) for p, v in RESOLVE.items()}
    mu_follow_answer = math.log(FOLLOW_UP_ANSWER)
    mu_gap, mu_pending_gap = math.log(FOLLOW_UP_GAP), math.log(PENDING_GAP)
    mu_reopen, mu_reopen_fix = math.log(24 * 3600), math.log(3 * 3600)
    mu_rate = math.log(2 * 3600)
    rules = {"Кассы": "cash registers are urgent", "Billing": "invoices and contracts go to billing"}
    ola_reason = {lid: f"longer than the OLA of {lid}" for lid in lines}
    # JSON texts below are written with f-strings: the values are ASCII without quotes or
    # backslashes, so they come out exactly as json.dumps would write them.
    tok3 = [a + b + c for a in TOKEN_ALPHABET for b in TOKEN_ALPHABET for c in TOKEN_ALPHABET]

    # Prebuilt JSON texts.
    status_json: dict[tuple[str, str], str] = {}

    def status_data(a: str, b: str) -> str:
        text = status_json.get((a, b))
        if text is None:
            text = status_json[(a, b)] = dumps({"from": a, "to": b})
        return text
    created_json = dumps({"reason": "new"})
    empty = "{}"
    auto_close_json = dumps({"from": "resolved", "to": "closed",
                             "reason": "resolved, no reply since"})
    sentences = {"ru": RU_SENTENCES, "en": EN_SENTENCES}
    to_support = json.dumps([SUPPORT])

    t_rows: list[tuple] = []
    p_rows: list[tuple] = []
    r_rows: list[tuple] = []
    e_rows: list[tuple] = []
    m_rows: list[tuple] = []
    response_id = event_id = message_id = 0
    lists = [t_rows, p_rows, e_rows] + ([r_rows] if responses_table else []) + (
        [m_rows] if messages else [])
    calendar = settings.sla_policies.get(default_policy).calendar
    arrivals = arrival_times(tickets, start, end, calendar, rng)
    statuses = figures.statuses

    def due_after(clock: BusinessClock, begin: int, target: int,
                  pauses: list[list[Any]]) -> int | None:
        """maildesk.sla.schedule.due_after on integer seconds."""
        cursor, remaining = begin, target
        for p0, p1 in pauses:
            if p1 is not None and p1 <= cursor:
                continue
            if p0 > cursor:
                budget = clock.prefix(p0) - clock.prefix(cursor)
                if remaining <= budget:
                    return clock.inverse(clock.prefix(cursor) + remaining)
                remaining -= budget
            if p1 is None:
                return None
            cursor = max(cursor, p1)
        return clock.inverse(clock.prefix(cursor) + remaining)

    for i, c in enumerate(arrivals):
        tid = i + 1
        # -- who, what ------------------------------------------------------------------
        who = int(n_people * rand() ** 1.8)
        seen_clients.add(who)
        requester, requester_name, lang = people[who]
        category = cat_table[int(rand() * 1000)]
        topics = CATEGORIES[category][0 if lang == "ru" else 1]
        topic = topics[int(rand() * len(topics))]
        store = int(rand() * 5000) + 1
        subject = f"{topic}, магазин {store}" if lang == "ru" else f"{topic} (store {store})"
        prio = prio_table[int(rand() * 1000)]
        policy = default_policy
        if prio in ("P1", "P2") and category in ("Кассы", "Оплата картой") and rand() < 0.33:
            policy = incidents
        clock = clocks[policy]
        fr_clock, fr_target, res_clock, res_target = targets[policy][prio]
        first_line = line_table[int(rand() * 1000)]
        chain = chains[first_line]
        u = rand()
        planned_esc = 0 if u < 0.75 else 1 if u < 0.925 else 2 if u < 0.98 else 3
        planned_esc = min(planned_esc, len(chain) - 1)
        combos = agent_combos[first_line]
        ticket_agents = combos[int(rand() * len(combos))]
        reply_token = tok3[getrandbits(15)] + tok3[getrandbits(15)]
        agent_token = (tok3[getrandbits(15)] + tok3[getrandbits(15)] + tok3[getrandbits(15)]
                       + TOKEN_ALPHABET[getrandbits(5)])
        pc = clock.prefix(c)

        # -- the whole life (then cut at `end`) -------------------------------------------
        changes: list[tuple[int, str, str | None, str]] = []   # (at, status, actor, event kind)
        pauses: list[list[Any]] = []
        waits: list[tuple[int, int]] = []          # (client wrote, answered) for follow-ups
        answers: list[tuple[int, int, int, bool]] = []   # (at, waited_s, waited_bs, first)
        mails: list[tuple[int, bool]] = [(c, True)]   # (at, from the client)
        resolutions: list[tuple[int, str]] = []    # (at, "resolved" | "closed")
        fr = None
        unanswered = rand() < 0.02
        if not unanswered:
            w = int(lognorm(mu_first[prio], SIGMA)) + 30
            fr = clock.inverse(pc + w)
            answers.append((fr, fr - c, w, True))
            mails.append((fr, False))
            changes.append((fr, "open", "agent", "status"))
            cursor = fr
            u = rand()
            follow_ups = 0 if u < 0.45 else 1 if u < 0.75 else 2 if u < 0.92 else 3
            pending_at = -1
            if rand() < 0.25:
                follow_ups = max(follow_ups, 1)
                pending_at = int(rand() * follow_ups)
            for j in range(follow_ups):
                if j == pending_at:
                    changes.append((cursor, "pending", "agent", "status"))
                    f = cursor + int(lognorm(mu_pending_gap, SIGMA)) + 60
                    pauses.append([cursor, f])
                    changes.append((f, "open", "client", "status"))
                else:
                    f = cursor + int(lognorm(mu_gap, SIGMA)) + 60
                mails.append((f, True))
                wb = int(lognorm(mu_follow_answer, SIGMA)) + 30
                a = clock.inverse(clock.prefix(f) + wb)
                answers.append((a, a - f, wb, False))
                waits.append((f, a))
                mails.append((a, False))
                cursor = a
            rb = int(lognorm(mu_resolve[prio], SIGMA) * (1 + 0.5 * planned_esc)) + 60
            r = clock.inverse(clock.prefix(cursor) + rb)
            direct = rand() < 0.10
        else:
            r = clock.inverse(pc + int(lognorm(mu_resolve[prio], SIGMA)) + 60)
            direct = True
        # Escalations somewhere between the creation and the (first) resolution.
        esc_times = sorted(c + 1 + int(rand() * (r - c - 1)) for _ in range(planned_esc)) \
            if r - c > 1 else []
        resolutions.append((r, "closed" if direct else "resolved"))
        changes.append((r, "closed" if direct else "resolved", "agent", "status"))
        mails.append((r, False))
        pauses.append([r, None])
        final = r
        reopens: list[int] = []
        rated_at = rating = None
        if not direct:
            again = 0.08
            while close_after and rand() < again:
                o = final + min(int(lognorm(mu_reopen, SIGMA)) + 60, close_after - 600)
                pauses[-1][1] = o
                reopens.append(o)
                mails.append((o, True))
                changes.append((o, "open", "client", "reopened"))
                wb = int(lognorm(mu_reopen_fix, SIGMA)) + 60
                r2 = clock.inverse(clock.prefix(o) + wb)
                answers.append((r2, r2 - o, wb, False))    # the resolution notice answers it
                waits.append((o, r2))
                mails.append((r2, False))
                resolutions.append((r2, "resolved"))
                changes.append((r2, "resolved", "agent", "status"))
                pauses.append([r2, None])
                final = r2
                again = 0.15
            if rand() < 0.30:
                rated_at = final + int(lognorm(mu_rate, SIGMA)) + 60
                if close_after and rated_at >= final + close_after:
                    rated_at = None
                else:
                    u = rand()
                    rating = 5 if u < 0.55 else 4 if u < 0.80 else 3 if u < 0.90 else \
                        2 if u < 0.95 else 1
                    mails.append((rated_at, True))
            if close_after:
                closed = final + close_after + int(rand() * 30)
                changes.append((closed, "closed", None, "auto_close"))
        # Deadlines and breaches, as due_after counts them with the pauses.
        fr_due = fr_clock.inverse(fr_clock.prefix(c) + fr_target)
        res_due = due_after(res_clock, c, res_target, pauses)
        breaches = []
        if fr_due < (fr if fr is not None else r):    # still waiting for a first answer
            breaches.append((fr_due, "first_response"))
        if res_due is not None:
            breaches.append((res_due, "resolution"))

        # -- cut at `end` -------------------------------------------------------------
        n_esc = sum(1 for e in esc_times if e <= end_s)
        esc_line = [chain[k] for k in range(len(esc_times) + 1)]

        def line_at(t: int, esc_times: list[int] = esc_times) -> int:
            k = 0
            for e in esc_times:
                if e <= t:
                    k += 1
            return k

        events: list[tuple[int, str, str | None, str]] = [(c, "created", requester, created_json)]
        if category in rules or (prio != "P3" and rand() < 0.5):
            rule = rules.get(category, "key clients")
            events.append((c, "routed", requester, f'{{"rules": ["{rule}"], "line": '
                           f'"{first_line}", "priority": "{prio}"}}'))
        status, resolved_at, closed_at, handled = "new", None, None, None
        changes.sort(key=first_item)
        for at, new, actor, kind in changes:
            if at > end_s:
                break
            if actor == "agent":
                actor = ticket_agents[line_at(at)]
            elif actor == "client":
                actor = requester
            if kind == "status":
                events.append((at, "status", actor, status_data(status, new)))
            elif kind == "auto_close":
                events.append((at, "status", None, auto_close_json))
            else:
                events.append((at, kind, actor, empty))
            status = new
            if new == "resolved":
                resolved_at = at
                handled = at
            elif new == "closed":
                closed_at = at
                if actor is not None:      # closed by the agent (not the auto-close)
                    handled = at
            else:
                resolved_at = None
        fr_seen = fr is not None and fr <= end_s
        assignee = None
        if fr_seen:
            responder = ticket_agents[line_at(fr)]
            events.append((fr, "first_response", responder, empty))
            if rand() < 0.5:
                assignee = responder
                events.append((fr, "assigned", responder, f'{{"from": null, "to": "{assignee}"}}'))
        else:
            responder = None
        for k, e in enumerate(esc_times):
            if e > end_s:
                break
            if fr is None or e < fr or rand() < 0.3:      # the OLA timer moved it
                events.append((e, "escalated", None, f'{{"from": "{esc_line[k]}", "to": '
                               f'"{esc_line[k + 1]}", "reason": "{ola_reason[esc_line[k]]}"}}'))
            else:
                events.append((e, "escalated", ticket_agents[k], f'{{"from": "{esc_line[k]}", '
                               f'"to": "{esc_line[k + 1]}"}}'))
        breached_at = None
        for at, kind in sorted(breaches):
            if at <= end_s:
                breached_at = at if breached_at is None else breached_at
                events.append((at, "sla_breach", None, f'{{"deadline": "{kind}", "due": '
                               f'"{iso(at)}", "line": "{esc_line[line_at(at)]}"}}'))
        if rated_at is not None and rated_at <= end_s:
            events.append((rated_at, "rated", requester,
                           f'{{"rating": {rating}, "comment": ""}}'))
        else:
            rating = rated_at = None
        events.sort(key=first_item)
        for at, kind, actor, data_json in events:
            event_id += 1
            e_rows.append((event_id, tid, sec(at), kind, actor, data_json))
        n_answers = answered_s = answered_bs = 0
        for at, waited_s, waited_bs, first in answers:
            if at > end_s:
                continue
            n_answers += 1
            answered_s += waited_s
            answered_bs += waited_bs
            if responses_table:
                k = line_at(at)
                response_id += 1
                r_rows.append((response_id, tid, sec(at), ticket_agents[k], esc_line[k], first,
                               waited_s, waited_bs))
        if messages:
            for at, from_client in sorted(mails):
                if at > end_s:
                    continue
                message_id += 1
                body = " ".join(sentences[lang][int(rand() * len(sentences[lang]))]
                                for _ in range(2 + int(rand() * 3)))
                if from_client:
                    sender, sender_name, role = requester, requester_name, "client"
                else:
                    sender, sender_name, role = ticket_agents[line_at(at)], "", "agent"
                domain = sender.rpartition("@")[2]
                m_rows.append((message_id, tid, "in", role, message_id_for(rng, domain), sender,
                               sender_name, to_support, "[]",
                               subject if at == c else f"Re: [MD-{first_number + i}] {subject}",
                               sec(at), sec(at), body, False,
                               "new" if at == c else "token", False, "[]"))

        # The ticket row as of `end`.
        kept_pauses = ", ".join(
            f'["{iso(p0)}", "{iso(p1)}"]' if p1 is not None and p1 <= end_s else
            f'["{iso(p0)}", null]' for p0, p1 in pauses if p0 <= end_s)
        waiting = None
        if status == "open":
            for f, a in waits:
                if f <= end_s < a:
                    waiting = f
        if handled is not None:
            closed_pauses = [p for p in pauses if p[1] is not None and p[1] <= handled]
            handling_s = handled - c
            handling_bs = clock.prefix(handled) - pc - sum(
                clock.prefix(p1) - clock.prefix(p0) for p0, p1 in closed_pauses)
            resolved_by = ticket_agents[line_at(handled)]
        else:
            handling_s = handling_bs = resolved_by = None
        shown_res_due = due_after(res_clock, c, res_target,
                                  [p for p in pauses if p[0] <= end_s and p[1] is not None
                                   and p[1] <= end_s])
        last_mail = max(at for at, _ in mails if at <= end_s)
        updated = max(events[-1][0], c)
        k_end = line_at(end_s)
        line = esc_line[k_end]
        line_entered = esc_times[k_end - 1] if k_end else c
        row = (
            tid, first_number + i, reply_token, subject, subject.casefold(), status, prio, line,
            category, lang, requester, requester_name, SUPPORT, sec(c), sec(updated),
            sec(last_mail), sec(resolved_at) if resolved_at is not None else None,
            sec(closed_at) if closed_at is not None else None, sec(fr_due),
            sec(shown_res_due) if shown_res_due is not None else None, "[]", assignee, policy,
            agent_token, sec(fr) if fr_seen else None, sec(line_entered),
            sec(waiting) if waiting is not None else None, None,
            sec(breached_at) if breached_at is not None else None, f"[{kept_pauses}]",
            rating, sec(rated_at) if rated_at is not None else None, first_line, responder,
            (fr - c) if fr_seen else None, answers[0][2] if fr_seen else None, resolved_by,
            handling_s, handling_bs, n_esc, sum(1 for o in reopens if o <= end_s))
        t_rows.append(row + (n_answers, answered_s, answered_bs) if response_sums else row)
        p_rows.append((tid, tid, requester, requester_name, "client"))

        statuses[status] = statuses.get(status, 0) + 1
        figures.breached += breached_at is not None
        figures.escalated += n_esc > 0
        figures.reopened += any(o <= end_s for o in reopens)
        figures.rated += rating is not None
        figures.on_line1 += line == "line1"
        figures.tickets += 1
        if len(t_rows) >= chunk:
            figures.clients = len(seen_clients)
            yield tuple(lists)
            t_rows, p_rows, r_rows, e_rows, m_rows = [], [], [], [], []
            lists = [t_rows, p_rows, e_rows] + ([r_rows] if responses_table else []) + (
                [m_rows] if messages else [])
    figures.clients = len(seen_clients)
    if t_rows:
        yield tuple(lists)


def _worker(queue: Any, kw: dict[str, Any]) -> None:
    import marshal
    import traceback

    try:
        figures = kw["figures"]
        for chunk in generate(**kw):
            queue.put(("rows", marshal.dumps(chunk)))
        queue.put(("done", dict(vars(figures))))
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def generate_in_worker(**kw: Any) -> Iterator[tuple[list, ...]]:
    """generate(**kw) run in a forked child process, its chunks handed over marshalled
    through a bounded queue: the rows are made while this process loads the previous ones."""
    import marshal
    import multiprocessing
    import queue as queues

    ctx = multiprocessing.get_context("fork")
    channel = ctx.Queue(maxsize=3)
    figures = kw["figures"]
    proc = ctx.Process(target=_worker, args=(channel, kw), name="seed-generator", daemon=True)
    proc.start()
    try:
        while True:
            try:
                kind, payload = channel.get(timeout=5)
            except queues.Empty:
                if proc.exitcode is not None:
                    raise RuntimeError(f"the generator process died ({proc.exitcode})") from None
                continue
            if kind == "rows":
                yield marshal.loads(payload)
            elif kind == "done":
                vars(figures).update(payload)
                return
            else:
                raise RuntimeError("the generator process failed:\n" + payload)
    finally:
        if proc.is_alive():
            proc.terminate()     # our own child, on an early exit of the consumer
        proc.join()


# -- seeding a database ----------------------------------------------------------------------
@dataclass
class SeedResult:
    database: str
    tickets: int
    rows: dict[str, int]
    seconds: float            # migrate + generate + load, wall clock
    load: LoadStats
    db_bytes: int
    figures: SeedFigures
    last_number: int


def migrate(db_url: str, config_dir: Path) -> Any:
    """Settings from a temp copy of config/ pointed at `db_url`, the schema migrated."""
    from maildesk.app import upgrade_database
    from maildesk.config.model import load_settings

    settings = load_settings(write_config_set(config_dir, db_url))
    upgrade_database(settings)
    return settings


def seed_database(db: ScratchDatabase, settings: Any, *, tickets: int, years: int = 2,
                  seed: int = 1, end: datetime = DEFAULT_END, messages: bool = False,
                  quiet: bool = False, worker: bool = True) -> SeedResult:
    """Fill the migrated, empty database `db` (settings pointed at it); print progress.
    With `worker` the rows are generated in a child process while this one loads."""
    t_start = time.perf_counter()
    start, end = period(end, years)
    stamps = Stamps(sqlite=db.sqlite)
    figures = SeedFigures()
    calendar = settings.sla_policies.get(settings.sla_policies.default).calendar
    clock = BusinessClock(calendar, (start - timedelta(days=3)).date(),
                          (end + timedelta(days=400)).date())
    bad = check_clock(clock, calendar, int(start.timestamp()), int(end.timestamp()),
                      Random(seed))
    if bad:
        raise SystemExit(f"BusinessClock disagrees with WorkCalendar.between on {bad} samples")
    schema = schema_of(settings, messages)
    tables = schema.tables()
    last = [0.0]

    def progress(rows: dict[str, int], seconds: float) -> None:
        if quiet or (seconds - last[0] < 5 and rows["ticket"] < tickets):
            return
        last[0] = seconds
        total = sum(rows.values())
        print(f"  {rows['ticket']:>9,} tickets, {total:>11,} rows in {seconds:6.1f} s: "
              f"{rows['ticket'] / seconds:>8,.0f} tickets/s, {total / seconds:>9,.0f} rows/s",
              flush=True)

    last_number = settings.first_ticket_number + tickets - 1
    chunks = (generate_in_worker if worker else generate)(
        settings=settings, tickets=tickets, start=start, end=end, seed=seed, stamps=stamps,
        schema=schema, figures=figures)
    stats = db.load(tables, chunks, counters={"ticket": last_number}, progress=progress)
    seconds = time.perf_counter() - t_start
    return SeedResult(db.name, tickets, dict(stats.rows), seconds, stats, db.size(), figures,
                      last_number)


def orm_check(db_url: str, last_number: int) -> list[str]:
    """Load a few rows back through maildesk's ORM (types round-trip) and check a few facts
    with SQL; returns the problems found (none wanted)."""
    from sqlalchemy import func, select

    from maildesk.config.model import Database
    from maildesk.db import models
    from maildesk.db.models import Counter, Ticket, TicketEvent, TicketStatus
    from maildesk.db.session import make_engine, make_sessionmaker

    responses = getattr(models, "TicketResponse", None)     # the earlier form of 0006
    sums = hasattr(Ticket, "response_count")
    if db_url.startswith("postgres"):
        db_url = "postgresql+psycopg://" + db_url.split("://", 1)[1]
    engine = make_engine(Database(url=db_url))
    problems: list[str] = []
    try:
        with make_sessionmaker(engine)() as session:
            counter = session.get(Counter, "ticket")
            if counter is None or counter.value != last_number:
                problems.append(f"counter 'ticket' is {counter and counter.value}")
            for status in TicketStatus:
                ticket = session.scalars(select(Ticket).where(Ticket.status == status)
                                         .order_by(Ticket.id.desc()).limit(1)).first()
                if ticket is None:
                    continue
                if ticket.created_at.utcoffset() is None or not isinstance(ticket.pauses, list) \
                        or not isinstance(ticket.tags, list):
                    problems.append(f"ticket {ticket.number}: types {ticket.created_at!r}, "
                                    f"{ticket.pauses!r}, {ticket.tags!r}")
                answered = ticket.first_responded_at is not None
                if answered and ticket.first_response_s != round(
                        (ticket.first_responded_at - ticket.created_at).total_seconds()):
                    problems.append(f"ticket {ticket.number}: first_response_s")
                if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED) and \
                        ticket.handling_s is None:
                    problems.append(f"ticket {ticket.number}: no handling_s")
                if sums and (ticket.response_count > 0) != answered or sums and answered and (
                        ticket.response_s < ticket.first_response_s
                        or ticket.response_bs < ticket.first_response_bs):
                    problems.append(f"ticket {ticket.number}: response sums")
                events = session.scalars(select(TicketEvent).where(
                    TicketEvent.ticket_id == ticket.id)).all()
                if not events or events[0].kind != "created" or not all(
                        isinstance(e.data, dict) for e in events):
                    problems.append(f"ticket {ticket.number}: events {events!r}")
                if responses is not None:
                    first = session.scalars(select(responses).where(
                        responses.ticket_id == ticket.id, responses.first)).all()
                    if (len(first) == 1) != answered or (first and (
                            first[0].waited_s, first[0].waited_bs)
                            != (ticket.first_response_s, ticket.first_response_bs)):
                        problems.append(f"ticket {ticket.number}: first response row")
            answered_n = session.scalar(select(func.count()).select_from(Ticket).where(
                Ticket.first_responded_at.is_not(None)))
            if sums:
                n = session.scalar(select(func.count()).select_from(Ticket).where(
                    Ticket.response_count > 0))
                if n != answered_n:
                    problems.append(f"{answered_n} answered tickets, {n} with answers counted")
    finally:
        engine.dispose()
    return problems


def describe(result: SeedResult) -> str:
    f = result.figures
    n = max(f.tickets, 1)
    rows = result.load.total_rows
    return (f"{result.database}: {result.tickets:,} tickets, " + ", ".join(
                f"{k} {v:,}" for k, v in result.rows.items())
            + f" ({rows:,} rows) in {result.seconds:.1f} s = {rows / result.seconds:,.0f} rows/s "
            f"overall (insert {result.load.insert_seconds:.1f} s incl. generation, indexes "
            f"{result.load.index_seconds:.1f} s, finish {result.load.finish_seconds:.1f} s); "
            f"{result.db_bytes / 1e6:,.0f} MB\n"
            f"  statuses " + ", ".join(f"{k} {v:,}" for k, v in sorted(f.statuses.items()))
            + f"; breached {f.breached / n:.1%}, escalated {f.escalated / n:.1%}, reopened "
            f"{f.reopened / n:.1%}, rated {f.rated / n:.1%}, on line1 {f.on_line1 / n:.1%}; "
            f"{f.clients:,} distinct clients; counter 'ticket' = {result.last_number:,}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db-url", required=True,
                    help="sqlite:///path.db or postgresql://postgres@127.0.0.1:5432/dbname")
    ap.add_argument("--create", action="store_true", help="create the PostgreSQL database")
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--end", default=DEFAULT_END.isoformat(),
                    help="the history ends here (ISO 8601; default 2026-12-01T00:00Z)")
    ap.add_argument("--messages", action="store_true",
                    help="also a message row (short body) per client mail and agent answer")
    ap.add_argument("--no-worker", action="store_true",
                    help="generate the rows in this process (default: in a child process, "
                    "while this one loads)")
    args = ap.parse_args()
    end = datetime.fromisoformat(args.end.replace("Z", "+00:00"))
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    db = ScratchDatabase(args.db_url, create=args.create and not args.db_url.startswith("sqlite"))
    with tempfile.TemporaryDirectory(prefix="maildesk-seed-") as tmp, Timer() as t_all:
        with Timer() as t_migrate:
            settings = migrate(args.db_url, Path(tmp) / "config")
        print(f"migrated {db.name} in {t_migrate.seconds:.1f} s; seeding {args.tickets:,} "
              f"tickets over {args.years} year(s) before {end.isoformat()}", flush=True)
        result = seed_database(db, settings, tickets=args.tickets, years=args.years,
                               seed=args.seed, end=end, messages=args.messages,
                               worker=not args.no_worker)
    print(describe(result))
    print(f"total {t_all.seconds:.1f} s (migration included)")
    problems = orm_check(args.db_url, result.last_number)
    print("ORM check: " + ("ok (tickets of each status, their events and answer facts load "
                           "back with their types)" if not problems else
                           "PROBLEMS\n  " + "\n  ".join(problems)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
