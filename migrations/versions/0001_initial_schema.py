"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 20:36:46.185168
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import maildesk.db.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('counter',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_counter'))
    )
    op.create_table('raw_message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('stored_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_message')),
    sa.UniqueConstraint('sha256', name=op.f('uq_raw_message_sha256'))
    )
    op.create_table('ticket',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('reply_token', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('subject_key', sa.String(length=255), nullable=False),
    sa.Column('status', sa.Enum('new', 'open', 'pending', 'resolved', 'closed', name='ticket_status', native_enum=False, length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=True),
    sa.Column('line', sa.String(length=64), nullable=True),
    sa.Column('category', sa.String(length=128), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('requester', sa.String(length=320), nullable=False),
    sa.Column('requester_name', sa.String(length=320), nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('linked_ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_activity_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['linked_ticket_id'], ['ticket.id'], name=op.f('fk_ticket_linked_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket')),
    sa.UniqueConstraint('number', name=op.f('uq_ticket_number'))
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_requester'), ['requester'], unique=False)
        batch_op.create_index('ix_ticket_status_number', ['status', 'number'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_subject_key'), ['subject_key'], unique=False)

    op.create_table('inbound',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('raw_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.Enum('smtp', 'imap', 'pipe', name='channel', native_enum=False, length=16), nullable=False),
    sa.Column('source', sa.String(length=512), nullable=True),
    sa.Column('mail_from', sa.String(length=512), nullable=True),
    sa.Column('rcpt_to', sa.JSON(), nullable=False),
    sa.Column('received_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.Enum('pending', 'done', 'duplicate', 'quarantined', name='inbound_status', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('processed_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['raw_id'], ['raw_message.id'], name=op.f('fk_inbound_raw_id_raw_message')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound'))
    )
    with op.batch_alter_table('inbound', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_raw_id'), ['raw_id'], unique=False)
        batch_op.create_index('ix_inbound_status_id', ['status', 'id'], unique=False)

    op.create_table('participant',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=320), nullable=False),
    sa.Column('role', sa.Enum('client', 'agent', 'system', name='role', native_enum=False, length=16), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_participant_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant')),
    sa.UniqueConstraint('ticket_id', 'address', name=op.f('uq_participant_ticket_id'))
    )
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participant_address'), ['address'], unique=False)

    op.create_table('ticket_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=320), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_event_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_event'))
    )
    with op.batch_alter_table('ticket_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_event_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('inbound_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('direction', sa.Enum('in', 'out', name='direction', native_enum=False, length=16), nullable=False),
    sa.Column('role', sa.Enum('client', 'agent', 'system', name='role', native_enum=False, length=16), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('dedupe_key', sa.String(length=64), nullable=True),
    sa.Column('from_address', sa.String(length=320), nullable=True),
    sa.Column('from_name', sa.String(length=320), nullable=False),
    sa.Column('to', sa.JSON(), nullable=False),
    sa.Column('cc', sa.JSON(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('sent_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('received_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('has_html', sa.Boolean(), nullable=False),
    sa.Column('thread_reason', sa.String(length=32), nullable=False),
    sa.Column('internal', sa.Boolean(), nullable=False),
    sa.Column('defects', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound.id'], name=op.f('fk_message_inbound_id_inbound')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_message_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_message_dedupe_key')),
    sa.UniqueConstraint('inbound_id', name=op.f('uq_message_inbound_id'))
    )
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('attachment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=512), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('part', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_attachment_message_id_message')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachment'))
    )
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachment_message_id'), ['message_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachment_message_id'))

    op.drop_table('attachment')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_message_message_id'))

    op.drop_table('message')
    with op.batch_alter_table('ticket_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_event_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_ticket_event_at'))

    op.drop_table('ticket_event')
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participant_address'))

    op.drop_table('participant')
    with op.batch_alter_table('inbound', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_status_id')
        batch_op.drop_index(batch_op.f('ix_inbound_raw_id'))

    op.drop_table('inbound')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_subject_key'))
        batch_op.drop_index('ix_ticket_status_number')
        batch_op.drop_index(batch_op.f('ix_ticket_requester'))

    op.drop_table('ticket')
    op.drop_table('raw_message')
    op.drop_table('counter')
