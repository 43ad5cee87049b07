"""The engine: attempts, retries, commits through a unit of work, and what a failure leaves behind."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

import dotflow.run.engine as engine
from dotflow import Config, Context, DotFlow, action
from dotflow.core.exception import CheckpointNotSaved, StorageError
from dotflow.core.types import TypeStatus
from dotflow.storage.memory import StorageDefault
from tests.support import FlakyStorage, MinimalStorage

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()
    RELEASE.clear()
    FINISHED.clear()
    yield
    RELEASE.set()  # never leave a step blocked behind a test


@action
def produce():
    CALLS.append("produce")
    return {"rows": [1, 2, 3]}


@action
def double(previous_context):
    CALLS.append("double")
    return [row * 2 for row in previous_context.storage["rows"]]


@action
def fails():
    CALLS.append("fails")
    raise ValueError("bad input row 7")


@action
def asserts():
    assert False, "invariant broken"


@action(retry=3, retry_delay=0)
def always_fails():
    CALLS.append("always_fails")
    raise RuntimeError(f"failure {len(CALLS)}")


RELEASE = threading.Event()  # set by a test to let a timed-out step finish
FINISHED = threading.Event()


@action(timeout=0.05, retry=3, retry_delay=0)
def too_slow():
    CALLS.append("too_slow")
    RELEASE.wait(10)
    FINISHED.set()
    return "late result"


@action
async def async_step(previous_context):
    await asyncio.sleep(0)
    return f"async:{previous_context.storage}"


@action
def returns_none():
    CALLS.append("returns_none")
    return None


def flow_with(storage=None, workflow_id=None):
    return DotFlow(config=Config(storage=storage or StorageDefault()), workflow_id=workflow_id or str(uuid.uuid4()))


def test_next_task_gets_previous_context_from_memory():
    flow = flow_with()
    flow.task.add(step=[produce, double])
    flow.start()
    assert flow.result_storage() == [{"rows": [1, 2, 3]}, [2, 4, 6]]
    assert [t.status for t in flow.result_task()] == [TypeStatus.COMPLETED] * 2


def test_failed_attempts_are_recorded_like_1_0_1():
    flow = flow_with()
    flow.task.add(step=always_fails)
    flow.start()
    task = flow.result_task()[0]
    assert task.status == TypeStatus.FAILED
    assert CALLS == ["always_fails"] * 3
    assert task.retry_count == 2
    assert [e.attempt for e in task.errors] == [1, 2, None]
    assert task.errors[-1].exception == "RuntimeError"
    assert "failure 3" in task.errors[-1].message


def test_failure_never_overwrites_a_good_checkpoint():
    storage = StorageDefault()
    workflow_id = str(uuid.uuid4())
    good = flow_with(storage, workflow_id)
    good.task.add(step=produce, task_id="extract")
    good.start()
    key = storage.key(task=good.result_task()[0])

    bad = flow_with(storage, workflow_id)
    bad.task.add(step=fails, task_id="extract")
    bad.start()
    assert bad.result_task()[0].status == TypeStatus.FAILED
    assert storage.get(key=key).storage == {"rows": [1, 2, 3]}


def test_assertion_error_fails_the_task_instead_of_escaping():
    flow = flow_with()
    flow.task.add(step=asserts)
    flow.start()
    task = flow.result_task()[0]
    assert task.status == TypeStatus.FAILED
    assert task.errors[-1].exception == "AssertionError"


def test_timeout_is_not_retried():
    flow = flow_with()
    flow.task.add(step=too_slow)
    flow.start()
    task = flow.result_task()[0]
    assert task.status == TypeStatus.FAILED
    assert task.errors[-1].exception == "StepTimeoutError"
    assert "timed out after 0.05 s" in task.errors[-1].message
    assert CALLS == ["too_slow"]


def test_a_timed_out_step_runs_in_a_daemon_thread_and_its_late_result_is_never_committed():
    storage = StorageDefault()
    flow = flow_with(storage)
    flow.task.add(step=too_slow).add(step=produce)
    flow.start(keep_going=True)
    first = flow.result_task()[0]
    assert first.status == TypeStatus.FAILED
    # the abandoned attempt still runs, in a thread that cannot keep the process alive
    [thread] = [t for t in threading.enumerate() if t.name == "dotflow-step-0-too_slow"]
    assert thread.daemon
    RELEASE.set()
    assert FINISHED.wait(10)
    thread.join(10)
    assert storage.read_checkpoint(storage.key(task=first)) is None  # its late result was dropped
    assert first.status == TypeStatus.FAILED and first.current_context.storage is None
    assert flow.result_storage()[1] == {"rows": [1, 2, 3]}


def test_a_step_error_inside_a_timeout_is_raised_as_is():
    @action(timeout=5, retry=2, retry_delay=0)
    def broken():
        CALLS.append("broken")
        raise KeyError("column")

    flow = flow_with()
    flow.task.add(step=broken)
    flow.start()
    task = flow.result_task()[0]
    assert CALLS == ["broken", "broken"]
    assert [e.exception for e in task.errors] == ["KeyError", "KeyError"]


def test_a_timeout_raised_by_the_step_itself_is_retried():
    @action(retry=2, retry_delay=0)
    def network_call():
        CALLS.append("network_call")
        if len(CALLS) == 1:
            raise TimeoutError("read timed out")
        return "ok"

    flow = flow_with()
    flow.task.add(step=network_call)
    flow.start()
    assert CALLS == ["network_call", "network_call"]
    assert flow.result_storage() == ["ok"]


def test_async_step_runs_to_completion():
    flow = flow_with()
    flow.task.add(step=produce).add(step=async_step)
    flow.start()
    assert flow.result_storage()[1] == "async:{'rows': [1, 2, 3]}"


def test_transient_commit_failure_retries_the_commit_not_the_step():
    storage = FlakyStorage(failures=2, error=ConnectionError("network blip"))
    flow = flow_with(storage)
    flow.task.add(step=produce)
    flow.start()
    task = flow.result_task()[0]
    assert task.status == TypeStatus.COMPLETED
    assert CALLS == ["produce"]  # the step ran once
    assert storage.post_attempts == 3
    assert storage.get(key=storage.key(task=task)).storage == {"rows": [1, 2, 3]}


@action(retry=3, retry_delay=0)
def produce_with_retries():
    CALLS.append("produce")
    return {"rows": [1, 2, 3]}


def test_commit_that_keeps_failing_fails_the_task_without_rerunning_the_step():
    storage = FlakyStorage(failures=100, error=ConnectionError("storage down"))
    flow = flow_with(storage)
    flow.task.add(step=produce_with_retries).add(step=double)
    flow.start()
    first = flow.result_task()[0]
    assert first.status == TypeStatus.FAILED
    assert CALLS == ["produce"]  # the step may be retried 3 times: a failed commit must not use them
    assert storage.post_attempts == engine.COMMIT_ATTEMPTS
    assert first.retry_count == 0
    assert first.errors[-1].exception == "CheckpointNotSaved"
    assert "could not be saved" in first.errors[-1].message
    assert "storage down" in first.errors[-1].message
    assert first.current_context.storage is None  # a FAILED task has no result
    assert flow.result_task()[1].status == TypeStatus.NOT_STARTED


def test_commit_retries_wait_the_commit_retry_delay_doubling(monkeypatch):
    monkeypatch.setattr(engine, "COMMIT_RETRY_DELAY", 0.2)
    waits: list[float] = []
    monkeypatch.setattr(engine.time, "sleep", waits.append)
    storage = FlakyStorage(failures=100, error=ConnectionError("storage down"))
    flow = flow_with(storage)
    flow.task.add(step=produce)
    flow.start()
    assert waits == [0.2, 0.4]  # between the 3 tries of the commit


def test_after_an_unsaved_checkpoint_keep_going_hands_on_no_value():
    storage = FlakyStorage(failures=3, error=ConnectionError("storage down"))
    flow = flow_with(storage)
    flow.task.add(step=produce).add(step=returns_none)
    flow.start(keep_going=True)
    first, second = flow.result_task()
    assert first.status == TypeStatus.FAILED
    assert second.previous_context.storage is None


@pytest.mark.parametrize(
    "error",
    [
        TypeError("cannot encode object"),
        AttributeError("bug in a storage"),
        StorageError("S3 refused PutObject on bucket 'b' key 'k': 403 AccessDenied"),  # the SDK already retried
    ],
)
def test_permanent_commit_error_is_not_retried(error):
    storage = FlakyStorage(failures=100, error=error)
    flow = flow_with(storage)
    flow.task.add(step=produce)
    flow.start()
    assert storage.post_attempts == 1
    assert flow.result_task()[0].errors[-1].exception == CheckpointNotSaved.__name__


def test_a_result_of_none_is_checkpointed_and_restored():
    storage = StorageDefault()
    workflow_id = str(uuid.uuid4())
    first = flow_with(storage, workflow_id)
    first.task.add(step=returns_none)
    first.start()
    second = flow_with(storage, workflow_id)
    second.task.add(step=returns_none)
    second.start(resume=True)
    assert CALLS == ["returns_none"]
    assert second.result_task()[0].restored


def test_custom_storage_with_only_the_required_methods_works():
    storage = MinimalStorage()
    workflow_id = str(uuid.uuid4())
    flow = flow_with(storage, workflow_id)
    flow.task.add(step=[produce, double])
    flow.start()
    assert len(storage.data) == 2
    again = flow_with(storage, workflow_id)
    again.task.add(step=[produce, double])
    again.start(resume=True)
    assert CALLS == ["produce", "double"]
    assert again.result_storage() == [{"rows": [1, 2, 3]}, [2, 4, 6]]


def test_keep_going_runs_past_a_failure():
    flow = flow_with()
    flow.task.add(step=[fails, produce])
    manager = flow.start(keep_going=True)
    assert [t.status for t in manager.tasks] == [TypeStatus.FAILED, TypeStatus.COMPLETED]


def test_without_keep_going_later_tasks_do_not_run():
    flow = flow_with()
    flow.task.add(step=[fails, produce])
    manager = flow.start()
    assert [t.task_id for t in manager.tasks] == ["0-fails"]
    assert flow.result_task()[1].status == TypeStatus.NOT_STARTED
    assert CALLS == ["fails"]


def test_workflow_callbacks():
    seen = {}
    flow = flow_with()
    flow.task.add(step=fails)
    flow.start(on_failure=lambda tasks: seen.setdefault("failure", len(tasks)), on_success=lambda tasks: seen.setdefault("success", 1))
    assert seen == {"failure": 1}


def test_task_callback_receives_the_task():
    seen = []
    flow = flow_with()
    flow.task.add(step=produce, callback=lambda task: seen.append((task.task_id, task.status)))
    flow.start()
    assert seen == [("0-produce", TypeStatus.COMPLETED)]


def test_every_start_runs_its_tasks_and_resume_skips_the_checkpointed_ones():
    flow = flow_with()
    flow.task.add(step=produce)
    first = flow.start()
    assert flow.start() is not first
    assert CALLS == ["produce", "produce"]
    flow.start(resume=True)
    assert CALLS == ["produce", "produce"]
    assert flow.result_task()[0].restored


def test_initial_context_is_injected():
    @action
    def greet(initial_context):
        return f"hello {initial_context.storage}"

    flow = flow_with()
    flow.task.add(step=greet, initial_context="world")
    flow.start()
    assert flow.result_storage() == ["hello world"]


def test_context_returned_by_a_step_keeps_its_value():
    @action
    def wrapped():
        return Context(storage={"k": 1})

    flow = flow_with()
    flow.task.add(step=wrapped)
    flow.start()
    context = flow.result_context()[0]
    assert context.storage == {"k": 1}
    assert context.task_id == "0-wrapped"


def test_hand_built_tasks_resume_under_the_managers_workflow_id():
    from dotflow import Task
    from dotflow.run.modes import Manager

    storage = StorageDefault()
    config = Config(storage=storage)
    workflow_id = str(uuid.uuid4())

    def tasks():
        return [Task(task_id="a", step=produce, config=config), Task(task_id="b", step=double, config=config)]

    Manager(tasks=tasks(), workflow_id=workflow_id, config=config)
    assert sorted(storage.list_keys()) == [f"{workflow_id}-a", f"{workflow_id}-b"]
    CALLS.clear()
    again = Manager(tasks=tasks(), workflow_id=workflow_id, config=config, resume=True)
    assert CALLS == []
    assert [task.restored for task in again.tasks] == [True, True]


def test_a_journal_failure_after_the_commit_does_not_rerun_the_step(caplog):
    class BrokenJournal:
        def __init__(self):
            self.records = 0

        def record(self, unit):
            self.records += 1
            raise OSError("journal disk full")

    journal = BrokenJournal()
    storage = StorageDefault()
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=produce)
    flow.start()
    task = flow.result_task()[0]
    assert CALLS == ["produce"]
    assert task.status == TypeStatus.COMPLETED
    assert journal.records == 1
    assert storage.get(key=storage.key(task=task)).storage == {"rows": [1, 2, 3]}
    assert "journal disk full" in caplog.text


def test_a_background_run_has_written_its_outcomes_when_its_thread_ends(tmp_path):
    from uow import Journal

    url = f"sqlite:///{tmp_path / 'journal.db'}"
    finished = []
    flow = DotFlow(config=Config(storage=StorageDefault(), journal=url), workflow_id="background-etl")
    flow.task.add(step=[produce, double])
    manager = flow.start(mode="background", on_success=lambda tasks: finished.append(len(tasks)))
    manager.thread.join(timeout=10)
    assert finished == [2]  # the run's end ran before its thread ended
    reader = Journal(url)  # another reader: only what is written to the database counts
    try:
        assert sorted(unit.outcome for unit in reader.units(workflow_id="background-etl")) == ["committed"] * 2
    finally:
        reader.close()
