"""Routing a parsed message: the MailFacts the rules look at, and what settles the rules' outcome
(postmaster@, the line's SLA policy). Pure."""

from __future__ import annotations

import re
from dataclasses import replace
from collections.abc import Sequence
from typing import TYPE_CHECKING
from datetime import datetime

from maildesk.addresses import is_postmaster
from maildesk.pipeline.parse import ParsedMessage
from maildesk.rules.engine import MailFacts, Routing

if TYPE_CHECKING:
    from maildesk.config.model import Settings

NO_ROUTING = Routing()
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def detect_language(message: ParsedMessage) -> str:
    """Content-Language when the mail declares one, else 'ru' for mostly Cyrillic text,
    else 'en'."""
    if message.content_language:
        return message.content_language.split("-")[0].lower()
    known = message.analysed.of(message.subject, message.text) if message.analysed else None
    return known.language if known is not None else text_language(message.subject, message.text)


def text_language(subject: str, text: str) -> str:
    """'ru' for mostly Cyrillic text, else 'en'."""
    sample = f"{subject}\n{text[:4000]}"
    letters = sum(map(str.isalpha, sample))   # not a generator: no Python frame per character
    return "ru" if letters and len(_CYRILLIC.findall(sample)) * 3 > letters else "en"


def mail_facts(message: ParsedMessage, sender: str, sender_name: str, *,
               envelope_to: Sequence[str], at: datetime | None) -> MailFacts:
    """What the rules see of a message that arrived at `at` for `envelope_to`."""
    return MailFacts(
        sender=sender, sender_name=sender_name,
        to=tuple(a.address for a in message.to if a.address),
        cc=tuple(a.address for a in message.cc if a.address),
        envelope_to=tuple(r.lower() for r in envelope_to),
        subject=message.subject, body=message.text, headers=message.headers,
        attachments=tuple((a.filename, a.content_type) for a in message.attachments),
        language=detect_language(message), at=at)


def with_line_policy(routing: Routing, settings: Settings,
                     envelope_to: Sequence[str] = ()) -> Routing:
    """Mail to postmaster@ goes to `tickets.postmaster_line` when set; a ticket no rule gave
    an SLA policy takes its line's (lines.yaml `sla_policy`)."""
    if settings.postmaster_line and any(
            is_postmaster(r, frozenset(settings.support_addresses)) for r in envelope_to):
        routing = replace(routing, line=settings.postmaster_line,
                          matched=(*routing.matched, "tickets.postmaster_line"))
    line = settings.line(routing.line)
    if routing.sla_policy is None and line is not None and line.sla_policy:
        return replace(routing, sla_policy=line.sla_policy)
    return routing
