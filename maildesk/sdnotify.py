"""Tell systemd how the daemon is doing (the sd_notify(3) protocol): READY=1, RELOADING=1,
STOPPING=1, WATCHDOG=1 and STATUS=, each a datagram to the AF_UNIX socket named in
$NOTIFY_SOCKET (a leading '@' names an abstract socket).

Without $NOTIFY_SOCKET (not started by systemd, or not as Type=notify) every call does nothing,
so the daemon runs the same anywhere. Sending never raises: systemd going away must not take
the daemon with it. No dependency on libsystemd or a Python binding; this is the whole protocol.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes | None:
    """The socket address in $NOTIFY_SOCKET: a path, or '@name' for the abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock: and other families systemd may grow: not ours to guess


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as systemd wants it with RELOADING=1."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """The messages `serve` sends to systemd; all of them no-ops outside systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET=%s: not an AF_UNIX socket address; not notifying", raw)
        self._socket: socket.socket | None = None
        self._failed = False
        self.watchdog_seconds = _watchdog_seconds(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of `KEY=value` lines; True when it was sent."""
        if self._address is None:
            return False
        text = "\n".join(f.replace("\n", " ") for f in fields)
        try:
            if self._socket is None:
                # Non-blocking: a reader that stopped reading must not stall the event loop.
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                                             | socket.SOCK_NONBLOCK)
            self._socket.sendto(text.encode("utf-8"), self._address)
        except OSError as exc:
            if not self._failed:  # once: a missing listener would otherwise log every ping
                log.warning("sd_notify to %r failed: %s", self._address, exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self, status: str | None = None) -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}",
                         *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """How often to ping: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None when
    no watchdog is asked for, or it is meant for another process ($WATCHDOG_PID)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%s is not a number; no watchdog pings", usec)
        return None
    return value / 2 / 1_000_000 if value > 0 else None
