from __future__ import annotations

import threading
import unittest

import pytest

from dotflow.abc.storage import Storage
from dotflow.core.context import Context
from dotflow.storage.memory import StorageDefault
from dotflow.testing import StorageContract


class TestStorageDefault(StorageContract, unittest.TestCase):
    def make_storage(self) -> Storage:
        return StorageDefault(clock=self.clock)


# Behaviour specific to the in-memory backend.


def test_plain_data_is_copied_so_later_changes_never_reach_the_checkpoint() -> None:
    storage = StorageDefault()
    value = {"rows": [1, 2], "when": (3, {"nested": {4}})}
    storage.post("wf-1-a", Context(storage=value))
    value["rows"].append(99)
    value["when"][1]["nested"].add(5)
    read = storage.get("wf-1-a").storage
    assert read == {"rows": [1, 2], "when": (3, {"nested": {4}})}
    read["rows"].clear()
    assert storage.get("wf-1-a").storage["rows"] == [1, 2]


def test_an_object_that_cannot_be_copied_is_kept_as_the_same_object_inside_copied_containers() -> None:
    storage = StorageDefault()
    lock = threading.Lock()
    rows = [1, 2]
    value = {"lock": lock, "rows": rows, "view": memoryview(b"abc")}
    value["self"] = value  # cycles survive the partial copy too
    storage.post("wf-1-a", Context(storage=value))
    rows.append(3)
    read = storage.get("wf-1-a").storage
    assert read["lock"] is lock and read["view"] is value["view"]
    assert read["rows"] == [1, 2] and read["rows"] is not rows
    assert read is not value and read["self"] is read


def test_a_lone_uncopyable_value_is_stored_and_read_back_as_itself() -> None:
    storage = StorageDefault()
    numbers = (n for n in range(3))
    storage.post("wf-1-a", Context(storage=numbers))
    assert storage.get("wf-1-a").storage is numbers


def test_sub_contexts_holding_an_uncopyable_object_keep_their_ids_and_the_object() -> None:
    storage = StorageDefault()
    numbers = (n for n in [1, 2])
    value = [Context(storage=numbers, task_id="t.read"), Context(storage=(1, [2]), task_id="t.sum")]
    storage.post("wf-1-a", Context(storage=value, task_id="t"))
    value[1].storage[1].append(3)
    read = storage.get("wf-1-a")
    assert read.task_id == "t"
    assert [sub.task_id for sub in read.storage] == ["t.read", "t.sum"]
    assert read.storage[0].storage is numbers and read.storage[1].storage == (1, [2])
    assert read.storage[0] is not value[0]


def test_instances_do_not_share_state() -> None:
    first, second = StorageDefault(), StorageDefault()
    first.post("wf-1-a", Context(storage=1))
    assert second.get("wf-1-a").storage is None
    assert second.list_keys() == []


class _TaggedContext(Context):
    """A Context subclass with a field of its own."""

    def __init__(self, storage: object = None, tag: str = "") -> None:
        super().__init__(storage=storage, task_id="t1", workflow_id="0" * 32)
        self.tag = tag


def test_a_plain_context_comes_back_with_its_time_and_ids_as_a_separate_copy() -> None:
    storage = StorageDefault()
    posted = Context(storage={"n": [1]}, task_id="t1", workflow_id="12345678123456781234567812345678")
    storage.post("wf-1-a", posted)
    first, second = storage.get("wf-1-a"), storage.get("wf-1-a")
    assert (first.storage, first.time, first.task_id, first.workflow_id) == (
        {"n": [1]}, posted.time, "t1", posted.workflow_id,
    )  # fmt: skip
    assert first is not second and first.storage is not second.storage
    first.storage["n"].append(2)
    assert storage.get("wf-1-a").storage == {"n": [1]}


def test_a_context_subclass_is_stored_whole_and_read_back_as_its_own_class() -> None:
    storage = StorageDefault()
    storage.post("wf-1-a", _TaggedContext(storage=[1], tag="kept"))
    read = storage.get("wf-1-a")
    assert type(read) is _TaggedContext
    assert (read.storage, read.tag, read.task_id) == ([1], "kept", "t1")
    assert storage.atomic_swap("wf-1-a", expected=[1], new=Context(storage=[2]))
    assert storage.get("wf-1-a").storage == [2]


def test_post_many_refuses_a_batch_with_a_bad_item_before_writing_any() -> None:
    storage = StorageDefault()
    storage.post("wf-0-a", Context(storage="before"))
    with pytest.raises(TypeError, match="fingerprint"):
        storage.post_many([("wf-0-a", Context(storage="after"), None, None), ("wf-1-b", Context(storage=1), None, 7)])
    assert storage.get("wf-0-a").storage == "before"
    assert storage.read_checkpoint("wf-1-b") is None
    storage.post_many([("wf-0-a", Context(storage="after"), None, None), ("wf-1-b", [1], None, "fp")])
    assert storage.get("wf-0-a").storage == "after"
    assert storage.read_checkpoint("wf-1-b").fingerprint == "fp"  # type: ignore[union-attr]
