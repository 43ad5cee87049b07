"""Which provider methods a task's events call: the default providers' no-ops are skipped, nothing else."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dotflow import Config, DotFlow, action
from dotflow.abc.metrics import Metrics
from dotflow.core.types import TypeStatus
from dotflow.providers import LogDefault, NotifyDefault, TracerDefault


@action
def ok() -> dict[str, int]:
    return {"ok": 1}


@action
def boom() -> None:
    raise RuntimeError("boom")


class Recorder:
    """Collects (provider, event, status) triples from every provider that reports to it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []


class RecordingNotify(NotifyDefault):  # a subclass of a default: its override must still run
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def hook_status_task(self, task: Any) -> None:
        self.recorder.events.append(("notify", "status", task.status))


class RecordingMetrics(Metrics):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def workflow_started(self, workflow_id: Any, **kwargs: Any) -> None:
        pass

    def workflow_completed(self, workflow_id: Any, duration: float) -> None:
        pass

    def workflow_failed(self, workflow_id: Any, duration: float) -> None:
        pass

    def task_completed(self, task: Any) -> None:
        self.recorder.events.append(("metrics", "completed", task.status))

    def task_failed(self, task: Any) -> None:
        self.recorder.events.append(("metrics", "failed", task.status))

    def task_retried(self, task: Any) -> None:
        self.recorder.events.append(("metrics", "retried", task.status))


class RecordingTracer(TracerDefault):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def start_task(self, task: Any) -> None:
        self.recorder.events.append(("tracer", "start", task.status))

    def end_task(self, task: Any) -> None:
        self.recorder.events.append(("tracer", "end", task.status))


def test_every_overridden_hook_runs_in_order_for_a_completed_task() -> None:
    recorder = Recorder()
    config = Config(notify=RecordingNotify(recorder), metrics=RecordingMetrics(recorder),
                    tracer=RecordingTracer(recorder), log=LogDefault(level="ERROR"))  # fmt: skip
    flow = DotFlow(config=config)
    flow.task.add(step=ok)
    flow.start()
    assert recorder.events == [
        ("notify", "status", TypeStatus.NOT_STARTED),  # when the task is made
        ("tracer", "start", TypeStatus.NOT_STARTED),
        ("notify", "status", TypeStatus.IN_PROGRESS),
        ("notify", "status", TypeStatus.COMPLETED),
        ("metrics", "completed", TypeStatus.COMPLETED),
        ("tracer", "end", TypeStatus.COMPLETED),
    ]


@pytest.mark.parametrize("slot", ["notify", "metrics", "tracer"])
def test_a_provider_assigned_after_the_config_was_made_is_called(slot: str) -> None:
    recorder = Recorder()
    config = Config(log=LogDefault(level="ERROR"))
    provider = {"notify": RecordingNotify, "metrics": RecordingMetrics, "tracer": RecordingTracer}[slot]
    setattr(config, slot, provider(recorder))
    flow = DotFlow(config=config)
    flow.task.add(step=boom)
    flow.start()
    assert {name for name, _, _ in recorder.events} == {slot}
    assert recorder.events[-1][2] == TypeStatus.FAILED


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.levels: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.levels.append(record.levelno)


@pytest.mark.parametrize(("level", "infos"), [("INFO", 5), ("WARNING", 0), ("ERROR", 0)])
def test_a_default_log_stays_silent_below_its_level_and_logs_from_it(level: str, infos: int) -> None:
    log = LogDefault(level=level, output="file", path="/dev/null")
    handler = ListHandler()
    log._logger.addHandler(handler)
    flow = DotFlow(config=Config(log=log))
    flow.task.add(step=ok)
    flow.task.add(step=boom)
    flow.start(keep_going=True)
    # INFO: both tasks made (NOT_STARTED), both IN_PROGRESS, `ok` COMPLETED; the failure at every level
    assert handler.levels.count(logging.INFO) == infos
    assert handler.levels.count(logging.ERROR) == 1


def test_a_config_subclass_may_assign_a_provider_before_calling_init() -> None:
    recorder = Recorder()

    class EarlyConfig(Config):
        def __init__(self) -> None:
            self.notify = RecordingNotify(recorder)  # before Config.__init__ has set the others
            super().__init__(notify=self.notify, log=LogDefault(level="ERROR"))

    flow = DotFlow(config=EarlyConfig())
    flow.task.add(step=ok)
    flow.start()
    assert ("notify", "status", TypeStatus.COMPLETED) in recorder.events
