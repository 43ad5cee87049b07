"""`Task` (one step of a workflow and its state) and `TaskBuilder` (the workflow's queue of tasks).

No property of a Task does storage I/O: checkpoints are committed by `TaskEngine` through a
unit of work, once per successful attempt.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from datetime import datetime
from typing import Any, Callable

from dotflow.core.action import is_action
from dotflow.core.config import Config
from dotflow.core.context import Context, LazyTime, workflow_uuid
from dotflow.core.exception import MissingActionDecorator, NotCallableObject, TaskError
from dotflow.core.module import Module
from dotflow.core.types import TypeStatus
from dotflow.utils import basic_callback

__all__ = ["Task", "TaskBuilder", "TaskError", "TaskInstance", "basic_callback", "step_name"]

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")  # whole id: use fullmatch


def step_name(step: Any) -> str:
    """A readable, key-safe name for a step: its function or class name."""
    name = getattr(step, "__name__", None) or type(step).__name__
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "step"


class TaskInstance:
    """Attribute holder kept for compatibility with dotflow 1.0.1 (`Task` is its only subclass)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._task_id: str = ""
        self._workflow_id: Any = None
        self._step: Any = None
        self._callback: Any = basic_callback
        self._config: Config | None = None
        self._group_name = "default"
        self._initial_context: Context | None = None
        self._previous_context: Context | None = None
        self._current_context: Context | None = None
        self._status: str | None = None
        self._errors: list[TaskError] | None = None
        self._duration: float | None = None
        self.retry_count = 0
        self.restored = False
        self.created_at: datetime | None = None
        # The engine records when a task starts and ends as time.time() floats (a datetime takes
        # microseconds to make, twice per task); `started_at` and `finished_at` turn them into the
        # datetimes datetime.now() would have given, on first read.
        self._started_at: datetime | float | None = None
        self._finished_at: datetime | float | None = None

    started_at = LazyTime("_started_at")
    finished_at = LazyTime("_finished_at")


class Task(TaskInstance):
    def __init__(
        self,
        task_id: str,
        step: Callable[..., Any] | str,
        callback: Callable[..., Any] | str = basic_callback,
        initial_context: Any = None,
        workflow_id: Any = None,
        config: Any = None,
        group_name: str = "default",
    ) -> None:
        super().__init__()
        self.config = config
        self.group_name = group_name
        self.task_id = task_id
        self.workflow_id = workflow_id
        self.step = step
        self.callback = callback
        self.initial_context = initial_context
        self.created_at = datetime.now()
        self.status = TypeStatus.NOT_STARTED
        self.config.server.create_task(task=self)

    # -- identity -------------------------------------------------------------------------------

    @property
    def task_id(self) -> str:
        return self._task_id

    @task_id.setter
    def task_id(self, value: str) -> None:
        if not isinstance(value, str) or not TASK_ID_PATTERN.fullmatch(value):
            raise ValueError(
                f"Invalid task_id {value!r}: use 1-200 characters among letters, digits, '_', '.', '-', "
                "starting with a letter or digit"
            )
        self._task_id = value

    @property
    def workflow_id(self) -> Any:
        return self._workflow_id

    @workflow_id.setter
    def workflow_id(self, value: Any) -> None:
        self._workflow_id = value

    @property
    def group_name(self) -> str:
        return self._group_name

    @group_name.setter
    def group_name(self, value: str) -> None:
        self._group_name = value

    @property
    def config(self) -> Config:
        # Created once, so a Task without config keeps one storage (1.0.1 made a new one per access).
        if self._config is None:
            self._config = Config()
        return self._config

    @config.setter
    def config(self, value: Config | None) -> None:
        if value is not None and not isinstance(value, Config):
            raise TypeError(f"Task.config must be a dotflow Config (or None for the default), not {type(value).__name__}")
        self._config = value

    # -- step and callback ----------------------------------------------------------------------

    @property
    def step(self) -> Any:
        return self._step

    @step.setter
    def step(self, value: Any) -> None:
        step = Module(value)
        if not is_action(step):
            raise MissingActionDecorator()
        self._step = step

    @property
    def callback(self) -> Any:
        return self._callback

    @callback.setter
    def callback(self, value: Any) -> None:
        callback = Module(value)
        if not callable(callback):
            raise NotCallableObject(name=str(value))
        self._callback = callback

    # -- contexts: plain state, no I/O -------------------------------------------------------

    @property
    def initial_context(self) -> Context:
        if self._initial_context is None:  # made on first use: most tasks have no initial context
            self._initial_context = Context()
        return self._initial_context

    @initial_context.setter
    def initial_context(self, value: Any) -> None:
        self._initial_context = None if value is None else Context(value)

    def initial_storage(self) -> Any:
        """`initial_context.storage`, without making an empty Context for a task that has none."""
        initial = self._initial_context
        return None if initial is None else initial.storage

    @property
    def previous_context(self) -> Context:
        return self._previous_context if self._previous_context is not None else Context()

    @previous_context.setter
    def previous_context(self, value: Any) -> None:
        self._previous_context = Context(value)

    @property
    def current_context(self) -> Context:
        return self._current_context if self._current_context is not None else Context()

    @current_context.setter
    def current_context(self, value: Any) -> None:
        self._current_context = self._own_context(value)

    def _own_context(self, value: Any) -> Context:
        """`value` as this task's Context: a new one, stamped with the task's ids where it has none."""
        context = Context(storage=value)
        # Ids from a Context value win (1.0.1's rule); a bare Context() still belongs to this task.
        if not context.task_id:
            context.task_id = self.task_id
        if context.workflow_id is None:
            context.workflow_id = self._context_workflow_id()
        return context

    def _context_workflow_id(self) -> Any:
        try:
            return workflow_uuid(self.workflow_id)
        except (TypeError, ValueError):
            return None

    # -- status and errors ------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._status or TypeStatus.NOT_STARTED

    @status.setter
    def status(self, value: str) -> None:
        self._status = value
        # notify, then log, then metrics (error / warning / info, task_failed / _retried / _completed)
        hooks = (self._config if self._config is not None else self.config).task_hooks
        for hook in hooks.on_status.get(value, hooks.on_other_status):
            hook(task=self)

    @property
    def errors(self) -> list[TaskError]:
        if self._errors is None:
            self._errors = []
        return self._errors

    @errors.setter
    def errors(self, value: Any) -> None:
        if isinstance(value, list):
            self._errors = value
        elif isinstance(value, TaskError):
            self.errors.append(value)
        elif isinstance(value, Exception):
            self.errors.append(TaskError(value))

    @property
    def error(self) -> TaskError:
        warnings.warn("Task.error is deprecated; use Task.errors", DeprecationWarning, stacklevel=2)
        return self.errors[-1] if self.errors else TaskError()

    @error.setter
    def error(self, value: Any) -> None:
        warnings.warn("Task.error is deprecated; use Task.errors", DeprecationWarning, stacklevel=2)
        self.errors = value

    @property
    def duration(self) -> float | None:
        return self._duration

    @duration.setter
    def duration(self, value: float | None) -> None:
        self._duration = value

    # -- what the engine asks of a task while it runs (the task keeps its own fields) -----------

    def begin_run(self, workflow_id: Any, previous_context: Any) -> None:
        """Take the workflow id and the context this task receives (a Context is kept as it is)."""
        self._workflow_id = workflow_id
        if type(previous_context) is Context:
            self._previous_context = previous_context
        else:
            self.previous_context = previous_context

    def call_step(self) -> Any:
        """Call the step with this task's contexts and itself (`task=`). A task without an initial
        context passes None: the step's wrapper makes the empty Context only if the step asks for it."""
        return self._step(initial_context=self._initial_context, previous_context=self._previous_context, task=self)

    def take_result(self, value: Any) -> Context:
        """Make the step's value this task's `current_context` and return it. A Context whose ids are
        set (what the step's wrapper makes) is kept as it is, since the setter would only copy it;
        anything else becomes a Context as the setter makes it."""
        stamped = type(value) is Context and value._task_id and value._workflow_id is not None
        context: Context = value if stamped else self._own_context(value)
        self._current_context = context
        return context

    def start_clock(self) -> None:
        """Note that the task starts running now (`started_at`)."""
        self._started_at = time.time()  # a datetime when read (see TaskInstance)

    def stop_clock(self) -> None:
        """Note that the task stopped running now (`finished_at`), and its `duration` since it started."""
        self._finished_at = finished = time.time()
        started = self._started_at
        if isinstance(started, float):
            self._duration = finished - started
        else:  # None, or a datetime: read (so converted) or set by someone since `start_clock`
            self._duration = None if started is None else (datetime.fromtimestamp(finished) - started).total_seconds()

    def clear_run(self) -> None:
        """Forget the outcome of an earlier run (status, errors, contexts it produced, timings), so
        the task can run again. Fires no status hooks; the task's definition is kept."""
        self._status = TypeStatus.NOT_STARTED
        self._errors = None
        self._previous_context = None
        self._current_context = None
        self._duration = None
        self.retry_count = 0
        self.restored = False
        self._started_at = None
        self._finished_at = None

    # -- reporting ----------------------------------------------------------------------------

    def schema(self, max: int | None = None) -> Any:
        """This task as a pydantic `SerializerTask` (`max` limits the length of its JSON)."""
        from dotflow.core.serializers.task import SerializerTask

        return SerializerTask.from_task(self, max=max)

    def result(self, max: int | None = None) -> dict[str, Any]:
        """This task as a JSON-ready dict (the JSON form of `schema(max)`)."""
        result: dict[str, Any] = json.loads(self.schema(max=max).model_dump_json())
        return result


class TaskBuilder:
    """The queue of a workflow's tasks. `add` is chainable.

    Task ids are stable for the same workflow definition: `<position>-<step name>` (e.g.
    `0-extract`), unless `add` gets an explicit `task_id`. So checkpoint keys of a re-run match.
    """

    def __init__(self, config: Any, workflow_id: Any = None, workflow_name: str | None = None) -> None:
        self.queue: list[Task] = []
        self._ids: set[str] = set()  # task ids in `queue`, so `add` checks for a duplicate in O(1)
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name
        self.config = config

    def add(
        self,
        step: Any,
        callback: Callable[..., Any] | str = basic_callback,
        initial_context: Any = None,
        group_name: str = "default",
        task_id: str | None = None,
    ) -> TaskBuilder:
        if isinstance(step, list):
            if task_id is not None:
                raise ValueError("an explicit task_id cannot be given with a list of steps")
            for item in step:
                self.add(step=item, callback=callback, initial_context=initial_context, group_name=group_name)
            return self
        resolved = Module(step)
        if task_id is None:
            task_id = f"{len(self.queue)}-{step_name(resolved)}"
        if self._id_taken(task_id):
            raise ValueError(f"task_id {task_id!r} is already used in this workflow")
        self.queue.append(
            Task(
                task_id=task_id,
                step=resolved,
                callback=Module(callback),
                initial_context=initial_context,
                workflow_id=self.workflow_id,
                config=self.config,
                group_name=group_name,
            )
        )
        self._ids.add(task_id)
        return self

    def _id_taken(self, task_id: str) -> bool:
        # `queue` is a public list that callers may change directly: the set is rebuilt from it when
        # their sizes differ, and a hit is confirmed against the queue (a rare path: an error).
        if len(self._ids) != len(self.queue):
            self._ids = {task.task_id for task in self.queue}
        return task_id in self._ids and any(task.task_id == task_id for task in self.queue)

    def count(self) -> int:
        return len(self.queue)

    def clear(self) -> None:
        self.queue.clear()
        self._ids.clear()

    def reverse(self) -> None:
        self.queue.reverse()

    def schema(self) -> Any:
        """The workflow and its tasks as a pydantic `SerializerWorkflow`."""
        from dotflow.core.serializers.workflow import SerializerWorkflow

        return SerializerWorkflow.from_builder(self)

    def result(self) -> dict[str, Any]:
        """The workflow and its tasks as a JSON-ready dict."""
        result: dict[str, Any] = json.loads(self.schema().model_dump_json())
        return result
