from __future__ import annotations

from typing import Any

from dotflow.abc.tracer import Tracer

__all__ = ["TracerDefault"]


class TracerDefault(Tracer):
    def start_workflow(self, workflow_id: Any, **kwargs: Any) -> None:
        pass

    def end_workflow(self, workflow_id: Any, **kwargs: Any) -> None:
        pass

    def start_task(self, task: Any) -> None:
        pass

    def end_task(self, task: Any) -> None:
        pass
