"""Routing throughput of the rules engine: 1,000 rules against 10, over the same messages.

The corpus (`generate_corpus`) is parsed once, up front: parsing is not what is measured. What
is timed is what the processor does for every message that opens a ticket
(maildesk/process/run.py): `mail_facts(message, sender, sender_name, envelope_to=...,
at=...)` (which also runs `detect_language`) and `RuleSet.evaluate(facts)`, with fresh
MailFacts every time (their lowered subject/body and header map are computed on first use,
inside the clock, as in production). `sender_of` is called untimed: in the daemon the sender is
known before routing (threading needs it).

Two rule sets, written as rules.yaml files into a temp dir, loaded with `load_yaml`, checked
against the rules schema and compiled with `compile_rules` as `load_settings` does (lines and
policies from config/lines.yaml and config/sla.yaml, calendars from `calendars_from_sla`);
any problem stops the benchmark:

* **10 rules** (the baseline): List-Id -> ignore, a key-customer domain rule, Russian/English
  subject keyword rules (one with `any` over subject and body), a body keyword rule with
  `stop`, a regex (contract number), a language rule, a `business_hours: false` rule and a
  `not` rule (sender outside the known customer domains).
* **1,000 rules**: the List-Id rule first, then 990 generated rules of the kinds admins write by
  the hundred, then the other nine: 500 per-customer `from: {domain: ...}`, 150
  `from: {in: [...]}` lists of addresses and domains, 40 `from: {in: {file: ...}}` list files
  (20-300 entries each), 20 recipient rules, 200 subject/body keyword rules (product names and
  support words, Russian and English), 50 `all`/`any`/`not` combinations, 10 regexes (1%),
  20 header/attachment/to/cc rules. 13 of them have no trigger and are tried on every message
  (8 of the regexes, the attachment, X-Mailer and `exists: false` tests). Some use the corpus'
  domains, senders, recipient and words, so about 110 different rules match and their
  predicates run.

Figure: µs per message with 1,000 rules; baseline: µs per message with 10 rules, measured in
the same run: each pass over the corpus goes in chunks of 50 messages, every chunk timed with
one set and then the other (which goes first alternates), so that a busy neighbour on the
machine hits both alike; R runs of P passes, medians. Target: ratio <= 3. Not timed,
before the runs: for every message and both sets, `evaluate(facts)` must equal
`evaluate(facts, exhaustive=True)`; a disagreement is reported and makes the verdict MISS.
Extra figures: `evaluate` alone (facts built outside the clock) and the exhaustive evaluation
(every rule's predicate), which shows what the trigger index saves. Exit status 0 unless the
benchmark itself breaks.

    .venv/bin/python benchmarks/rules.py [--quick] [--json out.json] [--seed S] [--repeat R]
                                         [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from random import Random
from typing import Any, NamedTuple

import yaml

from common import DOMAINS, ROOT, SUPPORT, Mail, Timer, describe_corpus, generate_corpus, write_json

TARGET_RATIO = 3.0     # µs/message with 1,000 rules / µs/message with 10 rules, at most
CHUNK = 50             # messages timed for one rule set, then for the other

# Domains of the corpus that belong to customers (the rest are free-mail providers).
CUSTOMER_DOMAINS = ["tander.ru", "magnit-retail.ru", "shop-kazan.ru", "retail-group.com",
                    "corp.example.org"]
assert set(CUSTOMER_DOMAINS) <= set(DOMAINS)

# -- vocabulary of the generated rules ---------------------------------------------------------
CHAINS = ["azbuka", "vkusvill", "lenta", "okey", "dixy", "perekrestok", "metro-cc", "auchan",
          "spar", "fixprice", "svetofor", "monetka", "maria-ra", "bristol", "krasnoe-beloe",
          "eldorado", "mvideo", "dns-shop", "sportmaster", "detmir", "lerua", "obi-rus",
          "petrovich", "apteka", "rigla", "zdravcity", "hleb-i-ko", "coffee-like", "dodo-pizza",
          "sushi-wok", "flowers24", "optika-plus", "zoo-mir", "chitai-gorod", "zolotoe-yabloko",
          "vseinstrumenti", "autodoc", "farmlend", "winestyle", "igrushki", "kari", "gloria",
          "ostin", "familia", "hoff", "askona", "tehnopark", "citilink", "ulybka", "podruzhka"]
CITIES = ["", "-msk", "-spb", "-kzn", "-ekb", "-nsk", "-nn", "-samara", "-ufa", "-perm", "-rnd",
          "-krd", "-vrn", "-omsk", "-chel", "-tmn", "-tula", "-yar"]
TLDS = [".ru", ".ru", ".ru", ".com", ".su", ".net"]
PRODUCTS = ["Атол 30Ф", "Атол 91Ф", "Атол Sigma 10", "Эвотор 7.3", "Эвотор 10", "Штрих-М",
            "Штрих-Лайт", "Меркурий 185Ф", "Frontol 6", "Frontol xPOS", "1С:Розница", "iiko",
            "r_keeper", "Ingenico iCT250", "Ingenico Move/5000", "Verifone VX520", "PAX S300",
            "PAX SP30", "Zebra ZD420", "Zebra GK420", "Honeywell 1450g", "Honeywell Voyager",
            "Datecs DP-25", "CAS AP-M", "Масса-К", "Posiflex", "Sunmi T2", "Dreamkas Ф",
            "Viki Print", "Пирит 2Ф", "Модуль Кассир", "МойСклад", "Контур.Маркет", "ЕГАИС",
            "Честный знак", "Меркурий ВСД", "УТМ", "ОФД.ру", "Такском", "Первый ОФД",
            "Mertech", "Newland", "Сканпорт", "АТОЛ Impulse", "Kaspi", "Tillypad", "Quick Resto",
            "Poster POS", "Aqsi", "Elme"]
# Words that occur in the corpus' subjects and bodies...
CORPUS_WORDS = ["чек", "касс", "фискальн", "терминал", "сканер", "штрихкод", "отчёт", "весы",
                "личный кабинет", "пароль", "выезд", "инженер", "прошивк", "этикет", "смен",
                "расхождени", "зависает", "receipt", "printer", "terminal", "scanner", "barcode",
                "report", "scale", "portal", "engineer", "firmware", "label", "freezes",
                "mismatch", "connection lost"]
# ... and words that do not (other topics of a support desk).
OTHER_WORDS = ["возврат", "инкассаци", "маркировк", "refund", "invoice", "contract renewal",
               "price list", "loyalty", "бонусн", "скидк", "акци", "доставк", "delivery",
               "warehouse", "склад", "инвентаризаци", "stocktaking", "алкогол", "табак", "кэшбэк",
               "сертификат", "certificate", "vpn", "wi-fi", "электронная подпись", "эцп",
               "договор поставки", "счёт-фактур", "акт сверки", "reconciliation", "outage",
               "авария", "security", "фишинг", "phishing", "gdpr", "персональные данные"]
CATEGORIES = ["pos", "payments", "fiscal", "scanners", "scales", "reports", "portal", "network",
              "hardware", "billing", "labels", "integration", "egais", "marking"]


# -- rule sets -----------------------------------------------------------------------------------
def base_rules() -> list[dict[str, Any]]:
    """The 10-rule set: what a small desk writes by hand."""
    return [
        {"name": "mailing lists are not tickets",
         "match": {"header": {"List-Id": {"exists": True}}}, "action": "ignore"},
        {"name": "key customers",
         "match": {"from": {"domain": ["tander.ru", "magnit-retail.ru"]}},
         "set": {"line": "line2", "priority": "P2", "tags": ["key-account"]}},
        {"name": "cash registers are urgent",
         "match": {"subject": {"contains": ["касса", "кассы", "cash register", "register"]}},
         "set": {"priority": "P1", "category": "pos"}},
        {"name": "fiscal errors",
         "match": {"any": [{"subject": {"contains": ["фискальн", "накопител"]}},
                           {"body": {"contains": ["фискальным накопителем", "fiscal"]}}]},
         "set": {"line": "line2", "category": "fiscal", "sla_policy": "standard"}},
        {"name": "payment terminals",
         "match": {"subject": {"contains": ["терминал", "оплат", "card terminal", "payment"]}},
         "set": {"category": "payments", "tags": ["payments"]}},
        {"name": "contract number given",
         "match": {"body": {"regex": r"\b\d{2}-\d{4}/\d{4}\b"}}, "set": {"tags": ["contract"]}},
        {"name": "english speakers",
         "match": {"language": {"in": ["en"]}}, "set": {"language": "en", "tags": ["english"]}},
        {"name": "after hours", "match": {"business_hours": False},
         "set": {"tags": ["after-hours"]}},
        {"name": "not a customer domain",
         "match": {"not": {"from": {"domain": CUSTOMER_DOMAINS}}},
         "set": {"tags": ["unknown-customer"]}},
        {"name": "client says it is solved",
         "match": {"body": {"contains": ["после вашей подсказки всё заработало",
                                         "your hint solved it"]}},
         "set": {"tags": ["solved-by-client"], "priority": "P4"}, "stop": True},
    ]


class _Gen:
    """Generated rules of the kinds admins write by the hundred, from one Random."""

    def __init__(self, rng: Random, senders: list[str], agents: list[str], lines: list[str],
                 list_dir: Path):
        self.rng = rng
        self.senders = senders
        self.agents = agents
        self.lines = lines
        self.list_dir = list_dir
        self.used_domains: set[str] = set()
        self.n = 0

    def domain(self) -> str:
        rng = self.rng
        for _ in range(1000):
            d = rng.choice(CHAINS) + rng.choice(CITIES) + rng.choice(TLDS)
            if d not in self.used_domains:
                self.used_domains.add(d)
                return d
        d = f"shop{len(self.used_domains)}.ru"
        self.used_domains.add(d)
        return d

    def address(self, domain: str | None = None) -> str:
        rng = self.rng
        local = rng.choice(["buh", "it", "director", "admin", "kassa", "zakaz", "office",
                            "manager", "support", "shop", "store"]) + str(rng.randrange(1, 999))
        return f"{local}@{domain or self.domain()}"

    def values(self, slug: str) -> dict[str, Any]:
        rng = self.rng
        out: dict[str, Any] = {}
        if rng.random() < 0.6:
            out["line"] = rng.choice(self.lines)
        if rng.random() < 0.5:
            out["priority"] = rng.choice(["P1", "P2", "P2", "P3", "P4"])
        if rng.random() < 0.4:
            out["category"] = rng.choice(CATEGORIES)
        if rng.random() < 0.7:
            out["tags"] = [slug] + ([rng.choice(CATEGORIES)] if rng.random() < 0.3 else [])
        if rng.random() < 0.15:
            out["assignee"] = rng.choice(self.agents)
        if rng.random() < 0.1:
            out["sla_policy"] = "standard"
        return out or {"tags": [slug]}

    def rule(self, name: str, match: dict[str, Any], slug: str,
             customer: bool = False) -> dict[str, Any]:
        self.n += 1
        rule: dict[str, Any] = {"name": f"{self.n:03d} {name}", "match": match,
                                "set": self.values(slug)}
        roll = self.rng.random()
        if customer and roll < 0.03:     # a customer whose routing is settled: stop there
            rule["stop"] = True
        elif customer and roll < 0.04:
            rule["action"] = "no_autoreply"
        return rule

    def keyword(self, real: float) -> str:
        roll = self.rng.random()
        if roll < real:
            return self.rng.choice(CORPUS_WORDS)
        if roll < real + 0.15:
            return self.rng.choice(OTHER_WORDS)
        return self.rng.choice(PRODUCTS)

    def customers_by_domain(self, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        # A few of them are the corpus' customers (their own rule, or a subdomain of it).
        real = [d for d in CUSTOMER_DOMAINS for _ in range(2)] + [
            f"{rng.choice(['kzn', 'msk', 'spb'])}.{d}" for d in CUSTOMER_DOMAINS]
        step = count // len(real)
        for i in range(count):
            if i % step == 0 and real:
                domains = [real.pop()]
            else:
                domains = [self.domain() for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            out.append(self.rule(f"customer {domains[0]}", {"from": {"domain": domains}},
                                 domains[0].split(".")[0], customer=True))
        return out

    def entries(self, size: int, real_senders: int) -> list[str]:
        rng = self.rng
        items: list[str] = []
        own = self.domain()
        for _ in range(size):
            roll = rng.random()
            items.append(self.address(own) if roll < 0.5 else self.address() if roll < 0.85
                         else self.domain())
        for _ in range(real_senders):
            items.insert(rng.randrange(len(items) + 1), rng.choice(self.senders))
        return items

    def customers_by_list(self, count: int) -> list[dict[str, Any]]:
        out = []
        for i in range(count):
            items = self.entries(self.rng.randint(3, 30), 1 if self.rng.random() < 0.2 else 0)
            out.append(self.rule(f"contacts list {i + 1}", {"from": {"in": items}}, f"list{i}",
                                 customer=True))
        return out

    def customers_by_file(self, count: int) -> list[dict[str, Any]]:
        out = []
        self.list_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            items = self.entries(self.rng.randint(20, 300),
                                 self.rng.randint(1, 3) if i % 4 == 0 else 0)
            name = f"customers-{i + 1:02d}.txt"
            lines = [f"# {CHAINS[i % len(CHAINS)]}: contacts exported from the CRM"]
            for j, item in enumerate(items):
                lines.append(item if j % 25 else f"{item}    # main office")
            (self.list_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
            out.append(self.rule(f"contract customers {i + 1}",
                                 {"from": {"in": {"file": f"{self.list_dir.name}/{name}"}}},
                                 f"contract{i}", customer=True))
        return out

    def recipients(self, count: int) -> list[dict[str, Any]]:
        out = []
        boxes = ["sales", "billing", "buh", "hr", "partners", "tenders", "service", "kassa",
                 "egais", "noc", "security", "press", "legal", "logistics", "marking", "b2b"]
        for i in range(count - 2):
            names = self.rng.sample(boxes, self.rng.randint(1, 3))
            out.append(self.rule(f"mailbox {names[0]}",
                                 {"recipient": {"in": [f"{b}@example.com" for b in names]}},
                                 f"box-{names[0]}"))
        # These two match the corpus (all of it goes to SUPPORT): the recipient index is used.
        out.append(self.rule("support mailboxes",
                             {"recipient": {"in": [SUPPORT, "help@example.com"]}}, "support"))
        out.append(self.rule("urgent to support",
                             {"all": [{"recipient": {"equals": SUPPORT}},
                                      {"body": {"contains": ["срочно", "urgent"]}}]}, "urgent"))
        return out

    def keywords(self, count: int) -> list[dict[str, Any]]:
        out = []
        for i in range(count):
            words = list(dict.fromkeys(self.keyword(0.08)
                                       for _ in range(self.rng.choice([1, 1, 2, 3, 4]))))
            where = "body" if self.rng.random() < 0.3 else "subject"
            out.append(self.rule(f"keyword {words[0]}", {where: {"contains": words}},
                                 f"kw{i}"))
        return out

    def combinations(self, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        for i in range(count):
            kind = i % 6
            dom = rng.choice(CUSTOMER_DOMAINS) if rng.random() < 0.3 else self.domain()
            if kind == 0:
                match = {"all": [{"from": {"domain": dom}},
                                 {"subject": {"contains": [self.keyword(0.5)]}}]}
            elif kind == 1:
                match = {"any": [{"subject": {"contains": [self.keyword(0.1)]}},
                                 {"body": {"contains": [self.keyword(0.1), self.keyword(0.1)]}}]}
            elif kind == 2:
                match = {"all": [{"subject": {"contains": [self.keyword(0.3)]}},
                                 {"not": {"from": {"domain": CUSTOMER_DOMAINS}}}]}
            elif kind == 3:
                match = {"any": [{"from": {"domain": dom}},
                                 {"from": {"in": self.entries(rng.randint(2, 8), 0)}}]}
            elif kind == 4:
                match = {"all": [{"language": {"equals": rng.choice(["en", "ru"])}},
                                 {"subject": {"contains": [self.keyword(0.4)]}}]}
            else:
                match = {"all": [{"from": {"domain": dom}}, {"business_hours": False}]}
            out.append(self.rule(f"combination {i + 1}", match, f"combo{i}"))
        return out

    def regexes(self) -> list[dict[str, Any]]:
        patterns: list[tuple[str, dict[str, Any]]] = [
            ("store number", {"subject": {"regex": r"(?i)\b(магазин|store) (\d{4})\b"}}),
            ("other desk's ticket id", {"subject": {"regex": r"\b(INC|SR|REQ)\d{6,}\b"}}),
            ("numbered request", {"subject": {"regex": r"№\s*\d+"}}),
            ("reply chain", {"subject": {"regex": r"(?i)^(re|aw|отв|ответ)(\[\d+\])?:"}}),
            ("automatic senders", {"from": {"regex": r"(?i)<(no-?reply|mailer-daemon)@"}}),
            ("INN in body", {"body": {"regex": r"(?i)\b(ИНН|INN)\s*:?\s*\d{10,12}\b"}}),
            ("IP address in body", {"body": {"regex": r"\b(?:\d{1,3}\.){3}\d{1,3}\b"}}),
            ("error code in body", {"body": {"regex": r"(?i)\b(code|код)\s+0x[0-9a-f]{2,}\b"}}),
            ("account number", {"all": [{"subject": {"contains": ["счёт", "invoice", "оплат"]}},
                                        {"body": {"regex": r"\b\d{20}\b"}}]}),
            ("store number from Tander",
             {"all": [{"from": {"domain": "tander.ru"}},
                      {"body": {"regex": r"(?i)магазин\w*\s+№?\s*\d+"}}]}),
        ]
        return [self.rule(f"regex {name}", match, f"rx{i}")
                for i, (name, match) in enumerate(patterns)]

    def misc(self, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        fixed: list[tuple[str, dict[str, Any]]] = [
            ("pdf attached", {"attachment_type": {"contains": "pdf"}}),
            ("spreadsheet attached", {"attachment_type": {"contains": "spreadsheet"}}),
            ("invoice file", {"attachment": {"contains": ["счёт", "invoice"]}}),
            ("outlook users", {"header": {"X-Mailer": {"contains": "outlook"}}}),
            ("autoresponders", {"header": {"Auto-Submitted": {"exists": True}}}),
            ("high importance", {"header": {"Importance": {"exists": True}}}),
            ("x-priority", {"header": {"X-Priority": {"exists": True}}}),
            ("outlook thread", {"header": {"Thread-Index": {"exists": True}}}),
            ("no mailer header", {"header": {"X-Mailer": {"exists": False}}}),
            ("english mail to support", {"all": [{"to": {"equals": SUPPORT}},
                                                 {"language": {"equals": "en"}}]}),
        ]
        out = [self.rule(name, match, f"misc{i}") for i, (name, match) in enumerate(fixed)]
        while len(out) < count:
            if len(out) % 2:
                match = {"cc": {"domain": rng.choice(CUSTOMER_DOMAINS + [self.domain()])}}
            else:
                match = {"to": {"equals": self.address()}}
            out.append(self.rule(f"misc {len(out) + 1}", match, f"misc{len(out)}"))
        return out


def generated_rules(rng: Random, senders: list[str], agents: list[str], lines: list[str],
                    list_dir: Path) -> list[dict[str, Any]]:
    gen = _Gen(rng, senders, agents, lines, list_dir)
    rules = (gen.customers_by_domain(500) + gen.customers_by_list(150) +
             gen.customers_by_file(40) + gen.recipients(20) + gen.keywords(200) +
             gen.combinations(50) + gen.regexes() + gen.misc(20))
    assert len(rules) == 990, len(rules)
    # A rules file grows over the years, not in blocks of one kind.
    rng.shuffle(rules)
    return rules


# -- loading (as load_settings does) -------------------------------------------------------------
@dataclass
class Loaded:
    label: str
    path: Path
    ruleset: Any
    load_seconds: float       # load_yaml + schema validation
    seconds: float            # compile_rules (list files read, index and automata built)


def load_ruleset(path: Path, rules: list[dict[str, Any]], known: Any, label: str) -> Loaded:
    from maildesk.config.errors import ConfigError
    from maildesk.config.load import load_yaml, validate
    from maildesk.rules.engine import compile_rules

    data = {"rules": rules, "default": {"set": {"line": "line1", "priority": "P3"}}}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100),
                    encoding="utf-8")
    with Timer() as load:
        loaded = load_yaml(path)
        try:
            validate(loaded, "rules")
        except ConfigError as exc:
            raise SystemExit(f"{label}: the generated rules do not pass the schema:\n{exc}")
    with Timer() as t:
        ruleset, problems = compile_rules(loaded.data, known, loaded.problem)
    if problems:
        raise SystemExit(f"{label}: compile_rules reported {len(problems)} problem(s):\n"
                         + "\n".join(str(p) for p in problems[:20]))
    if len(ruleset) != len(rules):
        raise SystemExit(f"{label}: compiled {len(ruleset)} rules of {len(rules)}")
    return Loaded(label, path, ruleset, load.seconds, t.seconds)


def make_known(base_dir: Path) -> tuple[Any, list[str], list[str]]:
    from maildesk.config.load import load_yaml
    from maildesk.rules.engine import Known
    from maildesk.sla.calendar import calendars_from_sla, default_calendar_name

    lines = load_yaml(ROOT / "config" / "lines.yaml").data["lines"]
    sla = load_yaml(ROOT / "config" / "sla.yaml").data
    agents: list[str] = []
    for line in lines:
        for agent in line.get("agents", []):
            if isinstance(agent, dict):
                agents += [agent["address"], *agent.get("aliases", [])]
            else:
                agents.append(agent)
    agents = [a.lower() for a in agents]
    known = Known(lines=frozenset(line["id"] for line in lines),
                  policies=frozenset(sla.get("policies", {})), agents=frozenset(agents),
                  calendars=calendars_from_sla(sla), default_calendar=default_calendar_name(sla),
                  base_dir=base_dir)
    return known, agents, [line["id"] for line in lines]


# -- the measured work ---------------------------------------------------------------------------
class Item(NamedTuple):
    """A parsed message and what the processor knows of it before routing."""

    message: Any            # ParsedMessage
    sender: str
    sender_name: str
    envelope_to: tuple[str, ...]
    at: datetime


def prepare(mails: list[Mail]) -> list[Item]:
    """Parse every message and find its sender, as the processor does before routing."""
    from maildesk.pipeline.parse import Unparseable, parse_message
    from maildesk.pipeline.plan import sender_of

    items: list[Item] = []
    for m in mails:
        parsed = parse_message(m.raw)
        if isinstance(parsed, Unparseable):
            raise SystemExit(f"corpus message {m.message_id} is unparseable: {parsed.reason}")
        sender, name = sender_of(parsed, m.mail_from)
        items.append(Item(parsed, sender, name, m.rcpt_to, m.received_at))
    return items


def facts_of(item: Item) -> Any:
    from maildesk.pipeline.routing import mail_facts

    return mail_facts(item.message, item.sender, item.sender_name,
                      envelope_to=item.envelope_to, at=item.at)


def timed_pass(rulesets: dict[int, Any], items: list[Item], mode: str) -> dict[int, float]:
    """Seconds per rule set for one pass over the corpus. The pass goes in chunks of CHUNK
    messages and each chunk is timed for every set in turn (which goes first alternates), so
    that a busy neighbour on the machine hits both sets alike. `mode`: "route" (mail_facts +
    evaluate, the figure), "evaluate" (evaluate alone; fresh facts built outside the clock) or
    "exhaustive" (the same with exhaustive=True)."""
    from maildesk.pipeline.routing import mail_facts

    totals = {size: 0.0 for size in rulesets}
    order = list(rulesets)
    clock = time.perf_counter
    gc.collect()
    for c, start in enumerate(range(0, len(items), CHUNK)):
        chunk = items[start:start + CHUNK]
        for size in (order if c % 2 == 0 else order[::-1]):
            evaluate = rulesets[size].evaluate
            if mode == "route":
                t0 = clock()
                for message, sender, name, rcpt, at in chunk:
                    evaluate(mail_facts(message, sender, name, envelope_to=rcpt, at=at))
                totals[size] += clock() - t0
            else:
                facts = [facts_of(item) for item in chunk]
                exhaustive = mode == "exhaustive"
                t0 = clock()
                for f in facts:
                    evaluate(f, exhaustive=exhaustive)
                totals[size] += clock() - t0
    return totals


def timed(rulesets: dict[int, Any], items: list[Item], mode: str, passes: int) -> dict[int, float]:
    """µs per message per rule set over `passes` passes."""
    totals = {size: 0.0 for size in rulesets}
    for _ in range(passes):
        for size, seconds in timed_pass(rulesets, items, mode).items():
            totals[size] += seconds
    return {size: us_per_msg(seconds, len(items) * passes) for size, seconds in totals.items()}


@dataclass
class Check:
    messages: int
    disagree: list[str]
    matched: Counter        # number of rules matched -> messages
    candidates: float       # mean candidate rules per message
    actions: Counter
    messages_with_match: int
    rules_that_matched: int


def check(ruleset: Any, items: list[Item]) -> Check:
    """Untimed: indexed evaluation == exhaustive, for every message; and what matched."""
    disagree: list[str] = []
    matched: Counter = Counter()
    actions: Counter = Counter()
    ever: set[str] = set()
    cand = 0
    with_match = 0
    for item in items:
        indexed = ruleset.evaluate(facts_of(item))
        full = ruleset.evaluate(facts_of(item), exhaustive=True)
        cand += len(ruleset.candidates(facts_of(item)))
        if indexed != full:
            disagree.append(f"{item.message.message_id}: indexed matched {list(indexed.matched)}, "
                            f"exhaustive {list(full.matched)}")
        matched[len(full.matched)] += 1
        with_match += bool(full.matched)
        ever.update(full.matched)
        actions[full.action or ("no_autoreply" if not full.autoreply else "-")] += 1
    return Check(len(items), disagree, matched, cand / len(items), actions, with_match,
                 len(ever))


def profile_route(ruleset: Any, items: list[Item], passes: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(passes):
        timed_pass({1000: ruleset}, items, "route")
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


# -- main ----------------------------------------------------------------------------------------
def us_per_msg(seconds: float, messages: int) -> float:
    return seconds / messages * 1e6


def verdict_max(ratio: float, target: float, agree: bool) -> str:
    return "PASS" if agree and ratio <= target else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small run: N=300 messages, 3 runs of 2 passes (about 30 s)")
    ap.add_argument("--json", metavar="FILE", help="write figures, baseline, ratio, target as JSON")
    ap.add_argument("-n", "--messages", type=int, help="messages (overrides --quick)")
    ap.add_argument("--repeat", type=int, help="interleaved runs of each measurement "
                    "(default 5, or 3 with --quick); medians are reported")
    ap.add_argument("--passes", type=int,
                    help="passes over the corpus per timed run (default 3, or 2 with --quick)")
    ap.add_argument("--seed", type=int, default=1, help="corpus and rule generation seed")
    ap.add_argument("--profile", action="store_true",
                    help="after the measurements, cProfile the 1,000-rule routing")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (rules files)")
    args = ap.parse_args()
    # maildesk.config first, as the daemon imports it: it imports maildesk.rules.engine, which
    # imports maildesk.config.errors back.
    import maildesk.config  # noqa: F401
    import maildesk.rules.engine

    # Which engine the figures are of (its files may be edited between runs): one hash over
    # every module of the rules package, in name order.
    engine_file = Path(maildesk.rules.engine.__file__).parent
    digest = hashlib.sha256()
    for module in sorted(engine_file.glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    engine_sha = digest.hexdigest()[:16]
    print(f"engine: {engine_file}/*.py (sha256 {engine_sha})")

    n = args.messages or (300 if args.quick else 2000)
    repeat = args.repeat or (3 if args.quick else 5)
    passes = max(1, args.passes or (2 if args.quick else 3))

    with Timer() as t:
        mails = generate_corpus(n, args.seed)
    print(f"corpus (seed {args.seed}): {describe_corpus(mails)}  [generated in {t.seconds:.1f} s]")
    with Timer() as t:
        items = prepare(mails)
    print(f"parsed once, untimed, in {t.seconds:.1f} s")

    tmp = Path(tempfile.mkdtemp(prefix="maildesk-bench-rules-"))
    try:
        known, agents, lines = make_known(tmp)
        senders = sorted({item.sender for item in items})
        base = base_rules()
        generated = generated_rules(Random(args.seed), senders, agents, lines, tmp / "lists")
        sets = {
            10: load_ruleset(tmp / "rules-10.yaml", base, known, "10 rules"),
            1000: load_ruleset(tmp / "rules-1000.yaml", base[:1] + generated + base[1:], known,
                               "1000 rules"),
        }
        for size, loaded in sets.items():
            print(f"{size:>5} rules: {loaded.path.name} loaded and validated in "
                  f"{loaded.load_seconds * 1e3:.0f} ms, compiled in {loaded.seconds * 1e3:.0f} ms")

        print("checking indexed evaluation against exhaustive (untimed)...", flush=True)
        checks = {size: check(loaded.ruleset, items) for size, loaded in sets.items()}
        agree = all(not c.disagree for c in checks.values())
        for size, c in checks.items():
            hist = ", ".join(f"{k}: {v}" for k, v in sorted(c.matched.items()))
            verdict_check = (f"agree on all {c.messages} messages" if not c.disagree else
                             f"DISAGREE on {len(c.disagree)} of {c.messages} messages")
            print(f"{size:>5} rules: indexed and exhaustive evaluation {verdict_check}; "
                  f"{c.candidates:.1f} candidate rules per message; "
                  f"{c.messages_with_match} messages matched a rule, {c.rules_that_matched} "
                  f"distinct rules ever matched; rules matched per message {{{hist}}}; "
                  f"outcome {dict(c.actions)}")
            for line in c.disagree[:10]:
                print(f"      {line}")

        # Warm-up, then the runs (each one interleaved chunk by chunk, see timed_pass).
        rulesets = {size: loaded.ruleset for size, loaded in sets.items()}
        timed_pass(rulesets, items, "route")
        route: dict[int, list[float]] = {10: [], 1000: []}
        evaluate_only: dict[int, list[float]] = {10: [], 1000: []}
        exhaustive: dict[int, list[float]] = {10: [], 1000: []}
        for r in range(repeat):
            for figures, mode, k in ((route, "route", passes), (evaluate_only, "evaluate", passes),
                                     (exhaustive, "exhaustive", 1)):
                for size, us in timed(rulesets, items, mode, k).items():
                    figures[size].append(us)
            print(f"  run {r + 1}/{repeat}: mail_facts+evaluate 10 rules {route[10][-1]:.1f} "
                  f"µs/msg, 1000 rules {route[1000][-1]:.1f} µs/msg (ratio "
                  f"{route[1000][-1] / route[10][-1]:.2f}); evaluate alone "
                  f"{evaluate_only[10][-1]:.1f} / {evaluate_only[1000][-1]:.1f} (ratio "
                  f"{evaluate_only[1000][-1] / evaluate_only[10][-1]:.2f}); exhaustive "
                  f"{exhaustive[10][-1]:.1f} / {exhaustive[1000][-1]:.1f}", flush=True)
        profile = profile_route(sets[1000].ruleset, items, passes) if args.profile else ""
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    med = {k: {s: statistics.median(v) for s, v in d.items()}
           for k, d in (("route", route), ("evaluate", evaluate_only), ("exhaustive", exhaustive))}
    ratio = med["route"][1000] / med["route"][10]
    ratio_eval = med["evaluate"][1000] / med["evaluate"][10]
    result = verdict_max(ratio, TARGET_RATIO, agree)

    def spread(values: list[float]) -> str:
        return "   runs " + ", ".join(f"{v:.1f}" for v in values) if len(values) > 1 else ""

    print(f"\nN={n} messages x {passes} passes, median of {repeat} interleaved run(s); timed: "
          f"mail_facts + evaluate per message")
    for size in (10, 1000):
        us = med["route"][size]
        label = "baseline" if size == 10 else "figure  "
        print(f"{label} {size:>5} rules: {us:8.1f} µs/message  {1e6 / us:9.0f} messages/s"
              f"{spread(route[size])}")
    run_ratios = [b / a for a, b in zip(route[10], route[1000])]
    print(f"ratio 1000/10: {ratio:.2f}  target <= {TARGET_RATIO:g}  {result}"
          + ("" if agree else "  (indexed and exhaustive evaluation DISAGREE)")
          + (f"   runs' own ratios {', '.join(f'{x:.2f}' for x in run_ratios)}"
             if len(run_ratios) > 1 else ""))
    print(f"(info) evaluate alone: 10 rules {med['evaluate'][10]:.1f} µs/message, 1000 rules "
          f"{med['evaluate'][1000]:.1f} µs/message, ratio {ratio_eval:.2f}")
    print(f"(info) exhaustive evaluate (every predicate, no index): 10 rules "
          f"{med['exhaustive'][10]:.1f} µs/message, 1000 rules {med['exhaustive'][1000]:.1f} "
          f"µs/message ({med['exhaustive'][1000] / med['evaluate'][1000]:.1f}x the indexed "
          f"evaluate)")
    if agree:
        print("(info) indexed and exhaustive results agree for every message and both rule sets")
    else:
        print("(info) indexed and exhaustive results DISAGREE: "
              + ", ".join(f"{len(c.disagree)} of {c.messages} messages with {size} rules"
                          for size, c in checks.items()) + " (listed above)")
    if profile:
        print("\ncProfile of mail_facts + evaluate with 1000 rules:\n")
        print(profile)

    if args.json:
        def rounded(values: list[float]) -> list[float]:
            return [round(v, 2) for v in values]
        write_json(args.json, {
            "benchmark": "rules", "quick": args.quick, "messages": n, "passes": passes,
            "seed": args.seed, "repeat": repeat, "corpus": describe_corpus(mails),
            "engine": {"file": str(engine_file), "sha256": engine_sha},
            "timed": "mail_facts + RuleSet.evaluate per message (fresh facts)",
            "figures": {
                "route_us_per_msg": {str(s): rounded(v) for s, v in route.items()},
                "evaluate_only_us_per_msg": {str(s): rounded(v) for s, v in evaluate_only.items()},
                "exhaustive_us_per_msg": {str(s): rounded(v) for s, v in exhaustive.items()},
                "load_validate_ms": {str(s): round(x.load_seconds * 1e3, 1)
                                     for s, x in sets.items()},
                "compile_ms": {str(s): round(x.seconds * 1e3, 1) for s, x in sets.items()},
                "checks": {str(s): {"agree": not c.disagree, "disagree": c.disagree[:20],
                                    "candidates_per_msg": round(c.candidates, 2),
                                    "messages_with_match": c.messages_with_match,
                                    "distinct_rules_matched": c.rules_that_matched,
                                    "rules_matched_per_msg": {str(k): v for k, v in
                                                              sorted(c.matched.items())},
                                    "outcomes": dict(c.actions)}
                           for s, c in checks.items()},
                "run_ratios": [round(x, 3) for x in run_ratios],
                "evaluate_only_ratio": round(ratio_eval, 3),
                "exhaustive_median_us_per_msg": {str(s): round(v, 2)
                                                 for s, v in med["exhaustive"].items()},
            },
            "figure": {"what": "µs/message, mail_facts + evaluate, 1000 rules (median)",
                       "value": round(med["route"][1000], 2),
                       "messages_s": round(1e6 / med["route"][1000], 1)},
            "baseline": {"what": "µs/message, mail_facts + evaluate, 10 rules (median)",
                         "value": round(med["route"][10], 2),
                         "messages_s": round(1e6 / med["route"][10], 1)},
            "ratio": round(ratio, 3),
            "target": {"ratio_max": TARGET_RATIO},
            "agree": agree,
            "verdict": result,
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
