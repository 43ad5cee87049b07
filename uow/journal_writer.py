"""How the journal writes: a few named statements, run in one transaction, on one connection per thread.

The statements are SQLAlchemy Core constructs built once from the journal's tables. On PostgreSQL
they run through Core. On SQLite, where Core's per-statement work costs more than the write itself,
each is compiled once to the driver's SQL and run on the thread's own sqlite3 connection between
``BEGIN IMMEDIATE`` and ``COMMIT``, its values passed through the same type processors Core applies
(so what is stored is identical either way).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["JournalWriter", "Operation"]

# (statement name, parameters): a dict runs once, a list of dicts runs as executemany
Operation = tuple[str, Any]

_COLUMNS = {
    "insert_unit": ("id", "workflow_id", "task_id", "attempt", "outcome", "started_at", "finished_at", "error"),
    "insert_write": ("unit_id", "key", "operation", "fingerprint", "checksum", "size"),
    "upsert_fingerprint": ("workflow_id", "fingerprint", "updated_at"),
}


def build_statements(engine: Engine, schema: Any) -> dict[str, Any]:
    """The journal's write statements, as Core constructs for `engine`'s dialect."""
    from sqlalchemy import bindparam

    from uow.sql_engine import dialect_insert

    units, fingerprints = schema.unit_table, schema.workflow_input_table
    upsert = dialect_insert(engine)(fingerprints)
    return {
        "insert_unit": units.insert(),
        "insert_write": schema.write_table.insert(),
        "finish": units.update()
        .where(units.c.id == bindparam("unit_id"))
        .values(outcome=bindparam("outcome"), finished_at=bindparam("finished_at"), error=bindparam("error")),
        "upsert_fingerprint": upsert.on_conflict_do_update(
            index_elements=[fingerprints.c.workflow_id],
            set_={"fingerprint": upsert.excluded.fingerprint, "updated_at": upsert.excluded.updated_at},
        ),
    }


class JournalWriter:
    """Runs lists of operations, each list in one transaction (see the module docstring)."""

    def __init__(self, engine: Engine, schema: Any) -> None:
        self.engine = engine
        self.statements = build_statements(engine, schema)
        self._sqlite = engine.dialect.name == "sqlite"
        self._compiled = {name: _Compiled(engine, name, s) for name, s in self.statements.items()} if self._sqlite else {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[threading.Thread, Any]] = []

    def run(self, operations: Sequence[Operation], *, connection: Connection | None = None) -> None:
        """Run `operations` in one new transaction, or inside the caller's open `connection`."""
        if connection is not None:
            for name, params in operations:
                connection.execute(self.statements[name], params)
            return
        if self._sqlite:
            self._run_on_driver(operations)
            return
        core = self._connection(lambda: self.engine.connect())
        with core.begin():
            for name, params in operations:
                core.execute(self.statements[name], params)

    def close(self) -> None:
        with self._lock:
            opened, self._open = self._open, []
        for _, connection in opened:
            connection.close()
        self._local = threading.local()

    def _run_on_driver(self, operations: Sequence[Operation]) -> None:
        raw = self._connection(lambda: self.engine.raw_connection())
        cursor = raw.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for name, params in operations:
                    self._compiled[name].execute(cursor, params)
                cursor.execute("COMMIT")
            except BaseException:
                if raw.driver_connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
        finally:
            cursor.close()

    def _connection(self, open_one: Callable[[], Any]) -> Any:
        """This thread's connection (opened once: a checkout per write costs more than the write)."""
        connection = getattr(self._local, "connection", None)
        if connection is None or getattr(connection, "closed", False) or getattr(connection, "invalidated", False):
            connection = open_one()
            self._local.connection = connection
            with self._lock:
                ended = [pair for pair in self._open if not pair[0].is_alive()]
                self._open = [pair for pair in self._open if pair[0].is_alive()]
                self._open.append((threading.current_thread(), connection))
            for _, stale in ended:  # their threads are gone and will not use them again
                stale.close()
        return connection


class _Compiled:
    """One statement compiled to the SQLite driver's SQL, with the bind processors of its parameters."""

    def __init__(self, engine: Engine, name: str, statement: Any) -> None:
        dialect = engine.dialect
        keys = _COLUMNS.get(name)
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        self.sql = str(compiled)
        self.names: list[str] = list(compiled.positiontup or ())
        self.processors = [
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in self.names
        ]

    def execute(self, cursor: Any, params: Any) -> None:
        if isinstance(params, dict):
            cursor.execute(self.sql, self._values(params))
        else:
            cursor.executemany(self.sql, [self._values(p) for p in params])

    def _values(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            params[n] if process is None else process(params[n]) for n, process in zip(self.names, self.processors)
        )
