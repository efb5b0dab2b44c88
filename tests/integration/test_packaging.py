"""`pip install .` builds maildesk quietly: no setuptools warning about how the packages and
their data are declared, and the wheel carries the skeleton `maildesk init` and `db upgrade`
read (the example config and its schemas, the templates, the migrations).

The wheel is built from a copy of the work tree with the setuptools of this environment (the
`test` extra installs it), calling the build backend as pip does, without a network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info",
                                  ".pytest_cache", "node_modules")

BUILD = ("import sys\n"
         "from setuptools import build_meta\n"
         "print('built', build_meta.build_wheel(sys.argv[1]))\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    pytest.importorskip("setuptools", minversion="68")
    pytest.importorskip("wheel")
    source = tmp_path_factory.mktemp("src") / "maildesk"
    shutil.copytree(ROOT, source, symlinks=True, ignore=LEFT_OUT)
    out = tmp_path_factory.mktemp("wheel")
    # As pip runs it, byte-compiling allowed (else distutils notes that it is disabled).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=source, env=env,
                          capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    (wheel,) = out.glob("maildesk-*.whl")
    return output, wheel


def test_building_the_wheel_prints_no_warning(built):
    output, _ = built
    warnings = [line for line in output.splitlines() if re.search(r"warn", line, re.I)]
    assert warnings == [], "\n".join(warnings)
    assert "absent from the `packages` configuration" not in output


def test_the_wheel_carries_the_skeleton_and_no_bytecode(built):
    _, wheel = built
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("maildesk/skeleton/config/maildesk.yaml",
                 "maildesk/skeleton/config/schema/maildesk.schema.json",
                 "maildesk/skeleton/config/kb/en",
                 "maildesk/skeleton/templates/en",
                 "maildesk/skeleton/templates/ru",
                 "maildesk/skeleton/migrations/env.py",
                 "maildesk/skeleton/migrations/script.py.mako",
                 "maildesk/skeleton/migrations/versions/0001_initial_schema.py"):
        assert any(n == name or n.startswith(name + "/") for n in names), name
    tracked = {p.relative_to(ROOT).as_posix() for folder in ("config", "templates", "migrations")
               for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    missing = {t for t in tracked if f"maildesk/skeleton/{t}" not in names}
    assert missing == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "maildesk/cli.py" in names and "maildesk/db/outage.py" in names
