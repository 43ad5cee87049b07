from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

__all__ = ["Scheduler"]


class Scheduler(ABC):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @abstractmethod
    def start(self, workflow: Callable[..., Any], **kwargs: Any) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...
