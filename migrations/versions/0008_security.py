"""Security: strong reply tokens, signed return paths, authenticity and autoreply caps

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 17:30:00

Reply tokens grow to 128 bits (26 base32 characters); old tickets keep their short tokens.
The outbox's bounce tag holds the signed tag (id, day, key id, HMAC); rows queued before keep
their 16-hex tag, honoured until it expires. `inbound.auth_results` keeps the listener's own
SPF/DKIM/DMARC verdict. `outbox.recipient_domain` and two indexes serve the per-domain and
total caps on automatic mail.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.alter_column('reply_token', existing_type=sa.String(length=16),
                              type_=sa.String(length=40), existing_nullable=False)
        batch_op.alter_column('agent_token', existing_type=sa.String(length=16),
                              type_=sa.String(length=40), existing_nullable=True)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('bounce_tag', existing_type=sa.String(length=32),
                              type_=sa.String(length=64), existing_nullable=False)
        batch_op.add_column(sa.Column('recipient_domain', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_outbox_kind_created_at', ['kind', 'created_at'], unique=False)
        batch_op.create_index('ix_outbox_recipient_domain_created_at',
                              ['recipient_domain', 'created_at'], unique=False)
    with op.batch_alter_table('inbound', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_results', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound', schema=None) as batch_op:
        batch_op.drop_column('auth_results')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_recipient_domain_created_at')
        batch_op.drop_index('ix_outbox_kind_created_at')
        batch_op.drop_column('recipient_domain')
        batch_op.alter_column('bounce_tag', existing_type=sa.String(length=64),
                              type_=sa.String(length=32), existing_nullable=False)
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.alter_column('agent_token', existing_type=sa.String(length=40),
                              type_=sa.String(length=16), existing_nullable=True)
        batch_op.alter_column('reply_token', existing_type=sa.String(length=40),
                              type_=sa.String(length=16), existing_nullable=False)
