"""The SMTP listener's limits, counted: sessions in total and per client IP, junk commands and
errors per session, the DATA deadline, the file-descriptor budget, and a quiet log for what a
flood repeats (refused connections, failed accepts).

Bookkeeping only, with Postfix's rules: ingress/smtp.py asks these and gives the replies. Each
object lives on the event loop's thread; nothing here blocks.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from maildesk.netaddr import IpNetwork, in_networks

# accept() fails with these when the process or the system is out of descriptors or buffers.
ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
LOG_INTERVAL = 10.0  # seconds between two log lines about the same flood


# -- who the client is -------------------------------------------------------------------------
def client_ip(peer: Any) -> str | None:
    """The IP address of a peername tuple; an IPv4-mapped IPv6 address as plain IPv4."""
    if not peer or not isinstance(peer, tuple) or not isinstance(peer[0], str):
        return None
    ip = peer[0]
    if ip.startswith("::ffff:") and "." in ip:
        return ip[len("::ffff:"):]
    return ip


class RelayNetworks:
    """The MTAs in front (IPs or CIDR networks): every client looks like them, so per-IP caps
    do not apply to them."""

    def __init__(self, networks: Iterable[IpNetwork | str] = ()):
        self.networks = tuple(n if isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network)
                              else ipaddress.ip_network(n, strict=False) for n in networks)

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, str) and in_networks(ip, self.networks)

    def contains(self, ip: str | None) -> bool:
        return ip in self


# -- sessions ----------------------------------------------------------------------------------
class Refusal(Enum):
    TOO_MANY_SESSIONS = "too many sessions"
    TOO_MANY_FROM_IP = "too many sessions from one address"


class SessionTable:
    """Open sessions, in total and per client IP. `fd_cap` is the most the process has file
    descriptors for (see `fd_session_cap`); it lowers the configured `max_sessions`."""

    def __init__(self, fd_cap: int | None = None, *, log: logging.Logger | None = None):
        self.fd_cap = fd_cap
        self.active = 0
        self._per_ip: dict[str, int] = {}
        self._relays_for: tuple[Any, ...] | None = None
        self._relays = RelayNetworks()
        self._log = log
        self._warned_for: int | None = None

    def max_sessions(self, limits: Any) -> int:
        configured = limits.max_sessions
        if self.fd_cap is None or configured <= self.fd_cap:
            return configured
        if self._log is not None and self._warned_for != configured:
            self._warned_for = configured
            self._log.warning("smtp.max_sessions %d lowered to %d: the file-descriptor limit "
                              "(ulimit -n) leaves room for no more", configured, self.fd_cap)
        return self.fd_cap

    def relays(self, limits: Any) -> RelayNetworks:
        if limits.relays != self._relays_for:
            self._relays_for, self._relays = limits.relays, RelayNetworks(limits.relays)
        return self._relays

    def admit(self, ip: str | None, limits: Any) -> Refusal | None:
        """Count a new session in, or say why not (then nothing is counted)."""
        if self.active >= self.max_sessions(limits):
            return Refusal.TOO_MANY_SESSIONS
        key = ip or "?"
        if self._per_ip.get(key, 0) >= limits.max_sessions_per_ip and ip not in self.relays(limits):
            return Refusal.TOO_MANY_FROM_IP
        self.active += 1
        self._per_ip[key] = self._per_ip.get(key, 0) + 1
        return None

    def release(self, ip: str | None) -> None:
        """A session that `admit` counted has ended."""
        key = ip or "?"
        self.active -= 1
        left = self._per_ip.get(key, 1) - 1
        if left > 0:
            self._per_ip[key] = left
        else:
            self._per_ip.pop(key, None)

    def sessions_from(self, ip: str | None) -> int:
        return self._per_ip.get(ip or "?", 0)

    def overloaded(self, limits: Any) -> bool:
        """Postfix's "stress": more sessions open than `overload_fraction` of the maximum."""
        return self.active > limits.overload_fraction * self.max_sessions(limits)


def fd_session_cap(reserve: int, soft_limit: int | None = None) -> int | None:
    """How many sessions the descriptors allow: the soft RLIMIT_NOFILE less `reserve` for the
    rest of the daemon (database, raw files, IMAP, outbound, connections being refused).
    None when there is no limit."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return None
    return max(soft_limit - reserve, 1)


# -- one session -------------------------------------------------------------------------------
class SessionBudget:
    """Junk commands and error replies of one session (Postfix's smtpd_junk_command_limit and
    smtpd_hard_error_limit). A message stored forgives both, as in Postfix. A 452 for a
    recipient beyond the limit counts as an error only past `overshoot_limit` of them
    (smtpd_recipient_overshoot_limit)."""

    def __init__(self, max_junk: int, max_errors: int, overshoot_limit: int):
        self.max_junk = max_junk
        self.max_errors = max_errors
        self.overshoot_limit = overshoot_limit
        self.junk = 0
        self.errors = 0
        self.overshoot = 0

    def junk_command(self) -> bool:
        """Count one junk command; True when it is one too many (hang up instead)."""
        self.junk += 1
        return self.junk > self.max_junk

    def error_reply(self, *, overshoot: bool = False) -> bool:
        """Count one 4xx/5xx reply; True when the session has had too many."""
        if overshoot:
            self.overshoot += 1
            if self.overshoot <= self.overshoot_limit:
                return False
        self.errors += 1
        return self.errors >= self.max_errors

    def message_stored(self) -> None:
        self.junk = self.errors = 0


class DataDeadline:
    """When DATA must be over (Postfix's smtpd_min_data_rate): `timeout` from the 354 at first;
    every N bytes read move it N / `min_rate` seconds later, never beyond `timeout` from now.
    A client slower than `min_rate` falls behind and is cut; a faster one never is."""

    def __init__(self, now: float, timeout: float, min_rate: float):
        self.timeout = timeout
        self.min_rate = min_rate
        self.at = now + timeout

    def received(self, nbytes: int, now: float) -> None:
        cap = now + self.timeout
        self.at = cap if self.min_rate <= 0 else min(self.at + nbytes / self.min_rate, cap)

    def left(self, now: float) -> float:
        return self.at - now


# -- quiet logs --------------------------------------------------------------------------------
@dataclass
class _Held:
    last: float
    count: int = 0


class LogThrottle:
    """One log line per kind of event at most every `interval` seconds; the lines it holds back
    are counted into the next one (or into `flush`). Keys are kinds, never client addresses,
    so memory stays bounded whatever a flood does."""

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL,
                 monotonic: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval = interval
        self._now = monotonic
        self._held: dict[str, _Held] = {}

    def log(self, key: str, level: int, message: str, *args: Any) -> bool:
        """Log now if `key` has been quiet for `interval`, else count it; True if logged."""
        now = self._now()
        held = self._held.get(key)
        if held is not None and now - held.last < self.interval:
            held.count += 1
            return False
        if held is not None and held.count:
            message += " (%d more since the last such line)"
            args = (*args, held.count)
        self._held[key] = _Held(now)
        self.logger.log(level, message, *args)
        return True

    def flush(self, key: str, level: int, message: str) -> None:
        """Log how many `key` events were held back, if any (`message` gets the count)."""
        held = self._held.get(key)
        if held is not None and held.count:
            self.logger.log(level, message, held.count)
            held.count, held.last = 0, self._now()


class AcceptErrorHandler:
    """An event-loop exception handler: accept() running out of descriptors is logged once per
    interval with a count, never a traceback per connection; anything else goes to the handler
    that was there before (asyncio's default). asyncio itself stops accepting for a second after
    such an error and then tries again, so the daemon serves once descriptors free up."""

    KEY = "accept"

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL,
                 monotonic: Callable[[], float] = time.monotonic):
        self.throttle = LogThrottle(logger, interval, monotonic)
        self.failures = 0
        self._previous: Callable[..., Any] | None = None
        self._flush_pending = False

    def install(self, loop: Any) -> None:
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self)

    def __call__(self, loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        callback = getattr(context.get("handle"), "_callback", None)
        if getattr(callback, "__name__", "") == "_start_serving":
            # asyncio's retry of accept() a second after such an error, come after the listener
            # closed (at shutdown): nothing is lost; one quiet line instead of a traceback each.
            self.throttle.log("retry", logging.DEBUG, "accept() retry after the listener "
                              "closed: %s", exc)
            return
        if (isinstance(exc, OSError) and exc.errno in ACCEPT_ERRNOS
                and "accept" in str(context.get("message", ""))):
            self.failures += 1
            name = errno.errorcode.get(exc.errno, str(exc.errno))
            logged = self.throttle.log(self.KEY, logging.WARNING,
                                       "SMTP accept() failed: %s (%s); open sessions go on, "
                                       "accepting again once descriptors free up",
                                       os.strerror(exc.errno), name)
            if not logged and not self._flush_pending:
                self._flush_pending = True
                loop.call_later(self.throttle.interval, self.flush)
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def flush(self) -> None:
        self._flush_pending = False
        self.throttle.flush(self.KEY, logging.WARNING,
                            "SMTP accept() failed %d more times (out of descriptors)")
