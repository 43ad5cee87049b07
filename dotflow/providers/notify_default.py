from __future__ import annotations

from typing import Any

from dotflow.abc.notify import Notify

__all__ = ["NotifyDefault"]


class NotifyDefault(Notify):
    def hook_status_task(self, task: Any) -> None:
        pass
