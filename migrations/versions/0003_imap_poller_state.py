"""imap poller state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:53:13.446789

The IMAP poller's progress per account and folder, the copies it put into quarantine folders,
and two marks it sets on what it stores (backlog without autoreply, update-only folders).
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import maildesk.db.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('imap_folder',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account', sa.String(length=128), nullable=False),
    sa.Column('folder', sa.String(length=512), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('last_uid', sa.BigInteger(), nullable=False),
    sa.Column('acked_uid', sa.BigInteger(), nullable=False),
    sa.Column('backlog_until', sa.BigInteger(), nullable=False),
    sa.Column('started_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imap_folder')),
    sa.UniqueConstraint('account', 'folder', name=op.f('uq_imap_folder_account'))
    )
    op.create_table('imap_quarantine_copy',
    sa.Column('inbound_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('copied_at', maildesk.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound.id'], name=op.f('fk_imap_quarantine_copy_inbound_id_inbound')),
    sa.PrimaryKeyConstraint('inbound_id', name=op.f('pk_imap_quarantine_copy'))
    )
    with op.batch_alter_table('inbound', schema=None) as batch_op:
        batch_op.add_column(sa.Column('no_autoreply', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('update_only', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('inbound', schema=None) as batch_op:
        batch_op.drop_column('update_only')
        batch_op.drop_column('no_autoreply')

    op.drop_table('imap_quarantine_copy')
    op.drop_table('imap_folder')
