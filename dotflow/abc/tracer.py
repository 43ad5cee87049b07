from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Tracer"]


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
