"""tickets list --assignee / --unassigned: an index on ticket (assignee, number)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-12 10:00:00

`maildesk tickets list --assignee ADDRESS` (and `--unassigned`, assignee IS NULL) lists an
agent's tickets newest first (issue 20); without an index it read the newest tickets by number
until the limit filled, every ticket when few match. Building it reads the table once.
"""
from __future__ import annotations

from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_assignee_number', ['assignee', 'number'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_assignee_number')
