"""Storage I/O per task, in every execution mode (child processes included).

success = 1 write and 0 reads; failure = 0 writes; retried-then-successful = 1 write;
resume adds one read per task looked up and writes nothing for restored tasks.
The counting storage logs to a file, so calls made in any process are counted.
"""

from __future__ import annotations

import uuid

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.types import TypeStatus
from tests.support import CountingStorage, boom, ok

# Modes that start child processes are slow tests.
MODES = [
    "sequential",
    "background",
    pytest.param("sequential_group", marks=pytest.mark.slow),
    pytest.param("parallel", marks=pytest.mark.slow),
]


_ATTEMPTS_FILE = {"path": None}


@action(retry=3, retry_delay=0)
def flaky_then_ok():
    # Fails twice, then succeeds; attempts are counted in a file so forked children agree.
    path = _ATTEMPTS_FILE["path"]
    count = int(path.read_text() or 0) + 1
    path.write_text(str(count))
    if count < 3:
        raise RuntimeError(f"attempt {count} fails")
    return "finally"


def build(storage, steps, mode, workflow_id=None):
    flow = DotFlow(config=Config(storage=storage), workflow_id=workflow_id or str(uuid.uuid4()))
    groups = mode == "sequential_group"
    for index, step in enumerate(steps):
        flow.task.add(step=step, group_name=f"g{index % 2}" if groups else "default")
    return flow


def run(flow, mode, **kwargs):
    manager = flow.start(mode=mode, keep_going=True, **kwargs)
    if mode == "background":
        manager.thread.join(timeout=30)
        assert not manager.thread.is_alive()
    return manager


@pytest.fixture
def storage(tmp_path):
    return CountingStorage(tmp_path / "io.log")


@pytest.mark.parametrize("mode", MODES)
def test_success_is_one_write_and_no_read_per_task(storage, mode):
    flow = build(storage, [ok, ok, ok, ok], mode)
    run(flow, mode)
    assert [task.status for task in flow.result_task()] == [TypeStatus.COMPLETED] * 4
    assert storage.writes() == 4
    assert storage.reads() == 0
    written = sorted(key for method, key in storage.log() if method == "post")
    assert written == sorted(storage.key(task=task) for task in flow.result_task())


@pytest.mark.parametrize("mode", MODES)
def test_failure_writes_nothing(storage, mode):
    flow = build(storage, [boom, ok], mode)
    run(flow, mode)
    statuses = {task.task_id: task.status for task in flow.result_task()}
    assert statuses["0-boom"] == TypeStatus.FAILED
    assert statuses["1-ok"] == TypeStatus.COMPLETED
    assert storage.writes() == 1  # only the successful task
    assert ("post", storage.key(task=flow.result_task()[0])) not in storage.log()
    assert storage.reads() == 0


@pytest.mark.parametrize("mode", MODES)
def test_retried_then_successful_is_one_write(storage, mode, tmp_path):
    _ATTEMPTS_FILE["path"] = tmp_path / "attempts"
    _ATTEMPTS_FILE["path"].write_text("0")
    flow = build(storage, [flaky_then_ok], mode)
    run(flow, mode)
    task = flow.result_task()[0]
    assert task.status == TypeStatus.COMPLETED
    assert task.retry_count == 2
    assert [error.attempt for error in task.errors] == [1, 2]
    assert task.current_context.storage == "finally"
    assert storage.writes() == 1
    assert storage.reads() == 0


@pytest.mark.parametrize("mode", MODES)
def test_resume_reads_once_per_task_and_rewrites_nothing(storage, mode):
    workflow_id = str(uuid.uuid4())
    run(build(storage, [ok, ok, ok], mode, workflow_id), mode)
    assert storage.writes() == 3
    storage.reset_log()

    again = build(storage, [ok, ok, ok], mode, workflow_id)
    run(again, mode, resume=True)
    tasks = again.result_task()
    assert all(task.restored for task in tasks)
    assert [task.status for task in tasks] == [TypeStatus.COMPLETED] * 3
    assert storage.reads() == 3
    assert storage.writes() == 0


def test_resume_after_failure_runs_only_the_rest(storage):
    workflow_id = str(uuid.uuid4())
    first = build(storage, [ok, ok, boom, ok], "sequential", workflow_id)
    first.start()
    assert storage.writes() == 2
    storage.reset_log()

    second = build(storage, [ok, ok, ok, ok], "sequential", workflow_id)
    second.start(resume=True)
    tasks = second.result_task()
    assert [task.restored for task in tasks] == [True, True, False, False]
    # Every task looked up once (the versions make the commits of tasks 3 and 4 conditional);
    # then 2 tasks ran: 2 writes.
    assert storage.reads() == 4
    assert storage.writes() == 2
    assert tasks[3].current_context.storage == {"n": 4}
