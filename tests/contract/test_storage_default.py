from __future__ import annotations

import threading
import unittest

import pytest

from dotflow.abc.storage import Storage
from dotflow.core.context import Context
from dotflow.providers.storage_default import StorageDefault
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
