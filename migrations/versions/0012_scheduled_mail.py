"""Digests and reports by mail: the periods done

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-11 10:00:00

`scheduled_mail` keeps one row per digest or scheduled report period done (`digest:line1:
2026-12-07`, `report:0:2026-W49`), inserted in the transaction that queues its mails, so each
goes out once with several daemons and across restarts (issue 20).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import maildesk.db.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scheduled_mail',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('sent_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('mails', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_scheduled_mail'))
    )


def downgrade() -> None:
    op.drop_table('scheduled_mail')
