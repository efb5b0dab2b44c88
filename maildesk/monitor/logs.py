"""The log's two forms (`logging.format`): text for people, or one JSON object per line for a
log collector: time (ISO 8601 UTC, milliseconds), level, component (smtp, imap, processor,
outbound, timers, metrics, daemon), logger, message, and what the call site knows of the mail:
`inbound_id`, `ticket`, `message_id`, `outbox_id`... (passed with `extra=`). A traceback is
the `exception` field, never lines of its own."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
FORMATS = ("text", "json")

# The attributes every LogRecord has: anything else on a record came in through `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}

# The daemon's worker threads (app.py, ingress/imap_service.py) name the component best...
_THREADS = {"processor": "processor", "outbound": "outbound", "timers": "timers",
            "metrics": "metrics", "parse-feed": "processor"}
# ...else the logger: longest prefix first.
_LOGGERS = (("maildesk.ingress.smtp", "smtp"), ("maildesk.ingress.limits", "smtp"),
            ("maildesk.ingress.authcheck", "smtp"), ("maildesk.ingress.imap", "imap"),
            ("maildesk.process", "processor"), ("maildesk.outbound", "outbound"),
            ("maildesk.effects.timers", "timers"), ("maildesk.monitor", "metrics"),
            ("mail.log", "smtp"), ("maildesk.store", "smtp"))


def component(record: logging.LogRecord) -> str:
    thread = record.threadName or ""
    if thread in _THREADS:
        return _THREADS[thread]
    if thread.startswith("imap "):
        return "imap"
    if thread.startswith("outbox-db"):
        return "outbound"
    for prefix, name in _LOGGERS:
        if record.name == prefix or record.name.startswith(prefix + "."):
            return name
    return "daemon"


def _iso(created: float) -> str:
    moment = datetime.fromtimestamp(created, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _iso(record.created), "level": record.levelname.lower(),
                               "component": component(record), "logger": record.name,
                               "message": record.getMessage()}
        for key, value in record.__dict__.items():
            if (key not in _STANDARD and not key.startswith("_") and key not in out
                    and value is not None):   # what the call site does not know is left out
                out[key] = _plain(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", level: str | int = "info") -> None:
    """Send the log to stderr in `fmt` at `level`, in place of the handler set up here before
    (the command line sets the text form first; `serve` applies maildesk.yaml's once loaded).
    Like logging.basicConfig, it leaves alone a logging set up by someone else (a test
    harness, a program calling the commands)."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "maildesk", False)]
    if root.handlers and not ours:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.maildesk = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        # Python's warnings and the uncaught errors of threads as records too, not raw text.
        logging.captureWarnings(True)
        threading.excepthook = _thread_exception
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO) if isinstance(level, str) else level)


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread else "?"
    logging.getLogger("maildesk").error(
        "uncaught error in thread %s", thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
