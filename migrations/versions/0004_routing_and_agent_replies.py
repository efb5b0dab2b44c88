"""routing and agent replies

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 02:40:00

What the routing rules set on a ticket (tags, assignee, SLA policy), the token agents reply
with (never shown to the client), and when the first agent answer went out.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import maildesk.db.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tags', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('assignee', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('sla_policy', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('agent_token', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('first_responded_at',
                                      maildesk.db.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('first_responded_at')
        batch_op.drop_column('agent_token')
        batch_op.drop_column('sla_policy')
        batch_op.drop_column('assignee')
        batch_op.drop_column('tags')
