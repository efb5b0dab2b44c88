"""outbox: the per-domain autoreply count reads one index, kind included

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 06:40:00

The backscatter cap counts the autoreplies queued to one domain in the last hour. With the
index on (recipient_domain, created_at), SQLite's planner chose the (kind, created_at) index
instead and read every autoreply's row to check its domain: 0.8 ms per new ticket after a
thousand autoreplies, growing with the outbox. On (recipient_domain, kind, created_at) the
count is read from the index alone (7 µs on the same data).
"""
from __future__ import annotations

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_outbox_recipient_domain_created_at', table_name='outbox')
    op.create_index('ix_outbox_recipient_domain_kind_created_at', 'outbox',
                    ['recipient_domain', 'kind', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_recipient_domain_kind_created_at', table_name='outbox')
    op.create_index('ix_outbox_recipient_domain_created_at', 'outbox',
                    ['recipient_domain', 'created_at'], unique=False)
