"""`TracerOpenTelemetry`: a span per workflow, per task and per checkpoint commit (extra `otel`).

`TracerOpenTelemetry(service_name="dotflow")` as in dotflow 1.0.1: it makes an SDK `TracerProvider`
with the resource `service.name` and sets it as the global provider (add your exporter to
`trace.get_tracer_provider()`, or pass `tracer_provider=` one you configured). Names and attributes
are 1.0.1's:

- `workflow:<workflow id>`: `dotflow.workflow_id`, `dotflow.mode`, `dotflow.tasks_count` (as text), and at
  the end `dotflow.duration`; status OK, or ERROR "workflow failed".
- `task:<task id>`, a child of its workflow's span: `dotflow.workflow_id`, `dotflow.task_id`, and at the end
  `dotflow.task.status`, `dotflow.task.duration`, `dotflow.task.retry_count` (when retried), an
  `exception` event (`exception.type`, `exception.message`) and status ERROR when it failed.

Beyond 1.0.1: `checkpoint.commit`, a child of the task's span, around each commit of its checkpoint:
`dotflow.checkpoint.storage` (the storage's class), `.key`, `.bytes` (the value's size in the checkpoint
encoding, when it has one), `.outcome` ("committed", "conflict" or "failed") and `.conflict`.
In `parallel` and `sequential_group` modes a task runs in a child process, forked while its
workflow's span is open: the task's spans continue that trace there, and the child flushes the
provider before it exits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from uow import ConflictError
from uow.outcomes import COMMITTED, CONFLICT, FAILED

from dotflow.abc.tracer import Tracer
from dotflow.values import codec
from dotflow.core.types.status import TypeStatus
from dotflow.providers.otel_support import require_otel

__all__ = ["TracerOpenTelemetry"]


class TracerOpenTelemetry(Tracer):
    def __init__(self, service_name: str = "dotflow", *, tracer_provider: Any = None) -> None:
        require_otel()
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import StatusCode

        if tracer_provider is None:
            tracer_provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
            trace.set_tracer_provider(tracer_provider)  # as 1.0.1 (the SDK keeps the first one set)
        self.service_name = service_name
        self.tracer_provider = tracer_provider
        self._trace = trace
        self._tracer = tracer_provider.get_tracer("dotflow")
        self._ok = StatusCode.OK
        self._error = StatusCode.ERROR
        self._spans: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TracerOpenTelemetry(service_name={self.service_name!r})"

    def start_workflow(self, workflow_id: Any, **kwargs: Any) -> None:
        key = str(workflow_id)
        with self._lock:
            if key in self._spans:
                return
            span = self._tracer.start_span(name=f"workflow:{key}")
            self._spans[key] = span
        span.set_attribute("dotflow.workflow_id", key)
        for name, value in kwargs.items():
            span.set_attribute(f"dotflow.{name}", str(value))

    def end_workflow(self, workflow_id: Any, **kwargs: Any) -> None:
        with self._lock:
            span = self._spans.pop(str(workflow_id), None)
        if span is None:
            return
        if kwargs.get("failed", False):
            span.set_status(self._error, "workflow failed")
        else:
            span.set_status(self._ok)
        if kwargs.get("duration") is not None:
            span.set_attribute("dotflow.duration", kwargs["duration"])
        span.end()

    def start_task(self, task: Any) -> None:
        workflow_key = str(task.workflow_id)
        with self._lock:
            parent = self._spans.get(workflow_key)
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer.start_span(name=f"task:{task.task_id}", context=context)
        span.set_attribute("dotflow.workflow_id", workflow_key)
        span.set_attribute("dotflow.task_id", str(task.task_id))
        with self._lock:
            self._spans[f"{workflow_key}:{task.task_id}"] = span

    def end_task(self, task: Any) -> None:
        with self._lock:
            span = self._spans.pop(f"{task.workflow_id}:{task.task_id}", None)
        if span is None:
            return
        span.set_attribute("dotflow.task.status", str(task.status))
        if task.duration is not None:
            span.set_attribute("dotflow.task.duration", task.duration)
        if task.retry_count:
            span.set_attribute("dotflow.task.retry_count", task.retry_count)
        if task.status == TypeStatus.FAILED:
            if task.errors:
                last = task.errors[-1]
                span.add_event(
                    "exception",
                    attributes={"exception.type": str(last.exception), "exception.message": str(last.message)},
                )
            span.set_status(self._error, str(task.status))
        else:
            span.set_status(self._ok)
        span.end()

    @contextmanager
    def trace_commit(self, task: Any, key: str, storage: Any, context: Any) -> Iterator[None]:
        with self._lock:
            parent = self._spans.get(f"{task.workflow_id}:{task.task_id}")
        parent_context = self._trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer.start_span(name="checkpoint.commit", context=parent_context)
        span.set_attribute("dotflow.checkpoint.storage", type(storage).__name__)
        span.set_attribute("dotflow.checkpoint.key", key)
        try:
            span.set_attribute("dotflow.checkpoint.bytes", len(codec.dumps(context)))
        except codec.UnencodableValueError:
            pass  # (memory storage keeps any value; it has no size in the encoding)
        try:
            yield
        except ConflictError:
            self._commit_outcome(span, CONFLICT, conflict=True)
            raise
        except BaseException as error:
            self._commit_outcome(span, FAILED, conflict=False)
            span.record_exception(error)
            span.set_status(self._error, type(error).__name__)
            raise
        else:
            self._commit_outcome(span, COMMITTED, conflict=False)
            span.set_status(self._ok)
        finally:
            span.end()

    @staticmethod
    def _commit_outcome(span: Any, outcome: str, *, conflict: bool) -> None:
        span.set_attribute("dotflow.checkpoint.outcome", outcome)
        span.set_attribute("dotflow.checkpoint.conflict", conflict)

    def flush(self, timeout: float | None = None) -> bool:
        millis = 30_000 if timeout is None else int(timeout * 1000)
        return bool(self.tracer_provider.force_flush(millis))
