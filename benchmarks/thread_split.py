"""Threads split by out-of-order delivery (issue 18), measured end to end on the real daemon.

Before the fix, "with 8 SMTP clients delivering a threaded corpus at once, 51 of 910 threads
split": a mail arriving after a reply to it opened a ticket of its own instead of joining the
reply's ticket. This benchmark re-measures that figure.

A seeded corpus of T threads (910; 150 with --quick) is generated with the standard library's
email package: each thread is an original mail from a client plus 1-3 replies, written by the
client or by a colleague at the same company, each answering an earlier mail of the thread
(usually the latest, sometimes an earlier one, so a thread may branch) with In-Reply-To and
References, `Re:`/`RE:`/`Ответ:`/`Отв:` subjects (sometimes stacked), Russian and English text
in utf-8, windows-1251, koi8-r and us-ascii, unique Message-IDs.

For each run a fresh daemon is started as users run it, `maildesk --config <temp copy of
config/> serve` (after `maildesk db upgrade`), on a free loopback port with a temporary SQLite
database and var dir; the mails go in over SMTP; the database is polled until no inbound row is
pending; the daemon is stopped with SIGTERM; then every thread is checked: on one ticket, split
over several, or with a mail quarantined/ignored.

* figure: the corpus shuffled (each thread's mails in a random order, the original held back
  behind its replies in most threads; threads laid out one after another and locally shuffled)
  and dealt round-robin to K = 8 concurrent smtplib clients (threads, one connection each), so
  mails of one thread are in flight together and race;
* baseline: the same corpus in thread order (each mail after the one it answers) from one
  client, which must split nothing.

Target: 0 split threads. Never fails on a figure: exit status 0 unless the benchmark breaks.

    .venv/bin/python benchmarks/thread_split.py [--quick] [--threads N] [--clients K]
                                                [--json out.json] [--seed S] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.header import Header
from email.parser import BytesHeaderParser, BytesParser
from email.utils import format_datetime
from pathlib import Path
from random import Random

from common import (CORPUS_START, EN_FIRST, EN_LAST, EN_SENTENCES, EN_TOPICS, RU_FIRST, RU_LAST,
                    RU_SENTENCES, RU_TOPICS, SUPPORT, TRANSLIT, ServerProcess, Timer, free_port,
                    maildesk_command, message_id_for, run_clients, smtp_client, write_config_set,
                    write_json)

DEFAULT_THREADS = 910
QUICK_THREADS = 150
DEFAULT_CLIENTS = 8
TARGET = 0          # split threads
MSK = timezone(timedelta(hours=3))

RU_PREFIXES = ["Ответ: ", "Re: ", "RE: ", "Отв: ", "Ответ: "]
EN_PREFIXES = ["Re: ", "RE: ", "Re: "]
RU_COMPANIES = ["magnit", "lenta", "dixy", "perekrestok", "vkusvill", "azbuka", "okey", "spar",
                "fixprice", "svetofor", "monetka", "verny"]
EN_COMPANIES = ["northwind", "contoso", "fabrikam", "tailspin", "litware", "wingtip",
                "proseware", "adatum"]
MAILERS = ["Microsoft Outlook 16.0", "Mozilla Thunderbird", "Yandex.Mail", "Mail.Ru Mailer 1.0",
           "Apple Mail (2.3774)", None]


# -- corpus --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    name: str
    address: str
    lang: str       # ru | en
    charset: str


@dataclass(frozen=True)
class ThreadMail:
    thread: int
    index: int                  # 0: the original; 1..3: replies in the order they were written
    parent: int | None          # the index of the mail it answers
    ancestors: frozenset[int]   # indices of the mails it names (In-Reply-To + References)
    author: str                 # client | colleague
    sender: str
    message_id: str             # without angle brackets
    raw: bytes

    @property
    def label(self) -> str:
        return "O" if self.index == 0 else f"R{self.index}"

    def describe(self) -> str:
        if self.parent is None:
            return f"O (client {self.sender})"
        answers = "O" if self.parent == 0 else f"R{self.parent}"
        return f"{self.label} ({self.author} {self.sender}, answers {answers})"


@dataclass
class Company:
    domain: str
    staff: list[Person]


def _person(rng: Random, lang: str, domain: str, taken: set[str]) -> Person:
    while True:
        if lang == "ru":
            first, last = rng.choice(RU_FIRST), rng.choice(RU_LAST)
            local = f"{first.lower().translate(TRANSLIT)}.{last.lower().translate(TRANSLIT)}"
            charset = rng.choices(["utf-8", "windows-1251", "koi8-r"], [5, 3, 2])[0]
        else:
            first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
            local = f"{first}.{last}".lower()
            charset = rng.choice(["us-ascii", "utf-8"])
        address = f"{local}@{domain}"
        if address not in taken:
            taken.add(address)
            return Person(f"{first} {last}", address, lang, charset)


def _companies(rng: Random, n: int) -> list[Company]:
    out = []
    for i in range(n):
        ru = rng.random() < 0.65
        word = rng.choice(RU_COMPANIES if ru else EN_COMPANIES)
        domain = f"{word}{i}.{'ru' if ru else rng.choice(['com', 'co.uk', 'de'])}"
        taken: set[str] = set()
        # Mostly one language per company, with a colleague of the other now and then.
        staff = [_person(rng, ("ru" if ru else "en") if rng.random() < 0.85
                         else ("en" if ru else "ru"), domain, taken)
                 for _ in range(rng.randint(2, 5))]
        out.append(Company(domain, staff))
    return out


def _body(rng: Random, author: Person, parent: tuple[Person, datetime, str] | None) -> str:
    pool = RU_SENTENCES if author.lang == "ru" else EN_SENTENCES
    lines = [pool[0], ""] + [rng.choice(pool[1:]) for _ in range(rng.randint(1, 5))]
    text = "\n".join(lines) + f"\n\n{author.name}\n"
    if parent is not None:
        who, when, quoted = parent
        if author.lang == "ru":
            intro = f"{when:%d.%m.%Y %H:%M}, {who.name} <{who.address}> пишет:"
        else:
            intro = f"On {when:%a, %d %b %Y at %H:%M}, {who.name} <{who.address}> wrote:"
        text += "\n" + intro + "\n" + "\n".join(
            f"> {line}" if line else ">" for line in quoted.splitlines()[:40]) + "\n"
    return text


def _render(rng: Random, author: Person, subject: str, when: datetime, message_id: str,
            parent_id: str | None, references: list[str], text: str) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    _set_header(msg, "From", author.name, author.charset, f" <{author.address}>")
    msg["To"] = SUPPORT
    _set_header(msg, "Subject", subject, author.charset)
    msg["Date"] = format_datetime(when.astimezone(MSK))
    msg["Message-ID"] = f"<{message_id}>"
    if parent_id is not None:
        msg["In-Reply-To"] = f"<{parent_id}>"
        msg["References"] = " ".join(f"<{r}>" for r in references)
    mailer = rng.choice(MAILERS)
    if mailer:
        msg["X-Mailer"] = mailer
    charset = author.charset
    try:
        text.encode(charset)
    except UnicodeEncodeError:   # a quote in the other language, or Cyrillic in us-ascii
        charset = "utf-8"
    if charset == "us-ascii":
        msg.set_content(text, charset=charset, cte="7bit")
    else:
        msg.set_content(text, charset=charset,
                        cte=rng.choice(["8bit", "quoted-printable", "base64"]))
    raw = msg.as_bytes()
    back = BytesParser(policy=policy.default).parsebytes(raw)
    if str(back["Subject"]) != subject or back["From"].addresses[0] != \
            Address(author.name, addr_spec=author.address):
        raise AssertionError(f"generated headers do not read back: {back['Subject']!r} "
                             f"{back['From']!r} (meant {subject!r}, {author.name!r})")
    return raw


def _set_header(msg: EmailMessage, name: str, text: str, charset: str, tail: str = "") -> None:
    """`Name: text` + `tail`, with RFC 2047 words in the writer's charset when not ASCII.

    Encoded with email.header.Header and stored as is: the modern policy's own folding of a
    long non-ASCII Subject (CPython 3.11) may drop the space where it splits two encoded words
    ("не читает штрихкоды" read back as "не читаетштрихкоды"), which changes the subject."""
    if text.isascii():
        value = (f'"{text}"' if tail else text) + tail
        msg[name] = value
        return
    try:
        text.encode(charset)
    except (UnicodeEncodeError, LookupError):
        charset = "utf-8"
    if charset == "us-ascii":
        charset = "utf-8"
    encoded = Header(text, charset, header_name=name).encode(linesep="\r\n")
    msg.set_raw(name, encoded + tail)


def generate_threads(n: int, seed: int) -> list[list[ThreadMail]]:
    """`n` threads: an original and 1-3 replies each, from random.Random(seed)."""
    rng = Random(seed)
    companies = _companies(rng, max(10, n // 3))
    used_ids: set[str] = set()
    threads: list[list[ThreadMail]] = []
    when = CORPUS_START
    for t in range(n):
        company = rng.choice(companies)
        client = rng.choice(company.staff)
        colleagues = [p for p in company.staff if p is not client]
        topics = RU_TOPICS if client.lang == "ru" else EN_TOPICS
        store = rng.randrange(1, 10000)
        subject = rng.choice(topics) + (f", магазин {store}" if client.lang == "ru"
                                        else f" (store {store})")
        when += timedelta(seconds=rng.randint(5, 90))
        # What each mail of the thread is: (author, subject, date, text, message id, references).
        written: list[tuple[Person, str, datetime, str, str, list[str]]] = []
        mails: list[ThreadMail] = []
        for i in range(1 + rng.choice([1, 1, 2, 2, 3])):
            if i == 0:
                author, role, parent = client, "client", None
                subj, text, refs = subject, _body(rng, client, None), []
            else:
                colleague = rng.random() < 0.45
                author = rng.choice(colleagues) if colleague else client
                role = "colleague" if colleague else "client"
                # Mostly the latest mail; sometimes an earlier one (the thread branches).
                parent = i - 1 if rng.random() < 0.65 else rng.randrange(i)
                p_author, p_subject, p_when, p_text, p_id, p_refs = written[parent]
                prefix = rng.choice(RU_PREFIXES if author.lang == "ru" else EN_PREFIXES)
                subj = prefix + (p_subject if rng.random() < 0.25 else subject)
                text = _body(rng, author, (p_author, p_when, p_text))
                refs = [*p_refs, p_id]
            mail_when = when + timedelta(minutes=20 * i + rng.randint(0, 15))
            while (mid := message_id_for(rng, author.address.rpartition("@")[2])) in used_ids:
                pass
            used_ids.add(mid)
            raw = _render(rng, author, subj, mail_when, mid, refs[-1] if refs else None, refs,
                          text)
            written.append((author, subj, mail_when, text, mid, refs))
            ancestors = frozenset(j for j, w in enumerate(written[:-1]) if w[4] in refs)
            mails.append(ThreadMail(t, i, parent, ancestors, role, author.address, mid, raw))
        threads.append(mails)
    return threads


def thread_order(threads: list[list[ThreadMail]]) -> list[ThreadMail]:
    return [m for thread in threads for m in thread]


def racing_order(threads: list[list[ThreadMail]], rng: Random, clients: int) -> list[ThreadMail]:
    """Each thread's mails in a random order, the original moved behind its replies in half of
    the threads where it came first; threads one after another, then shuffled locally (a
    window of 2K positions) so that dealt round-robin to K clients a thread's mails race."""
    seq: list[ThreadMail] = []
    for thread in threads:
        mails = list(thread)
        rng.shuffle(mails)
        if mails[0].index == 0 and rng.random() < 0.5:
            mails.append(mails.pop(0))
        seq.extend(mails)
    keyed = sorted(enumerate(seq), key=lambda p: p[0] + rng.uniform(0, 2 * clients))
    return [m for _, m in keyed]


# -- delivery ------------------------------------------------------------------------------------
@dataclass
class Delivery:
    sent: int = 0
    retries: int = 0        # 4xx answers retried, as an MTA would
    refused: list[str] = field(default_factory=list)   # message ids never accepted
    seconds: float = 0.0


def deliver(port: int, order: list[ThreadMail], clients: int) -> Delivery:
    """K threads, one SMTP connection each, client i sending order[i::K] in turn."""
    shares = [order[i::clients] for i in range(clients)]
    result = Delivery()
    lock = threading.Lock()
    def send(i: int, smtp: smtplib.SMTP) -> smtplib.SMTP:
        for mail in shares[i]:
            accepted = False
            for attempt in range(6):
                try:
                    smtp.sendmail(mail.sender, [SUPPORT], mail.raw)
                    accepted = True
                    break
                except smtplib.SMTPServerDisconnected:
                    smtp = smtp_client(port)
                except smtplib.SMTPResponseException as exc:
                    temporary = 400 <= exc.smtp_code < 500
                    if not temporary or result.retries < 3:
                        print(f"  client {i}: {mail.message_id}: {exc.smtp_code} "
                              f"{exc.smtp_error!r}" + (" (retried)" if temporary else ""),
                              file=sys.stderr)
                    if not temporary:
                        break
                except smtplib.SMTPRecipientsRefused as exc:
                    print(f"  client {i}: {mail.message_id}: {exc.recipients}", file=sys.stderr)
                    break
                with lock:
                    result.retries += 1
                time.sleep(0.2 * 2 ** attempt)
            with lock:
                if accepted:
                    result.sent += 1
                else:
                    result.refused.append(mail.message_id)
        return smtp

    with Timer() as t:   # connecting included
        run_clients(clients, lambda _i: smtp_client(port), send, "smtp")
    result.seconds = t.seconds
    return result


def wait_processed(db: Path, expected: int, stall: float = 120.0) -> float:
    """Poll the database until `expected` arrivals are stored and none is pending; seconds."""
    t0 = time.perf_counter()
    last, last_change = (-1, -1), time.perf_counter()
    while True:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            total, pending = con.execute(
                "SELECT count(*), coalesce(sum(status = 'pending'), 0) FROM inbound").fetchone()
        except sqlite3.OperationalError:   # locked for a moment: ask again
            total, pending = last
        finally:
            con.close()
        if total >= expected and pending == 0:
            return time.perf_counter() - t0
        if (total, pending) != last:
            last, last_change = (total, pending), time.perf_counter()
        elif time.perf_counter() - last_change > stall:
            raise SystemExit(f"processing stalled: {total} stored of {expected}, "
                             f"{pending} pending for {stall:.0f} s")
        time.sleep(0.2)


# -- analysis ------------------------------------------------------------------------------------
@dataclass
class Arrived:
    inbound_id: int
    status: str
    reason: str | None
    ticket: int | None = None           # ticket number
    thread_reason: str | None = None


def read_outcome(db: Path) -> dict[str, Arrived]:
    """What became of every arrival, by Message-ID (the first arrival of each)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    parser = BytesHeaderParser(policy=policy.compat32)
    try:
        tickets = {row[0]: row[1:] for row in con.execute(
            "SELECT m.inbound_id, t.number, m.thread_reason FROM message m "
            "JOIN ticket t ON t.id = m.ticket_id WHERE m.inbound_id IS NOT NULL")}
        out: dict[str, Arrived] = {}
        for inbound_id, status, reason, data in con.execute(
                "SELECT i.id, i.status, i.reason, r.data FROM inbound i "
                "JOIN raw_message r ON r.id = i.raw_id ORDER BY i.id"):
            mid = (parser.parsebytes(bytes(data))["Message-ID"] or "").strip().strip("<>")
            if mid in out:
                continue
            number, why = tickets.get(inbound_id, (None, None))
            out[mid] = Arrived(inbound_id, status, reason, number, why)
        return out
    finally:
        con.close()


@dataclass
class Stray:
    """A ticket of a split thread other than the original's, and the mail that opened it."""

    thread: int
    ticket: int
    opener: ThreadMail
    arrived_before: list[ThreadMail]
    linked_at_arrival: bool       # it named an arrived mail, or an arrived mail named it
    sender_on_main: bool          # its sender had already written on the original's ticket
    other_threads: bool           # the stray ticket also holds mail of another thread

    def kind(self) -> str:
        if self.linked_at_arrival:
            return "named a stored mail of its thread (or was named by one), still a new ticket"
        parent = "the original" if self.opener.parent == 0 else "a reply"
        siblings = any(b.parent == self.opener.parent for b in self.arrived_before)
        where = ("a sibling (same parent) already stored" if siblings
                 else "only other branches of the thread stored")
        return (f"{self.opener.author} reply to {parent} not yet stored; {where}, none naming it "
                f"nor named by it; sender "
                + ("already" if self.sender_on_main else "not") + " on the thread's ticket")

    def summary(self) -> dict:
        return {"thread": self.thread, "ticket": f"MD-{self.ticket}", "opened_by":
                self.opener.describe(), "stored_before": [b.label for b in self.arrived_before],
                "kind": self.kind(), "ticket_holds_other_threads": self.other_threads}


@dataclass
class RunReport:
    name: str
    clients: int
    mails: int
    delivery: Delivery
    processing_seconds: float
    threads: int = 0
    branching: int = 0         # threads with two mails neither of which names the other
    split: int = 0
    split_branched: int = 0    # of them, threads that branch
    whole: int = 0
    held: int = 0              # threads with a mail quarantined, ignored, duplicate or missing
    quarantined: int = 0       # mails
    statuses: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    original_late: int = 0     # threads where a reply was stored before the original
    merged_tickets: int = 0    # tickets holding mails of more than one thread
    tickets: int = 0
    split_threads: list[int] = field(default_factory=list)
    strays: list[Stray] = field(default_factory=list)
    outcome: dict[str, Arrived] = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        return {"name": self.name, "clients": self.clients, "mails": self.mails,
                "accepted": self.delivery.sent, "retries_4xx": self.delivery.retries,
                "refused": len(self.delivery.refused),
                "delivery_seconds": round(self.delivery.seconds, 2),
                "processing_wait_seconds": round(self.processing_seconds, 2),
                "threads": self.threads, "split": self.split,
                "split_branching": self.split_branched, "branching": self.branching,
                "whole": self.whole,
                "threads_with_held_mail": self.held, "quarantined_mails": self.quarantined,
                "threads_with_reply_stored_before_original": self.original_late,
                "tickets": self.tickets, "tickets_with_several_threads": self.merged_tickets,
                "inbound_statuses": dict(self.statuses), "thread_reasons": dict(self.reasons),
                "split_threads": self.split_threads,
                "stray_kinds": dict(Counter(s.kind() for s in self.strays)),
                "strays": [s.summary() for s in self.strays]}


def branches(thread: list[ThreadMail]) -> bool:
    """Some reply answers a mail other than the latest: two mails neither of which names the
    other. A chain (each reply answering the one before) cannot split: of any two of its mails
    the later names the earlier, whichever is stored first."""
    return any(m.parent is not None and m.parent != m.index - 1 for m in thread)


def analyse(report: RunReport, threads: list[list[ThreadMail]],
            outcome: dict[str, Arrived]) -> None:
    report.threads = len(threads)
    report.branching = sum(branches(t) for t in threads)
    report.outcome = outcome
    report.statuses = Counter(a.status for a in outcome.values())
    report.quarantined = report.statuses.get("quarantined", 0)
    report.reasons = Counter(a.thread_reason for a in outcome.values() if a.thread_reason)
    owners: dict[int, set[int]] = {}
    for thread in threads:
        for m in thread:
            a = outcome.get(m.message_id)
            if a is not None and a.ticket is not None:
                owners.setdefault(a.ticket, set()).add(m.thread)
    report.tickets = len(owners)
    report.merged_tickets = sum(1 for s in owners.values() if len(s) > 1)
    for thread in threads:
        arrived = {m.index: outcome[m.message_id] for m in thread if m.message_id in outcome}
        tickets = {a.ticket for a in arrived.values() if a.ticket is not None}
        ticketed = all(i in arrived and arrived[i].ticket is not None for i in range(len(thread)))
        if 0 in arrived and any(a.inbound_id < arrived[0].inbound_id
                                for i, a in arrived.items() if i):
            report.original_late += 1
        if len(tickets) > 1:
            report.split += 1
            report.split_branched += branches(thread)
            report.split_threads.append(thread[0].thread)
            report.strays.extend(_strays(thread, arrived, owners))
        elif ticketed:
            report.whole += 1
        if not ticketed:
            report.held += 1


def _strays(thread: list[ThreadMail], arrived: dict[int, Arrived],
            owners: dict[int, set[int]]) -> list[Stray]:
    by_arrival = sorted((m for m in thread if m.index in arrived and arrived[m.index].ticket),
                        key=lambda m: arrived[m.index].inbound_id)
    main = arrived[0].ticket if 0 in arrived and arrived[0].ticket else \
        Counter(arrived[m.index].ticket for m in by_arrival).most_common(1)[0][0]
    out, seen = [], {main}
    for pos, m in enumerate(by_arrival):
        ticket = arrived[m.index].ticket
        if ticket in seen:
            continue
        seen.add(ticket)
        before = by_arrival[:pos]
        linked = any(b.index in m.ancestors or m.index in b.ancestors for b in before)
        on_main = any(b.sender == m.sender and arrived[b.index].ticket == main for b in before)
        out.append(Stray(m.thread, ticket, m, before, linked, on_main,
                         len(owners.get(ticket, ())) > 1))
    return out


# -- runs ----------------------------------------------------------------------------------------
def run(name: str, threads: list[list[ThreadMail]], order: list[ThreadMail], clients: int,
        workdir: Path) -> RunReport:
    workdir.mkdir(parents=True)
    db = workdir / "maildesk.db"
    port = free_port()
    config = write_config_set(workdir / "config", f"sqlite:///{db}", smtp_port=port)
    cli = [*maildesk_command(), "--config", str(config)]
    subprocess.run([*cli, "db", "upgrade"], check=True, capture_output=True)
    server = ServerProcess("maildesk", [*cli, "serve"], "maildesk serving", workdir)
    try:
        delivery = deliver(port, order, clients)
        waited = wait_processed(db, delivery.sent)
    finally:
        server.stop()
    report = RunReport(name, clients, len(order), delivery, waited)
    analyse(report, threads, read_outcome(db))
    return report


def print_run(r: RunReport) -> None:
    d = r.delivery
    print(f"\n{r.name}: {r.mails} mails from {r.clients} client{'s' if r.clients > 1 else ''}, "
          f"{d.sent} accepted in {d.seconds:.1f} s ({d.retries} 4xx retried, "
          f"{r.mails - d.sent} not accepted); all processed {r.processing_seconds:.1f} s later")
    print(f"  threads where a reply was stored before its original: {r.original_late} "
          f"of {r.threads}")
    print(f"  split {r.split} ({r.split_branched} of them among the {r.branching} threads that "
          f"branch), on one ticket {r.whole}, with a mail quarantined/ignored/"
          f"duplicate {r.held}; quarantined mails {r.quarantined}; {r.tickets} tickets, "
          f"{r.merged_tickets} holding mail of several threads")
    print("  inbound: " + ", ".join(f"{k} {v}" for k, v in r.statuses.most_common())
          + "; thread reasons: " + ", ".join(f"{k} {v}" for k, v in r.reasons.most_common()))
    if r.strays:
        print("  what opened the extra tickets:")
        for kind, n in Counter(s.kind() for s in r.strays).most_common():
            print(f"    {n:4d}  {kind}")


def print_examples(r: RunReport, threads: list[list[ThreadMail]], n: int) -> None:
    arrived = r.outcome
    for t in r.split_threads[:n]:
        thread = threads[t]
        print(f"  thread {t}: " + "; ".join(m.describe() for m in thread))
        for m in sorted(thread, key=lambda m: arrived[m.message_id].inbound_id
                        if m.message_id in arrived else 1 << 62):
            a = arrived.get(m.message_id)
            where = (f"MD-{a.ticket} ({a.thread_reason})" if a and a.ticket
                     else (f"{a.status}: {a.reason}" if a else "not stored"))
            print(f"      inbound {a.inbound_id if a else '-':>6}  {m.label:3} -> {where}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"small run: {QUICK_THREADS} threads (default {DEFAULT_THREADS})")
    ap.add_argument("--threads", type=int, help="threads in the corpus (overrides --quick)")
    ap.add_argument("--clients", type=int, default=DEFAULT_CLIENTS,
                    help="concurrent SMTP clients of the measured run")
    ap.add_argument("--seed", type=int, default=1, help="corpus and shuffle seed")
    ap.add_argument("--examples", type=int, default=5, help="split threads to print in full")
    ap.add_argument("--json", metavar="FILE", help="write figure, baseline, ratio, target as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    args = ap.parse_args()
    n = args.threads or (QUICK_THREADS if args.quick else DEFAULT_THREADS)

    with Timer() as t:
        threads = generate_threads(n, args.seed)
    mails = thread_order(threads)
    sizes = sorted(len(m.raw) for m in mails)
    replies = Counter(len(th) - 1 for th in threads)
    branched = sum(branches(th) for th in threads)
    print(f"thread_split: {n} threads, {len(mails)} mails (replies per thread: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(replies.items()))
          + f"; {branched} threads branch; colleague replies "
          f"{sum(m.author == 'colleague' for m in mails)}; median {sizes[len(sizes) // 2]} bytes;"
          f" generated in {t.seconds:.1f} s, seed {args.seed})")

    race = racing_order(threads, Random(args.seed * 7919 + 1), args.clients)
    workdir = Path(tempfile.mkdtemp(prefix="maildesk-thread-split-"))
    try:
        measured = run(f"shuffled, {args.clients} concurrent clients", threads, race,
                       args.clients, workdir / "race")
        print_run(measured)
        if measured.split_threads and args.examples:
            print(f"  first {min(args.examples, measured.split)} split threads "
                  "(mails in storing order):")
            print_examples(measured, threads, args.examples)
        baseline = run("thread order, 1 client", threads, mails, 1, workdir / "ordered")
        print_run(baseline)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ratio = measured.split / n if n else 0.0
    verdict = "PASS" if measured.split <= TARGET else "MISS"
    print(f"\nfigure: {measured.split} of {n} threads split "
          f"({args.clients} concurrent clients, shuffled)")
    print(f"baseline: {baseline.split} of {n} threads split (thread order, 1 client)")
    print(f"ratio split/threads: {ratio:.4f}   target {TARGET} split  {verdict}")
    if args.json:
        write_json(args.json, {
            "benchmark": "thread_split", "figure": measured.split, "threads": n,
            "baseline": baseline.split, "ratio": round(ratio, 5), "target": TARGET,
            "verdict": verdict, "mails": len(mails), "clients": args.clients, "seed": args.seed,
            "runs": [measured.summary(), baseline.summary()]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
