"""Every error the unit of work raises, in one small tree.

    UnitOfWorkError            base class; catch this to catch them all
    ├── UnitClosedError        the unit is no longer active (committed, rolled back or failed)
    ├── NestingError           a nested unit is still active, or one is already open
    ├── CommitError            the storage failed while the unit was writing (state "failed")
    ├── HookError              an on_commit / on_rollback hook failed after a successful outcome
    ├── JournalError           the journal's database could not be reached, read or written
    └── ConflictError          a key the unit read was changed by someone else before the commit
        └── LeaseLostError     the lease the commit was conditional on changed hands: nothing written

    TransientError             not raised by `uow`: a marker a storage mixes into its own error for a
                               failure that trying again may fix (connection lost, server down, lock
                               not granted in time); see the class

Errors from the storage, the hooks or the journal are never swallowed: they are attached as
`__cause__` of the error raised here, or (when another error is already propagating) logged on the
"uow" logger and added to that error as notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "CommitError",
    "ConflictError",
    "HookError",
    "JournalError",
    "LeaseLostError",
    "NestingError",
    "TransientError",
    "UnitClosedError",
    "UnitOfWorkError",
]


class UnitOfWorkError(Exception):
    """Base class of every error raised by `uow`."""


class UnitClosedError(UnitOfWorkError):
    """The unit was used after it was committed, rolled back or failed."""

    def __init__(self, state: str, action: str) -> None:
        super().__init__(f"cannot {action}: the unit of work is already {state}")
        self.state = state
        self.action = action


class NestingError(UnitOfWorkError):
    """The unit was asked to do something its active nested unit must finish first."""


class CommitError(UnitOfWorkError):
    """The storage raised while the unit was writing; the storage's error is the `__cause__`.

    `key` is the key whose write (or before-image read) failed, `written` the keys written before
    it, `restored` whether every written key was put back as it was, and `unrestored` the keys
    that could not be.
    """

    def __init__(
        self,
        key: str,
        written: Sequence[str] = (),
        *,
        restored: bool = True,
        unrestored: Sequence[str] = (),
        reason: str = "writing",
    ) -> None:
        message = f"commit failed {reason} {key!r}"
        if written:
            message += f" after writing {list(written)!r}"
            message += "; all restored" if restored else f"; not restored: {list(unrestored)!r}"
        super().__init__(message)
        self.key = key
        self.written = list(written)
        self.restored = restored
        self.unrestored = list(unrestored)


class HookError(UnitOfWorkError):
    """One or more hooks failed after a successful outcome; every hook still ran.

    The first hook error is the `__cause__`; `errors` holds all of them, in the order they ran.
    """

    def __init__(self, errors: Sequence[Exception]) -> None:
        super().__init__(f"{len(errors)} hook(s) failed: " + "; ".join(repr(e) for e in errors))
        self.errors = list(errors)


class JournalError(UnitOfWorkError):
    """The journal's database could not be reached, opened, read or written.

    Raised by `Journal` itself (the message names the database and the cause), and by a unit whose
    outcome the journal failed to record after it was settled: that outcome itself stands.
    """


class ConflictError(UnitOfWorkError):
    """A key the unit read (or was told the version of) was changed by someone else before the commit.

    Nothing of the unit is left written: keys written before the conflict were restored (see
    `restored` / `unrestored`, as on `CommitError`). `key` names the conflicting key and
    `expected_version` the version the unit saw (None: the key was absent).
    """

    def __init__(
        self,
        key: str,
        expected_version: str | None,
        written: Sequence[str] = (),
        *,
        restored: bool = True,
        unrestored: Sequence[str] = (),
    ) -> None:
        seen = "absent" if expected_version is None else f"at version {expected_version!r}"
        message = f"commit conflict on key {key!r}: it was {seen} when this unit read it, and was changed since"
        if unrestored:
            message += f"; keys written before the conflict and not restored: {list(unrestored)!r}"
        super().__init__(message)
        self.key = key
        self.expected_version = expected_version
        self.written = list(written)
        self.restored = restored
        self.unrestored = list(unrestored)

    def __reduce__(self) -> Any:  # picklable (a child process receives it from its parent)
        return _rebuild, (type(self), self.args, self.__dict__)


class LeaseLostError(ConflictError):
    """The commit was conditional on holding a lease (`UnitOfWork.guard_lease`), and the lease is no
    longer this worker's (it expired and another worker took it over, or it is gone). Checked in
    the storage's transaction, so nothing of the unit was written."""

    def __init__(self, key: str, owner: str, epoch: int) -> None:
        super().__init__(key, None)
        self.args = (
            f"commit refused: the lease on {key!r} is no longer held by {owner!r} (epoch {epoch}); "
            "another worker took it over, nothing was written",
        )
        self.owner = owner
        self.epoch = epoch


class TransientError(Exception):
    """Marks a storage's (or a journal's) error as transient: the service could not be reached, the
    connection was lost, the server is shutting down or restarting, a lock was not granted in time.
    Trying the same operation again later may succeed.

    `uow` never raises it and does not depend on it; a storage derives its own error class from it
    as well (dotflow's `TransientStorageError` is a `StorageError` and a `TransientError`), and a
    caller that retries checks for it: dotflow's engine tries a failed commit again when the
    storage's error is one, and fails the task at once for other storage errors. Errors of a
    storage that does not use it are classified by the caller as before.
    """


def _rebuild(kind: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """An error of `kind` with these `args` and attributes, without calling its constructor (unpickling)."""
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error
