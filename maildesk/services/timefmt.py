"""Times, spans, sizes and counts as a person reads them at a terminal: to the minute in a
named zone, "overdue by 2 h 10 min", "12.5 KB", "1 ticket" / "2 tickets". Pure functions."""

from __future__ import annotations

from datetime import datetime, tzinfo


def minute(value: datetime | str | None, zone: tzinfo, empty: str = "-") -> str:
    """"2026-12-04 10:15" in `zone` (an ISO string as the JSON views give it, or a datetime);
    never seconds or microseconds."""
    if value is None or value == "":
        return empty
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def span(seconds: float) -> str:
    """A duration to the minute: "45 min", "3 h", "2 h 10 min", "4 d 2 h" ("< 1 min" below a
    minute). Days are calendar days; above a day the minutes are left out."""
    minutes = int(abs(seconds)) // 60
    if minutes < 1:
        return "< 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {mins} min" if mins else "")
    return f"{mins} min"


def relative(due: datetime, now: datetime) -> str:
    """"overdue by 2 h 10 min" for a moment past, "in 3 h" for one to come."""
    seconds = (due - now).total_seconds()
    return f"overdue by {span(seconds)}" if seconds < 0 else f"in {span(seconds)}"


def size(n: int) -> str:
    """Bytes for people: "830 B", "12.5 KB", "3.2 MB" (1 KB = 1024 B)."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def plural(n: int, one: str, other: str | None = None) -> str:
    """"1 ticket", "0 tickets", "2 tickets" (English: the singular for exactly one);
    `other` for an irregular plural ("1 entry", "3 entries")."""
    return f"{n} {one if n == 1 else (other or one + 's')}"
