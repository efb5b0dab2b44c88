"""Alembic environment: the URL comes from maildesk's configuration, never from alembic.ini."""

from __future__ import annotations

from alembic import context

from maildesk.db.models import Base

config = context.config
target_metadata = Base.metadata


# The engines' search objects (migration 0010) are made in raw SQL and have no model:
# SQLite's FTS5 table search_fts and its shadow tables, PostgreSQL's generated column
# search_entry.tsv and its GIN index. Autogenerate leaves them alone.
def _include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    if name is None:
        return True
    if type_ == "table":
        return not (name == "search_fts" or name.startswith("search_fts_"))
    if type_ == "column" and parent_names.get("table_name") == "search_entry":
        return name != "tsv"
    return not (type_ == "index" and name == "ix_search_entry_tsv")


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from maildesk.config import load_settings

    return load_settings().database.url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True,
                          include_name=_include_name)
        with context.begin_transaction():
            context.run_migrations()
        return
    from maildesk.config.model import Database
    from maildesk.db.session import make_engine

    engine = make_engine(Database(url=_url()))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True,
                          include_name=_include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
