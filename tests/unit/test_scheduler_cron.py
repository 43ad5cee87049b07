"""SchedulerCron through Config and DotFlow.schedule(): the clock and the sleep are the test's."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.exception import ModuleNotFound
from dotflow.providers import SchedulerCron

START = datetime(2026, 1, 1, 12, 0, 0)
RAN: list[str] = []
GATE = threading.Event()
IN_FLIGHT: list[int] = []
PEAK: list[int] = []
_count = threading.Lock()


@action
def job():
    with _count:
        IN_FLIGHT.append(1)
        PEAK.append(len(IN_FLIGHT))
    try:
        assert GATE.wait(10), "the test never opened the gate"
        RAN.append("job")
        return len(RAN)
    finally:
        with _count:
            IN_FLIGHT.pop()


@pytest.fixture(autouse=True)
def fresh() -> None:
    RAN.clear()
    PEAK.clear()
    GATE.clear()


class FakeTime:
    """A clock the scheduler reads and a sleep that moves it; `at(minutes, action)` runs an action once
    the clock has passed that many minutes after START."""

    def __init__(self) -> None:
        self.now = START
        self.actions: list[tuple[float, Callable[[], None]]] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        elapsed = (self.now - START).total_seconds() / 60
        while self.actions and self.actions[0][0] <= elapsed:
            self.actions.pop(0)[1]()

    def at(self, minutes: float, action: Callable[[], None]) -> FakeTime:
        self.actions.append((minutes, action))
        return self


def scheduled(overlap: str, fake: FakeTime, **options: Any) -> tuple[DotFlow, SchedulerCron]:
    scheduler = SchedulerCron("* * * * *", overlap=overlap, clock=fake.clock, sleep=fake.sleep, **options)
    flow = DotFlow(config=Config(scheduler=scheduler), workflow_id="cron-flow")
    flow.task.add(step=job)
    return flow, scheduler


def wait_for(predicate: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(500):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


def test_skip_drops_due_runs_while_one_is_going() -> None:
    fake = FakeTime()
    flow, scheduler = scheduled("skip", fake)
    fake.at(3.5, lambda: (GATE.set(), scheduler.stop()))
    flow.schedule()
    assert RAN == ["job"]
    assert (scheduler.runs_started, scheduler.runs_dropped) == (1, 2)  # fired at 12:01, 12:02, 12:03
    assert flow.result_task()[0].status == "Completed"


def test_queue_keeps_one_waiting_run() -> None:
    fake = FakeTime()
    flow, scheduler = scheduled("queue", fake)

    def release() -> None:
        GATE.set()
        wait_for(lambda: len(RAN) == 2)  # the running one, then the queued one
        scheduler.stop()

    fake.at(3.5, release)
    flow.schedule()
    assert RAN == ["job", "job"]
    assert (scheduler.runs_started, scheduler.runs_dropped) == (2, 1)


def test_parallel_runs_side_by_side_up_to_the_limit() -> None:
    fake = FakeTime()
    flow, scheduler = scheduled("parallel", fake, max_parallel=2)

    def release() -> None:
        wait_for(lambda: len(IN_FLIGHT) == 2)
        GATE.set()
        scheduler.stop()

    fake.at(3.5, release)
    flow.schedule(mode="sequential")
    assert RAN == ["job", "job"] and max(PEAK) == 2
    assert (scheduler.runs_started, scheduler.runs_dropped) == (2, 1)
    assert flow.result_task()[0].status == "Completed"  # one of the runs used the DotFlow's own tasks


def test_a_failing_run_is_logged_and_the_schedule_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    calls: list[int] = []

    def workflow(**kwargs: Any) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    scheduler = SchedulerCron("*/2 * * * *", clock=fake.clock, sleep=fake.sleep)
    fake.at(3, scheduler.join).at(5, scheduler.join).at(6.5, scheduler.stop)  # each run ends before the next
    scheduler.start(workflow=workflow)
    assert len(calls) == 3  # 12:02, 12:04, 12:06
    assert "scheduled run" in caplog.text and "boom" in caplog.text


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_loop_and_lets_the_run_in_flight_finish(signum: int) -> None:
    before = signal.getsignal(signum)
    fake = FakeTime()
    flow, scheduler = scheduled("skip", fake)

    def interrupt() -> None:
        signal.raise_signal(signum)  # handled in this (the main) thread
        assert signal.getsignal(signum) == before  # a second signal would go where it used to
        GATE.set()

    fake.at(1.5, interrupt)
    flow.schedule()
    assert RAN == ["job"] and scheduler.running is False
    assert flow.result_task()[0].status == "Completed"
    assert signal.getsignal(signum) == before


def test_stop_from_another_thread_wakes_the_real_sleep() -> None:
    scheduler = SchedulerCron("0 0 1 1 *")  # once a year: the loop would sleep for months
    runner = threading.Thread(target=scheduler.start, kwargs={"workflow": lambda: None})
    runner.start()
    wait_for(lambda: scheduler.running)
    scheduler.stop()
    runner.join(5)
    assert not runner.is_alive() and scheduler.runs_started == 0


@pytest.mark.parametrize("cron", ["* * *", "61 * * * *", "every minute", ""])
def test_a_bad_cron_expression_is_a_value_error_at_construction(cron: str) -> None:
    with pytest.raises(ValueError, match="Invalid cron expression"):
        SchedulerCron(cron)


def test_bad_overlap_and_limit() -> None:
    with pytest.raises(ValueError, match="Invalid overlap 'later'"):
        SchedulerCron("* * * * *", overlap="later")
    with pytest.raises(ValueError, match="max_parallel"):
        SchedulerCron("* * * * *", overlap="parallel", max_parallel=0)
    assert (SchedulerCron("*/5 * * * *").cron, SchedulerCron("* * * * *", "queue").overlap) == ("*/5 * * * *", "queue")


def test_without_croniter_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "croniter", None)
    with pytest.raises(ModuleNotFound, match=r"dotflow-uow\[scheduler\]"):
        SchedulerCron("* * * * *")


@pytest.mark.slow
def test_scheduled_runs_in_parallel_mode() -> None:
    fake = FakeTime()
    scheduler = SchedulerCron("* * * * *", clock=fake.clock, sleep=fake.sleep)
    flow = DotFlow(config=Config(scheduler=scheduler))
    flow.task.add(step=[quick, quick])
    fake.at(1.5, scheduler.join)  # the first run ends before the second is due
    fake.at(2.5, lambda: (scheduler.join(), scheduler.stop()))
    flow.schedule(mode="parallel")
    assert scheduler.runs_started == 2
    assert [task.status for task in flow.result_task()] == ["Completed", "Completed"]
    assert flow.result_storage() == ["quick", "quick"]


@action
def quick():
    return "quick"


def test_skip_holds_between_processes_with_a_workflow_claim() -> None:
    """overlap="skip" alone sees only this process's runs; with claim=Claim(scope="workflow", on_held="skip")
    passed to schedule(), a run another process (or machine) holds on the same storage is skipped too."""
    from dotflow import Claim
    from dotflow.storage.memory import StorageDefault

    storage = StorageDefault()

    def scheduled_on(storage: StorageDefault, fake: FakeTime) -> tuple[DotFlow, SchedulerCron]:
        scheduler = SchedulerCron("* * * * *", overlap="skip", clock=fake.clock, sleep=fake.sleep)
        flow = DotFlow(config=Config(storage=storage, scheduler=scheduler), workflow_id="cron-flow")
        flow.task.add(step=job)
        return flow, scheduler

    elsewhere = storage.create_lease("cron-flow", owner="a-worker-on-another-machine", ttl=3600)
    assert elsewhere is not None
    GATE.set()
    fake = FakeTime()
    flow, scheduler = scheduled_on(storage, fake)
    fake.at(3.5, scheduler.stop)
    flow.schedule(resume=True, claim=Claim(scope="workflow", on_held="skip"))
    assert RAN == []  # 12:01, 12:02 and 12:03 all skipped: the workflow is held elsewhere

    storage.delete_lease("cron-flow", version=elsewhere.version)  # that worker's run ends
    fake = FakeTime()
    flow, scheduler = scheduled_on(storage, fake)
    fake.at(1.5, scheduler.stop)
    flow.schedule(resume=True, claim=Claim(scope="workflow", on_held="skip"))
    assert RAN == ["job"] and flow.result_task()[0].status == "Completed"
