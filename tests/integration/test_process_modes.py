"""Modes that run tasks in child processes: results, failures and what crosses the process boundary."""

from __future__ import annotations

import os
import uuid

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.types import TypeStatus
from dotflow.storage.memory import StorageDefault
from dotflow.storage.file import StorageFile

pytestmark = pytest.mark.slow  # every test here starts child processes

TEN_MB = 10 * 1024 * 1024


@action
def big():
    return b"x" * TEN_MB


@action
def unpicklable():
    return lambda: "cannot cross a pipe"


@action
def dies():
    os._exit(3)


@action
def pid():
    return os.getpid()


@action
def plus_one(previous_context):
    return (previous_context.storage or 0) + 1


def flow_with(storage=None):
    return DotFlow(config=Config(storage=storage or StorageDefault()), workflow_id=str(uuid.uuid4()))


def test_parallel_returns_a_10_mb_result_without_hanging():
    flow = flow_with()
    flow.task.add(step=[big, pid])
    flow.start(mode="parallel")
    first, second = flow.result_task()
    assert first.status == TypeStatus.COMPLETED
    assert len(first.current_context.storage) == TEN_MB
    assert second.current_context.storage != os.getpid()  # ran in a child


def test_parallel_unpicklable_result_fails_with_a_clear_error():
    storage = StorageDefault()
    flow = flow_with(storage)
    flow.task.add(step=[unpicklable, pid])
    flow.start(mode="parallel")
    bad, good = flow.result_task()
    assert bad.status == TypeStatus.FAILED
    assert bad.errors[-1].exception == "CheckpointNotSaved"
    assert "cannot be sent" in bad.errors[-1].message
    assert "function" in bad.errors[-1].message
    assert good.status == TypeStatus.COMPLETED
    assert storage.list_keys() == [storage.key(task=good)]


def test_unpicklable_result_with_file_storage_names_the_type(tmp_path):
    flow = flow_with(StorageFile(path=tmp_path))
    flow.task.add(step=unpicklable)
    flow.start()
    task = flow.result_task()[0]
    assert task.status == TypeStatus.FAILED
    assert "function" in task.errors[-1].message


def test_a_child_that_dies_fails_its_task_only():
    flow = flow_with()
    flow.task.add(step=[dies, pid])
    flow.start(mode="parallel")
    dead, alive = flow.result_task()
    assert dead.status == TypeStatus.FAILED
    assert dead.errors[-1].exception == "WorkerError"
    assert "exit code 3" in dead.errors[-1].message
    assert alive.status == TypeStatus.COMPLETED


def test_sequential_group_runs_each_group_in_order_in_its_own_process():
    flow = flow_with()
    for group in ("a", "b"):
        flow.task.add(step=[plus_one, plus_one, plus_one], group_name=group)
        flow.task.add(step=pid, group_name=group)
    flow.start(mode="sequential_group")
    tasks = flow.result_task()
    assert [t.current_context.storage for t in tasks if t.step is plus_one] == [1, 2, 3, 1, 2, 3]
    pids = {t.group_name: t.current_context.storage for t in tasks if t.step is pid}
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def test_sequential_group_stops_a_group_at_its_failure_and_leaves_the_rest_not_started():
    @action
    def boom():
        raise RuntimeError("boom")

    flow = flow_with()
    flow.task.add(step=[boom, plus_one], group_name="a")
    flow.task.add(step=[plus_one], group_name="b")
    manager = flow.start(mode="sequential_group")
    statuses = [t.status for t in flow.result_task()]
    assert statuses == [TypeStatus.FAILED, TypeStatus.NOT_STARTED, TypeStatus.COMPLETED]
    assert [t.task_id for t in manager.tasks] == ["0-boom", "2-plus_one"]


@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_child_status_hooks_fire_once_per_change(mode, tmp_path):
    from dotflow.abc.notify import Notify

    class FileNotify(Notify):
        def hook_status_task(self, task):
            with open(tmp_path / "hooks", "a") as out:
                out.write(f"{task.task_id} {task.status}\n")

    flow = DotFlow(config=Config(notify=FileNotify()), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=pid)
    flow.start(mode=mode)
    lines = (tmp_path / "hooks").read_text().splitlines()
    assert lines == ["0-pid Not started", "0-pid In progress", "0-pid Completed"]


class BufferingStorage(StorageDefault):
    """Stands in for BatchStorage: says it buffers writes, and counts the flushes asked of it."""

    buffers_writes = True

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


@action
def fails():
    raise RuntimeError("boom")


@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_a_child_flushes_the_parents_buffered_writes_before_reporting_a_failure(mode):
    storage = BufferingStorage()
    flow = flow_with(storage)
    flow.task.add(step=plus_one, group_name="a")
    flow.task.add(step=fails, group_name="b")
    flow.start(mode=mode)
    statuses = [task.status for task in flow.result_task()]
    assert statuses == [TypeStatus.COMPLETED, TypeStatus.FAILED]
    assert storage.flushes == 2  # one before the failure is reported (in the child), one at the workflow's end


def test_journal_calls_from_many_children_need_one_parent_connection(tmp_path):
    """Each thread that uses a journal keeps a connection: served on the storage's thread pool, twelve
    children could hold more than the journal's pool has (here 3: the caller's writes, its reads, one more)."""
    import sqlalchemy

    from uow import Journal
    from uow.sql_engine import _configure_sqlite

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'journal.db'}", pool_size=3, max_overflow=0,
                                      pool_timeout=3, connect_args={"timeout": 30})  # fmt: skip
    _configure_sqlite(engine, "NORMAL", busy_timeout=30.0)
    journal = Journal(engine, batch_outcomes=1)  # every outcome written as it comes, from the serving threads
    flow = DotFlow(config=Config(storage=StorageDefault(), journal=journal), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=[plus_one] * 12)
    flow.start(mode="parallel")
    assert [task.status for task in flow.result_task()] == [TypeStatus.COMPLETED] * 12
    assert len(journal.units(outcome="committed")) == 12
    journal.close()
