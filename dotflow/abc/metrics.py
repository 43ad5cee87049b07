from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Metrics"]


class Metrics(ABC):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @abstractmethod
    def workflow_started(self, workflow_id: Any, **kwargs: Any) -> None: ...

    @abstractmethod
    def workflow_completed(self, workflow_id: Any, duration: float) -> None: ...

    @abstractmethod
    def workflow_failed(self, workflow_id: Any, duration: float) -> None: ...

    @abstractmethod
    def task_completed(self, task: Any) -> None: ...

    @abstractmethod
    def task_failed(self, task: Any) -> None: ...

    @abstractmethod
    def task_retried(self, task: Any) -> None: ...

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver what this provider still holds (new, optional; the default holds nothing). dotflow calls it
        at the end of a child process's tasks, before the process exits; True when nothing is left."""
        return True
