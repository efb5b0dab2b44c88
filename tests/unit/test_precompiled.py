"""A statement compiled once (db/precompiled.py) finds what SQLAlchemy's own execution finds:
its own constants bound (an enum member as its value), the caller's values converted by their
columns' types (an aware datetime as SQLite's UTC text)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, create_engine, insert, select

from maildesk.db.models import Base, TicketTimer, TimerState
from maildesk.db.precompiled import Precompiled

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=timezone(timedelta(hours=3)))   # 06:00 UTC


def test_precompiled_statement_finds_the_rows_sqlalchemy_finds():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[TicketTimer.__table__])
    due = (select(TicketTimer.id)
           .where(TicketTimer.state == TimerState.PENDING, TicketTimer.due_at <= bindparam("now"))
           .order_by(TicketTimer.due_at).limit(bindparam("limit")))
    rows = [(1, TimerState.PENDING, -60), (2, TimerState.FIRED, -60), (3, TimerState.PENDING, -1),
            (4, TimerState.PENDING, 1), (5, TimerState.PENDING, -30)]
    with engine.begin() as conn:
        conn.execute(insert(TicketTimer), [
            {"id": i, "ticket_id": 1, "kind": "resolution", "stage": "warning", "state": state,
             "due_at": NOW + timedelta(minutes=m), "created_at": NOW} for i, state, m in rows])
        params = {"now": NOW, "limit": 10}
        expected = conn.execute(due, params).scalars().all()
        assert expected == [1, 5, 3]
        assert [r[0] for r in Precompiled(due).execute(conn, params)] == expected
        assert [r[0] for r in Precompiled(due).execute(conn, {**params, "limit": 2})] == [1, 5]
