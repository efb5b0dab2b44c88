"""The database schema: Alembic migrations."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from maildesk.config import Settings


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    # Imported here: alembic costs a few hundred ms, and only `db upgrade` needs it.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location",
                        str(resources.files("maildesk") / "skeleton" / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def upgrade_database(settings: Settings) -> None:
    """Apply every migration (idempotent); creates the SQLite file's folder if needed."""
    url = settings.database.url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), "head")
