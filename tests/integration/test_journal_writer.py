"""The journal's SQLite write path stores exactly what SQLAlchemy Core would store."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from uow import Journal, UnitOfWork
from uow.journal_writer import _sqlite_datetime


def test_datetimes_are_written_as_sqlalchemys_sqlite_text() -> None:
    dialect = sqlite.dialect()
    core = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    assert core is not None
    rng = random.Random(3)
    for _ in range(2000):
        moment = datetime(1, 1, 1) + timedelta(microseconds=rng.randrange(0, 315_000_000_000_000_000))
        zone = rng.choice([None, timezone.utc, timezone(timedelta(hours=rng.randint(-12, 12)))])
        moment = moment.replace(tzinfo=zone, microsecond=rng.choice([0, moment.microsecond]))
        assert _sqlite_datetime(moment) == core(moment)
    assert _sqlite_datetime(None) is None


def test_a_unit_reads_back_with_its_times(tmp_path: Path) -> None:
    class Memory:
        def post(self, key: str, context: object, ttl: object = None, fingerprint: object = None) -> None:
            pass

        def get(self, key: str) -> None:
            return None

    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        unit = UnitOfWork(Memory(), journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
        unit.put("k", 1)
        unit.commit()
        found = journal.unit(unit.id)
        assert found is not None
        assert (found.outcome, found.started_at, found.finished_at) == ("committed", unit.started_at, unit.finished_at)
        assert found.started_at.tzinfo == timezone.utc
    finally:
        journal.close()
