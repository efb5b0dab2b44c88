"""Time comes from a Clock passed in, so tests and replays control it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass
class FixedClock:
    """A clock that stands still until a test moves it."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        from datetime import timedelta

        self.current = self.current + timedelta(**kwargs)


@dataclass
class FileClock:
    """The time written (ISO 8601) in a file, read at every call: lets a test or a replay
    move a running daemon's clock (MAILDESK_CLOCK_FILE; never set it in production)."""

    path: str

    def now(self) -> datetime:
        with open(self.path, encoding="utf-8") as fh:
            value = datetime.fromisoformat(fh.read().strip())
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(
            timezone.utc)


def default_clock() -> Clock:
    import os

    path = os.environ.get("MAILDESK_CLOCK_FILE")
    return FileClock(path) if path else SystemClock()
