from __future__ import annotations

from typing import Any

from dotflow.abc.server import Server

__all__ = ["ServerDefault"]


class ServerDefault(Server):
    """Does nothing: the dotflow cloud server of 1.0.1 is out of this project's scope."""

    def create_workflow(self, workflow: Any) -> None:
        pass

    def update_workflow(self, workflow: Any, status: str) -> None:
        pass

    def create_task(self, task: Any) -> None:
        pass

    def update_task(self, task: Any) -> None:
        pass
