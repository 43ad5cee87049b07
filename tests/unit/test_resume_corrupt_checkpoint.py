"""A checkpoint file that does not parse stops a resumed run before anything runs, naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.exception import CorruptCheckpointError
from dotflow.storage.file import StorageFile

RUNS: list[str] = []


@action
def extract():
    RUNS.append("extract")
    return {"rows": 3}


@action
def transform(previous_context):
    RUNS.append("transform")
    return previous_context.storage["rows"] * 2


def run(path: Path, **kwargs: object) -> DotFlow:
    flow = DotFlow(config=Config(storage=StorageFile(path=path)), workflow_id="orders")
    flow.task.add(step=[extract, transform])
    flow.start(**kwargs)
    return flow


@pytest.mark.parametrize("damaged", ["orders-0-extract.json", "orders-1-transform.json"])
def test_resume_refuses_to_rerun_or_skip_a_task_whose_checkpoint_is_unreadable(tmp_path: Path, damaged: str) -> None:
    run(tmp_path)
    target = tmp_path / "tasks" / damaged
    torn = target.read_bytes()[:40]
    target.write_bytes(torn)
    RUNS.clear()
    with pytest.raises(CorruptCheckpointError) as raised:
        run(tmp_path, resume=True)
    assert str(target) in str(raised.value) and repr(damaged) in str(raised.value)
    assert RUNS == []  # nothing ran
    assert target.read_bytes() == torn  # and the file is left for the user to inspect


def test_a_run_without_resume_replaces_an_unreadable_checkpoint(tmp_path: Path) -> None:
    run(tmp_path)
    target = tmp_path / "tasks" / "orders-0-extract.json"
    target.write_text("{")
    RUNS.clear()
    flow = run(tmp_path)
    assert RUNS == ["extract", "transform"]
    assert flow.result_storage() == [{"rows": 3}, 6]
    assert StorageFile(path=tmp_path).get("orders-0-extract.json").storage == {"rows": 3}
