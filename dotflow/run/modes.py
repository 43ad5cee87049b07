"""`Manager` runs a workflow's tasks in one of four modes and then calls the workflow callbacks.

- sequential: tasks in order in the calling thread, each fed its predecessor's context from
  memory. With several groups it runs as sequential_group.
- sequential_group: each group in a child process, at most `Config.max_workers` at once; sequential
  inside a group.
- background: the sequential loop in a daemon thread; `Manager` returns at once.
- parallel: each task in a child process, at most `Config.max_workers` at once, each child taking
  the next task as it finishes one; every task starts from an empty previous context.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, Callable
from uuid import uuid4

from uow import RunPersistence
from uow.outcomes import TASK_ADOPTED, TASK_COMPLETED, TASK_COUNTS, TASK_FAILED, TASK_RESTORED

from dotflow.abc.flow import Flow
from dotflow.core.context import Context, canonical_workflow_id, workflow_uuid
from dotflow.run.claims import Claim, Claims, workflow_claim_key
from dotflow.run.engine import TaskEngine, restore_task
from dotflow.core.exception import ExecutionModeNotExist, InvalidOnInputChange
from dotflow.values.fingerprint import input_fingerprint
from dotflow.run.processes import run_in_processes
from dotflow.run.resume import NOT_READ, RunPlan, plan_restore
from dotflow.run.storage_description import describe_storage
from dotflow.core.task import basic_callback
from dotflow.core.types import VALID_POLICIES, TypeInputChange, TypeStatus, WorkflowStatus

__all__ = ["Background", "Manager", "Parallel", "Sequential", "SequentialGroup", "grouper", "restore_task"]

MODES = ("sequential", "sequential_group", "background", "parallel")
logger = logging.getLogger("dotflow")


def _claims(claim: Any, resume: bool) -> Claims:
    if not isinstance(claim, Claim):
        raise TypeError(f"claim must be a dotflow.Claim, not {type(claim).__name__}")
    if not resume:
        raise ValueError(
            "claim= needs resume=True: a claim lets several workers resume one workflow so that each step "
            "runs once, and a run without resume runs (and replaces) every step whatever is stored"
        )
    return Claims(claim)


def grouper(tasks: list[Any]) -> dict[str, list[Any]]:
    """group_name -> tasks, groups in order of first appearance."""
    groups: dict[str, list[Any]] = {}
    for task in tasks:
        groups.setdefault(task.group_name, []).append(task)
    return groups


def run_sequence(
    tasks: list[Any],
    workflow_id: Any,
    ignore: bool,
    plan: RunPlan,
    report: Callable[[Any], None],
) -> None:
    """The sequential loop: restore or run each task, hand its context to the next in memory."""
    previous = Context(workflow_id=workflow_uuid(workflow_id))
    workflow_text = None if workflow_id is None else str(workflow_id)
    restored, versions, run = plan.restored, plan.versions, plan.run
    for task in tasks:
        if restored and task.task_id in restored:
            restore_task(task, restored[task.task_id], previous)
        else:
            engine = TaskEngine(
                task=task,
                workflow_id=workflow_id,
                previous_context=previous,
                fingerprint=plan.fingerprint,
                expected_version=versions.get(task.task_id, NOT_READ) if versions else NOT_READ,
                workflow_text=workflow_text,
                run=run,
                claims=plan.claims,
            )
            engine.run()
            if engine.skipped:  # another worker holds its claim: what follows needs its result
                break
            callback = task.callback
            if callback is not basic_callback:  # the default does nothing
                callback(task=task)
        report(task)
        previous = task.current_context
        if task._status == TypeStatus.FAILED and not ignore:
            break


def task_counts(tasks: list[Any], restored: dict[str, Any]) -> dict[str, int]:
    """A run's tasks by how they ended: completed (ran), restored (from a checkpoint), failed, and
    adopted (ran, but another run committed first: its checkpoint was taken)."""
    counts = dict.fromkeys(TASK_COUNTS, 0)
    for task in tasks:
        if task._status == TypeStatus.FAILED:
            counts[TASK_FAILED] += 1
        elif task.task_id in restored:
            counts[TASK_RESTORED] += 1
        elif task.restored:
            counts[TASK_ADOPTED] += 1
        elif task._status == TypeStatus.COMPLETED:
            counts[TASK_COMPLETED] += 1
    return counts


class Sequential(Flow):
    def setup_queue(self) -> None:
        self.queue: list[Any] = []

    def run(self) -> None:
        if len(self.groups) > 1:
            self.queue = SequentialGroup(
                self.tasks, self.workflow_id, self.ignore, self.groups, self.resume, self.plan
            ).get_tasks()
            return
        run_sequence(self.tasks, self.workflow_id, self.ignore, self.plan, self.queue.append)

    def get_tasks(self) -> list[Any]:
        return self.queue


class Background(Flow):
    """The sequential loop in a daemon thread (groups are ignored). `thread` is that worker.

    `finish` (the run's end: durable writes, journal outcomes, callbacks) runs in the same thread
    after the loop, so once `thread` has ended the run's outcomes are written.
    """

    def __init__(self, *args: Any, finish: Callable[[], None] | None = None, **kwargs: Any) -> None:
        self.finish = finish
        super().__init__(*args, **kwargs)

    def setup_queue(self) -> None:
        self.queue: list[Any] = []

    def run(self) -> None:
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            run_sequence(self.tasks, self.workflow_id, self.ignore, self.plan, self.queue.append)
        finally:
            if self.finish is not None:
                self.finish()

    def get_tasks(self) -> list[Any]:
        return self.tasks


class SequentialGroup(Flow):
    def setup_queue(self) -> None:
        self.queue: list[Any] = []

    def run(self) -> None:
        def work(batch: list[Any], report: Callable[[Any], None]) -> None:
            run_sequence(batch, self.workflow_id, self.ignore, self.plan, report)

        self.queue = run_in_processes(list(self.groups.values()), work, self.plan.run)

    def get_tasks(self) -> list[Any]:
        return self.queue


class Parallel(Flow):
    def setup_queue(self) -> None:
        self.queue: list[Any] = []

    def run(self) -> None:
        pending = []
        for task in self.tasks:
            if task.task_id in self.plan.restored:
                restore_task(task, self.plan.restored[task.task_id], Context(workflow_id=workflow_uuid(self.workflow_id)))
            else:
                pending.append(task)

        def work(batch: list[Any], report: Callable[[Any], None]) -> None:
            run_sequence(batch, self.workflow_id, True, self.plan, report)

        ran = run_in_processes([[task] for task in pending], work, self.plan.run)
        done = {task.task_id for task in ran} | set(self.plan.restored)
        self.queue = [task for task in self.tasks if task.task_id in done]

    def get_tasks(self) -> list[Any]:
        return self.queue


class Manager:
    """Runs the workflow in its constructor; `tasks` holds the tasks that ran or were restored."""

    def __init__(
        self,
        tasks: list[Any],
        on_success: Callable[..., Any] = basic_callback,
        on_failure: Callable[..., Any] = basic_callback,
        mode: str = "sequential",
        keep_going: bool = False,
        workflow_id: Any = None,
        resume: bool = False,
        on_input_change: str = "reuse",
        fingerprint: Any = None,
        config: Any = None,
        verify_resume: bool = True,
        claim: Claim | None = None,
    ) -> None:
        # None means a random id; anything else must be a valid id ("" and 0 are refused), canonical.
        self.workflow_id = uuid4() if workflow_id is None else canonical_workflow_id(workflow_id)
        self.started = datetime.now()
        self.on_success = on_success
        self.on_failure = on_failure
        self.mode = mode
        if on_input_change not in VALID_POLICIES:
            raise InvalidOnInputChange(value=on_input_change)
        if mode not in MODES:
            raise ExecutionModeNotExist()
        self.config = config
        self.verify_resume = verify_resume
        self.thread: threading.Thread | None = None  # the worker of a background run
        self.skipped = False  # claim scope "workflow", on_held "skip": another worker runs it; nothing ran
        self.claims = None if claim is None else _claims(claim, resume)
        by_config: dict[int, tuple[Any, list[Any]]] = {}  # the tasks of each Config, for the run's bindings
        for task in tasks:
            task.workflow_id = self.workflow_id  # before any key is computed: resume looks keys up
            task_config = task.config
            by_config.setdefault(id(task_config), (task_config, []))[1].append(task)
        # Only a resume that compares fingerprints needs one; other runs store None if it cannot be made.
        needed = resume and on_input_change != TypeInputChange.REUSE
        self.fingerprint = input_fingerprint(tasks, fingerprint, required=needed)
        groups = grouper(tasks)
        # Everything this run persists goes through `persistence`: bindings, reservations, the end.
        self.persistence = run = RunPersistence(
            str(self.workflow_id), mode=mode, storage=None if config is None else describe_storage(config.storage)
        )
        if config is not None:
            run.persistence(config.storage, config.journal)
        if self.claims is not None:
            self.claims.run = run  # told what happens to the claims (the journal records it)
        if self.claims is not None and not self._claim_workflow([each for each, _ in by_config.values()] or [config]):
            self.tasks: list[Any] = []
            return
        try:
            self._start(tasks, mode, keep_going, resume, on_input_change, groups, by_config)
        except BaseException:
            if self.claims is not None and self.claims.workflow is not None:
                self._release_claim()
                run.flush_journals()  # (its release: the run ended without its last transaction)
            raise

    def _start(self, tasks: list[Any], mode: str, keep_going: bool, resume: bool, on_input_change: str,
               groups: dict[str, list[Any]], by_config: dict[int, tuple[Any, list[Any]]]) -> None:  # fmt: skip
        config, run = self.config, self.persistence
        plan = RunPlan(self.fingerprint, run=run)
        if resume and tasks:
            sequences = [[task] for task in tasks] if mode == "parallel" else self._sequences(mode, tasks, groups)
            plan = plan_restore(sequences, self.workflow_id, self.fingerprint, on_input_change, run, verify=self.verify_resume)
        self.plan = plan  # (its `restored`: the counts of the run's end)
        plan.claims = self.claims
        restored = plan.restored
        run.begin(
            (run.persistence(each.storage, each.journal), ((t.task_id, t) for t in group if t.task_id not in restored))
            for each, group in by_config.values()
        )

        if config is not None:
            config.tracer.start_workflow(workflow_id=self.workflow_id, mode=mode, tasks_count=len(tasks))
            config.metrics.workflow_started(workflow_id=self.workflow_id, mode=mode)
            config.server.update_workflow(workflow=self.workflow_id, status=WorkflowStatus.IN_PROGRESS)

        if mode == "background":  # the run ends (`_finish`) in the worker thread, after its tasks
            self.tasks = tasks
            self.thread = Background(tasks, self.workflow_id, keep_going, groups, resume, plan, finish=self._finish).thread
            return
        strategy: Any = {"sequential": Sequential, "sequential_group": SequentialGroup, "parallel": Parallel}[mode]
        flow = strategy(tasks, self.workflow_id, keep_going, groups, resume, plan)
        self.tasks = flow.get_tasks()
        self._finish()

    def _claim_workflow(self, configs: list[Any]) -> bool:
        """Check that every storage of the run can hold leases; with scope "workflow", take the
        workflow's lease (before anything is read: what the run restores is read under it). False:
        another worker holds it and on_held is "skip"."""
        claims = self.claims
        assert claims is not None
        bindings = [self.persistence.persistence(each.storage, each.journal) for each in configs if each is not None]
        for binding in bindings:
            if not binding.storage_can.leases:
                raise TypeError(
                    f"claim= needs a storage that can hold leases (uow.SupportsLeases); "
                    f"{type(binding.storage).__name__} cannot"
                )
        if claims.claim.scope != "workflow" or not bindings:
            return True
        what = f"workflow {str(self.workflow_id)!r}"
        holding = claims.acquire(bindings[0], workflow_claim_key(self.workflow_id), what=what)
        if holding is None:
            self.skipped = True
            return False
        claims.workflow = holding
        return True

    def _release_claim(self) -> None:
        claims = self.claims
        if claims is not None and claims.workflow is not None:
            claims.workflow.release()

    @staticmethod
    def _sequences(mode: str, tasks: list[Any], groups: dict[str, list[Any]]) -> list[list[Any]]:
        if mode == "background" or len(groups) == 1:
            return [list(tasks)]
        return list(groups.values())

    def _finish(self) -> None:
        failed = any(task._status == TypeStatus.FAILED for task in self.tasks)
        duration = (datetime.now() - self.started).total_seconds()
        config = self.config
        # Buffered checkpoints durable, then the journals' outcomes: before the workflow's callbacks.
        # The workflow's claim is released after the commits are durable, its release journaled with the run's end.
        self.persistence.end(failed=failed, counts=task_counts(self.tasks, self.plan.restored),
                             after_storages=self._release_claim)  # fmt: skip
        if config is not None:
            config.tracer.end_workflow(workflow_id=self.workflow_id, duration=duration, failed=failed)
            if failed:
                config.metrics.workflow_failed(self.workflow_id, duration)
            else:
                config.metrics.workflow_completed(self.workflow_id, duration)
            status = WorkflowStatus.FAILED if failed else WorkflowStatus.COMPLETED
            config.server.update_workflow(workflow=self.workflow_id, status=status)
        if failed:
            self.on_failure(tasks=self.tasks)
        else:
            self.on_success(tasks=self.tasks)

    def sequential(self, **kwargs: Any) -> list[Any]:
        return Sequential(**kwargs).get_tasks()

    def sequential_group(self, **kwargs: Any) -> list[Any]:
        return SequentialGroup(**kwargs).get_tasks()

    def background(self, **kwargs: Any) -> list[Any]:
        return Background(**kwargs).get_tasks()

    def parallel(self, **kwargs: Any) -> list[Any]:
        return Parallel(**kwargs).get_tasks()
