"""Child processes of sequential_group and parallel: exits, the parent's death, concurrent serving, journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.context import Context
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageDefault

pytestmark = pytest.mark.slow  # every test here forks workers

ROOT = Path(__file__).resolve().parents[2]


@action
def exits_cleanly():
    os._exit(0)


@action
def raises_system_exit_zero():
    sys.exit(0)


@action
def fine():
    return "fine"


@pytest.mark.parametrize("step", [exits_cleanly, raises_system_exit_zero])
@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_a_worker_that_exits_with_status_0_mid_task_fails_that_task(step: Any, mode: str) -> None:
    succeeded: list[Any] = []
    flow = DotFlow(workflow_id=str(uuid.uuid4()))
    flow.task.add(step=step, group_name="a")
    flow.task.add(step=fine, group_name="b")
    manager = flow.start(mode=mode, on_success=lambda tasks: succeeded.append(tasks))
    dead, alive = flow.result_task()
    assert dead.status == TypeStatus.FAILED
    assert dead.errors[-1].exception == "WorkerError"
    assert "exit code 0" in dead.errors[-1].message
    assert alive.status == TypeStatus.COMPLETED
    assert succeeded == []  # the workflow failed
    assert dead in manager.tasks


class BarrierStorage(StorageDefault):
    """A storage whose writes only complete once `parties` of them are in flight at the same time.

    Served one at a time, the first write would wait alone and the barrier would time out."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=20)

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.barrier.wait()
        super().post(key=key, context=context, ttl=ttl, fingerprint=fingerprint)


def test_the_parent_serves_the_commits_of_parallel_tasks_concurrently() -> None:
    storage = BarrierStorage(parties=8)
    flow = DotFlow(config=Config(storage=storage, max_workers=8), workflow_id=str(uuid.uuid4()))
    for position in range(8):
        flow.task.add(step=fine, task_id=f"t{position}")
    flow.start(mode="parallel")
    assert [task.status for task in flow.result_task()] == [TypeStatus.COMPLETED] * 8
    assert len(storage.list_keys()) == 8


class RecordingJournal:
    def __init__(self) -> None:
        self.pids: list[int] = []
        self.units: list[Any] = []

    def record(self, unit: Any) -> None:
        self.pids.append(os.getpid())
        self.units.append(unit)


@action(retry=2, retry_delay=0)
def flaky(previous_context):
    marker = Path(os.environ["FLAKY_MARKER"])
    if not marker.exists():
        marker.touch()
        raise RuntimeError("first attempt fails")
    return "ok"


@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_child_units_are_journaled_once_each_by_the_parent(mode: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLAKY_MARKER", str(tmp_path / "marker"))
    journal = RecordingJournal()
    flow = DotFlow(config=Config(journal=journal), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=flaky, group_name="a")
    flow.task.add(step=fine, group_name="b")
    flow.start(mode=mode)
    assert [task.status for task in flow.result_task()] == [TypeStatus.COMPLETED] * 2
    assert set(journal.pids) == {os.getpid()}
    outcomes = sorted((unit.task_id, unit.attempt, unit.state) for unit in journal.units)
    assert outcomes == [("0-flaky", 1, "rolled_back"), ("0-flaky", 2, "committed"), ("1-fine", 1, "committed")]
    failed = next(unit for unit in journal.units if unit.state == "rolled_back")
    assert failed.error_text == "RuntimeError: first attempt fails"


PARENT = """
import sys, time
from dotflow import Config, DotFlow, action

@action
def linger():
    time.sleep(60)

flow = DotFlow(config=Config(max_workers=3), workflow_id="orphans")
for group in ("a", "b", "c"):
    flow.task.add(step=linger, group_name=group)
flow.start(mode=sys.argv[1])
"""


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_workers_exit_promptly_when_the_parent_is_killed(mode: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], cwd=ROOT)
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while len(workers) < 3 and time.monotonic() < deadline:
        workers = _children_of(parent.pid)
        time.sleep(0.05)
    assert len(workers) == 3, "the workers did not start"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], "workers outlived their parent"
