"""Running the pipeline outside the daemon: over everything pending, or one stored mail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from maildesk.services.context import Context

if TYPE_CHECKING:
    from maildesk.process.run import Outcome, Processor


@contextmanager
def open_processor(ctx: Context) -> Iterator[Processor]:
    """A Processor (it runs a parsing child process), closed however the block ends."""
    from maildesk.process.run import Processor

    processor = Processor(ctx.settings, ctx.make_session, ctx.clock)
    try:
        yield processor
    finally:
        processor.close()


def process_pending(ctx: Context) -> list[Outcome]:
    """Process every pending stored message now."""
    with open_processor(ctx) as processor:
        return processor.drain()


@dataclass(frozen=True)
class Processed:
    """What became of one stored mail; `deferred` holds the error when processing failed
    (the mail stays stored and pending, the daemon tries again)."""

    outcomes: list[Outcome] = field(default_factory=list)
    deferred: str | None = None


def process_stored(ctx: Context, inbound_id: int) -> Processed:
    with open_processor(ctx) as processor:
        try:
            return Processed(processor.run_batch(only=[inbound_id]))
        except Exception as exc:  # stored is what counts for the MTA; the daemon retries
            return Processed(deferred=str(exc))
