"""Mail that could not be made into a ticket: listing it, running it through again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from maildesk.db.models import Inbound, InboundStatus
from maildesk.services.context import Context
from maildesk.services.errors import NotFound
from maildesk.services.processing import open_processor
from maildesk.views import quarantine_view

if TYPE_CHECKING:
    from maildesk.process.run import Outcome

# Messages per processor batch when retrying: one batch is one write transaction.
RETRY_BATCH = 100


def list_quarantined(ctx: Context) -> list[dict[str, Any]]:
    """Quarantined mail, oldest first, in the JSON shape of views.quarantine_view."""
    with ctx.read_session() as session:
        return [quarantine_view(i) for i in session.scalars(
            select(Inbound).where(Inbound.status == InboundStatus.QUARANTINED)
            .options(selectinload(Inbound.raw)).order_by(Inbound.id))]


def requeue(ctx: Context, inbound_id: int | None = None) -> list[int]:
    """Make one quarantined message (or, with None, all of them) pending again, with a fresh
    count of attempts; return their ids."""
    with ctx.make_session.begin() as session:
        query = select(Inbound).where(Inbound.status == InboundStatus.QUARANTINED)
        if inbound_id is not None:
            query = query.where(Inbound.id == inbound_id)
        rows = session.scalars(query).all()
        if not rows:
            raise NotFound(f"no quarantined message {inbound_id}" if inbound_id
                           else "quarantine is empty")
        for row in rows:
            row.status, row.attempts = InboundStatus.PENDING, 0
        return [row.id for row in rows]


def reprocess(ctx: Context, ids: list[int]) -> Iterator[Outcome]:
    """Run the requeued messages through the pipeline, yielding each outcome as its batch
    commits (a long retry shows progress)."""
    with open_processor(ctx) as processor:
        for start in range(0, len(ids), RETRY_BATCH):
            yield from processor.run_batch(limit=RETRY_BATCH, only=ids[start:start + RETRY_BATCH])
