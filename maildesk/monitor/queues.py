"""How full the queues are, read from the database: the stored mail waiting for the processor,
the outbox, the SLA timers. For `/metrics` at scrape time, `/healthz` and `maildesk status`.

Every query is answered by an index (db/models.py: ix_inbound_status_id,
ix_outbox_status_next_attempt_at, ix_ticket_timer_state_due) or walks only the rows of a
queue (the outbox's oldest `created_at`): cheap enough to run at every scrape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from maildesk.db.models import (Inbound, InboundStatus, Outbox, OutboxStatus, TicketTimer,
                                TimerState)


@dataclass(frozen=True)
class QueueFigures:
    """The queues at `now`."""

    now: datetime
    inbound_pending: int
    inbound_oldest_pending: datetime | None   # received_at of the oldest pending mail
    inbound_quarantined: int
    outbox_queued: int
    outbox_oldest_queued: datetime | None     # created_at of the oldest queued mail
    outbox_due: int                           # queued and due now
    outbox_oldest_due: datetime | None        # the earliest next_attempt_at among those due
    outbox_failed: int
    timers_due: int                           # pending and due now: not fired yet
    timers_oldest_due: datetime | None
    timers_next_due: datetime | None          # the next pending timer, due or not

    @staticmethod
    def age(moment: datetime | None, now: datetime) -> float:
        """Seconds from `moment` to `now` (0 for none)."""
        return max((now - moment).total_seconds(), 0.0) if moment is not None else 0.0

    def pending_age(self) -> float:
        return self.age(self.inbound_oldest_pending, self.now)

    def queued_age(self) -> float:
        return self.age(self.outbox_oldest_queued, self.now)

    def due_age(self) -> float:
        """How long the longest-due outbox mail has waited past its attempt time."""
        return self.age(self.outbox_oldest_due, self.now)

    def timers_lateness(self) -> float:
        return self.age(self.timers_oldest_due, self.now)


def _count(session: Session, model: type, *where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def read_queues(session: Session, now: datetime) -> QueueFigures:
    pending = Inbound.status == InboundStatus.PENDING
    queued = Outbox.status == OutboxStatus.QUEUED
    waiting = TicketTimer.state == TimerState.PENDING
    oldest_pending = session.scalar(select(Inbound.received_at).where(pending)
                                     .order_by(Inbound.id).limit(1))
    return QueueFigures(
        now=now,
        inbound_pending=_count(session, Inbound, pending),
        inbound_oldest_pending=oldest_pending,
        inbound_quarantined=_count(session, Inbound, Inbound.status == InboundStatus.QUARANTINED),
        outbox_queued=_count(session, Outbox, queued),
        outbox_oldest_queued=session.scalar(select(func.min(Outbox.created_at)).where(queued)),
        outbox_due=_count(session, Outbox, queued, Outbox.next_attempt_at <= now),
        outbox_oldest_due=session.scalar(select(func.min(Outbox.next_attempt_at))
                                         .where(queued, Outbox.next_attempt_at <= now)),
        outbox_failed=_count(session, Outbox, Outbox.status == OutboxStatus.FAILED),
        timers_due=_count(session, TicketTimer, waiting, TicketTimer.due_at <= now),
        timers_oldest_due=session.scalar(select(func.min(TicketTimer.due_at))
                                         .where(waiting, TicketTimer.due_at <= now)),
        timers_next_due=session.scalar(select(func.min(TicketTimer.due_at)).where(waiting)),
    )

