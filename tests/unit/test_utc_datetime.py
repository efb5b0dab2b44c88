"""UTC datetimes on SQLite (db/models.py UTCDateTime): written as the text SQLAlchemy's own
DATETIME writes, since SQL compares them as text, and read back aware, in UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select, text
from sqlalchemy.exc import StatementError

from maildesk.db.models import UTCDateTime

MSK = ZoneInfo("Europe/Moscow")
VALUES = [
    datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc),
    datetime(2026, 12, 4, 13, 0, 0, 5, tzinfo=MSK),             # 10:00:00.000005 UTC
    datetime(2026, 3, 1, 2, 59, 59, 999999, tzinfo=timezone(timedelta(hours=7))),
    datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
]
WRITTEN = ["2026-12-04 10:00:00.000000", "2026-12-04 10:00:00.000005",
           "2026-02-28 19:59:59.999999", "0999-01-02 03:04:05.000000"]


@pytest.fixture()
def table():
    engine = create_engine("sqlite://")
    t = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        yield conn, t


def test_written_as_text_in_utc_and_read_back_aware(table):
    conn, t = table
    conn.execute(insert(t), [{"id": i, "at": v} for i, v in enumerate(VALUES)])
    assert [r[0] for r in conn.execute(text("SELECT at FROM t ORDER BY id"))] == WRITTEN
    back = conn.execute(select(t.c.at).order_by(t.c.id)).scalars().all()
    assert back == VALUES and all(v.tzinfo is timezone.utc for v in back)
    # Compared as text in SQL, with the bound value in another zone: 13:00 in Moscow is 10:00.
    due = conn.execute(select(t.c.id).where(t.c.at <= datetime(2026, 12, 4, 13, 0, tzinfo=MSK))
                       .order_by(t.c.id)).scalars().all()
    assert due == [0, 2, 3]


def test_a_naive_datetime_is_refused(table):
    conn, t = table
    with pytest.raises(StatementError, match="naive datetime"):
        conn.execute(insert(t), {"id": 1, "at": datetime(2026, 12, 4, 10, 0)})
    conn.execute(insert(t), {"id": 2, "at": None})
    assert conn.execute(select(t.c.at)).scalar() is None
