"""Full-text search: the search_entry index, FTS5 on SQLite, a GIN tsvector on PostgreSQL

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00

`search_entry` holds one row per ticket subject (`kind` "subject") and per mail recorded on a
ticket ("message": its subject and text), with the stems of maildesk.analyzer space-joined
and the message's `internal` flag (issue 19). The engines index those stems only:

* SQLite: `search_fts`, an FTS5 table with external content over search_entry (tokenizer
  unicode61 without diacritics removal: the stems are already lower-cased letters and
  digits), filled by `rebuild` after the back-fill (then `optimize`: one segment, so the
  first inserts find no merging left to do) and kept in sync by the trigger `search_entry_ai`
  on every insert. Autogenerate does not compare it (migrations/env.py).
* PostgreSQL: the stored generated column `tsv`, to_tsvector('simple', stems) (ranking reads
  it instead of parsing the stems again for every match), and its GIN index
  `ix_search_entry_tsv`. Autogenerate does not compare them either.

Back-fill: the subjects of existing tickets and the mails recorded on them (what processing
records: mails that came in, not the acknowledgements or notifications we sent, nor bounces)
are analysed in Python, 500 rows a batch, so memory stays flat; the time grows with the number
of mails (roughly a minute per 100,000 mails of a few KB). The engine's index is built once,
after the rows are in.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from maildesk.analyzer import analyze


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_BATCH = 500
_MAX_TEXT = 100_000      # maildesk/search/index.py MAX_TEXT, as of this revision

_FTS = ("CREATE VIRTUAL TABLE search_fts USING fts5(stems, content='search_entry', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 0')")
_TRIGGER = ("CREATE TRIGGER search_entry_ai AFTER INSERT ON search_entry BEGIN "
            "INSERT INTO search_fts(rowid, stems) VALUES (new.id, new.stems); END")


def _stems(*texts: str | None) -> str:
    """As maildesk/search/index.py writes them: the stems of each text, in order."""
    return " ".join(s for t in texts if t for s in analyze(t[:_MAX_TEXT]))


def _backfill() -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    ticket = sa.Table('ticket', meta, sa.Column('id', sa.Integer), sa.Column('subject', sa.Text))
    message = sa.Table('message', meta, sa.Column('id', sa.Integer),
                       sa.Column('ticket_id', sa.Integer), sa.Column('inbound_id', sa.Integer),
                       sa.Column('subject', sa.Text), sa.Column('body_text', sa.Text),
                       sa.Column('internal', sa.Boolean), sa.Column('thread_reason', sa.String))
    entry = sa.Table('search_entry', meta, sa.Column('kind', sa.String),
                     sa.Column('ticket_id', sa.Integer), sa.Column('message_id', sa.Integer),
                     sa.Column('internal', sa.Boolean), sa.Column('stems', sa.Text))
    subjects = (sa.select(ticket.c.id, ticket.c.subject).where(ticket.c.id > sa.bindparam('after'))
                .order_by(ticket.c.id).limit(_BATCH))
    mails = (sa.select(message.c.id, message.c.ticket_id, message.c.subject,
                       message.c.body_text, message.c.internal)
             .where(message.c.id > sa.bindparam('after'), message.c.inbound_id.is_not(None),
                    message.c.thread_reason != 'bounce')
             .order_by(message.c.id).limit(_BATCH))
    for query, row in (
            (subjects, lambda r: {'kind': 'subject', 'ticket_id': r[0], 'message_id': None,
                                  'internal': False, 'stems': _stems(r[1])}),
            (mails, lambda r: {'kind': 'message', 'ticket_id': r[1], 'message_id': r[0],
                               'internal': bool(r[4]), 'stems': _stems(r[2], r[3])})):
        after = 0
        while True:
            batch = conn.execute(query, {'after': after}).all()
            if not batch:
                break
            conn.execute(entry.insert(), [row(r) for r in batch])
            after = batch[-1][0]


def upgrade() -> None:
    op.create_table('search_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('internal', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('stems', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_search_entry_message_id_message')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_search_entry_ticket_id_ticket')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_search_entry'))
    )
    _backfill()
    with op.batch_alter_table('search_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_search_entry_ticket_id'), ['ticket_id'], unique=False)
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(_FTS)
        op.execute("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
        op.execute("INSERT INTO search_fts(search_fts) VALUES ('optimize')")
        op.execute(_TRIGGER)
    else:
        op.execute("ALTER TABLE search_entry ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
                   "(to_tsvector('simple'::regconfig, stems)) STORED")
        op.execute("CREATE INDEX ix_search_entry_tsv ON search_entry USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP TRIGGER IF EXISTS search_entry_ai")
        op.execute("DROP TABLE IF EXISTS search_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_entry_tsv")
        op.execute("ALTER TABLE search_entry DROP COLUMN IF EXISTS tsv")
    with op.batch_alter_table('search_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_entry_ticket_id'))
    op.drop_table('search_entry')
