"""`LogDefault`: task status lines on the standard `logging` logger "dotflow".

The library adds no handler of its own: configure logging (e.g. `logging.basicConfig`) to see them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from dotflow.abc.log import Log
from dotflow.core.types import TypeStatus

__all__ = ["LogDefault"]

logger = logging.getLogger("dotflow")


class LogDefault(Log):
    def __init__(
        self,
        *args: Any,
        level: str = "INFO",
        output: str = "console",
        path: str | Path = Path(".output", "flow.log"),
        format: str = "simple",
        **kwargs: Any,
    ) -> None:
        if format not in ("simple", "json"):
            raise ValueError(f"LogDefault format must be 'simple' or 'json', not {format!r}")
        self.level = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
        if not isinstance(self.level, int):
            raise ValueError(f"LogDefault level {level!r} is not a logging level name")
        self.output = output
        self.path = Path(path)
        self.format = format

    def info(self, **kwargs: Any) -> None:
        self._log(logging.INFO, **kwargs)

    def warning(self, **kwargs: Any) -> None:
        self._log(logging.WARNING, **kwargs)

    def error(self, **kwargs: Any) -> None:
        self._log(logging.ERROR, **kwargs)

    def debug(self, **kwargs: Any) -> None:
        self._log(logging.DEBUG, **kwargs)

    def _log(self, level: int, task: Any = None, **kwargs: Any) -> None:
        if level < self.level or not logger.isEnabledFor(level):
            return
        logger.log(level, self._message(task, kwargs))

    def _message(self, task: Any, extra: dict[str, Any]) -> str:
        if task is None:
            fields = {key: str(value) for key, value in extra.items()}
        else:
            fields = {
                "workflow_id": str(task.workflow_id),
                "task_id": task.task_id,
                "status": task.status,
            }
            if task.status == TypeStatus.FAILED and task.errors:
                fields["error"] = task.errors[-1].message
        if self.format == "json":
            return json.dumps(fields)
        if task is None:
            return " ".join(f"{key}={value}" for key, value in fields.items())
        text = f"{fields['workflow_id']}: {fields['task_id']} - {fields['status']}"
        return f"{text}: {fields['error']}" if "error" in fields else text
