"""The outgoing queue: listing it, queueing one mail again, delivering what is due."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from maildesk.db.models import Outbox, OutboxStatus, Ticket
from maildesk.services.context import Context
from maildesk.services.errors import NotFound, Refused
from maildesk.views import outbox_view

if TYPE_CHECKING:
    from maildesk.outbound.outbox import DeliveryOutcome


def list_outbox(ctx: Context, *, status: OutboxStatus | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Entries newest first in the JSON shape of views.outbox_view; `limit` 0 means all."""
    query = (select(Outbox, Ticket.number).outerjoin(Ticket, Ticket.id == Outbox.ticket_id)
             .order_by(Outbox.id.desc()))
    if limit:
        query = query.limit(limit)
    if status:
        query = query.where(Outbox.status == status)
    with ctx.read_session() as session:
        return [outbox_view(o, number) for o, number in session.execute(query).all()]


def retry(ctx: Context, outbox_id: int) -> None:
    """Queue a failed or waiting mail for delivery right away."""
    from maildesk.outbound.outbox import retry_now

    with ctx.make_session.begin() as session:
        row = retry_now(session, outbox_id, ctx.clock.now())
        if row is None:
            raise NotFound(f"no outbox entry {outbox_id}")
        if row.status is OutboxStatus.SENT:
            raise Refused(f"outbox entry {outbox_id} was sent already")


def deliver_due(ctx: Context) -> list[DeliveryOutcome]:
    """Deliver everything that is due now through the configured transport."""
    from maildesk.outbound.outbox import OutboxDeliverer
    from maildesk.outbound.registry import make_transport

    transport = make_transport(ctx.settings.outbound, ctx.settings.domain)
    deliverer = OutboxDeliverer(ctx.make_session, transport, ctx.clock,
                                lease=ctx.settings.outbound.lease)
    try:
        return deliverer.drain()
    finally:
        deliverer.transport.close()
        deliverer.close()
