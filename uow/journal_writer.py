"""How the journal writes: a few statements per transaction, on one connection per thread.

A transaction carries a `Batch`: run rows (a run that begins, or ends: one upsert), unit rows (new units, and the final outcome of units recorded
earlier as "prepared": one upsert keyed by the unit id), write rows (one upsert: a new row, or the
checksum of a row reserved ahead), workflow input fingerprints (one upsert) and claim events (one
insert); and, for units
reserved ahead (`Journal.reserve`), the deletes of reserved rows left unused. Each gets one
statement, run once per row by the driver (`executemany`), so a batch costs the same few
statements whatever number of units it carries.

The statements are SQLAlchemy Core constructs built once from the journal's tables. On PostgreSQL,
and inside a storage's own transaction, they run through Core. On SQLite each is compiled once by
Core to the dialect's SQL and run on the cursor of the writer's pooled connection
(`Engine.raw_connection()`: SQLAlchemy's pool, with the engine's connect-time PRAGMAs) between
``BEGIN IMMEDIATE`` and ``COMMIT``, its values passed through the bind processors Core applies, so
the stored rows are identical either way. Measured on a unit commit (see benchmarks/journal_cost.py
and the README): Core's execution layer costs about 10 us per statement and 30 us per transaction
there (execution context, events, result set-up), more than SQLite's own work for the whole unit.

One writer holds ONE connection, opened on first use and kept (a pool checkout per unit costs more
than the statements), and runs one batch at a time on it, whatever the number of threads: the
journal's writes are serialised anyway (SQLite has one writer; the journal keeps its queue in
order), so a connection per thread only filled the pool, and the 16th thread waited for it.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["Batch", "JournalWriter", "build_statements"]

Row = dict[str, Any]

_RUN_COLUMNS = (
    "id", "workflow_id", "mode", "status", "started_at", "finished_at", "tasks_completed", "tasks_restored",
    "tasks_failed", "tasks_adopted", "host", "pid", "storage",
)  # fmt: skip
_COLUMNS = {
    "upsert_run": _RUN_COLUMNS,
    "upsert_unit": ("id", "workflow_id", "task_id", "attempt", "outcome", "started_at", "finished_at", "error", "run_id"),
    "release_writes": ("unit_id",),
    "drop_unit": ("id",),
    "insert_write": ("unit_id", "key", "operation", "fingerprint", "checksum", "size"),
    "upsert_fingerprint": ("workflow_id", "fingerprint", "updated_at"),
    "insert_claim": ("run_id", "workflow_id", "task_id", "key", "event", "owner", "epoch", "at", "previous_owner", "late"),
}


@dataclass
class Batch:
    """The rows of one journal transaction, written in this order (a write row needs its unit row).

    `released` and `dropped` concern units reserved ahead (`Journal.reserve`): the write rows of
    the released ones are deleted first, then the dropped unit rows.
    """

    released: list[Row] = field(default_factory=list)  # {"unit_id": ...}: delete its write rows
    dropped: list[Row] = field(default_factory=list)  # {"id": ...}: delete the unit row
    units: list[Row] = field(default_factory=list)
    writes: list[Row] = field(default_factory=list)
    fingerprints: dict[str, Row] = field(default_factory=dict)  # workflow id -> its newest row
    runs: dict[str, Row] = field(default_factory=dict)  # run id -> its newest row (its end replaces its start)
    claims: list[Row] = field(default_factory=list)  # claim events, in the order they happened

    def statements(self) -> list[tuple[str, Sequence[Row]]]:
        named: list[tuple[str, Sequence[Row]]] = [("upsert_run", list(self.runs.values()))]
        named += [("release_writes", self.released), ("drop_unit", self.dropped)]
        named += [("upsert_unit", self.units), ("insert_write", self.writes)]
        named.append(("upsert_fingerprint", list(self.fingerprints.values())))
        named.append(("insert_claim", self.claims))
        return [(name, rows) for name, rows in named if rows]


def build_statements(engine: Engine, schema: Any) -> dict[str, Any]:
    """The journal's write statements, as Core constructs for `engine`'s dialect."""
    from sqlalchemy import bindparam

    from uow.sql_engine import dialect_insert

    insert = dialect_insert(engine)
    units, writes, fingerprints = schema.unit_table, schema.write_table, schema.workflow_input_table
    runs, claims = schema.run_table, schema.claim_table
    run_upsert = insert(runs)
    unit_upsert = insert(units)
    write_upsert = insert(writes)
    fingerprint_upsert = insert(fingerprints)
    return {
        # a run is inserted when it begins; its end fills in the status, the end time and the counts
        "upsert_run": run_upsert.on_conflict_do_update(
            index_elements=[runs.c.id],
            set_={name: run_upsert.excluded[name] for name in _RUN_COLUMNS if name not in ("id", "started_at")},
        ),
        "release_writes": writes.delete().where(writes.c.unit_id == bindparam("unit_id")),
        "drop_unit": units.delete().where(units.c.id == bindparam("id")),
        # a new unit is inserted; a unit already recorded as "prepared" gets its final outcome
        # (and its real start time: a unit reserved ahead was stamped when reserved)
        "upsert_unit": unit_upsert.on_conflict_do_update(
            index_elements=[units.c.id],
            set_={name: unit_upsert.excluded[name] for name in ("outcome", "started_at", "finished_at", "error", "run_id")},
        ),
        # a new write row is inserted; the reserved write row of a unit reserved ahead gets its checksum
        "insert_write": write_upsert.on_conflict_do_update(
            index_elements=[writes.c.unit_id, writes.c.key],
            set_={name: write_upsert.excluded[name] for name in ("operation", "fingerprint", "checksum", "size")},
        ),
        # only a changed fingerprint rewrites the row: an unchanged one costs no page write
        "upsert_fingerprint": fingerprint_upsert.on_conflict_do_update(
            index_elements=[fingerprints.c.workflow_id],
            set_={name: fingerprint_upsert.excluded[name] for name in ("fingerprint", "updated_at")},
            where=fingerprints.c.fingerprint.is_distinct_from(fingerprint_upsert.excluded.fingerprint),
        ),
        # a claim event is a new row (its id numbered by the database)
        "insert_claim": claims.insert(),
    }


class JournalWriter:
    """Runs batches, each in one transaction, one at a time on one kept connection (module docstring)."""

    def __init__(self, engine: Engine, schema: Any) -> None:
        self.engine = engine
        self.statements = build_statements(engine, schema)
        sqlite = engine.dialect.name == "sqlite"
        self._driver_sql = {name: _DriverStatement(engine, name, s) for name, s in self.statements.items()} if sqlite else {}
        self._lock = threading.Lock()  # one batch at a time on the kept connection
        self._core: Connection | None = None  # PostgreSQL: the kept Core connection
        self._pooled: Any = None  # SQLite: the kept DBAPI connection and its cursor
        self._cursor: Any = None

    def run(self, batch: Batch, *, connection: Connection | None = None) -> None:
        """Write `batch` in one new transaction, or inside the caller's open `connection`."""
        if connection is not None:
            for name, rows in batch.statements():
                connection.execute(self.statements[name], list(rows))
            return
        with self._lock:
            if self._driver_sql:
                self._run_on_cursor(batch)
                return
            core = self._connection()
            with core.begin():
                for name, rows in batch.statements():
                    core.execute(self.statements[name], list(rows))

    def _run_on_cursor(self, batch: Batch) -> None:
        if self._pooled is None or not self._pooled.is_valid:
            self._pooled = self.engine.raw_connection()
            self._cursor = self._pooled.cursor()
        pooled, cursor = self._pooled, self._cursor
        cursor.execute("BEGIN IMMEDIATE")
        try:
            for name, rows in batch.statements():
                self._driver_sql[name].run(cursor, rows)
            cursor.execute("COMMIT")
        except BaseException:
            if pooled.driver_connection.in_transaction:
                cursor.execute("ROLLBACK")
            raise

    def _connection(self) -> Connection:
        if self._core is None or self._core.closed or self._core.invalidated:
            self._core = self.engine.connect()
        return self._core

    def close(self) -> None:
        with self._lock:
            core, pooled = self._core, self._pooled
            self._core = self._pooled = self._cursor = None
        if core is not None:
            core.close()
        if pooled is not None:
            pooled.close()


class _DriverStatement:
    """One statement compiled to the dialect's SQL, with the bind processors of its parameters."""

    def __init__(self, engine: Engine, name: str, statement: Any) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(_COLUMNS[name]))
        self.sql = str(compiled)
        self.names: list[str] = list(compiled.positiontup or ())
        self.processors = [
            _faster(compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in self.names
        ]
        self._pairs = list(zip(self.names, self.processors))

    def run(self, cursor: Any, rows: Sequence[Row]) -> None:
        if len(rows) == 1:
            cursor.execute(self.sql, self._values(rows[0]))
        else:
            cursor.executemany(self.sql, [self._values(row) for row in rows])

    def _values(self, row: Row) -> list[Any]:
        return [row[n] if process is None else process(row[n]) for n, process in self._pairs]


_PROBES = (
    datetime(2026, 12, 1, 20, 5, 7, 123456, tzinfo=timezone.utc),
    datetime(999, 1, 2, 3, 4, 5),
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
)


def _sqlite_datetime(value: Any) -> Any:
    """SQLite's DATETIME text ("YYYY-MM-DD HH:MM:SS.ffffff", any offset dropped) in one call."""
    if value is None:
        return None
    return value.isoformat(" ", "microseconds")[:26]  # 4-digit year: the offset, if any, starts at 26


def _faster(processor: Any) -> Any:
    """`_sqlite_datetime` in place of a bind processor that gives the same text for datetimes
    (SQLAlchemy's SQLite DateTime processor builds it from a dict, four times slower); else `processor`."""
    if processor is None:
        return None
    try:
        same = all(processor(probe) == _sqlite_datetime(probe) for probe in _PROBES) and processor(None) is None
    except Exception:
        return processor
    return _sqlite_datetime if same else processor
