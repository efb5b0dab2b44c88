"""The import contract (pyproject.toml, [tool.importlinter]): layers import only downward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_layers():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract has teeth: the database layer importing the runner fails it."""
    shutil.copytree(ROOT / "maildesk", tmp_path / "maildesk",
                    ignore=shutil.ignore_patterns("__pycache__", "skeleton"))
    models = tmp_path / "maildesk" / "db" / "queries.py"
    models.write_text(models.read_text() + "\nfrom maildesk.process.run import Processor  # noqa\n")
    proc = lint(tmp_path)
    assert proc.returncode != 0
    assert "maildesk.db.queries -> maildesk.process.run" in proc.stdout, proc.stdout
