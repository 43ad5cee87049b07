from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

__all__ = ["TracesCommits", "Tracer"]


@runtime_checkable
class TracesCommits(Protocol):
    """A tracer that also wants each checkpoint commit (new, optional; checked once, when Config is made).

    The engine commits a task's checkpoint inside `trace_commit(task=, key=, storage=, context=)`; an
    exception leaving the block is the commit's failure (`uow.ConflictError`: another run committed first).
    """

    def trace_commit(self, task: Any, key: str, storage: Any, context: Any) -> AbstractContextManager[None]: ...


class Tracer(ABC):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @abstractmethod
    def start_workflow(self, workflow_id: Any, **kwargs: Any) -> None: ...

    @abstractmethod
    def end_workflow(self, workflow_id: Any, **kwargs: Any) -> None: ...

    @abstractmethod
    def start_task(self, task: Any) -> None: ...

    @abstractmethod
    def end_task(self, task: Any) -> None: ...

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver what this provider still holds (new, optional; the default holds nothing). dotflow calls it
        at the end of a child process's tasks, before the process exits; True when nothing is left."""
        return True
