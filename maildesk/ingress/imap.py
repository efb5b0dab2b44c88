"""The IMAP poller: take every message from a mailbox folder once, and only once.

One pass over a folder (`FolderPoller.run_pass`):

1. SELECT the folder; a UIDVALIDITY other than the stored one means the server renumbered the
   folder: progress starts over and messages already stored (same bytes, same account and
   folder) are skipped, so nothing doubles.
2. Finish the after-store action (flag, move, delete) for messages stored before a crash but
   not yet acted on (`acked_uid` < `last_uid`).
3. Fetch new messages in batches (`UID FETCH a:b (BODY.PEEK[] INTERNALDATE)`, one round trip
   per batch), store them and move `last_uid` in ONE transaction, and only after that commit
   do the action on the server.
4. Put a copy of every message from this account that processing quarantined, with the
   reason, into the quarantine folder.

The connection handling and threads are in `maildesk.ingress.imap_service`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
import ssl
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from imapclient import IMAPClient
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock
from maildesk.config.model import ImapAccount, ImapFolderSettings
from maildesk.db.models import (
    Channel,
    ImapFolder,
    ImapQuarantineCopy,
    Inbound,
    InboundStatus,
    RawMessage,
)
from maildesk.db.session import make_read_sessionmaker
from maildesk.ingress.lease import FolderLease
from maildesk.store.raw import Arrival, store_arrivals

log = logging.getLogger(__name__)

# Bytes fetched per round trip at most, whatever batch_size says: a batch is held in memory.
MAX_BATCH_BYTES = 32 * 1024 * 1024
SIZE_QUERY = 1000  # UIDs per FETCH RFC822.SIZE command
SEEN = b"\\Seen"
DELETED = b"\\Deleted"


class ImapLoginError(Exception):
    """The server refused our credentials (or TLS): retrying soon will not help."""


def connect(account: ImapAccount, *, timeout: float = 60.0) -> IMAPClient:
    """A logged-in client: implicit TLS, or STARTTLS that must succeed, or clear text on a
    loopback host (the config refuses `none` elsewhere)."""
    context = None
    if account.security != "none":
        context = ssl.create_default_context(cafile=str(account.ca_file) if account.ca_file
                                             else None)
    client = IMAPClient(account.host, port=account.port, ssl=account.security == "tls",
                        ssl_context=context, timeout=timeout)
    try:
        if account.security == "starttls":
            client.starttls(context)   # raises if the server does not offer it: never in clear
        client.normalise_times = False  # INTERNALDATE with its zone, not naive local time
        if account.password is not None:
            client.login(account.username, account.password)
        else:
            client.oauth2_login(account.username, oauth2_token(account))
    except IMAPClient.Error as exc:
        logout_quietly(client)
        raise ImapLoginError(f"{account.name}: login as {account.username} refused: "
                             f"{_text(exc)}") from None
    except BaseException:
        logout_quietly(client)
        raise
    return client


def oauth2_token(account: ImapAccount) -> str:
    """The XOAUTH2 access token, read anew at every login (tokens expire within the hour)."""
    if account.oauth2_token_file is not None:
        return account.oauth2_token_file.read_text(encoding="utf-8").strip()
    assert account.oauth2_token_command is not None
    done = subprocess.run(shlex.split(account.oauth2_token_command), capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise ImapLoginError(f"{account.name}: oauth2 token_command exited {done.returncode}: "
                             f"{done.stderr.strip()[:200]}")
    return done.stdout.strip()


def logout_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def _text(exc: BaseException) -> str:
    text = exc.args[0] if exc.args else str(exc)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def uid_set(uids: Iterable[int]) -> str:
    """1,2,3,5,7,8 -> '1:3,5,7:8': short commands for long runs of UIDs (servers limit the
    length of a command line)."""
    out: list[str] = []
    start = prev = None
    for uid in sorted(set(uids)):
        if prev is not None and uid == prev + 1:
            prev = uid
            continue
        if start is not None:
            out.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    if start is not None:
        out.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(out)


def source_prefix(account: str, folder: str) -> str:
    return f"imap://{account}/{folder};"


def source_of(account: str, folder: str, uidvalidity: int, uid: int) -> str:
    """Where an arrival came from, in the shape of an RFC 5092 IMAP URL."""
    return f"{source_prefix(account, folder)}UIDVALIDITY={uidvalidity}/;UID={uid}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def quarantine_copy(raw: bytes, reason: str, inbound_id: int) -> bytes:
    """The message as received, with the reason in front as a header (one line, no control
    characters, so it can never break the header block)."""
    first = _CONTROL.sub(" ", reason.strip().splitlines()[0] if reason.strip() else "unknown")
    first = first.encode("ascii", "replace").decode()[:900]
    return (f"X-Maildesk-Quarantine: {first}\r\nX-Maildesk-Inbound: {inbound_id}\r\n"
            .encode() + raw)


@dataclass
class PassResult:
    """What one pass over a folder did."""

    stored: int = 0
    skipped: int = 0          # already stored (a rescan after UIDVALIDITY changed)
    oversize: int = 0         # over smtp.max_message_size: left, or moved to quarantine
    acked: int = 0
    quarantine_copies: int = 0
    rescanned: bool = False


@dataclass(frozen=True)
class _Fetched:
    uid: int
    data: bytes
    internaldate: datetime | None


class FolderPoller:
    """Takes the mail of one folder of one account; `run_pass` does one pass on a client."""

    def __init__(self, account: ImapAccount, folder: ImapFolderSettings,
                 make_session: sessionmaker[Session], clock: Clock, *, max_size: int,
                 on_stored: Callable[[list[int]], None] | None = None,
                 progress: Callable[[str], None] | None = None,
                 handles_quarantine: bool = True, intake: Any = None):
        self.account = account
        self.folder = folder
        self.make_session = make_session
        # What only reads begins deferred: a write transaction would wait for the processor's
        # batch and hold up the listener's commits (db/session.py).
        self._read_session = make_read_sessionmaker(make_session.kw["bind"])
        self.clock = clock
        self.max_size = max_size
        self.on_stored = on_stored
        self.progress = progress
        # One poller per account copies quarantined mail, so a copy is made once.
        self.handles_quarantine = handles_quarantine
        self.prefix = source_prefix(account.name, folder.name)
        self.intake = intake  # IntakeGate of `serve`: the processor waits while we store
        # Set by the watcher: the folder's lease, confirmed in every transaction that stores
        # or moves progress (a poller taken over cannot commit; ingress/lease.py).
        self.lease: FolderLease | None = None

    @property
    def label(self) -> str:
        return f"{self.account.name}/{self.folder.name}"

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A write transaction, begun by renewing our lease (LeaseLost: not ours any more).
        In `serve` it takes the daemon's write turn (IntakeGate.storing), as the listener's
        commits do: through SQLite's busy handler alone it could starve for the lock while the
        processor's batches and the deliverer took it back to back."""
        with (self.intake.storing() if self.intake else nullcontext()), \
                self.make_session.begin() as session:
            if self.lease is not None:
                self.lease.confirm(session)
            yield session

    # -- the pass -----------------------------------------------------------------------------
    def run_pass(self, client: IMAPClient) -> PassResult:
        result = PassResult()
        selected = client.select_folder(self.folder.name)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        state = self._state(client, uidvalidity, selected, result)
        if state.acked_uid < state.last_uid:
            result.acked += self._act(client, self._stored_between(client, state.acked_uid,
                                                                   state.last_uid))
            self._set_acked(state, state.last_uid)
        new = [u for u in client.search(["UID", f"{state.last_uid + 1}:*"])
               if u > state.last_uid]
        new.sort()
        if new:
            with self.intake.busy() if self.intake else nullcontext():
                self._take(client, state, new, result)
        if self.handles_quarantine and self.account.quarantine_folder:
            result.quarantine_copies = self._copy_quarantined(client)
        return result

    def has_new(self, client: IMAPClient) -> bool:
        """Is there mail past our progress? Asked right before IDLE: IDLE announces only what
        arrives after it started, so mail that came while the pass ran would wait for the
        server's next periodic check (30 s on Dovecot) or the next message."""
        with self._read_session() as session:
            last = session.scalar(select(ImapFolder.last_uid).where(
                ImapFolder.account == self.account.name, ImapFolder.folder == self.folder.name))
        if last is None:
            return True
        # NOOP first: servers (Dovecot among them) answer SEARCH from the session's last
        # view of the folder, which does not include mail another session appended since.
        client.noop()
        return any(u > last for u in client.search(["UID", f"{last + 1}:*"]))

    def _state(self, client: IMAPClient, uidvalidity: int, selected: dict,
               result: PassResult) -> ImapFolder:
        now = self.clock.now()
        with self._writing() as session:
            state = session.scalar(select(ImapFolder).where(
                ImapFolder.account == self.account.name, ImapFolder.folder == self.folder.name))
            if state is None:
                # First contact: what is already here is the backlog, taken as configured.
                last = (int(selected[b"UIDNEXT"]) - 1 if b"UIDNEXT" in selected
                        else max(client.search(["ALL"]) or [0]))
                state = ImapFolder(account=self.account.name, folder=self.folder.name,
                                   uidvalidity=uidvalidity, last_uid=0, acked_uid=0,
                                   backlog_until=last, started_at=now, updated_at=now)
                session.add(state)
                log.info("%s: first contact, %s message(s) present, import_existing: %s",
                         self.label, selected.get(b"EXISTS", "?"), self.account.import_existing)
            elif state.uidvalidity != uidvalidity:
                log.warning("%s: UIDVALIDITY changed (%s -> %s): the server renumbered the "
                            "folder; rescanning, messages already stored are skipped",
                            self.label, state.uidvalidity, uidvalidity)
                state.uidvalidity = uidvalidity
                state.last_uid = state.acked_uid = state.backlog_until = 0
                state.updated_at = now
                result.rescanned = True
        return state

    def _take(self, client: IMAPClient, state: ImapFolder, new: list[int],
              result: PassResult) -> None:
        wanted = self._backlog_filter(client, state, new)
        taking = [u for u in new if u in wanted]
        sizes: dict[int, dict] = {}
        for i in range(0, len(taking), SIZE_QUERY):  # a UID list per command line, kept short
            sizes.update(client.fetch(taking[i:i + SIZE_QUERY], ["RFC822.SIZE"]))
        batch: list[int] = []
        batch_bytes = 0
        total = len(taking)
        done = 0
        for uid in taking:
            size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
            if size > self.max_size:
                self._oversize(client, uid, size)
                result.oversize += 1
                continue
            if batch and (len(batch) >= self.account.batch_size
                          or batch_bytes + size > MAX_BATCH_BYTES):
                done += self._store_batch(client, state, batch, result)
                self._report(done, total)
                batch, batch_bytes = [], 0
            batch.append(uid)
            batch_bytes += size
        if batch:
            done += self._store_batch(client, state, batch, result)
            self._report(done, total)
        # Everything looked at (taken and acted on, old backlog left alone, oversize) is
        # behind us now.
        with self._writing() as session:
            session.execute(update(ImapFolder).where(ImapFolder.id == state.id).values(
                last_uid=new[-1], acked_uid=new[-1], updated_at=self.clock.now()))
        state.last_uid = state.acked_uid = new[-1]

    def _backlog_filter(self, client: IMAPClient, state: ImapFolder,
                        new: list[int]) -> set[int]:
        backlog = [u for u in new if u <= state.backlog_until]
        if not backlog or self.account.import_existing == "all":
            return set(new)
        fresh = {u for u in new if u > state.backlog_until}
        if self.account.import_existing == "since" and self.account.import_since:
            since = client.search(["UID", f"{backlog[0]}:{backlog[-1]}",
                                   "SINCE", self.account.import_since])
            return fresh | (set(since) & set(backlog))
        return fresh

    def _store_batch(self, client: IMAPClient, state: ImapFolder, uids: list[int],
                     result: PassResult) -> int:
        fetched = client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        got = [_Fetched(uid, bytes(fetched[uid][b"BODY[]"]),
                        fetched[uid].get(b"INTERNALDATE"))
               for uid in uids if uid in fetched and b"BODY[]" in fetched[uid]]
        now = self.clock.now()
        digests = {f.uid: hashlib.sha256(f.data).hexdigest() for f in got}
        with self._writing() as session:
            known = self._already_stored(session, set(digests.values()))
            arrivals = []
            for f in got:
                if digests[f.uid] in known:
                    result.skipped += 1
                    continue
                when = f.internaldate.astimezone(timezone.utc) if f.internaldate else now
                arrivals.append(Arrival(
                    data=f.data, channel=Channel.IMAP, received_at=min(when, now),
                    source=source_of(self.account.name, self.folder.name, state.uidvalidity,
                                     f.uid),
                    no_autoreply=f.uid <= state.backlog_until,
                    update_only=self.folder.update_only))
                known.add(digests[f.uid])  # the same bytes twice in one folder: once
            ids = store_arrivals(session, arrivals)
            session.execute(update(ImapFolder).where(ImapFolder.id == state.id).values(
                last_uid=uids[-1], acked_uid=state.acked_uid, updated_at=now))
        # Committed: only now may the server forget the message.
        state.last_uid = uids[-1]
        result.stored += len(ids)
        if ids and self.on_stored:
            self.on_stored(ids)
        result.acked += self._act(client, [f.uid for f in got])
        # Known done; written with the next batch's commit or the end of the pass. A crash
        # before that only repeats the action, which is harmless.
        state.acked_uid = uids[-1]
        return len(uids)

    def _already_stored(self, session: Session, digests: set[str]) -> set[str]:
        """Digests of messages this folder has given us before (a rescan, or a crash between
        the server's answer and our commit on a server without UIDPLUS semantics)."""
        if not digests:
            return set()
        rows = session.scalars(
            select(RawMessage.sha256).where(RawMessage.sha256.in_(digests), exists().where(
                Inbound.raw_id == RawMessage.id, Inbound.channel == Channel.IMAP,
                Inbound.source.startswith(self.prefix, autoescape=True))))
        return set(rows)

    def _set_acked(self, state: ImapFolder, uid: int) -> None:
        """Record that the server-side action is done up to `uid`."""
        if uid <= state.acked_uid:
            return
        with self._writing() as session:
            session.execute(update(ImapFolder).where(ImapFolder.id == state.id)
                            .values(acked_uid=uid))
        state.acked_uid = uid

    # -- what happens on the server -----------------------------------------------------------
    def _stored_between(self, client: IMAPClient, after: int, upto: int) -> list[int]:
        """UIDs in (after, upto] that a crash may have left without their action: those
        still in the folder and within the size limit (oversize mail was never stored and
        must not be flagged or deleted)."""
        return client.search(["UID", f"{after + 1}:{upto}", "SMALLER", self.max_size + 1])

    def _act(self, client: IMAPClient, uids: Sequence[int]) -> int:
        if not uids:
            return 0
        mode = self.account.after_store
        if mode == "seen":
            client.add_flags(uid_set(uids), [SEEN], silent=True)
        elif mode == "move":
            self._move(client, uids, self.account.move_to or "")
        else:
            client.add_flags(uid_set(uids), [DELETED], silent=True)
            self._expunge(client, uids)
        return len(uids)

    def _move(self, client: IMAPClient, uids: Sequence[int], folder: str) -> None:
        self._ensure_folder(client, folder)
        if client.has_capability("MOVE"):
            client.move(uid_set(uids), folder)
            return
        client.copy(uid_set(uids), folder)
        client.add_flags(uid_set(uids), [DELETED], silent=True)
        self._expunge(client, uids)

    @staticmethod
    def _expunge(client: IMAPClient, uids: Sequence[int]) -> None:
        # UID EXPUNGE (UIDPLUS) removes only our messages; a plain EXPUNGE would also remove
        # what someone else marked deleted in this folder.
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uid_set(uids))
        else:
            client.expunge()

    def _ensure_folder(self, client: IMAPClient, folder: str) -> None:
        if not client.folder_exists(folder):
            try:
                client.create_folder(folder)
            except IMAPClient.Error:
                if not client.folder_exists(folder):  # created by someone else meanwhile: fine
                    raise

    def _oversize(self, client: IMAPClient, uid: int, size: int) -> None:
        where = self.account.quarantine_folder
        log.warning("%s: UID %s has %s bytes, over the limit of %s (smtp.max_message_size): "
                    "not stored; %s", self.label, uid, size, self.max_size,
                    f"moved to {where}" if where else "left in the folder")
        if where:
            self._move(client, [uid], where)

    def _copy_quarantined(self, client: IMAPClient) -> int:
        """Copy what processing quarantined (from this account) into the quarantine folder."""
        folder = self.account.quarantine_folder
        assert folder is not None
        with self._read_session() as session:
            rows = session.execute(
                select(Inbound.id, Inbound.reason, RawMessage.data).join(RawMessage)
                .where(Inbound.channel == Channel.IMAP,
                       Inbound.status == InboundStatus.QUARANTINED,
                       Inbound.source.startswith(f"imap://{self.account.name}/",
                                                 autoescape=True),
                       ~exists().where(ImapQuarantineCopy.inbound_id == Inbound.id))
                .order_by(Inbound.id).limit(50)).all()
        if not rows:
            return 0
        self._ensure_folder(client, folder)
        for row in rows:
            client.append(folder, quarantine_copy(row.data, row.reason or "", row.id))
            with self._writing() as session:
                session.add(ImapQuarantineCopy(inbound_id=row.id, copied_at=self.clock.now()))
            log.info("%s: inbound %s quarantined (%s): copy put in %s", self.account.name,
                     row.id, (row.reason or "").splitlines()[0][:120] if row.reason else "",
                     folder)
        return len(rows)

    def _report(self, done: int, total: int) -> None:
        if self.progress:
            self.progress(f"{self.label}: {done}/{total}")

