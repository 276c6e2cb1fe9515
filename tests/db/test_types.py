"""Column types both databases share: on SQLite, which keeps timestamps as text, a
UTC timestamp reads back aware and in UTC whatever form of ISO text the column
holds (the fast path for the text sandbay writes agrees with the general one)."""

from datetime import UTC, datetime

import sqlalchemy as sa

from sandbay.db.base import UTCDateTime

READS = {
    "2026-11-29 21:26:27.123456": datetime(2026, 11, 29, 21, 26, 27, 123456, tzinfo=UTC),
    "2026-11-29 21:26:27": datetime(2026, 11, 29, 21, 26, 27, tzinfo=UTC),
    "2026-11-29 21:26:27.5": datetime(2026, 11, 29, 21, 26, 27, 500000, tzinfo=UTC),
    "2026-11-29T21:26:27+02:00": datetime(2026, 11, 29, 19, 26, 27, tzinfo=UTC),
    "2026-11-29T21:26:27Z": datetime(2026, 11, 29, 21, 26, 27, tzinfo=UTC),
    "2026-11-29": datetime(2026, 11, 29, tzinfo=UTC),
}


def test_sqlite_timestamps_read_back_aware_in_utc_from_any_iso_text() -> None:
    table = sa.Table(
        "stamps",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UTCDateTime, nullable=True),
    )
    written = datetime(2026, 11, 29, 23, 0, 0, 42, tzinfo=UTC)
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        table.metadata.create_all(conn)
        raw = sa.text("INSERT INTO stamps (id, at) VALUES (:id, :at)")
        for i, text in enumerate(READS):
            conn.execute(raw, {"id": i, "at": text})
        conn.execute(raw, {"id": len(READS), "at": None})
        conn.execute(table.insert(), {"id": len(READS) + 1, "at": written})
        read = [row.at for row in conn.execute(sa.select(table).order_by(table.c.id))]
    engine.dispose()
    assert read == [*READS.values(), None, written]
    assert all(value.tzinfo is UTC for value in read if value is not None)
