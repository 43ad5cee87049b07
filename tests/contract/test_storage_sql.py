"""StorageSQL: the storage contract on SQLite and on a real PostgreSQL, plus what is specific to SQL."""

from __future__ import annotations

import tempfile
import threading
import unittest
from pathlib import Path

import pytest

from dotflow.abc.storage import Storage
from dotflow.core.context import Context
from dotflow.providers import StorageSQL
from dotflow.testing import ManualClock, StorageContract
from tests.postgres_server import PostgresServer
from uow import SchemaError
from uow.journal_migrate import upgrade
from uow.sql_engine import make_engine


class TestStorageSQLite(StorageContract, unittest.TestCase):
    def make_storage(self) -> Storage:
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        storage = StorageSQL(f"sqlite:///{folder.name}/checkpoints.db", clock=self.clock)
        self.addCleanup(storage.close)
        return storage


@pytest.fixture(scope="class")
def postgres_database(request: pytest.FixtureRequest, postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    request.cls.url = url


@pytest.mark.slow
@pytest.mark.usefixtures("postgres_database")
class TestStorageSQLPostgres(StorageContract, unittest.TestCase):
    url: str

    def make_storage(self) -> Storage:
        storage = StorageSQL(self.url, clock=self.clock)
        self.addCleanup(storage.close)
        with storage.engine.begin() as connection:
            connection.execute(storage.table.delete())
        return storage


@pytest.fixture
def storage(schema_url: str) -> StorageSQL:
    opened = StorageSQL(schema_url)
    yield opened  # type: ignore[misc]
    opened.close()


def test_versions_change_on_every_write_and_guard_conditional_writes(storage: StorageSQL) -> None:
    assert storage.post_if("wf-0-a", Context(storage=1), version=None) is True
    assert storage.post_if("wf-0-a", Context(storage=2), version=None) is False  # exists
    first = storage.read_checkpoint("wf-0-a")
    assert first is not None and first.version is not None
    assert storage.post_if("wf-0-a", Context(storage=3), version=first.version, fingerprint="fp") is True
    second = storage.read_checkpoint("wf-0-a")
    assert second is not None and second.version != first.version
    assert (second.context.storage, second.fingerprint) == (3, "fp")
    assert storage.post_if("wf-0-a", Context(storage=4), version=first.version) is False  # stale
    assert storage.delete_if("wf-0-a", version=first.version) is False
    assert storage.get("wf-0-a").storage == 3
    assert storage.delete_if("wf-0-a", version=second.version) is True
    assert storage.read_checkpoint("wf-0-a") is None
    assert storage.delete_if("wf-0-a", version=None) is True


def test_an_expired_row_counts_as_absent_for_post_if(schema_url: str) -> None:
    clock = ManualClock()
    storage = StorageSQL(schema_url, clock=clock)
    storage.post("wf-0-a", Context(storage="old"), ttl=10)
    assert storage.post_if("wf-0-a", Context(storage="new"), version=None) is False
    clock.advance(10)
    assert storage.read_checkpoint("wf-0-a") is None and storage.list_keys() == []
    assert storage.post_if("wf-0-a", Context(storage="new"), version=None) is True
    assert storage.get("wf-0-a").storage == "new"
    storage.close()


def test_only_one_of_many_racing_inserts_wins(storage: StorageSQL) -> None:
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def race(n: int) -> None:
        barrier.wait()
        if storage.post_if("wf-race", Context(storage=n), version=None):
            wins.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert storage.get("wf-race").storage == wins[0]


def test_a_transaction_is_all_or_nothing(storage: StorageSQL) -> None:
    storage.post("wf-0-a", Context(storage="before"))
    with pytest.raises(RuntimeError):
        with storage.transaction() as txn:
            txn.post("wf-0-a", Context(storage="after"))
            txn.post("wf-1-b", Context(storage="new"))
            raise RuntimeError("crash between two writes")
    assert storage.get("wf-0-a").storage == "before"
    assert storage.read_checkpoint("wf-1-b") is None
    with storage.transaction() as txn:
        txn.post("wf-0-a", Context(storage="after"))
        txn.delete("wf-1-b")
    assert storage.get("wf-0-a").storage == "after"


def test_an_unstorable_value_is_refused_and_nothing_is_written(storage: StorageSQL) -> None:
    storage.post("wf-0-a", Context(storage="good"))
    with pytest.raises(TypeError, match="wf-0-a"):
        storage.post("wf-0-a", Context(storage=object()))
    assert storage.get("wf-0-a").storage == "good"


def test_a_hand_edited_row_that_is_not_a_document_is_a_clear_error(storage: StorageSQL) -> None:
    storage.post("wf-0-a", Context(storage="good"))
    with storage.engine.begin() as connection:
        connection.execute(storage.table.update().values(document='{"pickle": "no"}'))
    with pytest.raises(ValueError, match="'wf-0-a'"):
        storage.read_checkpoint("wf-0-a")


def test_an_existing_database_without_the_table_is_an_error_naming_the_command(tmp_path: Path) -> None:
    import sqlite3

    other = sqlite3.connect(tmp_path / "other.db")  # an application's database (an empty file would be created)
    other.execute("CREATE TABLE orders (id INTEGER)")
    other.close()
    with pytest.raises(SchemaError, match="dotflow journal upgrade"):
        StorageSQL(f"sqlite:///{tmp_path / 'other.db'}")


def test_an_unknown_table_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'elsewhere' does not exist"):
        StorageSQL(f"sqlite:///{tmp_path / 'new.db'}", table="elsewhere")


def test_post_many_writes_a_batch_in_one_transaction_all_or_nothing(storage: StorageSQL) -> None:
    storage.post("wf-0-a", Context(storage="before"))
    with pytest.raises(TypeError, match="wf-2-c"):  # the third value cannot be stored: the batch is refused
        storage.post_many([("wf-0-a", Context(storage="after"), None, None), ("wf-1-b", Context(storage=1), None, "fp"),
                           ("wf-2-c", Context(storage=object()), None, None)])  # fmt: skip
    assert storage.get("wf-0-a").storage == "before"
    assert storage.read_checkpoint("wf-1-b") is None
    storage.post_many([("wf-0-a", Context(storage="after"), None, None), ("wf-1-b", Context(storage=1), None, "fp")])
    assert storage.get("wf-0-a").storage == "after"
    assert storage.read_checkpoint("wf-1-b").fingerprint == "fp"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("{not json", "it is not valid JSON"),
        ("", "it is empty"),
        ("[" * 100_000 + "]" * 100_000, "it is not valid JSON"),  # deeper than the parser goes
        ('["written by dotflow 1.0.1?"]', "it holds a JSON list, not a checkpoint document"),
        ('{"format": "dotflow-checkpoint", "version": 1, "value": {"$tuple": 7}}', "tuple"),
        ('{"format": "dotflow-checkpoint", "version": 9, "value": null}', "format version 9"),
    ],
)
def test_an_unreadable_row_is_a_corrupt_checkpoint_naming_the_key(storage: StorageSQL, document: str, reason: str) -> None:
    from dotflow.core.exception import CorruptCheckpointError

    storage.post("wf-0-a", Context(storage=1))
    with storage.engine.begin() as connection:
        connection.execute(storage.table.update().values(document=document))
    for read in (storage.get, storage.read_checkpoint):
        with pytest.raises(CorruptCheckpointError, match=reason) as raised:
            read("wf-0-a")
        assert raised.value.key == "wf-0-a"
        assert "'wf-0-a'" in str(raised.value) and "dotflow_checkpoint" in str(raised.value)
