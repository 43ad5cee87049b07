"""`Log`: the log provider of a workflow, told about every status change of a task.

As in 1.0.1, `Task` calls `info(task=...)` when a task is NOT_STARTED, IN_PROGRESS or COMPLETED,
`warning(task=...)` on RETRY and `error(task=...)` on FAILED. The base class turns each call into
one line on `self._logger` when the level is at least `self._level`, formatted as `self._format`
says ("simple" or "json"). A subclass sets those three attributes in its `__init__` (the pattern of
1.0.1's docs), or overrides `info`/`warning`/`error`/`debug` to do something else entirely.

simple: `ID <workflow_id> - <task_id> - <status>`, plus the last error's traceback on a new line
        at ERROR level.
json:   a `LogRecord` as JSON: timestamp (UTC, ISO 8601), level, workflow_id, task_id, status,
        and, when set, duration, retry_count and (at ERROR level) error {exception, message}.

`LogRecord` and `LogRecordError` are pydantic models, imported from here on first use.
"""

from __future__ import annotations

import logging
from abc import ABC
from datetime import datetime, timezone
from typing import Any

__all__ = ["LEVELS", "Log", "LogRecord", "LogRecordError"]

LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}

# Used by a subclass that sets no `_logger` of its own.
_FALLBACK_LOGGER = logging.getLogger("dotflow")


class Log(ABC):
    """Base of every log provider. The default methods log one line per call (see the module docstring)."""

    _logger: logging.Logger = _FALLBACK_LOGGER
    _level: int = logging.INFO
    _format: str = "simple"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def info(self, **kwargs: Any) -> None:
        if self._level <= logging.INFO:  # checked here too: called twice per task
            self._log(logging.INFO, **kwargs)

    def warning(self, **kwargs: Any) -> None:
        self._log(logging.WARNING, **kwargs)

    def error(self, **kwargs: Any) -> None:
        self._log(logging.ERROR, **kwargs)

    def debug(self, **kwargs: Any) -> None:
        self._log(logging.DEBUG, **kwargs)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver what this provider still holds (new, optional; the default holds nothing). dotflow calls it
        at the end of a child process's tasks, before the process exits; True when nothing is left."""
        return True

    def _log(self, level: int, **kwargs: Any) -> None:
        if level < self._level:
            return
        if self._format == "json":
            message = self._format_json(level, **kwargs)
        else:
            message = self._format_text(level, **kwargs)
        self._logger.log(level, message)

    def _format_text(self, level: int, **kwargs: Any) -> str:
        task = kwargs.get("task")
        if task is None:
            return str(kwargs)
        line = f"ID {task.workflow_id} - {task.task_id} - {task.status}"
        if level >= logging.ERROR and task.errors:
            line += f" \n {task.errors[-1].traceback}"
        return line

    def _format_json(self, level: int, **kwargs: Any) -> str:
        from dotflow.abc.log_record import LogRecord, LogRecordError

        task = kwargs.get("task")
        if task is None:
            fields: dict[str, Any] = {key: str(value) for key, value in kwargs.items()}
            return LogRecord(**fields).model_dump_json(exclude_none=True)
        record = LogRecord(
            timestamp=datetime.now(timezone.utc).isoformat(),
            level=logging.getLevelName(level),
            workflow_id=str(task.workflow_id),
            task_id=str(task.task_id),
            status=str(task.status),
            duration=task.duration,
            retry_count=task.retry_count or None,
        )
        if level >= logging.ERROR and task.errors:
            last = task.errors[-1]
            record.error = LogRecordError(exception=str(last.exception), message=str(last.message))
        return record.model_dump_json(exclude_none=True)


def __getattr__(name: str) -> Any:
    # LogRecord and LogRecordError need pydantic: load them only when asked for.
    if name in ("LogRecord", "LogRecordError"):
        from dotflow.abc import log_record

        return getattr(log_record, name)
    raise AttributeError(f"module 'dotflow.abc.log' has no attribute {name!r}")
