"""Who is guessing reply tokens: failed token lookups per client IP, over a sliding hour.

The processor records a failure when a message names a token that matches no ticket (or
carries too many token addresses); the SMTP listener asks `blocked(ip)` before it accepts a
RCPT to a token address and answers 550 past the threshold. One instance is shared by both
inside `serve`; it lives in memory (a restart forgets it, which costs an attacker nothing
more than another hour of the same threshold).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 3600.0


class TokenProbeGuard:
    """Counts failed token lookups per IP address; thread-safe."""

    def __init__(self, threshold: int = 20, *, window: float = WINDOW_SECONDS,
                 exempt: Callable[[str], bool] | None = None,
                 monotonic: Callable[[], float] = time.monotonic, max_ips: int = 100_000):
        self.threshold = threshold
        self._window = window
        self._exempt = exempt or (lambda ip: False)
        self._now = monotonic
        self._max_ips = max_ips
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and now - times[0] > self._window:
            times.popleft()

    def record_failure(self, ip: str | None, count: int = 1) -> None:
        """`count` failed lookups from `ip` just now (nothing for an unknown source)."""
        if not ip or self._exempt(ip):
            return
        now = self._now()
        with self._lock:
            times = self._failures.get(ip)
            if times is None:
                if len(self._failures) >= self._max_ips:  # bounded memory under a wide flood
                    self._forget_stale(now)
                times = self._failures[ip] = deque(maxlen=max(self.threshold, 1) * 4)
            self._trim(times, now)
            times.extend([now] * min(count, times.maxlen or count))

    def failures(self, ip: str | None) -> int:
        if not ip:
            return 0
        now = self._now()
        with self._lock:
            times = self._failures.get(ip)
            if times is None:
                return 0
            self._trim(times, now)
            return len(times)

    def blocked(self, ip: str | None) -> bool:
        """True once `ip` has failed `threshold` token lookups within the window."""
        return self.threshold > 0 and self.failures(ip) >= self.threshold

    def _forget_stale(self, now: float) -> None:
        for ip in [ip for ip, t in self._failures.items() if not t or now - t[-1] > self._window]:
            del self._failures[ip]
        if len(self._failures) >= self._max_ips:  # still full: drop the oldest half
            oldest = sorted(self._failures, key=lambda ip: self._failures[ip][-1])
            for ip in oldest[: len(oldest) // 2]:
                del self._failures[ip]


def source_ip(source: str | None) -> str | None:
    """The client IP of an inbound row's `source` (`smtp:203.0.113.5`), else None."""
    if source and source.startswith("smtp:"):
        ip = source[len("smtp:"):]
        return ip if ip and ip != "?" else None
    return None
