"""User types (Enum, dataclass, Path, a registered pydantic model) through the process modes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dotflow import Config, DotFlow, action
from dotflow.providers import StorageFile
from tests.user_types import Batch, Level, Order, sample_batch


@action
def make_batch():
    return sample_batch()


@action
def make_order():
    return [Order(sku="tea", qty=2), Level.LOW, Path("/out")]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_child_process_results_of_user_types_are_committed_and_restored(tmp_path: Path, mode: str) -> None:
    workflow_id = str(uuid.uuid4())

    def run() -> DotFlow:
        flow = DotFlow(config=Config(storage=StorageFile(path=tmp_path)), workflow_id=workflow_id)
        flow.task.add(step=make_batch, group_name="a")
        flow.task.add(step=make_order, group_name="b")
        flow.start(mode=mode, resume=True)
        return flow

    first = run()
    assert [task.status for task in first.result_task()] == ["Completed", "Completed"]
    again = run()
    assert [task.restored for task in again.result_task()] == [True, True]
    batch, order = again.result_storage()
    assert type(batch) is Batch and batch == sample_batch()
    assert order == [Order(sku="tea", qty=2), Level.LOW, Path("/out")]
