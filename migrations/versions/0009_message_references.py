"""Message references: a mail that arrives after a reply to it joins the reply's ticket

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:30:00

`message_reference` keeps, for every mail recorded on a ticket, the Message-IDs its
In-Reply-To and References name (In-Reply-To, then the newest References; at most 50 a
mail), indexed on the named id, so the thread stage finds in one read the ticket of a reply
that came before the mail it answers (issue 18).

Back-fill: the mails recorded before this revision get their rows from their stored raw
bytes (`message` -> `inbound` -> `raw_message.data`). Only the first 64 KiB of each mail is
read, and only its header block is looked at: the first In-Reply-To and References fields,
the bracketed ids in them. That is the parser's reading for ordinary headers; a mail whose
id headers are not UTF-8, or use the obsolete or bracket-less forms, gets no rows (it can
still be found the old way, by its own Message-ID). Bounces recorded on a ticket are left
out, as they are when mail is processed. Rows are read and written in batches of 500, so
memory stays flat; the time grows with the number of recorded mails.
"""
from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_MAX_PER_MESSAGE = 50          # effects/apply.py MAX_STORED_REFERENCES, as of this revision
_HEAD_BYTES = 64 * 1024
_BATCH = 500
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = re.compile(rb"^(in-reply-to|references)[ \t]*:(.*(?:\r?\n[ \t].*)*)",
                    re.IGNORECASE | re.MULTILINE)
_BRACKETED_ID = re.compile(r"<\s*([^<>\s\x00-\x1f\x7f]{1,998})\s*>")


def _references(head: bytes) -> list[str]:
    """In-Reply-To, then the newest References, as apply.stored_references keeps them."""
    end = _HEADER_END.search(head)
    block = head[:end.start()] if end else head
    fields: dict[bytes, list[str]] = {}
    for match in _FIELD.finditer(block):
        name = match.group(1).lower()
        if name in fields:           # the first field of a name counts, as in the parser
            continue
        try:
            value = match.group(2).decode("utf-8")
        except UnicodeDecodeError:
            fields[name] = []
            continue
        fields[name] = _BRACKETED_ID.findall(value)
    ids = [*fields.get(b"in-reply-to", []), *reversed(fields.get(b"references", []))]
    return list(dict.fromkeys(ids))[:_MAX_PER_MESSAGE]


def _backfill() -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    message = sa.Table('message', meta, sa.Column('id', sa.Integer),
                       sa.Column('ticket_id', sa.Integer), sa.Column('inbound_id', sa.Integer),
                       sa.Column('message_id', sa.String), sa.Column('thread_reason', sa.String))
    inbound = sa.Table('inbound', meta, sa.Column('id', sa.Integer),
                       sa.Column('raw_id', sa.Integer))
    raw = sa.Table('raw_message', meta, sa.Column('id', sa.Integer),
                   sa.Column('data', sa.LargeBinary))
    reference = sa.Table('message_reference', meta, sa.Column('message_id', sa.Integer),
                         sa.Column('ticket_id', sa.Integer), sa.Column('referenced_id', sa.String))
    query = (sa.select(message.c.id, message.c.ticket_id, message.c.message_id,
                       sa.func.substr(raw.c.data, 1, _HEAD_BYTES, type_=sa.LargeBinary))
             .join(inbound, inbound.c.id == message.c.inbound_id)
             .join(raw, raw.c.id == inbound.c.raw_id)
             .where(message.c.id > sa.bindparam('after'), message.c.thread_reason != 'bounce')
             .order_by(message.c.id).limit(_BATCH))
    after = 0
    while True:
        batch = conn.execute(query, {'after': after}).all()
        if not batch:
            return
        rows = [{'message_id': mid, 'ticket_id': tid, 'referenced_id': ref}
                for mid, tid, own, head in batch
                for ref in _references(bytes(head or b'')) if ref != own]
        if rows:
            conn.execute(reference.insert(), rows)
        after = batch[-1][0]


def upgrade() -> None:
    op.create_table('message_reference',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('referenced_id', sa.String(length=998), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_reference_message_id_message')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_message_reference_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_reference'))
    )
    with op.batch_alter_table('message_reference', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_reference_message_id'), ['message_id'], unique=False)
        batch_op.create_index('ix_message_reference_referenced_id', ['referenced_id', 'ticket_id'], unique=False)
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table('message_reference', schema=None) as batch_op:
        batch_op.drop_index('ix_message_reference_referenced_id')
        batch_op.drop_index(batch_op.f('ix_message_reference_message_id'))
    op.drop_table('message_reference')
