"""Helpers and the cfg fixture shared by the config tests (imported by name: a conftest.py
here would shadow tests/conftest.py for `from conftest import ...`; not helpers.py either)."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cfg(tmp_path):
    """A copy of the example configuration directory."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config"


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
