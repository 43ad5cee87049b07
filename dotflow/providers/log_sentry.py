"""`LogSentry`: task failures as Sentry events, other task events as breadcrumbs (extra `sentry`).

`LogSentry(dsn, environment=None, traces_sample_rate=0.0)` as in dotflow 1.0.1 calls `sentry_sdk.init`
with them; further keyword arguments go to `sentry_sdk.init` too (`release=`, `transport=`, ...).
`info` and `warning` (a retry) add a breadcrumb "task:<task id> <status>" (category "dotflow"); `error`
captures the message "Task <task id> failed: <message>" at level error with the extras `workflow_id`,
`task_id`, `exception`, `attempt` and `traceback`. The DSN, which holds the project's key, is not in
the repr. A child process flushes the SDK's queue before it exits.
"""

from __future__ import annotations

from typing import Any

from dotflow.abc.log import Log
from dotflow.providers.sentry_support import require_sentry

__all__ = ["LogSentry"]


class LogSentry(Log):
    def __init__(
        self, dsn: str, environment: str | None = None, traces_sample_rate: float = 0.0, **sentry_options: Any
    ) -> None:
        sentry_sdk = require_sentry()
        sentry_sdk.init(dsn=dsn, environment=environment, traces_sample_rate=traces_sample_rate, **sentry_options)
        self._sentry = sentry_sdk
        self.environment = environment
        self.traces_sample_rate = traces_sample_rate

    def __repr__(self) -> str:
        return f"LogSentry(environment={self.environment!r})"

    def info(self, **kwargs: Any) -> None:
        self._breadcrumb("info", kwargs.get("task"))

    def warning(self, **kwargs: Any) -> None:
        self._breadcrumb("warning", kwargs.get("task"))

    def error(self, **kwargs: Any) -> None:
        task = kwargs.get("task")
        if task is None or not task.errors:
            return
        last = task.errors[-1]
        self._sentry.capture_message(
            f"Task {task.task_id} failed: {last.message}",
            level="error",
            extras={
                "workflow_id": str(task.workflow_id),
                "task_id": str(task.task_id),
                "exception": str(last.exception),
                "attempt": last.attempt,
                "traceback": last.traceback,
            },
        )

    def debug(self, **kwargs: Any) -> None:
        pass

    def _breadcrumb(self, level: str, task: Any) -> None:
        if task is not None:
            self._sentry.add_breadcrumb(category="dotflow", message=f"task:{task.task_id} {task.status}", level=level)

    def flush(self, timeout: float | None = None) -> bool:
        self._sentry.flush(timeout=timeout)
        return True
