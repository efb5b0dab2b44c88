"""Deadlines of a new ticket from the SLA policy. Pure.

For now the targets are added in calendar time; business hours and holidays replace this one
function when the SLA calendars land (issue 7), and every caller keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.config.model import parse_duration

DEFAULT_PRIORITY = "P3"


@dataclass(frozen=True)
class Deadlines:
    first_response: datetime | None
    resolution: datetime | None
    timezone: ZoneInfo            # the calendar's zone: deadlines are shown to the client in it
    policy: str | None


def compute_deadlines(sla: dict[str, Any], *, policy: str | None, priority: str | None,
                      start: datetime) -> Deadlines:
    """First-response and resolution deadlines of a ticket that arrived at `start`."""
    policies = sla.get("policies", {})
    name = policy if policy in policies else sla.get("default_policy")
    if name not in policies:
        name = next(iter(policies), None)
    if name is None:
        return Deadlines(None, None, ZoneInfo("UTC"), None)
    spec = policies[name]
    calendar = sla.get("calendars", {}).get(spec.get("calendar"), {})
    try:
        zone = ZoneInfo(calendar.get("timezone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    targets = spec.get("targets", {}).get(priority or DEFAULT_PRIORITY) or {}

    def due(key: str) -> datetime | None:
        return start + parse_duration(targets[key]) if key in targets else None

    return Deadlines(due("first_response"), due("resolution"), zone, name)
