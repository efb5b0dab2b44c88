"""Deliver outgoing mail into one local Maildir (the embedded default transport).

Each message becomes one file: written to tmp/ and fsynced, renamed into new/ (atomic), then the
directory is fsynced, so a crash leaves either no file in new/ or the whole message. The envelope
is kept in two prepended header lines, `Return-Path:` and `X-Maildesk-Envelope-To:`.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from maildesk.outbound.transport import (DeliveryResult, PermanentDeliveryError,
                                         TemporaryDeliveryError)

_SUBDIRS = ("tmp", "new", "cur")


def _maildir_hostname() -> str:
    """The host name as the Maildir spec wants it in a file name: no '/' nor ':'."""
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072") or "localhost"


def _check_address(address: str) -> None:
    if any(c in address for c in "\r\n\0"):
        raise PermanentDeliveryError(f"envelope address contains a line break: {address!r}")


class MaildirTransport:
    """Writes each message once into `path` (cur/ new/ tmp/ are created when missing)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._counter = itertools.count(1)
        self._hostname = _maildir_hostname()
        self._ensure_dirs()

    def _ensure_dirs(self) -> None:
        for sub in _SUBDIRS:
            (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def _unique_name(self) -> str:
        return f"{time.time_ns()}.P{os.getpid()}Q{next(self._counter)}.{self._hostname}"

    def deliver(self, envelope_from: str, recipients: Sequence[str],
                message: bytes) -> DeliveryResult:
        recipients = tuple(recipients)
        if not recipients:
            raise PermanentDeliveryError("no recipients")
        for address in (envelope_from, *recipients):
            _check_address(address)
        eol = b"\r\n" if message.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
        head = (b"Return-Path: <" + envelope_from.encode("utf-8") + b">" + eol
                + b"X-Maildesk-Envelope-To: " + ", ".join(recipients).encode("utf-8") + eol)
        try:
            self._write(head + message)
        except OSError as exc:
            raise TemporaryDeliveryError(
                f"cannot write to Maildir {self.path}: {exc.strerror or exc}") from exc
        return DeliveryResult(accepted=recipients)

    def _write(self, data: bytes) -> None:
        try:
            self._write_once(data)
        except FileNotFoundError:   # the Maildir was moved away: make it again, once
            self._ensure_dirs()
            self._write_once(data)

    def _write_once(self, data: bytes) -> None:
        name = self._unique_name()
        tmp = self.path / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path / "new" / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path / "new", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Nothing is held open between deliveries."""
