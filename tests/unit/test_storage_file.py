from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest

from dotflow.values.codec import UnencodableValueError
from dotflow.core.context import Context
from dotflow.storage import file as storage_file
from dotflow.storage.file import StorageFile


@pytest.fixture
def storage(tmp_path: Path) -> StorageFile:
    return StorageFile(path=tmp_path / "out")


def files(storage: StorageFile) -> list[str]:
    """The folder's files, without `.lock` (the folder's write lock, created on the first write)."""
    return sorted(name for name in os.listdir(storage.path) if name != ".lock")


def write_raw(storage: StorageFile, name: str, text: str) -> None:
    (storage.path / name).write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------- layout

def test_folder_is_created_with_parents(tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "a" / "b")
    assert storage.path == tmp_path / "a" / "b" / "tasks"
    assert storage.path.is_dir()


def test_key_and_file_name(storage: StorageFile) -> None:
    task = SimpleNamespace(workflow_id=UUID("0b7e6b1e-5c4c-4e0c-9d5e-2f4f5f6a7b8c"), task_id="step-1")
    key = storage.key(task)
    assert key == "0b7e6b1e-5c4c-4e0c-9d5e-2f4f5f6a7b8c-step-1.json"
    storage.post(key, Context(storage=1))
    assert files(storage) == [key]


def test_file_is_one_json_object_with_the_documented_fields(storage: StorageFile) -> None:
    wf = UUID("0b7e6b1e-5c4c-4e0c-9d5e-2f4f5f6a7b8c")
    before = time.time()
    storage.post("wf-1-a.json", Context(storage=(1, "x"), task_id="t1", workflow_id=wf), ttl=60, fingerprint="fp")
    body = json.loads((storage.path / "wf-1-a.json").read_text(encoding="utf-8"))
    assert list(body) == ["format", "version", "value", "fingerprint", "expires_at", "revision"]
    assert body["format"] == "dotflow-checkpoint" and body["version"] == 1
    assert re.fullmatch(r"[0-9a-f]{32}", body["revision"])
    assert storage.read_checkpoint("wf-1-a.json").version == body["revision"]
    assert body["fingerprint"] == "fp"
    assert before + 60 <= body["expires_at"] <= time.time() + 60
    value = body["value"]["$context"]
    assert value["storage"] == {"$tuple": [1, "x"]}
    assert value["task_id"] == "t1" and value["workflow_id"] == str(wf)
    assert isinstance(value["time"], str)

    storage.post("wf-1-a.json", Context(storage=None))
    body = json.loads((storage.path / "wf-1-a.json").read_text(encoding="utf-8"))
    assert body["fingerprint"] is None and body["expires_at"] is None
    assert body["value"]["$context"]["storage"] is None


def test_any_str_survives_the_file(storage: StorageFile) -> None:
    value = {"text": "é\u2603", "lone surrogate": "\ud800", "nul": "a\0b"}
    storage.post("wf-1-a.json", Context(storage=value))
    assert storage.get("wf-1-a.json").storage == value


# -------------------------------------------------------------------------------------- key safety

BAD_KEYS = ["../x", "/etc/passwd", "a/b", "..", ".", ".hidden", "a\\b", "", "a\0b", "x.json.meta", "k" * 256]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_everywhere_and_write_nothing(tmp_path: Path, key: str) -> None:
    storage = StorageFile(path=tmp_path / "out")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    calls = [
        lambda: storage.post(key, Context(storage=1)),
        lambda: storage.get(key),
        lambda: storage.read_checkpoint(key),
        lambda: storage.delete(key),
        lambda: storage.atomic_swap(key, None, 1),
    ]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        assert repr(key)[:40] in str(info.value)
        assert "cannot escape the storage folder" in str(info.value)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_non_str_key_is_refused(storage: StorageFile) -> None:
    with pytest.raises(ValueError, match="must be a str"):
        storage.post(5, Context(storage=1))  # type: ignore[arg-type]


def test_a_symlink_pointing_outside_is_refused(tmp_path: Path, storage: StorageFile) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text('["\\"secret\\""]', encoding="utf-8")
    (storage.path / "evil.json").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the storage folder"):
        storage.get("evil.json")
    with pytest.raises(ValueError, match="outside the storage folder"):
        storage.post("evil.json", Context(storage="overwrite"))
    assert outside.read_text(encoding="utf-8") == '["\\"secret\\""]'
    assert storage.list_keys() == []
    assert storage.delete_prefix("") == 0
    assert outside.exists()


# ----------------------------------------------------------------------------- writes and crashes

def test_unencodable_value_names_key_and_type_and_keeps_previous_checkpoint(storage: StorageFile) -> None:
    storage.post("wf-1-a.json", Context(storage={"good": 1}), fingerprint="fp-good")
    with pytest.raises(TypeError) as info:
        storage.post("wf-1-a.json", Context(storage={"rows": [1, object()]}), fingerprint="fp-bad")
    assert isinstance(info.value, UnencodableValueError)
    message = str(info.value)
    assert "'wf-1-a.json'" in message and "object" in message and "['rows'][1]" in message
    checkpoint = storage.read_checkpoint("wf-1-a.json")
    assert checkpoint is not None
    assert checkpoint.context.storage == {"good": 1} and checkpoint.fingerprint == "fp-good"
    assert files(storage) == ["wf-1-a.json"]


def test_unencodable_value_on_a_new_key_creates_nothing(storage: StorageFile) -> None:
    with pytest.raises(TypeError, match="'wf-1-b.json'"):
        storage.post("wf-1-b.json", Context(storage=lambda: 1))
    assert files(storage) == []


def test_no_temp_files_are_left_after_posts(storage: StorageFile) -> None:
    for i in range(5):
        storage.post("wf-1-a.json", Context(storage=i))
        storage.post(f"wf-1-{i}.json", Context(storage=i), ttl=60, fingerprint="fp")
    storage.atomic_swap("wf-1-a.json", 4, "swapped")
    assert not [name for name in files(storage) if name.startswith(".")]
    assert len(files(storage)) == 6


def test_failed_rename_leaves_the_old_checkpoint_and_no_temp_file(
    storage: StorageFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.post("wf-1-a.json", Context(storage="old"))

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(storage_file.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        storage.post("wf-1-a.json", Context(storage="new"))
    monkeypatch.undo()
    assert storage.get("wf-1-a.json").storage == "old"
    assert files(storage) == ["wf-1-a.json"]


def test_failed_fsync_leaves_the_old_checkpoint_and_no_temp_file(
    storage: StorageFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.post("wf-1-a.json", Context(storage="old"))

    def crash(fd: int) -> None:
        raise OSError("io error")

    monkeypatch.setattr(storage_file.os, "fsync", crash)
    with pytest.raises(OSError, match="io error"):
        storage.post("wf-1-a.json", Context(storage="new"))
    monkeypatch.undo()
    assert storage.get("wf-1-a.json").storage == "old"
    assert files(storage) == ["wf-1-a.json"]


def test_a_leftover_temp_file_from_a_crash_is_ignored(storage: StorageFile) -> None:
    storage.post("wf-1-a.json", Context(storage="old"))
    write_raw(storage, ".wf-1-a.json.k3j4h5.tmp", '{"format": "dotflow-checkpoint", "vers')
    assert storage.get("wf-1-a.json").storage == "old"
    assert storage.list_keys() == ["wf-1-a.json"]
    assert storage.delete_prefix("") == 1
    storage.post("wf-1-a.json", Context(storage="new"))
    assert storage.get("wf-1-a.json").storage == "new"


def fixed_temp_names(monkeypatch: pytest.MonkeyPatch, *draws: bytes) -> None:
    """Make the temp-name draws (6 random bytes each) return `draws` in turn, then the last one forever."""
    real, queue = os.urandom, list(draws)

    def urandom(n: int) -> bytes:
        if n != 6:  # (the revision draws 16 bytes)
            return real(n)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    monkeypatch.setattr(storage_file.os, "urandom", urandom)


def test_a_temp_name_held_by_another_writer_is_drawn_again(
    storage: StorageFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = f".wf-1-a.json.{'00' * 6}.tmp"
    write_raw(storage, held, "another writer's temp file")
    fixed_temp_names(monkeypatch, b"\0" * 6, b"\1" * 6)
    storage.post("wf-1-a.json", Context(storage="new"))
    assert storage.get("wf-1-a.json").storage == "new"
    assert (storage.path / held).read_text(encoding="utf-8") == "another writer's temp file"
    assert files(storage) == [held, "wf-1-a.json"]


def test_no_free_temp_name_is_an_error_and_keeps_the_checkpoint(
    storage: StorageFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.post("wf-1-a.json", Context(storage="old"))
    held = f".wf-1-a.json.{'00' * 6}.tmp"
    write_raw(storage, held, "stuck")
    fixed_temp_names(monkeypatch, b"\0" * 6)
    with pytest.raises(FileExistsError, match="no free temporary file name for 'wf-1-a.json'"):
        storage.post("wf-1-a.json", Context(storage="new"))
    monkeypatch.undo()
    assert storage.get("wf-1-a.json").storage == "old"
    assert files(storage) == [held, "wf-1-a.json"]


def test_temp_files_are_private_to_the_owner(storage: StorageFile, monkeypatch: pytest.MonkeyPatch) -> None:
    modes = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        modes.append(os.stat(src).st_mode & 0o777)
        real_replace(src, dst)

    monkeypatch.setattr(storage_file.os, "replace", replace)
    storage.post("wf-1-a.json", Context(storage=1))
    storage.post("wf-1-a.json", Context(storage=2))
    assert modes == [0o600, 0o600]


def test_file_from_an_unknown_format_version_is_refused(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", json.dumps({"format": "dotflow-checkpoint", "version": 2, "value": None}))
    with pytest.raises(ValueError, match="version 2"):
        storage.get("wf-1-a.json")


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("value", {"$pickle": "x"}, "'\\$pickle'"),
        ("value", [1], "not a Context"),
        ("fingerprint", 5, "fingerprint"),
        ("expires_at", "soon", "expires_at"),
    ],
)
def test_corrupt_new_format_file_is_an_error_not_a_missing_key(
    storage: StorageFile, field: str, bad: Any, message: str
) -> None:
    context = {"storage": 1, "task_id": None, "workflow_id": None, "time": None}
    body = {"format": "dotflow-checkpoint", "version": 1, "value": {"$context": context}, "fingerprint": None}
    body["expires_at"] = None
    body[field] = bad
    write_raw(storage, "wf-1-a.json", json.dumps(body))
    with pytest.raises(ValueError, match="corrupt checkpoint for key 'wf-1-a.json'.*" + message) as info:
        storage.read_checkpoint("wf-1-a.json")
    path = str(storage.path.resolve() / "wf-1-a.json")
    assert info.value.path == path and str(info.value).count(path) == 1  # named once, set when raised


def test_atomic_swap_is_atomic_between_threads(storage: StorageFile) -> None:
    storage.post("wf-1-n.json", Context(storage=0))
    barrier = threading.Barrier(8)

    def bump() -> None:
        barrier.wait(timeout=10)
        for _ in range(5):
            while True:
                current = storage.get("wf-1-n.json").storage
                if storage.atomic_swap("wf-1-n.json", current, current + 1):
                    break

    workers = [threading.Thread(target=bump) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert storage.get("wf-1-n.json").storage == 40


def test_list_keys_skips_dot_files_and_meta_files(storage: StorageFile) -> None:
    storage.post("wf-1-a.json", Context(storage=1))
    write_raw(storage, "wf-1-b.json.meta", "{}")
    write_raw(storage, ".wf-1-c.json.x.tmp", "")
    (storage.path / "wf-1-dir").mkdir()
    assert storage.list_keys("wf-1-") == ["wf-1-a.json"]


# ------------------------------------------------------------------------- dotflow 1.0.1 files

@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('["{\\"a\\": 1}"]', {"a": 1}),
        ('["[1, 2]"]', [1, 2]),
        ('["\\"ok\\""]', "ok"),
        ('["not json"]', "not json"),
        ("[]", None),
    ],
)
def test_single_value_legacy_files_read_as_in_1_0_1(storage: StorageFile, body: str, expected: Any) -> None:
    write_raw(storage, "wf-1-a.json", body)
    context = storage.get("wf-1-a.json")
    assert type(context) is Context
    assert context.storage == expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "the file is empty"),
        ('["{\\"a', "not valid JSON"),  # torn by 1.0.1's in-place write, or truncated
        ('{"format": "dotflow-checkpoint", "vers', "not valid JSON"),  # truncated document
        (b"\xff\xfe[]", "not valid JSON"),
        ('{"a": 1}', "JSON dict, neither"),
        ('"text"', "JSON str, neither"),
        ("[1, 2]", "JSON list, neither"),  # 1.0.1 wrote only strings in its array
        ("null", "JSON NoneType, neither"),
    ],
)
def test_a_file_in_neither_format_is_an_error_naming_key_and_path(
    storage: StorageFile, body: str | bytes, problem: str
) -> None:
    from dotflow.core.exception import CorruptCheckpointError

    target = storage.path / "wf-1-a.json"
    target.write_bytes(body if isinstance(body, bytes) else body.encode())
    for read in (storage.get, storage.read_checkpoint):
        with pytest.raises(CorruptCheckpointError, match="corrupt checkpoint for key 'wf-1-a.json'") as raised:
            read("wf-1-a.json")
        assert problem in str(raised.value) and str(target) in str(raised.value)
    with pytest.raises(CorruptCheckpointError):
        storage.atomic_swap("wf-1-a.json", None, 1)
    assert target.read_bytes() == (body if isinstance(body, bytes) else body.encode())  # left as it was
    assert storage.list_keys("wf-1-") == ["wf-1-a.json"]
    assert storage.delete("wf-1-a.json") is True
    assert storage.read_checkpoint("wf-1-a.json") is None


def test_several_element_legacy_file_reads_as_a_list_of_contexts(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", json.dumps([json.dumps(1), json.dumps({"b": [2]}), "raw"]))
    items = storage.get("wf-1-a.json").storage
    assert [type(item) for item in items] == [Context, Context, Context]
    assert [item.storage for item in items] == [1, {"b": [2]}, "raw"]
    checkpoint = storage.read_checkpoint("wf-1-a.json")
    assert checkpoint is not None and len(checkpoint.context.storage) == 3


def test_legacy_tags_are_not_interpreted(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", json.dumps([json.dumps({"$tuple": [1]})]))
    assert storage.get("wf-1-a.json").storage == {"$tuple": [1]}


def test_legacy_failure_markers_are_not_checkpoints(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", '["null"]')
    write_raw(storage, "wf-1-b.json", '["null", "null"]')
    assert storage.get("wf-1-a.json").storage is None
    assert [c.storage for c in storage.get("wf-1-b.json").storage] == [None, None]  # as 1.0.1 read it
    assert storage.read_checkpoint("wf-1-a.json") is None
    assert storage.read_checkpoint("wf-1-b.json") is None


def test_legacy_meta_with_past_expiry_expires_the_legacy_file(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", '["1"]')
    write_raw(storage, "wf-1-a.json.meta", json.dumps({"expires_at": time.time() - 5}))
    assert storage.get("wf-1-a.json").storage is None
    assert files(storage) == []


def test_legacy_meta_with_future_expiry_and_fingerprint(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", '["1"]')
    write_raw(storage, "wf-1-a.json.meta", json.dumps({"fingerprint": "fp-old", "expires_at": time.time() + 60}))
    checkpoint = storage.read_checkpoint("wf-1-a.json")
    assert checkpoint is not None
    assert checkpoint.context.storage == 1 and checkpoint.fingerprint == "fp-old"
    assert storage.list_keys() == ["wf-1-a.json"]


def test_new_post_over_a_legacy_file_replaces_it_and_removes_the_meta(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", '["1", "2"]')
    write_raw(storage, "wf-1-a.json.meta", json.dumps({"fingerprint": "fp-old", "expires_at": time.time() + 1}))
    storage.post("wf-1-a.json", Context(storage=3))
    assert files(storage) == ["wf-1-a.json"]
    checkpoint = storage.read_checkpoint("wf-1-a.json")
    assert checkpoint is not None
    assert checkpoint.context.storage == 3 and checkpoint.fingerprint is None
    assert json.loads((storage.path / "wf-1-a.json").read_text(encoding="utf-8"))["format"] == "dotflow-checkpoint"


def test_a_stale_meta_next_to_a_new_format_file_is_ignored(storage: StorageFile) -> None:
    storage.post("wf-1-a.json", Context(storage="fresh"))
    write_raw(storage, "wf-1-a.json.meta", json.dumps({"fingerprint": "x", "expires_at": time.time() - 5}))
    checkpoint = storage.read_checkpoint("wf-1-a.json")
    assert checkpoint is not None
    assert checkpoint.context.storage == "fresh" and checkpoint.fingerprint is None


def test_delete_removes_the_legacy_meta(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", '["1"]')
    write_raw(storage, "wf-1-a.json.meta", json.dumps({"fingerprint": "fp"}))
    assert storage.delete("wf-1-a.json") is True
    assert files(storage) == []


def test_delete_prefix_removes_data_and_meta_files(storage: StorageFile) -> None:
    write_raw(storage, "wf-1-a.json", '["1"]')
    write_raw(storage, "wf-1-a.json.meta", "{}")
    write_raw(storage, "wf-1-orphan.json.meta", "{}")
    storage.post("wf-1-b.json", Context(storage=2))
    storage.post("wf-2-c.json", Context(storage=3))
    assert storage.delete_prefix("wf-1-") == 2
    assert files(storage) == ["wf-2-c.json"]


def test_expired_file_is_deleted_when_read(storage: StorageFile) -> None:
    storage.post("wf-1-a.json", Context(storage=1), ttl=0)
    assert storage.get("wf-1-a.json").storage is None
    assert files(storage) == []
    storage.post("wf-1-b.json", Context(storage=1), ttl=0)
    assert storage.delete("wf-1-b.json") is False
    assert files(storage) == []


# ------------------------------------------------------------------------------- long keys (251-255 bytes)

@pytest.mark.parametrize("length", [250, 251, 253, 255])
def test_keys_up_to_255_bytes_are_stored_read_listed_and_deleted(storage: StorageFile, length: int) -> None:
    key = "k" * (length - 5) + ".json"
    storage.post(key, Context(storage={"n": length}), ttl=60, fingerprint="fp")
    assert storage.get(key).storage == {"n": length}
    assert storage.read_checkpoint(key).fingerprint == "fp"
    assert storage.list_keys("k") == [key]
    assert storage.delete(key) is True
    assert files(storage) == []


def test_a_255_byte_legacy_file_is_read_as_1_0_1_did(storage: StorageFile) -> None:
    key = "w" * 250 + ".json"
    write_raw(storage, key, json.dumps([json.dumps({"a": 1})]))  # 1.0.1 wrote no sidecar here
    assert storage.get(key).storage == {"a": 1}
    storage.post(key, Context(storage=2))
    assert storage.get(key).storage == 2


@pytest.mark.parametrize("key", ["k" * 256, "é" * 128])
def test_a_key_over_255_bytes_is_refused_before_anything_is_written(storage: StorageFile, key: str) -> None:
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        storage.post(key, Context(storage=1))
    assert files(storage) == []


def test_a_failure_after_the_rename_does_not_fail_the_post(
    storage: StorageFile, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_fsync(root: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("dotflow.storage.checkpoint_files.sync_folder", broken_fsync)
    storage.post("wf-1-a.json", Context(storage="stored"))  # does not raise: the file is in place
    assert storage.get("wf-1-a.json").storage == "stored"
    assert "is in place" in caplog.text and "Input/output error" in caplog.text


def test_a_task_with_a_253_byte_key_completes_with_one_write(tmp_path: Path) -> None:
    from dotflow import Config, DotFlow, action
    from dotflow.core.types import TypeStatus

    posts: list[str] = []

    class Recording(StorageFile):
        def post(self, key, context, ttl=None, fingerprint=None):  # type: ignore[no-untyped-def]
            posts.append(key)
            super().post(key, context, ttl=ttl, fingerprint=fingerprint)

    @action
    def step():
        return "done"

    storage = Recording(path=tmp_path)
    workflow_id = "w" * 200  # key: 200 + "-" + task id (47) + ".json" = 253 bytes
    flow = DotFlow(config=Config(storage=storage), workflow_id=workflow_id)
    flow.task.add(step=step, task_id="t" * 47)
    flow.start()
    task = flow.result_task()[0]
    assert len(storage.key(task=task).encode()) == 253
    assert task.status == TypeStatus.COMPLETED, task.errors
    assert posts == [storage.key(task=task)]
    assert storage.get(storage.key(task=task)).storage == "done"
