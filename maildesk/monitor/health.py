"""`/healthz`: is mail getting through? Unhealthy when processing or delivery is stuck.

Processing is stuck when stored mail has been pending for longer than `stuck_after` and no
processor of this daemon finished a pass in that time (a processor that keeps finishing passes
is working through a backlog: behind, not stuck). With no processor here (`serve --only
smtp`, the processor in another process) the pending mail alone tells. Delivery likewise:
an outbox mail due for longer than `stuck_after` and no delivery pass finished in that time.
A database that cannot be read is unhealthy too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from maildesk.clock import Clock
from maildesk.monitor.metrics import Metrics
from maildesk.monitor.queues import QueueFigures, read_queues


@dataclass(frozen=True)
class Health:
    ok: bool
    problems: tuple[str, ...] = ()

    def line(self) -> str:
        """One line for the HTTP body and the log: "ok", or each problem, "; "-separated."""
        return "ok" if self.ok else "; ".join(self.problems)


def _seconds(value: float) -> str:
    value = int(value)
    if value < 120:
        return f"{value} s"
    if value < 7200:
        return f"{value // 60} min"
    return f"{value // 3600} h {value % 3600 // 60} min"


def _mails(n: int) -> str:
    return f"{n} mail{'' if n == 1 else 's'}"


def judge(figures: QueueFigures, stuck_after: timedelta, metrics: Metrics | None) -> Health:
    """The verdict on queue figures read from the database and the workers' progress."""
    limit = stuck_after.total_seconds()
    problems = []

    def idle(worker: str) -> bool:
        """No pass of `worker` finished here within the limit (or it does not run here)."""
        if metrics is None or not metrics.watches(worker):
            return True
        since = metrics.since_progress(worker)
        return since is None or since > limit

    if figures.inbound_pending and figures.pending_age() > limit and idle("processor"):
        problems.append(f"processing stuck: {_mails(figures.inbound_pending)} pending, "
                        f"oldest {_seconds(figures.pending_age())}")
    if figures.outbox_due and figures.due_age() > limit and idle("outbound"):
        problems.append(f"delivery stuck: {_mails(figures.outbox_due)} due, "
                        f"oldest due for {_seconds(figures.due_age())}")
    return Health(not problems, tuple(problems))


def check_health(make_session: Callable[[], Session], clock: Clock, stuck_after: timedelta,
                 metrics: Metrics | None = None) -> Health:
    try:
        with make_session() as session:
            figures = read_queues(session, clock.now())
    except Exception as exc:  # a locked or lost database: unhealthy, and say why
        first = (str(exc).splitlines() or [""])[0][:200]
        return Health(False, (f"database unreadable: {type(exc).__name__}: {first}",))
    return judge(figures, stuck_after, metrics)
