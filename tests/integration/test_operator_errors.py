"""Failures an operator meets, as the real `maildesk` command shows them: one line on stderr
saying what failed, where and what to do, no traceback, and a documented exit status
(maildesk/services/failures.py); `--debug` or MAILDESK_DEBUG=1 shows the traceback instead.
And the daemon through a PostgreSQL outage: a bounded number of log lines, 451 meanwhile, and
back to work without a restart."""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import PG_URL, ROOT, free_port, need_server
from helpers import send_smtp, wait_for
from mails import mail

EXE = str(Path(sys.executable).parent / "maildesk")

EX_CONFIG_ERRORS = 1
EX_UNAVAILABLE = 69
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_SCHEMA = 78


@dataclass
class Desk:
    """A config set of the repository's example, in a temporary directory."""

    dir: Path
    path: Path
    var: Path
    data: dict

    def write(self, **sections: dict) -> None:
        for key, value in sections.items():
            self.data[key] = {**self.data.get(key, {}), **value}
        self.path.write_text(yaml.safe_dump(self.data, allow_unicode=True, sort_keys=False))

    def run(self, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
            stdin: bytes | None = None) -> subprocess.CompletedProcess:
        """`maildesk --config <this> ARGS` (MAILDESK_DEBUG only when `env` sets it)."""
        environ = {k: v for k, v in os.environ.items() if k != "MAILDESK_DEBUG"}
        environ.update(env or {})
        return subprocess.run([*prefix, EXE, "--config", str(self.path), *args], input=stdin,
                              capture_output=True, timeout=120, env=environ)


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    """SQLite in var/, not upgraded yet; the listener on a free port."""
    cdir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cdir)
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    var = tmp_path / "var"
    var.mkdir()
    main = cdir / "maildesk.yaml"
    d = Desk(cdir, main, var, yaml.safe_load(main.read_text()))
    d.write(database={"url": f"sqlite:///{var / 'maildesk.db'}", "lock_timeout_ms": 2000},
            smtp={"port": free_port()},
            paths={"var": str(var), "templates": str(tmp_path / "templates")},
            outbound={"transport": "maildir", "maildir": str(var / "outbox-maildir")})
    return d


def one_line(proc: subprocess.CompletedProcess, code: int) -> str:
    """The command failed with `code` and said so in exactly one line, without a traceback."""
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def head() -> str:
    from maildesk.services.database import head_revision
    return head_revision()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


# -- the SMTP port ----------------------------------------------------------------------------
def test_serve_with_the_smtp_port_taken_names_the_address_and_the_keys_that_set_it(desk):
    assert desk.run("db", "upgrade").returncode == 0
    port = desk.data["smtp"]["port"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = desk.run("serve")
    line = one_line(proc, EX_UNAVAILABLE)
    assert f"127.0.0.1:{port}" in line and "already in use" in line
    assert "smtp.port" in line and str(desk.path) in line
    assert b"maildesk serving" not in proc.stdout


# -- a database that cannot be reached ---------------------------------------------------------
@pytest.mark.parametrize("command", [("db", "upgrade"), ("tickets", "list"), ("report",)],
                         ids=" ".join)
def test_unreachable_postgresql_is_one_line_naming_it_without_the_password(desk, command):
    port = closed_port()
    desk.write(database={"url": f"postgresql://helpdesk:s3cret-pw@127.0.0.1:{port}/x"})
    proc = desk.run(*command)
    line = one_line(proc, EX_UNAVAILABLE)
    assert line.startswith("maildesk: cannot connect to the database postgresql")
    assert f"helpdesk:***@127.0.0.1:{port}/x" in line
    assert "refused" in line.lower() and "database.url" in line
    assert b"s3cret-pw" not in proc.stderr + proc.stdout


def test_ingest_still_asks_the_mta_to_retry_when_the_database_is_unreachable(desk):
    desk.write(database={"url": f"postgresql://helpdesk:s3cret-pw@127.0.0.1:{closed_port()}/x"})
    proc = desk.run("ingest", "-", stdin=mail(subject="kept by the MTA"))
    line = one_line(proc, EX_TEMPFAIL)
    assert "try again later" in line and "s3cret-pw" not in line


def test_debug_flag_and_environment_show_the_traceback_instead(desk):
    desk.write(database={"url": f"postgresql://helpdesk:pw@127.0.0.1:{closed_port()}/x"})
    for proc in (desk.run("--debug", "tickets", "list"),
                 desk.run("tickets", "list", env={"MAILDESK_DEBUG": "1"})):
        err = proc.stderr.decode()
        assert proc.returncode != 0
        assert "Traceback (most recent call last)" in err and "OperationalError" in err


# -- the schema ---------------------------------------------------------------------------------
def test_a_fresh_database_without_db_upgrade_says_to_run_it(desk):
    line = one_line(desk.run("tickets", "list"), EX_SCHEMA)
    assert "has no maildesk schema yet" in line and "run `maildesk db upgrade`" in line
    line = one_line(desk.run("serve"), EX_SCHEMA)          # serve refuses to start on it
    assert "run `maildesk db upgrade`" in line


def test_db_upgrade_says_what_it_applied(desk):
    assert desk.run("db", "upgrade").stdout.decode() == f"created schema at {head()}\n"
    again = desk.run("db", "upgrade")
    assert (again.returncode, again.stdout.decode()) == (0, f"already up to date at {head()}\n")


def test_a_schema_behind_is_refused_by_serve_until_db_upgrade(desk):
    from alembic import command
    from maildesk.services.database import alembic_config

    command.upgrade(alembic_config(desk.data["database"]["url"]), "0011")
    line = one_line(desk.run("serve"), EX_SCHEMA)
    assert f"schema is at 0011, behind this maildesk's {head()}" in line
    assert "run `maildesk db upgrade`" in line
    upgraded = desk.run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.decode() == f"database at {head()} (head); applied 0011 → {head()}\n"


# -- paths ------------------------------------------------------------------------------------
def test_a_database_directory_under_a_regular_file_cannot_be_created(desk):
    """/dev/null/x: a path that cannot be created, even for root."""
    desk.write(database={"url": "sqlite:////dev/null/x/maildesk.db"})
    line = one_line(desk.run("db", "upgrade"), EX_CANTCREAT)
    assert "cannot create /dev/null/x: not a directory" in line and "database.url" in line
    line = one_line(desk.run("tickets", "list"), EX_CANTCREAT)
    assert "cannot open the SQLite database /dev/null/x/maildesk.db" in line
    assert "/dev/null is not a directory" in line


def test_an_outbound_maildir_under_a_regular_file_stops_serve(desk):
    assert desk.run("db", "upgrade").returncode == 0
    desk.write(outbound={"maildir": "/dev/null/outbox"})
    line = one_line(desk.run("serve"), EX_CANTCREAT)
    assert "cannot create /dev/null/outbox" in line and "outbound.maildir" in line


def _unprivileged() -> tuple[str, ...]:
    """A prefix that takes root's power to ignore file modes away (tests run as root)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        need_server("setpriv (util-linux), to test permissions as root")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner")


def test_permission_denied_on_a_read_only_directory_without_root_file_override(desk):
    """A directory of mode 0500: root is refused too once it lacks CAP_DAC_OVERRIDE."""
    assert desk.run("db", "upgrade").returncode == 0
    locked = desk.var / "locked"
    locked.mkdir(mode=0o500)
    desk.write(outbound={"maildir": str(locked / "outbox")})
    try:
        line = one_line(desk.run("serve", prefix=_unprivileged()), EX_NOPERM)
        assert f"permission denied: {locked / 'outbox'}" in line and "outbound.maildir" in line
        desk.write(database={"url": f"sqlite:///{locked / 'maildesk.db'}"})
        line = one_line(desk.run("tickets", "list", prefix=_unprivileged()), EX_NOPERM)
        assert f"the directory {locked} is not writable" in line and "database.url" in line
    finally:
        locked.chmod(0o700)


# -- configuration ------------------------------------------------------------------------------
def test_configuration_problems_are_one_line_each_with_file_line_and_column(desk):
    main = desk.path.read_text()
    desk.path.write_text(main.replace("  interval: 30s", "  interval: 30x"))
    lines_yaml = desk.dir / "lines.yaml"
    lines_yaml.write_text(lines_yaml.read_text().replace("next: line2", "next: line9", 1))
    proc = desk.run("tickets", "list")
    err = proc.stderr.decode()
    assert proc.returncode == EX_CONFIG_ERRORS and "Traceback" not in err
    problems = err.splitlines()
    assert len(problems) == 2, err
    interval = next(i for i, t in enumerate(desk.path.read_text().splitlines(), 1)
                    if "interval: 30x" in t)
    assert problems[0] == (f"{desk.path}:{interval}:13: timers.interval: expected a duration "
                           "such as 30m, 4h, 2d, got '30x'")
    assert problems[1].startswith(f"{lines_yaml}:") and "unknown line 'line9'" in problems[1]


# -- a PostgreSQL outage under `serve` -----------------------------------------------------------
def test_an_outage_met_by_many_threads_is_logged_on_a_capped_backoff(caplog):
    """Ten threads failing ten times a second for two minutes: one line per backoff step
    (1, 2, 4 ... 30 s), the password never shown, and one line when it is back."""
    import logging
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from maildesk.db.outage import OutageWatch

    clock = [0.0]
    watch = OutageWatch("postgresql://helpdesk:s3cret-pw@db.example/desk",
                        logging.getLogger("maildesk.test"), now=lambda: clock[0])
    lost = OperationalError("SELECT 1", {},
                            sqlite3.OperationalError("unable to open database file"))
    caplog.set_level(logging.INFO, "maildesk.test")
    for tick in range(1200):
        clock[0] = tick / 10
        for _thread in range(10):
            watch.failed(lost)
    watch.reconnected()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 8 + 1          # at 0, 1, 3, 7, 15, 31, 61, 91 s; then the recovery
    assert all("database unreachable: postgresql://helpdesk:***@db.example/desk: unable to open "
               "database file" in line for line in lines[:-1])
    assert lines[-1].startswith("database reachable again: postgresql://helpdesk:***@")
    assert not any("s3cret-pw" in line for line in lines)


class Proxy:
    """A TCP proxy on a loopback port to the test PostgreSQL server that the test takes down
    (port closed, every connection cut) and brings back: an outage without stopping the server
    other tests use."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self._listener is not None:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            cut, self._open = self._open, []
        for s in cut:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def pg_behind_proxy(desk):
    """A fresh, upgraded PostgreSQL database the desk reaches through a Proxy (started down)."""
    if not PG_URL:
        need_server("PostgreSQL (set MAILDESK_TEST_PG_URL)")
    from sqlalchemy.engine import make_url

    from conftest import _migrate, _pg_exec, _pg_url_for

    name = f"maildesk_outage_{uuid.uuid4().hex[:10]}"
    try:
        _pg_exec(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # server down
        need_server(f"PostgreSQL at {PG_URL} ({exc})")
    _migrate(_pg_url_for(name))
    admin = make_url(PG_URL)
    proxy = Proxy((admin.host or "127.0.0.1", admin.port or 5432))
    desk.write(database={"url": admin.set(port=proxy.port, database=name)
                         .render_as_string(hide_password=False)})
    yield proxy
    proxy.down()
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


WINDOW = 15.0       # seconds of outage observed
MAX_LINES = 20      # log lines allowed in that window


def _observe_outage(log: Path) -> str:
    """What the daemon logs during WINDOW seconds of outage (the observation is the point)."""
    start = log.stat().st_size
    time.sleep(WINDOW)
    return log.read_bytes()[start:].decode()


def _tickets(desk: Desk) -> list[dict]:
    proc = desk.run("tickets", "list", "--json")
    return json.loads(proc.stdout) if proc.returncode == 0 else []


def _sent(port: int, subject: str) -> bool:
    try:
        send_smtp("127.0.0.1", port, mail(subject=subject))
    except smtplib.SMTPDataError as exc:
        assert exc.smtp_code == 451, exc  # temporary: the client keeps it and tries again
        return False
    return True


@pytest.mark.slow
def test_serve_rides_out_a_postgresql_outage_with_bounded_logs(desk, pg_behind_proxy, tmp_path):
    proxy, port = pg_behind_proxy, desk.data["smtp"]["port"]
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        daemon = subprocess.Popen([EXE, "--config", str(desk.path), "serve"],
                                  stdout=subprocess.PIPE, stderr=err)
    try:
        # Started while the database is down: it serves, says so briefly, answers 451.
        assert b"maildesk serving" in daemon.stdout.readline(), log.read_text()
        outage = _observe_outage(log)
        assert "Traceback" not in outage and len(outage.splitlines()) <= MAX_LINES, outage
        assert "database unreachable" in outage and "127.0.0.1" in outage
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send_smtp("127.0.0.1", port, mail(subject="during the first outage"))
        assert refused.value.smtp_code == 451

        proxy.up()  # the client sends again, as MTAs do after a 451
        wait_for(lambda: _sent(port, "after the first outage"), "a 250 for the resent mail")
        assert "database reachable again" in log.read_text()
        wait_for(lambda: [t for t in _tickets(desk) if t["subject"] == "after the first outage"],
                 "the first ticket")

        # Goes down under a running daemon: the same, and back without a restart.
        proxy.down()
        outage = _observe_outage(log)
        assert "Traceback" not in outage and len(outage.splitlines()) <= MAX_LINES, outage
        assert "database unreachable" in outage
        proxy.up()
        wait_for(lambda: _sent(port, "after the second outage"), "a 250 after the outage")
        assert log.read_text().count("database reachable again") == 2
        wait_for(lambda: [t for t in _tickets(desk) if t["subject"] == "after the second outage"],
                 "the second ticket")
        assert daemon.poll() is None
        daemon.terminate()
        assert daemon.wait(60) == 0
        assert "Traceback" not in log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
