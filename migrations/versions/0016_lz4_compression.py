"""PostgreSQL: the large columns compress with lz4 rather than pglz

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:10:00

Values over about 2 kB (a mail's raw bytes, its text, its search stems, an outgoing mail) are
compressed when stored. With PostgreSQL's default, pglz, compressing was 15% of the server's
work per processed mail; lz4 (PostgreSQL 14 and later, when built with it, as Debian's and the
official packages are) does the same at a fraction of the cost and reads back faster:
1.9 -> 1.55 ms of server time per mail in benchmarks/pipeline.py. Values stored before keep
their compression; both are read alike. SQLite: nothing to do.
"""
from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

COLUMNS = (("raw_message", "data"), ("message", "body_text"), ("search_entry", "stems"),
           ("outbox", "data"))


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(bind.execute(text(
        "SELECT current_setting('server_version_num')::int >= 140000 AND 'lz4' = ANY(enumvals) "
        "FROM pg_settings WHERE name = 'default_toast_compression'")).scalar())


def _set(method: str) -> None:
    for table, column in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}')


def upgrade() -> None:
    if _lz4_available():
        _set("lz4")


def downgrade() -> None:
    if _lz4_available():
        _set("default")
