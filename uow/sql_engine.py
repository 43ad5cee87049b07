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

PostgreSQL is reached through psycopg 3 (``postgresql://`` or ``postgresql+psycopg://``), with a
connect timeout (10 s unless the URL sets ``connect_timeout``), so a server that is down is an
error in seconds.

`database_errors` turns the driver's errors into the caller's own error class, with one line that
names the database (password masked) and what went wrong: a lock held by another process, a
server that cannot be reached, a file that cannot be opened or written. Given a `transient` class
too, it raises that one for the errors `is_transient` says trying again may fix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "BUSY_TIMEOUT",
    "CONNECT_TIMEOUT",
    "READ_ONLY",
    "database_errors",
    "dialect_insert",
    "display_url",
    "import_sqlalchemy",
    "is_transient",
    "make_engine",
    "mask_url",
    "read_only",
    "retry_locked",
]

BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock (the default of `make_engine`)
CONNECT_TIMEOUT = 10  # seconds to reach a PostgreSQL server, unless the URL says otherwise
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


def make_engine(
    url_or_engine: Any, *, synchronous: str = "NORMAL", busy_timeout: float = BUSY_TIMEOUT, wal: bool = True
) -> Engine:
    """An Engine for a URL string (an Engine is returned as it is).

    `busy_timeout`: seconds a SQLite writer waits for another process's write lock before it fails.
    `wal=False` (for reading only): a SQLite file is left in the journal mode it has, never switched.
    """
    sqlalchemy = import_sqlalchemy()
    if isinstance(url_or_engine, sqlalchemy.engine.Engine):
        return cast("Engine", url_or_engine)
    if not isinstance(url_or_engine, str) or not url_or_engine.strip():
        raise TypeError(f"expected a database URL or a SQLAlchemy Engine, not {mask_url(repr(url_or_engine))}")
    if synchronous.upper() not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
    if not busy_timeout >= 0:
        raise ValueError(f"busy_timeout must be a number of seconds >= 0, not {busy_timeout!r}")
    try:
        url = sqlalchemy.engine.make_url(url_or_engine)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:  # a port that is not a number is a ValueError
        raise ValueError(f"not a database URL: {mask_url(url_or_engine)!r}") from None
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        _require_psycopg(url.drivername)
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT}
        return cast("Engine", sqlalchemy.create_engine(url, pool_pre_ping=True, connect_args=connect_args))
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql://")
    engine = cast("Engine", sqlalchemy.create_engine(url, connect_args={"timeout": busy_timeout}))
    _configure_sqlite(engine, synchronous.upper(), busy_timeout, wal)
    return engine


_PASSWORD = re.compile(r"(://[^/@:]*:)[^/]*@")  # greedy: a password may hold an unescaped @


def mask_url(text: str) -> str:
    """`text` with the password of any URL in it replaced by ***, even where the URL does not parse."""
    return _PASSWORD.sub(r"\1***@", text)


def display_url(engine: Engine) -> str:
    """The engine's URL for messages: its password masked."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def database_errors(
    engine: Engine,
    error: Callable[[str], Exception],
    what: str = "database",
    *,
    transient: Callable[[str], Exception] | None = None,
) -> Iterator[None]:
    """Raise `error(message)` from a driver error met in the block; the message is one line naming the database.

    A SQLite lock held past the busy timeout says another process holds the database; a server that
    cannot be reached names its host and port. With `transient`, an error that trying again may fix
    (`is_transient`) raises `transient(message)` instead. Errors of the driver itself (the DBAPI's
    `Error`, from a cursor used directly: `uow.driver_query`) are translated alike.
    """
    import sqlite3

    sqlalchemy = import_sqlalchemy()
    try:
        yield
    except (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, sqlite3.Error, engine.dialect.loaded_dbapi.Error) as exc:
        kind = transient if transient is not None and is_transient(exc) else error
        raise kind(_describe(engine, what, exc)) from exc


# SQLSTATE classes (and codes) of PostgreSQL errors that may pass: connection exception (08),
# transaction rollback (40: serialization failure, deadlock), insufficient resources (53: too many
# connections, disk full), operator intervention (57: shutdown, cancelled, cannot connect now);
# lock not available (55P03: lock_timeout, NOWAIT).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})
_TRANSIENT_SQLSTATES = frozenset({"55P03"})


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later may fix driver error `exc` (a SQLAlchemy `DBAPIError` or pool
    `TimeoutError`, or a `sqlite3.Error`).

    Transient: no free connection in the pool in time (SQLAlchemy's `TimeoutError`), a connection
    SQLAlchemy found broken (`connection_invalidated`), a PostgreSQL server
    that could not be reached or answered with one of the SQLSTATEs above, a SQLite database still
    locked (or busy) after the busy timeout. Anything else is permanent: a value too long, a
    constraint, a missing table, a read-only or unopenable SQLite file, a bad statement.
    """
    import sqlite3

    sqlalchemy = import_sqlalchemy()
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # the pool had no free connection in time
        return True
    if getattr(exc, "connection_invalidated", False):
        return True
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, sqlite3.Error):
        text = str(cause).lower()
        return isinstance(cause, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES
    # psycopg's OperationalError without an SQLSTATE: no server answered (refused, timed out, closed)
    return isinstance(exc, sqlalchemy.exc.OperationalError)


def _describe(engine: Engine, what: str, exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split()) or type(cause).__name__  # one line, with the password masked below
    name = f"{what} {display_url(engine)}"
    if "locked" in text.lower():
        return f"{name}: another process holds its write lock (gave up waiting for it): {text}"
    if engine.url.get_backend_name() == "postgresql" and _unreachable(exc):
        where = f"{engine.url.host or 'localhost'}:{engine.url.port or 5432}"
        return f"{name}: cannot reach the server at {where}: {mask_url(text)}"
    return f"{name}: {type(cause).__name__}: {mask_url(text)}"


def _unreachable(exc: BaseException) -> bool:
    """True for a connection that could not be made (refused, timed out, unknown host)."""
    return bool(getattr(exc, "connection_invalidated", False)) or "connection" in str(exc).lower()


def _require_psycopg(drivername: str) -> None:
    if drivername != "postgresql+psycopg":
        return
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ImportError(
            "PostgreSQL needs the psycopg 3 driver: pip install 'dotflow-uow[postgres]'"
        ) from exc


def _configure_sqlite(engine: Engine, synchronous: str, busy_timeout: float, wal: bool = True) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            if wal and engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # reads come straight from the OS page cache, not copied page by page (a resume reads a few
            # pages per restored key); writes and their durability are unchanged
            cursor.execute("PRAGMA mmap_size=268435456")
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
