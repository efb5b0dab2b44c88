"""`rules test`: what the daemon would decide for a message, changing nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from maildesk.config import load_settings
from maildesk.services.errors import BadRequest


def dry_run(config_path: str | Path, source: IO[bytes], at: str | None = None) -> dict[str, Any]:
    """The rules that match the raw mail in `source`, its line, priority, SLA deadlines and
    autoreply if it arrived at `at` (ISO 8601; default now). Raises ConfigError, and
    BadRequest for an `at` that does not parse."""
    from maildesk.process.dryrun import dry_run_with_database, parse_when

    settings = load_settings(config_path)
    try:
        when = parse_when(at, settings, datetime.now(timezone.utc))
    except ValueError:
        raise BadRequest(f"--at: not an ISO 8601 time: {at!r} (e.g. 2026-12-31T17:55+03:00)") \
            from None
    return dry_run_with_database(source.read(), settings, when)


def describe(result: dict[str, Any]) -> str:
    """The dry run as a person reads it."""
    from maildesk.process.dryrun import describe as describe_result

    return describe_result(result)
