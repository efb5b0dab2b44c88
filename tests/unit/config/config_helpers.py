"""Helpers shared by the config tests (not named helpers.py: tests/helpers.py owns that name)."""

from pathlib import Path


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
