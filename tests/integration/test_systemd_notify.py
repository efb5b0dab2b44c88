"""`maildesk serve` under systemd's notify protocol (Type=notify, contrib/systemd/): a socket the
test owns stands in for systemd's NOTIFY_SOCKET and sees READY=1 once the SMTP port answers,
WATCHDOG=1 again and again, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM. The unit
files pass `systemd-analyze verify` where it is installed."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from maildesk.sdnotify import Notifier

EXE = str(Path(sys.executable).parent / "maildesk")
ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"


class NotifySocket:
    """The AF_UNIX datagram socket systemd would listen on; keeps every message it got."""

    def __init__(self, address: str | bytes):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages: list[dict[str, str]] = []

    def next(self, timeout: float = 60.0) -> dict[str, str]:
        """The next message, as KEY=value pairs (waits up to `timeout` seconds for it)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError(f"no notification within {timeout} s; got so far: "
                                 f"{self.messages}") from None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)
        return fields

    def wait(self, key: str, timeout: float = 60.0) -> dict[str, str]:
        """Read messages until one carries `key`=1 (a generous bound, not a speed test)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}=1 within {timeout} s; got: {self.messages}")
            message = self.next(left)
            if message.get(key) == "1":
                return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_dir() -> Iterator[Path]:
    """A short directory: a socket path must fit in sun_path (108 bytes), which a pytest
    tmp_path can exceed."""
    d = Path(tempfile.mkdtemp(prefix="md-notify-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def banner(port: int) -> int:
    """The code of the listener's greeting (connection refused raises)."""
    smtp = smtplib.SMTP(timeout=10)
    try:
        code, _ = smtp.connect("127.0.0.1", port)
        smtp.quit()
        return code
    finally:
        smtp.close()


@contextmanager
def serving(config_set, env: dict[str, str], log: Path,
            listener: NotifySocket) -> Iterator[subprocess.Popen]:
    """`maildesk serve` under `env`, stderr to `log`. When the body completes: SIGTERM, then
    STOPPING=1 and exit status 0. However it ends: killed if still running, `listener` closed."""
    with open(log, "wb") as err:
        proc = subprocess.Popen([EXE, "--config", str(config_set.path), "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        listener.wait("STOPPING")
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_serve_tells_systemd_ready_watchdog_reloading_and_stopping(config_set, notify_dir,
                                                                   tmp_path):
    listener = NotifySocket(str(notify_dir / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_dir / "notify"),
           "WATCHDOG_USEC": "200000"}
    env.pop("WATCHDOG_PID", None)
    port = config_set.data["smtp"]["port"]
    log = tmp_path / "serve.log"
    with serving(config_set, env, log, listener) as proc:
        ready = listener.wait("READY")
        # READY=1 comes once the listener is bound: the port answers at once, with a greeting.
        assert banner(port) == 220
        assert "SMTP on 127.0.0.1:" in ready.get("STATUS", ""), ready
        assert not any(m.get("STOPPING") or m.get("RELOADING") for m in listener.messages)

        # Pings every WATCHDOG_USEC / 2 from the event loop, for as long as it runs.
        for _ in range(3):
            listener.wait("WATCHDOG")

        proc.send_signal(signal.SIGHUP)
        reloading = listener.wait("RELOADING")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert listener.wait("READY")["STATUS"].startswith("serving")
        assert "configuration reloaded" in log.read_text()
        assert banner(port) == 220
        listener.wait("WATCHDOG")      # still pinging after the reload
    order = [k for m in listener.messages for k in ("READY", "RELOADING", "STOPPING") if k in m]
    assert order == ["READY", "RELOADING", "READY", "STOPPING"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_refused_reload_still_ends_the_reloading_state(config_set, notify_dir, tmp_path):
    listener = NotifySocket(str(notify_dir / "notify"))
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_dir / "notify")}
    env.pop("WATCHDOG_USEC", None)
    log = tmp_path / "serve.log"
    with serving(config_set, env, log, listener) as proc:
        listener.wait("READY")
        rules = config_set.dir / "rules.yaml"
        rules.write_text(rules.read_text(encoding="utf-8").replace("stop: true", "stop: maybe"),
                         encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        listener.wait("RELOADING")
        assert "refused" in listener.wait("READY")["STATUS"]
        assert "reload refused" in log.read_text()
    assert not any("WATCHDOG" in m for m in listener.messages)  # no WATCHDOG_USEC, no pings


# -- the notifier on its own ---------------------------------------------------------------------
def test_abstract_socket_addresses_are_supported():
    name = f"maildesk-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = NotifySocket(b"\0" + name.encode())
    notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
    try:
        assert notifier.ready("up")
        assert listener.next(10) == {"READY": "1", "STATUS": "up"}
        assert notifier.stopping()
        assert listener.next(10) == {"STOPPING": "1"}
    finally:
        notifier.close()
        listener.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False
    assert notifier.watchdog_seconds is None


def test_a_missing_listener_costs_a_warning_not_the_daemon(notify_dir):
    notifier = Notifier({"NOTIFY_SOCKET": str(notify_dir / "nobody-listens")})
    assert notifier.enabled
    assert notifier.ready() is False       # ENOENT / ECONNREFUSED: logged once, no exception
    assert notifier.watchdog() is False


def test_the_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_seconds == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000",
                     "WATCHDOG_PID": str(os.getpid())}).watchdog_seconds == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_seconds is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_seconds is None


# -- the unit files --------------------------------------------------------------------------
def _verify(unit: Path, instance: str | None, tmp_path: Path) -> list[str]:
    """`systemd-analyze verify` on a copy whose ExecStart names an executable that exists here
    (the venv's maildesk), under the name it would be installed as: what it says about it.
    (It exits 0 even for unknown keys and values it ignores, so its words are what count.)"""
    text = unit.read_text()
    assert "ExecStart=/usr/bin/maildesk " in text
    name = unit.name.replace("@", f"@{instance}") if instance else unit.name
    copy = tmp_path / name
    copy.write_text(text.replace("/usr/bin/maildesk ", f"{EXE} "))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                          capture_output=True, text=True, timeout=120)
    # Lines about units it pulls in from the host (missing in a container) are not ours.
    return [line for line in (proc.stdout + proc.stderr).splitlines() if name in line]


@pytest.mark.parametrize("unit, instance", [("maildesk.service", None),
                                            ("maildesk@.service", "example")])
def test_the_unit_files_verify(unit, instance, tmp_path):
    path = UNITS / unit
    text = path.read_text()
    for setting in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID",
                    "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=maildesk",
                    "CapabilityBoundingSet=\n"):
        assert setting in text, setting
    if instance:
        assert "/etc/maildesk/%i.yaml serve" in text and "StateDirectory=maildesk/%i" in text
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    assert _verify(path, instance, tmp_path) == []
