"""SQLAlchemy engines for the journal and the SQL storage: driver checks and SQLite settings.

SQLite (the embedded default) gets, on every new connection:

* ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers;
* ``busy_timeout`` (30 s by default): a writer waits for the lock instead of failing at once;
* ``synchronous=NORMAL`` (or the level given): in WAL mode a commit survives a crash of the
  process, but the last commits before a power loss or OS crash may be lost (FULL would fsync the
  WAL on every commit);
* transactions opened with ``BEGIN IMMEDIATE``, so two writers queue on the busy timeout instead of
  one of them failing with "database is locked" when it upgrades a read lock; connections opened
  with `read_only(engine)` use a plain ``BEGIN`` and take no lock.

PostgreSQL is reached through psycopg 3 (``postgresql://`` or ``postgresql+psycopg://``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["BUSY_TIMEOUT", "READ_ONLY", "dialect_insert", "import_sqlalchemy", "make_engine", "read_only", "retry_locked"]

BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock
READ_ONLY = "dotflow_read_only"  # execution option: this connection only reads
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_T = TypeVar("_T")


def import_sqlalchemy() -> Any:
    """`sqlalchemy`, or an ImportError that names the extra to install."""
    try:
        import sqlalchemy
    except ModuleNotFoundError as exc:
        raise ImportError(
            "the SQL journal and StorageSQL need SQLAlchemy and Alembic: pip install 'dotflow-uow[sql]'"
        ) from exc
    return sqlalchemy


def make_engine(url_or_engine: Any, *, synchronous: str = "NORMAL") -> Engine:
    """An Engine for a URL string (an Engine is returned as it is)."""
    sqlalchemy = import_sqlalchemy()
    if isinstance(url_or_engine, sqlalchemy.engine.Engine):
        return cast("Engine", url_or_engine)
    if not isinstance(url_or_engine, str) or not url_or_engine.strip():
        raise TypeError(f"expected a database URL or a SQLAlchemy Engine, not {url_or_engine!r}")
    if synchronous.upper() not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
    try:
        url = sqlalchemy.engine.make_url(url_or_engine)
    except sqlalchemy.exc.ArgumentError as exc:
        raise ValueError(f"not a database URL: {url_or_engine!r}") from exc
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        _require_psycopg(url.drivername)
        return cast("Engine", sqlalchemy.create_engine(url, pool_pre_ping=True))
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql://")
    engine = cast("Engine", sqlalchemy.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT}))
    _configure_sqlite(engine, synchronous.upper())
    return engine


def _require_psycopg(drivername: str) -> None:
    if drivername != "postgresql+psycopg":
        return
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ImportError(
            "PostgreSQL needs the psycopg 3 driver: pip install 'dotflow-uow[postgres]'"
        ) from exc


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # a reader takes no lock (WAL): it never waits for a writer, nor makes one wait
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def retry_locked(operation: Callable[[], _T], *, attempts: int = 5, delay: float = 0.05) -> _T:
    """Run `operation`, again after a short pause if SQLite still reports a lock after its busy timeout."""
    import sqlite3

    sqlalchemy = import_sqlalchemy()
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except (sqlalchemy.exc.OperationalError, sqlite3.OperationalError) as exc:
            if attempt == attempts or "locked" not in str(getattr(exc, "orig", exc)).lower():
                raise
            time.sleep(delay * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def dialect_insert(connection: Any) -> Any:
    """The `insert` of the connection's dialect (both have `on_conflict_do_nothing/_update`)."""
    name = connection.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    raise ValueError(f"unsupported database {name!r}")  # pragma: no cover - make_engine refuses others


def read_only(engine: Engine) -> Connection:
    """A connection for reading only (context manager); on SQLite its transactions take no lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})
