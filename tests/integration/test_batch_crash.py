"""BatchStorage's durability contract under kill -9 of a real process.

A crash loses at most the checkpoints not yet flushed (their tasks run again on resume); a batch is
never torn or partly applied; resume never re-runs a task whose batch was flushed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dotflow import Config, DotFlow, action
from dotflow.providers import BatchStorage, StorageFile
from dotflow.storage.batch_log import read_segment

ROOT = Path(__file__).resolve().parents[2]
TASKS, MAX_BATCH = 12, 4

pytestmark = pytest.mark.slow


def run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.batch_pipeline", str(tmp_path / "store"),
         str(tmp_path / "runs.log"), "--tasks", str(TASKS), "--max-batch", str(MAX_BATCH), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def ran(tmp_path: Path) -> list[int]:
    return [int(line) for line in (tmp_path / "runs.log").read_text().split()]


def steps_durable(tmp_path: Path) -> list[int]:
    """Steps whose checkpoint is in a complete segment on disk (read without BatchStorage)."""
    keys = set()
    for path in (tmp_path / "store" / "tasks").glob(".batch-*.log"):
        segment = read_segment(path)
        if segment is not None:
            keys.update(entry.key for entry in segment.entries)
    return sorted(int(key.split("-step")[1].split(".")[0]) for key in keys)


def resume(tmp_path: Path) -> dict:
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kill_mid_run_loses_only_the_unflushed_batch(tmp_path):
    crashed = run(tmp_path, "--kill-at", "9")  # batches [0-3] and [4-7] flushed; 8 is buffered, 9 dies
    assert crashed.returncode == -signal.SIGKILL
    assert ran(tmp_path) == list(range(10))
    assert steps_durable(tmp_path) == list(range(8))

    state = resume(tmp_path)
    assert ran(tmp_path)[10:] == list(range(8, TASKS))  # 0-7 never run again; 8 (lost) and the rest run
    assert state["restored"] == [f"{n}-step{n}" for n in range(8)]
    assert state["statuses"] == ["Completed"] and state["last"] == TASKS - 1


def test_kill_right_after_a_segment_is_durable(tmp_path):
    crashed = run(tmp_path, "--kill-in", "durable:2")  # the 2nd batch (steps 4-7) is durable, nothing more
    assert crashed.returncode == -signal.SIGKILL
    assert steps_durable(tmp_path) == list(range(8))

    state = resume(tmp_path)  # opening replays the segment: steps 4-7 are restored, not run
    assert ran(tmp_path)[8:] == list(range(8, TASKS))
    assert state["restored"] == [f"{n}-step{n}" for n in range(8)]


def test_kill_while_a_segment_is_written_applies_none_of_it(tmp_path):
    crashed = run(tmp_path, "--kill-in", "log:2")  # the 2nd batch's segment is torn
    assert crashed.returncode == -signal.SIGKILL
    assert steps_durable(tmp_path) == list(range(4))

    resume(tmp_path)
    assert ran(tmp_path)[8:] == list(range(4, TASKS))  # the whole torn batch runs again, nothing of it was kept
    assert steps_durable(tmp_path) == list(range(TASKS))


def test_kill_during_compaction_keeps_every_checkpoint(tmp_path):
    crashed = run(tmp_path, "--kill-in", "compact:0")  # compacted segment durable, old ones still there
    assert crashed.returncode == -signal.SIGKILL
    assert len(list((tmp_path / "store" / "tasks").glob(".batch-*.log"))) == 4

    state = resume(tmp_path)
    assert ran(tmp_path)[TASKS:] == []  # nothing runs again
    assert state["restored"] == [f"{n}-step{n}" for n in range(TASKS)]
    assert len(list((tmp_path / "store" / "tasks").glob(".batch-*.log"))) == 1


@action
def double(previous_context):
    return (previous_context.storage or 1) * 2


def test_child_process_modes_commit_and_resume_through_the_parents_batch_storage(tmp_path):
    """Children send their commits (conditional ones on resume) to the parent's BatchStorage."""
    for mode in ("parallel", "sequential_group"):
        folder = tmp_path / mode
        with BatchStorage(StorageFile(path=folder), max_delay=None) as batch:
            flow = DotFlow(config=Config(storage=batch), workflow_id="modes")
            flow.task.add(step=[double] * 4)
            flow.start(mode=mode)
            first = flow.result_storage()
        with BatchStorage(StorageFile(path=folder), max_delay=None) as batch:
            flow = DotFlow(config=Config(storage=batch), workflow_id="modes")
            flow.task.add(step=[double] * 4)
            flow.start(mode=mode, resume=True)
            assert [task.restored for task in flow.result_task()] == [True] * 4, mode
            assert flow.result_storage() == first, mode
