"""outbox and ticket deadlines

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 21:41:39.092393
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import maildesk.db.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=False),
    sa.Column('bounce_tag', sa.String(length=32), nullable=False),
    sa.Column('envelope_from', sa.String(length=512), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sent', 'failed', name='outbox_status', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('give_up_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('bounced_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_outbox_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('message_id', name=op.f('uq_outbox_message_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_bounce_tag'), ['bounce_tag'], unique=False)
        batch_op.create_index('ix_outbox_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_response_due_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolution_due_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('resolution_due_at')
        batch_op.drop_column('first_response_due_at')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_ticket_id'))
        batch_op.drop_index('ix_outbox_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_outbox_bounce_tag'))

    op.drop_table('outbox')
