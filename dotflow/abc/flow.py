"""`Flow`: the base class of the execution strategies (sequential, background, groups, parallel)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Flow"]


class Flow(ABC):
    """Runs `tasks` in its constructor; `get_tasks` returns the tasks that ran or were restored.

    `restored` maps a task_id to the Context read back from its checkpoint (resume); those
    tasks are marked COMPLETED without running. `fingerprint` travels with each checkpoint.
    """

    def __init__(
        self,
        tasks: list,
        workflow_id: Any,
        ignore: bool,
        groups: dict,
        resume: bool = False,
        restored: dict | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.tasks = tasks
        self.workflow_id = workflow_id
        self.ignore = ignore
        self.groups = groups
        self.resume = resume
        self.restored = restored or {}
        self.fingerprint = fingerprint
        self.setup_queue()
        self.run()

    @abstractmethod
    def setup_queue(self) -> None: ...

    @abstractmethod
    def run(self) -> None: ...

    @abstractmethod
    def get_tasks(self) -> list: ...
