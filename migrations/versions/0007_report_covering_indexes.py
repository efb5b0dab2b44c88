"""Covering indexes for the report's medians

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 02:05:00

The first-response indexes also hold the creation time and the grouping columns (line,
category, priority, assignee, resolved_by, first_response_by): the report finds each median
by reading a short range of one of them in order, and tests the period and the group there
instead of fetching every ticket of the range from the table.
"""
from __future__ import annotations

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

COVER = ['created_at', 'line', 'category', 'priority', 'assignee', 'resolved_by',
         'first_response_by']


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_first_response_s')
        batch_op.drop_index('ix_ticket_first_response_bs')
        batch_op.create_index('ix_ticket_first_response_bs', ['first_response_bs', *COVER],
                              unique=False)
        batch_op.create_index('ix_ticket_first_response_s', ['first_response_s', *COVER],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_first_response_s')
        batch_op.drop_index('ix_ticket_first_response_bs')
        batch_op.create_index('ix_ticket_first_response_bs', ['first_response_bs'], unique=False)
        batch_op.create_index('ix_ticket_first_response_s', ['first_response_s'], unique=False)
