"""`TaskEngine`: runs one task, attempt by attempt, each attempt inside its own unit of work.

Per task: a successful attempt commits the checkpoint once (1 write, 0 reads); a failed attempt
commits nothing. A failed commit never re-runs the step: the commit alone is retried for
transient storage errors, then the task ends FAILED with `CheckpointNotSaved`.

On resume, the commit is conditional on the checkpoint version the run saw before it started
(`expected_version`; None = absent). If another run committed the task meanwhile, the commit
conflicts and this run adopts the stored checkpoint as the task's result (COMPLETED, `restored`,
with a warning), so two runs racing on one workflow leave one consistent chain of checkpoints.

With claims (`dotflow.run.claims`, scope "task"), the task's lease is taken first; then the
checkpoint is read again (another worker may have committed it since the run looked): if it is
there it is adopted and the step does not run. The commit is conditional on that read, and, on a
storage whose transactions can check a lease (SQL, memory), on still holding the lease, which the
same transaction releases. A worker whose lease changed hands before its commit waits for the new
holder, then adopts its checkpoint (or, if it committed none, commits its own under a new lease).
"""

from __future__ import annotations

import logging
import threading
import time
from types import FunctionType
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from uow import (
    COMMITTED,
    CommitError,
    ConflictError,
    HookError,
    JournalError,
    LeaseLostError,
    RunPersistence,
    TransientError,
    UnitOfWork,
)

from dotflow.core.action import call_step, is_action, takes_instance
from dotflow.core.context import Context
from dotflow.core.exception import CheckpointNotSaved, StepTimeoutError, StorageError, TaskError
from dotflow.run.resume import NOT_READ
from dotflow.core.types import TypeStatus

if TYPE_CHECKING:
    from dotflow.core.task import Task
    from dotflow.run.claims import Claims, Holding

__all__ = ["TaskEngine", "COMMIT_ATTEMPTS", "COMMIT_RETRY_DELAY", "restore_task"]

COMMIT_ATTEMPTS = 3  # tries of one checkpoint commit before the task fails
COMMIT_RETRY_DELAY = 0.2  # seconds before the 2nd try; doubles after each
logger = logging.getLogger("dotflow")

# Commit errors that retrying cannot fix: an unencodable value, a bad key, a bug in a storage, and a
# StorageError (a cloud storage raises it only after its SDK's own retry policy gave up, or for a
# 403; StorageSQL for a value too long, a constraint, a missing table), except a `TransientError`
# (StorageSQL's `TransientStorageError`: the server down, the connection lost, a lock timeout).
# Anything else (connection, timeout, throttling from a custom storage) is retried.
PERMANENT_COMMIT_ERRORS = (
    TypeError, ValueError, AttributeError, NameError, LookupError, AssertionError,
    NotImplementedError, ImportError, StorageError,
)  # fmt: skip


class TaskEngine:
    VALID_OBJECTS = [
        str, int, float, complex, dict, list, tuple, set, frozenset, range, bool,
        FunctionType, type(None), bytes, bytearray, memoryview,
    ]  # fmt: skip

    def __init__(
        self,
        task: Task,
        workflow_id: UUID | str | None,
        previous_context: Context | None = None,
        fingerprint: str | None = None,
        expected_version: Any = NOT_READ,
        workflow_text: str | None = None,
        run: RunPersistence | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.task = task
        self.config = task.config
        self.workflow_id = workflow_id
        self.previous_context = previous_context
        self.fingerprint = fingerprint
        self.expected_version = expected_version  # NOT_READ: commit unconditionally
        self._step = task._step
        self._timeout = getattr(self._step, "timeout", 0) or 0
        # The id as the journal records it; a sequence of tasks passes it in, made once.
        if workflow_text is None and workflow_id is not None:
            workflow_text = str(workflow_id)
        self._workflow_text = workflow_text
        # Persistence goes through the run (a workflow passes its own; a task run alone gets one).
        self._run = run if run is not None else RunPersistence(workflow_text)
        self.persistence = self._run.persistence(self.config.storage, self.config.journal)
        self._claims = claims
        self._held: Holding | None = None  # the task's lease while it runs (scope "task")
        self._guarded = False  # the commit checks the lease in its transaction
        self.skipped = False  # another worker held the task's claim, and on_held was "skip"

    def start(self) -> _TaskRun:
        """`with engine.start():` marks the task IN_PROGRESS, then COMPLETED, or FAILED with the
        error that ended it (that error does not propagate)."""
        return _TaskRun(self)

    def run(self) -> None:
        """The whole task: what `with engine.start(): engine.execute_with_retry()` does, in one call.

        An `Exception` ends the task FAILED and does not propagate; anything else (KeyboardInterrupt)
        still records when the task finished, then propagates.
        """
        claims = self._claims
        if claims is not None and claims.workflow is None:
            self._run_claimed(claims)
            return
        self._run_task()

    def _run_task(self) -> None:
        self._begin()
        try:
            self.execute_with_retry()
        except BaseException as error:
            if not self._end(error):
                raise
            return
        self._end(None)

    def _run_claimed(self, claims: Claims) -> None:
        """The task under its own claim (see the module docstring)."""
        task = self.task
        persistence = self.persistence
        held: Holding | None = None
        try:
            key = persistence.storage.key(task=task)
            held = claims.acquire(persistence, key, what=self._what(), task_id=task.task_id)
            if held is None:
                self.skipped = True  # another worker runs it: not started here
                return
            stored = persistence.read_checkpoint(key)  # someone may have committed it since the run looked
        except Exception as error:  # ClaimHeldError, or the storage failed: the task fails, nothing ran
            if held is not None:
                held.release()
            self._begin()
            self._end(error)
            return
        self._held = held
        try:
            if stored is not None:
                previous = self.previous_context if self.previous_context is not None else Context()
                restore_task(task, stored.context, previous)
                return
            if persistence.storage_can.versions:
                self.expected_version = None  # absent when read under the lease
            self._run_task()
        finally:
            self._held.release()  # (after a lost lease, the one taken again)

    def _what(self) -> str:
        return f"task {self.task.task_id!r} of workflow {self._workflow_text!r}"

    def execute(self) -> Context:
        """One attempt, no retry."""
        return self._attempt(number=1)

    def execute_with_retry(self) -> Context:
        step = self._step
        retry = getattr(step, "retry", 1)
        if retry == 1 or not retry:
            return self._attempt(1)  # the usual case: one attempt, nothing to wait for
        attempts = max(1, int(retry))
        delay = float(getattr(step, "retry_delay", 0) or 0)
        backoff = bool(getattr(step, "backoff", False))
        for number in range(1, attempts + 1):
            try:
                return self._attempt(number)
            except CheckpointNotSaved:
                raise  # the step succeeded; running it again would not save the checkpoint
            except StepTimeoutError:
                raise  # the timed-out attempt may still be running: never start a second copy
            except Exception as error:
                if number == attempts:
                    raise
                self.task.retry_count += 1
                self.task.errors = TaskError(error, attempt=number)
                self.task.status = TypeStatus.RETRY
                if delay > 0:
                    time.sleep(delay)
                if backoff:
                    delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    # -- one attempt ----------------------------------------------------------------------------

    def _attempt(self, number: int) -> Context:
        task = self.task
        unit = self._unit(number)
        try:
            context = self._call() if not self._timeout else self._run_step()
        except BaseException:
            unit.rollback()
            raise
        context = task.take_result(context)
        key = self.persistence.storage.key(task=task)
        self._stage(unit, key, context)
        trace = self.config.task_hooks.on_commit
        try:
            if trace is None:
                self._commit(unit, key, number, context)
            else:
                with trace(task=task, key=key, storage=self.persistence.storage, context=context):
                    self._commit(unit, key, number, context)
        except LeaseLostError as lost:
            return self._after_lost_lease(key, number, context, lost)
        except ConflictError as conflict:
            return self._adopt(key, conflict)
        except CheckpointNotSaved:
            task.current_context = None  # a FAILED task has no result, whatever failed
            raise
        return context

    def _commit(self, unit: UnitOfWork, key: str, number: int, context: Context) -> None:
        try:
            self._commit_unit(unit)
        except (CommitError, JournalError, HookError) as error:
            self._after_failed_commit(key, number, context, error)

    def _commit_unit(self, unit: UnitOfWork) -> None:
        held = self._held
        if held is None or not self._guarded:
            unit.commit()
            return
        try:
            with held.lock:  # no renewal while the commit checks and releases the lease
                unit.commit()
        finally:
            if unit.state == COMMITTED:
                held.released_by_commit()

    def _stage(self, unit: UnitOfWork, key: str, context: Context) -> None:
        unit.put(key, context, fingerprint=self.fingerprint)
        if self.expected_version is not NOT_READ:
            unit.expect_version(key, self.expected_version)
        claims = self._claims
        if claims is not None:
            held = self._held if self._held is not None else claims.workflow
            if held is not None:  # on SQL and memory: checked (a task's released) in the commit's transaction
                self._guarded = unit.guard_lease(held.key, owner=held.owner, epoch=held.epoch, release=held is self._held)

    def _after_lost_lease(self, key: str, number: int, context: Context, lost: LeaseLostError) -> Context:
        """The lease changed hands before the commit, which wrote nothing: wait for the new holder,
        then adopt its checkpoint, or commit this one under a lease taken again."""
        task = self.task
        held, claims = self._held, self._claims
        if held is None or claims is None:  # the workflow's lease: whoever holds it now runs the rest
            if claims is not None and claims.workflow is not None:
                claims.workflow.lose()
            return self._adopt(key, lost)
        held.lose()
        logger.warning("task %s: its claim on %r was taken over before its commit; waiting for the new holder",
                       task.task_id, key)  # fmt: skip
        while True:
            try:
                self._held = held = cast("Holding", claims.acquire(self.persistence, key, what=self._what(), on_held="wait",
                                                                   task_id=task.task_id))  # fmt: skip
                stored = self.persistence.read_checkpoint(key)
            except Exception as error:  # never a reason to run the step again
                task.current_context = None
                raise CheckpointNotSaved(task.task_id, key, error) from error
            if stored is not None:
                return self._adopt(key, lost)
            self.expected_version = None
            unit = self._unit(number)
            self._stage(unit, key, context)
            try:
                self._commit(unit, key, number, context)
            except LeaseLostError:
                held.lose()
                continue
            return context

    def _adopt(self, key: str, conflict: ConflictError) -> Context:
        """Another run committed this task first: take its checkpoint as this task's result."""
        task = self.task
        try:
            stored = self.persistence.read_checkpoint(key)
        except Exception as error:  # never a reason to run the step again
            task.current_context = None
            raise CheckpointNotSaved(task.task_id, key, error) from error
        if stored is None:  # committed, then deleted again: nothing to adopt
            task.current_context = None
            raise CheckpointNotSaved(task.task_id, key, conflict) from conflict
        logger.warning(
            "task %s: another run committed checkpoint %r first; continuing from the stored checkpoint",
            task.task_id,
            key,
        )
        task.current_context = stored.context
        task.restored = True
        adopted: Context = task.current_context
        return adopted

    def _unit(self, attempt: int) -> UnitOfWork:
        return self._run.unit(self.persistence, task_id=self.task.task_id, attempt=attempt)

    def _after_failed_commit(self, key: str, attempt: int, context: Context, error: Exception) -> None:
        """The first `unit.commit()` raised `error`. A saved checkpoint whose journal or hook failed is
        logged and kept; a transient storage error is retried in fresh units (`COMMIT_ATTEMPTS` tries
        in all); anything else ends in `CheckpointNotSaved`."""
        delay = COMMIT_RETRY_DELAY
        tries = 1
        while True:
            if isinstance(error, (JournalError, HookError)):
                # The checkpoint is saved; only what runs after it (journal, hooks) failed.
                logger.warning("task %s: checkpoint %r saved, but %s", self.task.task_id, key, error)
                return
            cause = error.__cause__ or error
            permanent = isinstance(cause, PERMANENT_COMMIT_ERRORS) and not isinstance(cause, TransientError)
            if permanent or tries >= COMMIT_ATTEMPTS:
                raise CheckpointNotSaved(self.task.task_id, key, cause) from cause
            time.sleep(delay)
            delay *= 2
            tries += 1
            unit = self._unit(attempt)  # the failed unit is closed; stage the same checkpoint afresh
            self._stage(unit, key, context)
            try:
                self._commit_unit(unit)
                return
            except (CommitError, JournalError, HookError) as again:
                error = again

    # -- the task's bookkeeping around its attempts ---------------------------------------------
    # What the engine changes in a task goes through the task's own methods (begin_run, start_clock,
    # take_result, stop_clock). Three fields are read directly, `task._status`, `task._step` and a
    # Context's `_storage`: their properties, called once or twice per task, cost 2.4% of an in-memory
    # task together (benchmarks/README.md, "Encapsulation and its cost").

    def _begin(self) -> None:
        task = self.task
        task.begin_run(self.workflow_id, self.previous_context)
        for hook in self.config.task_hooks.on_start:  # tracer.start_task
            hook(task=task)
        task.start_clock()
        task.status = TypeStatus.IN_PROGRESS

    def _end(self, error: BaseException | None) -> bool:
        """Settle the task's status after its attempts; True if `error` is handled (an Exception)."""
        task = self.task
        config = self.config
        try:
            if error is None:
                if task._status in (TypeStatus.IN_PROGRESS, TypeStatus.RETRY):
                    task.status = TypeStatus.COMPLETED
            elif isinstance(error, Exception):
                self._flush_before_failure()
                task.errors = error
                task.status = TypeStatus.FAILED
        finally:
            task.stop_clock()
            for hook in config.task_hooks.on_end:  # tracer.end_task, server.update_task
                hook(task=task)
        return isinstance(error, Exception)

    def _flush_before_failure(self) -> None:
        """A storage that buffers writes (BatchStorage) makes them durable before a failure is reported."""
        try:
            self._run.flush(self.persistence)
        except Exception as error:  # the task's own error is what gets reported; this one is logged
            logger.error("task %s: flushing buffered checkpoints before reporting its failure failed: %r",
                         self.task.task_id, error)  # fmt: skip

    def _run_step(self) -> Context:
        """Run the step; with a `timeout`, in a daemon thread that is abandoned when time is up.

        Python cannot stop a thread: a timed-out step runs on until it returns, but its result is
        dropped (never committed), and as a daemon thread it never keeps the process from exiting.
        """
        timeout = self._timeout
        if not timeout:
            return self._call()
        outcome: list[tuple[bool, Any]] = []  # (returned?, context or exception)
        finished = threading.Event()

        def attempt() -> None:
            try:
                outcome.append((True, self._call()))
            except BaseException as error:  # handed to the waiting thread, which re-raises it
                outcome.append((False, error))
            finally:
                finished.set()

        name = f"dotflow-step-{self.task.task_id}"
        threading.Thread(target=attempt, name=name, daemon=True).start()
        if not finished.wait(timeout):
            raise StepTimeoutError(self.task.task_id, timeout)
        returned, value = outcome[0]
        if returned:
            return cast(Context, value)
        raise value

    def _call(self) -> Context:
        task = self.task
        context = task.call_step()
        if type(context) is Context and type(context._storage) in _PLAIN_TYPES:
            return context  # not a class step (the usual case)
        return self._collect_class_actions(context)

    # -- class-based steps --------------------------------------------------------------------

    def _collect_class_actions(self, context: Context) -> Context:
        """A step that is a class: run its @action methods in definition order, chaining contexts.

        A method written with `self` gets the instance first; one written without it (as 1.0.1
        allows) does not. Either way it receives the contexts it names.
        """
        instance = context.storage
        if type(instance) in _PLAIN_TYPES or isinstance(instance, Context):
            return context
        methods = action_methods(type(instance))
        if not methods:
            return context
        task = self.task
        previous = task.previous_context
        results: list[Context] = []
        for name, method in methods:
            func = getattr(method, "func", method)
            args = (instance,) if takes_instance(func) else ()
            given = {"initial_context": task.initial_context, "previous_context": previous}
            value = call_step(func, args, given, as_context=False)
            sub = Context(storage=value, task_id=f"{task.task_id}.{name}", workflow_id=context.workflow_id)
            if not sub.task_id:
                sub.task_id = f"{task.task_id}.{name}"
            results.append(sub)
            previous = sub
        return Context(storage=results, task_id=task.task_id, workflow_id=context.workflow_id)


_PLAIN_TYPES = frozenset(TaskEngine.VALID_OBJECTS)  # what a step's value is when it is not a class step


class _TaskRun:
    """The context manager of `TaskEngine.start` (a class: it runs once per task)."""

    __slots__ = ("engine",)

    def __init__(self, engine: TaskEngine) -> None:
        self.engine = engine

    def __enter__(self) -> TaskEngine:
        self.engine._begin()
        return self.engine

    def __exit__(self, exc_type: Any, error: BaseException | None, traceback: Any) -> bool:
        return self.engine._end(error)


def restore_task(task: Any, context: Context, previous: Context) -> None:
    """Mark a task done from its checkpoint: no step, no callback, no storage write."""
    task.previous_context = previous
    task.current_context = context
    task.restored = True
    task.status = TypeStatus.COMPLETED


def action_methods(cls: type) -> list[tuple[str, Any]]:
    """@action methods of `cls` and its bases, base classes first, each in definition order.

    A `@staticmethod` around an @action method counts too (unwrapped here).
    """
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, attribute in vars(klass).items():
            if name.startswith("__"):
                continue
            if isinstance(attribute, staticmethod):
                attribute = attribute.__func__
            if is_action(attribute):
                found[name] = attribute
            elif name in found:
                del found[name]  # overridden by a plain method
    return list(found.items())
