from __future__ import annotations

from typing import Any, Callable

from dotflow.abc.scheduler import Scheduler

__all__ = ["SchedulerDefault"]


class SchedulerDefault(Scheduler):
    def start(self, workflow: Callable[..., Any], **kwargs: Any) -> None:
        pass

    def stop(self) -> None:
        pass
