"""Run parse_message in a child process with a time and a memory bound.

A pathological message (an HTML part that makes the converter crawl, a bomb of nested parts)
must not stall the queue behind it: the child is killed at the time limit, runs under an
address-space limit, and the message is quarantined with the reason. The child is reused for
the next message, so the cost per message is one pipe round trip.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from multiprocessing.connection import Connection

from maildesk.analyzer import Analysed, index_stems
from maildesk.pipeline.parse import ParsedMessage, Unparseable, parse_message
from maildesk.pipeline.routing import text_language

log = logging.getLogger(__name__)

_READY = b"ready"
STARTUP_SECONDS = 120  # starting the child imports the parser; not part of the parse bound


def _analysed(result: ParsedMessage | Unparseable) -> ParsedMessage | Unparseable:
    """The parsed message with its search stems and language: analysing the text is pure and
    cost about a tenth of processing the mail, which this child does on another core."""
    if not isinstance(result, ParsedMessage):
        return result
    subject, text = result.subject, result.text
    return replace(result, analysed=Analysed(subject, text, index_stems(subject, text),
                                             text_language(subject, text)))


def _worker(conn: Connection, memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):  # some sandboxes forbid it; the time bound still holds
        pass
    conn.send_bytes(_READY)
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):  # the daemon stopped, or died (kill -9): so do we, quietly
            return
        try:
            result: ParsedMessage | Unparseable = _analysed(parse_message(raw))
        except MemoryError:
            result = Unparseable(f"parsing needed more than {memory_mb} MB of memory "
                                 "(processing.parse_memory_mb)")
        except Exception as exc:  # parse_message should never raise; quarantine if it does
            result = Unparseable(f"the parser failed: {type(exc).__name__}: {exc}")
        try:
            conn.send(result)
        except MemoryError:
            conn.send(Unparseable(f"the parsed message needed more than {memory_mb} MB"))
        except OSError:   # the daemon died while we parsed
            return


@contextmanager
def _main_not_inherited() -> Iterator[None]:
    """While a child is started: the parent's __main__ not named to it. multiprocessing has a
    new child run the parent's main script (or module) again, as its __mp_main__; for the
    daemon that is the console script, which imports the whole CLI: half a second each time
    a parse child starts, for nothing (its target and arguments are this module's), as long as
    the interpreter finds maildesk by itself (ParseSandbox falls back when it does not)."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__.pop(k) for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__spec__ = None   # multiprocessing asks for it; None names no module
    try:
        yield
    finally:
        del main.__spec__
        main.__dict__.update(saved)


# What the forkserver imports before it forks parse children: the parser, once.
PRELOAD = ["maildesk.pipeline.isolate"]


def start_parse_server() -> None:
    """Start the process parse children are forked from, now: it imports the parser (half a
    second or more) on another core while the daemon goes on starting, instead of when the
    processor first needs a child. Returns without waiting for it."""
    from multiprocessing import forkserver

    mp.get_context("forkserver").set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


class ParseSandbox:
    """A reusable child process that parses one message at a time under limits."""

    def __init__(self, *, timeout: float, memory_mb: int):
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD)
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        # Children start without the parent's main script (`_main_not_inherited`) unless that
        # script is what makes maildesk importable: a launcher run with `python -S` that adds
        # the site directory itself, or one found to be so when a child could not start.
        self._without_main = not sys.flags.no_site

    def _start(self) -> Connection:
        if self._without_main:
            try:
                return self._launch(inherit_main=False)
            except (RuntimeError, EOFError, OSError):
                log.warning("the parse child did not start without the daemon's main script; "
                            "it is started with it from now on (slower)")
                self._without_main = False
        return self._launch(inherit_main=True)

    def _launch(self, *, inherit_main: bool) -> Connection:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker, args=(child, self.memory_mb),
                                       name="maildesk-parse", daemon=True)
        with nullcontext() if inherit_main else _main_not_inherited():
            self._proc.start()
        child.close()
        self._conn = parent
        # The time bound is for parsing, not for starting the interpreter: wait for the child.
        try:
            ready = parent.poll(STARTUP_SECONDS) and parent.recv_bytes() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._kill()
            raise RuntimeError("the parser process did not start")
        return parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def start(self) -> None:
        """Start the child now (it takes a while) rather than for the first message."""
        if self._conn is None:
            self._start()

    def parse(self, raw: bytes) -> ParsedMessage | Unparseable:
        conn = self._conn or self._start()
        try:
            conn.send_bytes(raw)
            if conn.poll(self.timeout):
                return conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            code = self._proc.exitcode if self._proc else None
            self._kill()
            return Unparseable(f"the parser process died (exit code {code}); the message may need "
                               f"more than {self.memory_mb} MB (processing.parse_memory_mb)")
        self._kill()
        return Unparseable(f"parsing took longer than {self.timeout:g} s "
                           "(processing.parse_timeout_seconds)")

    def close(self) -> None:
        self._kill()
