"""The dotflow 1.0.1 public surface: names, import paths and Context's rules."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

import dotflow
from dotflow import Config, Context, DotFlow, Task, action
from dotflow.core.exception import MissingActionDecorator, NotCallableObject


def test_top_level_names():
    assert dotflow.__version__ == "1.0.1"
    assert sorted(dotflow.__all__) == sorted(["DotFlow", "action", "Context", "Config", "Task", "Claim"])
    from dotflow.core.action import Action

    assert action is Action


def test_module_paths_of_1_0_1_import():
    from dotflow.abc.flow import Flow  # noqa: F401
    from dotflow.abc.storage import Storage  # noqa: F401
    from dotflow.core.engine import TaskEngine  # noqa: F401
    from dotflow.core.fingerprint import FP_KEY_SUFFIX, fingerprint_of, fp_key  # noqa: F401
    from dotflow.core.task import TaskBuilder, TaskError  # noqa: F401
    from dotflow.core.types import VALID_POLICIES, TypeExecution, TypeStatus  # noqa: F401
    from dotflow.core.workflow import Background, Manager, Parallel, Sequential, SequentialGroup, grouper  # noqa: F401
    from dotflow.providers import LogDefault, StorageDefault, StorageFile  # noqa: F401
    from dotflow.testing import StorageContract  # noqa: F401
    from dotflow.types import TypeStorage

    assert TypeStorage.FILE == "file"
    assert VALID_POLICIES == ("reuse", "reset", "raise")


def test_providers_module_refuses_unknown_names_clearly():
    import dotflow.providers as providers

    with pytest.raises(AttributeError, match="Nope"):
        providers.Nope  # noqa: B018


@pytest.mark.slow
def test_uow_never_imports_dotflow():
    code = "import sys, uow; assert not any(m == 'dotflow' or m.startswith('dotflow.') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_context_unwraps_a_context_and_its_ids():
    workflow_id = uuid.uuid4()
    inner = Context(storage=[1], task_id="inner", workflow_id=workflow_id)
    outer = Context(storage=inner, task_id="outer")
    assert outer.storage == [1]
    assert outer.task_id == "inner"
    assert outer.workflow_id == workflow_id
    assert outer.time == inner.time


def test_context_validates_its_ids():
    assert Context(workflow_id=str(uuid.UUID(int=5))).workflow_id == uuid.UUID(int=5)
    with pytest.raises(ValueError, match="not a valid UUID"):
        Context(workflow_id="nightly")
    with pytest.raises(TypeError):
        Context(workflow_id=5)
    with pytest.raises(TypeError):
        Context(task_id=5)


def test_step_must_be_decorated():
    def plain():
        return 1

    with pytest.raises(MissingActionDecorator):
        Task(task_id="t", step=plain)


def test_step_can_be_given_as_an_import_string():
    task = Task(task_id="t", step="tests.unit.test_public_api:decorated")
    assert task.step is decorated


@action
def decorated():
    return 1


def test_config_refuses_a_provider_of_the_wrong_type():
    with pytest.raises(NotCallableObject, match="storage"):
        Config(storage=object())


def test_a_named_workflow_id_works_and_contexts_carry_a_uuid_derived_from_it():
    flow = DotFlow(workflow_id="nightly-etl")
    flow.task.add(step=decorated)
    flow.start()
    context = flow.result_context()[0]
    assert context.workflow_id == uuid.uuid5(uuid.NAMESPACE_URL, "dotflow-workflow:nightly-etl")
    assert flow.task.queue[0].config.storage.key(task=flow.task.queue[0]) == "nightly-etl-0-decorated"


@pytest.mark.parametrize("bad", ["nightly etl", "../etc", "", "-x", "a/b"])
def test_an_unusable_workflow_id_is_refused_at_once(bad):
    with pytest.raises(ValueError, match="Invalid workflow_id"):
        DotFlow(workflow_id=bad or "x y")


def test_action_options_are_kept():
    @action(retry=4, timeout=3, retry_delay=0.5, backoff=True)
    def configured():
        return 1

    assert (configured.retry, configured.timeout, configured.retry_delay, configured.backoff) == (4, 3, 0.5, True)
    assert configured.__module__ == "dotflow.core.action"
    assert configured.__name__ == "configured"
    assert (decorated.retry, decorated.timeout, decorated.retry_delay, decorated.backoff) == (1, 0, 1, False)


def test_a_step_called_directly_returns_a_context():
    @action
    def add_one(previous_context):
        return previous_context.storage + 1

    assert add_one(previous_context=Context(storage=1)).storage == 2


def test_result_shape():
    flow = DotFlow(workflow_id=str(uuid.uuid4()), name="shape")
    flow.task.add(step=decorated)
    flow.start()
    result = flow.result()
    assert set(result) == {"workflow_id", "workflow_name", "tasks", "id", "name"}
    task = result["tasks"][0]
    assert task["current_context"] == "1"
    assert task["status"] == "Completed"
    assert task["error"] is None and task["errors"] == []
    assert set(task) >= {"task_id", "duration", "initial_context", "previous_context", "retry_count", "created_at"}


def test_a_context_time_is_the_datetime_it_was_made_at_and_survives_copies_and_storage(tmp_path):
    from datetime import datetime

    from dotflow.values.plain_copy import copy_plain
    from dotflow.providers import StorageDefault, StorageFile

    before = datetime.now()
    context = Context(storage={"a": 1}, task_id="1-a")
    after = datetime.now()
    unwrapped = Context(context)  # made from it: the same time
    copied = copy_plain(context)
    stamp = context.time
    assert type(stamp) is datetime and before <= stamp <= after
    assert context.time is stamp  # made once, then kept
    assert unwrapped.time == stamp and copied.time == stamp
    for storage in (StorageDefault(), StorageFile(path=tmp_path)):
        fresh = Context(storage=[1], task_id="1-a")  # stored before its time was ever read
        storage.post("k", fresh)
        assert storage.get("k").time == fresh.time
    context.time = None
    assert context.time is None
