"""`MetricsOpenTelemetry`: workflow and task counters and durations (extra `otel`).

`MetricsOpenTelemetry(service_name="dotflow")` as in dotflow 1.0.1: it makes an SDK `MeterProvider`
with the resource `service.name` and sets it as the global provider; pass `meter_provider=` one with
your readers (the SDK allows no reader to be added later). Instruments, as 1.0.1 names them:

- `dotflow_workflow_total` (counter; attribute `status` = started, completed or failed)
- `dotflow_workflow_duration_seconds` (histogram, s; `status` = completed or failed)
- `dotflow_task_total` (counter; `status` = completed or failed)
- `dotflow_task_duration_seconds` (histogram, s; `status`)
- `dotflow_task_retry_total` (counter)

Task metrics are recorded where the task runs; a child process flushes the provider before it exits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dotflow.abc.metrics import Metrics
from dotflow.providers.otel_support import require_otel

__all__ = ["MetricsOpenTelemetry"]


class MetricsOpenTelemetry(Metrics):
    def __init__(self, service_name: str = "dotflow", *, meter_provider: Any = None) -> None:
        require_otel()
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource

        if meter_provider is None:
            meter_provider = MeterProvider(resource=Resource.create({"service.name": service_name}))
            metrics.set_meter_provider(meter_provider)  # as 1.0.1 (the SDK keeps the first one set)
        self.service_name = service_name
        self.meter_provider = meter_provider
        meter = meter_provider.get_meter("dotflow")
        self._workflow_total = meter.create_counter("dotflow_workflow_total", description="Workflows by status")
        self._workflow_duration = meter.create_histogram(
            "dotflow_workflow_duration_seconds", unit="s", description="Workflow duration in seconds"
        )
        self._task_total = meter.create_counter("dotflow_task_total", description="Tasks by final status")
        self._task_duration = meter.create_histogram(
            "dotflow_task_duration_seconds", unit="s", description="Task duration in seconds"
        )
        self._task_retry_total = meter.create_counter("dotflow_task_retry_total", description="Task retries")

    def __repr__(self) -> str:
        return f"MetricsOpenTelemetry(service_name={self.service_name!r})"

    def workflow_started(self, workflow_id: Any, **kwargs: Any) -> None:
        self._workflow_total.add(1, {"status": "started"})

    def workflow_completed(self, workflow_id: Any, duration: float) -> None:
        self._workflow_total.add(1, {"status": "completed"})
        self._workflow_duration.record(duration, {"status": "completed"})

    def workflow_failed(self, workflow_id: Any, duration: float) -> None:
        self._workflow_total.add(1, {"status": "failed"})
        self._workflow_duration.record(duration, {"status": "failed"})

    def task_completed(self, task: Any) -> None:
        self._task(task, "completed")

    def task_failed(self, task: Any) -> None:
        self._task(task, "failed")

    def task_retried(self, task: Any) -> None:
        self._task_retry_total.add(1)

    def _task(self, task: Any, status: str) -> None:
        self._task_total.add(1, {"status": status})
        # A task's final status is set before its duration (as in 1.0.1, which therefore never recorded
        # this histogram): measure from its start instead.
        duration = task.duration
        if duration is None and task.started_at is not None:
            duration = max(0.0, (datetime.now() - task.started_at).total_seconds())
        if duration is not None:
            self._task_duration.record(duration, {"status": status})

    def flush(self, timeout: float | None = None) -> bool:
        millis = 30_000 if timeout is None else int(timeout * 1000)
        return bool(self.meter_provider.force_flush(millis))
