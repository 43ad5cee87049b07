"""`Flow`: the base class of the execution strategies (sequential, background, groups, parallel)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from uow import RunPersistence

from dotflow.run.resume import RunPlan

__all__ = ["Flow"]


class Flow(ABC):
    """Runs `tasks` in its constructor; `get_tasks` returns the tasks that ran or were restored.

    `plan` (a `dotflow.run.resume.RunPlan`) carries the input fingerprint that travels with each
    checkpoint, the tasks restored from their checkpoints (marked COMPLETED without running) and,
    on resume, the checkpoint version each task's commit is conditional on, and the run's
    persistence (`uow.RunPersistence`), through which every checkpoint is written.
    """

    def __init__(
        self,
        tasks: list[Any],
        workflow_id: Any,
        ignore: bool,
        groups: dict[str, list[Any]],
        resume: bool = False,
        plan: Any = None,
    ) -> None:
        self.tasks = tasks
        self.workflow_id = workflow_id
        self.ignore = ignore
        self.groups = groups
        self.resume = resume
        if plan is None:
            plan = RunPlan(run=RunPersistence(None if workflow_id is None else str(workflow_id)))
        self.plan = plan
        self.setup_queue()
        self.run()

    @abstractmethod
    def setup_queue(self) -> None: ...

    @abstractmethod
    def run(self) -> None: ...

    @abstractmethod
    def get_tasks(self) -> list[Any]: ...
