from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Server"]


class Server(ABC):
    """Mirrors workflows and tasks to a remote server (the default does nothing)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @abstractmethod
    def create_workflow(self, workflow: Any) -> None: ...

    @abstractmethod
    def update_workflow(self, workflow: Any, status: str) -> None: ...

    @abstractmethod
    def create_task(self, task: Any) -> None: ...

    @abstractmethod
    def update_task(self, task: Any) -> None: ...
