"""`DotFlow`: a workflow: its config, its id, its queue of tasks (`task`) and `start`."""

from __future__ import annotations

import os
import socket
import threading
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from dotflow.core.config import Config
from dotflow.core.context import Context, canonical_workflow_id
from dotflow.core.exception import WorkflowStillRunning
from dotflow.core.task import Task, TaskBuilder
from dotflow.run.modes import Manager

__all__ = ["DotFlow"]

RESERVED_START_ARGUMENTS = ("tasks", "workflow_id", "config")


def _hostname() -> str:
    try:
        return socket.gethostname() or "local"
    except OSError:
        return "local"


class DotFlow:
    """`DotFlow(config=None, workflow_id=None, name=None)`.

    Give a fixed `workflow_id` (a UUID, or a name such as "nightly-etl") to resume across runs:
    checkpoint keys are `<workflow_id>-<task_id>`, and task ids are stable for the same steps in
    the same order. None (the default) takes the `WORKFLOW_ID` environment variable, else a
    random UUID; any other invalid id ("", 0, "x\n") is refused here. A UUID string in any
    spelling is kept in its canonical form, so every spelling gives the same checkpoint keys.
    """

    def __init__(self, config: Config | None = None, workflow_id: Any = None, name: str | None = None) -> None:
        if workflow_id is None:
            workflow_id = os.getenv("WORKFLOW_ID") or None  # an empty variable counts as unset
        given = workflow_id is not None
        self.workflow_id: UUID | str = canonical_workflow_id(workflow_id) if given else uuid4()
        self.name = name or _hostname()
        self._config = config if config is not None else Config()
        self.task = TaskBuilder(config=self._config, workflow_id=self.workflow_id, workflow_name=self.name)
        self.schedule = partial(self._config.scheduler.start, workflow=self._scheduled_start)
        self._manager: Manager | None = None
        self._scheduled = threading.Lock()  # held while a scheduled run uses this DotFlow's own tasks
        if not given:
            self._config.server.create_workflow(workflow=self)

    def start(self, **kwargs: Any) -> Manager:
        """Run the queued tasks and return the run's `Manager`.

        Accepts on_success, on_failure, mode, keep_going, resume, on_input_change and fingerprint;
        verify_resume (default True: with a journal, each restored checkpoint is compared with the
        checksum the journal committed for it; see docs/journal.md); and claim (a `dotflow.Claim`, with
        resume=True: workers sharing the storage run each step once; see docs/claims.md).
        Every call runs its tasks afresh (an earlier run's status, errors and results are cleared
        first); with `resume=True` the tasks whose checkpoints exist are restored instead of run.
        Raises `WorkflowStillRunning` while an earlier background run of this workflow is not done.
        """
        for name in RESERVED_START_ARGUMENTS:
            if name in kwargs:
                raise TypeError(f"DotFlow.start() got an unexpected keyword argument {name!r}")
        worker = None if self._manager is None else self._manager.thread
        if worker is not None and worker.is_alive():
            raise WorkflowStillRunning(workflow_id=self.workflow_id)
        for task in self.task.queue:
            task.clear_run()
        self._manager = Manager(tasks=self.task.queue, workflow_id=self.workflow_id, config=self._config, **kwargs)
        return self._manager

    def _scheduled_start(self, **kwargs: Any) -> Manager:
        """What `schedule()` hands the scheduler: `start(**kwargs)`; while an earlier scheduled run still
        uses this DotFlow's tasks (a scheduler with overlap "parallel"), the same tasks are run as
        copies, so two runs never share a Task object (results of such a run are on its Manager)."""
        if self._scheduled.acquire(blocking=False):
            try:
                return self.start(**kwargs)
            finally:
                self._scheduled.release()
        for name in RESERVED_START_ARGUMENTS:
            if name in kwargs:
                raise TypeError(f"DotFlow.start() got an unexpected keyword argument {name!r}")
        copies = [
            Task(
                task_id=task.task_id,
                step=task.step,
                callback=task.callback,
                initial_context=task.initial_storage(),
                workflow_id=self.workflow_id,
                config=task.config,
                group_name=task.group_name,
            )
            for task in self.task.queue
        ]
        return Manager(tasks=copies, workflow_id=self.workflow_id, config=self._config, **kwargs)

    def result_task(self) -> list[Task]:
        return self.task.queue

    def result_context(self) -> list[Context]:
        return [task.current_context for task in self.task.queue]

    def result_storage(self) -> list[Any]:
        return [task.current_context.storage for task in self.task.queue]

    def result(self) -> dict[str, Any]:
        return self.task.result()
