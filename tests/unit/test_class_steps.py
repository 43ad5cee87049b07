"""Class-based steps: @action methods run in definition order, each fed the previous one's context."""

from __future__ import annotations

import uuid

from dotflow import Config, Context, DotFlow, action
from dotflow.core.types import TypeStatus
from dotflow.storage.memory import StorageDefault


@action
class Pipeline:
    def __init__(self, initial_context):
        self.base = initial_context.storage

    @action
    def second_alphabetically_first_in_source(self, previous_context):
        return self.base + 1

    @action(retry=2)
    def add_ten(self, previous_context):
        return previous_context.storage + 10

    def helper(self):  # not an action: skipped
        return "never"

    @action
    async def as_text(self, previous_context):
        return f"={previous_context.storage}"


class Base:
    @action
    def first(self):
        return "base"


@action
class Child(Base):
    @action
    def second(self, previous_context):
        return previous_context.storage + "+child"


@action
class NoActions:
    def __init__(self):
        self.value = 42


def run(step, initial=None):
    flow = DotFlow(config=Config(storage=StorageDefault()), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=step, initial_context=initial)
    flow.start()
    return flow.result_task()[0]


def test_methods_run_in_source_order_and_chain_contexts():
    task = run(Pipeline, initial=1)
    assert task.status == TypeStatus.COMPLETED
    subs = task.current_context.storage
    assert [sub.storage for sub in subs] == [2, 12, "=12"]
    assert [sub.task_id for sub in subs] == [
        "0-Pipeline.second_alphabetically_first_in_source",
        "0-Pipeline.add_ten",
        "0-Pipeline.as_text",
    ]
    assert task.current_context.task_id == "0-Pipeline"
    assert task.current_context.workflow_id is not None


def test_inherited_actions_run_before_the_subclass_ones():
    task = run(Child)
    assert [sub.storage for sub in task.current_context.storage] == ["base", "base+child"]


def test_class_without_actions_stores_the_instance():
    task = run(NoActions)
    assert isinstance(task.current_context.storage, NoActions.func)
    assert task.current_context.storage.value == 42


def test_class_step_checkpoint_round_trips_through_file_storage(tmp_path):
    from dotflow.storage.file import StorageFile

    storage = StorageFile(path=tmp_path)
    workflow_id = str(uuid.uuid4())
    flow = DotFlow(config=Config(storage=storage), workflow_id=workflow_id)
    flow.task.add(step=Pipeline, initial_context=1)
    flow.start()
    stored = storage.get(key=storage.key(task=flow.result_task()[0])).storage
    assert isinstance(stored, list) and all(isinstance(sub, Context) for sub in stored)
    assert [sub.storage for sub in stored] == [2, 12, "=12"]
    assert stored[1].task_id == "0-Pipeline.add_ten"
