"""Typed, immutable settings built from the validated YAML files.

A running daemon swaps a whole new Settings in on SIGHUP; nothing here is mutated after load.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package

from maildesk.config.errors import ConfigError, ConfigProblem
from maildesk.addresses import SigningKeys
from maildesk.config.load import LoadedYaml, load_yaml, validate
from maildesk.config.secrets import load_signing_keys
from maildesk.durations import parse_duration
from maildesk.netaddr import IpNetwork, parse_network
from maildesk.rules.engine import Known, RuleSet, compile_rules
from maildesk.sla.calendar import WorkCalendar, calendars_from_sla, default_calendar_name
from maildesk.sla.policy import SlaPolicies, policies_from_sla

DEFAULT_CONFIG = Path("config/maildesk.yaml")

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


MIN_LEASE = timedelta(seconds=5)


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


def _secret(spec: dict[str, str], loaded: LoadedYaml, key_path: tuple) -> str:
    """Read a secret named by {env: NAME} or {file: PATH}; never from the YAML itself."""
    if "env" in spec:
        value = os.environ.get(spec["env"])
        if value is None:
            raise ConfigError([loaded.problem(key_path, f"environment variable {spec['env']} is not set")])
        return value
    path = _resolve(loaded.path.parent, spec["file"])
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([loaded.problem(key_path, f"cannot read secret file {path}: {exc.strerror}")]) from None


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


def resolve_database_url(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the config file's directory; plain postgresql://
    URLs use psycopg 3, the driver maildesk installs."""
    m = re.match(r"^sqlite(\+\w+)?:///(.*)$", url)
    if m and m.group(2) and m.group(2) != ":memory:" and not m.group(2).startswith("/"):
        return f"sqlite{m.group(1) or ''}:///{_resolve(base, m.group(2))}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _lines(loaded: LoadedYaml) -> tuple[Line, ...]:
    out = []
    ids = set()
    problems = []
    for i, raw in enumerate(loaded.data.get("lines", [])):
        agents = []
        for a in raw.get("agents", []):
            if isinstance(a, str):
                agents.append(Agent(address=a.lower()))
            else:
                agents.append(Agent(address=a["address"].lower(), name=a.get("name", ""),
                                    aliases=tuple(x.lower() for x in a.get("aliases", []))))
        if raw["id"] in ids:
            problems.append(loaded.problem(("lines", i, "id"), f"duplicate line id {raw['id']!r}"))
        ids.add(raw["id"])
        out.append(Line(id=raw["id"], name=raw.get("name", raw["id"]), mailbox=raw["mailbox"].lower(),
                        agents=tuple(agents), next=raw.get("next"),
                        ola=parse_duration(raw["ola"]) if raw.get("ola") else None,
                        ola_text=raw.get("ola"), sla_policy=raw.get("sla_policy"),
                        lead=raw.get("lead"), external=raw.get("external", False),
                        on_breach=raw.get("on_breach", "escalate" if raw.get("next") else "lead")))
    for i, line in enumerate(out):
        if line.next and line.next not in ids:
            problems.append(loaded.problem(("lines", i, "next"),
                                           f"unknown line {line.next!r} (known: {', '.join(sorted(ids))})"))
    if problems:
        raise ConfigError(problems)
    return tuple(out)


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _imap_accounts(loaded: LoadedYaml) -> tuple[ImapAccount, ...]:
    base = loaded.path.parent
    out: list[ImapAccount] = []
    problems: list[ConfigProblem] = []
    for i, a in enumerate(loaded.data.get("imap", {}).get("accounts", [])):
        at = ("imap", "accounts", i)
        if any(x.name == a["name"] for x in out):
            problems.append(loaded.problem((*at, "name"), f"duplicate account name {a['name']!r}"))
        security = a.get("security", "tls")
        if security == "none" and a["host"].lower() not in _LOOPBACK:
            problems.append(loaded.problem((*at, "security"), "security none would send the "
                                           "password in clear: allowed only for a loopback host; "
                                           "use tls or starttls"))
        after = a.get("after_store", "seen")
        if after == "move" and not a.get("move_to"):
            problems.append(loaded.problem((*at, "after_store"), "after_store: move needs move_to"))
        folders = tuple(ImapFolderSettings(f) if isinstance(f, str)
                        else ImapFolderSettings(f["name"], f.get("update_only", False))
                        for f in a.get("folders", ["INBOX"]))
        names = [f.name for f in folders]
        for special in ("move_to", "quarantine_folder"):
            if a.get(special) in names:
                problems.append(loaded.problem((*at, special), f"{a[special]!r} is also a watched "
                                               "folder: mail would go round in circles"))
        mode, _, since = a.get("import_existing", "none").partition(" ")
        try:
            import_since = date.fromisoformat(since) if since else None
        except ValueError:
            problems.append(loaded.problem((*at, "import_existing"), f"not a date: {since!r}"))
            import_since = None
        oauth = a.get("oauth2", {})
        try:
            password = _secret(a["password"], loaded, (*at, "password")) if "password" in a else None
        except ConfigError as exc:
            problems.extend(exc.problems)
            password = None
        out.append(ImapAccount(
            name=a["name"], host=a["host"], username=a["username"],
            port=a.get("port", 993 if security == "tls" else 143), security=security,
            password=password,
            oauth2_token_file=_resolve(base, oauth["token_file"]) if "token_file" in oauth else None,
            oauth2_token_command=oauth.get("token_command"),
            ca_file=_resolve(base, a["ca_file"]) if "ca_file" in a else None,
            folders=folders, after_store=after, move_to=a.get("move_to"),
            quarantine_folder=a.get("quarantine_folder"), import_existing=mode,
            import_since=import_since, idle=a.get("idle", True),
            poll_interval=parse_duration(a.get("poll_interval", "60s")),
            batch_size=a.get("batch_size", 100), enabled=a.get("enabled", True)))
    if problems:
        raise ConfigError(problems)
    return tuple(out)


def _networks(loaded: LoadedYaml, key: tuple[str, ...], values: list[object],
              problems: list[ConfigProblem]) -> list[IpNetwork]:
    """IPs and CIDR networks of a list in the YAML; each bad one is a problem at its line."""
    out = []
    for i, text in enumerate(values):
        network = parse_network(text)
        if network is None:
            problems.append(loaded.problem((*key, i), f"{text!r} is not an IP address or CIDR "
                                           "network (e.g. 192.0.2.10 or 2001:db8::/64)"))
        else:
            out.append(network)
    return out


def _authenticity(loaded: LoadedYaml, domain: str, default_relays: tuple = ()  # type: ignore[type-arg]
                  ) -> tuple[Authenticity, list[ConfigProblem]]:
    """The `authenticity:` section; problems name the key (a bad CIDR, a bad regex). Without
    `trusted_relays` the listener's `smtp.relays` (the MTA in front) are trusted."""
    a = loaded.data.get("authenticity") or {}
    problems: list[ConfigProblem] = []
    relays = _networks(loaded, ("authenticity", "trusted_relays"),
                       a.get("trusted_relays", []), problems)
    spam = None
    if a.get("spam_header"):
        spec = a["spam_header"]
        match = spec.get("match", "(?i)^yes")
        pattern = None
        values: frozenset[str] = frozenset()
        if isinstance(match, str):
            try:
                pattern = re.compile(match)
            except re.error as exc:
                problems.append(loaded.problem(("authenticity", "spam_header", "match"),
                                               f"not a regular expression: {exc}"))
        else:
            values = frozenset(str(v).lower() for v in match)
        spam = SpamHeader(spec["name"], pattern, values)
    own = a.get("own_check") or {}
    own_check = OwnCheck(enabled=own.get("enabled", False),
                         nameserver=str(own.get("nameserver", "127.0.0.1")),
                         port=own.get("port", 53),
                         timeout=parse_duration(own.get("timeout", "5s")),
                         authserv_id=own.get("authserv_id") or domain)
    if own_check.enabled:
        try:
            ipaddress.ip_address(own_check.nameserver)
        except ValueError:
            problems.append(loaded.problem(("authenticity", "own_check", "nameserver"),
                                           f"{own_check.nameserver!r}: an IP address is "
                                           "needed (the resolver is asked directly)"))
    return Authenticity(
        policy=a.get("policy", "block-fail"),
        trusted_authserv_ids=tuple(str(x).lower() for x in a.get("trusted_authserv_ids", [])),
        trusted_relays=tuple(relays) if "trusted_relays" in a else default_relays,
        spam_header=spam, own_check=own_check), problems


def _smtp_listener(loaded: LoadedYaml) -> tuple[SmtpListener, list[ConfigProblem]]:
    """The `smtp:` section: durations in seconds, relays as networks; problems name the key."""
    s = dict(loaded.data.get("smtp") or {})
    problems: list[ConfigProblem] = []
    relays = _networks(loaded, ("smtp", "relays"), s.pop("relays", None) or [], problems)
    for key in ("idle_timeout", "overload_idle_timeout"):
        if key in s:
            s[key] = parse_duration(s[key]).total_seconds()
            if s[key] <= 0:
                problems.append(loaded.problem(("smtp", key), "must be longer than 0s"))
                del s[key]
    return SmtpListener(**s, relays=tuple(relays)), problems


def _check_sla(loaded: LoadedYaml) -> None:
    data = loaded.data
    problems = []
    for name, policy in data.get("policies", {}).items():
        if policy["calendar"] not in data.get("calendars", {}):
            problems.append(loaded.problem(("policies", name, "calendar"),
                                           f"unknown calendar {policy['calendar']!r}"))
    default = data.get("default_policy")
    if default and default not in data.get("policies", {}):
        problems.append(loaded.problem(("default_policy",), f"unknown policy {default!r}"))
    for name, calendar in data.get("calendars", {}).items():
        hours = calendar.get("hours")
        if isinstance(hours, dict):
            if not any(hours.values()):
                problems.append(loaded.problem(("calendars", name, "hours"),
                                               "no working hours on any day (use `hours: "
                                               "always` for a 24/7 calendar)"))
            for day, spans in hours.items():
                for i, span in enumerate(spans or ()):
                    start, _, end = span.partition("-")
                    if start >= end or start > "24:00" or end > "24:00":
                        problems.append(loaded.problem(
                            ("calendars", name, "hours", day, i),
                            f"{span!r}: a span runs from an earlier to a later time of the "
                            "same day, 00:00-24:00 at most"))
        try:
            ZoneInfo(calendar["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(loaded.problem(("calendars", name, "timezone"),
                                           f"unknown time zone {calendar['timezone']!r} "
                                           "(an IANA name such as Europe/Moscow)"))
        country = (calendar.get("holidays") or {}).get("country")
        if country and country.upper() not in holidays_package.list_supported_countries():
            problems.append(loaded.problem(("calendars", name, "holidays", "country"),
                                           f"the holidays package does not know country "
                                           f"{country!r} (ISO 3166 codes such as RU, DE)"))
    if problems:
        raise ConfigError(problems)


def _load_part(path: Path, schema: str) -> LoadedYaml:
    loaded = load_yaml(path)
    validate(loaded, schema)
    return loaded


def load_settings(config_path: str | Path | None = None) -> Settings:
    """Load maildesk.yaml and the files it names; raise ConfigError listing what is wrong."""
    path = Path(config_path or os.environ.get("MAILDESK_CONFIG") or DEFAULT_CONFIG).resolve()
    main = _load_part(path, "maildesk")
    d = main.data
    base = path.parent
    paths = d.get("paths", {})
    lines_path = _resolve(base, paths.get("lines", "lines.yaml"))
    rules_path = _resolve(base, paths.get("rules", "rules.yaml"))
    sla_path = _resolve(base, paths.get("sla", "sla.yaml"))

    problems: list[ConfigProblem] = []
    parts: dict[str, LoadedYaml] = {}
    for name, p in (("lines", lines_path), ("rules", rules_path), ("sla", sla_path)):
        try:
            parts[name] = _load_part(p, name)
        except ConfigError as exc:
            problems.extend(exc.problems)
    lines: tuple[Line, ...] = ()
    if "lines" in parts:
        try:
            lines = _lines(parts["lines"])
        except ConfigError as exc:
            problems.extend(exc.problems)
    calendars: dict[str, WorkCalendar] = {}
    sla_policies = SlaPolicies()
    if "sla" in parts:
        try:
            _check_sla(parts["sla"])
            calendars = calendars_from_sla(parts["sla"].data)
            sla_policies = policies_from_sla(parts["sla"].data, calendars)
        except ConfigError as exc:
            problems.extend(exc.problems)
    ruleset = RuleSet((), {})
    if "rules" in parts and "lines" in parts and "sla" in parts:
        sla_data = parts["sla"].data
        known = Known(lines=frozenset(line.id for line in lines),
                      policies=frozenset(sla_data.get("policies", {})),
                      agents=frozenset(a for line in lines for agent in line.agents
                                       for a in (agent.address, *agent.aliases)),
                      calendars=calendars, default_calendar=default_calendar_name(sla_data),
                      base_dir=rules_path.parent)
        ruleset, rule_problems = compile_rules(parts["rules"].data, known, parts["rules"].problem)
        problems.extend(rule_problems)
        for i, line in enumerate(lines):
            if line.sla_policy and line.sla_policy not in known.policies:
                problems.append(parts["lines"].problem(
                    ("lines", i, "sla_policy"), f"unknown SLA policy {line.sla_policy!r} "
                    f"(sla.yaml has: {', '.join(sorted(known.policies)) or 'none'})"))

    db = d["database"]
    if "url" in db:
        url = db["url"]
    elif "url_env" in db:
        url = _secret({"env": db["url_env"]}, main, ("database", "url_env"))
    else:
        url = _secret({"file": db["url_file"]}, main, ("database", "url_file"))

    out = d.get("outbound", {})
    smarthost = None
    if "smtp" in out:
        s = out["smtp"]
        password = _secret(s["password"], main, ("outbound", "smtp", "password")) if "password" in s else None
        security = s.get("security", "starttls")
        smarthost = SmarthostSettings(host=s["host"], port=s.get("port", 465 if security == "tls" else 587),
                                      security=security, username=s.get("username"), password=password,
                                      ca_file=_resolve(base, s["ca_file"]) if "ca_file" in s else None)
    try:
        imap_accounts = _imap_accounts(main)
    except ConfigError as exc:
        problems.extend(exc.problems)
        imap_accounts = ()
    if out.get("transport") == "smtp" and smarthost is None:
        problems.append(main.problem(("outbound", "transport"), "transport smtp needs an outbound.smtp section"))
    lease = parse_duration(out.get("lease", "90s"))
    if lease < MIN_LEASE:
        problems.append(main.problem(("outbound", "lease"), f"at least {MIN_LEASE.seconds}s: a "
                                     "shorter lease ends while its mails are still being sent"))
    tickets = d.get("tickets", {})
    var_dir = _resolve(base, paths.get("var", "../var"))
    sec = d.get("security") or {}
    security = Security(
        secret_file=_resolve(base, sec["secret_file"]) if "secret_file" in sec
        else var_dir / "maildesk.key",
        bounce_tag_validity=parse_duration(sec.get("bounce_tag_validity", "21d")),
        max_tokens_per_message=sec.get("max_tokens_per_message", 3),
        token_failures_per_hour=sec.get("token_failures_per_hour", 20))
    postmaster_line = tickets.get("postmaster_line")
    if postmaster_line is not None and postmaster_line not in {line.id for line in lines}:
        problems.append(main.problem(("tickets", "postmaster_line"),
                                     f"unknown line {postmaster_line!r}"))
    smtp, smtp_problems = _smtp_listener(main)
    problems.extend(smtp_problems)
    authenticity, authenticity_problems = _authenticity(main, d["instance"]["domain"],
                                                        default_relays=smtp.relays)
    problems.extend(authenticity_problems)
    signing_keys = SigningKeys((b"unset",))
    if not problems:
        try:
            signing_keys = load_signing_keys(security.secret_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)

    return Settings(
        config_path=path,
        instance_name=d["instance"]["name"],
        domain=d["instance"]["domain"],
        support_addresses=tuple(a.lower() for a in d["support_addresses"]),
        ticket_tag=tickets.get("tag", "MD"),
        first_ticket_number=tickets.get("first_number", 1000),
        reply_window_days=tickets.get("reply_window_days", 30),
        close_after=timedelta(days=tickets.get("close_after_days", 7))
        if tickets.get("close_after_days", 7) else None,
        timer_interval=parse_duration((d.get("timers") or {}).get("interval", "30s")),
        database=Database(url=resolve_database_url(url, base),
                          lock_timeout_ms=db.get("lock_timeout_ms", 5000)),
        smtp=smtp,
        imap_accounts=imap_accounts,
        outbound=Outbound(transport=out.get("transport", "maildir"),
                          maildir=_resolve(base, out.get("maildir", "../var/outbox-maildir")),
                          smtp=smarthost,
                          give_up_after=parse_duration(out.get("give_up_after", "2d")),
                          lease=lease),
        autoreply=Autoreply(**{**d.get("autoreply", {}), "mute_after_bounce": parse_duration(
            d.get("autoreply", {}).get("mute_after_bounce", "1d"))}),
        processing=Processing(**d.get("processing", {})),
        lines_path=lines_path,
        rules_path=rules_path,
        sla_path=sla_path,
        templates_dir=_resolve(base, paths.get("templates", "../templates")),
        var_dir=var_dir,
        language=d.get("language", "en"),
        lines=lines,
        rules=parts["rules"].data,
        sla=parts["sla"].data,
        ruleset=ruleset,
        calendars=calendars,
        sla_policies=sla_policies,
        agents_trust_authserv_id=(d.get("agents") or {}).get("trust_authentication_results"),
        security=security,
        signing_keys=signing_keys,
        postmaster_line=postmaster_line,
        authenticity=authenticity,
    )
