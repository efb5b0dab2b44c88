"""The typed, immutable settings that load_settings builds from the validated YAML files.

A running daemon swaps a whole new Settings in on SIGHUP; nothing here is mutated after load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from maildesk.addresses import SigningKeys
from maildesk.kb.model import KnowledgeBase
from maildesk.netaddr import IpNetwork
from maildesk.rules.engine import RuleSet
from maildesk.sla.calendar import WorkCalendar
from maildesk.sla.policy import SlaPolicies


@dataclass(frozen=True)
class SmtpListener:
    """The listener and its limits (PRODUCT.md §8); defaults at least as strict as Postfix's."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_size: int = 25 * 1024 * 1024
    max_sessions: int = 100               # open sessions in total; more get 421
    max_sessions_per_ip: int = 20         # ... from one client IP (not for `relays`)
    relays: tuple[IpNetwork, ...] = ()  # the MTA in front
    max_recipients: int = 100             # per message; more get 452 (RFC 5321 minimum)
    recipient_overshoot_limit: int = 1000  # 452s beyond that before each counts as an error
    max_junk_commands: int = 10           # NOOP, RSET, VRFY, EXPN, HELP, repeated EHLO...
    max_errors: int = 20                  # 4xx/5xx replies per session before 421
    idle_timeout: float = 300.0           # seconds per command, and for DATA (see min_data_rate)
    overload_idle_timeout: float = 10.0   # ... while more than overload_fraction are open
    overload_fraction: float = 0.8
    min_data_rate: int = 500              # bytes/s: DATA gets idle_timeout plus 1 s per this
    fd_reserve: int = 64                  # descriptors kept for all but sessions


@dataclass(frozen=True)
class Database:
    url: str
    lock_timeout_ms: int = 5000


@dataclass(frozen=True)
class SmarthostSettings:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None


@dataclass(frozen=True)
class ImapFolderSettings:
    name: str
    update_only: bool = False


@dataclass(frozen=True)
class ImapAccount:
    """One mailbox the poller takes mail from (`imap.accounts[]` in maildesk.yaml)."""

    name: str
    host: str
    username: str
    port: int = 993
    security: str = "tls"                   # tls | starttls | none (loopback only)
    password: str | None = field(default=None, repr=False)
    oauth2_token_file: Path | None = None
    oauth2_token_command: str | None = None
    ca_file: Path | None = None
    folders: tuple[ImapFolderSettings, ...] = (ImapFolderSettings("INBOX"),)
    after_store: str = "seen"               # seen | move | delete
    move_to: str | None = None
    quarantine_folder: str | None = None
    import_existing: str = "none"           # none | all | since
    import_since: date | None = None
    idle: bool = True
    poll_interval: timedelta = timedelta(seconds=60)
    batch_size: int = 100
    enabled: bool = True


@dataclass(frozen=True)
class Outbound:
    transport: str = "maildir"
    maildir: Path = Path("var/outbox-maildir")
    smtp: SmarthostSettings | None = None
    give_up_after: timedelta = timedelta(days=2)
    # How long a delivering process holds the mails it claimed: after a crash, another sends
    # them once it has passed. Longer than sending a group of 25 may take.
    lease: timedelta = timedelta(seconds=90)


@dataclass(frozen=True)
class Autoreply:
    enabled: bool = True
    max_per_sender_per_hour: int = 5
    mute_after_bounce: timedelta = timedelta(days=1)
    # Backscatter caps (PRODUCT.md §8): a forged flood from many addresses of one domain, or
    # of many domains, cannot make maildesk mail more than this.
    max_per_domain_per_hour: int = 20
    max_per_hour: int = 100
    # Self-service: public knowledge-base articles that match the client's mail well enough
    # are named in the acknowledgement (none when nothing matches that well).
    suggest_articles: int = 3
    suggest_threshold: float = 0.31
    faq_url: str | None = None   # the published FAQ (`kb build`); None: the articles inline


@dataclass(frozen=True)
class SpamHeader:
    """A trusted relay's spam verdict: the header, and a regex or a list of values (compared
    with the value's first word, case-insensitively) that mean spam."""

    name: str
    pattern: re.Pattern[str] | None = None
    values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OwnCheck:
    """maildesk's own SPF/DKIM/DMARC check of mail that reaches its SMTP listener."""

    enabled: bool = False
    nameserver: str = "127.0.0.1"     # a validating resolver you run; never a guess
    port: int = 53
    timeout: timedelta = timedelta(seconds=5)   # for all lookups of one message together
    authserv_id: str | None = None    # in the results it records (default: instance.domain)


@dataclass(frozen=True)
class Authenticity:
    """When automatic mail may go to a sender (no backscatter; pipeline/authenticity.py)."""

    policy: str = "block-fail"        # require-pass | block-fail | off
    trusted_authserv_ids: tuple[str, ...] = ()
    trusted_relays: tuple[IpNetwork, ...] = ()
    spam_header: SpamHeader | None = None
    own_check: OwnCheck = field(default_factory=OwnCheck)


@dataclass(frozen=True)
class Security:
    """Return-path signing and reply-token probing (PRODUCT.md §8)."""

    secret_file: Path = Path("var/maildesk.key")   # made on first load, mode 0600
    bounce_tag_validity: timedelta = timedelta(days=21)
    max_tokens_per_message: int = 3       # more distinct token addresses: quarantined
    token_failures_per_hour: int = 20     # failed lookups per IP before token RCPTs get 550


@dataclass(frozen=True)
class Processing:
    max_attempts: int = 5
    parse_timeout_seconds: float = 20.0
    parse_memory_mb: int = 1024


@dataclass(frozen=True)
class LogSettings:
    """`logging:`: how `serve` writes its log to stderr."""

    format: str = "text"     # text | json (one object per line)
    level: str = "info"      # debug | info | warning | error


@dataclass(frozen=True)
class MetricsSettings:
    """`metrics:`: the HTTP endpoint with /metrics and /healthz (none unless `listen`)."""

    listen: tuple[str, int] | None = None      # host, port
    allow_remote: bool = False                 # a listen address that is not loopback
    stuck_after: timedelta = timedelta(minutes=10)  # /healthz: processing or delivery stuck


@dataclass(frozen=True)
class Agent:
    address: str
    name: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Line:
    id: str
    name: str
    mailbox: str
    agents: tuple[Agent, ...] = ()
    next: str | None = None
    ola: timedelta | None = None
    lead: str | None = None
    external: bool = False   # a vendor: its notifications carry no internal notes
    on_breach: str = "escalate"   # a missed deadline: escalate to `next`, or tell the `lead`
    ola_text: str | None = None   # as written: in business time `1d` is a working day
    sla_policy: str | None = None  # for tickets routed here without a rule's sla_policy


@dataclass(frozen=True)
class Digests:
    """`digests:`: a morning mail to each line mailbox listing what needs attention."""

    enabled: bool = False            # no `digests:` section: none
    at: time = time(9, 0)            # local time of the line's calendar, on its business days
    waiting_days: int = 3            # pending longer than this: "waiting on the client"
    lines: tuple[str, ...] | None = None   # None: every line but the external ones


@dataclass(frozen=True)
class ReportMailing:
    """One entry of `reports:`: the KPI report of the previous full period, by mail."""

    to: tuple[str, ...]
    every: str = "week"              # day | week | month
    on: int = 0                      # week: the weekday it goes out and the week starts (0 Monday)
    at: time = time(8, 0)            # local time of `calendar`
    by: str | None = None            # grouping: line | agent | category | priority
    calendar: str | None = None      # a calendar of sla.yaml; None: the default policy's


@dataclass(frozen=True)
class Settings:
    """Everything the daemon and the commands need, resolved to absolute paths."""

    config_path: Path
    instance_name: str
    domain: str
    support_addresses: tuple[str, ...]
    ticket_tag: str
    first_ticket_number: int
    reply_window_days: int
    database: Database
    smtp: SmtpListener
    imap_accounts: tuple[ImapAccount, ...]
    outbound: Outbound
    autoreply: Autoreply
    processing: Processing
    lines_path: Path
    rules_path: Path
    sla_path: Path
    templates_dir: Path
    var_dir: Path
    language: str
    lines: tuple[Line, ...]
    rules: dict[str, Any]
    sla: dict[str, Any]
    ruleset: RuleSet = field(default_factory=lambda: RuleSet((), {}))
    calendars: dict[str, WorkCalendar] = field(default_factory=dict)
    sla_policies: SlaPolicies = field(default_factory=SlaPolicies)
    close_after: timedelta | None = timedelta(days=7)   # resolved -> closed by itself
    timer_interval: timedelta = timedelta(seconds=30)
    agents_trust_authserv_id: str | None = None
    security: Security = field(default_factory=Security)
    signing_keys: SigningKeys = field(default=SigningKeys((b"unset",)), repr=False)
    postmaster_line: str | None = None    # mail to postmaster@: this line (None: the rules')
    authenticity: Authenticity = field(default_factory=Authenticity)
    kb: KnowledgeBase = field(default_factory=KnowledgeBase)   # kb/<lang>/<slug>.md
    digests: Digests = field(default_factory=Digests)
    reports: tuple[ReportMailing, ...] = ()
    logging: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    def line(self, line_id: str | None) -> Line | None:
        return next((line for line in self.lines if line.id == line_id), None)

    def agent(self, address: str) -> tuple[Line, Agent] | None:
        """The line and agent entry of an address (or alias); the first line listing it."""
        address = address.lower()
        for line in self.lines:
            for agent in line.agents:
                if agent.address == address or address in agent.aliases:
                    return line, agent
        return None

    def agent_addresses(self) -> frozenset[str]:
        """Every address (and alias) of every agent of every line, lower-cased."""
        return self._agent_addresses

    @cached_property
    def _agent_addresses(self) -> frozenset[str]:
        # Asked for every message; Settings never changes, so it is worked out once.
        out = set()
        for line in self.lines:
            for agent in line.agents:
                out.add(agent.address.lower())
                out.update(a.lower() for a in agent.aliases)
        return frozenset(out)

    def line_mailboxes(self) -> frozenset[str]:
        return self._line_mailboxes

    @cached_property
    def _line_mailboxes(self) -> frozenset[str]:
        return frozenset(line.mailbox.lower() for line in self.lines)
