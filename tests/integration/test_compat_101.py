"""The 1.0.1 usages of issue 5, written as 1.0.1's documentation and API reference show them.

Each test is what a user of dotflow 1.0.1 writes; it uses only the public import paths.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import uuid

import pytest

from dotflow import Config, DotFlow, Task, action
from dotflow.abc.log import LEVELS, Log


@action
def extract():
    return {"rows": 3}


@action
def transform(previous_context):
    return {"rows": previous_context.storage["rows"] * 2}


# -- item 1: the type modules and serializer modules of 1.0.1 -------------------------------------


def test_type_modules_import_as_in_the_docs():
    from dotflow.core.types import TypeStatus as FromPackage
    from dotflow.core.types.execution import TypeExecution
    from dotflow.core.types.input_change import VALID_POLICIES, TypeInputChange
    from dotflow.core.types.overlap import TypeOverlap
    from dotflow.core.types.status import TypeStatus
    from dotflow.core.types.storage import TypeStorage
    from dotflow.core.types.workflow import WorkflowStatus

    assert FromPackage is TypeStatus
    assert TypeStatus.COMPLETED == "Completed" and TypeStatus.get_symbol(TypeStatus.FAILED) == "❌"
    assert TypeStatus.get_symbol("Sleeping") is None
    assert TypeExecution.PARALLEL == "parallel"
    assert VALID_POLICIES == (TypeInputChange.REUSE, TypeInputChange.RESET, TypeInputChange.RAISE)
    assert TypeOverlap.QUEUE == "queue"
    assert TypeStorage.FILE == "file"
    assert WorkflowStatus.NEW == "New"


def test_callback_from_the_docs_compares_with_type_status():
    from dotflow.core.types.status import TypeStatus

    outcomes = []

    def callback(task):
        outcomes.append(task.status == TypeStatus.COMPLETED)

    workflow = DotFlow()
    workflow.task.add(step=extract, callback=callback)
    workflow.start()
    assert outcomes == [True]


def test_serializer_modules_import_as_in_the_api_reference():
    from dotflow.core.serializers.task import SerializerTask, SerializerTaskError
    from dotflow.core.serializers.transport import SerializerTransport
    from dotflow.core.serializers.workflow import SerializerWorkflow

    assert SerializerTask.model_config["title"] == "task"
    assert SerializerWorkflow.model_config["title"] == "workflow"
    assert "attempt" in SerializerTaskError.model_fields
    assert "content" in SerializerTransport.model_fields
    import dotflow.core.serializers as serializers

    assert serializers.SerializerTask is SerializerTask and serializers.SerializerWorkflow is SerializerWorkflow


# -- item 2: the Log ABC, LogDefault and the events they receive ---------------------------------------


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage()))


class LogCustom(Log):
    """A custom log provider written as 1.0.1's docs show: set _logger, _level and _format."""

    def __init__(self, level: str = "INFO", format: str = "simple"):
        self._level = LEVELS[level]
        self._format = format
        self._logger = logging.getLogger("my_app.pipeline")
        self._logger.setLevel(self._level)


@pytest.fixture
def log_lines():
    handler = ListHandler()
    logger = logging.getLogger("my_app.pipeline")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_a_custom_log_written_as_in_the_docs_gets_one_line_per_event(log_lines):
    @action(retry=2, retry_delay=0)
    def broken():
        raise KeyError("missing column")

    workflow_id = str(uuid.uuid4())
    workflow = DotFlow(config=Config(log=LogCustom()), workflow_id=workflow_id)
    workflow.task.add(step=[extract, broken])
    workflow.start(keep_going=True)
    first, second = (f"ID {workflow_id} - {task.task_id}" for task in workflow.result_task())
    assert [(level, line.split(" \n")[0]) for level, line in log_lines] == [
        ("INFO", f"{first} - Not started"),
        ("INFO", f"{second} - Not started"),
        ("INFO", f"{first} - In progress"),
        ("INFO", f"{first} - Completed"),
        ("INFO", f"{second} - In progress"),
        ("WARNING", f"{second} - Retry"),
        ("ERROR", f"{second} - Failed"),
    ]
    assert "Traceback" in log_lines[-1][1] and "KeyError: 'missing column'" in log_lines[-1][1]


def test_a_custom_log_in_json_format_with_a_level(log_lines):
    @action
    def broken():
        raise ValueError("bad input")

    workflow_id = str(uuid.uuid4())
    workflow = DotFlow(config=Config(log=LogCustom(level="WARNING", format="json")), workflow_id=workflow_id)
    workflow.task.add(step=[extract, broken])
    workflow.start()
    assert [level for level, _ in log_lines] == ["ERROR"]
    record = json.loads(log_lines[0][1])
    assert record["level"] == "ERROR" and record["status"] == "Failed"
    assert record["workflow_id"] == workflow_id and record["task_id"] == workflow.result_task()[1].task_id
    assert record["error"] == {"exception": "ValueError", "message": "bad input"}
    assert "duration" not in record and "retry_count" not in record  # set after the status changes


def test_log_records_are_the_documented_models():
    from dotflow.abc.log import LogRecord, LogRecordError

    record = LogRecord(level="ERROR", task_id="t", error=LogRecordError(exception="KeyError", message="x"))
    assert json.loads(record.model_dump_json(exclude_none=True))["error"] == {"exception": "KeyError", "message": "x"}
    assert LEVELS == {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def test_a_log_that_overrides_the_methods_receives_each_status_change():
    events = []

    class Recorder(Log):
        def info(self, **kwargs):
            events.append(("info", kwargs["task"].status))

        def warning(self, **kwargs):
            events.append(("warning", kwargs["task"].status))

        def error(self, **kwargs):
            events.append(("error", kwargs["task"].status))

        def debug(self, **kwargs):
            events.append(("debug", kwargs))

    workflow = DotFlow(config=Config(log=Recorder()))
    workflow.task.add(step=extract)
    workflow.start()
    assert events == [("info", "Not started"), ("info", "In progress"), ("info", "Completed")]


def test_log_default_prints_one_line_per_event_on_the_console(capfd):
    from dotflow.providers import LogDefault

    workflow_id = str(uuid.uuid4())
    workflow = DotFlow(config=Config(log=LogDefault()), workflow_id=workflow_id)
    workflow.task.add(step=extract)
    workflow.start()
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 3
    task_id = workflow.result_task()[0].task_id
    assert lines[-1].endswith(f" - INFO [dotflow]: ID {workflow_id} - {task_id} - Completed")


def test_log_default_writes_to_the_file_at_path(tmp_path, capfd):
    from dotflow.providers import LogDefault

    path = tmp_path / "logs" / "flow.log"
    workflow = DotFlow(config=Config(log=LogDefault(output="file", path=str(path), level="ERROR")), workflow_id="f")

    @action
    def broken():
        raise RuntimeError("disk full")

    workflow.task.add(step=[broken])
    workflow.start()
    text = path.read_text(encoding="utf-8")
    assert " - ERROR [dotflow]: ID f - 0-broken - Failed" in text and "RuntimeError: disk full" in text
    assert "In progress" not in text
    assert capfd.readouterr().err == ""


def test_log_default_both_and_bad_arguments(tmp_path, capfd):
    from dotflow.providers import LogDefault

    path = tmp_path / "flow.log"
    workflow = DotFlow(config=Config(log=LogDefault(output="both", path=path, format="json")), workflow_id="b")
    workflow.task.add(step=extract)
    workflow.start()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    assert len(capfd.readouterr().err.splitlines()) == 3
    with pytest.raises(ValueError, match="output"):
        LogDefault(output="printer")
    with pytest.raises(ValueError, match="format"):
        LogDefault(format="xml")
    with pytest.raises(ValueError, match="level"):
        LogDefault(level="LOUD")


# -- item 3: utils and decorators -----------------------------------------------------------------


def test_basic_callback_and_basic_function_from_the_first_steps_tutorial():
    from dotflow.utils import basic_callback, basic_function
    from dotflow.utils.basic_functions import basic_callback as same_callback

    assert same_callback is basic_callback
    assert basic_function() is None and basic_function(1, a=2) is None
    workflow = DotFlow()
    workflow.task.add(step=extract, callback=basic_callback)
    manager = workflow.start(on_success=basic_callback, on_failure=basic_callback)
    assert [task.current_context.storage for task in manager.tasks] == [{"rows": 3}]
    assert inspect.signature(Task).parameters["callback"].default is basic_callback


def test_time_decorator_sets_duration_on_what_it_returns():
    from dotflow.core.decorators import time
    from dotflow.core.decorators.time import time as same_time

    assert same_time is time

    class Outcome:
        duration = None

    @time
    def work(value):
        outcome = Outcome()
        outcome.value = value
        return outcome

    outcome = work(7)
    assert outcome.value == 7
    assert isinstance(outcome.duration, float) and outcome.duration >= 0
    assert work.__name__ == "work"


# -- item 4: class steps whose @action methods omit self ----------------------------------------------


def test_class_step_with_action_methods_without_self():
    @action
    class Pipeline:
        @action
        def first(initial_context):
            return initial_context.storage + 1

        @action
        def second(previous_context):
            return previous_context.storage * 10

    workflow = DotFlow()
    workflow.task.add(step=Pipeline, initial_context=1)
    workflow.start()
    (task,) = workflow.result_task()
    assert task.status == "Completed", task.errors
    assert [sub.storage for sub in task.current_context.storage] == [2, 20]


def test_class_step_mixing_methods_with_and_without_self():
    @action
    class Pipeline:
        def __init__(self):
            self.factor = 3

        @action
        def first(self, initial_context):
            return initial_context.storage * self.factor

        @action
        def second(previous_context):
            return previous_context.storage + 1

        @action(retry=3)
        def third(self, previous_context):
            return previous_context.storage * self.factor

        @action
        def fourth(self):
            return self.factor

        @action
        def fifth():
            return "done"

        @action(retry=2)
        def sixth(previous_context):  # 1.0.1 failed on this one: "@action(...)" without self
            return previous_context.storage + "!"

    workflow = DotFlow()
    workflow.task.add(step=Pipeline, initial_context=2)
    workflow.start()
    (task,) = workflow.result_task()
    assert task.status == "Completed", task.errors
    assert [sub.storage for sub in task.current_context.storage] == [6, 7, 21, 3, "done", "done!"]


# -- item 5: start() after clear() runs the tasks again --------------------------------------------


def test_clear_then_add_the_same_steps_and_start_runs_them_again():
    runs = []

    @action
    def step():
        runs.append("ran")
        return len(runs)

    workflow = DotFlow()
    workflow.task.add(step=step)
    workflow.start()
    workflow.task.clear()
    workflow.task.add(step=step)
    workflow.start()
    assert runs == ["ran", "ran"]
    assert workflow.result_storage() == [2]


def test_start_again_runs_again_with_a_clean_task_state():
    attempts = []

    @action
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first run fails")
        return "ok"

    workflow = DotFlow()
    workflow.task.add(step=flaky)
    workflow.start()
    (task,) = workflow.result_task()
    assert task.status == "Failed" and len(task.errors) == 1
    workflow.start()
    assert task.status == "Completed"
    assert task.errors == [] and task.current_context.storage == "ok"


def test_start_with_resume_skips_what_the_earlier_start_committed():
    runs = []

    @action
    def step():
        runs.append("ran")
        return "value"

    workflow = DotFlow()
    workflow.task.add(step=step)
    workflow.start()
    workflow.start(resume=True)
    assert runs == ["ran"]
    assert workflow.result_storage() == ["value"]


def test_a_scheduler_that_starts_the_workflow_twice_runs_it_twice():
    from dotflow.abc.scheduler import Scheduler

    class TwiceScheduler(Scheduler):
        def start(self, workflow, **kwargs):
            workflow(**kwargs)
            workflow(**kwargs)

        def stop(self):
            pass

    runs = []

    @action
    def tick():
        runs.append("tick")
        return len(runs)

    workflow = DotFlow(config=Config(scheduler=TwiceScheduler()))
    workflow.task.add(step=tick)
    workflow.schedule()
    assert runs == ["tick", "tick"] and workflow.result_storage() == [2]


def test_start_while_a_background_run_is_going_is_refused():
    from dotflow.core.exception import DotFlowError, WorkflowStillRunning

    gate = threading.Event()

    @action
    def wait():
        gate.wait(10)
        return "done"

    workflow = DotFlow()
    workflow.task.add(step=wait)
    manager = workflow.start(mode="background")
    try:
        with pytest.raises(WorkflowStillRunning, match="still running in the background") as info:
            workflow.start()
        assert isinstance(info.value, DotFlowError)
    finally:
        gate.set()
        manager.thread.join(10)
    workflow.start()
    assert workflow.result_storage() == ["done"]


# -- item 6: schema() and result() are 1.0.1's pydantic models ------------------------------------------


def test_task_schema_has_errors_and_model_dump_gives_uuid_and_datetime():
    from datetime import datetime
    from uuid import UUID, uuid4

    @action(retry=2, retry_delay=0)
    def broken():
        raise ValueError("bad row")

    workflow_id = uuid4()
    workflow = DotFlow(workflow_id=workflow_id)
    workflow.task.add(step=[extract, broken])
    workflow.start(keep_going=True)
    done, failed = workflow.result_task()

    schema = failed.schema()
    assert [error.attempt for error in schema.errors] == [1, None]
    assert schema.errors[-1].exception == "ValueError" and schema.errors[-1].message == "bad row"
    assert schema.error.message == "bad row" and schema.status == "Failed"

    dumped = done.schema().model_dump()
    assert dumped["workflow_id"] == workflow_id and isinstance(dumped["workflow_id"], UUID)
    assert isinstance(dumped["created_at"], datetime) and isinstance(dumped["finished_at"], datetime)
    assert dumped["current_context"] == '{"rows": 3}'
    assert dumped["id"] == done.task_id and dumped["errors"] == [] and dumped["error"] is None

    result = done.result()
    assert result["workflow_id"] == str(workflow_id)
    assert datetime.fromisoformat(result["created_at"]) == dumped["created_at"]


def test_workflow_schema_has_tasks_and_result_is_json():
    from uuid import UUID

    workflow = DotFlow(workflow_id="9d3f7e4a-8a52-4b38-9df1-0b5a3c1f2e6d", name="etl")
    workflow.task.add(step=[extract, transform])
    workflow.start()

    schema = workflow.task.schema()
    assert [task.status for task in schema.tasks] == ["Completed", "Completed"]
    assert schema.workflow_id == UUID("9d3f7e4a-8a52-4b38-9df1-0b5a3c1f2e6d") and schema.name == "etl"
    assert schema.model_dump()["id"] == UUID("9d3f7e4a-8a52-4b38-9df1-0b5a3c1f2e6d")
    assert schema.model_json_schema()["title"] == "workflow"

    result = workflow.result()
    assert result["workflow_id"] == "9d3f7e4a-8a52-4b38-9df1-0b5a3c1f2e6d" and result["name"] == "etl"
    assert [task["current_context"] for task in result["tasks"]] == ['{"rows": 3}', '{"rows": 6}']


def test_result_with_max_shrinks_the_largest_context_first():
    @action
    def big():
        return "x" * 5000

    workflow = DotFlow()
    workflow.task.add(step=big)
    workflow.start()
    (task,) = workflow.result_task()
    assert len(task.schema().model_dump_json()) > 5000
    shrunk = task.result(max=2000)
    assert shrunk["current_context"] == {"message": "Context size exceeded"}
    assert shrunk["status"] == "Completed"


def test_result_with_max_then_drops_the_errors_then_nulls_the_contexts():
    @action
    def broken():
        raise ValueError("e" * 3000)

    workflow = DotFlow()
    workflow.task.add(step=broken, initial_context="i" * 3000)
    workflow.start()
    (task,) = workflow.result_task()
    assert task.result()["error"]["message"] == "e" * 3000
    medium = task.result(max=700)
    assert medium["initial_context"] == {"message": "Context size exceeded"}
    assert medium["errors"] == [] and medium["error"] is None and medium["status"] == "Failed"
    assert len(task.schema(max=700).model_dump_json()) <= 700
    tiny = task.result(max=50)
    assert tiny["initial_context"] is None and tiny["errors"] == []


def test_transport_wraps_a_task_or_a_workflow():
    from dotflow.core.serializers.transport import SerializerTransport

    workflow = DotFlow()
    workflow.task.add(step=extract)
    workflow.start()
    assert SerializerTransport(content=workflow.task.schema()).resource == "workflow"
    assert SerializerTransport(content=workflow.result_task()[0].schema()).resource == "task"


# -- item 7: Task.config has a setter ----------------------------------------------------------------


def test_task_config_can_be_assigned():
    from dotflow.providers import StorageDefault

    task = Task(task_id="0-extract", step=extract)
    config = Config(storage=StorageDefault())
    task.config = config
    assert task.config is config
    with pytest.raises(TypeError, match="Config"):
        task.config = "not a config"


# -- item 8: values that cannot be deep-copied pass through the default (memory) storage ------------


def _uncopyable_values(tmp_path):
    import socket

    opened = open(tmp_path / "data.txt", "w+", encoding="utf-8")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    return {
        "generator": (n * n for n in range(4)),
        "lock": threading.Lock(),
        "file": opened,
        "socket": sock,
        "memoryview": memoryview(b"bytes"),
    }, [opened, sock]


@pytest.mark.parametrize("kind", ["generator", "lock", "file", "socket", "memoryview"])
def test_a_step_returning_an_uncopyable_object_hands_it_to_the_next_step(kind, tmp_path):
    values, to_close = _uncopyable_values(tmp_path)
    produced = values[kind]
    received = []
    try:

        @action
        def produce():
            return produced

        @action
        def consume(previous_context):
            received.append(previous_context.storage)
            return "consumed"

        workflow = DotFlow()
        workflow.task.add(step=[produce, consume])
        workflow.start()
        first, second = workflow.result_task()
        assert first.status == "Completed", first.errors
        assert second.status == "Completed", second.errors
        assert received == [produced] and received[0] is produced
        assert workflow.result_storage() == [produced, "consumed"]
    finally:
        for resource in to_close:
            resource.close()


def test_a_generator_inside_plain_data_is_shared_while_the_data_is_copied():
    numbers = (n for n in range(3))
    payload = {"rows": [1, 2], "stream": numbers}

    @action
    def produce():
        return payload

    @action
    def consume(previous_context):
        return {"streamed": list(previous_context.storage["stream"])}

    from dotflow.providers import StorageDefault

    storage = StorageDefault()
    workflow = DotFlow(config=Config(storage=storage))
    workflow.task.add(step=[produce, consume])
    workflow.start()
    payload["rows"].append(99)  # a later change to the returned data
    checkpoint = storage.get(key=storage.key(task=workflow.result_task()[0])).storage
    assert checkpoint["rows"] == [1, 2] and checkpoint["stream"] is numbers
    assert workflow.result_storage()[1] == {"streamed": [0, 1, 2]}


# -- item 9: exceptions -------------------------------------------------------------------------------


def test_exceptions_of_the_api_reference_with_their_messages():
    from dotflow.core.exception import (
        DotFlowError,
        ExecutionModeNotExist,
        ImportModuleError,
        InputChangedError,
        InvalidOnInputChange,
        InvalidWorkflowFactory,
        MissingActionDecorator,
        ModuleNotFound,
        NotCallableObject,
        WorkflowFlagConflict,
    )

    assert str(InvalidWorkflowFactory("app:make")) == "'app:make' must be a callable that returns a DotFlow instance."
    assert str(WorkflowFlagConflict("--resume")) == (
        "--resume is only valid with --step and cannot be used with --workflow."
    )
    assert str(ModuleNotFound("boto3", "dotflow[aws]")) == (
        "Module 'boto3' not found. Please install with 'pip install dotflow[aws]'"
    )
    assert str(ImportModuleError("pkg.mod")) == "Error importing Python module 'pkg.mod'."
    assert str(NotCallableObject("storage")) == (
        "Problem validating the 'storage' object type; this is not a callable object"
    )
    assert str(InvalidOnInputChange("often")) == (
        "on_input_change must be one of 'reuse', 'reset', 'raise'; got 'often'."
    )
    assert str(InputChangedError("wf")).startswith("Workflow 'wf' was previously executed with a different")
    assert str(MissingActionDecorator()).startswith("A step function necessarily needs an '@action' decorator")
    for error in (
        InvalidWorkflowFactory("f"), WorkflowFlagConflict("--x"), ModuleNotFound("m", "l"),
        ImportModuleError("m"), NotCallableObject("n"), InvalidOnInputChange("v"), InputChangedError("w"),
        MissingActionDecorator(), ExecutionModeNotExist(),
    ):  # fmt: skip
        assert isinstance(error, DotFlowError)


def test_one_except_clause_catches_what_dotflow_raises():
    from dotflow.core.exception import DotFlowError

    def plain():
        return 1

    with pytest.raises(DotFlowError, match="@action"):
        DotFlow().task.add(step=plain)
    with pytest.raises(DotFlowError, match="execution mode does not exist"):
        workflow = DotFlow()
        workflow.task.add(step=extract)
        workflow.start(mode="sideways")


def test_codec_errors_are_dotflow_errors_and_keep_their_builtin_kind():
    from dotflow.values.codec import DecodeError, UnencodableValueError, encode, loads
    from dotflow.core.exception import DotFlowError

    with pytest.raises(UnencodableValueError) as unencodable:
        encode(object())
    assert isinstance(unencodable.value, DotFlowError) and isinstance(unencodable.value, TypeError)
    with pytest.raises(DecodeError) as undecodable:
        loads('{"$nope": 1}')
    assert isinstance(undecodable.value, DotFlowError) and isinstance(undecodable.value, ValueError)


def test_step_timeout_is_a_dotflow_error_and_a_timeout_error():
    from dotflow.core.exception import DotFlowError, StepTimeoutError

    error = StepTimeoutError("0-extract", 2)
    assert isinstance(error, DotFlowError) and isinstance(error, TimeoutError)


# -- every provider 1.0.1 ships is here, loaded lazily --------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "NotifyDiscord", "NotifyTelegram", "SchedulerCron", "TracerOpenTelemetry",
        "MetricsOpenTelemetry", "LogOpenTelemetry", "LogSentry", "TracerSentry", "StorageS3", "StorageGCS",
    ],
)  # fmt: skip
def test_every_1_0_1_provider_imports_by_name(name):
    import dotflow.providers

    cls = getattr(dotflow.providers, name)
    assert cls.__name__ == name and name in dotflow.providers.__all__
    namespace: dict[str, object] = {}
    exec(f"from dotflow.providers import {name}", namespace)
    assert namespace[name] is cls
