"""load_settings: maildesk.yaml and the files it names, read into one immutable Settings.

The settings types are in settings.py, a loader for each section of maildesk.yaml in sections.py
and imap_accounts.py, one for each file it names in files.py; they are re-exported here, where
the rest of maildesk imports them from.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from maildesk.config.digests import digests_section, reports_section
from maildesk.config.errors import ConfigError, ConfigProblem
from maildesk.config.files import (ConfigPaths, kb_folder, lines_file, load_files, load_main,
                                   rules_file, sla_file)
from maildesk.config.imap_accounts import imap_accounts
from maildesk.config.sections import (MIN_LEASE, authenticity_section, autoreply_section,
                                      database_section, logging_section, metrics_section,
                                      outbound_section, postmaster_line, processing_section,
                                      security_section, signing_keys, smtp_section)
from maildesk.config.settings import (Agent, Authenticity, Autoreply, Database, ImapAccount,
                                      ImapFolderSettings, Line, LogSettings, MetricsSettings,
                                      Outbound, OwnCheck, Processing, Security, Settings,
                                      SmarthostSettings, SmtpListener, SpamHeader)
from maildesk.config.values import resolve_database_url
from maildesk.durations import parse_duration

__all__ = [
    "DEFAULT_CONFIG", "MIN_LEASE", "Agent", "Authenticity", "Autoreply", "Database",
    "ImapAccount", "ImapFolderSettings", "Line", "LogSettings", "MetricsSettings", "Outbound",
    "OwnCheck", "Processing", "Security", "Settings", "SmarthostSettings", "SmtpListener",
    "SpamHeader", "load_settings", "parse_duration", "resolve_database_url",
]

DEFAULT_CONFIG = Path("config/maildesk.yaml")


def load_settings(config_path: str | Path | None = None) -> Settings:
    """Load maildesk.yaml and the files it names; raise ConfigError listing what is wrong."""
    path = Path(config_path or os.environ.get("MAILDESK_CONFIG") or DEFAULT_CONFIG).resolve()
    problems: list[ConfigProblem] = []
    main = load_main(path, problems)
    d = main.data
    paths = ConfigPaths.of(main)
    main_fits_schema = not problems

    parts = load_files(paths, problems)
    lines = lines_file(parts, problems)
    calendars, sla_policies = sla_file(parts, problems)
    ruleset = rules_file(parts, lines, calendars, paths.rules.parent, problems)
    if not main_fits_schema:  # the section loaders below read maildesk.yaml as its schema says
        raise ConfigError(problems)

    database = database_section(main)
    imap = imap_accounts(main, problems)
    outbound = outbound_section(main, problems)
    security = security_section(main, paths.var)
    postmaster = postmaster_line(main, lines, problems)
    smtp = smtp_section(main, problems)
    authenticity = authenticity_section(main, smtp.relays, problems)
    digests = digests_section(main, lines, problems)
    reports = reports_section(main, calendars, {name: p.calendar.name for name, p
                                                in sla_policies.policies.items()}, problems)
    metrics = metrics_section(main, problems)
    keys = signing_keys(security, problems)
    kb = kb_folder(paths.kb, d.get("language", "en"), problems)
    if problems:
        raise ConfigError(problems)

    tickets = d.get("tickets", {})
    close_after_days = tickets.get("close_after_days", 7)
    return Settings(
        config_path=path,
        instance_name=d["instance"]["name"],
        domain=d["instance"]["domain"],
        support_addresses=tuple(a.lower() for a in d["support_addresses"]),
        ticket_tag=tickets.get("tag", "MD"),
        first_ticket_number=tickets.get("first_number", 1000),
        reply_window_days=tickets.get("reply_window_days", 30),
        close_after=timedelta(days=close_after_days) if close_after_days else None,
        timer_interval=parse_duration((d.get("timers") or {}).get("interval", "30s")),
        database=database,
        smtp=smtp,
        imap_accounts=imap,
        outbound=outbound,
        autoreply=autoreply_section(main),
        processing=processing_section(main),
        lines_path=paths.lines,
        rules_path=paths.rules,
        sla_path=paths.sla,
        templates_dir=paths.templates,
        var_dir=paths.var,
        language=d.get("language", "en"),
        lines=lines,
        rules=parts["rules"].data,
        sla=parts["sla"].data,
        ruleset=ruleset,
        calendars=calendars,
        sla_policies=sla_policies,
        agents_trust_authserv_id=(d.get("agents") or {}).get("trust_authentication_results"),
        security=security,
        signing_keys=keys,
        postmaster_line=postmaster,
        authenticity=authenticity,
        kb=kb,
        digests=digests,
        reports=reports,
        logging=logging_section(main),
        metrics=metrics,
    )
