"""`StorageSQL`: checkpoints in one SQL table (SQLite or PostgreSQL), with versions for optimistic concurrency.

Table (defined in `uow.checkpoint_schema`, created by the migrations, never implicitly in an existing
database)::

    dotflow_checkpoint(key PK, document TEXT, expires_at FLOAT NULL, version VARCHAR(32), updated_at)

`document` is the checkpoint document of `dotflow.values.checkpoint_format` (value, fingerprint
and expiry in one JSON object), so values round-trip exactly and are never unpickled or evaluated.
`expires_at` repeats the document's expiry so SQL can filter on it: a row whose time has passed
reads as absent everywhere and is replaced by the next write. `version` is a random token that
changes on every write: `post_if` and `delete_if` are single conditional statements (an upsert whose
update only applies to an expired row, an UPDATE or DELETE ... WHERE version = ...), so they are
atomic against every other writer of the database, in any process or machine.

`transaction()` runs several writes in one database transaction (all or nothing); the unit of work
uses it for multi-key commits, and a `uow.Journal` on the same database writes its entry in it.

Leases (claims) are rows of the same table keyed ``<key>.lease``, timed by the database's clock
(`sql_leases`); `lease_transaction()` is `transaction()`, where a commit can check and release a
lease (`holds_lease`, `release_lease`) so a worker whose lease changed hands cannot commit. They are
never listed, counted or deleted as checkpoints.
A SQLite file that does not exist yet is created at the current schema revision.

Errors: every driver error (in the constructor, reads, writes, leases, `transaction()`) becomes a
`StorageError` of one line naming the database (password masked) and the cause; a failure that may
pass (the server down or unreachable, the connection lost, a SQLite lock still held after the busy
timeout, a PostgreSQL lock or serialization timeout: `uow.sql_engine.is_transient`) is a
`TransientStorageError`, so the engine tries a failed commit again; anything else (a value too long
for a column, a missing table, a read-only file) is final.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, cast

try:
    from sqlalchemy import MetaData, Table, and_, func, inspect, or_, select
    from sqlalchemy.engine import Connection

    from uow.checkpoint_schema import DEFAULT_TABLE, MAX_KEY, checkpoint_table, metadata
except ModuleNotFoundError as _missing:  # ImportError, not ModuleNotFoundError: names the extra
    raise ImportError("StorageSQL needs SQLAlchemy and Alembic: pip install 'dotflow-uow[sql]'") from _missing

from dotflow.abc.storage import Checkpoint, VersionedStorage
from dotflow.core.context import Context
from dotflow.core.exception import StorageError, TransientStorageError
from dotflow.values.checkpoint_format import encode_document, parse_document
from dotflow.storage.sql_leases import SQLLeases
from uow.leases import LEASE_SUFFIX, Lease
from uow.sql_engine import BUSY_TIMEOUT, database_errors, make_engine, read_only

__all__ = ["DEFAULT_TABLE", "SQLTransaction", "StorageSQL", "checkpoint_table", "metadata"]


class StorageSQL(VersionedStorage):
    """Checkpoints in an SQL table; `url_or_engine` is a URL (sqlite:///..., postgresql://...) or an Engine."""

    def __init__(
        self,
        url_or_engine: Any,
        table: str = DEFAULT_TABLE,
        *,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] | None = None,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        """`clock` returns the unix time used for ttl (wall time shared by every process and machine;
        default `time.time`) and, when given, for leases too (else the database's clock times them).

        A database that cannot be reached or opened is a `StorageError` naming it (password masked).
        """
        super().__init__()
        self._clock = time.time if clock is None else clock
        self._lease_clock = clock
        from uow.journal_migrate import ensure_schema

        if not isinstance(table, str) or not table:
            raise TypeError(f"table must be a non-empty str, not {table!r}")
        self.engine = make_engine(url_or_engine, synchronous=synchronous, busy_timeout=busy_timeout)
        try:
            with self._errors():
                ensure_schema(self.engine)
                has_table = table == DEFAULT_TABLE or inspect(self.engine).has_table(table)
            if not has_table:
                raise ValueError(
                    f"table {table!r} does not exist; the migrations create {DEFAULT_TABLE!r} "
                    "(create another with the same columns yourself)"
                )
        except BaseException:
            if self.engine is not url_or_engine:
                self.engine.dispose()
            raise
        self.table = checkpoint_table(table, MetaData())
        # A storage nobody closes releases its pooled connections when collected (or at exit); `close` at once.
        self._dispose = weakref.finalize(self, self.engine.dispose)

    def __repr__(self) -> str:
        return f"StorageSQL({self.engine.url.render_as_string(hide_password=True)!r}, table={self.table.name!r})"

    def close(self) -> None:
        self._dispose()

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}"

    # -- one transaction per call ----------------------------------------------------------------

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self._run(lambda ops: ops.post(key, context, ttl, fingerprint))

    def post_many(self, items: Iterable[tuple[str, Any, int | None, str | None]]) -> None:
        """Write `(key, context, ttl, fingerprint)` items in ONE transaction: all of them, or none."""
        batch = list(items)

        def write_all(ops: SQLTransaction) -> None:
            for key, context, ttl, fingerprint in batch:
                ops.post(key, context, ttl, fingerprint)

        self._run(write_all)

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        return bool(self._run(lambda ops: ops.post_if(key, context, version=version, ttl=ttl, fingerprint=fingerprint)))

    def delete_if(self, key: str, *, version: str | None) -> bool:
        return bool(self._run(lambda ops: ops.delete_if(key, version=version)))

    def get(self, key: str) -> Context:
        checkpoint = self.read_checkpoint(key)
        return Context() if checkpoint is None else checkpoint.context

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        _check_key(key)
        with self._errors(), read_only(self.engine) as connection:
            return SQLTransaction(self.table, connection, self._clock).read_checkpoint(key)

    def delete(self, key: str) -> bool:
        return bool(self._run(lambda ops: ops.delete(key)))

    def delete_prefix(self, prefix: str) -> int:
        return int(self._run(lambda ops: ops.delete_prefix(prefix)))

    def list_keys(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)
        table = self.table
        query = select(table.c.key).where(_live(table, self._clock()), _checkpoints(table, prefix))
        with self._errors(), read_only(self.engine) as connection:
            return sorted(connection.execute(query).scalars())

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Compare-and-set on the stored payload, in one transaction (row locked on PostgreSQL)."""

        def swap(ops: SQLTransaction) -> bool:
            current = ops.read_checkpoint(key, for_update=True)
            if (None if current is None else current.context.storage) != expected:
                return False
            ops.post(key, new, ttl, fingerprint)
            return True

        return bool(self._run(swap))

    # -- leases ----------------------------------------------------------------------------------

    def create_lease(self, key: str, *, owner: str, ttl: float) -> Lease | None:
        return cast("Lease | None", self._run(lambda ops: ops.leases.create(key, owner, ttl)))

    def read_lease(self, key: str) -> Lease | None:
        with self._errors(), read_only(self.engine) as connection:
            return SQLLeases(self.table, connection, self._lease_clock).read(key)

    def replace_lease(self, key: str, *, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        return cast("Lease | None", self._run(lambda ops: ops.leases.replace(key, version, owner, epoch, ttl)))

    def delete_lease(self, key: str, *, version: str) -> bool:
        return bool(self._run(lambda ops: ops.leases.delete(key, version)))

    # -- several writes, all or nothing ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[SQLTransaction]:
        """One database transaction: commits when the block ends normally, rolls back on an exception.
        A driver error in it (the block's statements or the commit) is a `StorageError` (see the module)."""
        with self._errors(), self._transaction() as ops:
            yield ops

    lease_transaction = transaction

    @contextmanager
    def _transaction(self) -> Iterator[SQLTransaction]:
        with self.engine.begin() as connection:
            yield SQLTransaction(self.table, connection, self._clock, self._lease_clock)

    def _run(self, operation: Any) -> Any:
        """`operation(ops)` in one transaction, tried again while SQLite reports a lock; driver errors translated."""
        from uow.sql_engine import retry_locked

        def attempt() -> Any:
            with self._transaction() as ops:
                return operation(ops)

        with self._errors():
            return retry_locked(attempt)

    def _errors(self) -> Any:
        """The block's driver errors as `StorageError` / `TransientStorageError`, one line naming the database."""
        return database_errors(self.engine, StorageError, "SQL storage", transient=TransientStorageError)


class SQLTransaction:
    """The storage writes of one open database transaction (`connection`); see `StorageSQL.transaction`."""

    def __init__(
        self,
        table: Table,
        connection: Connection,
        clock: Callable[[], float] = time.time,
        lease_clock: Callable[[], float] | None = None,
    ) -> None:
        self.table = table
        self.connection = connection
        self._clock = clock
        self.leases = SQLLeases(table, connection, lease_clock)  # lease clock None: the database's

    def holds_lease(self, key: str, *, owner: str, epoch: int) -> bool:
        """Whether `owner` holds `key`'s lease in `epoch`; its row stays locked until the transaction ends."""
        return self.leases.holds(key, owner, epoch) is not None

    def release_lease(self, key: str, *, owner: str, epoch: int) -> bool:
        """Delete `key`'s lease if `owner` holds it in `epoch`, in this transaction."""
        held = self.leases.holds(key, owner, epoch)
        return held is not None and self.leases.delete(key, held.version)

    def read_checkpoint(self, key: str, *, for_update: bool = False) -> Checkpoint | None:
        _check_key(key)
        table = self.table
        query = select(table.c.document, table.c.version).where(table.c.key == key, _live(table, self._clock()))
        if for_update:
            query = query.with_for_update()
        row = self.connection.execute(query).one_or_none()
        if row is None:
            return None
        database = self.connection.engine.url.render_as_string(hide_password=True)
        context, fingerprint = parse_document(key, row.document, f" (row of table {table.name!r} in {database})")
        return Checkpoint(context=context, fingerprint=fingerprint, version=row.version)

    def post(self, key: str, context: Any, ttl: float | None = None, fingerprint: str | None = None) -> None:
        from uow.sql_engine import dialect_insert

        row = _row(key, context, ttl, fingerprint, self._clock())
        statement = dialect_insert(self.connection)(self.table).values(row)
        self.connection.execute(
            statement.on_conflict_do_update(index_elements=[self.table.c.key], set_=_replacement(statement))
        )

    def post_if(
        self,
        key: str,
        context: Any,
        *,
        version: str | None,
        ttl: float | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        from uow.sql_engine import dialect_insert

        row = _row(key, context, ttl, fingerprint, self._clock())
        table = self.table
        if version is None:  # insert, or replace a row whose time has passed
            statement = dialect_insert(self.connection)(table).values(row)
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.key],
                set_=_replacement(statement),
                where=~_live(table, self._clock()),
            )
        else:
            matching = (table.c.key == key, table.c.version == version, _live(table, self._clock()))
            statement = table.update().where(*matching).values(row)
        # RETURNING, not rowcount: psycopg reports no rowcount for an upsert
        return self.connection.execute(statement.returning(table.c.key)).first() is not None

    def delete(self, key: str) -> bool:
        _check_key(key)
        table = self.table
        counting = select(func.count()).where(table.c.key == key, _live(table, self._clock()))
        live = self.connection.execute(counting).scalar_one()
        self.connection.execute(table.delete().where(table.c.key == key))
        return bool(live)

    def delete_if(self, key: str, *, version: str | None) -> bool:
        _check_key(key)
        table = self.table
        if version is None:
            return self.read_checkpoint(key) is None
        matching = (table.c.key == key, table.c.version == version, _live(table, self._clock()))
        deleted = self.connection.execute(table.delete().where(*matching).returning(table.c.key))
        return deleted.first() is not None

    def delete_prefix(self, prefix: str) -> int:
        _check_prefix(prefix)
        table = self.table
        matching = _checkpoints(table, prefix)
        live = self.connection.execute(select(func.count()).where(matching, _live(table, self._clock()))).scalar_one()
        self.connection.execute(table.delete().where(matching))
        return int(live)


def _row(key: str, context: Any, ttl: float | None, fingerprint: str | None, now: float) -> dict[str, Any]:
    """The row to store; encodes first, so an unstorable value raises before anything is written."""
    _check_key(key)
    document = encode_document(key, context, ttl, fingerprint, now=now).decode("ascii")
    return {
        "key": key,
        "document": document,
        "expires_at": None if ttl is None else now + ttl,
        "version": uuid.uuid4().hex,
        "updated_at": datetime.fromtimestamp(now, timezone.utc),
    }


def _replacement(statement: Any) -> dict[str, Any]:
    excluded = statement.excluded
    return {name: excluded[name] for name in ("document", "expires_at", "version", "updated_at")}


def _checkpoints(table: Table, prefix: str) -> Any:
    """The checkpoint rows whose key starts with `prefix` (lease rows are not checkpoints)."""
    return and_(table.c.key.startswith(prefix, autoescape=True), ~table.c.key.endswith(LEASE_SUFFIX, autoescape=True))


def _live(table: Table, now: float) -> Any:
    """The rows whose time has not passed at `now`."""
    return or_(table.c.expires_at.is_(None), table.c.expires_at > now)


def check_key(key: Any, *, room: int = 0) -> None:
    """Refuse a key that is not a str of 1 to MAX_KEY - `room` characters, or that names a lease."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if not key or len(key) > MAX_KEY - room:
        raise ValueError(f"key must be 1 to {MAX_KEY - room} characters long, not {len(key)}: {key[:80]!r}")
    if key.endswith(LEASE_SUFFIX):
        raise ValueError(f"invalid storage key {key!r}: it ends with {LEASE_SUFFIX!r} (reserved for the leases of claims)")
    if "\0" in key:
        raise ValueError(f"invalid storage key {key!r}: it contains a NUL character (PostgreSQL cannot store one)")


_check_key = check_key


def _check_prefix(prefix: Any) -> None:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
