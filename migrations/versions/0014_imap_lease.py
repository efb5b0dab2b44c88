"""imap_lease: one daemon polls an IMAP folder at a time, a standby takes over

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 23:10:00

Several daemons on one database each watched every configured folder (issue 22): now the
daemon that holds a folder's lease polls it and renews the lease; the others stand by and take
it over once it runs out. An empty table: nothing to carry over.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maildesk.db.models import UTCDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'imap_lease',
        sa.Column('account', sa.String(length=128), nullable=False),
        sa.Column('folder', sa.String(length=512), nullable=False),
        sa.Column('owner', sa.String(length=255), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('account', 'folder', name=op.f('pk_imap_lease')),
    )


def downgrade() -> None:
    op.drop_table('imap_lease')
