"""StorageSQL's errors after construction: every driver error is one `StorageError` line naming the
database, transient (`TransientStorageError`: a lock still held after the busy timeout, a connection
lost) or permanent (a missing table, a constraint), and the engine retries a commit after a transient
one only, never the step. On SQLite here; PostgreSQL stopped and a value too long for a column are in
test_commit_faults_servers.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from dotflow import Config
from dotflow.core.exception import StorageError, TransientStorageError
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageSQL
from tests.integration.fault_support import VALUES, faulty, flow_of, outcomes, stored
from uow import TransientError
from uow.sql_engine import is_transient

COMPLETED, FAILED, NOT_STARTED = TypeStatus.COMPLETED, TypeStatus.FAILED, TypeStatus.NOT_STARTED


@pytest.fixture(autouse=True)
def _fresh_values() -> None:
    VALUES.update(run="v1", executions=[], during={})


def operations(storage: StorageSQL) -> dict[str, Callable[[], Any]]:
    """One call of each kind a storage makes after its construction."""

    def in_transaction() -> None:
        with storage.transaction() as ops:
            ops.post("orders-1", "v2")

    return {
        "read_checkpoint": lambda: storage.read_checkpoint("orders-0"),
        "list_keys": lambda: storage.list_keys("orders-"),
        "post": lambda: storage.post("orders-0", "v2"),
        "post_if": lambda: storage.post_if("orders-0", "v2", version=None),
        "delete_prefix": lambda: storage.delete_prefix("orders-"),
        "create_lease": lambda: storage.create_lease("orders-0", owner="w1", ttl=30),
        "read_lease": lambda: storage.read_lease("orders-0"),
        "transaction": in_transaction,
    }


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[tuple[StorageSQL, Path]]:
    path = tmp_path / "checkpoints.db"
    storage = StorageSQL(f"sqlite:///{path}", busy_timeout=0.01)
    storage.post("orders-0", "v1")
    yield storage, path
    storage.close()


@pytest.mark.timeout(30)
def test_a_write_lock_held_past_the_busy_timeout_is_a_transient_error_naming_the_database(
    sqlite_storage: tuple[StorageSQL, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, path = sqlite_storage
    monkeypatch.setattr("uow.sql_engine.time.sleep", lambda seconds: None)  # the pause between lock retries
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        for name in ("post", "post_if", "delete_prefix", "create_lease", "transaction"):
            with pytest.raises(TransientStorageError) as raised:
                operations(storage)[name]()
            message = str(raised.value)
            assert message.startswith(f"SQL storage sqlite:///{path}: another process holds its write lock"), name
            assert "\n" not in message
            assert isinstance(raised.value, TransientError) and isinstance(raised.value.__cause__, sqlalchemy.exc.OperationalError)
        assert storage.read_checkpoint("orders-0").context.storage == "v1"  # readers take no lock (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_missing_table_is_a_permanent_error_naming_the_database(sqlite_storage: tuple[StorageSQL, Path]) -> None:
    storage, path = sqlite_storage
    with sqlite3.connect(path) as dropping:
        dropping.execute("DROP TABLE dotflow_checkpoint")
    dropping.close()
    for name, operation in operations(storage).items():
        with pytest.raises(StorageError) as raised:
            operation()
        assert not isinstance(raised.value, TransientError), name
        message = str(raised.value)
        assert message.startswith(f"SQL storage sqlite:///{path}: OperationalError: no such table: dotflow_checkpoint"), message
        assert "\n" not in message


def driver_error(kind: type, text: str) -> Exception:
    """What SQLAlchemy raises for `sqlite3` error `text` met by a statement."""
    orig = getattr(sqlite3, kind.__name__)(text)
    return kind("INSERT INTO dotflow_checkpoint ...", {}, orig)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (driver_error(sqlalchemy.exc.OperationalError, "database is locked"), True),
        (driver_error(sqlalchemy.exc.OperationalError, "disk I/O error"), False),
        (driver_error(sqlalchemy.exc.OperationalError, "attempt to write a readonly database"), False),
        (driver_error(sqlalchemy.exc.IntegrityError, "NOT NULL constraint failed: dotflow_checkpoint.document"), False),
        (sqlite3.OperationalError("database is busy"), True),
    ],
)
def test_which_sqlite_errors_are_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_lost_connection_is_transient() -> None:
    lost = driver_error(sqlalchemy.exc.ProgrammingError, "Cannot operate on a closed database.")
    assert not is_transient(lost)
    lost.connection_invalidated = True  # type: ignore[attr-defined]  # SQLAlchemy's verdict: a disconnect
    assert is_transient(lost)


# -- the engine: a transient failure of a commit is retried (the commit alone), a permanent one is not ----


def shared_storage(tmp_path: Path) -> tuple[Any, str]:
    """A StorageSQL that fails on command, with the journal in its database: a commit is one transaction."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    return faulty(StorageSQL)(url), url


def test_a_transient_storage_error_is_retried_for_the_commit_alone_and_the_retry_saves_it(tmp_path: Path) -> None:
    storage, url = shared_storage(tmp_path)
    flow = flow_of(Config(storage=storage, journal=url))
    key = f"{flow.workflow_id}-1-transform"
    locked = driver_error(sqlalchemy.exc.OperationalError, "database is locked")
    tries: list[str] = []

    def first_two_tries_fail(operation: str, written: str | None, count: int) -> Exception | None:
        if operation != "tx.post" or written != key:
            return None
        tries.append(written)
        return locked if len(tries) <= 2 else None

    storage.faults.arm(first_two_tries_fail)

    flow.start()

    tasks = flow.result_task()
    assert storage.key(task=tasks[1]) == key
    assert [task.status for task in tasks] == [COMPLETED, COMPLETED, COMPLETED]
    assert VALUES["executions"] == ["extract", "transform", "load"]  # no step ran twice
    assert stored(storage, flow) == ["v1-extract", "v1-transform", "v1-load"]
    assert outcomes(flow.task.queue[0].config.journal) == [
        ("0-extract", "committed"), ("1-transform", "failed"), ("1-transform", "failed"),
        ("1-transform", "committed"), ("2-load", "committed"),
    ]  # fmt: skip
    assert len(tries) == 3  # the engine's COMMIT_ATTEMPTS
    storage.close()


def test_a_permanent_storage_error_fails_the_task_at_once_with_one_line(tmp_path: Path) -> None:
    storage, url = shared_storage(tmp_path)
    flow = flow_of(Config(storage=storage, journal=url))
    key = f"{flow.workflow_id}-1-transform"
    refused = driver_error(sqlalchemy.exc.IntegrityError, "CHECK constraint failed: document")
    storage.faults.arm(lambda operation, written, count: refused if operation == "tx.post" and written == key else None)

    flow.start()

    tasks = flow.result_task()
    assert [task.status for task in tasks] == [COMPLETED, FAILED, NOT_STARTED]
    assert tasks[1].errors[-1].message == (
        f"checkpoint of task '1-transform' could not be saved to key '{key}': StorageError: "
        f"SQL storage {url}: IntegrityError: CHECK constraint failed: document"
    )
    assert VALUES["executions"] == ["extract", "transform"]
    assert outcomes(flow.task.queue[0].config.journal)[1:] == [("1-transform", "failed")]  # tried once
    storage.close()


def test_a_pool_with_no_free_connection_is_a_transient_error_naming_the_database(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}", pool_size=1, max_overflow=0, pool_timeout=0.05)
    storage = StorageSQL(engine)
    storage.post("orders-0", "v1")
    held = engine.connect()  # the pool's only connection, held by somebody else
    try:
        with pytest.raises(TransientStorageError) as raised:
            storage.read_checkpoint("orders-0")
    finally:
        held.close()
    message = str(raised.value)
    assert "pool.db" in message and "\n" not in message and "QueuePool limit" in message
    assert storage.read_checkpoint("orders-0").context.storage == "v1"  # type: ignore[union-attr]
    storage.close()
