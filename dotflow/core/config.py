"""`Config`: the providers a workflow uses. Unset slots get their default (in-memory storage, no-ops)."""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager
from typing import Any, Callable

from dotflow.abc.log import Log
from dotflow.abc.metrics import Metrics
from dotflow.abc.notify import Notify
from dotflow.abc.scheduler import Scheduler
from dotflow.abc.server import Server
from dotflow.abc.storage import Storage
from dotflow.abc.tracer import TracesCommits, Tracer
from dotflow.core.exception import NotCallableObject
from dotflow.run.journal_config import open_journal
from dotflow.core.types import TypeStatus

__all__ = ["Config", "TaskHooks", "default_max_workers"]


def default_max_workers() -> int:
    """The CPU count this process may use (its affinity where the platform tells it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _checked_max_workers(value: Any) -> int:
    if value is None:
        return default_max_workers()
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Config(max_workers=...) must be a whole number of processes or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"Config(max_workers=...) must be at least 1, got {value}")
    return value


class TaskHooks:
    """The provider methods a task's events call, in order, each with `task=`; the no-op methods of
    the default providers (NotifyDefault, ServerDefault, TracerDefault, MetricsDefault) are left out:
    calling them was a good part of what a task's bookkeeping cost. Made again whenever a Config's
    provider is replaced."""

    __slots__ = ("on_status", "on_other_status", "on_start", "on_end", "on_commit")

    def __init__(self, notify: Notify, log: Log, server: Server, tracer: Tracer, metrics: Metrics) -> None:
        from dotflow.providers import LogDefault, MetricsDefault, NotifyDefault, ServerDefault, TracerDefault

        def kept(*methods: tuple[object, type | None, Any]) -> tuple[Callable[..., Any], ...]:
            return tuple(method for provider, default, method in methods if type(provider) is not default)

        # A LogDefault's level is fixed when it is made: below it, its method is a no-op too.
        quiet = {level: LogDefault if type(log) is LogDefault and level < log.level else None
                 for level in (logging.INFO, logging.WARNING, logging.ERROR)}  # fmt: skip
        status = (notify, NotifyDefault, notify.hook_status_task)
        info = (log, quiet[logging.INFO], log.info)
        self.on_status: dict[str, tuple[Callable[..., Any], ...]] = {
            TypeStatus.FAILED: kept(
                status, (log, quiet[logging.ERROR], log.error), (metrics, MetricsDefault, metrics.task_failed)
            ),
            TypeStatus.RETRY: kept(
                status, (log, quiet[logging.WARNING], log.warning), (metrics, MetricsDefault, metrics.task_retried)
            ),
            TypeStatus.COMPLETED: kept(status, info, (metrics, MetricsDefault, metrics.task_completed)),
        }
        self.on_other_status = kept(status, info)
        self.on_start = kept((tracer, TracerDefault, tracer.start_task))
        self.on_end = kept((tracer, TracerDefault, tracer.end_task), (server, ServerDefault, server.update_task))
        # A tracer that traces commits wraps each one (None: the commit runs bare, the usual case).
        self.on_commit: Callable[..., AbstractContextManager[None]] | None = (
            tracer.trace_commit if isinstance(tracer, TracesCommits) else None
        )


class Config:
    """Holds storage, notify, log, server, scheduler, tracer, metrics and the optional journal.

    `journal` is a `uow.Journal`, a journal URL string (``sqlite:///journal.db``,
    ``postgresql://...``; opened as a `uow.Journal`), or any object with a `record(unit)` method;
    each unit of work reports its outcome to it. None (the default) keeps no journal.

    `max_workers` bounds the child processes of the modes that use them (`parallel`,
    `sequential_group`): at most that many run at once, each taking the next task (or group) as it
    finishes one. None (the default) is the number of CPUs this process may use.
    """

    def __init__(
        self,
        storage: Storage | None = None,
        notify: Notify | None = None,
        log: Log | None = None,
        server: Server | None = None,
        scheduler: Scheduler | None = None,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
        journal: Any = None,
        max_workers: int | None = None,
    ) -> None:
        from dotflow.providers import (
            LogDefault,
            MetricsDefault,
            NotifyDefault,
            SchedulerDefault,
            ServerDefault,
            StorageDefault,
            TracerDefault,
        )

        self.storage = storage if storage is not None else StorageDefault()
        self._notify = notify if notify is not None else NotifyDefault()
        self._log = log if log is not None else LogDefault()
        self._server = server if server is not None else ServerDefault()
        self.scheduler = scheduler if scheduler is not None else SchedulerDefault()
        self._tracer = tracer if tracer is not None else TracerDefault()
        self._metrics = metrics if metrics is not None else MetricsDefault()
        self.max_workers = max_workers  # validated (None: the CPU count)
        self.journal = open_journal(journal)
        self._validate()
        self._refresh_task_hooks()

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @max_workers.setter
    def max_workers(self, value: int | None) -> None:
        self._max_workers = _checked_max_workers(value)

    # notify, log, server, tracer and metrics are properties: assigning one refreshes `task_hooks`.

    @property
    def notify(self) -> Notify:
        return self._notify

    @notify.setter
    def notify(self, value: Notify) -> None:
        self._notify = value
        self._refresh_task_hooks()

    @property
    def log(self) -> Log:
        return self._log

    @log.setter
    def log(self, value: Log) -> None:
        self._log = value
        self._refresh_task_hooks()

    @property
    def server(self) -> Server:
        return self._server

    @server.setter
    def server(self, value: Server) -> None:
        self._server = value
        self._refresh_task_hooks()

    @property
    def tracer(self) -> Tracer:
        return self._tracer

    @tracer.setter
    def tracer(self, value: Tracer) -> None:
        self._tracer = value
        self._refresh_task_hooks()

    @property
    def metrics(self) -> Metrics:
        return self._metrics

    @metrics.setter
    def metrics(self, value: Metrics) -> None:
        self._metrics = value
        self._refresh_task_hooks()

    def _refresh_task_hooks(self) -> None:
        providers: list[Any] = [getattr(self, name, None) for name in ("_notify", "_log", "_server", "_tracer", "_metrics")]
        if all(provider is not None for provider in providers):  # (a subclass may assign one before __init__)
            self.task_hooks = TaskHooks(*providers)

    def _validate(self) -> None:
        expected = {
            "storage": Storage,
            "notify": Notify,
            "log": Log,
            "server": Server,
            "scheduler": Scheduler,
            "tracer": Tracer,
            "metrics": Metrics,
        }
        for name, abc in expected.items():
            if not isinstance(getattr(self, name), abc):
                raise NotCallableObject(name=name)
