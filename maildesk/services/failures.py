"""Failures an operator can act on, each said in one line: what failed, where, and what to do.

`describe(exc, settings)` turns whatever a command raised into a `Failure`: the line and the exit
status (sysexits(3) where one fits). The command line prints that line instead of a traceback
(`--debug` or MAILDESK_DEBUG=1 shows the traceback instead). `OperatorError` is for the failures
maildesk recognises where they happen (a port in use, a schema behind); the rest are recognised
here by their kind: a database that cannot be reached or has no schema yet, a path that cannot
be written. Anything else is a bug, said as one line too, with the way to its traceback.

Exit statuses: 1 a request or configuration that cannot be used, 2 a usage error, 65 a message
refused (`ingest`), 69 a service unavailable (the database, the SMTP port), 70 an internal
error, 73 a file or directory that cannot be created, 75 try again later (`ingest`, `poll`),
77 permission denied, 78 the database schema is missing or behind (`maildesk db upgrade`).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maildesk.db.outage import is_missing_schema, is_unreachable, reason, redact_url

if TYPE_CHECKING:
    from maildesk.config import Settings

EX_GENERAL = 1
EX_USAGE = 2
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

DEBUG_HINT = "run with --debug (or MAILDESK_DEBUG=1) for the traceback"


@dataclass(frozen=True)
class Failure:
    """What to print (one line) and the exit status."""

    message: str
    code: int


class OperatorError(Exception):
    """A failure the operator can act on; str() is its one line, `code` the exit status."""

    def __init__(self, message: str, code: int = EX_GENERAL):
        super().__init__(message)
        self.code = code


def describe(exc: BaseException, settings: Settings | None = None) -> Failure:
    """The one line and exit status for `exc`, raised by a command running with `settings`
    (None when they were not loaded yet)."""
    if isinstance(exc, OperatorError):
        return Failure(str(exc), exc.code)
    if is_unreachable(exc):
        return _unreachable(exc, settings)
    if is_missing_schema(exc) and settings is not None:
        return _schema(exc, settings)
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename:
        return path_failure(exc, settings)
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        return Failure(f"cannot listen: {(exc.strerror or str(exc)).lower()} ({exc})",
                       EX_UNAVAILABLE)
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return Failure(f"internal error: {what}; {DEBUG_HINT}", EX_SOFTWARE)


def _config_note(settings: Settings | None, key: str) -> str:
    return f" ({key} in {settings.config_path})" if settings is not None else f" ({key})"


def _unreachable(exc: BaseException, settings: Settings | None) -> Failure:
    url = settings.database.url if settings is not None else ""
    note = _config_note(settings, "database.url")
    if url.startswith("sqlite"):
        return _sqlite_unusable(url, reason(exc), note)
    where = f" {redact_url(url)}" if url else ""
    return Failure(f"cannot connect to the database{where}: {reason(exc)}; check that the "
                   f"server is running and the URL is right{note}", EX_UNAVAILABLE)


def _sqlite_unusable(url: str, said: str, note: str) -> Failure:
    """SQLite says only "unable to open database file": find out what is wrong with the path."""
    path = Path(url.split(":///", 1)[1]) if ":///" in url else None
    if path is not None:
        blocked = _unwritable_ancestor(path.parent)
        if blocked is not None:
            problem, code = blocked
            return Failure(f"cannot open the SQLite database {path}: {problem}{note}", code)
    return Failure(f"cannot open the SQLite database {path or url}: {said}{note}",
                   EX_CANTCREAT)


def _unwritable_ancestor(directory: Path) -> tuple[str, int] | None:
    """Why files cannot be made in `directory`, if they cannot: the first missing part, a part
    that is not a directory, or no permission."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory", EX_CANTCREAT
    if probe != directory:
        return f"{directory} does not exist", EX_CANTCREAT
    if not os.access(directory, os.W_OK | os.X_OK):
        return (f"permission denied: the directory {directory} is not writable for this user",
                EX_NOPERM)
    return None


def _schema(exc: BaseException, settings: Settings) -> Failure:
    """A table or column missing: say whether the schema is missing or behind."""
    from maildesk.services.database import SchemaError, schema_error

    try:
        error = schema_error(settings.database.url)
    except Exception:  # cannot even read the version: say what the query said
        error = None
    if isinstance(error, SchemaError):
        return Failure(str(error), error.code)
    return Failure(f"the database schema does not match this maildesk ({reason(exc)}); "
                   "run `maildesk db upgrade`", EX_CONFIG)


_NOPERM = (errno.EACCES, errno.EPERM)


def path_failure(exc: OSError, settings: Settings | None = None) -> Failure:
    """A file or directory that cannot be made or written, named with the setting behind it."""
    name = str(exc.filename or "")
    said = (exc.strerror or str(exc)).lower()
    note = _path_setting(Path(name), settings) if name else ""
    if exc.errno in _NOPERM:
        return Failure(f"permission denied: {name or said}{note}; make it writable for the user "
                       "maildesk runs as, or choose another path", EX_NOPERM)
    return Failure(f"cannot create {name}: {said}{note}" if name else f"cannot create: {said}",
                   EX_CANTCREAT)


def _path_setting(path: Path, settings: Settings | None) -> str:
    """Which setting names `path` (or a directory above it), as ` (key in maildesk.yaml)`."""
    if settings is None:
        return ""
    candidates: list[tuple[str, Path]] = [
        ("outbound.maildir", settings.outbound.maildir),
        ("security.secret_file", settings.security.secret_file),
        ("paths.templates", settings.templates_dir),
        ("paths.var", settings.var_dir)]
    url = settings.database.url
    if url.startswith("sqlite") and ":///" in url:
        candidates.insert(0, ("database.url", Path(url.split(":///", 1)[1])))
    for key, configured in candidates:
        try:
            if path == configured or configured in path.parents or path in configured.parents:
                return _config_note(settings, key)
        except TypeError:  # a setting that is not a path
            continue
    return ""


def listen_failure(host: str, port: int, exc: OSError, settings: Settings) -> OperatorError:
    """The SMTP listener cannot have its address: which one, and the keys that set it."""
    note = f"smtp.host and smtp.port in {settings.config_path}"
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return OperatorError(f"cannot listen for SMTP on {where}: the address is already in use "
                             f"(another maildesk, or an MTA?); stop it or change {note}",
                             EX_UNAVAILABLE)
    if exc.errno in _NOPERM:
        return OperatorError(f"cannot listen for SMTP on {where}: permission denied (ports "
                             f"below 1024 need root or CAP_NET_BIND_SERVICE); change {note}",
                             EX_NOPERM)
    if exc.errno == errno.EADDRNOTAVAIL:
        return OperatorError(f"cannot listen for SMTP on {where}: no such address on this "
                             f"machine; change {note}", EX_UNAVAILABLE)
    return OperatorError(f"cannot listen for SMTP on {where}: "
                         f"{(exc.strerror or str(exc)).lower()}; check {note}", EX_UNAVAILABLE)
