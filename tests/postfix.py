"""A real Postfix for tests: a private instance (its own configuration, queue and data
directories under /tmp, its SMTP server on a loopback port) that hands a support domain's mail
to maildesk, by either hand-off of README's "Running in production":

- `relay`: Postfix is the MX and relays the domain to maildesk's listener (`smtp:[host]:port`);
- `pipe`: Postfix pipes each message to `maildesk ingest` (a `pipe(8)` service in master.cf).

The lines README shows are made by `production_main_cf`, `transport_map`, `recipient_map` and
`pipe_service` below; the fixture adds only what a private test instance needs (directories,
ports, logging to a file, fast retries). It needs root (Postfix's master does) and Debian's
`postfix` package; the system instance (/etc/postfix) is neither read nor touched.
"""

from __future__ import annotations

import functools
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SBIN = Path(POSTFIX).parent
PIPE_USER = "nobody"   # pipe(8) refuses root and the mail_owner; any plain account will do


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if not Path(POSTFIX).exists():
        return "Postfix not installed (apt-get install postfix, 'No configuration')"
    if os.geteuid() != 0:
        return "a private Postfix needs root (its master binds and switches users)"
    for user in ("postfix", PIPE_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no user {user!r}"
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        return "no group 'postdrop'"
    if shutil.which("ss") is None:
        return "no `ss` (iproute2) to check what it listens on"
    return None


# -- what README's "Running in production" shows ------------------------------------------------
def size_limit_for(max_message_size: int) -> int:
    """Postfix's `message_size_limit` for maildesk's `smtp.max_message_size`: 1 % below it, so
    that what Postfix accepts (counted with its envelope, before the pipe's Return-Path) always
    fits maildesk, and what does not is refused at SMTP time by Postfix itself."""
    return max_message_size * 99 // 100


def production_main_cf(domain: str, handoff: str, message_size_limit: int,
                       maps_dir: str = "/etc/postfix") -> str:
    """main.cf lines for maildesk behind Postfix (README "Running in production")."""
    lines = [
        f"relay_domains = {domain}",
        f"relay_recipient_maps = texthash:{maps_dir}/maildesk_recipients",
        f"transport_maps = texthash:{maps_dir}/maildesk_transport",
        "recipient_delimiter = +",
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
        "smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_unlisted_recipient",
        f"message_size_limit = {message_size_limit}",
    ]
    if handoff == "pipe":
        lines.append("maildesk_destination_recipient_limit = 1")
    return "\n".join(lines) + "\n"


def transport_map(domain: str, handoff: str, listener: tuple[str, int] | None = None) -> str:
    """The `maildesk_transport` table: the support domain to the listener or the pipe."""
    if handoff == "relay":
        assert listener is not None
        return f"{domain}    smtp:[{listener[0]}]:{listener[1]}\n"
    return f"{domain}    maildesk:\n"


def recipient_map(addresses: list[str]) -> str:
    """The `maildesk_recipients` table: every support address, and postmaster@ each domain
    (`recipient_delimiter = +` lets support+anything@ through as support@)."""
    domains = sorted({a.rsplit("@", 1)[1].lower() for a in addresses})
    keys = [a.lower() for a in addresses] + [f"postmaster@{d}" for d in domains]
    return "".join(f"{k}    OK\n" for k in dict.fromkeys(keys))


def pipe_service(maildesk: str, config: str, user: str, no_process: bool = False) -> str:
    """The master.cf entry of the `maildesk` pipe transport (`--no-process` when a daemon
    runs: it processes what `ingest` stored)."""
    option = " --no-process" if no_process else ""
    return ("maildesk  unix  -       n       n       -       10      pipe\n"
            f"  flags=Rq user={user} null_sender=\n"
            f"  argv={maildesk} --config {config} ingest{option} --sender ${{sender}} "
            "--recipient ${recipient} -\n")


# -- the private test instance ---------------------------------------------------------------
# Every daemon of a small MX, unchrooted; the only inet service is smtpd on a loopback port.
# The queue manager wakes every second: a message it found still locked by the delivery agent
# that just deferred it waits in `incoming` until the next wakeup (300 s by default).
_MASTER_CF = """\
# service   type       private unpriv chroot wakeup maxproc command
{smtpd}     inet       n       -      n      -      -       smtpd
pickup      unix       n       -      n      60     1       pickup
cleanup     unix       n       -      n      -      0       cleanup
qmgr        unix       n       -      n      1      1       qmgr
rewrite     unix       -       -      n      -      -       trivial-rewrite
bounce      unix       -       -      n      -      0       bounce
defer       unix       -       -      n      -      0       bounce
trace       unix       -       -      n      -      0       bounce
verify      unix       -       -      n      -      1       verify
flush       unix       n       -      n      1000?  0       flush
proxymap    unix       -       -      n      -      -       proxymap
smtp        unix       -       -      n      -      -       smtp
relay       unix       -       -      n      -      -       smtp
showq       unix       n       -      n      -      -       showq
error       unix       -       -      n      -      -       error
retry       unix       -       -      n      -      -       error
discard     unix       -       -      n      -      -       discard
anvil       unix       -       -      n      -      1       anvil
scache      unix       -       -      n      -      1       scache
postlog     unix-dgram n       -      n      -      1       postlogd
"""


@dataclass(frozen=True)
class QueuedMail:
    """One message in Postfix's queue (`postqueue -j`)."""

    queue_id: str
    queue_name: str           # incoming, active, deferred, hold
    sender: str
    recipients: list[dict]    # {address, delay_reason?}

    @property
    def reasons(self) -> list[str]:
        return [r.get("delay_reason", "") for r in self.recipients]


class Postfix:
    """`Postfix(domain=..., addresses=[...], relay_to=(host, port))` or
    `Postfix(..., pipe=(maildesk_exe, config_path))`, then `start()`; `port` is its SMTP port.
    `no_process` adds `--no-process` to the pipe's `ingest` (a daemon processes the mail).
    `stop()` always leaves no process behind (the master by its pid if it lingers)."""

    def __init__(self, *, domain: str, addresses: list[str], message_size_limit: int,
                 relay_to: tuple[str, int] | None = None,
                 pipe: tuple[str, str] | None = None, pipe_user: str = PIPE_USER,
                 no_process: bool = False):
        assert (relay_to is None) != (pipe is None), "one hand-off: relay_to or pipe"
        self.domain = domain
        self.addresses = addresses
        self.message_size_limit = message_size_limit
        self.relay_to = relay_to
        self.pipe = pipe
        self.pipe_user = pipe_user
        self.no_process = no_process
        self.handoff = "relay" if relay_to else "pipe"
        self.host = "127.0.0.1"
        self.port = _free_port()
        # Postfix wants its queue directory and every parent owned by root and not writable by
        # others, and the pipe user must reach its working directory (the queue directory).
        self.dir = Path(tempfile.mkdtemp(prefix="maildesk-postfix-"))
        os.chmod(self.dir, 0o755)
        self.config_dir = self.dir / "etc"
        self.queue_dir = self.dir / "spool"
        self.data_dir = self.dir / "data"
        self.maillog = self.dir / "maillog"
        self.master_pid: int | None = None

    # -- configuration -------------------------------------------------------------------------
    def main_cf(self) -> str:
        d = self.dir
        return (
            "# The lines README's \"Running in production\" shows:\n"
            + production_main_cf(self.domain, self.handoff, self.message_size_limit,
                                 str(self.config_dir))
            + f"""
# A private test instance: own directories, loopback only, a log file, fast retries (a
# backoff below 2 s lets a scan find the file still locked by the agent that deferred it).
compatibility_level = 3.6
queue_directory = {d / 'spool'}
data_directory = {d / 'data'}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.maildesk.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {self.maillog}
maillog_file_prefixes = {d}
syslog_name = postfix-maildesk-test
biff = no
smtpd_banner = $myhostname ESMTP
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_connect_timeout = 5s
smtp_helo_timeout = 10s
smtp_data_done_timeout = 60s
queue_run_delay = 1s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
"""
        )

    def master_cf(self) -> str:
        text = _MASTER_CF.format(smtpd=f"{self.host}:{self.port}")
        if self.pipe is not None:
            text += pipe_service(self.pipe[0], self.pipe[1], self.pipe_user, self.no_process)
        return text

    def _configure(self) -> None:
        self.config_dir.mkdir()
        (self.config_dir / "main.cf").write_text(self.main_cf())
        (self.config_dir / "master.cf").write_text(self.master_cf())
        (self.config_dir / "maildesk_transport").write_text(
            transport_map(self.domain, self.handoff, self.relay_to))
        (self.config_dir / "maildesk_recipients").write_text(recipient_map(self.addresses))
        self.queue_dir.mkdir(mode=0o755)
        self._postfix("check", timeout=120)   # also makes the queue's and data directories

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Postfix":
        """Configure and start the instance; answers on `port`, listens nowhere else. On any
        failure it is stopped again before the error goes up."""
        try:
            self._configure()
            self._postfix("start")
            self.master_pid = self._read_master_pid()
            self._wait_for_banner()
            self.assert_loopback_only()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the instance (`postfix stop`); `abort`, then SIGKILL, its master if it lingers.
        Idempotent, and safe after a failed start."""
        pid = self.master_pid or self._read_master_pid()
        self.master_pid = None
        if pid is None or not _is_master(pid):
            return
        subprocess.run([POSTFIX, "-c", str(self.config_dir), "stop"], capture_output=True,
                       timeout=60)
        if not _wait_gone(pid, 20):
            subprocess.run([POSTFIX, "-c", str(self.config_dir), "abort"], capture_output=True,
                           timeout=60)
            if not _wait_gone(pid, 10) and _is_master(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10)

    def _read_master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _wait_for_banner(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postfix did not answer on {self.port}:\n{self.log_text()}")
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Postfix":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- looking at it -------------------------------------------------------------------------
    def assert_loopback_only(self) -> None:
        """Every socket the master listens on is 127.0.0.1:<port> (from `ss -ltnpu`)."""
        out = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True,
                             check=True).stdout
        mine = [line.split() for line in out.splitlines() if f"pid={self.master_pid}," in line]
        local = sorted({cols[4] for cols in mine})
        assert local == [f"{self.host}:{self.port}"], (
            f"postfix master {self.master_pid} listens on {local or 'nothing'}, "
            f"expected only {self.host}:{self.port}")

    def queue(self) -> list[QueuedMail]:
        """What is queued (`postqueue -j`)."""
        out = self._run(SBIN / "postqueue", "-c", str(self.config_dir), "-j").stdout
        mails = []
        for line in out.splitlines():
            if line.strip():
                row = json.loads(line)
                mails.append(QueuedMail(row["queue_id"], row["queue_name"], row["sender"],
                                        row["recipients"]))
        return mails

    def log_text(self, tail: int = 20000) -> str:
        try:
            return self.maillog.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return "(no maillog)"

    def delivered(self) -> list[str]:
        """The `status=sent` lines of the log."""
        return [line for line in self.log_text(10**7).splitlines() if "status=sent" in line]

    # -- helpers -------------------------------------------------------------------------------
    def _postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self._run(POSTFIX, "-c", str(self.config_dir), *args, timeout=timeout)

    def _run(self, *cmd: object, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                               f"{proc.stdout}{proc.stderr}\n{self.log_text()}")
        return proc


def _is_master(pid: int) -> bool:
    """Whether `pid` is a live Postfix master process (not a zombie nobody reaped yet)."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return name == "master" and state != "Z"


def _wait_gone(pid: int, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not _is_master(pid):
            return True
        time.sleep(0.05)
    return False


# -- maildesk as the pipe user sees it ----------------------------------------------------------
def maildesk_for(user: str, directory: Path) -> str:
    """A `maildesk` executable `user` can run: the venv's own when it can, else (the venv's
    Python lives where only root may go, as pyenv's under /root) a launcher in `directory` that
    runs the same code with the system's Python of the same version."""
    exe = Path(sys.executable).parent / "maildesk"
    if _runs_as(user, (str(exe), "--help")):
        return str(exe)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin:/bin")
    if system is None:
        raise RuntimeError(f"{user} cannot run {exe} and there is no /usr/bin/{version}")
    site_dir = sysconfig.get_paths()["purelib"]   # the venv's site-packages
    launcher = directory / "maildesk"
    launcher.write_text(f"#!{system} -S\n"
                        "import site, sys\n"
                        f"site.addsitedir({site_dir!r})\n"
                        "from maildesk.cli import main\n"
                        "if __name__ == '__main__':  # not in multiprocessing's forkserver\n"
                        "    sys.exit(main())\n")
    launcher.chmod(0o755)
    key = (user, launcher.read_text())
    if key not in _LAUNCHERS_SEEN_RUNNING:   # the same text in another directory runs alike
        if not _runs_as(user, (str(launcher), "--help")):
            raise RuntimeError(f"{user} can run neither {exe} nor {launcher}")
        _LAUNCHERS_SEEN_RUNNING.add(key)
    return str(launcher)


_LAUNCHERS_SEEN_RUNNING: set[tuple[str, str]] = set()


@functools.lru_cache(maxsize=None)
def _runs_as(user: str, argv: tuple[str, ...]) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True,
                          timeout=60).returncode == 0


def postfix_or_skip(**kwargs) -> Postfix:  # type: ignore[no-untyped-def]
    """A started private Postfix; skips when it cannot run here (fails instead in CI)."""
    from conftest import need_server
    why = missing()
    if why:
        need_server(f"Postfix ({why})")
    server = Postfix(**kwargs)
    try:
        return server.start()
    except BaseException:
        shutil.rmtree(server.dir, ignore_errors=True)
        raise


__all__ = ["Postfix", "QueuedMail", "postfix_or_skip", "maildesk_for", "missing",
           "production_main_cf", "transport_map", "recipient_map", "pipe_service",
           "size_limit_for", "PIPE_USER"]
