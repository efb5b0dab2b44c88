"""Running the IMAP poller: one thread per watched folder in `serve`, or one pass for cron.

A watcher connects, runs a pass, then waits for news: IDLE where the server advertises it
(re-issued every IDLE_RENEW, before servers drop an idle client at 30 minutes), else the
account's poll interval. Any connection or server error closes the connection and it tries
again with backoff; a login refused waits the longest. Stopping is checked every second.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock
from maildesk.config.model import ImapAccount
from maildesk.ingress.imap import FolderPoller, ImapLoginError, PassResult, connect, logout_quietly

log = logging.getLogger(__name__)

IDLE_RENEW = 25 * 60           # seconds in one IDLE command at most (RFC 2177: 29 minutes)
IDLE_TICK = 1.0                # how often a waiting watcher checks for stop/wake
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
_NEWS = (b"EXISTS", b"RECENT")


def _pollers(account: ImapAccount, make_session: sessionmaker[Session], clock: Clock,
             max_size: int, on_stored: Callable[[], None] | None,
             progress: Callable[[str], None] | None = None,
             intake: Any = None) -> list[FolderPoller]:
    return [FolderPoller(account, folder, make_session, clock, max_size=max_size,
                         on_stored=on_stored, progress=progress, handles_quarantine=i == 0,
                         intake=intake)
            for i, folder in enumerate(account.folders)]


@dataclass(frozen=True)
class AccountPass:
    account: str
    folder: str
    result: PassResult | None
    error: str | None = None


def poll_once(accounts: tuple[ImapAccount, ...], make_session: sessionmaker[Session],
              clock: Clock, *, max_size: int, only: str | None = None,
              progress: Callable[[str], None] | None = None) -> list[AccountPass]:
    """`maildesk poll --once`: one pass over every folder of every enabled account."""
    out: list[AccountPass] = []
    for account in accounts:
        if not account.enabled or (only and account.name != only):
            continue
        try:
            client = connect(account)
        except (ImapLoginError, IMAPClient.Error, OSError) as exc:
            for folder in account.folders:
                out.append(AccountPass(account.name, folder.name, None, _describe(exc)))
            continue
        try:
            for poller in _pollers(account, make_session, clock, max_size, None, progress):
                try:
                    out.append(AccountPass(account.name, poller.folder.name,
                                           poller.run_pass(client)))
                except (IMAPClient.Error, OSError) as exc:
                    out.append(AccountPass(account.name, poller.folder.name, None,
                                           _describe(exc)))
        finally:
            logout_quietly(client)
    return out


class FolderWatcher:
    """A thread that keeps one folder of one account taken in."""

    def __init__(self, poller: FolderPoller):
        self.poller = poller
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"imap {poller.label}")
        self.passes = 0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run a pass soon (e.g. processing quarantined one of our messages)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the thread to end (it checks every second); `stop` also waits for it."""
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        self.request_stop()
        self._thread.join()

    def _run(self) -> None:
        delay = BACKOFF_FIRST
        label = self.poller.label
        while not self._stop.is_set():
            client = None
            try:
                client = connect(self.poller.account)
                log.info("%s: connected", label)
                while not self._stop.is_set():
                    self._wake.clear()
                    result = self.poller.run_pass(client)
                    self.passes += 1
                    delay = BACKOFF_FIRST
                    if result.stored or result.oversize or result.quarantine_copies:
                        log.info("%s: %s stored, %s skipped, %s oversize, %s quarantine copies",
                                 label, result.stored, result.skipped, result.oversize,
                                 result.quarantine_copies)
                    self._wait(client)
            except ImapLoginError as exc:
                log.error("%s: %s; trying again in %.0f s", label, exc, BACKOFF_MAX)
                delay = BACKOFF_MAX
            except Exception as exc:  # a dropped connection, a server error, a locked database
                log.warning("%s: %s; reconnecting in %.0f s", label, _describe(exc), delay)
            finally:
                if client is not None:
                    logout_quietly(client)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, BACKOFF_MAX)

    def _wait(self, client: IMAPClient) -> None:
        """Until there may be news: IDLE, or the poll interval."""
        account = self.poller.account
        if not (account.idle and client.has_capability("IDLE")):
            deadline = time.monotonic() + account.poll_interval.total_seconds()
            while not self._stop.is_set() and not self._wake.is_set():
                if self._wake.wait(min(IDLE_TICK, max(deadline - time.monotonic(), 0))):
                    break
                if time.monotonic() >= deadline:
                    break
            return
        if self.poller.has_new(client):
            return
        client.idle()
        try:
            started = time.monotonic()
            while not self._stop.is_set() and not self._wake.is_set():
                responses = client.idle_check(timeout=IDLE_TICK)
                if any(len(r) > 1 and r[1] in _NEWS for r in responses):
                    break
                if time.monotonic() - started > IDLE_RENEW:
                    break
        finally:
            client.idle_done()


class ImapService:
    """Every watcher of every enabled account, for `serve`."""

    def __init__(self, accounts: tuple[ImapAccount, ...], make_session: sessionmaker[Session],
                 clock: Clock, *, max_size: int, on_stored: Callable[[], None] | None = None,
                 intake: Any = None):
        """`intake`: an IntakeGate the processor honours, so storing goes first."""
        self.watchers = [FolderWatcher(p) for a in accounts if a.enabled
                         for p in _pollers(a, make_session, clock, max_size, on_stored,
                                           intake=intake)]

    def start(self) -> None:
        for w in self.watchers:
            w.start()

    def wake(self) -> None:
        for w in self.watchers:
            if w.poller.handles_quarantine:
                w.wake()

    def stop(self) -> None:
        for w in self.watchers:     # all at once: each may be in the middle of a pass
            w.request_stop()
        for w in self.watchers:
            w.stop()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "the server did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: the server's certificate is not trusted ({exc.verify_message}; "
                f"CERTIFICATE_VERIFY_FAILED): set ca_file for a private CA")
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

