"""The JSON log form: one object per line, the mail's ids from `extra=`, tracebacks as a
field, the component from the thread or the logger."""

from __future__ import annotations

import json
import logging
import sys

from maildesk.monitor.logs import JsonFormatter, component, configure_logging


def record(name: str = "maildesk", thread: str = "MainThread", exc: bool = False,
           **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            exc_info = sys.exc_info()
    r = logging.LogRecord(name, logging.WARNING, __file__, 1, "inbound %s: %s", (7, "done"),
                          exc_info)
    r.threadName = thread
    r.__dict__.update(extra)
    return r


def test_one_line_with_the_fields_and_the_extras():
    line = JsonFormatter().format(record(thread="processor", inbound_id=7, ticket=1000,
                                         message_id=None))
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "inbound 7: done" and out["level"] == "warning"
    assert out["component"] == "processor" and out["logger"] == "maildesk"
    assert out["inbound_id"] == 7 and out["ticket"] == 1000
    assert "message_id" not in out          # not known: left out
    assert out["time"].endswith("Z") and len(out["time"]) == len("2026-11-23T10:00:00.123Z")


def test_a_traceback_is_a_field_not_lines():
    line = JsonFormatter().format(record(exc=True))
    assert "\n" not in line
    out = json.loads(line)
    assert "ValueError: bad\nvalue" in out["exception"] and "Traceback" in out["exception"]


def test_the_component_comes_from_the_thread_then_the_logger():
    assert component(record(thread="imap support/INBOX")) == "imap"
    assert component(record(thread="outbox-db_0")) == "outbound"
    assert component(record("maildesk.ingress.smtp")) == "smtp"
    assert component(record("maildesk.effects.timers")) == "timers"
    assert component(record("maildesk.effects.apply", thread="timers")) == "timers"
    assert component(record("maildesk")) == "daemon"


def test_a_logging_set_up_by_someone_else_is_left_alone():
    root = logging.getLogger()
    foreign = logging.NullHandler()
    saved = root.handlers[:], root.level
    root.handlers[:] = [foreign]
    try:
        configure_logging("json", "debug")
        assert root.handlers == [foreign]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
