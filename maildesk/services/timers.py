"""SLA timers: warnings, breaches, OLA moves and auto-closes, fired in batches."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from maildesk.config import Settings
from maildesk.services.context import Context

if TYPE_CHECKING:
    from maildesk.outbound.compose import Composer

log = logging.getLogger("maildesk")

# Timers per transaction: on SQLite a sweep holds the write lock, which intake needs too;
# PostgreSQL's sweep writes what its timers did in one statement, and more of them a sweep
# cost less each (0.96-1.06 ms a timer at 50, 0.86-0.94 at 100, no less at 200).
TIMER_BATCH = 50
TIMER_BATCH_POSTGRES = 100


def run_timers(ctx: Context, settings: Settings, composer: Composer, *, arm: bool = False,
               limit: int | None = None,
               write_turn: AbstractContextManager[Any] | None = None) -> int:
    """One sweep in one transaction: (first) arm tickets without timers, fire what is due
    (`limit` at most: TIMER_BATCH, on PostgreSQL TIMER_BATCH_POSTGRES); counted in the
    daemon's metrics once committed. `write_turn`: held for the transaction (`serve` on
    SQLite: the daemon's writers take turns)."""
    from maildesk.effects.timers import SweepAgainCarefully, arm_unarmed, fire_due

    if limit is None:
        limit = TIMER_BATCH_POSTGRES if ctx.engine.dialect.name == "postgresql" else TIMER_BATCH
    now = ctx.clock.now()
    for careful in (False, True):   # a timer failed without savepoints: all again, with them
        fired_log: list[tuple[str, str, float]] = []
        try:
            with write_turn or nullcontext(), ctx.make_session() as session, session.begin():
                if arm:
                    armed = arm_unarmed(session, settings, now)
                    if armed:
                        log.info("armed the SLA timers of %d open tickets", armed)
                fired = fire_due(session, settings, composer, now, limit=limit,
                                 fired_log=fired_log, careful=careful)
            break
        except SweepAgainCarefully:
            continue
    if ctx.metrics is not None:
        for kind, stage, late in fired_log:
            ctx.metrics.timer_fired(kind, stage, late)
    if fired:
        log.info("%d timers fired", fired)
    return fired


def fire_all_due(ctx: Context) -> int:
    """`timers run`: arm, then sweep batch after batch until a sweep fires nothing; then the
    digests and reports by mail that are due (a desk run from cron gets them too)."""
    from maildesk.outbound.compose import Composer
    from maildesk.services.schedules import run_schedules

    composer = Composer(ctx.settings.templates_dir)
    total, arm = 0, True
    while True:
        fired = run_timers(ctx, ctx.settings, composer, arm=arm)
        total, arm = total + fired, False
        if not fired:
            run_schedules(ctx, ctx.settings, composer)
            return total
