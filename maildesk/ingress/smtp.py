"""The SMTP listener: accept mail for our addresses only, and say 250 only once it is stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from maildesk.clock import Clock
from maildesk.config.model import Settings
from maildesk.db.models import Channel
from maildesk.store.raw import Arrival, GroupCommitWriter

log = logging.getLogger(__name__)

# Every reply this listener gives, in one place.
OK = "250 2.1.5 OK"
ACCEPTED = "250 2.0.0 OK: message stored"
NO_SUCH_ADDRESS = "550 5.1.1 <{}>: no such support address here (relaying denied)"
STORAGE_FAILED = "451 4.3.0 The message could not be stored; please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


def accepts(address: str, support_addresses: frozenset[str]) -> bool:
    """A support address, or its +detail form (reply tokens are +detail forms)."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not local:
        return False
    return f"{local.partition('+')[0]}@{domain}" in support_addresses


class SupportHandler:
    """aiosmtpd handler: RCPT filtering, durable DATA."""

    def __init__(self, settings: Callable[[], Settings], writer: GroupCommitWriter, clock: Clock):
        self._settings = settings
        self._writer = writer
        self._clock = clock
        self.in_flight = 0
        self.closing = False

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not accepts(address, frozenset(self._settings().support_addresses)):
            log.info("refused RCPT %r from %s", address, session.peer)
            return NO_SUCH_ADDRESS.format(address)
        envelope.rcpt_tos.append(address)
        return OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.closing:
            return SHUTTING_DOWN
        data = envelope.original_content
        if data is None:
            data = envelope.content if isinstance(envelope.content, bytes) else b""
        # "" is the null reverse path (MAIL FROM:<>): bounces and auto-replies; never answered.
        mail_from = "" if envelope.mail_from in (None, "", "<>") else envelope.mail_from
        arrival = Arrival(data=bytes(data), channel=Channel.SMTP, received_at=self._clock.now(),
                          mail_from=mail_from, rcpt_to=tuple(envelope.rcpt_tos),
                          source=f"smtp:{session.peer[0] if session.peer else '?'}")
        self.in_flight += 1
        try:
            inbound_id = await asyncio.wrap_future(self._writer.submit(arrival))
        except Exception as exc:
            log.warning("451 for a message from %s: %s", mail_from, exc)
            return STORAGE_FAILED
        finally:
            self.in_flight -= 1
        log.info("stored inbound %s (%d bytes) from %s", inbound_id, len(data), mail_from)
        return ACCEPTED


def make_smtp_factory(handler: SupportHandler, settings: Settings) -> Callable[[], Any]:
    def factory() -> SMTP:
        return SMTP(handler, data_size_limit=settings.smtp.max_message_size, enable_SMTPUTF8=True,
                    decode_data=False, hostname=settings.domain,
                    ident="maildesk ESMTP")
    return factory
