"""Shared fixtures: a temporary config set and database per test (SQLite, and PostgreSQL when
MAILDESK_TEST_PG_URL is set), the processor, and an in-process SMTP listener on loopback.

With MAILDESK_REQUIRE_SERVERS=1 (CI) a missing server fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DATA = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("MAILDESK_TEST_PG_URL")
REQUIRE = os.environ.get("MAILDESK_REQUIRE_SERVERS") == "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def need_server(what: str) -> None:
    """Skip on a developer's machine, fail in CI."""
    if REQUIRE:
        pytest.fail(f"{what} is required (MAILDESK_REQUIRE_SERVERS=1) but unavailable")
    pytest.skip(f"{what} unavailable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- databases ----------------------------------------------------------------------------------
def _pg_admin_url() -> str:
    from maildesk.config.model import resolve_database_url
    return resolve_database_url(PG_URL or "", ROOT)


def _pg_url_for(dbname: str) -> str:
    base = _pg_admin_url()
    return base.rsplit("/", 1)[0] + "/" + dbname


def _pg_exec(sql: str) -> None:
    from sqlalchemy import create_engine, text
    engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _migrate(url: str) -> None:
    from alembic import command
    from maildesk.app import alembic_config
    command.upgrade(alembic_config(url), "head")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not PG_URL:
        need_server("PostgreSQL (set MAILDESK_TEST_PG_URL)")
    name = f"maildesk_tpl_{os.getpid()}"
    try:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}"')
        _pg_exec(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # server down
        need_server(f"PostgreSQL at {PG_URL} ({exc})")
    _migrate(_pg_url_for(name))
    yield name
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database for one test, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "maildesk.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"maildesk_t_{os.getpid()}_{next(_counter)}"
    _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _pg_url_for(name)
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- configuration --------------------------------------------------------------------------
@dataclass
class ConfigSet:
    dir: Path
    path: Path
    var: Path
    data: dict

    def write(self, **changes: object) -> None:
        """Change top-level sections of maildesk.yaml (merged one level deep) and rewrite it."""
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(self.data.get(key), dict):
                self.data[key] = {**self.data[key], **value}
            else:
                self.data[key] = value
        self.path.write_text(yaml.safe_dump(self.data, allow_unicode=True, sort_keys=False))


@pytest.fixture
def config_set(tmp_path: Path, db_url: str) -> ConfigSet:
    """The repository's example config, pointed at the test database and a free port."""
    cdir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cdir)
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    var = tmp_path / "var"
    var.mkdir()
    cs = ConfigSet(cdir, cdir / "maildesk.yaml", var,
                   yaml.safe_load((cdir / "maildesk.yaml").read_text()))
    cs.write(database={"url": db_url, "lock_timeout_ms": 2000},
             smtp={"port": free_port()},
             paths={**cs.data.get("paths", {}), "var": str(var), "templates": str(tmp_path / "templates")},
             outbound={"transport": "maildir", "maildir": str(var / "outbox-maildir")})
    return cs


@pytest.fixture
def ctx(config_set: ConfigSet):
    from maildesk.app import Context
    context = Context.load(config_set.path)
    yield context
    context.close()


@pytest.fixture
def processor(ctx):
    from maildesk.process.run import Processor
    p = Processor(ctx.settings, ctx.make_session, ctx.clock)
    yield p
    p.close()


# -- an in-process SMTP listener ----------------------------------------------------------------
@dataclass
class Listener:
    host: str
    port: int
    handler: object
    writer: object


@pytest.fixture
def smtp_listener(ctx) -> Iterator[Listener]:
    """The real aiosmtpd listener of maildesk on a loopback port, run in a background loop."""
    with running_listener(ctx) as listener:
        yield listener


@contextmanager
def running_listener(ctx, **handler_options) -> Iterator[Listener]:
    """maildesk's listener (SupportHandler with `handler_options`) in a background loop."""
    from maildesk.ingress.smtp import SupportHandler, make_smtp_factory
    from maildesk.store.raw import GroupCommitWriter

    loop = asyncio.new_event_loop()
    writer = GroupCommitWriter(ctx.engine)
    handler = SupportHandler(lambda: ctx.settings, writer, ctx.clock, **handler_options)
    ready = threading.Event()
    holder: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(loop.create_server(
            make_smtp_factory(handler, ctx.settings), "127.0.0.1", ctx.settings.smtp.port))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    yield Listener("127.0.0.1", ctx.settings.smtp.port, handler, writer)
    loop.call_soon_threadsafe(holder["server"].close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    writer.close()


# -- the CLI in a subprocess ----------------------------------------------------------------------
@pytest.fixture
def cli(config_set: ConfigSet):
    """Run `maildesk --config <test config> ARGS...`; returns the CompletedProcess."""
    exe = Path(sys.executable).parent / "maildesk"

    def run(*args: str, input: bytes | None = None, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(exe), "--config", str(config_set.path), *args], input=input,
                              capture_output=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"maildesk {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout.decode()}\n{proc.stderr.decode()}")
        return proc
    return run


def corpus_files() -> list[Path]:
    index = CORPUS / "index.tsv"
    if not index.exists():
        return []
    rows = index.read_text(encoding="utf-8").splitlines()[1:]
    return [CORPUS / r.split("\t", 1)[0] for r in rows if r.strip()]


def unique_id() -> str:
    return uuid.uuid4().hex[:12]
