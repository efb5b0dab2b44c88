"""SLA timers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 19:35:29

Due times of SLA warnings and breaches, OLA moves and auto-closes (ticket_timer); on the
ticket: when it came to its line, the next-response deadline, the first breach, the pauses
of its clock, the client's rating. Tickets from before get their line entered at creation;
`serve --only timers` arms the timers of open tickets that have none.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import maildesk.db.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ticket_timer',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('due_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.Enum('pending', 'fired', 'cancelled', name='timer_state', native_enum=False, length=16), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('fired_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_timer_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_timer'))
    )
    with op.batch_alter_table('ticket_timer', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_timer_state_due', ['state', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_timer_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('line_entered_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_response_since', maildesk.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_response_due_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('breached_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('pauses', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('rating', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('rated_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE ticket SET line_entered_at = created_at")



def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('rated_at')
        batch_op.drop_column('rating')
        batch_op.drop_column('pauses')
        batch_op.drop_column('breached_at')
        batch_op.drop_column('next_response_due_at')
        batch_op.drop_column('next_response_since')
        batch_op.drop_column('line_entered_at')

    with op.batch_alter_table('ticket_timer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_timer_ticket_id'))
        batch_op.drop_index('ix_ticket_timer_state_due')

    op.drop_table('ticket_timer')
