"""Exceptions of the public API, plus the `TaskError` record kept on each task.

    Exception
    ├── MissingActionDecorator      a step is not decorated with @action
    ├── ExecutionModeNotExist       unknown execution mode
    ├── ImportModuleError           a "pkg.mod:attr" string could not be imported
    ├── NotCallableObject           a callback or Config slot has the wrong type
    ├── ProblemOrdering             kept for compatibility; never raised
    ├── ModuleNotFound              an optional SDK is missing (names the extra to install)
    ├── ExecutionWithClassError     kept for compatibility; never raised
    ├── InputChangedError           on_input_change="raise" found a changed input
    ├── InvalidOnInputChange        on_input_change is not a known policy
    ├── CheckpointNotSaved          a step succeeded but its checkpoint could not be committed
    ├── CorruptCheckpointError      a stored checkpoint is unreadable (also a ValueError)
    ├── StepTimeoutError            an attempt ran past the step's timeout (also a TimeoutError)
    └── WorkerError                 a child process died or could not send its result back
"""

from __future__ import annotations

import traceback as _traceback
from typing import Any

__all__ = [
    "CheckpointNotSaved",
    "CorruptCheckpointError",
    "ExecutionModeNotExist",
    "ExecutionWithClassError",
    "ImportModuleError",
    "InputChangedError",
    "InvalidOnInputChange",
    "MissingActionDecorator",
    "ModuleNotFound",
    "NotCallableObject",
    "ProblemOrdering",
    "StepTimeoutError",
    "TaskError",
    "WorkerError",
]

MESSAGE_UNKNOWN_ERROR = "Unknown"
MESSAGE_MISSING_STEP_DECORATOR = "A step function necessarily needs an '@action' decorator to circulate in the workflow."
MESSAGE_EXECUTION_NOT_EXIST = "The execution mode does not exist. Allowed: sequential, sequential_group, background, parallel."
MESSAGE_IMPORT_MODULE_ERROR = "Error importing Python module '{module}'."
MESSAGE_NOT_CALLABLE_OBJECT = "Problem validating the '{name}' object type; this is not a callable object."
MESSAGE_PROBLEM_ORDERING = "Problem with correctly ordering functions of the '{name}' class."
MESSAGE_MODULE_NOT_FOUND = "Module '{module}' not found. Please install with 'pip install {library}'"
MESSAGE_INPUT_CHANGED = (
    "Input of workflow '{workflow_id}' changed since its checkpoints were written; "
    "pass on_input_change='reuse' or 'reset' to continue."
)
MESSAGE_INVALID_ON_INPUT_CHANGE = "Invalid on_input_change {value!r}: expected one of 'reuse', 'reset', 'raise'."


class MissingActionDecorator(Exception):
    def __init__(self) -> None:
        super().__init__(MESSAGE_MISSING_STEP_DECORATOR)


class ExecutionModeNotExist(Exception):
    def __init__(self) -> None:
        super().__init__(MESSAGE_EXECUTION_NOT_EXIST)


class ImportModuleError(Exception):
    def __init__(self, module: str) -> None:
        super().__init__(MESSAGE_IMPORT_MODULE_ERROR.format(module=module))


class NotCallableObject(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(MESSAGE_NOT_CALLABLE_OBJECT.format(name=name))


class ProblemOrdering(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(MESSAGE_PROBLEM_ORDERING.format(name=name))


class ModuleNotFound(Exception):
    def __init__(self, module: str, library: str) -> None:
        super().__init__(MESSAGE_MODULE_NOT_FOUND.format(module=module, library=library))


class ExecutionWithClassError(Exception):
    def __init__(self) -> None:
        super().__init__(MESSAGE_UNKNOWN_ERROR)


class InputChangedError(Exception):
    def __init__(self, workflow_id: object) -> None:
        self.workflow_id = workflow_id
        super().__init__(MESSAGE_INPUT_CHANGED.format(workflow_id=workflow_id))


class InvalidOnInputChange(Exception):
    def __init__(self, value: object) -> None:
        super().__init__(MESSAGE_INVALID_ON_INPUT_CHANGE.format(value=value))


class CheckpointNotSaved(Exception):
    """The step ran and returned, but its checkpoint could not be committed to storage."""

    def __init__(self, task_id: str, key: str, cause: BaseException) -> None:
        self.task_id = task_id
        self.key = key
        super().__init__(
            f"checkpoint of task {task_id!r} could not be saved to key {key!r}: "
            f"{type(cause).__name__}: {cause}"
        )


class CorruptCheckpointError(ValueError):
    """A stored checkpoint cannot be read (a file truncated or edited by hand, say): never taken as missing."""

    def __init__(self, key: str, reason: str, path: str | None = None) -> None:
        self.key = key
        self.path = path
        super().__init__(
            f"corrupt checkpoint for key {key!r}: {reason}. Restore it, or delete it to run its task again"
        )


class StepTimeoutError(TimeoutError):
    """An attempt ran longer than its `@action(timeout=...)`; it is not retried, since it may still run."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"step of task {task_id!r} timed out after {timeout} s")


class WorkerError(Exception):
    """A task's child process ended without reporting, or its result could not be sent back."""


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
