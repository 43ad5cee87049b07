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
        return StorageDefault()


# Behaviour specific to the in-memory backend.


def test_a_value_that_cannot_be_copied_is_refused_and_nothing_is_stored() -> None:
    storage = StorageDefault()
    storage.post("wf-1-a", Context(storage="good"))
    with pytest.raises(TypeError) as info:
        storage.post("wf-1-a", Context(storage={"lock": threading.Lock()}))
    assert "'wf-1-a'" in str(info.value) and "dict" in str(info.value) and "lock" in str(info.value)
    assert storage.get("wf-1-a").storage == "good"


def test_instances_do_not_share_state() -> None:
    first, second = StorageDefault(), StorageDefault()
    first.post("wf-1-a", Context(storage=1))
    assert second.get("wf-1-a").storage is None
    assert second.list_keys() == []
