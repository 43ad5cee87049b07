"""`TaskBuilder.add` refuses a duplicate task id in constant time, even after the queue was changed directly."""

from __future__ import annotations

import pytest

from dotflow import Config, action
from dotflow.core.task import TaskBuilder


@action
def step():
    return 1


def test_a_duplicate_explicit_id_is_refused_among_many_tasks():
    builder = TaskBuilder(config=Config())
    for number in range(500):
        builder.add(step=step, task_id=f"t{number}")
    with pytest.raises(ValueError, match="'t250' is already used"):
        builder.add(step=step, task_id="t250")
    assert builder.count() == 500


def test_ids_freed_by_a_direct_change_of_the_queue_can_be_used_again():
    builder = TaskBuilder(config=Config()).add(step=step, task_id="a").add(step=step, task_id="b")
    builder.queue.pop()  # the queue is a public list
    builder.add(step=step, task_id="b")
    builder.queue[:] = [task for task in builder.queue if task.task_id != "a"]
    builder.add(step=step, task_id="a")
    with pytest.raises(ValueError, match="'b' is already used"):
        builder.add(step=step, task_id="b")
    builder.clear()
    builder.add(step=step, task_id="a")
    assert [task.task_id for task in builder.queue] == ["a"]


def test_a_task_appended_to_the_queue_directly_still_counts_as_taken():
    builder = TaskBuilder(config=Config()).add(step=step, task_id="a")
    other = TaskBuilder(config=Config()).add(step=step, task_id="b")
    builder.queue.append(other.queue[0])
    with pytest.raises(ValueError, match="'b' is already used"):
        builder.add(step=step, task_id="b")
