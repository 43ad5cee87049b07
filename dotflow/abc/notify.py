from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Notify"]


class Notify(ABC):
    """Receives every status change of every task."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @abstractmethod
    def hook_status_task(self, task: Any) -> None: ...

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver what this provider still holds (new, optional; the default holds nothing). dotflow calls it
        at the end of a child process's tasks, before the process exits; True when nothing is left."""
        return True
