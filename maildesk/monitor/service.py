"""What `serve` runs for monitoring: the daemon's Metrics, the scrape-time gauges, the health
check and, when `metrics.listen` names an address, the HTTP endpoint serving them."""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta

from sqlalchemy import Engine

from maildesk.clock import Clock
from maildesk.db.session import make_read_sessionmaker
from maildesk.monitor.collector import QueueCollector
from maildesk.monitor.endpoint import MetricsEndpoint
from maildesk.monitor.health import Health, check_health
from maildesk.monitor.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_STUCK_AFTER = timedelta(minutes=10)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Monitor:
    """Counters for the parts of one daemon; `start` opens the endpoint when one is set."""

    def __init__(self, engine: Engine, clock: Clock, *, listen: tuple[str, int] | None = None,
                 stuck_after: timedelta = DEFAULT_STUCK_AFTER, version: str = ""):
        self.metrics = Metrics()
        self.clock = clock
        self.stuck_after = stuck_after
        self._read = make_read_sessionmaker(engine)
        QueueCollector(self.metrics, self._read, clock, stuck_after, version)
        self.endpoint = MetricsEndpoint(*listen, self.metrics.registry, self.health) \
            if listen else None

    def health(self) -> Health:
        return check_health(self._read, self.clock, self.stuck_after, self.metrics)

    def start(self) -> None:
        """Open the endpoint (if any); OSError when its address cannot be bound."""
        if self.endpoint is None:
            return
        self.endpoint.start()
        if not is_loopback(self.endpoint.host):
            log.warning("metrics endpoint on %s, not a loopback address: anyone who can reach "
                        "it reads the queue figures", self.endpoint.url)
        log.info("metrics endpoint on %s (/metrics, /healthz)", self.endpoint.url)

    def stop(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
