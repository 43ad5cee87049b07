"""`SchedulerCron`: run a workflow on a cron schedule (extra `scheduler`, croniter).

`SchedulerCron(cron, overlap="skip")`, then `DotFlow(config=Config(scheduler=...)).schedule(**start_kwargs)`:
`schedule` blocks, starting the workflow at each time the cron expression gives (local time), until
`stop()` is called or the process gets SIGINT or SIGTERM (handled only when `start` runs in the main
thread). Then no new run starts, the runs in flight finish, the previous signal handlers are put back
and `schedule` returns; a second signal meanwhile goes to those previous handlers (a second Ctrl-C
interrupts as usual).

When a run is due while an earlier one is still going, `overlap` decides:

- "skip": the due run is dropped;
- "queue": it starts when the running one ends; at most one run waits, further due runs are dropped;
- "parallel": it starts at once, up to `max_parallel` (10) runs at a time; beyond that it is dropped.

Each run goes on a thread of its own; an exception from a run is logged on the "dotflow" logger and
the schedule goes on. `clock` (a callable returning a naive local datetime, default `datetime.now`)
and `sleep` (a callable taking seconds; default: waiting on the stop event, so `stop()` wakes it) can be
replaced, so tests drive time instead of waiting for it. Overlap control holds inside one process.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import Any

from dotflow.abc.scheduler import Scheduler
from dotflow.core.exception import ModuleNotFound
from dotflow.core.types.overlap import TypeOverlap

__all__ = ["SchedulerCron"]

logger = logging.getLogger("dotflow")
OVERLAPS = (TypeOverlap.SKIP, TypeOverlap.QUEUE, TypeOverlap.PARALLEL)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ModuleNotFoundError:
        raise ModuleNotFound(module="croniter", library="'dotflow-uow[scheduler]'") from None
    return croniter


class SchedulerCron(Scheduler):
    def __init__(
        self,
        cron: str,
        overlap: str = TypeOverlap.SKIP,
        *,
        max_parallel: int = 10,
        clock: Callable[[], datetime] = datetime.now,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        croniter = _croniter()
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            try:
                croniter(cron, clock())
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"Invalid cron expression {cron!r}: {exc}") from None
            raise ValueError(f"Invalid cron expression {cron!r}")
        if overlap not in OVERLAPS:
            raise ValueError(f"Invalid overlap {overlap!r}. Must be one of: {', '.join(OVERLAPS)}")
        if type(max_parallel) is not int or max_parallel < 1:
            raise ValueError(f"max_parallel must be a whole number of at least 1, not {max_parallel!r}")
        self.cron = cron
        self.overlap = overlap
        self.max_parallel = max_parallel
        self.running = False
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._lock = threading.Lock()
        self._active = 0  # runs going now
        self._queued = False  # "queue": one run waits
        self._threads: list[threading.Thread] = []
        self.runs_started = 0
        self.runs_dropped = 0
        self._previous_handlers: dict[int, Any] | None = None

    def __repr__(self) -> str:
        return f"SchedulerCron(cron={self.cron!r}, overlap={self.overlap!r})"

    # -- the loop ----------------------------------------------------------------------------------

    def start(self, workflow: Callable[..., Any], **kwargs: Any) -> None:
        """Run `workflow(**kwargs)` at each time of the schedule; block until stopped (see the module docstring)."""
        croniter = _croniter()
        self._stop.clear()
        self.running = True
        previous = self._previous_handlers = self._install_signal_handlers()
        try:
            times = croniter(self.cron, self._clock())
            while not self._stop.is_set():
                due: datetime = times.get_next(datetime)
                while not self._stop.is_set():
                    wait = (due - self._clock()).total_seconds()
                    if wait <= 0:
                        break
                    self._sleep(min(wait, 60.0))
                if self._stop.is_set():
                    break
                self._dispatch(workflow, kwargs)
        finally:
            self.running = False
            self._restore_signal_handlers(previous)
            self.join()

    def stop(self, timeout: float | None = None) -> None:
        """Start no new run; `timeout` (seconds) also waits that long for each run in flight."""
        self.running = False
        self._stop.set()
        if timeout is not None:
            self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the runs in flight (and a queued one) to finish."""
        while True:
            with self._lock:
                threads = [thread for thread in self._threads if thread.is_alive()]
                self._threads = threads
            current = [thread for thread in threads if thread is not threading.current_thread()]
            if not current:
                return
            for thread in current:
                thread.join(timeout)
            if timeout is not None:
                return

    # -- overlap -----------------------------------------------------------------------------------

    def _dispatch(self, workflow: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        with self._lock:
            if self._active == 0 or (self.overlap == TypeOverlap.PARALLEL and self._active < self.max_parallel):
                self._active += 1
            elif self.overlap == TypeOverlap.QUEUE and not self._queued:
                self._queued = True
                logger.info("scheduled run of %s queued: the previous run is still going", _name(workflow))
                return
            else:
                self.runs_dropped += 1
                logger.info("scheduled run of %s skipped: the previous run is still going", _name(workflow))
                return
            self._launch(workflow, kwargs)

    def _launch(self, workflow: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        # (with self._lock held)
        self.runs_started += 1
        thread = threading.Thread(target=self._run, args=(workflow, kwargs), name="dotflow-cron-run", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, workflow: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        while True:
            try:
                workflow(**kwargs)
            except Exception:
                logger.exception("scheduled run of %s failed", _name(workflow))
            with self._lock:
                if self._queued and not self._stop.is_set():
                    self._queued = False  # the waiting run starts now, on this thread
                    self.runs_started += 1
                    continue
                self._queued = False
                self._active -= 1
                return

    # -- signals -----------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        return {signum: signal.signal(signum, self._on_signal) for signum in _SIGNALS}

    def _restore_signal_handlers(self, previous: dict[int, Any] | None) -> None:
        if previous is None:
            return
        for signum, handler in previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("scheduler got %s: no new run starts; waiting for the runs in flight", signal.Signals(signum).name)
        self._restore_signal_handlers(self._previous_handlers)  # a second signal goes where it used to
        self.stop()


def _name(workflow: Callable[..., Any]) -> str:
    from dotflow.core.dotflow import DotFlow

    owner = getattr(workflow, "__self__", None)  # (a bound method: DotFlow's, usually; for log lines only)
    return f"workflow {owner.workflow_id}" if isinstance(owner, DotFlow) else repr(workflow)
