"""The Context every service works on: the settings, the database and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maildesk.clock import Clock, SystemClock, default_clock
from maildesk.config import Settings, load_settings
from maildesk.db.session import make_engine, make_read_sessionmaker, make_sessionmaker

if TYPE_CHECKING:
    from maildesk.monitor.metrics import Metrics


@dataclass
class Context:
    settings: Settings
    engine: Engine
    make_session: sessionmaker[Session]
    clock: Clock = field(default_factory=SystemClock)
    metrics: Metrics | None = None   # `serve` counts events here (monitor/metrics.py)

    @classmethod
    def load(cls, config_path: str | Path | None = None, clock: Clock | None = None) -> Context:
        settings = load_settings(config_path)
        engine = make_engine(settings.database)
        return cls(settings, engine, make_sessionmaker(engine), clock or default_clock())

    def read_session(self) -> Session:
        """A session for reading only (no write lock on SQLite: the daemon keeps writing)."""
        return make_read_sessionmaker(self.engine)()

    def close(self) -> None:
        self.engine.dispose()
