"""Exceptions of the public API, plus the `TaskError` record kept on each task.

Every exception class dotflow defines derives from `DotFlowError`; names, constructor
arguments and messages of the ones 1.0.1 has are kept. Some also derive from the built-in error
they have always been, so existing `except TimeoutError` / `except TypeError` code still works.

    DotFlowError
    ├── MissingActionDecorator      a step is not decorated with @action
    ├── ExecutionModeNotExist       unknown execution mode
    ├── ImportModuleError           a "pkg.mod:attr" string could not be imported
    ├── NotCallableObject           a callback or Config slot has the wrong type
    ├── ProblemOrdering             kept for compatibility; never raised
    ├── ModuleNotFound              an optional SDK is missing (names the extra to install)
    ├── InvalidWorkflowFactory      kept for compatibility (1.0.1's CLI); never raised
    ├── WorkflowFlagConflict        kept for compatibility (1.0.1's CLI); never raised
    ├── ExecutionWithClassError     kept for compatibility; never raised
    ├── InputChangedError           on_input_change="raise" found a changed input
    ├── InvalidOnInputChange        on_input_change is not a known policy
    ├── WorkflowStillRunning        start() while this workflow still runs in the background
    ├── CheckpointNotSaved          a step succeeded but its checkpoint could not be committed
    ├── CheckpointMismatchError     resume found a checkpoint that differs from what the journal committed
    ├── CorruptCheckpointError      a stored checkpoint is unreadable (also a ValueError)
    │   └── DamagedSegmentError     a BatchStorage segment is damaged: the folder is not opened
    ├── StepTimeoutError            an attempt ran past the step's timeout (also a TimeoutError)
    ├── StorageError                a storage service failed a request or cannot be used (names bucket, key)
    │   └── TransientStorageError   ... in a way that may pass (also a uow.TransientError): a commit is tried again
    ├── WorkerError                 a child process died or could not send its result back
    ├── ClaimHeldError              another worker holds the claim (lease) on a task or workflow
    ├── codec.UnencodableValueError a value the checkpoint encoding cannot store (also a TypeError)
    └── codec.DecodeError           stored text that is not a valid checkpoint encoding (also a ValueError)
"""

from __future__ import annotations

import traceback as _traceback
from typing import Any

from uow.errors import TransientError

__all__ = [
    "CheckpointMismatchError",
    "CheckpointNotSaved",
    "ClaimHeldError",
    "CorruptCheckpointError",
    "DamagedSegmentError",
    "DotFlowError",
    "ExecutionModeNotExist",
    "ExecutionWithClassError",
    "ImportModuleError",
    "InputChangedError",
    "InvalidOnInputChange",
    "InvalidWorkflowFactory",
    "MissingActionDecorator",
    "ModuleNotFound",
    "NotCallableObject",
    "ProblemOrdering",
    "StepTimeoutError",
    "StorageError",
    "TaskError",
    "TransientStorageError",
    "WorkerError",
    "WorkflowFlagConflict",
    "WorkflowStillRunning",
]

# The messages of dotflow 1.0.1, except where 1.0.1's text is wrong for this project (noted).
MESSAGE_UNKNOWN_ERROR = "Unknown error, please check logs for more information."
MESSAGE_MISSING_STEP_DECORATOR = (
    "A step function necessarily needs an '@action' decorator to circulate in the workflow. "
    "For more implementation details, access the documentation: "
    "https://dotflow-io.github.io/dotflow/#3-task-function."
)
MESSAGE_NOT_CALLABLE_OBJECT = "Problem validating the '{name}' object type; this is not a callable object"
# 1.0.1 left out 'sequential_group', which it accepts too.
MESSAGE_EXECUTION_NOT_EXIST = (
    "The execution mode does not exist. Allowed parameter is 'sequential', 'sequential_group', "
    "'background' and 'parallel'."
)
MESSAGE_IMPORT_MODULE_ERROR = "Error importing Python module '{module}'."
MESSAGE_PROBLEM_ORDERING = "Problem with correctly ordering functions of the '{name}' class."
MESSAGE_MODULE_NOT_FOUND = "Module '{module}' not found. Please install with 'pip install {library}'"
MESSAGE_INVALID_WORKFLOW_FACTORY = "'{factory}' must be a callable that returns a DotFlow instance."
MESSAGE_WORKFLOW_FLAG_CONFLICT = "{flag} is only valid with --step and cannot be used with --workflow."
MESSAGE_INPUT_CHANGED = (
    "Workflow '{workflow_id}' was previously executed with a different initial_context. "
    "Pass on_input_change='reset' to discard prior checkpoints, or 'reuse' to ignore the new input."
)
MESSAGE_INVALID_ON_INPUT_CHANGE = "on_input_change must be one of 'reuse', 'reset', 'raise'; got '{value}'."
MESSAGE_WORKFLOW_STILL_RUNNING = (
    "Workflow '{workflow_id}' is still running in the background from an earlier start(); "
    "wait for it (manager.thread.join()) before starting it again."
)


class DotFlowError(Exception):
    """Base class of every exception class dotflow defines (bad arguments stay ValueError/TypeError,
    and errors raised by your steps are your own)."""


class MissingActionDecorator(DotFlowError):
    def __init__(self) -> None:
        super().__init__(MESSAGE_MISSING_STEP_DECORATOR)


class ExecutionModeNotExist(DotFlowError):
    def __init__(self) -> None:
        super().__init__(MESSAGE_EXECUTION_NOT_EXIST)


class ImportModuleError(DotFlowError):
    def __init__(self, module: str) -> None:
        super().__init__(MESSAGE_IMPORT_MODULE_ERROR.format(module=module))


class NotCallableObject(DotFlowError):
    def __init__(self, name: str) -> None:
        super().__init__(MESSAGE_NOT_CALLABLE_OBJECT.format(name=name))


class ProblemOrdering(DotFlowError):
    def __init__(self, name: str) -> None:
        super().__init__(MESSAGE_PROBLEM_ORDERING.format(name=name))


class ModuleNotFound(DotFlowError):
    def __init__(self, module: str, library: str) -> None:
        super().__init__(MESSAGE_MODULE_NOT_FOUND.format(module=module, library=library))


class InvalidWorkflowFactory(DotFlowError):
    def __init__(self, factory: str) -> None:
        super().__init__(MESSAGE_INVALID_WORKFLOW_FACTORY.format(factory=factory))


class WorkflowFlagConflict(DotFlowError):
    def __init__(self, flag: str) -> None:
        super().__init__(MESSAGE_WORKFLOW_FLAG_CONFLICT.format(flag=flag))


class ExecutionWithClassError(DotFlowError):
    def __init__(self) -> None:
        super().__init__("Unknown")


class InputChangedError(DotFlowError):
    def __init__(self, workflow_id: object) -> None:
        self.workflow_id = workflow_id
        super().__init__(MESSAGE_INPUT_CHANGED.format(workflow_id=workflow_id))


class InvalidOnInputChange(DotFlowError):
    def __init__(self, value: object) -> None:
        super().__init__(MESSAGE_INVALID_ON_INPUT_CHANGE.format(value=value))


class WorkflowStillRunning(DotFlowError):
    def __init__(self, workflow_id: object) -> None:
        self.workflow_id = workflow_id
        super().__init__(MESSAGE_WORKFLOW_STILL_RUNNING.format(workflow_id=workflow_id))


class CheckpointNotSaved(DotFlowError):
    """The step ran and returned, but its checkpoint could not be committed to storage."""

    def __init__(self, task_id: str, key: str, cause: BaseException) -> None:
        self.task_id = task_id
        self.key = key
        super().__init__(
            f"checkpoint of task {task_id!r} could not be saved to key {key!r}: "
            f"{type(cause).__name__}: {cause}"
        )


class CorruptCheckpointError(DotFlowError, ValueError):
    """A stored checkpoint cannot be read (a file truncated or edited by hand, say): never taken as missing."""

    def __init__(self, key: str, reason: str, path: str | None = None) -> None:
        self.key = key
        self.path = path
        super().__init__(
            f"corrupt checkpoint for key {key!r}: {reason}. Restore it, or delete it to run its task again"
        )


class CheckpointMismatchError(DotFlowError):
    """A resume found a checkpoint that is not what the journal says was committed (edited, replaced,
    truncated, swapped with another key's file): the run stops before any step executes.

    `key` is the checkpoint, `run_id` the run that committed it, `expected` and `found` the SHA-256
    of the committed encoding and of what the storage holds now.
    """

    def __init__(self, key: str, run_id: str | None, expected: str | None, found: str) -> None:
        self.key = key
        self.run_id = run_id
        self.expected = expected
        self.found = found
        committed = f"run {run_id}" if run_id else "a unit outside any run"
        what = "deleted it" if expected is None else f"committed sha256 {expected}"
        super().__init__(
            f"checkpoint {key!r} does not match the journal: {committed} {what}, the storage holds sha256 "
            f"{found}; nothing was run. Restore the checkpoint, delete it to run its task again, or resume "
            "with verify_resume=False to take it as it is"
        )


class DamagedSegmentError(CorruptCheckpointError):
    """A `BatchStorage` segment (a file holding a batch of checkpoints) is damaged: a changed byte, or
    cut short when it is not the newest segment (only the newest can be cut by a crash).

    Raised when the folder is opened (or when a segment is read again, by a compaction or
    `materialize`), before anything is deleted or rewritten. `path` is the segment file, `offset` the
    byte where the damage was found, `reason` what is wrong there; `key` is "" (a segment holds many
    keys). `BatchStorage.repair(StorageFile(path=...))` is the way on (see docs/group-commit.md).
    """

    def __init__(self, path: str, offset: int, reason: str, advice: str = "") -> None:
        self.key = ""
        self.path = path
        self.offset = offset
        self.reason = reason
        message = f"batch segment {path} is damaged at byte {offset}: {reason}. Nothing was changed"
        DotFlowError.__init__(self, f"{message}. {advice}" if advice else message)


class StepTimeoutError(DotFlowError, TimeoutError):
    """An attempt ran longer than its `@action(timeout=...)`; it is not retried, since it may still run."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"step of task {task_id!r} timed out after {timeout} s")


class StorageError(DotFlowError):
    """A storage service (S3, GCS, an SQL database) refused or failed a request, or cannot be used.

    The message names the service, the bucket and the key (and the endpoint when it matters); the
    SDK's own exception is the `__cause__`. Transient errors reach here only after the SDK's own
    retries gave up.
    """


class TransientStorageError(StorageError, TransientError):
    """The storage failed in a way that may pass: its server could not be reached, the connection
    was lost, the server is shutting down, a lock was not granted in time (`StorageSQL`).

    The engine tries a failed commit again after one (`COMMIT_ATTEMPTS` tries in all), never the
    step; any other `StorageError` fails the task at once. A cloud storage raises a plain
    `StorageError` even for a connection error: its SDK already retried.
    """


class WorkerError(DotFlowError):
    """A task's child process ended without reporting, or its result could not be sent back."""


class ClaimHeldError(DotFlowError):
    """Another worker holds the claim on a task or a workflow (`Claim(on_held="raise")`, or a wait
    that ran out of `wait_timeout`). `owner`, `epoch`, `expires_in` (seconds left on the storage's
    clock when last read) and `key` (the checkpoint the lease guards) say whose and until when."""

    def __init__(self, what: str, key: str, owner: str, epoch: int, expires_in: float, waited: float | None = None) -> None:
        self.what = what
        self.key = key
        self.owner = owner
        self.epoch = epoch
        self.expires_in = expires_in
        self.waited = waited
        after = "" if waited is None else f" after waiting {waited:.1f} s"
        super().__init__(
            f"{what} is claimed by worker {owner!r} (lease on {key!r}, epoch {epoch}), "
            f"which expires in {expires_in:.1f} s unless renewed{after}"
        )

    def __reduce__(self) -> Any:  # picklable: a child process sends it to the parent
        return type(self), (self.what, self.key, self.owner, self.epoch, self.expires_in, self.waited)


class TaskError:
    """A record of one failure of a task (not an exception)."""

    def __init__(self, error: BaseException | None = None, attempt: int | None = None) -> None:
        self.attempt = attempt
        self.exception = type(error).__name__ if error is not None else ""
        self.message = str(error) if error is not None else ""
        if error is not None:
            lines = _traceback.format_exception(type(error), error, error.__traceback__)
            self.traceback = "".join(lines).rstrip()
        else:
            self.traceback = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "exception": self.exception,
            "traceback": self.traceback,
            "message": self.message,
        }

    def __repr__(self) -> str:
        return f"TaskError(exception={self.exception!r}, message={self.message!r}, attempt={self.attempt!r})"
