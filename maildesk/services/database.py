"""The database schema: Alembic migrations, and whether a database has the schema this maildesk
needs (`serve` refuses to start on one that is missing or behind)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from maildesk.config import Settings
from maildesk.db.outage import OutageWatch, redact_url
from maildesk.services.failures import EX_CONFIG, OperatorError

if TYPE_CHECKING:
    from maildesk.services.context import Context

UPGRADE = "run `maildesk db upgrade`"


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    # Imported here: alembic costs a few hundred ms, and only `db upgrade` needs it.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location",
                        str(resources.files("maildesk") / "skeleton" / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def _scripts():  # type: ignore[no-untyped-def]
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(""))


def head_revision() -> str:
    """The newest migration this maildesk has."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class Upgrade:
    """What `db upgrade` did: the revision before (None: an empty database) and after."""

    before: str | None
    after: str

    def describe(self) -> str:
        if self.before is None:
            return f"created schema at {self.after}"
        if self.before == self.after:
            return f"already up to date at {self.after}"
        return f"database at {self.after} (head); applied {self.before} → {self.after}"


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it has no maildesk schema."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_database(settings: Settings) -> Upgrade:
    """Apply every migration (idempotent); creates the SQLite file's folder if needed."""
    url = settings.database.url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    from maildesk.config.model import Database
    from maildesk.db.session import make_engine

    engine = make_engine(Database(url=url, lock_timeout_ms=settings.database.lock_timeout_ms))
    try:
        before = current_revision(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), "head")
    return Upgrade(before, head_revision())


class SchemaError(OperatorError):
    """The database has no maildesk schema, an older one, or one this maildesk does not know."""

    def __init__(self, message: str):
        super().__init__(message, EX_CONFIG)


def schema_error(url: str, engine: Engine | None = None) -> SchemaError | None:
    """What is wrong with the schema of the database at `url`, or None when it is current.
    Raises the database's own error when it cannot be reached."""
    from maildesk.config.model import Database
    from maildesk.db.session import make_engine

    own = engine is None
    engine = engine or make_engine(Database(url=url))
    try:
        current = current_revision(engine)
    finally:
        if own:
            engine.dispose()
    scripts = _scripts()
    head = scripts.get_current_head()
    if current == head:
        return None
    shown = redact_url(url)
    if current is None:
        return SchemaError(f"the database {shown} has no maildesk schema yet; {UPGRADE}")
    known = {s.revision for s in scripts.walk_revisions()}
    if current in known:
        return SchemaError(f"the database schema is at {current}, behind this maildesk's "
                           f"{head}; {UPGRADE}")
    return SchemaError(f"the database {shown} is at schema {current}, which this maildesk "
                       f"(schema {head}) does not know: it was made by a newer maildesk; "
                       "upgrade maildesk")


def require_current_schema(ctx: Context) -> None:
    """Raise SchemaError unless the database has the schema this maildesk needs (the
    database's own error when it cannot be reached)."""
    error = schema_error(ctx.settings.database.url, ctx.engine)
    if error is not None:
        raise error


def watch_outages(ctx: Context, logger: logging.Logger) -> OutageWatch:
    """From now on, log an outage of the context's database once per attempt (capped
    backoff) and once when it is back, whichever thread meets it."""
    return OutageWatch(ctx.settings.database.url, logger).attach(ctx.engine)
