"""KPI facts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:58:29

What the KPI report aggregates, written when it happens: on the ticket the first line, the
first answer and the resolution (who, calendar and SLA-clock seconds), the answers to a
waiting client (count and summed waits), line moves and reopenings; indexes for the report.
Tickets from before get what their rows and events tell in calendar time; their
business-time figures stay empty (the calendar lives in the config, not in the database),
so business-time means leave them out.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_line', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('first_response_by', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('first_response_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('first_response_bs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('handling_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('handling_bs', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('escalation_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('reopen_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('response_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('response_s', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('response_bs', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index('ix_ticket_created_at', ['created_at', 'status', 'breached_at'], unique=False)
        batch_op.create_index('ix_ticket_first_response_bs', ['first_response_bs'], unique=False)
        batch_op.create_index('ix_ticket_first_response_s', ['first_response_s'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        def seconds(a: str, b: str) -> str:
            return f"CAST(EXTRACT(EPOCH FROM ({b} - {a})) AS INTEGER)"
    else:
        def seconds(a: str, b: str) -> str:
            return f"CAST(ROUND((julianday({b}) - julianday({a})) * 86400) AS INTEGER)"

    def events(kind: str) -> str:
        return (f"(SELECT COUNT(*) FROM ticket_event e WHERE e.ticket_id = ticket.id "
                f"AND e.kind = '{kind}')")
    op.execute(f"""UPDATE ticket SET first_line = line,
        escalation_count = {events('escalated')}, reopen_count = {events('reopened')},
        first_response_s = CASE WHEN first_responded_at IS NOT NULL
            THEN {seconds('created_at', 'first_responded_at')} END,
        handling_s = CASE WHEN resolved_at IS NOT NULL
            THEN {seconds('created_at', 'resolved_at')} END""")
    op.execute("""UPDATE ticket SET response_count = 1, response_s = first_response_s
        WHERE first_response_s IS NOT NULL""")


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_first_response_s')
        batch_op.drop_index('ix_ticket_first_response_bs')
        batch_op.drop_index('ix_ticket_created_at')
        batch_op.drop_column('response_bs')
        batch_op.drop_column('response_s')
        batch_op.drop_column('response_count')
        batch_op.drop_column('reopen_count')
        batch_op.drop_column('escalation_count')
        batch_op.drop_column('handling_bs')
        batch_op.drop_column('handling_s')
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('first_response_bs')
        batch_op.drop_column('first_response_s')
        batch_op.drop_column('first_response_by')
        batch_op.drop_column('first_line')

