"""Mail to the line mailboxes and, on an agent's behalf, to the client; in the caller's
transaction, through the outbox.

Every mail here gets a fresh random Message-ID (outbound/compose.new_message_id), kept with
the outbox row. A message is processed once (its inbound row turns done in the same
transaction) and a timer fires once, so nothing is queued twice. What goes to a client is
recorded on the ticket as an outgoing message; notifications to a line are recorded as events
(the line mailbox is the agents' own, not part of the conversation with the client).

Threading for the agents: every mail about one ticket to one recipient (a line mailbox, a
lead, an agent) names the same root in In-Reply-To and References, and keeps one subject, so
Thunderbird, Outlook and Gmail show one conversation per ticket, not one mail per event. The
root is a Message-ID of its own, made from the ticket's agents' token and the recipient by a
one-way hash: stable for the ticket's life, different for every ticket and every database
(the token is random), and telling nothing of the token.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from maildesk import addresses
from maildesk.addresses import new_token
from maildesk.config.model import Line, Settings
from maildesk.db.models import Direction, Message, Role, Ticket
from maildesk.db.queries import LATEST_TICKETS, held_tickets
from maildesk.domain import EventKind
from maildesk.outbound.compose import (Composer, OutgoingAttachment, Rendered, build_message,
                                       new_message_id)
from maildesk.effects.events import Gathered, event_row
from maildesk.effects.outgoing import client_reply_address, outgoing_message, queue_outgoing
from maildesk.effects.record import MailRow
from maildesk.pipeline.agent import COMMAND_HELP
from maildesk.pipeline.parse import ParsedMessage
from maildesk.pipeline.reply import MARKER
from maildesk.pipeline.subject import format_tag

HISTORY_ITEMS = 15
HISTORY_CHARS = 2000
EARLIER_TICKETS = LATEST_TICKETS - 1   # those read with the counts, but the ticket itself

# The columns shown, not whole Message objects (their JSON columns decoded for nothing).
HISTORY_COLUMNS = (Message.id, Message.internal, Message.received_at, Message.from_name,
                   Message.from_address, Message.role, Message.body_text)
_HISTORY = (select(*HISTORY_COLUMNS)
            .where(Message.ticket_id == bindparam("ticket_id"))
            .order_by(Message.id.desc()).limit(HISTORY_ITEMS + 1))
_EARLIER = (select(Ticket.number, Ticket.subject, Ticket.status, Ticket.created_at)
            .where(Ticket.requester == bindparam("requester"), Ticket.id != bindparam("ticket_id"))
            .order_by(Ticket.id.desc()).limit(EARLIER_TICKETS))
# The conversation as the client sees it: their mails and ours, not the agents' own mails to us.
_THREAD = (select(Message.message_id, Message.direction)
           .where(Message.ticket_id == bindparam("ticket_id"), Message.internal.is_(False),
                  Message.message_id.is_not(None),
                  ~((Message.direction == Direction.IN) & (Message.role == Role.AGENT)))
           .order_by(Message.id))


def agent_reply_address(ticket: Ticket) -> str:
    """`support+NUMBER-AGENTTOKEN@`: where agents answer; never shown to a client."""
    if not ticket.agent_token:
        ticket.agent_token = new_token()
    return addresses.reply_address(ticket.mailbox, ticket.number, ticket.agent_token)


def thread_root(ticket: Ticket, recipient: str, domain: str) -> str:
    """The Message-ID every mail about `ticket` to `recipient` answers (module docstring)."""
    agent_reply_address(ticket)   # makes the agents' token if the ticket has none yet
    digest = hashlib.sha256(f"maildesk thread\0{ticket.agent_token}\0{recipient.lower()}"
                            .encode()).digest()
    return f"thread.{base64.b32encode(digest[:16]).decode('ascii').rstrip('=').lower()}@{domain}"


def ticket_zone(settings: Settings, ticket: Ticket) -> ZoneInfo:
    """The zone times are shown in: the calendar of the ticket's SLA policy."""
    return settings.sla_policies.zone(ticket.sla_policy)


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return value.astimezone(zone) if value else None


def ticket_context(settings: Settings, ticket: Ticket) -> dict[str, Any]:
    zone = ticket_zone(settings, ticket)
    line = settings.line(ticket.line)
    return {
        "ticket": {"number": ticket.number, "subject": ticket.subject,
                   "status": ticket.status.value, "priority": ticket.priority,
                   "line": ticket.line, "line_name": line.name if line else (ticket.line or "-"),
                   "category": ticket.category, "tags": list(ticket.tags or []),
                   "assignee": ticket.assignee, "requester": ticket.requester,
                   "requester_name": ticket.requester_name,
                   "created_at": _local(ticket.created_at, zone), "rating": ticket.rating},
        "tag": format_tag(settings.ticket_tag, ticket.number),
        "instance": settings.instance_name,
        "deadlines": {"first_response": _local(ticket.first_response_due_at, zone),
                      "resolution": _local(ticket.resolution_due_at, zone)},
        "commands_help": COMMAND_HELP,
        "lines": [x.id for x in settings.lines],
    }


@dataclass(frozen=True)
class Mail:
    """One mail to queue: who it goes to and what it says."""

    kind: EventKind             # the outbox row's kind and the ticket event's
    key: str                    # what caused it: "<inbound id>.<kind>" (the event's `cause`)
    to_address: str
    to_name: str
    rendered: Rendered
    reply_to: str | None
    auto: bool | str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    attachments: Sequence[OutgoingAttachment] = ()
    event: Mapping[str, Any] | None = None   # what the ticket event records besides the mail


@dataclass(frozen=True)
class Built:
    """A mail made into bytes, ready to queue: nothing can go wrong with it but the database."""

    mail: Mail
    message_id: str
    subject: str
    data: bytes
    from_name: str


def build(ticket: Ticket, mail: Mail, settings: Settings, *, now: datetime,
          from_name: str | None = None) -> Built:
    """The mail's bytes, with a new Message-ID and the ticket's tag in the subject."""
    message_id = new_message_id(settings.domain)
    tag = format_tag(settings.ticket_tag, ticket.number)
    subject = mail.rendered.subject if tag in mail.rendered.subject \
        else f"{tag} {mail.rendered.subject}"
    sender = from_name or settings.instance_name
    data = build_message(
        from_name=sender, from_address=ticket.mailbox,
        to_name=mail.to_name, to_address=mail.to_address, subject=subject,
        rendered=mail.rendered, message_id=message_id, in_reply_to=mail.in_reply_to,
        references=mail.references, reply_to=mail.reply_to, date=now, auto=mail.auto,
        attachments=mail.attachments)
    return Built(mail, message_id, subject, data, sender)


def queue(session: Session, ticket: Ticket, mail: Mail, settings: Settings, *, now: datetime,
          rows: Gathered, record_as: Role | None = None, from_name: str | None = None,
          event: dict[str, Any] | None = None) -> str:
    """Build the mail, put it in the outbox; record it on the ticket. Returns its Message-ID."""
    return queue_built(session, ticket, build(ticket, mail, settings, now=now,
                                              from_name=from_name),
                       settings, now=now, record_as=record_as, event=event, rows=rows)


def queue_built(session: Session, ticket: Ticket, built: Built, settings: Settings, *,
                now: datetime, rows: Gathered, record_as: Role | None = None,
                event: dict[str, Any] | None = None) -> str:
    """Put a built mail in the outbox; record it on the ticket (its event added to `events`,
    for the caller to write). Returns its Message-ID."""
    mail, message_id, subject = built.mail, built.message_id, built.subject
    if record_as is not None:
        rows.messages.append(outgoing_message(
            session, ticket, message_id=message_id, role=record_as, from_name=built.from_name,
            to_address=mail.to_address, subject=subject, text=mail.rendered.text,
            has_html=mail.rendered.html is not None, reason=mail.kind, now=now))
    queue_outgoing(session, settings, ticket_id=ticket.id, kind=mail.kind, message_id=message_id,
                   mailbox=ticket.mailbox, to_address=mail.to_address, data=built.data, now=now,
                   rows=rows)
    rows.events.append(event_row(ticket.id, now, mail.kind, None,
                                 {**(event or mail.event or {}), "message_id": message_id,
                                  "to": mail.to_address, "cause": mail.key}))
    return message_id


def _language(composer: Composer, *candidates: str | None) -> str:
    for lang in candidates:
        if lang and lang in composer.languages:
            return lang
    return "en" if "en" in composer.languages else sorted(composer.languages)[0]


def forwardable(message: ParsedMessage, *, include_inline: bool) -> list[OutgoingAttachment]:
    """The attachments of a parsed message that can go out again (with their bytes)."""
    if not message.attachment_data:
        return []
    return [OutgoingAttachment(a.filename, a.content_type, data)
            for a, data in zip(message.attachments, message.attachment_data)
            if include_inline or not a.inline]


def line_notification(session: Session, ticket: Ticket, settings: Settings,
                      composer: Composer, *, now: datetime, event: str, key: str,
                      line: Line | None = None, message: ParsedMessage | None = None,
                      message_row: MailRow | None = None, text: str | None = None,
                      actor: str | None = None, from_line: str | None = None,
                      to: str | None = None, reason: str = "",
                      deadline: dict[str, Any] | None = None,
                      articles: Sequence[Mapping[str, Any]] = (),
                      pending: Sequence[Mapping[str, Any]] = (),
                      stored: bool = True) -> Built | None:
    """The line notification, built (None: the ticket has no line): it reads the ticket's
    history but writes nothing, so a template that fails costs nothing to undo.

    The mail carries the message (and its attachments), deadlines, the ticket's history and
    the client's earlier tickets below a marker line, and `Reply-To` the agents' reply
    address. An external line (a vendor) sees no internal notes and no other tickets."""
    line = line or settings.line(ticket.line)
    if line is None:
        return None
    zone = ticket_zone(settings, ticket)
    context = ticket_context(settings, ticket)
    attachments = forwardable(message, include_inline=True) if message is not None else []
    context.update(event=event, actor=actor or "", from_line=from_line or "",
                   message=_current(message_row, message, attachments, text, zone),
                   history=_history(session, ticket, line, message_row, zone, pending,
                                    stored),
                   earlier_tickets=_earlier(session, ticket, line, settings, zone),
                   marker=MARKER, reason=reason, now=now,
                   # An external line (a vendor) is not shown internal articles.
                   articles=[a for a in articles if not (line.external and a.get("internal"))],
                   deadline={**deadline, "due": _local(deadline["due"], zone)}
                   if deadline else None)
    lang = _language(composer, settings.language)
    rendered = composer.render("line_notification", lang, context)
    recipient = to or line.mailbox
    root = thread_root(ticket, recipient, settings.domain)
    mail = Mail(kind=EventKind.NOTIFICATION, key=key, to_address=recipient,
                to_name="" if to else line.name,
                rendered=rendered, reply_to=agent_reply_address(ticket), auto="auto-generated",
                in_reply_to=root, references=(root,), attachments=attachments,
                event={"event": event, "line": line.id})
    return build(ticket, mail, settings, now=now)


def _current(row: MailRow | None, message: ParsedMessage | None,
             attachments: Sequence[OutgoingAttachment], text: str | None,
             zone: ZoneInfo) -> dict[str, Any] | None:
    """The mail the notification is about (None: it is about the ticket, not a mail)."""
    if row is None:
        return None
    sent = {a.filename for a in attachments}
    return {"from": f"{row.from_name} <{row.from_address}>".strip(),
            "date": _local(row.received_at, zone),
            "text": text if text is not None else row.body_text,
            "attachments": [{"filename": a.filename, "size": a.size,
                             "forwarded": a.filename in sent}
                            for a in (message.attachments if message else ())]}


def _history(session: Session, ticket: Ticket, line: Line, row: MailRow | None,
             zone: ZoneInfo, pending: Sequence[Mapping[str, Any]] = (),
             stored: bool = True) -> list[dict[str, Any]]:
    """The ticket's latest mails, newest first; an external line sees no internal ones.
    `pending`: the ticket's mails this cause records and has not written yet (Gathered);
    `stored` False: the database has none of them yet (a ticket the cause opened)."""
    held = held_tickets(session)
    read = held.histories.pop(ticket.id, None) if held is not None else None
    found = (read if read is not None else
             session.connection().execute(_HISTORY, {"ticket_id": ticket.id}).all()) \
        if stored else []
    mails = sorted([*found, *(SimpleNamespace(**m) for m in pending)],
                   key=lambda m: m.id, reverse=True)
    history = []
    for m in mails:
        if (row is not None and m.id == row.id) or (m.internal and line.external):
            continue
        history.append({"at": _local(m.received_at, zone), "internal": m.internal,
                        "who": f"{m.from_name} <{m.from_address}> ({m.role.value})"
                        if m.from_name else f"{m.from_address} ({m.role.value})",
                        "text": _shorten(m.body_text)})
    return history[:HISTORY_ITEMS]


def _earlier(session: Session, ticket: Ticket, line: Line, settings: Settings,
             zone: ZoneInfo) -> list[dict[str, Any]]:
    """The requester's other tickets (not shown to an external line)."""
    if line.external:
        return []
    # Other tickets (on the connection: nothing pending of this cause changes them), unless
    # the mail's autoreply counts read the requester's latest already (db/queries.py).
    held = held_tickets(session)
    known = held.requester_tickets.get(ticket.requester) if held is not None else None
    if known is not None:
        rows = [r[1:] for r in known if r[0] != ticket.id][:EARLIER_TICKETS]
    else:
        rows = session.connection().execute(_EARLIER, {"requester": ticket.requester,
                                                       "ticket_id": ticket.id}).all()
    return [{"tag": format_tag(settings.ticket_tag, number), "subject": subject,
             "status": status.value, "created_at": _local(created, zone)}
            for number, subject, status, created in rows]


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= HISTORY_CHARS else text[:HISTORY_CHARS] + " [...]"


def thread_ids(session: Session, ticket: Ticket) -> tuple[str | None, tuple[str, ...]]:
    """In-Reply-To and References of a mail to the client: it answers the client's latest
    mail; References name the conversation (the client's mails and ours), oldest first."""
    rows = session.execute(_THREAD, {"ticket_id": ticket.id}).all()
    ids = tuple(mid for mid, _ in rows)
    last_in = next((mid for mid, direction in reversed(rows) if direction is Direction.IN), None)
    return last_in or (ids[-1] if ids else None), ids[-20:]


def queue_to_client(session: Session, ticket: Ticket, settings: Settings, composer: Composer,
                    *, now: datetime, template: str, key: str, context: dict[str, Any],
                    agent_name: str, attachments: Sequence[OutgoingAttachment] = (),
                    rows: Gathered, language: str | None = None,
                    role: Role = Role.AGENT) -> str:
    """An agent's answer (or the resolution notice) to the client, from the support address,
    threaded into the client's own messages."""
    ctx = {**ticket_context(settings, ticket), "client_name": ticket.requester_name,
           "agent_name": agent_name, "now": now, **context}
    lang = _language(composer, ticket.language, language, settings.language)
    rendered = composer.render(template, lang, ctx)
    rows.write(session)   # the mails this cause recorded so far belong to the thread
    in_reply_to, references = thread_ids(session, ticket)
    mail = Mail(kind=EventKind(template), key=key, to_address=ticket.requester,
                to_name=ticket.requester_name, rendered=rendered,
                reply_to=client_reply_address(ticket), auto=False,
                in_reply_to=in_reply_to, references=references,
                attachments=attachments)
    return queue(session, ticket, mail, settings, now=now, rows=rows, record_as=role,
                 from_name=f"{agent_name} ({settings.instance_name})" if agent_name
                 else settings.instance_name)


def _answering(ticket: Ticket, settings: Settings, agent_mail: str | None) -> tuple[str, ...]:
    """References of an answer to an agent's mail: the ticket's thread in the line mailbox the
    agent answered from, then that mail; it shows in the agent's conversation of the ticket."""
    line = settings.line(ticket.line)
    root = (thread_root(ticket, line.mailbox, settings.domain),) if line is not None else ()
    return (*root, *((agent_mail,) if agent_mail else ()))


def queue_command_error(session: Session, ticket: Ticket, settings: Settings,
                        composer: Composer, *, now: datetime, key: str, to_address: str,
                        errors: Sequence[str], in_reply_to: str | None,
                        rows: Gathered) -> str:
    """Tell an agent why their mail was not carried out (only them)."""
    ctx = {**ticket_context(settings, ticket), "errors": list(errors), "now": now}
    rendered = composer.render("command_error", _language(composer, settings.language), ctx)
    mail = Mail(kind=EventKind.COMMAND_ERROR, key=key, to_address=to_address, to_name="",
                rendered=rendered, reply_to=agent_reply_address(ticket), auto="auto-replied",
                in_reply_to=in_reply_to, references=_answering(ticket, settings, in_reply_to))
    return queue(session, ticket, mail, settings, now=now, rows=rows,
                 event={"errors": list(errors)})


def queue_search_results(session: Session, ticket: Ticket, settings: Settings,
                         composer: Composer, *, now: datetime, key: str, to_address: str,
                         searches: Sequence[Mapping[str, Any]],
                         in_reply_to: str | None, rows: Gathered) -> str:
    """An agent's #search answered: to the agent only, replies go to the agents' address."""
    ctx = {**ticket_context(settings, ticket), "searches": [dict(s) for s in searches],
           "now": now}
    rendered = composer.render("search_results", _language(composer, settings.language), ctx)
    mail = Mail(kind=EventKind.SEARCH_RESULTS, key=key, to_address=to_address, to_name="",
                rendered=rendered, reply_to=agent_reply_address(ticket), auto="auto-replied",
                in_reply_to=in_reply_to, references=_answering(ticket, settings, in_reply_to))
    return queue(session, ticket, mail, settings, now=now, rows=rows,
                 event={"queries": [s["query"] for s in searches]})
