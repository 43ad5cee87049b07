"""BatchStorage: buffered checkpoints, flushed in batches as segments, readable while buffered, never half-applied."""

from __future__ import annotations

import gc
import hashlib
import logging
import tempfile
import threading
import time
import unittest
import weakref
from pathlib import Path

import pytest

from dotflow import Config, Context, DotFlow, action
from dotflow.abc.notify import Notify
from dotflow.abc.storage import Storage
from dotflow.providers import BatchStorage, StorageDefault, StorageFile
from dotflow.storage import batch_log
from dotflow.storage.batch_log import LockedFolderError, read_segment
from dotflow.values.checkpoint_format import encode_document
from dotflow.storage.file import BatchFolderError
from dotflow.testing import StorageContract
from uow import ConflictError, UnitOfWork

WORKFLOW = "6f0ad3ec-8f1b-4b59-9d43-8b3c1f7f7a10"


def files(folder: Path) -> list[str]:
    """Per-key checkpoint files (what a plain StorageFile would read)."""
    return sorted(p.name for p in (folder / "tasks").iterdir() if not p.name.startswith("."))


def segments(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "tasks").iterdir() if p.name.endswith(".log"))


def durable_keys(folder: Path) -> list[str]:
    """Keys put by the complete segments on disk right now (read without the storage)."""
    keys = set()
    for name in segments(folder):
        segment = read_segment(folder / "tasks" / name)
        assert segment is not None, name
        keys.update(entry.key for entry in segment.entries if entry.size >= 0)
    return sorted(keys)


def reopen(folder: Path, **kwargs) -> BatchStorage:
    storage = BatchStorage(StorageFile(path=folder), **({"max_batch": 2, "max_delay": None} | kwargs))
    assert isinstance(storage, BatchStorage)
    return storage


@pytest.fixture
def batch(tmp_path: Path):
    storage = reopen(tmp_path, max_batch=3)
    yield storage
    storage.close()


# ------------------------------------------------------------------------------------------- buffering


def test_reads_see_buffered_writes_before_anything_reaches_the_disk(tmp_path, batch):
    batch.post("a.json", Context(storage={"n": 1}), fingerprint="fp")
    assert files(tmp_path) == [] and segments(tmp_path) == []
    checkpoint = batch.read_checkpoint("a.json")
    assert checkpoint is not None and checkpoint.context.storage == {"n": 1} and checkpoint.fingerprint == "fp"
    assert batch.get("a.json").storage == {"n": 1}
    assert batch.get("missing.json").storage is None and batch.read_checkpoint("missing.json") is None


def test_a_full_batch_is_one_segment_and_no_per_key_file(tmp_path, batch):
    for number in range(3):
        batch.post(f"k{number}.json", Context(storage=number))
    assert batch.stats() == {"posts": 3, "flushes": 1, "pending": 0}
    assert files(tmp_path) == [] and len(segments(tmp_path)) == 1
    assert durable_keys(tmp_path) == ["k0.json", "k1.json", "k2.json"]
    assert [batch.get(f"k{n}.json").storage for n in range(3)] == [0, 1, 2]  # read back from the segment
    batch.close()
    again = reopen(tmp_path)
    assert [again.get(f"k{n}.json").storage for n in range(3)] == [0, 1, 2]
    again.close()


def test_a_value_changed_after_post_does_not_change_the_checkpoint(batch):
    value = {"rows": [1]}
    batch.post("a.json", Context(storage=value))
    value["rows"].append(2)
    batch.flush()
    assert batch.get("a.json").storage == {"rows": [1]}


def test_an_unencodable_value_or_a_bad_key_is_refused_at_post(batch):
    with pytest.raises(TypeError, match="a.json"):
        batch.post("a.json", Context(storage=object()))
    with pytest.raises(ValueError, match="escape"):
        batch.post("../a.json", Context(storage=1))
    assert batch.stats()["pending"] == 0


def test_close_flushes_and_refuses_more_posts(tmp_path):
    with reopen(tmp_path, max_batch=100) as batch:
        batch.post("a.json", Context(storage=1))
        assert segments(tmp_path) == []
    assert durable_keys(tmp_path) == ["a.json"]
    with pytest.raises(RuntimeError, match="closed"):
        batch.post("b.json", Context(storage=2))
    batch.close()  # idempotent


def test_the_time_bound_flushes_a_partial_batch(tmp_path):
    with reopen(tmp_path, max_batch=100, max_delay=0.01) as batch:
        batch.post("a.json", Context(storage=1))
        deadline = time.monotonic() + 10
        while batch.stats()["flushes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # waiting for the flusher thread, not for a delay the test could inject
        assert batch.stats() == {"posts": 1, "flushes": 1, "pending": 0}
        assert durable_keys(tmp_path) == ["a.json"]


def test_a_storage_dropped_with_unflushed_changes_is_kept_until_they_are_flushed(tmp_path):
    """Forgetting close(): the exit flush can only flush what is still alive (see also
    tests/integration/test_batch_forgotten_close.py, a real process)."""
    batch = reopen(tmp_path, max_batch=100)
    batch.post("a.json", Context(storage=1))
    ref = weakref.ref(batch)
    del batch
    gc.collect()
    kept = ref()
    assert kept is not None and kept.stats()["pending"] == 1
    kept.flush()
    del kept
    gc.collect()
    assert ref() is None  # flushed: nothing keeps it any more
    with reopen(tmp_path) as again:  # and its folder lock was released when it was collected
        assert again.get("a.json").storage == 1


def test_a_second_batch_storage_on_the_same_folder_is_refused(tmp_path, batch):
    with pytest.raises(LockedFolderError, match="already open"):
        BatchStorage(StorageFile(path=tmp_path))


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="max_batch"):
        BatchStorage(StorageDefault(), max_batch=0)
    with pytest.raises(ValueError, match="max_delay"):
        BatchStorage(StorageDefault(), max_delay=-1)
    with pytest.raises(TypeError, match="wraps a Storage"):
        BatchStorage(object())  # type: ignore[arg-type]


# --------------------------------------------------------------------- segments, per-key files, deletes


def test_a_plain_storage_file_refuses_a_folder_that_holds_segments(tmp_path):
    with reopen(tmp_path) as batch:
        batch.post("a.json", Context(storage=1))
    plain = StorageFile(path=tmp_path)
    for use in (lambda: plain.get("a.json"), lambda: plain.post("b.json", Context(storage=2)), plain.list_keys):
        with pytest.raises(BatchFolderError, match=r"BatchStorage\(StorageFile\(path=\.\.\.\)\)"):
            use()
    assert files(tmp_path) == []


def test_the_wrapped_storage_file_is_checked_again_once_released(tmp_path):
    inner = StorageFile(path=tmp_path)
    with BatchStorage(inner, max_delay=None) as batch:
        batch.post("a.json", Context(storage=1))
    with pytest.raises(BatchFolderError):
        inner.get("a.json")


def test_a_store_left_empty_is_a_plain_folder_again(tmp_path):
    with reopen(tmp_path) as batch:
        batch.post("a.json", Context(storage=1))
        batch.flush()
        batch.delete("a.json")
    assert segments(tmp_path) == []
    assert StorageFile(path=tmp_path).list_keys() == []  # no marker left: a plain StorageFile works


def test_keys_of_per_key_files_are_read_then_overridden_and_their_files_removed(tmp_path):
    plain = StorageFile(path=tmp_path)
    plain.post("old.json", Context(storage="from a plain StorageFile"))
    plain.post("kept.json", Context(storage="kept"))
    plain.post("gone.json", Context(storage="gone"))
    with reopen(tmp_path) as batch:
        assert batch.get("old.json").storage == "from a plain StorageFile"
        version = batch.read_checkpoint("old.json").version
        assert version == plain.read_checkpoint("old.json").version
        assert batch.post_if("old.json", Context(storage="new"), version=version) is True
        batch.flush()
        assert files(tmp_path) == ["gone.json", "kept.json"]  # the index overrides it: its file is gone
        assert batch.delete("gone.json") is True  # a key only a file holds: deleted at once
        assert files(tmp_path) == ["kept.json"]
        assert sorted(batch.list_keys()) == ["kept.json", "old.json"]
    with reopen(tmp_path) as again:
        assert again.get("old.json").storage == "new" and again.get("kept.json").storage == "kept"
        assert again.get("gone.json").storage is None


def test_a_tombstone_is_replayed_when_no_compaction_removed_it(tmp_path):
    with reopen(tmp_path, max_batch=10) as batch:
        for number in range(10):
            batch.post(f"k{number}.json", Context(storage=number))
        assert batch.delete("k3.json") is True
    assert len(segments(tmp_path)) == 2  # little garbage: close() did not compact
    with reopen(tmp_path) as again:
        assert again.read_checkpoint("k3.json") is None and again.get("k3.json").storage is None
        assert "k3.json" not in again.list_keys() and len(again.list_keys()) == 9


def test_a_deleted_key_stays_deleted_after_reopening_and_compaction(tmp_path):
    with reopen(tmp_path) as batch:
        batch.post("a.json", Context(storage=1))
        batch.post("b.json", Context(storage=2))  # flushed: both in a segment
        assert batch.delete("a.json") is True
        assert batch.get("a.json").storage is None and batch.delete("a.json") is False
    with reopen(tmp_path) as again:
        assert again.read_checkpoint("a.json") is None and list(again.list_keys()) == ["b.json"]
        again.compact()
        assert again.segment_stats() == {"segments": 1, "keys": 1}
    with reopen(tmp_path) as third:
        assert third.get("a.json").storage is None and third.get("b.json").storage == 2


def test_a_crash_during_compaction_leaves_the_state_unchanged(tmp_path):
    batch = reopen(tmp_path)
    batch.post("a.json", Context(storage=1))
    batch.post("b.json", Context(storage=2))
    batch.delete("a.json")
    batch.post("c.json", Context(storage=3))  # flushes the tombstone with c
    before = {name: (tmp_path / "tasks" / name).read_bytes() for name in segments(tmp_path)}
    batch.compact()
    batch.close()
    for name, data in before.items():  # the crash came before the old segments were removed
        (tmp_path / "tasks" / name).write_bytes(data)
    with reopen(tmp_path) as again:
        assert again.get("a.json").storage is None  # an old put must not come back
        assert [again.get(k).storage for k in ("b.json", "c.json")] == [2, 3]
        assert again.segment_stats()["segments"] == 1
    assert len(segments(tmp_path)) == 1


def test_close_compacts_superseded_checkpoints(tmp_path):
    with reopen(tmp_path, max_batch=1) as batch:
        for value in range(5):
            batch.post("a.json", Context(storage=value))
        assert batch.segment_stats() == {"segments": 5, "keys": 1}
    assert len(segments(tmp_path)) == 1
    with reopen(tmp_path) as again:
        assert again.get("a.json").storage == 4


def test_materialize_gives_the_folder_back_to_a_plain_storage_file(tmp_path):
    plain = StorageFile(path=tmp_path)
    plain.post("file-only.json", Context(storage="f"))
    plain.post("deleted.json", Context(storage="d"))
    with reopen(tmp_path) as batch:
        batch.post("a.json", Context(storage={"x": 1}), fingerprint="fp")
        batch.post("b.json", Context(storage=2))
        batch.delete("deleted.json")
        version = batch.read_checkpoint("a.json").version
        assert batch.materialize() == 2
        assert segments(tmp_path) == []
    plain = StorageFile(path=tmp_path)
    checkpoint = plain.read_checkpoint("a.json")
    assert checkpoint.context.storage == {"x": 1} and checkpoint.fingerprint == "fp" and checkpoint.version == version
    assert sorted(plain.list_keys()) == ["a.json", "b.json", "file-only.json"]


def test_expired_checkpoints_hide_their_per_key_file(tmp_path):
    now = [1_800_000_000.0]
    plain = StorageFile(path=tmp_path)
    plain.post("a.json", Context(storage="old file"))
    batch = BatchStorage(StorageFile(path=tmp_path, clock=lambda: now[0]), max_batch=1, max_delay=None)
    batch.post("a.json", Context(storage="short"), ttl=10)
    now[0] += 10
    assert batch.get("a.json").storage is None and batch.read_checkpoint("a.json") is None
    batch.close()
    assert files(tmp_path) == [] and segments(tmp_path) == []  # compacted away, and the folder is plain again


# ------------------------------------------------------------------------------------- crash recovery


def test_a_torn_segment_is_dropped_whole_and_nothing_of_it_is_applied(tmp_path):
    with reopen(tmp_path) as batch:
        batch.post("kept.json", Context(storage=0))
        batch.flush()
    doc = encode_document("a.json", Context(storage=1), None, None, revision="r")
    whole, _ = batch_log.encode_segment(7, [("a.json", doc, "r", None), ("b.json", doc, "r", None)])
    for cut in (len(whole) - 1, len(whole) // 2, 10):
        (tmp_path / "tasks" / ".batch-0000000000000007.log").write_bytes(whole[:cut])
        with reopen(tmp_path) as again:
            assert again._backend.store.replayed == 1  # the complete one only
            assert again.read_checkpoint("a.json") is None and again.read_checkpoint("b.json") is None
            assert len(segments(tmp_path)) == 1
            assert again.get("kept.json").storage == 0


def test_a_replayed_segment_cannot_write_outside_the_folder(tmp_path):
    doc = encode_document("x", Context(storage=1), None, None)
    data, _ = batch_log.encode_segment(3, [("../evil.json", doc, None, None)])
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / ".batch-0000000000000003.log").write_bytes(data)
    with pytest.raises(ValueError, match="escape"):
        reopen(tmp_path)
    assert not (tmp_path / "evil.json").exists()
    reopen(tmp_path / "other").close()  # the failed open released its lock: nothing else is held


def test_logs_of_the_earlier_batch_storage_are_read(tmp_path):
    """Version 1 logs: those up to `.batch-retired` were applied to files already; later ones were not."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    plain = StorageFile(path=tmp_path)
    plain.post("a.json", Context(storage="applied later"))

    def v1_log(seq: int, key: str, value: object) -> None:
        document = encode_document(key, Context(storage=value), None, None, revision="r")
        data, _ = batch_log.encode_segment(seq, [(key, document, "r", None)])
        body = data[: data.rindex(b'{"sha256"')].replace(b'"version":2', b'"version":1', 1)
        trailer = f'{{"sha256":"{hashlib.sha256(body).hexdigest()}"}}\n'.encode()
        (folder / f".batch-{seq:016d}.log").write_bytes(body + trailer)

    v1_log(1, "a.json", "stale")  # retired: a.json's file holds what came after it
    v1_log(2, "b.json", "unapplied")  # committed, not applied when the earlier version crashed
    (folder / ".batch-retired").write_text("1\n")
    with reopen(tmp_path) as batch:
        assert batch.get("a.json").storage == "applied later"
        assert batch.get("b.json").storage == "unapplied"
    assert not (folder / ".batch-retired").exists()


# ----------------------------------------------------------------------------- flush failures, on_durable


def fail_writes(monkeypatch) -> list[int]:
    calls = [0]

    def broken(path, data, folder):
        calls[0] += 1
        raise OSError("disk full (simulated)")

    monkeypatch.setattr("dotflow.storage.batch_segments.write_new_file", broken)
    return calls


def test_a_post_whose_flush_fails_is_taken_back_and_earlier_posts_stay_buffered(tmp_path, monkeypatch):
    batch = reopen(tmp_path)
    batch.post("a.json", Context(storage=1))
    fail_writes(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        batch.post("b.json", Context(storage=2))
    assert batch.get("b.json").storage is None and batch.get("a.json").storage == 1
    monkeypatch.undo()
    batch.close()
    with reopen(tmp_path) as again:
        assert again.get("a.json").storage == 1 and again.read_checkpoint("b.json") is None


def test_a_failure_after_the_segment_is_stored_does_not_fail_the_commit(tmp_path, monkeypatch, caplog):
    StorageFile(path=tmp_path).post("a.json", Context(storage="file"))
    batch = reopen(tmp_path)

    def refuse(path):
        raise PermissionError("cannot remove (simulated)")

    monkeypatch.setattr("dotflow.storage.batch_segments.unlink", refuse)
    batch.post("a.json", Context(storage="segment"))
    with caplog.at_level(logging.WARNING, logger="dotflow"):
        batch.post("b.json", Context(storage=2))  # flushed: the segment is stored, removing a.json's file fails
    assert "is stored, but tidying up after it failed" in caplog.text
    assert batch.get("a.json").storage == "segment" and files(tmp_path) == ["a.json"]
    monkeypatch.undo()
    batch.close()
    with reopen(tmp_path) as again:  # the index still wins, and opening removes the stale file
        assert again.get("a.json").storage == "segment"
    assert files(tmp_path) == []


def test_on_durable_refuses_what_it_cannot_call(batch):
    with pytest.raises(TypeError, match="callable"):
        batch.on_durable("not a function")  # type: ignore[arg-type]


def test_on_durable_runs_at_once_when_nothing_is_buffered(batch):
    called = []
    batch.on_durable(lambda: called.append(threading.current_thread().name))
    assert called == [threading.current_thread().name]


def test_on_durable_runs_after_the_flush_that_makes_earlier_posts_durable(tmp_path, batch):
    seen = []
    batch.post("a.json", Context(storage=1))
    batch.on_durable(lambda: seen.append(durable_keys(tmp_path)))
    batch.post("b.json", Context(storage=2))
    assert seen == []
    batch.post("c.json", Context(storage=3))  # the batch is full: flushed
    assert seen == [["a.json", "b.json", "c.json"]]
    batch.flush()
    assert len(seen) == 1  # once


def test_on_durable_waits_for_the_next_successful_flush_and_survives_a_raising_callback(tmp_path, batch, monkeypatch, caplog):
    seen = []
    batch.post("a.json", Context(storage=1))

    def bad() -> None:
        raise RuntimeError("callback bug")

    batch.on_durable(bad)
    batch.on_durable(lambda: seen.append("durable"))
    fail_writes(monkeypatch)
    with pytest.raises(OSError):
        batch.flush()
    assert seen == []
    monkeypatch.undo()
    with caplog.at_level(logging.ERROR, logger="dotflow"):
        batch.flush()
    assert seen == ["durable"]
    assert "on_durable callback raised" in caplog.text


def test_on_durable_runs_from_the_timer_thread(tmp_path):
    with reopen(tmp_path, max_batch=100, max_delay=0.01) as batch:
        done = threading.Event()
        threads = []
        batch.post("a.json", Context(storage=1))
        batch.on_durable(lambda: (threads.append(threading.current_thread().name), done.set()))
        assert done.wait(10)
        assert threads == ["dotflow-batch-flush"]


def test_on_durable_on_a_generic_storage():
    inner = StorageDefault()
    with BatchStorage(inner, max_batch=10, max_delay=None) as batch:
        seen = []
        batch.post("a", Context(storage=1))
        batch.on_durable(lambda: seen.append(inner.get("a").storage))
        assert seen == []
        batch.flush()
        assert seen == [1]


# ----------------------------------------------------------------------------- versions, the contract


class TestBatchStorageContract(StorageContract, unittest.TestCase):
    """The storage contract, buffered: most reads are answered from the buffer."""

    max_batch = 1000

    def make_storage(self) -> Storage:
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        storage = BatchStorage(StorageFile(path=folder.name, clock=self.clock), max_batch=self.max_batch, max_delay=None)
        self.addCleanup(storage.close)
        return storage


class TestBatchStorageContractFlushingEachChange(TestBatchStorageContract):
    """Every change flushed at once: reads come from the segments."""

    max_batch = 1


class Reopening:
    """Closes its BatchStorage after every change and opens a new one on the folder: every read after a
    change comes from the segments replayed (and, often, compacted on close)."""

    CHANGES = {"post", "post_if", "delete", "delete_if", "delete_prefix", "clear", "atomic_swap"}

    def __init__(self, folder: str, clock) -> None:
        self.folder, self.clock = folder, clock
        self.lock = threading.Lock()
        self.inner = self.open()

    def open(self) -> BatchStorage:
        storage = BatchStorage(StorageFile(path=self.folder, clock=self.clock), max_batch=1000, max_delay=None)
        assert isinstance(storage, BatchStorage)
        return storage

    def __getattr__(self, name: str):
        method = getattr(BatchStorage, name)

        def call(*args, **kwargs):
            with self.lock:
                result = method(self.inner, *args, **kwargs)
                if name in self.CHANGES:
                    self.inner.close()
                    self.inner = self.open()
                return result

        return call

    def close(self) -> None:
        self.inner.close()


class TestBatchStorageContractReopenedAfterEachChange(StorageContract, unittest.TestCase):
    """The storage contract with a new BatchStorage after every change: replay, tombstones, compaction."""

    race_rounds = 5

    def make_storage(self) -> Storage:
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        storage = Reopening(folder.name, self.clock)
        self.addCleanup(storage.close)
        return storage  # type: ignore[return-value]


def test_a_unit_of_work_detects_a_conflict_through_batch_storage(batch):
    batch.post("n.json", Context(storage=0))
    with pytest.raises(ConflictError):
        with UnitOfWork(batch) as unit:
            count = unit.get("n.json").storage
            batch.post("n.json", Context(storage=100))  # another writer, after the unit read
            unit.put("n.json", Context(storage=count + 1))
    assert batch.get("n.json").storage == 100


def _imports(module: str) -> set[str]:
    """The modules a dotflow.providers module imports (at any depth of its source)."""
    import ast
    import importlib

    tree = ast.parse(Path(importlib.import_module(module).__file__).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_batch_storage_is_one_class_and_the_backends_do_not_import_it(tmp_path):
    """No class swapped in at construction; StorageFile knows no wrapper; no import cycle."""
    assert type(BatchStorage(StorageDefault(), max_delay=None)) is BatchStorage
    with BatchStorage(StorageFile(path=tmp_path), max_delay=None) as on_files:
        assert type(on_files) is BatchStorage
    assert "__new__" not in vars(BatchStorage)
    batch_modules = {"dotflow.storage.batch", "dotflow.storage.batch_file", "dotflow.storage.batch_backend"}
    assert not _imports("dotflow.storage.file") & (batch_modules | {"dotflow.storage.batch_segments"})
    assert "dotflow.storage.batch" not in _imports("dotflow.storage.batch_file")
    assert "dotflow.storage.batch" not in _imports("dotflow.storage.batch_backend")


def test_a_generic_batch_storage_writes_conditionally_through_the_wrapped_storage():
    inner = StorageDefault()
    with BatchStorage(inner, max_batch=10, max_delay=None) as batch:
        batch.post("a", Context(storage=1))
        seen = batch.read_checkpoint("a")  # a buffered key: flushed first, so its version is the storage's
        assert seen is not None and seen.version is not None and inner.get("a").storage == 1
        batch.post("b", Context(storage=2))
        inner.post("a", Context(storage="someone else"))
        assert batch.post_if("a", Context(storage="lost"), version=seen.version) is False
        assert inner.get("b").storage == 2  # flushed before the conditional write
        assert batch.post_if("c", Context(storage=3), version=None) is True
        assert inner.get("c").storage == 3  # written through, durable now
        assert batch.delete_if("c", version=None) is False


def test_a_unit_of_work_detects_a_conflict_through_a_generic_batch_storage():
    inner = StorageDefault()
    with BatchStorage(inner, max_batch=10, max_delay=None) as batch:
        batch.post("n", Context(storage=0))
        with pytest.raises(ConflictError):
            with UnitOfWork(batch) as unit:
                count = unit.get("n").storage
                inner.post("n", Context(storage=100))  # another writer, after the unit read
                unit.put("n", Context(storage=count + 1))
        assert batch.get("n").storage == 100


class PlainStorage(Storage):
    """A storage with post/get/key only: no versions."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, Context] = {}

    def post(self, key, context, ttl=None, fingerprint=None):
        self.values[key] = context

    def get(self, key):
        return self.values.get(key, Context())

    def key(self, task):
        return task.task_id

    def delete(self, key):
        return self.values.pop(key, None) is not None


def test_over_a_storage_without_versions_conditional_writes_are_plain_writes_as_a_unit_of_work_makes_them():
    inner = PlainStorage()
    with BatchStorage(inner, max_batch=10, max_delay=None) as batch:
        batch.post("a", Context(storage=1))
        checkpoint = batch.read_checkpoint("a")
        assert checkpoint is not None and checkpoint.version is None and "a" not in inner.values  # still buffered
        with UnitOfWork(batch) as unit:
            unit.put("a", Context(storage=unit.get("a").storage + 1))
        assert inner.values["a"].storage == 2


class TestGenericBatchStorageContract(StorageContract, unittest.TestCase):
    """The storage contract on BatchStorage(StorageDefault()): buffered posts, conditional writes through.

    Not ttl: a buffered checkpoint's ttl is handed to the wrapped storage at flush time, so it counts
    from the flush on that storage's clock (a limitation noted in docs/group-commit.md)."""

    supports_ttl = False

    def make_storage(self) -> Storage:
        storage = BatchStorage(StorageDefault(clock=self.clock), max_batch=1000, max_delay=None)
        self.addCleanup(storage.close)
        return storage


# ------------------------------------------------------------------------------------- other backends


class ManyStorage(StorageDefault):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def post_many(self, items: list[tuple]) -> None:
        self.batches.append([key for key, *_ in items])
        for key, context, ttl, fingerprint in items:
            self.post(key, context, ttl=ttl, fingerprint=fingerprint)


def test_any_storage_gets_its_batch_through_post_many_when_it_has_one():
    inner = ManyStorage()
    batch = BatchStorage(inner, max_batch=2, max_delay=None)
    value = {"x": [1]}
    batch.post("a", Context(storage=value))
    value["x"].append(2)
    assert inner.read_checkpoint("a") is None and batch.get("a").storage == {"x": [1]}
    batch.post("b", Context(storage=2))
    assert inner.batches == [["a", "b"]]
    assert inner.get("a").storage == {"x": [1]}
    batch.close()


class PostOnlyStorage(StorageDefault):
    """A storage without post_many (StorageDefault's is hidden), recording the keys it is posted."""

    post_many = None  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[str] = []

    def post(self, key, context, ttl=None, fingerprint=None):
        self.posted.append(key)
        super().post(key, context, ttl=ttl, fingerprint=fingerprint)


def test_a_storage_without_post_many_gets_one_post_per_checkpoint():
    inner = PostOnlyStorage()
    with BatchStorage(inner, max_batch=10, max_delay=None) as batch:
        batch.post("a", Context(storage=1))
        batch.post("b", Context(storage=3))
        batch.post("a", Context(storage=2))  # coalesced: only the last value is written
    assert inner.posted == ["b", "a"]
    assert inner.get("a").storage == 2


def test_storage_default_takes_a_batch_through_its_own_post_many_all_at_once():
    inner = StorageDefault()
    calls = []
    post_many = inner.post_many
    inner.post_many = lambda items: calls.append([key for key, *_ in items]) or post_many(items)  # type: ignore[method-assign]
    with BatchStorage(inner, max_batch=10, max_delay=None) as batch:
        batch.post("a", Context(storage=1))
        batch.post("b", Context(storage=2))
    assert calls == [["a", "b"]]
    assert (inner.get("a").storage, inner.get("b").storage) == (1, 2)


# ---------------------------------------------------------------------------------- with the engine


@action
def double(previous_context):
    return (previous_context.storage or 1) * 2


@action
def broken(previous_context):
    raise RuntimeError("broken on purpose")


def test_a_workflow_writes_one_checkpoint_per_task_and_everything_is_durable_when_start_returns(tmp_path):
    batch = reopen(tmp_path, max_batch=1000)
    flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
    flow.task.add(step=[double] * 5)
    flow.start()
    assert flow.result_storage() == [2, 4, 8, 16, 32]
    assert batch.stats() == {"posts": 5, "flushes": 1, "pending": 0}
    assert len(durable_keys(tmp_path)) == 5
    batch.close()


class DurableAtFailure(Notify):
    """Records which checkpoints were durable (in segments on disk) when a task was reported FAILED."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: list[str] | None = None

    def hook_status_task(self, task) -> None:
        if task.status == "Failed":
            self.seen = durable_keys(self.folder)


def test_buffered_checkpoints_are_flushed_before_a_failure_is_reported(tmp_path):
    batch = reopen(tmp_path, max_batch=1000)
    notify = DurableAtFailure(tmp_path)
    flow = DotFlow(config=Config(storage=batch, notify=notify), workflow_id=WORKFLOW)
    flow.task.add(step=[double, double, broken])
    flow.start()
    assert notify.seen == [f"{WORKFLOW}-0-double.json", f"{WORKFLOW}-1-double.json"]
    batch.close()


def test_resume_through_batch_storage_skips_flushed_tasks(tmp_path):
    with reopen(tmp_path) as batch:
        flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
        flow.task.add(step=[double, double, broken])
        flow.start()
    with reopen(tmp_path) as batch:
        flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
        flow.task.add(step=[double, double, double])
        flow.start(resume=True)
        assert [t.restored for t in flow.result_task()] == [True, True, False]
        assert flow.result_storage() == [2, 4, 8]


def test_the_workflow_callbacks_run_after_the_last_flush(tmp_path):
    for mode in ("sequential", "background"):
        folder = tmp_path / mode
        batch = reopen(folder, max_batch=1000)
        seen: list[list[str]] = []
        flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
        flow.task.add(step=[double] * 3)
        flow.start(mode=mode, on_success=lambda tasks: seen.append(durable_keys(folder)))
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.005)  # the background run ends in its own thread
        assert seen == [[f"{WORKFLOW}-{n}-double.json" for n in range(3)]], mode
        batch.close()
