"""Providers: storage backends, the no-op defaults of the other Config slots, and dotflow 1.0.1's
notification, cron, OpenTelemetry and Sentry providers.

Everything beyond memory and file storage loads lazily (see `_LAZY`) and imports its SDK only when
constructed: a missing SDK is an error naming the extra to install (`dotflow-uow[s3]`, `[gcs]`, `[sql]`,
`[scheduler]`, `[otel]`, `[sentry]`; the notifiers need only `requests`, a dependency).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from dotflow.storage.batch import BatchStorage
from dotflow.providers.log_default import LogDefault
from dotflow.providers.metrics_default import MetricsDefault
from dotflow.providers.notify_default import NotifyDefault
from dotflow.providers.scheduler_default import SchedulerDefault
from dotflow.providers.server_default import ServerDefault
from dotflow.storage.memory import StorageDefault
from dotflow.storage.file import StorageFile
from dotflow.providers.tracer_default import TracerDefault

__all__ = [
    "BatchStorage",
    "LogDefault",
    "MetricsDefault",
    "NotifyDefault",
    "SchedulerDefault",
    "ServerDefault",
    "StorageDefault",
    "StorageFile",
    "TracerDefault",
]

# name -> module that defines it; imported on first access. A provider's SDK is imported only when the
# provider is constructed, so these imports work without the extras; constructing one without its
# extra raises `ModuleNotFound` naming the extra.
_LAZY = {
    "StorageS3": "dotflow.storage.s3",
    "StorageGCS": "dotflow.storage.gcs",
    "StorageSQL": "dotflow.storage.sql",
    "NotifyTelegram": "dotflow.providers.notify_telegram",
    "NotifyDiscord": "dotflow.providers.notify_discord",
    "SchedulerCron": "dotflow.providers.scheduler_cron",
    "TracerOpenTelemetry": "dotflow.providers.tracer_opentelemetry",
    "MetricsOpenTelemetry": "dotflow.providers.metrics_opentelemetry",
    "LogOpenTelemetry": "dotflow.providers.log_opentelemetry",
    "TracerSentry": "dotflow.providers.tracer_sentry",
    "LogSentry": "dotflow.providers.log_sentry",
}

__all__ += list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dotflow.providers' has no attribute {name!r}")
