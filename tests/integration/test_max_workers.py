"""`Config(max_workers=...)`: the child-process modes keep at most that many children alive, each taking
the next task (or group) as it finishes one, with the guarantees of one process per task."""

from __future__ import annotations

import os
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

pytestmark = [
    pytest.mark.slow,  # every test here forks workers
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts children in /proc"),
]


def living_children(pid: int) -> set[int]:
    """The children of `pid` that are not zombies, read from /proc (every thread's list)."""
    found: set[int] = set()
    for thread in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(child) for child in (thread / "children").read_text().split())
        except OSError:
            continue  # the thread ended
    alive = set()
    for child in found:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(child)
    return alive


class ChildCounter:
    """Polls the children of this process from a thread; `most` is the largest number seen alive at once.

    Children alive before it starts (the session's servers, in a full test run) are not counted."""

    def __init__(self) -> None:
        self.most = 0
        self.seen: set[int] = set()
        self._before: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> ChildCounter:
        self._before = living_children(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            alive = living_children(me) - self._before
            self.most = max(self.most, len(alive))
            self.seen |= alive
            time.sleep(0.001)


class CountingStorage(StorageDefault):
    def __init__(self) -> None:
        super().__init__()
        self.posts: list[str] = []
        self.poster_pids: set[int] = set()

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.posts.append(key)
        self.poster_pids.add(os.getpid())
        super().post(key=key, context=context, ttl=ttl, fingerprint=fingerprint)


class RecordingJournal:
    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.units: list[Any] = []

    def record(self, unit: Any) -> None:
        self.pids.add(os.getpid())
        self.units.append(unit)


def executions(path: Path) -> list[tuple[int, str]]:
    """(pid, task) lines the steps appended to `path` (O_APPEND: whole lines, whichever process wrote)."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(pid), task) for pid, task in rows]


def append_execution(task: object) -> None:
    fd = os.open(os.environ["EXECUTIONS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{os.getpid()} {task}\n".encode())
    finally:
        os.close(fd)


@action
def note(initial_context):
    append_execution(initial_context.storage)
    return initial_context.storage


@pytest.mark.timeout(240)
def test_500_parallel_tasks_never_have_more_than_max_workers_children_alive(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EXECUTIONS_FILE", str(tmp_path / "executions"))
    storage, journal = CountingStorage(), RecordingJournal()
    flow = DotFlow(config=Config(storage=storage, journal=journal, max_workers=3), workflow_id=str(uuid.uuid4()))
    for position in range(500):
        flow.task.add(step=note, initial_context=position)
    with ChildCounter() as children:
        flow.start(mode="parallel")

    assert [task.status for task in flow.result_task()] == [TypeStatus.COMPLETED] * 500
    assert flow.result_storage() == list(range(500))
    assert 2 <= children.most <= 3, f"{children.most} children alive at once"
    ran = executions(tmp_path / "executions")
    assert sorted(int(task) for _, task in ran) == list(range(500))  # each step once
    assert len({pid for pid, _ in ran}) <= 3  # 3 processes took every task (1.0.1 forked 500)
    assert {pid for pid, _ in ran} <= children.seen
    # One write per task, every write and every journal entry in the parent.
    assert sorted(storage.posts) == sorted(storage.key(task) for task in flow.result_task())
    assert storage.poster_pids == journal.pids == {os.getpid()}
    assert sorted(unit.task_id for unit in journal.units) == sorted(task.task_id for task in flow.result_task())


@action
def slow_note(initial_context):
    time.sleep(0.05)
    append_execution(initial_context.storage)
    return initial_context.storage


def test_sequential_group_runs_at_most_max_workers_groups_at_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EXECUTIONS_FILE", str(tmp_path / "executions"))
    flow = DotFlow(config=Config(max_workers=2), workflow_id=str(uuid.uuid4()))
    for group in "abcde":
        for position in range(3):
            flow.task.add(step=slow_note, initial_context=f"{group}{position}", group_name=group)
    with ChildCounter() as children:
        flow.start(mode="sequential_group")
    assert [task.status for task in flow.result_task()] == [TypeStatus.COMPLETED] * 15
    assert 1 <= children.most <= 2
    ran = executions(tmp_path / "executions")
    by_group: dict[str, list[tuple[int, str]]] = {}
    for pid, task in ran:
        by_group.setdefault(task[0], []).append((pid, task))
    for group, rows in by_group.items():
        assert [task for _, task in rows] == [f"{group}{n}" for n in range(3)]  # in order
        assert len({pid for pid, _ in rows}) == 1  # one process ran the whole group
    assert len({pid for pid, _ in ran}) <= 2


@action
def dies_in_the_middle(initial_context):
    if initial_context.storage == 1:
        os._exit(7)
    return initial_context.storage


def test_a_worker_that_dies_fails_its_task_only_and_a_new_worker_takes_the_rest() -> None:
    flow = DotFlow(config=Config(max_workers=1), workflow_id=str(uuid.uuid4()))
    for position in range(4):
        flow.task.add(step=dies_in_the_middle, initial_context=position)
    flow.start(mode="parallel")
    tasks = flow.result_task()
    assert [task.status for task in tasks] == [
        TypeStatus.COMPLETED, TypeStatus.FAILED, TypeStatus.COMPLETED, TypeStatus.COMPLETED
    ]  # fmt: skip
    assert "exit code 7" in tasks[1].errors[-1].message
    assert [tasks[n].current_context.storage for n in (0, 2, 3)] == [0, 2, 3]


def test_workers_that_die_before_taking_a_task_are_not_forked_again_and_again(monkeypatch) -> None:
    from dotflow.run import processes

    monkeypatch.setattr(processes, "_die_with_parent", lambda parent_pid: os._exit(3))  # every child dies at once
    flow = DotFlow(config=Config(max_workers=2), workflow_id=str(uuid.uuid4()))
    for position in range(5):
        flow.task.add(step=note, initial_context=position)
    forks: list[Any] = []
    fork = processes._WorkerPool._fork
    monkeypatch.setattr(processes._WorkerPool, "_fork", lambda pool: (forks.append(1), fork(pool)))
    flow.start(mode="parallel")
    assert len(forks) == 2
    tasks = flow.result_task()
    assert [task.status for task in tasks] == [TypeStatus.FAILED] * 5
    assert "no worker process was left to run it" in tasks[0].errors[-1].message
