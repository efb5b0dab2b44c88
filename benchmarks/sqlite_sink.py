"""The baseline of smtp_ingest.py: a bare aiosmtpd listener that commits every message to SQLite.

Same aiosmtpd SMTP class and options as maildesk's listener; handle_DATA inserts the bytes and
the envelope into one table (WAL, synchronous=FULL) and commits, one commit per message, in a
worker thread so the event loop keeps serving; 250 only after the commit. Run as its own
process (its own GIL, like `maildesk serve`): prints "sink serving" when ready, SIGTERM stops it.

    python benchmarks/sqlite_sink.py --port 2526 --db /tmp/sink.db
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP, Envelope, Session

from common import serve_sink


class SinkHandler:
    def __init__(self, path: str):
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS mail (id INTEGER PRIMARY KEY, "
                         "mail_from TEXT, rcpt_to TEXT NOT NULL, data BLOB NOT NULL)")
        # One connection, one writer thread: each message is its own transaction and commit.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer")

    def _store(self, mail_from: str | None, rcpt_to: list[str], data: bytes) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("INSERT INTO mail (mail_from, rcpt_to, data) VALUES (?, ?, ?)",
                         (mail_from, json.dumps(rcpt_to), data))
        self._db.execute("COMMIT")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._store, envelope.mail_from, list(envelope.rcpt_tos),
                bytes(data))
        except Exception as exc:
            return f"451 4.3.0 not stored: {exc}"
        return "250 2.0.0 OK: message stored"

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._db.close()


async def main(port: int, path: str) -> None:
    handler = SinkHandler(path)
    try:
        await serve_sink(handler, port)
    finally:
        handler.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True)
    args = ap.parse_args()
    asyncio.run(main(args.port, args.db))
