"""Task properties are state only: no storage I/O from setters, getters or the constructor."""

from __future__ import annotations

from unittest.mock import Mock

from dotflow import Config, Context, Task, action
from dotflow.abc.storage import Storage
from dotflow.core.task import TaskBuilder


@action
def step():
    return 1


def test_assigning_current_context_calls_no_storage_method():
    storage = Mock(spec=Storage)
    task = Task(task_id="t1", step=step, config=Config(storage=storage), workflow_id="6f0ad3ec-8f1b-4b59-9d43-8b3c1f7f7a10")
    task.current_context = {"a": 1}
    task.current_context = None
    task.current_context = Context(storage=[1, 2])
    task.previous_context = "x"
    task.initial_context = "y"
    assert storage.method_calls == []
    assert task.current_context.storage == [1, 2]
    assert task.current_context.task_id == "t1"


def test_current_context_carries_the_task_ids_even_for_a_returned_bare_context():
    workflow_id = "6f0ad3ec-8f1b-4b59-9d43-8b3c1f7f7a10"
    task = Task(task_id="t1", step=step, workflow_id=workflow_id)
    task.current_context = Context(storage="v")  # ids "" / None, as a step's own Context has
    assert task.current_context.task_id == "t1"
    assert str(task.current_context.workflow_id) == workflow_id


def test_task_without_config_keeps_one_config():
    task = Task(task_id="t1", step=step)
    assert task.config is task.config
    assert task.config.storage is task.config.storage


def test_task_builder_ids_are_stable_for_the_same_definition():
    first = TaskBuilder(config=Config()).add(step=[step, step]).add(step=step, group_name="b")
    second = TaskBuilder(config=Config()).add(step=[step, step]).add(step=step, group_name="b")
    ids = [task.task_id for task in first.queue]
    assert ids == [task.task_id for task in second.queue]
    assert ids == ["0-step", "1-step", "2-step"]


def test_task_builder_accepts_an_explicit_task_id_and_refuses_duplicates():
    builder = TaskBuilder(config=Config()).add(step=step, task_id="extract-orders")
    assert builder.queue[0].task_id == "extract-orders"
    try:
        builder.add(step=step, task_id="extract-orders")
    except ValueError as error:
        assert "extract-orders" in str(error)
    else:
        raise AssertionError("duplicate task_id accepted")


def test_task_id_that_could_escape_a_storage_key_is_refused():
    for bad in ["../x", "a/b", "", ".hidden", "a b"]:
        try:
            Task(task_id=bad, step=step)
        except ValueError as error:
            assert repr(bad) in str(error)
        else:
            raise AssertionError(f"task_id {bad!r} accepted")


def test_start_and_finish_times_are_datetimes_and_the_duration_is_their_difference():
    from datetime import datetime

    from dotflow import DotFlow
    from dotflow.core.types import TypeStatus
    from dotflow.providers import NotifyDefault, StorageDefault

    class ReadsTheStart(NotifyDefault):
        seen: list[datetime] = []

        def hook_status_task(self, task, **kwargs):
            if task.status == TypeStatus.IN_PROGRESS and task.task_id.startswith("1-"):
                self.seen.append(task.started_at)  # read while running: made a datetime before the task ends

    before = datetime.now()
    flow = DotFlow(config=Config(storage=StorageDefault(), notify=ReadsTheStart()))
    flow.task.add(step=step)
    flow.task.add(step=step)
    flow.start()
    after = datetime.now()
    for task in flow.task.queue:
        started, finished = task.started_at, task.finished_at
        assert type(started) is datetime and type(finished) is datetime
        assert before <= started <= finished <= after
        assert task.started_at is started  # made once, then kept
        assert abs(task.duration - (finished - started).total_seconds()) < 2e-6
    assert ReadsTheStart.seen == [flow.task.queue[1].started_at]
    task = flow.task.queue[0]
    task.started_at = stamp = datetime(2026, 1, 2, 3, 4, 5)
    assert task.started_at is stamp
    task.clear_run()
    assert task.started_at is None and task.finished_at is None
