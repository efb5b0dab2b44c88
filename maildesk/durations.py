"""Durations as the YAML files write them: '30s', '4h', '1.5d', '2w'. Pure."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# What to write, for messages: a person reads this, not the regular expression.
DURATION_FORM = "a duration such as 30m, 4h, 2d"


def split_duration(text: str) -> tuple[float, str]:
    """'1.5d' -> (1.5, 'd') (the schema has already checked the form)."""
    m = _DURATION.match(str(text).strip())
    if not m:
        raise ValueError(f"expected {DURATION_FORM} (s, m, h, d or w after a number), "
                         f"got {text!r}")
    return float(m.group(1)), m.group(2)


def parse_duration(text: str) -> timedelta:
    """'4h', '1.5d', '30m' -> timedelta, in elapsed time (a day is 24 hours)."""
    value, unit = split_duration(text)
    return timedelta(seconds=value * _UNIT[unit])
