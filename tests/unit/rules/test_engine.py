"""Routing rules (rules.yaml): what each field and operator matches, how matching rules combine,
the mistakes an admin is told about (file, line, key), and that the trigger index never changes
the result of trying every rule in order."""

from __future__ import annotations

import _sre
import dataclasses
import re
import shutil
import textwrap
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from maildesk.config import ConfigError, load_settings
from maildesk.config.load import LoadedYaml, load_schema
from maildesk.rules.engine import (Known, MailFacts, Routing, RuleSet, _literal_sets,
                                   _lowered_forms, _regex_literals, compile_rules)
from maildesk.sla.calendar import calendar_from_config

ROOT = Path(__file__).resolve().parents[3]
MSK = ZoneInfo("Europe/Moscow")

# The calendars of the shipped sla.yaml: Moscow 9-18 Mon-Fri with Russian holidays, and "always".
CALENDARS = {
    "moscow": calendar_from_config("moscow", {
        "timezone": "Europe/Moscow",
        "hours": {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": {"country": "RU", "extra": []}}),
    "always": calendar_from_config("always", {"timezone": "UTC", "hours": "always"}),
}
KNOWN = Known(lines=frozenset({"line1", "line2", "line3"}),
              policies=frozenset({"standard", "vip"}),
              agents=frozenset({"alice@example.com", "carol@example.com"}),
              calendars=CALENDARS, default_calendar="moscow")


@lru_cache(maxsize=1)
def rules_schema() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema("rules"))


def compile_data(data: dict[str, Any], known: Known = KNOWN):
    """compile_rules as load_settings calls it; problems carry the dotted key (no lines here)."""
    return compile_rules(data, known, LoadedYaml(Path("rules.yaml"), data, {}).problem)


def ruleset(text: str, known: Known = KNOWN) -> RuleSet:
    """A rules.yaml that is valid: the schema accepts it and it compiles without a problem."""
    data = yaml.safe_load(textwrap.dedent(text))
    rules_schema().validate(data)   # the examples are things an admin can actually write
    compiled, problems = compile_data(data, known)
    assert problems == []
    return compiled


def problems_of(text: str, known: Known = KNOWN) -> list[tuple[str, str]]:
    data = yaml.safe_load(textwrap.dedent(text))
    _, problems = compile_data(data, known)
    return [(p.key, p.message) for p in problems]


def mail(**fields: Any) -> MailFacts:
    fields.setdefault("sender", "client@example.org")
    for name in ("to", "cc", "envelope_to", "headers", "attachments"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return MailFacts(**fields)


def route(rules: RuleSet, facts: MailFacts) -> Routing:
    routing = rules.evaluate(facts)
    # Every example doubles as a check that the index agrees with trying every rule.
    assert routing == rules.evaluate(facts, exhaustive=True)
    return routing


def matches(condition: str, **facts: Any) -> bool:
    """Does a single rule with this `match` (YAML flow text) match this mail?"""
    rules = ruleset(f"rules:\n  - name: the rule\n    match: {condition}\n")
    return route(rules, mail(**facts)).matched == ("the rule",)


# --- fields -------------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, facts, expected", [
    # from: the sender's address; contains also sees the display name
    pytest.param("{from: {equals: ivan@shop.ru}}", dict(sender="ivan@shop.ru"), True,
                 id="from-equals-address"),
    pytest.param("{from: {equals: ivan@shop.ru}}", dict(sender="petr@shop.ru"), False,
                 id="from-equals-other-address"),
    pytest.param("{from: {contains: петров}}",
                 dict(sender="ivan@shop.ru", sender_name="Иван Петров"), True,
                 id="from-contains-display-name"),
    pytest.param("{from: {contains: '@shop.'}}", dict(sender="ivan@shop.ru"), True,
                 id="from-contains-address"),
    pytest.param("{from: {exists: false}}", dict(sender=""), True, id="from-absent"),
    # to and cc are their own headers; recipient is To, Cc and the envelope
    pytest.param("{to: {equals: sales@example.com}}", dict(to=["sales@example.com"]), True,
                 id="to-in-to"),
    pytest.param("{to: {equals: sales@example.com}}", dict(cc=["sales@example.com"]), False,
                 id="to-not-in-cc"),
    pytest.param("{cc: {equals: boss@example.com}}", dict(cc=["x@y.ru", "boss@example.com"]),
                 True, id="cc-in-cc"),
    pytest.param("{cc: {equals: boss@example.com}}", dict(to=["boss@example.com"]), False,
                 id="cc-not-in-to"),
    pytest.param("{recipient: {equals: sales@example.com}}", dict(to=["sales@example.com"]),
                 True, id="recipient-to"),
    pytest.param("{recipient: {equals: sales@example.com}}", dict(cc=["sales@example.com"]),
                 True, id="recipient-cc"),
    pytest.param("{recipient: {equals: sales@example.com}}",
                 dict(envelope_to=["sales@example.com"]), True, id="recipient-envelope"),
    pytest.param("{recipient: {equals: sales@example.com}}",
                 dict(sender="sales@example.com"), False, id="recipient-not-sender"),
    # subject and body
    pytest.param("{subject: {contains: чеки}}", dict(subject="Не печатает чеки"), True,
                 id="subject"),
    pytest.param("{subject: {contains: чеки}}", dict(body="Не печатает чеки"), False,
                 id="subject-not-body"),
    pytest.param("{body: {contains: 'нет бумаги'}}", dict(body="Ошибка «Нет бумаги»"), True,
                 id="body"),
    # header: the name ignores case, on both sides
    pytest.param("{header: {list-id: {exists: true}}}", dict(headers=[("List-Id", "<a.b>")]),
                 True, id="header-name-lower-in-rule"),
    pytest.param("{header: {X-PRIORITY: {equals: '1'}}}", dict(headers=[("x-priority", "1")]),
                 True, id="header-name-upper-in-rule"),
    pytest.param("{header: {X-Mailer: {contains: 1c}}}",
                 dict(headers=[("X-Mailer", "1C:Enterprise")]), True, id="header-value-contains"),
    pytest.param("{header: {X-Mailer: {contains: 1c}}}", dict(headers=[("X-Other", "1C")]),
                 False, id="header-other-name"),
    # attachment: the file name; attachment_type: the content type
    pytest.param("{attachment: {contains: .pdf}}",
                 dict(attachments=[("Счёт №5.PDF", "application/pdf")]), True,
                 id="attachment-name"),
    pytest.param("{attachment: {equals: счёт.xlsx}}",
                 dict(attachments=[("logo.png", "image/png"), ("Счёт.xlsx", "application/x")]),
                 True, id="attachment-any-of-several"),
    pytest.param("{attachment: {contains: pdf}}",
                 dict(attachments=[("scan", "application/pdf")]), False,
                 id="attachment-not-type"),
    pytest.param("{attachment_type: {equals: application/pdf}}",
                 dict(attachments=[("scan", "application/pdf")]), True, id="attachment-type"),
    pytest.param("{attachment: {exists: false}}", dict(), True, id="no-attachment"),
    # language: the detected one
    pytest.param("{language: {equals: ru}}", dict(language="ru"), True, id="language"),
    pytest.param("{language: {in: [uk, be]}}", dict(language="ru"), False, id="language-in"),
])
def test_each_field_looks_at_its_part_of_the_mail(condition, facts, expected):
    assert matches(condition, **facts) is expected


# Friday 2027-03-05, Saturday 2027-03-06; 2027-01-04 is a Monday of the Russian New Year holidays.
@pytest.mark.parametrize("at, working", [
    pytest.param(datetime(2027, 3, 5, 17, 55, tzinfo=MSK), True, id="friday-17:55"),
    pytest.param(datetime(2027, 3, 5, 18, 0, tzinfo=MSK), False, id="friday-18:00"),
    pytest.param(datetime(2027, 3, 5, 14, 55, tzinfo=timezone.utc), True,
                 id="friday-17:55-msk-given-in-utc"),
    pytest.param(datetime(2027, 3, 1, 9, 0, tzinfo=MSK), True, id="monday-09:00"),
    pytest.param(datetime(2027, 3, 1, 8, 59, tzinfo=MSK), False, id="monday-08:59"),
    pytest.param(datetime(2027, 3, 6, 12, 0, tzinfo=MSK), False, id="saturday"),
    pytest.param(datetime(2027, 1, 4, 12, 0, tzinfo=MSK), False, id="new-year-holiday"),
])
def test_business_hours_follow_the_calendar(at, working):
    assert matches("{business_hours: true}", at=at) is working       # the default policy's
    assert matches("{business_hours: false}", at=at) is not working
    assert matches("{business_hours: {calendar: moscow, within: false}}", at=at) is not working
    assert matches("{business_hours: {calendar: always}}", at=at)


# --- operators ----------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, subject, expected", [
    ("{subject: {contains: КАССА}}", "Не работает касса №3", True),
    ("{subject: {contains: касса}}", "НЕ РАБОТАЕТ КАССА", True),
    ("{subject: {contains: [принтер, касса]}}", "Касса", True),        # a list is any of it
    ("{subject: {contains: [принтер, сканер]}}", "Касса", False),
    ("{subject: {equals: 'касса не работает'}}", "Касса не работает", True),
    ("{subject: {equals: 'касса'}}", "Касса не работает", False),     # the whole value
    ("{subject: {regex: 'Касса №\\d'}}", "Касса №3", True),
    ("{subject: {regex: 'Касса'}}", "касса", False),                   # case-sensitive...
    ("{subject: {regex: '(?i)Касса'}}", "касса", True),                # ...unless (?i)
    ("{subject: {regex: ['^Счёт', 'чек$']}}", "Нет чек", True),        # a list is any of it
    ("{subject: {regex: ['Счёт', '(?i)чек']}}", "ЧЕК", True),          # each with its own flags
    ("{subject: {regex: ['Счёт', '(?i)чек']}}", "счёт", False),
    ("{subject: {in: [счёт, акт]}}", "Акт", True),
    ("{subject: {in: [счёт, акт]}}", "Акт сверки", False),
])
def test_text_operators(condition, subject, expected):
    assert matches(condition, subject=subject) is expected


@pytest.mark.parametrize("sender, expected", [
    ("a@shop.ru", True),
    ("a@x.shop.ru", True),          # a subdomain
    ("a@X.Shop.RU", True),          # domains ignore case
    ("a@eshop.ru", False),          # not merely ending in the same letters
    ("a@shop.ru.evil.com", False),
])
def test_domain_matches_the_domain_and_its_subdomains(sender, expected):
    assert matches("{from: {domain: shop.ru}}", sender=sender) is expected


def test_exists_true_and_false():
    listed = [("List-Id", "<announce.example.org>")]
    assert matches("{header: {List-Id: {exists: true}}}", headers=listed)
    assert not matches("{header: {List-Id: {exists: true}}}")
    assert matches("{header: {List-Id: {exists: false}}}")
    assert not matches("{header: {List-Id: {exists: false}}}", headers=listed)
    assert matches("{attachment: {exists: true}}", attachments=[("a.pdf", "application/pdf")])


def test_exists_means_present_and_not_empty():
    # A mail without a subject has an empty one; an admin asking for "no subject" means it.
    assert matches("{subject: {exists: false}}", subject="")
    assert not matches("{subject: {exists: true}}", subject="")
    assert matches("{subject: {exists: true}}", subject="Касса")
    assert matches("{header: {X-Tag: {exists: false}}}", headers=[("X-Tag", "")])


@pytest.mark.parametrize("sender, expected", [
    ("boss@corp.ru", True),         # an entry with '@' is an address
    ("other@corp.ru", False),
    ("ivan@shop.ru", True),         # an entry without '@' is a domain...
    ("ivan@kassa.shop.ru", True),   # ...with its subdomains
    ("ivan@eshop.ru", False),
])
def test_in_on_addresses_takes_addresses_and_domains(sender, expected):
    assert matches("{from: {in: [boss@corp.ru, shop.ru]}}", sender=sender) is expected


def test_in_reads_a_list_file_next_to_the_rules_file(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "vip.txt").write_text(
        "# VIP clients / важные клиенты\n"
        "director@romashka.ru   # the director himself\n"
        "\n"
        "  vip-shop.ru\n", encoding="utf-8")
    rules = ruleset("""
        rules:
          - name: vip
            match: {from: {in: {file: lists/vip.txt}}}
            set: {priority: P1}
        """, dataclasses.replace(KNOWN, base_dir=tmp_path))
    assert route(rules, mail(sender="director@romashka.ru")).matched == ("vip",)
    assert route(rules, mail(sender="anna@kassa.vip-shop.ru")).matched == ("vip",)
    assert route(rules, mail(sender="buh@romashka.ru")).matched == ()


def test_a_list_file_of_subjects(tmp_path):
    (tmp_path / "spam.txt").write_text("Вы выиграли\nлотерея # и так далее\n", encoding="utf-8")
    rules = ruleset("""
        rules:
          - name: spam
            match: {subject: {in: {file: spam.txt}}}
            action: quarantine
        """, dataclasses.replace(KNOWN, base_dir=tmp_path))
    assert route(rules, mail(subject="ЛОТЕРЕЯ")).action == "quarantine"
    assert route(rules, mail(subject="Лотерея билетов")).action is None


def test_equals_on_an_address_may_repeat_an_address_in_another_case():
    rules = ruleset("""
        rules:
          - name: boss
            match: {from: {equals: [Boss@Corp.ru, boss@corp.ru]}}
        """)
    assert route(rules, mail(sender="boss@corp.ru")).matched == ("boss",)


# --- all, any, not ------------------------------------------------------------------------------

def test_several_keys_in_one_mapping_must_all_hold():
    condition = "{subject: {contains: касса}, from: {domain: shop.ru}}"
    assert matches(condition, subject="Касса", sender="a@shop.ru")
    assert not matches(condition, subject="Касса", sender="a@other.ru")
    assert not matches(condition, subject="Принтер", sender="a@shop.ru")


def test_several_operators_on_one_field_must_all_hold():
    condition = "{subject: {contains: касса, regex: '№\\d+'}}"
    assert matches(condition, subject="Касса №3")
    assert not matches(condition, subject="Касса")


def test_all_any_not():
    assert matches("{all: [{subject: {contains: а}}, {subject: {contains: б}}]}", subject="аб")
    assert not matches("{all: [{subject: {contains: а}}, {subject: {contains: б}}]}", subject="а")
    assert matches("{any: [{subject: {contains: а}}, {body: {contains: б}}]}", body="б")
    assert not matches("{any: [{subject: {contains: а}}, {body: {contains: б}}]}", body="в")
    assert matches("{not: {subject: {contains: касса}}}", subject="Принтер")
    assert not matches("{not: {subject: {contains: касса}}}", subject="Касса")


@pytest.mark.parametrize("sender, subject, body, expected", [
    ("a@shop.ru", "Касса", "", True),
    ("a@shop.ru", "Счёт", "не печатает чеки", True),
    ("a@shop.ru", "Счёт", "", False),
    ("a@shop.ru", "Касса", "тест, не отвечайте", False),
    ("a@other.ru", "Касса", "", False),
])
def test_nested_conditions(sender, subject, body, expected):
    condition = ("{all: [{from: {domain: shop.ru}},"
                 " {any: [{subject: {contains: касса}}, {body: {regex: '(?i)чеки'}}]},"
                 " {not: {body: {contains: тест}}}]}")
    assert matches(condition, sender=sender, subject=subject, body=body) is expected


# --- how matching rules combine -----------------------------------------------------------------

SHOP_RULES = """
    rules:
      - name: shop clients
        match: {from: {domain: shop.ru}}
        set: {line: line1, category: retail, tags: [shop, client]}
      - name: cash registers
        match: {subject: {contains: касса}}
        set: {line: line2, priority: P1, tags: [pos, shop]}
      - name: after hours
        match: {business_hours: false}
        set: {tags: [night]}
        action: no_autoreply
    default:
      set: {line: line3, priority: P3, sla_policy: standard, tags: [untriaged]}
    """
SATURDAY = datetime(2027, 3, 6, 12, 0, tzinfo=MSK)
FRIDAY_NOON = datetime(2027, 3, 5, 12, 0, tzinfo=MSK)


def test_matching_rules_overlay_their_set_in_order_and_tags_accumulate():
    r = route(ruleset(SHOP_RULES), mail(sender="a@shop.ru", subject="Касса", at=SATURDAY))
    assert r.matched == ("shop clients", "cash registers", "after hours")
    assert (r.line, r.priority, r.category) == ("line2", "P1", "retail")   # later rules win
    assert r.tags == ("shop", "client", "pos", "night")                   # once each, in order
    assert r.sla_policy == "standard"                                     # filled by the default
    assert not r.autoreply


def test_default_fills_what_no_rule_set():
    r = route(ruleset(SHOP_RULES), mail(sender="a@other.ru", subject="Привет", at=FRIDAY_NOON))
    assert r == Routing(line="line3", priority="P3", sla_policy="standard", tags=("untriaged",))


def test_default_tags_only_when_no_rule_set_tags():
    r = route(ruleset(SHOP_RULES), mail(sender="a@shop.ru", at=FRIDAY_NOON))
    assert r.tags == ("shop", "client")


def test_stop_ends_the_evaluation_after_its_rule():
    rules = ruleset("""
        rules:
          - name: first
            match: {subject: {contains: касса}}
            set: {tags: [a]}
          - name: urgent
            match: {subject: {contains: касса}}
            set: {priority: P1}
            stop: true
          - name: never reached
            set: {priority: P4, tags: [b]}
        """)
    r = route(rules, mail(subject="Касса"))
    assert r.matched == ("first", "urgent")
    assert (r.priority, r.tags) == ("P1", ("a",))
    # A stop rule that does not match stops nothing.
    assert route(rules, mail(subject="Принтер")).matched == ("never reached",)


@pytest.mark.parametrize("action", ["ignore", "quarantine"])
def test_ignore_and_quarantine_end_at_once_and_name_their_rule(action):
    rules = ruleset(f"""
        rules:
          - name: tagged
            set: {{tags: [seen]}}
          - name: lists
            match: {{header: {{List-Id: {{exists: true}}}}}}
            action: {action}
          - name: later
            set: {{priority: P1}}
        """)
    r = route(rules, mail(headers=[("List-Id", "<x>")]))
    assert (r.action, r.action_rule) == (action, "lists")
    assert r.matched == ("tagged", "lists")
    assert r.priority is None
    assert route(rules, mail()).action is None


def test_autoreply_template_and_no_autoreply():
    rules = ruleset("""
        rules:
          - name: vip
            match: {from: {domain: vip.ru}}
            action: autoreply
            template: vip-ack
          - name: robots
            match: {from: {contains: noreply}}
            action: no_autoreply
          - name: vip robots still get one
            match: {all: [{from: {domain: vip.ru}}, {subject: {contains: важно}}]}
            action: autoreply
        """)
    assert route(rules, mail()) == Routing(autoreply=True, template=None)
    r = route(rules, mail(sender="anna@vip.ru"))
    assert (r.autoreply, r.template) == (True, "vip-ack")
    assert not route(rules, mail(sender="noreply@shop.ru")).autoreply
    r = route(rules, mail(sender="noreply@vip.ru"))
    assert (r.autoreply, r.template) == (False, "vip-ack")
    # A later autoreply without a template turns it back on and keeps the template chosen.
    r = route(rules, mail(sender="noreply@vip.ru", subject="Важно"))
    assert (r.autoreply, r.template) == (True, "vip-ack")


def test_assignee_language_and_a_rule_without_match():
    rules = ruleset("""
        rules:
          - name: everyone
            set: {assignee: Alice@Example.com, language: ru, sla_policy: vip}
        """)
    r = route(rules, mail())
    assert r.matched == ("everyone",)
    assert (r.assignee, r.language, r.sla_policy) == ("alice@example.com", "ru", "vip")


# --- mistakes -----------------------------------------------------------------------------------

def one_rule(match: str = "{subject: {contains: a}}", extra: str = "") -> str:
    return f"rules:\n  - name: r\n    match: {match}\n{extra}"


@pytest.mark.parametrize("text, key, message", [
    pytest.param(one_rule("{subjekt: {contains: a}}"), "rules[0].match.subjekt",
                 "unknown condition 'subjekt'", id="unknown-field"),
    pytest.param(one_rule("{subject: {startswith: a}}"), "rules[0].match.subject.startswith",
                 "unknown operator 'startswith'", id="unknown-operator"),
    pytest.param(one_rule("{body: {regex: '(не печата'}}"), "rules[0].match.body.regex",
                 "not a valid regular expression", id="bad-regex"),
    pytest.param(one_rule("{subject: {domain: shop.ru}}"), "rules[0].match.subject.domain",
                 "domain applies to from, to, cc and recipient", id="domain-on-text"),
    pytest.param(one_rule("{from: {equals: [a@shop.ru, shop.ru]}}"), "rules[0].match.from.equals",
                 "use domain for a domain", id="equals-bare-domain"),
    pytest.param(one_rule(extra="    set: {line: line9}\n"), "rules[0].set.line",
                 "unknown line 'line9'", id="unknown-line"),
    pytest.param(one_rule(extra="    set: {sla_policy: gold}\n"), "rules[0].set.sla_policy",
                 "unknown SLA policy 'gold'", id="unknown-policy"),
    pytest.param(one_rule(extra="    set: {assignee: nobody@example.com}\n"),
                 "rules[0].set.assignee", "is not an agent", id="unknown-assignee"),
    pytest.param(one_rule("{business_hours: {calendar: paris}}"), "rules[0].match.business_hours",
                 "unknown calendar 'paris'", id="unknown-calendar"),
    pytest.param(one_rule("{from: {in: {file: nowhere.txt}}}"), "rules[0].match.from.in",
                 "cannot read list file", id="missing-list-file"),
    pytest.param(one_rule(extra="    template: vip-ack\n"), "rules[0].template",
                 "template goes with action: autoreply", id="template-without-autoreply"),
    pytest.param("rules:\n  - {name: r}\n  - {name: s}\n  - {name: r}\n", "rules[2].name",
                 "duplicate rule name (also rule 1)", id="duplicate-name"),
    pytest.param(one_rule("{any: [{subject: {contains: a}}, {not: {body: {regex: '('}}}]}"),
                 "rules[0].match.any[1].not.body.regex", "not a valid regular expression",
                 id="nested-path"),
    pytest.param("rules: []\ndefault:\n  set: {line: line9}\n", "default.set.line",
                 "unknown line 'line9'", id="default-unknown-line"),
])
def test_mistakes_are_reported_at_their_key(text, key, message, tmp_path):
    found = problems_of(text, dataclasses.replace(KNOWN, base_dir=tmp_path))
    assert len(found) == 1, found
    assert found[0][0] == key
    assert message in found[0][1]


def test_every_mistake_is_reported_not_only_the_first():
    found = problems_of("""
        rules:
          - name: r
            match: {all: [{subject: {regex: '['}}, {to: {domain: x.ru}, body: {domain: x.ru}}]}
            set: {line: nowhere}
        """)
    assert [key for key, _ in found] == ["rules[0].match.all[0].subject.regex",
                                         "rules[0].match.all[1].body.domain", "rules[0].set.line"]


# --- through load_settings: the admin sees file, line and key ------------------------------------

@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The project's config set, its database and templates pointed at valid places."""
    cdir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cdir)
    path = cdir / "maildesk.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["database"] = {**data["database"], "url": f"sqlite:///{tmp_path / 'maildesk.db'}"}
    data["paths"] = {**data["paths"], "templates": str(ROOT / "templates"),
                     "var": str(tmp_path / "var")}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return cdir


def test_the_shipped_rules_load_into_a_ruleset(config_dir):
    s = load_settings(config_dir / "maildesk.yaml")
    assert len(s.ruleset) == len(s.rules["rules"])
    r = s.ruleset.evaluate(mail(subject="Re: касса"))
    assert (r.line, r.priority) == ("line2", "P1")


# Our own rules.yaml in the copied set: the shipped one is an example that changes.
RULES_YAML = """\
rules:
  - name: cash registers
    match:
      any:
        - subject: {contains: [касса]}
        - body: {regex: "(?i)не печата(ет|ются) чеки"}
    set: {line: line2, priority: P1}
  - name: lists
    match: {header: {List-Id: {exists: true}}}
    action: ignore
  - name: key clients
    match: {from: {in: {file: lists/key.txt}}}
    set: {tags: [key]}
default:
  set: {line: line1, priority: P3}
"""


@pytest.fixture
def own_rules(config_dir: Path) -> Path:
    (config_dir / "lists").mkdir()
    (config_dir / "lists" / "key.txt").write_text("romashka.ru  # магазин «Ромашка»\n",
                                                  encoding="utf-8")
    path = config_dir / "rules.yaml"
    path.write_text(RULES_YAML, encoding="utf-8")
    return path


def test_a_list_file_is_found_next_to_the_rules_file(own_rules):
    s = load_settings(own_rules.parent / "maildesk.yaml")
    assert s.ruleset.evaluate(mail(sender="anna@romashka.ru")).tags == ("key",)


@pytest.mark.parametrize("old, new, key", [
    ('{regex: "(?i)не печата(ет|ются) чеки"}', '{regex: "(?i)не печата(ет|ются чеки"}',
     "rules[0].match.any[1].body.regex"),
    ("set: {line: line2,", "set: {line: line9,", "rules[0].set.line"),
    ("{List-Id: {exists: true}}", "{List-Id: {in: {file: lists/none.txt}}}",
     "rules[1].match.header.List-Id.in"),
    ("{from: {in: {file: lists/key.txt}}}",
     "{from: {in: {file: lists/key.txt}}, subject: {domain: x.ru}}",
     "rules[2].match.subject.domain"),
])
def test_a_broken_rule_names_file_line_and_key(own_rules, old, new, key):
    assert RULES_YAML.count(old) == 1
    own_rules.write_text(RULES_YAML.replace(old, new), encoding="utf-8")
    line = next(i for i, row in enumerate(RULES_YAML.splitlines(), 1) if old in row)
    with pytest.raises(ConfigError) as err:
        load_settings(own_rules.parent / "maildesk.yaml")
    (problem,) = err.value.problems
    assert (problem.file, problem.line, problem.key) == (str(own_rules.resolve()), line, key)
    assert f"rules.yaml:{line}:{problem.column}: {key}:" in str(err.value)


# --- the trigger index never changes the result -------------------------------------------------

# Small alphabets, so that random rules and random mails meet often.
ADDRESSES = ["a@x.ru", "b@shop.ru", "a@a.shop.ru", "b@eshop.ru", "sales@example.com"]
DOMAINS = ["ru", "shop.ru", "x.ru", "eshop.ru", "example.com", "a.shop.ru"]
WORDS = ["a", "b", "ab", "ба", "Б", "a b", "@", "shop"]
# Texts: random letters, or words of the rules run together (so that `contains` hits).
TEXT = st.one_of(
    st.text(alphabet="abАаБб @.", max_size=8),
    st.lists(st.sampled_from(["a", "b", "ба", "Б", " ", "shop"]), max_size=4).map("".join))
FILENAMES = ["", "a.pdf", "Б.PDF", "ab", "a.b.xls"]
TYPES = ["application/pdf", "image/png", "text/plain"]
HEADER_NAMES = ["List-Id", "list-id", "X-A", "x-b"]
LANGUAGES = [None, "", "ru", "RU", "en"]
REGEXES = ["a", "^a", "b$", "(?i)б", "Б", "a|б", "^$", "@shop\\.",
           # with literals of 3 or more characters (triggers on subject and body)
           "(?i)shop", "a b", "(?i)(аба|a b)", "(?:aba)+", "аб(?i:Б)", "(?i)a\\.?b a",
           "ba+ shop", "(?i)SHOP|Б b", "^(?:a b|б a)b"]
INSTANTS = [None, datetime(2027, 3, 5, 17, 55, tzinfo=MSK), datetime(2027, 3, 5, 18, 0, tzinfo=MSK),
            datetime(2027, 3, 6, 12, 0, tzinfo=MSK), datetime(2027, 1, 4, 12, 0, tzinfo=MSK)]


def one_or_list(values: list[Any]) -> st.SearchStrategy[Any]:
    item = st.sampled_from(values)
    return st.one_of(item, st.lists(item, min_size=1, max_size=3))


def operators_of(operators: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict]:
    return st.sets(st.sampled_from(sorted(operators)), min_size=1, max_size=2).flatmap(
        lambda ops: st.fixed_dictionaries({op: operators[op] for op in sorted(ops)}))



EXISTS = st.booleans()
TEXT_EQUALS = ["", "a", "ab", "аб", "Б", "a b"]
ADDRESS_OPS = {
    "contains": one_or_list(WORDS), "equals": one_or_list(ADDRESSES),
    "domain": one_or_list(DOMAINS), "regex": one_or_list(REGEXES), "exists": EXISTS,
    "in": st.lists(st.sampled_from(ADDRESSES + DOMAINS), min_size=1, max_size=3)}
TEXT_OPS = {
    "contains": one_or_list(WORDS), "equals": one_or_list(TEXT_EQUALS),
    "regex": one_or_list(REGEXES), "exists": EXISTS,
    "in": st.lists(st.sampled_from(TEXT_EQUALS), min_size=1, max_size=3)}
FIELD_OPS = {
    **{name: ADDRESS_OPS for name in ("from", "to", "cc", "recipient")},
    "subject": TEXT_OPS, "body": TEXT_OPS,
    "language": {**TEXT_OPS, "equals": one_or_list(["", "ru", "RU", "en"]),
                 "in": st.lists(st.sampled_from(["", "ru", "en"]), min_size=1, max_size=2)},
    "attachment": {**TEXT_OPS, "equals": one_or_list(FILENAMES[1:] + ["a.PDF"])},
    "attachment_type": {**TEXT_OPS, "equals": one_or_list(TYPES + ["pdf"])},
}
ANY_LEAF = st.one_of(
    *(operators_of(ops).map(lambda t, n=name: {n: t}) for name, ops in FIELD_OPS.items()),
    st.dictionaries(st.sampled_from(HEADER_NAMES), operators_of(TEXT_OPS), min_size=1,
                    max_size=2).map(lambda h: {"header": h}),
    st.sampled_from([True, False, {}, {"calendar": "always"},
                     {"calendar": "moscow", "within": False}]).map(lambda b: {"business_hours": b}),
)
# The tests the index has triggers for, one operator each so that they often hold, and headers
# (whose presence is a trigger only for exists: true): drawn more often than the rest, or random
# rules would seldom reach the index at all.
INDEXED_LEAF = st.one_of(
    st.tuples(st.sampled_from(["subject", "body"]), one_or_list(WORDS)).map(
        lambda f: {f[0]: {"contains": f[1]}}),
    st.tuples(st.sampled_from(["from", "to", "cc", "recipient"]),
              st.sampled_from(["domain", "equals", "in"])).flatmap(
        lambda f: ADDRESS_OPS[f[1]].map(lambda v: {f[0]: {f[1]: v}})),
    FIELD_OPS["language"]["in"].map(lambda v: {"language": {"in": v}}),
    st.sampled_from(HEADER_NAMES).map(lambda h: {"header": {h: {"exists": True}}}),
    st.tuples(st.sampled_from(HEADER_NAMES), operators_of(TEXT_OPS)).map(
        lambda h: {"header": {h[0]: h[1]}}),
    st.tuples(st.sampled_from(["subject", "body"]), one_or_list(REGEXES)).map(
        lambda f: {f[0]: {"regex": f[1]}}),
)
LEAVES = st.integers(0, 9).flatmap(lambda k: INDEXED_LEAF if k < 6 else ANY_LEAF)


def merged(pair: tuple[dict, dict]) -> dict:
    first, second = pair
    return {**second, **first}




def nested(inner: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    # `not` seldom: it has no trigger, and rules under it would mostly skip the index.
    return st.integers(0, 9).flatmap(lambda k: (
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"all": cs}) if k < 3 else
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"any": cs}) if k < 6 else
        st.tuples(inner, inner).map(merged) if k < 9 else      # several keys in one mapping
        inner.map(lambda c: {"not": c})))


CONDITIONS = st.recursive(LEAVES, nested, max_leaves=4)
SETS = st.fixed_dictionaries({}, optional={
    "line": st.sampled_from(["line1", "line2", "line3"]),
    "priority": st.sampled_from(["P1", "P2", "P3", "P4"]),
    "tags": st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=3),
    "category": st.sampled_from(["pos", "retail"])})
ACTIONS = st.one_of(
    st.just({}),
    st.sampled_from(["ignore", "quarantine", "no_autoreply", "autoreply"]).map(
        lambda a: {"action": a}),
    st.sampled_from(["ack", "vip"]).map(lambda t: {"action": "autoreply", "template": t}))
RULES = st.builds(
    lambda match, set_, action, stop: {**match, **set_, **action, **stop},
    st.integers(0, 9).flatmap(lambda k: CONDITIONS.map(lambda c: {"match": c}) if k
                              else st.just({})),    # no match: the rule applies to every mail
    st.one_of(SETS.map(lambda s: {"set": s}), st.just({})),
    ACTIONS,
    st.sampled_from([{}, {"stop": True}, {"stop": False}]))
RULE_SETS = st.builds(
    lambda rules, default: {"rules": [{"name": f"rule {i}", **r} for i, r in enumerate(rules)],
                            **default},
    st.lists(RULES, max_size=8),
    st.one_of(st.just({}), SETS.map(lambda s: {"default": {"set": s}})))
MAILS = st.builds(
    MailFacts,
    sender=st.sampled_from(["", *ADDRESSES]),
    sender_name=st.sampled_from(["", "a", "Б shop"]),
    to=st.lists(st.sampled_from(ADDRESSES), max_size=2).map(tuple),
    cc=st.lists(st.sampled_from(ADDRESSES), max_size=2).map(tuple),
    envelope_to=st.lists(st.sampled_from(ADDRESSES), max_size=2).map(tuple),
    subject=TEXT, body=TEXT,
    headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), TEXT), max_size=3).map(tuple),
    attachments=st.lists(st.tuples(st.sampled_from(FILENAMES), st.sampled_from(TYPES)),
                         max_size=2).map(tuple),
    language=st.sampled_from(LANGUAGES),
    at=st.sampled_from(INSTANTS))


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=RULE_SETS, facts=MAILS)
def test_the_index_gives_the_same_result_as_trying_every_rule(data, facts):
    rules_schema().validate(data)
    rules, problems = compile_data(data)
    assert problems == []
    assert rules.evaluate(facts) == rules.evaluate(facts, exhaustive=True)
    # Stronger than the above, which a stop or an ignore could hide: no rule that matches is
    # left out of the candidates.
    candidates = set(rules.candidates(facts))
    assert [r.index for r in rules.rules if r.predicate(facts)] == \
        [r.index for r in rules.rules if r.predicate(facts) and r.index in candidates]
    # A rule whose trigger proves its match (evaluate skips its predicate) matches whenever it
    # is a candidate.
    assert all(r.predicate(facts) == (r.index in candidates) for r in rules.rules if r.proven)


# --- a thousand rules ---------------------------------------------------------------------------

def test_a_thousand_rules_try_only_the_few_that_can_match():
    rules = [{"name": f"product {i}", "match": {"subject": {"contains": f"арт-{i:04d}"}},
              "set": {"category": f"product {i}"}} for i in range(500)]
    rules += [{"name": f"client {i}", "match": {"from": {"domain": f"client{i:03d}.ru"}},
               "set": {"tags": [f"client {i}"]}} for i in range(490)]
    rules += [{"name": f"account {i}", "match": {"from": {"in": [f"buh{i}@mail.ru"]}}}
              for i in range(10)]
    data = {"rules": rules}
    rules_schema().validate(data)
    ruleset_, problems = compile_data(data)
    assert problems == [] and len(ruleset_) == 1000

    facts = mail(sender="ivan@kassa.client042.ru", subject="Не пришёл заказ арт-0123",
                 body="Здравствуйте! Заказ арт-0123 от вчерашнего дня так и не пришёл.",
                 to=["support@example.com"], language="ru")
    assert ruleset_.candidates(facts) == [123, 500 + 42]
    r = route(ruleset_, facts)
    assert r.matched == ("product 123", "client 42")
    assert ruleset_.candidates(mail(sender="buh7@mail.ru", subject="Акт сверки")) == [990 + 7]
    assert ruleset_.candidates(mail(sender="x@other.ru", subject="Привет")) == []

    # Rules without a trigger (a regex without a literal, a `not`) are always tried, and only
    # they are added; a regex with a literal is tried when its literal is there.
    data["rules"] += [{"name": "regex", "match": {"subject": {"regex": "\\d{4}$"}}},
                      {"name": "not", "match": {"not": {"from": {"domain": "example.com"}}}},
                      {"name": "literal regex", "match": {"body": {"regex": "(?i)заказ арт-\\d"}}}]
    ruleset_, _ = compile_data(data)
    assert ruleset_.candidates(facts) == [123, 500 + 42, 1000, 1001, 1002]
    assert ruleset_.candidates(mail(sender="x@other.ru", subject="Привет")) == [1000, 1001]


# --- the literals of a regex (its triggers on subject and body) ---------------------------------

@pytest.mark.parametrize("pattern, literals", [
    # a run of literal characters, lower-cased as the automaton sees the text
    pytest.param("Касса №\\d", {"касса №"}, id="case-sensitive-lowered"),
    pytest.param("^Re:", {"re:"}, id="anchored"),
    pytest.param(r"\d{2}-\d{4}/договор", {"/договор"}, id="longest-run"),
    pytest.param(r"(?i)магазин\w*\s+№?\s*\d+", {"магазин"}, id="ignorecase"),
    pytest.param(r"(?x) s h o p \d", {"shop"}, id="verbose"),
    # an alternation: every branch's literal, any one of them
    pytest.param("abc|xyz", {"abc", "xyz"}, id="alternation"),
    pytest.param(r"\b(INC|REQ|TASK)\d{6,}", {"inc", "req", "task"}, id="alternation-in-group"),
    # groups are part of the concatenation, with their own flags
    pytest.param("(?i:ab)cd(?-i:EF)", {"abcdef"}, id="scoped-flags"),
    pytest.param("(?i:st)ore", {"store", "ſtore"}, id="scoped-ignorecase"),
    pytest.param("(?i)(?-i:st)ore", {"store"}, id="scoped-case-sensitive"),
    pytest.param(r"(abc)\1", {"abc"}, id="group-before-backreference"),
    pytest.param("(?>abc)d", {"abcd"}, id="atomic-group"),
    pytest.param("x(?:error)+y", {"error"}, id="repeated-at-least-once"),
    pytest.param("x(?:abc){2,}", {"abc"}, id="repeated-twice"),
    # under (?i), every text character re would match, as it looks lowered: 'ſ' matches 's',
    # 'ı' and 'İ' ('i̇' lowered) match 'i', the Cyrillic variants 'ᲂ', 'ᲁ' match 'о', 'д'
    pytest.param("(?i)store", {"store", "ſtore"}, id="long-s"),
    pytest.param("(?i)inn", {"inn", "ınn", "i\u0307nn"}, id="dotless-and-dotted-i"),
    pytest.param(r"(?i)\b(code|код)\s+0x", {"code", "код", "кᲂд", "коᲁ", "кᲂᲁ"},
                 id="cyrillic-variants"),
    # case-sensitive: 'Σ' lowers to 'ς' at the end of a word, 'İ' to two characters
    pytest.param("ΣΑΣ", {"σας", "σασ", "ςας", "ςασ"}, id="capital-sigma"),
    pytest.param("İstanbul", {"i\u0307stanbul"}, id="dotted-capital-i"),
])
def test_regex_literals_every_match_must_contain(pattern, literals):
    assert _regex_literals(pattern) == literals


@pytest.mark.parametrize("pattern", [
    pytest.param(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", id="classes-only"),
    pytest.param(r"№\s*\d+", id="too-short"),
    pytest.param("(?i)^(re|aw|отв|ответ):", id="a-branch-too-short"),
    pytest.param("abc|d", id="a-branch-without"),
    pytest.param("abc|", id="an-empty-branch"),
    pytest.param("(?:abc)?d", id="optional"),
    pytest.param("(?:abc)*d", id="star"),
    pytest.param("(?:abc){0,3}d", id="min-0"),
    pytest.param("[abc]{3}", id="class-repeated"),
    pytest.param(".{5}", id="any"),
    pytest.param("(?=abc)", id="lookahead"),
    pytest.param("(?<=abc)x", id="lookbehind"),
    pytest.param("(?!abc)x", id="negative-lookahead"),
    pytest.param(r"(\w+) \1", id="backreference"),
    pytest.param("(a)?(?(1)bcd|efg)", id="conditional"),
])
def test_regex_literals_nothing_it_cannot_prove(pattern):
    assert _regex_literals(pattern) is None


def test_regex_literals_keep_few_spellings():
    # Each 'о' and 'т' under (?i) has Cyrillic variants: the product is cut into literals of at
    # most _MAX_VARIANTS spellings (each necessary), not one of thousands.
    literals = _regex_literals("(?i)" + "от" * 8)
    assert literals and len(literals) <= 64
    assert all(w in ("от" * 8) for w in literals if set(w) <= set("от"))


def test_a_regex_rule_is_tried_only_when_its_literal_is_there():
    rules = ruleset(r"""
        rules:
          - name: inn
            match: {body: {regex: '(?i)\b(ИНН|INN)\s*:?\s*\d{10,12}\b'}}
          - name: no literal
            match: {body: {regex: '\d{20}'}}
          - name: one of two
            match: {subject: {regex: ['(?i)счёт №', 'Invoice \d+']}}
          - name: one without
            match: {subject: {regex: ['(?i)счёт №', '\d+$']}}
          - name: from has no automaton
            match: {from: {regex: '(?i)noreply@'}}
        """)
    assert route(rules, mail(body="ИНН 7700000000")).matched == ("inn",)
    assert rules.candidates(mail(body="инн: 1")) == [0, 1, 3, 4]
    assert rules.candidates(mail(body="Привет")) == [1, 3, 4]
    assert rules.candidates(mail(subject="СЧЁТ № 5")) == [1, 2, 3, 4]
    # a case-sensitive literal, lowered: a necessary condition, the regex decides
    assert rules.candidates(mail(subject="INVOICE 5")) == [1, 2, 3, 4]
    assert route(rules, mail(subject="invoice 5.")).matched == ()
    assert route(rules, mail(subject="Invoice 5.")).matched == ("one of two",)
    assert route(rules, mail(subject="Счёт № 5")).matched == ("one of two", "one without")


def test_rules_proven_by_their_trigger():
    rules = ruleset("""
        rules:
          - {name: keyword, match: {subject: {contains: [касса, чек]}}}
          - {name: domain, match: {from: {domain: shop.ru}}}
          - {name: address, match: {from: {in: [a@x.ru, shop.ru]}}}
          - {name: language, match: {language: {equals: en}}}
          - {name: any of them, match: {any: [{body: {contains: чек}}, {to: {equals: a@x.ru}}]}}
          - {name: all of one, match: {all: [{body: {contains: чек}}]}}
          - {name: both, match: {subject: {contains: касса}, from: {domain: shop.ru}}}
          - {name: regex, match: {subject: {regex: '(?i)касса'}}}
          - {name: header, match: {header: {List-Id: {exists: true}}}}
          - {name: any with a regex, match: {any: [{body: {contains: чек}},
                                                   {subject: {regex: 'касса'}}]}}
        """)
    assert [r.name for r in rules.rules if r.proven] == [
        "keyword", "domain", "address", "language", "any of them", "all of one"]
    # the predicate of a proven rule is not run by the indexed evaluation; the result agrees
    r = route(rules, mail(sender="a@shop.ru", subject="Касса", body="чек",
                          headers=[("List-Id", " ")]))
    assert r.matched == ("keyword", "domain", "address", "any of them", "all of one", "both",
                         "regex", "any with a regex")


def test_the_case_folding_assumptions_hold_for_every_character():
    """What _lowered_forms relies on, checked against this Python's str.lower() and re, for
    Unicode planes 0 and 1 (every cased character is there; the rest are ideographs and private
    use)."""
    codes = [c for c in range(0x20000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(map(chr, codes))
    lowered = list(map(str.lower, text))
    # str.lower() writes each character's simple lowercase (what re compares), except for 'İ'...
    simple = map(chr, map(_sre.unicode_tolower, codes))
    assert [c for c, low, s in zip(text, lowered, simple) if low != s] == ["İ"]
    # ...and lowers a text character by character, except for 'Σ' (final or not).
    no_sigma = text.replace("Σ", "")
    assert no_sigma.lower() == "".join(map(str.lower, no_sigma))
    # Exactly matched characters (case-sensitive, or uncased): their lowered forms.
    iscased = list(map(_sre.unicode_iscased, codes))
    assert all(low == c for c, low, k in zip(text, lowered, iscased) if not k)
    cased = [c for c, k in zip(text, iscased) if k]
    for c in cased:
        assert {c.lower(), ("A" + c).lower()[1:]} <= _lowered_forms(ord(c), False), c
    # Under (?i), a cased literal matches only cased characters...
    any_cased = re.compile("(?i)[" + "".join(re.escape(c) for c in cased) + "]")
    cased_set = set(cased)
    assert all(m.group() in cased_set for m in any_cased.finditer(text))
    # ...each of which, lowered (in any context), is one of the literal's forms.
    haystack = "".join(cased)
    for c in cased:
        forms = _lowered_forms(ord(c), True)
        for m in re.finditer("(?i)" + re.escape(c), haystack):
            t = m.group()
            assert {t.lower(), ("A" + t).lower()[1:]} <= forms, (c, t)


# Patterns for the properties: literal runs of letters with tricky case folding, classes,
# anchors, groups with flags, alternations, quantifiers, lookarounds, backreferences.
RX_LETTERS = "abkKsSſiIİıоОᲂтТᲄσςΣßẞǅ -"
RX_RUNS = [st.lists(st.sampled_from(RX_LETTERS), min_size=n, max_size=6).map(
    lambda cs: re.escape("".join(cs))) for n in (1, 3)]
RX_ATOMS = st.one_of(
    *RX_RUNS,
    st.sampled_from(["[ab]", ".", "\\s", "[^a]", "\\b", "^", "$", "(?<=a)", "(?<!b)", "(ab)\\1",
                     "[оО]"]))


def rx_compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(inner, min_size=2, max_size=4).map("".join),
        st.lists(inner, min_size=2, max_size=3).map(lambda bs: "(?:" + "|".join(bs) + ")"),
        st.tuples(st.sampled_from(["(", "(?:", "(?i:", "(?-i:", "(?>", "(?=", "(?!"]),
                  inner).map("".join).map(lambda g: g + ")"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,3}", "+?", "*?",
                                          "++", "?+"])).map(lambda r: f"(?:{r[0]}){r[1]}"))


def compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


RX_TREES = st.recursive(RX_ATOMS, rx_compound, max_leaves=5)
RX_PATTERNS = st.tuples(
    st.sampled_from(["", "(?i)"]),
    st.one_of(RX_TREES, st.tuples(RX_TREES, RX_RUNS[1], RX_TREES).map("".join)),
    st.one_of(st.just(""), RX_ATOMS.map(lambda a: "|" + a)),
).map("".join).filter(compiles)
# Every character of the BMP that some letter of RX_LETTERS matches under (?i): what a text may
# hold instead of it ('ſ' for 's', 'K' for 'k', 'ᲂ' for 'о', 'İ' for 'i', ...).
_BMP = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
RX_EQUIVALENTS = {c: sorted({m.group() for m in re.finditer("(?i)" + re.escape(c), _BMP)})
                  for c in RX_LETTERS}


def rx_texts(pattern: str) -> st.SearchStrategy[str]:
    """Texts that often match `pattern`, with letters swapped for their case equivalents, or
    hold its literals (the rule is a candidate) and may not match."""
    def swapped(text: str) -> st.SearchStrategy[str]:
        return st.tuples(*(st.sampled_from(RX_EQUIVALENTS.get(c, [c])) for c in text)).map(
            "".join)
    words = sorted(frozenset().union(*_literal_sets(pattern))) or ["a"]
    return st.one_of(st.from_regex(pattern), st.text(alphabet=RX_LETTERS + "AB", max_size=12),
                     st.from_regex(pattern).flatmap(swapped),
                     st.lists(st.one_of(st.sampled_from(words), st.sampled_from(RX_LETTERS)),
                              max_size=6).map("".join).flatmap(swapped))


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_a_regex_match_contains_its_literals(data):
    pattern = data.draw(RX_PATTERNS, label="pattern")
    text = data.draw(rx_texts(pattern), label="text")
    if re.search(pattern, text):
        lowered = text.lower()
        # every literal set, the trigger and the ones the predicate checks with `in`
        for needed in _literal_sets(pattern):
            assert any(w in lowered for w in needed), needed


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_regex_triggers_never_change_the_result(data):
    patterns = data.draw(st.lists(RX_PATTERNS, min_size=1, max_size=5), label="patterns")
    rules = []
    for i, pattern in enumerate(patterns):
        where = data.draw(st.sampled_from(["subject", "body"]))
        regex = data.draw(st.one_of(st.just(pattern), st.sampled_from(patterns).map(
            lambda other, p=pattern: [p, other])))
        match: dict[str, Any] = {where: {"regex": regex}}
        kind = data.draw(st.integers(0, 5))
        if kind < 2:          # a keyword rule sharing the automaton (proven by its trigger)
            words = sorted(_regex_literals(pattern) or {"sh"})
            keyword = {where: {"contains": data.draw(st.sampled_from(words))}}
            match = {"any": [match, keyword]} if kind else keyword
        rules.append({"name": f"rule {i}", "match": match, "set": {"tags": [f"t{i}"]},
                      **data.draw(st.sampled_from([{}, {}, {"stop": True}]))})
    data_ = {"rules": rules}
    rules_schema().validate(data_)
    compiled, problems = compile_data(data_)
    assert problems == []
    texts = st.lists(st.sampled_from(patterns).flatmap(rx_texts), min_size=1, max_size=3).map(
        " ".join)
    facts = MailFacts(sender="a@x.ru", subject=data.draw(texts), body=data.draw(texts))
    assert compiled.evaluate(facts) == compiled.evaluate(facts, exhaustive=True)
    candidates = set(compiled.candidates(facts))
    assert {r.index for r in compiled.rules if r.predicate(facts)} <= candidates
    assert all(r.predicate(facts) == (r.index in candidates) for r in compiled.rules if r.proven)
