"""`isolated_copy` (the memory storage's copy): plain data by hand (`copy_plain`), the rest by `copy.deepcopy`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from decimal import Decimal

import pytest

from dotflow import Context
from dotflow.values.plain_copy import MAX_DEPTH, NotPlain, copy_plain
from dotflow.values.isolated_copy import isolated_copy
from dotflow.providers import StorageDefault


def test_plain_data_is_copied_all_the_way_down():
    value = {"rows": [{"sku": "tea", "tags": {"a"}}], ("k", 1): (1, [2]), "when": datetime(2026, 1, 2)}
    copied = isolated_copy(value)
    assert copied == value
    value["rows"][0]["sku"] = "coffee"
    value["rows"][0]["tags"].add("b")
    value[("k", 1)][1].append(3)
    assert copied == {"rows": [{"sku": "tea", "tags": {"a"}}], ("k", 1): (1, [2]), "when": datetime(2026, 1, 2)}


def test_a_context_is_copied_with_its_ids_and_time():
    context = Context(storage=[Context(storage={"x": [1]}, task_id="t.a")], task_id="t")
    copied = isolated_copy(context)
    assert copied is not context and type(copied) is Context
    assert (copied.task_id, copied.time, copied.workflow_id) == (context.task_id, context.time, None)
    context.storage[0].storage["x"].append(2)
    assert copied.storage[0].storage == {"x": [1]} and copied.storage[0].task_id == "t.a"


class Box:
    def __init__(self, items: list) -> None:
        self.items = items


@pytest.mark.parametrize(
    "value",
    [Box([1]), OrderedDict(a=[1]), {"deep": Box([1])}, [Decimal("1.5"), Box([2])]],
    ids=["object", "dict-subclass", "object-in-dict", "object-in-list"],
)
def test_anything_else_goes_through_deepcopy_and_is_isolated(value):
    copied = isolated_copy(value)
    assert type(copied) is type(value)
    leaf = copied if isinstance(copied, Box) else None
    if isinstance(value, Box):
        value.items.append(9)
        assert leaf is not None and leaf.items == [1]
    else:
        assert copied is not value


def test_cycles_and_very_deep_data_fall_back_to_deepcopy():
    loop: list = [1]
    loop.append(loop)
    copied = isolated_copy(loop)
    assert copied[1] is copied and copied is not loop
    deep: list = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    assert isolated_copy(deep) == deep


def test_the_fast_path_refuses_what_is_not_plain_and_the_fallback_copies_it():
    lock = threading.Lock()
    for value in ({"lock": lock}, [Box([1])], OrderedDict(a=1), {"k": {"deep": [1, {2}]}, "o": Box([])}):
        with pytest.raises(NotPlain):
            copy_plain(value)
    copied = isolated_copy({"lock": lock, "rows": [1]})
    assert copied["lock"] is lock and copied["rows"] == [1]  # what cannot be copied is kept as is


def test_storage_default_keeps_a_posted_dict_isolated_from_later_changes():
    storage = StorageDefault()
    value = {"rows": [1, 2]}
    storage.post("k", Context(storage=value))
    value["rows"].append(3)
    read = storage.get("k")
    assert read.storage == {"rows": [1, 2]}
    read.storage["rows"].append(4)
    assert storage.get("k").storage == {"rows": [1, 2]}
