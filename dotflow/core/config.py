"""`Config`: the providers a workflow uses. Unset slots get their default (in-memory storage, no-ops)."""

from __future__ import annotations

from typing import Any

from dotflow.abc.log import Log
from dotflow.abc.metrics import Metrics
from dotflow.abc.notify import Notify
from dotflow.abc.scheduler import Scheduler
from dotflow.abc.server import Server
from dotflow.abc.storage import Storage
from dotflow.abc.tracer import Tracer
from dotflow.core.exception import NotCallableObject
from dotflow.core.journal import open_journal

__all__ = ["Config"]


class Config:
    """Holds storage, notify, log, server, scheduler, tracer, metrics and the optional journal.

    `journal` is a `uow.Journal`, a journal URL string (``sqlite:///journal.db``,
    ``postgresql://...``; opened as a `uow.Journal`), or any object with a `record(unit)` method;
    each unit of work reports its outcome to it. None (the default) keeps no journal.
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
        self.notify = notify if notify is not None else NotifyDefault()
        self.log = log if log is not None else LogDefault()
        self.server = server if server is not None else ServerDefault()
        self.scheduler = scheduler if scheduler is not None else SchedulerDefault()
        self.tracer = tracer if tracer is not None else TracerDefault()
        self.metrics = metrics if metrics is not None else MetricsDefault()
        self.journal = open_journal(journal)
        self._validate()

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
        if self.journal is not None and not callable(getattr(self.journal, "record", None)):
            raise NotCallableObject(name="journal")
