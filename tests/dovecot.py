"""A real Dovecot for tests and benchmarks: own config, passwd-file user, Maildir, loopback ports."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return Path(DOVECOT).exists()


class Dovecot:
    """`Dovecot(dir).start()`; plain IMAP (+STARTTLS) on `port`, implicit TLS on `tls_port`."""

    def __init__(self, directory: Path, user: str = "support", password: str = "secret"):
        self.dir = Path(directory)
        self._private = os.geteuid() == 0
        if self._private:
            # As root, Dovecot's auth and mail processes run as the `dovecot` user, who cannot
            # enter pytest's 0700 temp dirs: keep this server's files in a dir it can reach.
            self.dir = Path(tempfile.mkdtemp(prefix="maildesk-dovecot-"))
            os.chmod(self.dir, 0o755)
        self.host = "127.0.0.1"
        self.user = user
        self.password = password
        self.port = _free_port()
        self.tls_port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.mail_root = self.dir / "mail"
        self.ca_file = self.dir / "cert.pem"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Dovecot":
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "dovecot.conf").exists():
            self._configure()
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.dir / "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr", "ab"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # Children (imap, auth) go with the master; wait until the port is free again.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                time.sleep(0.05)
            except OSError:
                return

    def close(self) -> None:
        """Stop for good and remove the files (restart is no longer possible)."""
        self.stop()
        if self._private:
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "Dovecot":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_text(self) -> str:
        parts = []
        for name in ("dovecot.log", "stderr"):
            p = self.dir / name
            if p.exists():
                parts.append(p.read_text(errors="replace")[-5000:])
        return "\n".join(parts)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _configure(self) -> None:
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid())
        mail_user = pwd.getpwnam("dovecot") if root else me
        internal = "dovecot" if root else me.pw_name
        login = "dovenull" if root else me.pw_name
        self.mail_root.mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        if root:
            os.chown(self.mail_root, mail_user.pw_uid, mail_user.pw_gid)
            os.chmod(self.dir, 0o755)
        self._certificate()
        (self.dir / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{mail_user.pw_uid}:{mail_user.pw_gid}::"
            f"{self.mail_root / self.user}\n")
        conf = f"""
base_dir = {self.dir / 'run'}
state_dir = {self.dir / 'state'}
protocols = imap
listen = 127.0.0.1
log_path = {self.dir / 'dovecot.log'}
info_log_path = {self.dir / 'dovecot.log'}
default_internal_user = {internal}

default_login_user = {login}
first_valid_uid = {min(mail_user.pw_uid, 1)}
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{self.ca_file}
ssl_key = <{self.dir / 'key.pem'}
mail_location = maildir:~/Maildir
mail_uid = {mail_user.pw_uid}
mail_gid = {mail_user.pw_gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.dir / 'passwd'}
}}
userdb {{
  driver = passwd-file
  args = {self.dir / 'passwd'}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        (self.dir / "dovecot.conf").write_text(conf)

    def _certificate(self) -> None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(self.dir / "key.pem"), "-out", str(self.ca_file)],
                       check=True, capture_output=True)

    # -- mailbox helpers (over IMAP, as a mail client would) -----------------------------------
    def client(self, ssl_: bool = False):  # type: ignore[no-untyped-def]
        from imapclient import IMAPClient
        if ssl_:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            c = IMAPClient(self.host, port=self.tls_port, ssl=True, ssl_context=context, timeout=30)
        else:
            c = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        c.login(self.user, self.password)
        return c

    def create_folder(self, folder: str) -> None:
        c = self.client()
        try:
            if not c.folder_exists(folder):
                c.create_folder(folder)
        finally:
            c.logout()

    def append(self, folder: str, data: bytes, flags=(), msg_time=None) -> int | None:
        """APPEND one message; its UID (from APPENDUID)."""
        c = self.client()
        try:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            return _appenduid(c.append(folder, data, flags, msg_time))
        finally:
            c.logout()

    def append_many(self, folder: str, messages: list[bytes]) -> None:
        """Many messages at once: MULTIAPPEND (RFC 3502) in chunks, one round trip each."""
        c = self.client()
        try:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for i in range(0, len(messages), 200):
                c.multiappend(folder, messages[i:i + 200])
        finally:
            c.logout()

    def uids(self, folder: str, criteria: str = "ALL") -> list[int]:
        c = self.client()
        try:
            c.select_folder(folder, readonly=True)
            return sorted(c.search(criteria))
        finally:
            c.logout()

    def flags(self, folder: str) -> dict[int, tuple[bytes, ...]]:
        c = self.client()
        try:
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            return {uid: tuple(v) for uid, v in c.get_flags(uids).items()} if uids else {}
        finally:
            c.logout()

    def fetch_all(self, folder: str) -> dict[int, bytes]:
        c = self.client()
        try:
            if not c.folder_exists(folder):
                return {}
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            if not uids:
                return {}
            return {uid: bytes(v[b"BODY[]"]) for uid, v in c.fetch(uids, ["BODY.PEEK[]"]).items()}
        finally:
            c.logout()

    def uidvalidity(self, folder: str) -> int:
        c = self.client()
        try:
            return int(c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            c.logout()

    def reset_uidvalidity(self, folder: str) -> None:
        """Make the server renumber a folder (new UIDVALIDITY, same messages), as happens when
        a mailbox is restored or migrated: stop, drop the folder's dovecot-uidlist, start."""
        before = self.uidvalidity(folder)
        time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock (seconds)
        self.stop()
        base = self.mail_root / self.user / "Maildir"
        path = base if folder.upper() == "INBOX" else base / f".{folder}"
        (path / "dovecot-uidlist").unlink()
        for index in path.glob("dovecot.index*"):
            index.unlink()
        self.start()
        after = self.uidvalidity(folder)
        if after == before:
            raise RuntimeError("UIDVALIDITY did not change")


def _appenduid(response: bytes) -> int | None:
    import re
    m = re.search(rb"APPENDUID \d+ (\d+)", response or b"")
    return int(m.group(1)) if m else None


def dovecot_or_skip(directory: Path) -> Dovecot:
    """A started Dovecot; skips when the binary is missing (fails instead in CI)."""
    import pytest
    if not available():
        if os.environ.get("MAILDESK_REQUIRE_SERVERS") == "1":
            pytest.fail("Dovecot is required (MAILDESK_REQUIRE_SERVERS=1) but not installed "
                        "(apt-get install dovecot-imapd)")
        pytest.skip("Dovecot not installed (apt-get install dovecot-imapd)")
    return Dovecot(directory).start()
