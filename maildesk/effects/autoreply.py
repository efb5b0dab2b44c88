"""The acknowledgement of a new ticket: its template's context, the mail, its outbox row."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from maildesk.actions import Acknowledge
from maildesk.addresses import solved_address
from maildesk.config.model import Settings
from maildesk.db.models import Role, Ticket
from maildesk.domain import EventKind
from maildesk.kb.model import KnowledgeBase
from maildesk.effects.events import Gathered, event_row
from maildesk.effects.outgoing import client_reply_address, outgoing_message, queue_outgoing
from maildesk.outbound.compose import Composer, build_message, clean_header, new_message_id
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.subject import format_tag
from maildesk.sla.policy import Deadlines


@dataclass(frozen=True)
class ComposedAutoreply:
    message_id: str
    subject: str
    to_address: str
    language: str
    text: str
    has_html: bool
    data: bytes
    suggested: tuple[str, ...] = ()     # slugs of the articles it names


def autoreply_context(*, ticket: dict[str, object], tag: str, client_name: str,
                      client_address: str, instance: str, reply_address: str,
                      deadlines: Deadlines | None, client: ParsedMessage,
                      suggestions: list[dict[str, object]] | None = None) -> dict[str, object]:
    """What an autoreply template sees (also for `rules test`)."""
    zone = deadlines.timezone if deadlines else None

    def shown(value: datetime | None) -> datetime | None:
        return value.astimezone(zone) if value is not None else None

    return {
        "ticket": ticket, "tag": tag, "client_name": client_name,
        "client_address": client_address, "instance": instance, "reply_address": reply_address,
        "deadlines": {"first_response": shown(deadlines.first_response if deadlines else None),
                      "resolution": shown(deadlines.resolution if deadlines else None)},
        # Mail that came outside working hours: when work on it starts.
        "resumes_at": shown(deadlines.resumes_at if deadlines else None),
        "client_deadlines": _in_client_zone(client, deadlines),
        # Articles that may already answer the mail: {title, url} or {title, text}.
        "suggestions": suggestions or [],
    }


def suggested_articles(suggestions: Sequence[Mapping[str, Any]], kb: KnowledgeBase,
                       faq_url: str | None,
                       solved: Callable[[int], str | None] | None = None,
                       tag: str = "") -> list[dict[str, object]]:
    """What the acknowledgement shows of each suggested article: a link into the published
    FAQ (`kb build`'s <lang>/<slug>.html) or, with no FAQ published, the article's text; and
    where the client says "this solved it" (`solved(n)`: the address for the nth, from 1)."""
    shown: list[dict[str, object]] = []
    for n, s in enumerate(suggestions, start=1):
        article = kb.get(str(s["slug"]), str(s["language"]))
        if article is None:   # gone in a reload since the decision
            continue
        address = solved(n) if solved is not None else None
        item: dict[str, object] = {
            "title": article.title, "slug": article.slug, "url": None, "text": None,
            # Plain text shows the bare mailto (mail clients make it a link); HTML's also
            # fills in the subject and a line of text, so the client only presses Send.
            "solved_address": address,
            "solved_mailto": solved_mailto(address, tag, article.title, article.language)
            if address else None}
        if faq_url:
            item["url"] = f"{faq_url.rstrip('/')}/{article.language}/{article.slug}.html"
        else:
            item["text"] = article.body.strip()
        shown.append(item)
    return shown


# The one click's mail, in the article's language (the acknowledgement's).
_SOLVED_MAIL = {"ru": ("Решено", "Статья «{title}» решила мою проблему."),
                "en": ("Solved", "The article \"{title}\" solved my problem.")}


def solved_mailto(address: str, tag: str, title: str, language: str) -> str:
    """`mailto:` the solved address with a subject and body (RFC 6068, UTF-8 percent-encoded)."""
    word, body = _SOLVED_MAIL.get(language, _SOLVED_MAIL["en"])
    subject = f"{tag} {word}".strip()
    return (f"mailto:{address}?subject={quote(subject, safe='')}"
            f"&body={quote(body.format(title=title), safe='')}")


def solved_address_for(ticket: Ticket) -> Callable[[int], str | None]:
    """The client's "this solved it" address of the nth article, or None where the address
    would be too long for a mailbox's local part (RFC 5321: 64 octets)."""
    def address(n: int) -> str | None:
        if not ticket.reply_token:
            return None
        try:
            return solved_address(ticket.mailbox, ticket.number, ticket.reply_token, n)
        except ValueError:
            return None
    return address


def _in_client_zone(client: ParsedMessage, deadlines: Deadlines | None) -> dict | None:
    """The deadlines at the UTC offset of the client's own Date header, when it differs from
    the calendar's (a client in Novosibirsk reads 21:00 for Moscow's 17:00); None otherwise."""
    if deadlines is None or deadlines.first_response is None:
        return None
    try:
        sent = parsedate_to_datetime(client.header("date") or "")
    except (TypeError, ValueError, IndexError):
        return None
    offset = sent.utcoffset() if sent is not None and sent.tzinfo else None
    due = deadlines.first_response
    if offset is None or offset == due.astimezone(deadlines.timezone).utcoffset() \
            or abs(offset) > timedelta(hours=14):
        return None
    zone = dt_timezone(offset)
    return {"first_response": due.astimezone(zone),
            "resolution": deadlines.resolution.astimezone(zone) if deadlines.resolution else None,
            "zone": format_offset(offset)}


def format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def compose_autoreply(ack: Acknowledge, deadlines: Deadlines | None, ticket: Ticket,
                      client: ParsedMessage, settings: Settings,
                      composer: Composer, *, now: datetime) -> ComposedAutoreply:
    """Render the acknowledgement of a new ticket into the bytes to send (no database)."""
    tag = format_tag(settings.ticket_tag, ticket.number)
    context = autoreply_context(
        ticket={"number": ticket.number, "subject": ticket.subject, "priority": ticket.priority,
                "line": ticket.line},
        tag=tag, client_name=clean_header(ack.to_name, 200),
        client_address=ack.to_address, instance=settings.instance_name,
        reply_address=client_reply_address(ticket), deadlines=deadlines, client=client,
        suggestions=suggested_articles(ack.suggestions, settings.kb,
                                       settings.autoreply.faq_url,
                                       solved=solved_address_for(ticket), tag=tag))
    rendered = composer.render(ack.template, ack.language, {**context, "now": now})
    subject = rendered.subject if tag in rendered.subject else f"{tag} {rendered.subject}"
    message_id = new_message_id(settings.domain)
    data = build_message(
        from_name=settings.instance_name, from_address=ticket.mailbox,
        to_name=ack.to_name, to_address=ack.to_address, subject=subject,
        rendered=rendered, message_id=message_id, in_reply_to=client.message_id,
        references=(*client.references, *([client.message_id] if client.message_id else [])),
        reply_to=client_reply_address(ticket), date=now, auto=True)
    return ComposedAutoreply(message_id=message_id, subject=subject,
                             to_address=ack.to_address,
                             language=ack.language, text=rendered.text,
                             has_html=rendered.html is not None, data=data,
                             suggested=tuple(str(s["slug"]) for s in ack.suggestions))


def queue_autoreply(session: Session, autoreply: ComposedAutoreply, ticket: Ticket,
                    settings: Settings, *, now: datetime, rows: Gathered) -> None:
    """Put the acknowledgement in the outbox and on the ticket, in the caller's transaction
    (into `rows`, for the caller to write)."""
    message_id = autoreply.message_id
    rows.messages.append(outgoing_message(
        session, ticket, message_id=message_id, role=Role.SYSTEM,
        from_name=settings.instance_name, to_address=autoreply.to_address,
        subject=autoreply.subject, text=autoreply.text, has_html=autoreply.has_html,
        reason="autoreply", now=now))
    queue_outgoing(session, settings, ticket_id=ticket.id, kind=EventKind.AUTOREPLY,
                   message_id=message_id, mailbox=ticket.mailbox, to_address=autoreply.to_address,
                   data=autoreply.data, now=now, rows=rows)
    rows.events.append(event_row(ticket.id, now, EventKind.AUTOREPLY, None,
                                 {"language": autoreply.language, "message_id": message_id}))
    if autoreply.suggested:
        # Counted per article in the KPI report: suggested, then solved by the client or not.
        rows.events.append(event_row(ticket.id, now, EventKind.KB_SUGGESTED, None,
                                     {"language": autoreply.language,
                                      "articles": list(autoreply.suggested)}))
