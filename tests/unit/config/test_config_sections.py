"""The loaders of each file and section: every mistake of one load is reported together, in
the order the files and sections are read; the old import paths still work."""

from pathlib import Path

import pytest

from config_helpers import cfg, replace  # noqa: F401  (cfg: a fixture)
from maildesk.config import ConfigError, load_settings


def test_mistakes_of_every_file_and_section_come_together_in_load_order(cfg):
    main = cfg / "maildesk.yaml"
    replace(cfg / "rules.yaml", "line: line2", "line: line42")
    replace(cfg / "lines.yaml", "    agents: [engineer@vendor.example]",
            "    agents: [engineer@vendor.example]\n    sla_policy: gold")
    replace(cfg / "sla.yaml", "default_policy: standard", "default_policy: gold")
    replace(cfg / "sla.yaml", 'mon: ["09:00-18:00"]', 'mon: ["18:00-09:00"]')
    replace(cfg / "sla.yaml", "country: RU", "country: XX")
    replace(main, "imap:\n  accounts: []",
            "imap:\n  accounts:\n    - {name: a, host: imap.example.com, username: u,\n"
            "       password: {env: MD_TEST_UNSET}, after_store: move}")
    replace(main, "transport: maildir", "transport: smtp")
    replace(main, "lease: 90s", "lease: 1s")
    replace(main, "postmaster_line: line1", "postmaster_line: line7")
    replace(main, "relays: []", "relays: [nonsense]")
    replace(main, "idle_timeout: 300s", "idle_timeout: 0s")
    replace(main, "trusted_authserv_ids: []",
            "trusted_authserv_ids: []\n  spam_header: {name: X-Spam, match: '(['}")
    replace(main, "enabled: false\n    nameserver: 127.0.0.1",
            "enabled: true\n    nameserver: resolver.example")
    with pytest.raises(ConfigError) as err:
        load_settings(main)
    assert [(Path(p.file).name, p.key) for p in err.value.problems] == [
        ("sla.yaml", "default_policy"),
        ("sla.yaml", "calendars.moscow.hours.mon[0]"),
        ("sla.yaml", "calendars.moscow.holidays.country"),
        ("rules.yaml", "rules[0].set.line"),
        ("lines.yaml", "lines[3].sla_policy"),
        ("maildesk.yaml", "imap.accounts[0].after_store"),
        ("maildesk.yaml", "imap.accounts[0].password"),
        ("maildesk.yaml", "outbound.transport"),
        ("maildesk.yaml", "outbound.lease"),
        ("maildesk.yaml", "tickets.postmaster_line"),
        ("maildesk.yaml", "smtp.relays[0]"),
        ("maildesk.yaml", "smtp.idle_timeout"),
        ("maildesk.yaml", "authenticity.spam_header.match"),
        ("maildesk.yaml", "authenticity.own_check.nameserver"),
    ]
    assert not (cfg.parent / "var" / "maildesk.key").exists()   # made only for a sound config


def test_a_secret_that_cannot_be_read_stops_the_load_alone(cfg):
    main = cfg / "maildesk.yaml"
    replace(cfg / "lines.yaml", "next: line2", "next: line9")
    replace(main, "url: sqlite:///../var/maildesk.db", "url_env: MD_TEST_UNSET_DB")
    with pytest.raises(ConfigError) as err:
        load_settings(main)
    (problem,) = err.value.problems
    assert problem.key == "database.url_env" and "MD_TEST_UNSET_DB is not set" in problem.message


def test_defaults_of_a_minimal_config(cfg):
    main = cfg / "maildesk.yaml"
    main.write_text("instance: {name: X, domain: x.example}\nsupport_addresses: [Help@X.example]\n"
                    "database: {url: 'sqlite:///md.db'}\n", encoding="utf-8")
    s = load_settings(main)
    assert s.support_addresses == ("help@x.example",)
    assert (s.ticket_tag, s.first_ticket_number, s.reply_window_days) == ("MD", 1000, 30)
    assert s.close_after.days == 7 and s.timer_interval.total_seconds() == 30
    assert s.var_dir == (cfg.parent / "var").resolve()
    assert s.security.secret_file == s.var_dir / "maildesk.key" and s.security.secret_file.exists()
    assert s.outbound.maildir == (cfg.parent / "var" / "outbox-maildir").resolve()
    assert (s.outbound.transport, s.outbound.lease.total_seconds()) == ("maildir", 90)
    assert s.authenticity.own_check.authserv_id == "x.example"
    assert s.database.url == f"sqlite:///{cfg / 'md.db'}"
    assert s.language == "en" and s.postmaster_line is None


def test_the_old_import_paths_still_work():
    from maildesk.config.model import (  # noqa: F401
        Authenticity, Database, ImapAccount, ImapFolderSettings, Line, Outbound, Settings,
        SmarthostSettings, SmtpListener, SpamHeader, load_settings, parse_duration,
        resolve_database_url)
    from maildesk.config.load import LoadedYaml, load_schema, load_yaml, schema_dir, validate  # noqa: F401
