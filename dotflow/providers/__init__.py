"""Providers: storage backends and the no-op defaults of the other Config slots.

Cloud and SQL backends load lazily (`StorageS3`, `StorageGCS`, `StorageSQL`), and import their SDKs only
when constructed or imported: a missing SDK is an error naming the extra to install (`dotflow-uow[s3]`,
`dotflow-uow[gcs]`, `dotflow-uow[sql]`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from dotflow.providers.batch_storage import BatchStorage
from dotflow.providers.log_default import LogDefault
from dotflow.providers.metrics_default import MetricsDefault
from dotflow.providers.notify_default import NotifyDefault
from dotflow.providers.scheduler_default import SchedulerDefault
from dotflow.providers.server_default import ServerDefault
from dotflow.providers.storage_default import StorageDefault
from dotflow.providers.storage_file import StorageFile
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

# name -> module that defines it; imported on first access
_LAZY = {
    "StorageS3": "dotflow.providers.storage_s3",
    "StorageGCS": "dotflow.providers.storage_gcs",
    "StorageSQL": "dotflow.providers.storage_sql",
}

# 1.0.1 providers this project does not ship
_NOT_SHIPPED = {
    "NotifyDiscord",
    "NotifyTelegram",
    "SchedulerCron",
    "TracerOpenTelemetry",
    "MetricsOpenTelemetry",
    "LogOpenTelemetry",
    "LogSentry",
    "TracerSentry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _NOT_SHIPPED:
        raise AttributeError(
            f"{name} is a dotflow 1.0.1 provider that this project does not ship "
            "(notifications, cron, OpenTelemetry and Sentry are out of scope)"
        )
    raise AttributeError(f"module 'dotflow.providers' has no attribute {name!r}")
