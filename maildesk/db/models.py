"""Typed SQLAlchemy 2.0 models. Columns and relations only; the logic lives in the pipeline."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Enum, ForeignKey, Index, Integer,
                        LargeBinary, MetaData, String, Text, UniqueConstraint, false)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# The domain's words live in maildesk/domain.py; the models store them (and re-export them).
from maildesk.domain import (Channel, Direction, InboundStatus, OutboxStatus, Role,  # noqa: F401
                             TicketStatus)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in UTC on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def bind_processor(self, dialect: Any) -> Any:
        """SQLite: the text SQLAlchemy's DATETIME stores ('2026-12-04 10:00:00.000000') in one
        step; the two-step path (this decorator, then SQLite's DATETIME formatting a dict of
        seven fields) cost about 2 % of a mail's processing (some 30 bound datetimes a mail)."""
        impl = self.impl_instance.dialect_impl(dialect)
        if dialect.name != "sqlite" or getattr(impl, "_storage_format", None) \
                != getattr(type(impl), "_storage_format", ""):
            return super().bind_processor(dialect)   # another backend or a custom format
        utc = timezone.utc

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            if value.tzinfo is not utc:
                value = value.astimezone(utc)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, create_constraint=False, length=16,
                values_callable=lambda e: [m.value for m in e])


class Counter(Base):
    """Named counters bumped inside the transaction that uses them (ticket numbers)."""

    __tablename__ = "counter"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class RawMessage(Base):
    """Every received message, byte for byte, once per distinct content."""

    __tablename__ = "raw_message"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Inbound(Base):
    """One arrival of a raw message (SMTP session, IMAP UID, pipe call) and its processing state."""

    __tablename__ = "inbound"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    raw_id: Mapped[int] = mapped_column(ForeignKey("raw_message.id"), index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    source: Mapped[str | None] = mapped_column(String(512))
    mail_from: Mapped[str | None] = mapped_column(String(512))
    rcpt_to: Mapped[list[str]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[InboundStatus] = mapped_column(_enum(InboundStatus, "inbound_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by the IMAP poller: backlog found in a mailbox at first contact gets no autoreply;
    # mail from an update-only folder may join a ticket but never opens one.
    no_autoreply: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    update_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What maildesk's own listener found of the sender's authenticity (SPF/DKIM/DMARC), as
    # an Authentication-Results value; kept beside the raw bytes, never inside them.
    auth_results: Mapped[str | None] = mapped_column(Text)

    raw: Mapped[RawMessage] = relationship()

    __table_args__ = (Index("ix_inbound_status_id", "status", "id"),)


# What the report's median lookups test besides the measure: the period and every grouping's
# columns (report/kpi.py: created_at; line, category, priority; the agent's three).
_REPORT_COVER = ("created_at", "line", "category", "priority", "assignee", "resolved_by",
                 "first_response_by")


class Ticket(Base):
    __tablename__ = "ticket"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    reply_token: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(Text)
    subject_key: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus, "ticket_status"))
    priority: Mapped[str | None] = mapped_column(String(8))
    line: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(128))
    language: Mapped[str | None] = mapped_column(String(8))
    requester: Mapped[str] = mapped_column(String(320), index=True)
    requester_name: Mapped[str] = mapped_column(String(320), default="")
    mailbox: Mapped[str] = mapped_column(String(320))
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Routing (rules.yaml) and the agents' commands.
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    assignee: Mapped[str | None] = mapped_column(String(320))
    sla_policy: Mapped[str | None] = mapped_column(String(64))
    # Agents reply to `support+NUMBER-AGENT_TOKEN@`: the client only ever sees reply_token, so
    # a client who puts an agent's address in From is still a client.
    agent_token: Mapped[str | None] = mapped_column(String(40))
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # SLA over time (sla/timers.py): when the ticket came to its current line (OLA), the
    # client's follow-up waiting for an answer since (and its next-response deadline), the first breach, the times the
    # clock stood still ([[start, end or null], ...] while pending), and the client's rating.
    line_entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_response_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pauses: Mapped[list[list[str | None]]] = mapped_column(JSON, default=list,
                                                           server_default="[]")
    rating: Mapped[int | None] = mapped_column(Integer)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # KPI facts, written when they happen (effects/metrics.py) so that reports aggregate
    # columns in SQL: seconds of calendar time (`_s`) and of the SLA clock (`_bs`: business
    # time of the ticket's calendar, pending time left out) to the first answer, to the
    # (latest) resolution and of the answers; who gave them; the line routing chose; line
    # moves and reopenings.
    first_line: Mapped[str | None] = mapped_column(String(64))
    first_response_by: Mapped[str | None] = mapped_column(String(320))
    first_response_s: Mapped[int | None] = mapped_column(Integer)
    first_response_bs: Mapped[int | None] = mapped_column(Integer)
    resolved_by: Mapped[str | None] = mapped_column(String(320))
    handling_s: Mapped[int | None] = mapped_column(Integer)
    handling_bs: Mapped[int | None] = mapped_column(Integer)
    escalation_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Answers to a waiting client (the first, and each to a follow-up): how many, and the
    # waits summed, calendar and SLA clock (mean response time = sum / count).
    response_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    response_s: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    response_bs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (Index("ix_ticket_status_number", "status", "number"),
                      # `tickets list --assignee/--unassigned`, newest first.
                      Index("ix_ticket_assignee_number", "assignee", "number"),
                      # The report: a period's tickets per day (the index alone answers it),
                      # and the first-response medians (the few rows of one minute).
                      Index("ix_ticket_created_at", "created_at", "status", "breached_at"),
                      # The report's medians: a range of first responses read in order,
                      # period and group tested in the index, the table not touched.
                      Index("ix_ticket_first_response_bs", "first_response_bs",
                            *_REPORT_COVER),
                      Index("ix_ticket_first_response_s", "first_response_s", *_REPORT_COVER))

    participants: Mapped[list[Participant]] = relationship(back_populates="ticket",
                                                           order_by="Participant.id")
    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")


class Participant(Base):
    """An address that has written on (or been copied into) a ticket."""

    __tablename__ = "participant"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    address: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(320), default="")
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))

    ticket: Mapped[Ticket] = relationship(back_populates="participants")
    __table_args__ = (UniqueConstraint("ticket_id", "address"),)


class Message(Base):
    """One mail on a ticket, in or out; the raw bytes stay in raw_message."""

    __tablename__ = "message"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), unique=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(320), default="")
    to: Mapped[list[str]] = mapped_column(JSON)
    cc: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    body_text: Mapped[str] = mapped_column(Text)
    has_html: Mapped[bool] = mapped_column(Boolean, default=False)
    thread_reason: Mapped[str] = mapped_column(String(32))
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    defects: Mapped[list[str]] = mapped_column(JSON)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message",
                                                         order_by="Attachment.id")


class MessageReference(Base):
    """A Message-ID named in the In-Reply-To/References of a mail recorded on a ticket (a
    capped number per mail), so that a mail arriving after a reply to it finds that reply's
    ticket in one indexed read."""

    __tablename__ = "message_reference"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    referenced_id: Mapped[str] = mapped_column(String(998))

    # The lookup reads the index alone: the tickets naming an id, lowest first.
    __table_args__ = (Index("ix_message_reference_referenced_id", "referenced_id", "ticket_id"),)


class SearchEntry(Base):
    """What full-text search reads (maildesk/search): one row per ticket subject (`kind`
    "subject", no message) and per mail recorded on a ticket ("message": its subject and
    text), the analyzer's stems space-joined, written in the transaction that writes the
    ticket or the mail. Internal notes are flagged so a client-facing search can leave them
    out. The engines index `stems` only, with objects migration 0010 makes in raw SQL and
    autogenerate does not compare (migrations/env.py): on SQLite the FTS5 table `search_fts`
    (external content over this table, kept in sync by the trigger `search_entry_ai`), on
    PostgreSQL the stored generated column `tsv` (to_tsvector('simple', stems)) and its GIN
    index `ix_search_entry_tsv`."""

    __tablename__ = "search_entry"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    stems: Mapped[str] = mapped_column(Text)


class Attachment(Base):
    """A part of a message that is not its readable text; the bytes stay in the raw message."""

    __tablename__ = "attachment"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    part: Mapped[str] = mapped_column(String(64))

    message: Mapped[Message] = relationship(back_populates="attachments")


class TicketEvent(Base):
    """The history of a ticket: what happened when, for audits and KPIs."""

    __tablename__ = "ticket_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(320))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)

    # The report's knowledge-base figures read a few kinds of events over a period.
    __table_args__ = (Index("ix_ticket_event_kind_at", "kind", "at"),)


class TimerState(enum.Enum):
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


class TicketTimer(Base):
    """Something due at a time: an SLA warning or breach, an OLA move, an auto-close.

    Due times live here, not in memory: a restart misses nothing, and a timer moves from
    pending to fired in the transaction that carries out what it does, so it fires once even
    with two timer processes on one database."""

    __tablename__ = "ticket_timer"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))     # first_response, resolution, ..., ola
    stage: Mapped[str] = mapped_column(String(16))    # warning, breach, due
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[TimerState] = mapped_column(_enum(TimerState, "timer_state"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_ticket_timer_state_due", "state", "due_at"),)


class Outbox(Base):
    """A mail to send, written in the transaction that decided it; delivered later, retried."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    # The signed tag of the return path (addresses.py); rows queued before migration 0008
    # hold the old unsigned 16-hex tag, honoured until it expires.
    bounce_tag: Mapped[str] = mapped_column(String(64), index=True)
    envelope_from: Mapped[str] = mapped_column(String(512))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus, "outbox_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The recipient's domain, for the per-domain cap on automatic mail (backscatter).
    recipient_domain: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
                      Index("ix_outbox_kind_created_at", "kind", "created_at"),
                      # The per-domain autoreply count (db/queries.py), from the index alone.
                      Index("ix_outbox_recipient_domain_kind_created_at", "recipient_domain",
                            "kind", "created_at"))


class ImapFolder(Base):
    """The poller's progress in one folder of one IMAP account.

    `last_uid` is committed in the transaction that stores the messages up to it, so a restart
    neither loses nor repeats mail; `acked_uid` says up to where the after-store action (flag,
    move, delete) is known to be done on the server: after a crash it is redone from there."""

    __tablename__ = "imap_folder"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account: Mapped[str] = mapped_column(String(128))
    folder: Mapped[str] = mapped_column(String(512))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    acked_uid: Mapped[int] = mapped_column(BigInteger)
    backlog_until: Mapped[int] = mapped_column(BigInteger)  # last UID present at first contact
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("account", "folder"),)


class ImapLease(Base):
    """Which daemon polls a folder of an IMAP account: one at a time. The holder renews it
    while it polls; when it dies the lease runs out and a standby daemon takes the folder over,
    from the progress in `imap_folder` (maildesk/ingress/lease.py)."""

    __tablename__ = "imap_lease"
    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    folder: Mapped[str] = mapped_column(String(512), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))   # host:pid:random of the daemon
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ImapQuarantineCopy(Base):
    """A quarantined IMAP message whose copy (with the reason) was put in the account's
    quarantine folder."""

    __tablename__ = "imap_quarantine_copy"
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"), primary_key=True)
    copied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScheduledMail(Base):
    """A digest or scheduled report done for one period (`digest:line1:2026-12-07`,
    `report:0:2026-W49`), inserted in the transaction that queues its mails: the key's
    uniqueness makes it once per period with any number of daemons and restarts. `mails` is
    how many were queued (0: the digest had nothing to list)."""

    __tablename__ = "scheduled_mail"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    mails: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
