"""One loader for each section of maildesk.yaml (but `imap:`, in imap_accounts.py).

A loader adds what is wrong to the caller's `problems` and still returns a value, so one run
reports every section's mistakes together. The exceptions are the secrets of `database:` and
`outbound.smtp:`: one that cannot be read raises ConfigError at once, alone.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from maildesk.addresses import SigningKeys
from maildesk.config.errors import ConfigProblem, gather_problems
from maildesk.config.load import LoadedYaml
from maildesk.config.secrets import load_signing_keys
from maildesk.config.settings import (Authenticity, Autoreply, Database, Line, LogSettings,
                                      MetricsSettings, OwnCheck, Outbound, Processing,
                                      SmarthostSettings, SmtpListener, SpamHeader, Security)
from maildesk.config.values import (parse_networks, read_secret, resolve_database_url,
                                    resolve_path)
from maildesk.durations import parse_duration
from maildesk.netaddr import IpNetwork

MIN_LEASE = timedelta(seconds=5)
UNSET_SIGNING_KEYS = SigningKeys((b"unset",))


def database_section(main: LoadedYaml) -> Database:
    """`database:`: the URL as written, or from an environment variable or a file."""
    db = main.data["database"]
    if "url" in db:
        url = db["url"]
    elif "url_env" in db:
        url = read_secret({"env": db["url_env"]}, main, ("database", "url_env"))
    else:
        url = read_secret({"file": db["url_file"]}, main, ("database", "url_file"))
    return Database(url=resolve_database_url(url, main.path.parent),
                    lock_timeout_ms=db.get("lock_timeout_ms", 5000))


def outbound_section(main: LoadedYaml, problems: list[ConfigProblem]) -> Outbound:
    """`outbound:`: the transport, its smarthost and how long a claim on a mail lasts."""
    out = main.data.get("outbound", {})
    smarthost = _smarthost(main, out["smtp"]) if "smtp" in out else None
    if out.get("transport") == "smtp" and smarthost is None:
        problems.append(main.problem(("outbound", "transport"),
                                     "transport smtp needs an outbound.smtp section"))
    lease = parse_duration(out.get("lease", "90s"))
    if lease < MIN_LEASE:
        problems.append(main.problem(("outbound", "lease"), f"at least {MIN_LEASE.seconds}s: a "
                                     "shorter lease ends while its mails are still being sent"))
    return Outbound(transport=out.get("transport", "maildir"),
                    maildir=resolve_path(main.path.parent,
                                         out.get("maildir", "../var/outbox-maildir")),
                    smtp=smarthost,
                    give_up_after=parse_duration(out.get("give_up_after", "2d")),
                    lease=lease)


def _smarthost(main: LoadedYaml, s: dict[str, Any]) -> SmarthostSettings:
    password = (read_secret(s["password"], main, ("outbound", "smtp", "password"))
                if "password" in s else None)
    security = s.get("security", "starttls")
    return SmarthostSettings(
        host=s["host"], port=s.get("port", 465 if security == "tls" else 587),
        security=security, username=s.get("username"), password=password,
        ca_file=resolve_path(main.path.parent, s["ca_file"]) if "ca_file" in s else None)


def security_section(main: LoadedYaml, var_dir: Path) -> Security:
    """`security:`; the key file is in the var directory unless named."""
    sec = main.data.get("security") or {}
    return Security(
        secret_file=resolve_path(main.path.parent, sec["secret_file"]) if "secret_file" in sec
        else var_dir / "maildesk.key",
        bounce_tag_validity=parse_duration(sec.get("bounce_tag_validity", "21d")),
        max_tokens_per_message=sec.get("max_tokens_per_message", 3),
        token_failures_per_hour=sec.get("token_failures_per_hour", 20))


def signing_keys(security: Security, problems: list[ConfigProblem]) -> SigningKeys:
    """The keys of `security.secret_file`, read only when nothing else is wrong: reading makes
    the file when it is missing."""
    keys = UNSET_SIGNING_KEYS
    if not problems:
        with gather_problems(problems):
            keys = load_signing_keys(security.secret_file)
    return keys


def postmaster_line(main: LoadedYaml, lines: tuple[Line, ...],
                    problems: list[ConfigProblem]) -> str | None:
    """`tickets.postmaster_line`, which must be a line of lines.yaml."""
    line_id = main.data.get("tickets", {}).get("postmaster_line")
    if line_id is not None and line_id not in {line.id for line in lines}:
        problems.append(main.problem(("tickets", "postmaster_line"),
                                     f"unknown line {line_id!r}"))
    return line_id


def smtp_section(main: LoadedYaml, problems: list[ConfigProblem]) -> SmtpListener:
    """`smtp:`: durations in seconds, relays as networks."""
    s = dict(main.data.get("smtp") or {})
    relays = parse_networks(main, ("smtp", "relays"), s.pop("relays", None) or [], problems)
    for key in ("idle_timeout", "overload_idle_timeout"):
        if key in s:
            s[key] = parse_duration(s[key]).total_seconds()
            if s[key] <= 0:
                problems.append(main.problem(("smtp", key), "must be longer than 0s"))
                del s[key]
    return SmtpListener(**s, relays=tuple(relays))


def authenticity_section(main: LoadedYaml, default_relays: tuple[IpNetwork, ...],
                         problems: list[ConfigProblem]) -> Authenticity:
    """`authenticity:`. Without `trusted_relays` the listener's `smtp.relays` (the MTA in
    front) are trusted."""
    a = main.data.get("authenticity") or {}
    relays = parse_networks(main, ("authenticity", "trusted_relays"),
                            a.get("trusted_relays", []), problems)
    spam = _spam_header(main, a["spam_header"], problems) if a.get("spam_header") else None
    own_check = _own_check(main, a.get("own_check") or {}, problems)
    return Authenticity(
        policy=a.get("policy", "block-fail"),
        trusted_authserv_ids=tuple(str(x).lower() for x in a.get("trusted_authserv_ids", [])),
        trusted_relays=tuple(relays) if "trusted_relays" in a else default_relays,
        spam_header=spam, own_check=own_check)


def _spam_header(main: LoadedYaml, spec: dict[str, Any],
                 problems: list[ConfigProblem]) -> SpamHeader:
    """`match` is a regular expression, or a list of values."""
    match = spec.get("match", "(?i)^yes")
    pattern = None
    values: frozenset[str] = frozenset()
    if isinstance(match, str):
        try:
            pattern = re.compile(match)
        except re.error as exc:
            problems.append(main.problem(("authenticity", "spam_header", "match"),
                                         f"not a regular expression: {exc}"))
    else:
        values = frozenset(str(v).lower() for v in match)
    return SpamHeader(spec["name"], pattern, values)


def _own_check(main: LoadedYaml, own: dict[str, Any],
               problems: list[ConfigProblem]) -> OwnCheck:
    """`authenticity.own_check`; its results name instance.domain unless told otherwise."""
    own_check = OwnCheck(enabled=own.get("enabled", False),
                         nameserver=str(own.get("nameserver", "127.0.0.1")),
                         port=own.get("port", 53),
                         timeout=parse_duration(own.get("timeout", "5s")),
                         authserv_id=own.get("authserv_id") or main.data["instance"]["domain"])
    if own_check.enabled:
        try:
            ipaddress.ip_address(own_check.nameserver)
        except ValueError:
            problems.append(main.problem(("authenticity", "own_check", "nameserver"),
                                         f"{own_check.nameserver!r}: an IP address is "
                                         "needed (the resolver is asked directly)"))
    return own_check


def autoreply_section(main: LoadedYaml) -> Autoreply:
    autoreply = main.data.get("autoreply", {})
    return Autoreply(**{**autoreply, "mute_after_bounce": parse_duration(
        autoreply.get("mute_after_bounce", "1d"))})


def processing_section(main: LoadedYaml) -> Processing:
    return Processing(**main.data.get("processing", {}))


def logging_section(main: LoadedYaml) -> LogSettings:
    return LogSettings(**(main.data.get("logging") or {}))


def metrics_section(main: LoadedYaml, problems: list[ConfigProblem]) -> MetricsSettings:
    """`metrics:`: `listen` as "host:port" ("[::1]:9187"; a bare port means 127.0.0.1), on
    loopback unless `allow_remote`; empty or absent: no endpoint."""
    m = main.data.get("metrics") or {}
    allow_remote = m.get("allow_remote", False)
    stuck_after = parse_duration(m.get("stuck_after", "10m"))
    if stuck_after <= timedelta(0):
        problems.append(main.problem(("metrics", "stuck_after"), "must be longer than 0s"))
    listen = None
    spec = m.get("listen")
    if spec not in (None, ""):
        try:
            listen = _listen_address(str(spec))
        except ValueError as exc:
            problems.append(main.problem(("metrics", "listen"), f"{spec!r}: {exc}"))
        else:
            if not allow_remote and not _loopback(listen[0]):
                listen = None
                problems.append(main.problem(("metrics", "listen"), f"{spec!r} is not a "
                                             "loopback address: the figures would be open to "
                                             "the network (metrics.allow_remote: true to mean "
                                             "it)"))
    return MetricsSettings(listen=listen, allow_remote=allow_remote, stuck_after=stuck_after)


def _listen_address(spec: str) -> tuple[str, int]:
    host, sep, port = spec.strip().rpartition(":")
    if not sep:
        host, port = "127.0.0.1", spec.strip()
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port, e.g. 127.0.0.1:9187 or [::1]:9187")
    if host == "localhost":
        return host, int(port)
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:  # a name could resolve elsewhere tomorrow
        raise ValueError("the host must be an IP address (or localhost)") from None


def _loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback
