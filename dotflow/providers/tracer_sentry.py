"""`TracerSentry`: a Sentry transaction per workflow and a span per task (extra `sentry`).

`TracerSentry(dsn=None, environment=None, traces_sample_rate=1.0)` as in dotflow 1.0.1: with a `dsn` it
calls `sentry_sdk.init` (further keyword arguments go there too); without one it uses the SDK as
already initialised (by `LogSentry` or your code). The transaction (op "workflow", name
"workflow:<id>") is tagged `dotflow.workflow_id`, `dotflow.mode`, `dotflow.tasks_count`, and gets
`dotflow.duration` and status "ok" or "internal_error". Each task is a child span (op "task", name
"task:<id>") tagged `dotflow.workflow_id`, `dotflow.task_id`, `dotflow.task.status`, with data
`dotflow.task.duration`, `dotflow.task.retry_count` and, after an error, `dotflow.task.exception`.
In `parallel` and `sequential_group` modes a task's span is made in its child process, where the
workflow's transaction is only a copy that never finishes: those spans are not sent (the workflow's
transaction is). The DSN is not in the repr.
"""

from __future__ import annotations

import threading
from typing import Any

from dotflow.abc.tracer import Tracer
from dotflow.providers.sentry_support import require_sentry

__all__ = ["TracerSentry"]


class TracerSentry(Tracer):
    def __init__(
        self,
        dsn: str | None = None,
        environment: str | None = None,
        traces_sample_rate: float = 1.0,
        **sentry_options: Any,
    ) -> None:
        sentry_sdk = require_sentry()
        if dsn:
            sentry_sdk.init(dsn=dsn, environment=environment, traces_sample_rate=traces_sample_rate, **sentry_options)
        self._sentry = sentry_sdk
        self.environment = environment
        self.traces_sample_rate = traces_sample_rate
        self._transactions: dict[str, Any] = {}
        self._spans: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TracerSentry(environment={self.environment!r})"

    def start_workflow(self, workflow_id: Any, **kwargs: Any) -> None:
        key = str(workflow_id)
        transaction = self._sentry.start_transaction(op="workflow", name=f"workflow:{key}")
        transaction.set_tag("dotflow.workflow_id", key)
        for name, value in kwargs.items():
            transaction.set_tag(f"dotflow.{name}", str(value))
        with self._lock:
            self._transactions[key] = transaction

    def end_workflow(self, workflow_id: Any, **kwargs: Any) -> None:
        with self._lock:
            transaction = self._transactions.pop(str(workflow_id), None)
        if transaction is None:
            return
        transaction.set_status("internal_error" if kwargs.get("failed", False) else "ok")
        if kwargs.get("duration") is not None:
            transaction.set_data("dotflow.duration", kwargs["duration"])
        transaction.finish()

    def start_task(self, task: Any) -> None:
        workflow_key = str(task.workflow_id)
        with self._lock:
            transaction = self._transactions.get(workflow_key)
        if transaction is None:
            return
        span = transaction.start_child(op="task", name=f"task:{task.task_id}")
        span.set_tag("dotflow.workflow_id", workflow_key)
        span.set_tag("dotflow.task_id", str(task.task_id))
        with self._lock:
            self._spans[f"{workflow_key}:{task.task_id}"] = span

    def end_task(self, task: Any) -> None:
        with self._lock:
            span = self._spans.pop(f"{task.workflow_id}:{task.task_id}", None)
        if span is None:
            return
        span.set_tag("dotflow.task.status", str(task.status))
        if task.duration is not None:
            span.set_data("dotflow.task.duration", task.duration)
        if task.retry_count:
            span.set_data("dotflow.task.retry_count", task.retry_count)
        if task.errors:
            span.set_data("dotflow.task.exception", str(task.errors[-1].exception))
            span.set_status("internal_error")
        else:
            span.set_status("ok")
        span.finish()

    def flush(self, timeout: float | None = None) -> bool:
        self._sentry.flush(timeout=timeout)
        return True
