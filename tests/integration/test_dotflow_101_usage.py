"""Usage patterns of dotflow 1.0.1's documentation, run unchanged against this library."""

from __future__ import annotations

import logging

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.types import TypeStatus
from dotflow.providers import LogDefault, ServerDefault, StorageFile


@action
def count_users():
    return {"users": 150}


@action
def active_users(previous_context):
    total = previous_context.storage["users"]
    return {"users": total, "active": int(total * 0.8)}


@action
def report(previous_context):
    return f"{previous_context.storage['active']} active"


def test_plain_etl_with_default_config():
    flow = DotFlow()
    flow.task.add(step=count_users)
    flow.task.add(step=active_users)
    flow.task.add(step=report)
    flow.start()
    assert flow.result_storage() == [{"users": 150}, {"users": 150, "active": 120}, "120 active"]


def test_both_contexts_injected_in_any_parameter_order():
    @action
    def hello():
        return "Hello"

    @action
    def greet(previous_context, initial_context):
        return f"{previous_context.storage}, {initial_context.storage}!"

    flow = DotFlow()
    flow.task.add(step=hello)
    flow.task.add(step=greet, initial_context="World")
    flow.start()
    assert flow.result_storage()[-1] == "Hello, World!"


def test_a_step_returning_an_object_with_action_methods():
    class Pipeline:
        @action
        def extract(self):
            return {"raw": [1, 2, 3]}

        @action
        def transform(self, previous_context):
            return {"processed": [x * 2 for x in previous_context.storage["raw"]]}

    @action
    def run_pipeline():
        return Pipeline()

    flow = DotFlow()
    flow.task.add(step=run_pipeline)
    flow.start()
    subs = flow.result_storage()[0]
    assert [sub.storage for sub in subs] == [{"raw": [1, 2, 3]}, {"processed": [2, 4, 6]}]


@pytest.mark.slow
def test_groups_keep_order_inside_each_group():
    @action
    def fetch(initial_context):
        return [initial_context.storage]

    @action
    def save(previous_context):
        return previous_context.storage + ["saved"]

    flow = DotFlow()
    flow.task.add(step=fetch, initial_context="users", group_name="users")
    flow.task.add(step=save, group_name="users")
    flow.task.add(step=fetch, initial_context="orders", group_name="orders")
    flow.task.add(step=save, group_name="orders")
    flow.start()
    assert flow.result_storage() == [["users"], ["users", "saved"], ["orders"], ["orders", "saved"]]


def test_background_mode_finishes_and_calls_back():
    done = []
    flow = DotFlow()
    flow.task.add(step=[count_users, active_users])
    manager = flow.start(mode="background", on_success=lambda tasks: done.append(len(tasks)))
    manager.thread.join(timeout=10)
    assert done == [2]  # the workflow's callbacks ran before its thread ended
    assert [t.status for t in flow.result_task()] == [TypeStatus.COMPLETED] * 2


def test_providers_accept_their_1_0_1_arguments(tmp_path):
    config = Config(
        storage=StorageFile(path=tmp_path),
        log=LogDefault(),
        server=ServerDefault(base_url="http://localhost:8000/api/v1", user_token="token"),
    )
    flow = DotFlow(config=config)
    flow.task.add(step=count_users)
    flow.start()
    assert flow.result_storage() == [{"users": 150}]
    assert flow.task.count() == 1
    assert flow.task.schema().model_dump()["tasks"][0]["status"] == TypeStatus.COMPLETED
    flow.task.reverse()
    flow.task.clear()
    assert flow.task.count() == 0


def test_steps_and_callbacks_given_as_import_strings():
    flow = DotFlow()
    flow.task.add(step="tests.integration.test_dotflow_101_usage.count_users", callback="tests.integration.test_dotflow_101_usage:remember")
    flow.start()
    assert REMEMBERED == ["0-count_users"]


REMEMBERED: list[str] = []


def remember(task):
    REMEMBERED.append(task.task_id)


def test_retry_waits_retry_delay_and_doubles_it_with_backoff(monkeypatch):
    import dotflow.run.engine as engine

    waits: list[float] = []
    monkeypatch.setattr(engine.time, "sleep", waits.append)

    @action(retry=4, retry_delay=0.5, backoff=True)
    def never():
        raise RuntimeError("down")

    flow = DotFlow()
    flow.task.add(step=never)
    flow.start()
    assert waits == [0.5, 1.0, 2.0]
    assert flow.result_task()[0].retry_count == 3


def test_schedule_hands_start_to_the_scheduler():
    from dotflow.abc.scheduler import Scheduler

    class Recorder(Scheduler):
        def start(self, workflow, **kwargs):
            self.workflow = workflow
            workflow()

        def stop(self):
            pass

    scheduler = Recorder()
    flow = DotFlow(config=Config(scheduler=scheduler))
    flow.task.add(step=count_users)
    flow.schedule()
    assert flow.result_storage() == [{"users": 150}]


def test_start_refuses_arguments_dotflow_sets_itself():
    flow = DotFlow()
    with pytest.raises(TypeError, match="workflow_id"):
        flow.start(workflow_id="x")
