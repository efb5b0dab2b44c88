"""Running the IMAP poller: one thread per watched folder in `serve`, or one pass for cron.

A watcher connects, runs a pass, then waits for news: IDLE where the server advertises it
(re-issued every IDLE_RENEW, before servers drop an idle client at 30 minutes), else the
account's poll interval. Any connection or server error closes the connection and it tries
again with backoff; a login refused waits the longest. Stopping is checked every second.

A reload (`ImapService.reconfigure`) stops the watchers of accounts removed or changed, each
after the pass it is in, and starts those of accounts added or changed. Progress (UIDVALIDITY,
last and acknowledged UID) is in the database, so a watcher started again neither loses nor
repeats mail.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock
from maildesk.config.model import ImapAccount
from maildesk.ingress.imap import FolderPoller, ImapLoginError, PassResult, connect, logout_quietly
from maildesk.ingress.lease import (RENEW_EVERY, STANDBY_CHECK, FolderLease, LeaseLost,
                                    daemon_id)

if TYPE_CHECKING:
    from maildesk.monitor.metrics import Metrics

log = logging.getLogger(__name__)

IDLE_RENEW = 25 * 60           # seconds in one IDLE command at most (RFC 2177: 29 minutes)
IDLE_TICK = 1.0                # how often a waiting watcher checks for stop/wake
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
_NEWS = (b"EXISTS", b"RECENT")


def _pollers(account: ImapAccount, make_session: sessionmaker[Session], clock: Clock,
             max_size: int, on_stored: Callable[[list[int]], None] | None,
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
    """`maildesk poll --once`: one pass over every folder of every enabled account (a
    folder a daemon is polling is left to it)."""
    out: list[AccountPass] = []
    owner = daemon_id()
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
                out.append(_leased_pass(poller, client, owner))
        finally:
            logout_quietly(client)
    return out


def _leased_pass(poller: FolderPoller, client: IMAPClient, owner: str) -> AccountPass:
    """One pass holding the folder's lease for its length. A lease held by someone else is
    waited for up to its length: a poller killed before (cron's last run) leaves one that
    runs out; a daemon polling the folder renews its own, and the folder is left to it."""
    account, folder = poller.account.name, poller.folder.name
    lease = FolderLease(poller.make_session, poller.clock, account, folder, owner)
    try:
        deadline = time.monotonic() + lease.duration.total_seconds() + 2 * IDLE_TICK
        told = False
        while (holder := lease.acquire()) is not None:
            if time.monotonic() > deadline:
                return AccountPass(account, folder, None, f"polled by {holder}; left to it")
            if poller.progress is not None and not told:
                poller.progress(f"{poller.label}: held by {holder}; waiting for its lease")
                told = True
            time.sleep(IDLE_TICK)
        poller.lease = lease
        try:
            return AccountPass(account, folder, poller.run_pass(client))
        finally:
            lease.release()
    except (IMAPClient.Error, OSError, LeaseLost) as exc:
        return AccountPass(account, folder, None, _describe(exc))


class FolderWatcher:
    """A thread that keeps one folder of one account taken in, while it holds the folder's
    lease (`lease`: several daemons on one database; None: no one else polls it)."""

    def __init__(self, poller: FolderPoller, metrics: Metrics | None = None,
                 lease: FolderLease | None = None):
        self.poller = poller
        self.lease = lease
        poller.lease = lease
        self._renewed = 0.0     # time.monotonic() of the last renewal
        self.standby_for: str | None = None   # who holds the folder while we stand by
        self.metrics = metrics   # mails found and stored; when the folder was last in sync
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"imap {poller.label}")
        self.passes = 0

    def start(self) -> None:
        if self.metrics is not None:
            self.metrics.imap_watch(self.poller.account.name, self.poller.folder.name)
        self._thread.start()

    def _synced(self, result: PassResult | None = None) -> None:
        """The folder is in sync: a pass ended (`result`), or IDLE is listening."""
        if self.metrics is None:
            return
        account, folder = self.poller.account.name, self.poller.folder.name
        if result is None:
            self.metrics.imap_synced(account, folder)
        else:
            self.metrics.imap_passed(account, folder, result.stored + result.oversize,
                                     result.stored)

    def wake(self) -> None:
        """Run a pass soon (e.g. processing quarantined one of our messages)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the thread to end (it checks every second); `stop` also waits for it."""
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        self.request_stop()
        if self._thread.ident is not None:  # started
            self._thread.join()

    def _run(self) -> None:
        try:
            self._watch()
        finally:
            if self.lease is not None:
                try:
                    self.lease.release()
                except Exception as exc:  # it runs out by itself
                    log.warning("%s: giving up the lease: %s", self.poller.label,
                                _describe(exc))

    def _hold(self) -> bool:
        """Take the folder's lease (or stand by while another daemon holds it)."""
        if self.lease is None:
            return True
        label = self.poller.label
        holder = self.lease.acquire()
        if holder is not None:
            if holder != self.standby_for:
                log.info("%s: polled by %s; standing by", label, holder)
                self.standby_for = holder
            return False
        if self.standby_for is not None:
            log.info("%s: taking over from %s", label, self.standby_for)
            self.standby_for = None
        self._renewed = time.monotonic()
        return True

    def _keep_lease(self) -> None:
        """While waiting for news: renew the lease every RENEW_EVERY (LeaseLost if gone)."""
        if self.lease is None or time.monotonic() - self._renewed < RENEW_EVERY:
            return
        holder = self.lease.acquire()
        self._renewed = time.monotonic()
        if holder is not None:
            raise LeaseLost(holder)

    def _watch(self) -> None:
        delay = BACKOFF_FIRST
        label = self.poller.label
        while not self._stop.is_set():
            client = None
            try:
                if not self._hold():
                    self._stop.wait(STANDBY_CHECK)
                    continue
                client = connect(self.poller.account)
                log.info("%s: connected", label)
                while not self._stop.is_set():
                    self._wake.clear()
                    result = self.poller.run_pass(client)
                    self.passes += 1
                    self._synced(result)
                    delay = BACKOFF_FIRST
                    if result.stored or result.oversize or result.quarantine_copies:
                        log.info("%s: %s stored, %s skipped, %s oversize, %s quarantine copies",
                                 label, result.stored, result.skipped, result.oversize,
                                 result.quarantine_copies)
                    self._wait(client)
            except LeaseLost as exc:  # stalled past the lease: another daemon polls it now
                log.warning("%s: taken over by %s; standing by", label, exc)
                self.standby_for = str(exc)
                continue
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
                self._keep_lease()
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
                self._keep_lease()
                responses = client.idle_check(timeout=IDLE_TICK)
                self._synced()   # the server is listening for us: the folder is in sync
                if any(len(r) > 1 and r[1] in _NEWS for r in responses):
                    break
                if time.monotonic() - started > IDLE_RENEW:
                    break
        finally:
            client.idle_done()


@dataclass(frozen=True)
class ImapChanges:
    """What a reload did to the watched accounts (names)."""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class ImapService:
    """Every watcher of every enabled account, for `serve`."""

    def __init__(self, accounts: tuple[ImapAccount, ...], make_session: sessionmaker[Session],
                 clock: Clock, *, max_size: int, on_stored: Callable[[list[int]], None] | None = None,
                 intake: Any = None, metrics: Metrics | None = None):
        """`intake`: an IntakeGate the processor honours, so storing goes first."""
        self._metrics = metrics
        self._make_session = make_session
        self._clock = clock
        self._on_stored = on_stored
        self._intake = intake
        self.max_size = max_size
        self.accounts = {a.name: a for a in accounts if a.enabled}
        self.owner = daemon_id()   # whose leases: this daemon's
        self.watchers = self._watch(self.accounts.values())
        self._started = False

    def _watch(self, accounts: Iterable[ImapAccount]) -> list[FolderWatcher]:
        return [FolderWatcher(p, self._metrics, FolderLease(
                    self._make_session, self._clock, a.name, p.folder.name, self.owner,
                    write_turn=self._intake.storing if self._intake else None))
                for a in accounts
                for p in _pollers(a, self._make_session, self._clock, self.max_size,
                                  self._on_stored, intake=self._intake)]

    def start(self) -> None:
        self._started = True
        for w in self.watchers:
            w.start()

    def reconfigure(self, accounts: tuple[ImapAccount, ...], *, max_size: int) -> ImapChanges:
        """Take up a reloaded `imap.accounts` (matched by name): stop the watchers of the
        accounts removed or disabled, start those of the accounts added, restart those of the
        accounts whose settings changed. A watcher stops after the pass it is in, so what that
        pass stored is flagged or moved as usual, and the old watcher of a folder has ended
        before the new one starts: one connection per folder takes its mail. Blocks until then
        (call it off the event loop)."""
        new = {a.name: a for a in accounts if a.enabled}
        changes = ImapChanges(
            added=tuple(n for n in new if n not in self.accounts),
            removed=tuple(n for n in self.accounts if n not in new),
            changed=tuple(n for n in new if n in self.accounts and new[n] != self.accounts[n]))
        self.max_size = max_size
        ending = {*changes.removed, *changes.changed}
        stopping = [w for w in self.watchers if w.poller.account.name in ending]
        kept = [w for w in self.watchers if w.poller.account.name not in ending]
        for w in kept:                  # read at every pass
            w.poller.max_size = max_size
        for w in stopping:              # all at once: each may be in the middle of a pass
            w.request_stop()
        for w in stopping:
            w.stop()
        starting = self._watch(new[n] for n in (*changes.changed, *changes.added))
        self.watchers = kept + starting  # a new list: wake() may be iterating the old one
        self.accounts = new
        if self._started:
            for w in starting:
                w.start()
        return changes

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
    from maildesk.db.outage import is_unreachable, one_line
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):  # one line, without the SQL and its parameters
        return ("database unreachable: " if is_unreachable(exc) else "database: ") + one_line(exc)
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

