"""BatchStorage: buffered checkpoints, flushed in batches, readable while buffered, never half-applied."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dotflow import Config, Context, DotFlow, action
from dotflow.abc.notify import Notify
from dotflow.providers import BatchStorage, StorageDefault, StorageFile
from dotflow.providers import batch_log
from dotflow.providers.batch_log import FileBatchLog, LockedFolderError
from dotflow.providers.checkpoint_format import encode_document

WORKFLOW = "6f0ad3ec-8f1b-4b59-9d43-8b3c1f7f7a10"


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "tasks").iterdir() if not p.name.startswith("."))


def logs(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "tasks").iterdir() if p.name.endswith(".log"))


@pytest.fixture
def batch(tmp_path: Path):
    storage = BatchStorage(StorageFile(path=tmp_path), max_batch=3, max_delay=None)
    yield storage
    storage.close()


# ------------------------------------------------------------------------------------------- buffering


def test_reads_see_buffered_writes_before_anything_reaches_the_disk(tmp_path, batch):
    batch.post("a.json", Context(storage={"n": 1}), fingerprint="fp")
    assert files(tmp_path) == []
    checkpoint = batch.read_checkpoint("a.json")
    assert checkpoint is not None and checkpoint.context.storage == {"n": 1} and checkpoint.fingerprint == "fp"
    assert batch.get("a.json").storage == {"n": 1}
    assert batch.get("missing.json").storage is None and batch.read_checkpoint("missing.json") is None


def test_a_full_batch_is_flushed_and_a_plain_storage_file_reads_it(tmp_path, batch):
    for number in range(3):
        batch.post(f"k{number}.json", Context(storage=number))
    assert batch.stats() == {"posts": 3, "flushes": 1, "pending": 0}
    assert files(tmp_path) == ["k0.json", "k1.json", "k2.json"]
    plain = StorageFile(path=tmp_path)
    assert [plain.get(f"k{n}.json").storage for n in range(3)] == [0, 1, 2]


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


def test_close_flushes_retires_the_logs_and_refuses_more_posts(tmp_path):
    with BatchStorage(StorageFile(path=tmp_path), max_batch=100, max_delay=None) as batch:
        batch.post("a.json", Context(storage=1))
        assert files(tmp_path) == []
    assert files(tmp_path) == ["a.json"]
    assert logs(tmp_path) == []
    with pytest.raises(RuntimeError, match="closed"):
        batch.post("b.json", Context(storage=2))
    batch.close()  # idempotent


def test_the_time_bound_flushes_a_partial_batch(tmp_path):
    with BatchStorage(StorageFile(path=tmp_path), max_batch=100, max_delay=0.01) as batch:
        batch.post("a.json", Context(storage=1))
        deadline = time.monotonic() + 10
        while batch.stats()["flushes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # waiting for the flusher thread, not for a delay the test could inject
        assert batch.stats() == {"posts": 1, "flushes": 1, "pending": 0}
        assert files(tmp_path) == ["a.json"]


def test_deletes_and_listings_flush_first(tmp_path, batch):
    batch.post("a.json", Context(storage=1))
    assert list(batch.list_keys()) == ["a.json"]
    batch.post("b.json", Context(storage=2))
    assert batch.delete("b.json") is True
    assert files(tmp_path) == ["a.json"]


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


def test_a_storage_without_post_many_gets_one_post_per_checkpoint():
    inner = StorageDefault()
    with BatchStorage(inner, max_batch=10, max_delay=None) as batch:
        batch.post("a", Context(storage=1))
        batch.post("a", Context(storage=2))  # coalesced: only the last value is written
    assert inner.get("a").storage == 2


# ---------------------------------------------------------------------------------- with the engine


@action
def double(previous_context):
    return (previous_context.storage or 1) * 2


@action
def broken(previous_context):
    raise RuntimeError("broken on purpose")


def test_a_workflow_writes_one_checkpoint_per_task_and_everything_is_durable_when_start_returns(tmp_path):
    batch = BatchStorage(StorageFile(path=tmp_path), max_batch=1000, max_delay=None)
    flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
    flow.task.add(step=[double] * 5)
    flow.start()
    assert flow.result_storage() == [2, 4, 8, 16, 32]
    assert batch.stats() == {"posts": 5, "flushes": 1, "pending": 0}
    assert len(files(tmp_path)) == 5
    batch.close()


class FilesAtFailure(Notify):
    """Records which checkpoint files were on disk when a task was reported FAILED."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: list[str] | None = None

    def hook_status_task(self, task) -> None:
        if task.status == "Failed":
            self.seen = files(self.folder)


def test_buffered_checkpoints_are_flushed_before_a_failure_is_reported(tmp_path):
    batch = BatchStorage(StorageFile(path=tmp_path), max_batch=1000, max_delay=None)
    notify = FilesAtFailure(tmp_path)
    flow = DotFlow(config=Config(storage=batch, notify=notify), workflow_id=WORKFLOW)
    flow.task.add(step=[double, double, broken])
    flow.start()
    assert notify.seen == [f"{WORKFLOW}-0-double.json", f"{WORKFLOW}-1-double.json"]
    batch.close()


def test_resume_through_batch_storage_skips_flushed_tasks(tmp_path):
    with BatchStorage(StorageFile(path=tmp_path), max_batch=2, max_delay=None) as batch:
        flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
        flow.task.add(step=[double, double, broken])
        flow.start()
    with BatchStorage(StorageFile(path=tmp_path), max_batch=2, max_delay=None) as batch:
        flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
        flow.task.add(step=[double, double, double])
        flow.start(resume=True)
        assert [t.restored for t in flow.result_task()] == [True, True, False]
        assert flow.result_storage() == [2, 4, 8]


# ------------------------------------------------------------------------------------ crash recovery


def test_a_log_committed_but_not_applied_is_replayed_on_open(tmp_path, monkeypatch):
    batch = BatchStorage(StorageFile(path=tmp_path), max_batch=2, max_delay=None)

    def crash(self, entries):
        raise OSError("simulated crash after the log was committed")

    monkeypatch.setattr(FileBatchLog, "apply", crash)
    batch.post("a.json", Context(storage=1))
    with pytest.raises(OSError, match="simulated"):
        batch.post("b.json", Context(storage=2))
    monkeypatch.undo()
    assert files(tmp_path) == [] and len(logs(tmp_path)) == 1
    batch._log.close_lock()  # the process "died": its lock is gone, nothing else ran

    reopened = BatchStorage(StorageFile(path=tmp_path), max_batch=2, max_delay=None)
    assert reopened._log.replayed == 1
    assert files(tmp_path) == ["a.json", "b.json"] and logs(tmp_path) == []
    assert StorageFile(path=tmp_path).get("b.json").storage == 2
    reopened.close()


def test_a_torn_log_is_dropped_whole_and_nothing_of_it_is_applied(tmp_path):
    storage = StorageFile(path=tmp_path)
    whole = batch_log._log_bytes(7, [("a.json", b"{}"), ("b.json", b"{}")])
    for cut in (len(whole) - 1, len(whole) // 2, 10):
        (tmp_path / "tasks" / ".batch-0000000000000007.log").write_bytes(whole[:cut])
        reopened = BatchStorage(storage, max_batch=2, max_delay=None)
        assert reopened._log.replayed == 0
        assert files(tmp_path) == [] and logs(tmp_path) == []
        reopened.close()


def test_a_replayed_log_cannot_write_outside_the_folder(tmp_path):
    entry = b'{"format":"dotflow-checkpoint","version":1,"value":null,"fingerprint":null,"expires_at":null}\n'
    log = batch_log._log_bytes(3, [("../evil.json", entry)])
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / ".batch-0000000000000003.log").write_bytes(log)
    with pytest.raises(ValueError, match="escape"):
        BatchStorage(StorageFile(path=tmp_path))
    assert not (tmp_path / "evil.json").exists()


def test_retired_logs_are_never_replayed(tmp_path):
    with BatchStorage(StorageFile(path=tmp_path), max_batch=1, max_delay=None) as batch:
        batch.post("a.json", Context(storage=1))
        batch.post("a.json", Context(storage=2))
    # a retired log whose deletion was lost must not bring back its older value
    stale = batch_log._log_bytes(1, [("a.json", encode_document("a.json", Context(storage=1), None, None))])
    (tmp_path / "tasks" / ".batch-0000000000000001.log").write_bytes(stale)
    with BatchStorage(StorageFile(path=tmp_path)) as reopened:
        assert reopened._log.replayed == 0
        assert reopened.get("a.json").storage == 2
    assert logs(tmp_path) == []


def test_the_workflow_callbacks_run_after_the_last_flush(tmp_path):
    for mode in ("sequential", "background"):
        folder = tmp_path / mode
        batch = BatchStorage(StorageFile(path=folder), max_batch=1000, max_delay=None)
        seen: list[list[str]] = []
        flow = DotFlow(config=Config(storage=batch), workflow_id=WORKFLOW)
        flow.task.add(step=[double] * 3)
        flow.start(mode=mode, on_success=lambda tasks: seen.append(files(folder)))
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.005)  # the background run ends in its own thread
        assert seen == [[f"{WORKFLOW}-{n}-double.json" for n in range(3)]], mode
        batch.close()
