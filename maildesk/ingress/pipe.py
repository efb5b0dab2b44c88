"""`maildesk ingest`: one message from an MTA pipe (like rt-mailgate), with sysexits codes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from maildesk.clock import Clock
from maildesk.db.models import Channel
from maildesk.db.session import is_retryable
from maildesk.store.raw import Arrival, store_one

log = logging.getLogger(__name__)

EX_OK = 0
EX_DATAERR = 65     # the message is refused for good: the MTA bounces it
EX_TEMPFAIL = 75    # try again later: the MTA keeps it queued


@dataclass(frozen=True)
class IngestResult:
    code: int
    message: str
    inbound_id: int | None = None


def ingest_bytes(data: bytes, make_session, clock: Clock, *, max_size: int,  # type: ignore[no-untyped-def]
                 mail_from: str | None = None, rcpt_to: tuple[str, ...] = ()) -> IngestResult:
    if not data.strip():
        return IngestResult(EX_DATAERR, "refused: the message is empty")
    if len(data) > max_size:
        return IngestResult(EX_DATAERR, f"refused: the message has {len(data)} bytes, over the "
                                        f"limit of {max_size} (smtp.max_message_size)")
    arrival = Arrival(data=data, channel=Channel.PIPE, received_at=clock.now(),
                      mail_from=mail_from, rcpt_to=rcpt_to, source="pipe")
    try:
        inbound_id = store_one(make_session, arrival)
    except Exception as exc:
        if is_retryable(exc):
            return IngestResult(EX_TEMPFAIL, f"temporary failure, try again later: {exc}")
        log.exception("storing a piped message failed")
        return IngestResult(EX_TEMPFAIL, f"could not store the message: {exc}")
    return IngestResult(EX_OK, f"stored as inbound {inbound_id}", inbound_id)
